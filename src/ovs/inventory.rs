//! Everything the plugin owns in the database, with the run-time state ovs-vswitchd reports
//! (BFD, counters, errors), for the operator commands `status` and `gc`.
//!
//! One read-only transaction. The setup path reads far less ([`super::state`]); this read is
//! for humans and for clean-up, where completeness matters more than a few hundred bytes.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::schema::{self, is_owned, owned_condition, ContainerPortRecord, Role};
use super::state::{decode_bridge, BridgeRow};
use super::txn::DB;
use super::Ovs;
use crate::ovsdb::{ops, value};

/// A Port row the plugin owns (a tunnel, a container port, or a bridge's internal port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedPort {
    pub uuid: String,
    pub name: String,
    pub external_ids: BTreeMap<String, String>,
    pub interfaces: Vec<String>,
}

impl OwnedPort {
    /// What the port is for, as written (`tunnel`, `container`, `gateway`).
    pub fn role(&self) -> Option<&str> {
        schema::role(&self.external_ids)
    }

    /// Whether the port is for `role`.
    pub fn has_role(&self, role: Role) -> bool {
        schema::has_role(&self.external_ids, role)
    }

    /// The container port record, if this is one.
    pub fn container(&self) -> Option<ContainerPortRecord> {
        ContainerPortRecord::read(&self.external_ids)
    }
}

/// An Interface row (any, owned or not) with what ovs-vswitchd reports about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceState {
    pub uuid: String,
    pub name: String,
    /// `type`: `geneve`, `internal`, or empty for a system device such as a veth.
    pub kind: String,
    pub options: BTreeMap<String, String>,
    pub bfd: BTreeMap<String, String>,
    pub bfd_status: BTreeMap<String, String>,
    pub statistics: BTreeMap<String, i64>,
    pub error: Option<String>,
    pub ofport: Option<i64>,
    pub mtu: Option<i64>,
    pub external_ids: BTreeMap<String, String>,
}

impl InterfaceState {
    /// Whether BFD is configured on this interface.
    pub fn bfd_enabled(&self) -> bool {
        self.bfd.get("enable").map(String::as_str) == Some("true")
    }

    /// What vswitchd says is wrong with the interface, if anything.
    pub fn problem(&self) -> Option<String> {
        match (&self.error, self.ofport) {
            (Some(error), _) => Some(error.clone()),
            (None, Some(-1)) => Some("ovs-vswitchd could not add it (ofport -1)".to_string()),
            _ => None,
        }
    }
}

/// The plugin's bridges and ports, and every interface of the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub bridges: Vec<BridgeRow>,
    pub ports: Vec<OwnedPort>,
    pub interfaces: Vec<InterfaceState>,
}

impl Inventory {
    /// The owned ports attached to `bridge`.
    pub fn ports_of<'a>(&'a self, bridge: &'a BridgeRow) -> impl Iterator<Item = &'a OwnedPort> {
        self.ports
            .iter()
            .filter(move |p| bridge.ports.contains(&p.uuid))
    }

    /// The owned bridge `port` is attached to.
    pub fn bridge_of(&self, port: &OwnedPort) -> Option<&BridgeRow> {
        self.bridges.iter().find(|b| b.ports.contains(&port.uuid))
    }

    /// The interface of a port (the plugin's ports have exactly one).
    pub fn interface_of(&self, port: &OwnedPort) -> Option<&InterfaceState> {
        port.interfaces
            .iter()
            .find_map(|u| self.interfaces.iter().find(|i| &i.uuid == u))
    }

    /// The namespace paths the container ports were set up for.
    pub fn netns_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .ports
            .iter()
            .filter_map(OwnedPort::container)
            .filter_map(|record| record.netns)
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// Whether any Interface row, owned or not, has this name.
    pub fn has_interface(&self, name: &str) -> bool {
        self.interfaces.iter().any(|i| i.name == name)
    }
}

const INTERFACE_COLUMNS: &[&str] = &[
    "_uuid",
    "name",
    "type",
    "options",
    "bfd",
    "bfd_status",
    "statistics",
    "error",
    "ofport",
    "mtu",
    "external_ids",
];

impl Ovs {
    /// Reads the plugin's bridges and ports and every interface.
    pub fn inventory(&mut self) -> Result<Inventory> {
        let results = self.client.transact(DB, read_ops())?;
        decode(&results)
    }
}

/// The operations of the read transaction, in the order [`decode`] expects.
pub fn read_ops() -> Vec<Value> {
    vec![
        ops::select(
            "Bridge",
            vec![owned_condition()],
            Some(&[
                "_uuid",
                "name",
                "external_ids",
                "datapath_type",
                "fail_mode",
                "ports",
            ]),
        ),
        ops::select(
            "Port",
            vec![owned_condition()],
            Some(&["_uuid", "name", "external_ids", "interfaces"]),
        ),
        ops::select("Interface", vec![], Some(INTERFACE_COLUMNS)),
    ]
}

/// Decodes the results of [`read_ops`].
pub fn decode(results: &[Value]) -> Result<Inventory> {
    let [bridges, ports, interfaces] = results else {
        bail!(
            "expected 3 results from the OVSDB read, got {}",
            results.len()
        );
    };
    let bridges = value::rows(bridges)?
        .iter()
        .map(decode_bridge)
        .filter(|b| b.as_ref().map_or(true, BridgeRow::is_owned))
        .collect::<Result<Vec<_>>>()
        .context("cannot decode the Bridge table")?;
    let ports = value::rows(ports)?
        .iter()
        .map(decode_port)
        .filter(|p| p.as_ref().map_or(true, |p| is_owned(&p.external_ids)))
        .collect::<Result<Vec<_>>>()
        .context("cannot decode the Port table")?;
    let interfaces = value::rows(interfaces)?
        .iter()
        .map(decode_interface)
        .collect::<Result<Vec<_>>>()
        .context("cannot decode the Interface table")?;
    Ok(Inventory {
        bridges,
        ports,
        interfaces,
    })
}

fn uuids(column: &Value) -> Result<Vec<String>> {
    value::set_elements(column)?
        .iter()
        .map(|u| value::uuid_str(u).map(str::to_string))
        .collect()
}

fn decode_port(row: &Value) -> Result<OwnedPort> {
    Ok(OwnedPort {
        uuid: value::uuid_str(value::column(row, "_uuid")?)?.to_string(),
        name: value::string(value::column(row, "name")?)?.to_string(),
        external_ids: value::string_map(value::column(row, "external_ids")?)?,
        interfaces: uuids(value::column(row, "interfaces")?)?,
    })
}

fn optional_string(row: &Value, column: &str) -> Result<Option<String>> {
    value::optional(value::column(row, column)?)?
        .map(|v| value::string(&v).map(str::to_string))
        .transpose()
}

fn optional_integer(row: &Value, column: &str) -> Result<Option<i64>> {
    value::optional(value::column(row, column)?)?
        .map(|v| value::integer(&v))
        .transpose()
}

fn decode_interface(row: &Value) -> Result<InterfaceState> {
    let statistics = value::map_entries(value::column(row, "statistics")?)?
        .into_iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_i64()?)))
        .collect();
    Ok(InterfaceState {
        uuid: value::uuid_str(value::column(row, "_uuid")?)?.to_string(),
        name: value::string(value::column(row, "name")?)?.to_string(),
        kind: value::string(value::column(row, "type")?)?.to_string(),
        options: value::string_map(value::column(row, "options")?)?,
        bfd: value::string_map(value::column(row, "bfd")?)?,
        bfd_status: value::string_map(value::column(row, "bfd_status")?)?,
        statistics,
        error: optional_string(row, "error")?,
        ofport: optional_integer(row, "ofport")?,
        mtu: optional_integer(row, "mtu")?,
        external_ids: value::string_map(value::column(row, "external_ids")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_what_ovsdb_sends() {
        let owned = json!([
            "map",
            [
                ["geneve-ovs.owner", "geneve-ovs"],
                ["geneve-ovs.role", "tunnel"]
            ]
        ]);
        let results = vec![
            json!({"rows": [
                {"_uuid": ["uuid", "b1"], "name": "gnv5", "datapath_type": "netdev",
                 "external_ids": ["map", [["geneve-ovs.owner", "geneve-ovs"]]],
                 "ports": ["set", [["uuid", "p1"], ["uuid", "p9"]]]}
            ]}),
            json!({"rows": [
                {"_uuid": ["uuid", "p1"], "name": "gt1", "external_ids": owned,
                 "interfaces": ["uuid", "i1"]}
            ]}),
            json!({"rows": [
                {"_uuid": ["uuid", "i1"], "name": "gt1", "type": "geneve",
                 "options": ["map", [["remote_ip", "10.99.0.2"]]],
                 "bfd": ["map", [["enable", "true"]]],
                 "bfd_status": ["map", [["state", "up"], ["forwarding", "true"]]],
                 "statistics": ["map", [["rx_packets", 5], ["tx_bytes", 700]]],
                 "error": ["set", []], "ofport": 3, "mtu": ["set", []],
                 "external_ids": owned},
                {"_uuid": ["uuid", "i9"], "name": "foreign", "type": "",
                 "options": ["map", []], "bfd": ["map", []], "bfd_status": ["map", []],
                 "statistics": ["map", []], "error": "could not open network device foreign",
                 "ofport": -1, "mtu": 1500, "external_ids": ["map", []]}
            ]}),
        ];
        let inv = decode(&results).unwrap();
        assert_eq!(inv.bridges.len(), 1);
        let port = &inv.ports[0];
        assert_eq!(port.role(), Some("tunnel"));
        assert_eq!(inv.bridge_of(port).unwrap().name, "gnv5");
        let iface = inv.interface_of(port).unwrap();
        assert!(iface.bfd_enabled());
        assert_eq!(iface.bfd_status["state"], "up");
        assert_eq!(iface.statistics["rx_packets"], 5);
        assert_eq!(iface.ofport, Some(3));
        assert_eq!(iface.problem(), None);
        assert!(inv.has_interface("foreign"));
        let foreign = &inv.interfaces[1];
        assert_eq!(foreign.mtu, Some(1500));
        assert!(foreign.problem().unwrap().contains("could not open"));
    }

    #[test]
    fn malformed_results_are_errors() {
        assert!(decode(&[json!({"rows": []})]).is_err());
        let bad = vec![
            json!({"rows": []}),
            json!({"rows": []}),
            json!({"rows": [{"_uuid": ["uuid", "i"], "name": 3}]}),
        ];
        assert!(decode(&bad).is_err());
    }
}
