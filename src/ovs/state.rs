//! Reading what this host's Open vSwitch database holds: the bridges, and the ports the plugin
//! owns. One read-only transaction; the rows are decoded into plain structs that
//! [`super::plan`] reasons about without touching OVSDB JSON.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

use super::schema::{self, is_owned, owned_condition, BridgeRecord, Role};
use crate::ovsdb::{ops, value};

/// A row of the Bridge table (every bridge: the plugin must see bridges it does not own, to
/// refuse taking them over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRow {
    pub uuid: String,
    pub name: String,
    pub external_ids: BTreeMap<String, String>,
    pub datapath_type: String,
    /// `fail_mode`: the plugin's bridges are `secure` (see [`crate::flows`]).
    pub fail_mode: Option<String>,
    pub ports: Vec<String>,
}

impl BridgeRow {
    /// Whether the plugin created this bridge.
    pub fn is_owned(&self) -> bool {
        is_owned(&self.external_ids)
    }

    /// The geneve-ovs network the bridge belongs to, if the plugin owns it.
    pub fn network(&self) -> Option<&str> {
        schema::network_of(&self.external_ids)
    }

    /// What the bridge's `external_ids` say about its network, if the plugin owns it.
    pub fn record(&self) -> Option<BridgeRecord> {
        BridgeRecord::read(&self.external_ids)
    }
}

/// A row of the Port table that the plugin owns (a tunnel or a container port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRow {
    pub uuid: String,
    pub name: String,
    pub external_ids: BTreeMap<String, String>,
    pub protected: bool,
}

impl PortRow {
    /// What the port is for, as written: `tunnel`, `container` or `gateway`.
    pub fn role(&self) -> Option<&str> {
        schema::role(&self.external_ids)
    }

    /// Whether the port is for `role`.
    pub fn has_role(&self, role: Role) -> bool {
        schema::has_role(&self.external_ids, role)
    }
}

/// A row of the Interface table that the plugin owns, with what the plan compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceRow {
    pub uuid: String,
    pub name: String,
    pub bfd: BTreeMap<String, String>,
    /// `ofport_request`: the gateway's is pinned ([`crate::flows::GATEWAY_OFPORT`]).
    pub ofport_request: Option<i64>,
}

/// The part of the database the plugin plans against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub bridges: Vec<BridgeRow>,
    pub ports: Vec<PortRow>,
    pub interfaces: Vec<InterfaceRow>,
}

impl Observed {
    /// The bridge of this name, owned or not.
    pub fn bridge(&self, name: &str) -> Option<&BridgeRow> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// The owned ports that are attached to `bridge`.
    pub fn ports_of<'a>(&'a self, bridge: &'a BridgeRow) -> impl Iterator<Item = &'a PortRow> + 'a {
        self.ports
            .iter()
            .filter(move |p| bridge.ports.contains(&p.uuid))
    }

    /// The owned interface of this name.
    pub fn interface(&self, name: &str) -> Option<&InterfaceRow> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The bridge an owned port is attached to.
    pub fn bridge_of(&self, port: &PortRow) -> Option<&BridgeRow> {
        self.bridges.iter().find(|b| b.ports.contains(&port.uuid))
    }
}

/// The operations of the read transaction, in the order [`decode`] expects.
pub fn read_ops() -> Vec<Value> {
    vec![
        ops::select(
            "Bridge",
            vec![],
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
            Some(&["_uuid", "name", "external_ids", "protected"]),
        ),
        ops::select(
            "Interface",
            vec![owned_condition()],
            Some(&["_uuid", "name", "bfd", "ofport_request"]),
        ),
    ]
}

/// Decodes the results of [`read_ops`].
pub fn decode(results: &[Value]) -> Result<Observed> {
    let [bridges, ports, interfaces] = results else {
        anyhow::bail!(
            "expected 3 results from the OVSDB read, got {}",
            results.len()
        );
    };
    let bridges = value::rows(bridges)?
        .iter()
        .map(decode_bridge)
        .collect::<Result<Vec<_>>>()
        .context("cannot decode the Bridge table")?;
    let ports = value::rows(ports)?
        .iter()
        .map(decode_port)
        .collect::<Result<Vec<_>>>()
        .context("cannot decode the Port table")?;
    let interfaces = value::rows(interfaces)?
        .iter()
        .map(decode_interface)
        .collect::<Result<Vec<_>>>()
        .context("cannot decode the Interface table")?;
    Ok(Observed {
        bridges,
        ports,
        interfaces,
    })
}

pub(super) fn decode_bridge(row: &Value) -> Result<BridgeRow> {
    Ok(BridgeRow {
        uuid: value::uuid_str(value::column(row, "_uuid")?)?.to_string(),
        name: value::string(value::column(row, "name")?)?.to_string(),
        external_ids: value::string_map(value::column(row, "external_ids")?)?,
        datapath_type: value::string(value::column(row, "datapath_type")?)?.to_string(),
        // An optional column (a set of at most one string); absent from older fixtures.
        fail_mode: match row.get("fail_mode") {
            None => None,
            Some(column) => value::optional(column)?
                .map(|v| value::string(&v).map(str::to_string))
                .transpose()?,
        },
        ports: value::set_elements(value::column(row, "ports")?)?
            .iter()
            .map(|u| value::uuid_str(u).map(str::to_string))
            .collect::<Result<_>>()?,
    })
}

fn decode_port(row: &Value) -> Result<PortRow> {
    Ok(PortRow {
        uuid: value::uuid_str(value::column(row, "_uuid")?)?.to_string(),
        name: value::string(value::column(row, "name")?)?.to_string(),
        external_ids: value::string_map(value::column(row, "external_ids")?)?,
        protected: value::column(row, "protected")?.as_bool().unwrap_or(false),
    })
}

fn decode_interface(row: &Value) -> Result<InterfaceRow> {
    Ok(InterfaceRow {
        uuid: value::uuid_str(value::column(row, "_uuid")?)?.to_string(),
        name: value::string(value::column(row, "name")?)?.to_string(),
        bfd: value::string_map(value::column(row, "bfd")?)?,
        ofport_request: match row.get("ofport_request") {
            None => None,
            Some(column) => value::optional(column)?
                .map(|v| value::integer(&v))
                .transpose()?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_rows_with_one_element_sets() {
        let results = vec![
            json!({"rows": [
                {"_uuid": ["uuid", "b1"], "name": "gnv5", "datapath_type": "netdev",
                 "external_ids": ["map", [["geneve-ovs.owner", "geneve-ovs"], ["geneve-ovs.network", "n"]]],
                 "ports": ["uuid", "p1"]},
                {"_uuid": ["uuid", "b2"], "name": "other", "datapath_type": "",
                 "external_ids": ["map", []], "ports": ["set", [["uuid", "p2"], ["uuid", "p3"]]]}
            ]}),
            json!({"rows": [
                {"_uuid": ["uuid", "p1"], "name": "gt000005abcdef0", "protected": true,
                 "external_ids": ["map", [["geneve-ovs.owner", "geneve-ovs"], ["geneve-ovs.role", "tunnel"]]]}
            ]}),
            json!({"rows": [
                {"_uuid": ["uuid", "i1"], "name": "gt000005abcdef0",
                 "bfd": ["map", [["enable", "true"]]]}
            ]}),
        ];
        let observed = decode(&results).unwrap();
        let b = observed.bridge("gnv5").unwrap();
        assert!(b.is_owned());
        assert_eq!(b.network(), Some("n"));
        assert_eq!(b.ports, vec!["p1"]);
        assert!(!observed.bridge("other").unwrap().is_owned());
        assert_eq!(observed.bridge("other").unwrap().ports.len(), 2);
        let ports: Vec<_> = observed.ports_of(b).collect();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].role(), Some("tunnel"));
        assert!(ports[0].protected);
        assert_eq!(observed.bridge_of(ports[0]).unwrap().name, "gnv5");
        assert_eq!(
            observed.interface("gt000005abcdef0").unwrap().bfd["enable"],
            "true"
        );
    }

    #[test]
    fn malformed_rows_are_errors_not_panics() {
        let results = vec![
            json!({"rows": [{"_uuid": "nope"}]}),
            json!({"rows": []}),
            json!({"rows": []}),
        ];
        assert!(decode(&results).is_err());
        assert!(decode(&[json!({})]).is_err());
    }
}
