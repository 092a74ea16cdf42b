//! One read of this host's Open vSwitch database: every bridge, the ports the plugin owns, and
//! their interfaces, decoded into plain rows that [`super::plan`], the firewall and the operator
//! commands reason about without touching OVSDB JSON.
//!
//! A [`Scope`] says how much is read. `create` and `setup` plan against the cheap
//! [`Scope::Config`] read on every container start; `status` and `gc` take [`Scope::Runtime`],
//! which adds every interface with what ovs-vswitchd reports about it (BFD, counters, errors),
//! because for humans and clean-up completeness matters more than a few hundred bytes. Both are
//! one read-only transaction and one decoding: a column a scope does not select decodes as its
//! empty value.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::schema::DB;
use super::schema::{self, is_owned, owned_condition, BridgeRecord, ContainerPortRecord, Role};
use super::Ovs;
use crate::ovsdb::{ops, value};

/// How much of the database a [`Snapshot`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// What `create` and `setup` plan against: every bridge, the owned ports and the owned
    /// interfaces with their configuration (BFD, the pinned `ofport_request`).
    Config,
    /// What `status` and `gc` report: [`Scope::Config`] plus every interface, owned or not,
    /// with its run-time columns (`bfd_status`, `statistics`, `error`, `ofport`, `mtu`...).
    Runtime,
}

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

/// A row of the Port table that the plugin owns (a tunnel, a container port, or a gateway).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRow {
    pub uuid: String,
    pub name: String,
    pub external_ids: BTreeMap<String, String>,
    /// `protected` (read in [`Scope::Config`]): tunnels do not forward to each other.
    pub protected: bool,
    /// The port's Interface rows (read in [`Scope::Runtime`]; the plugin's ports have one).
    pub interfaces: Vec<String>,
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

    /// The container port record, if this is one.
    pub fn container(&self) -> Option<ContainerPortRecord> {
        ContainerPortRecord::read(&self.external_ids)
    }
}

/// A row of the Interface table. [`Scope::Config`] reads the owned ones' configuration;
/// [`Scope::Runtime`] reads every one with what ovs-vswitchd reports about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceRow {
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
    /// `ofport_request`: the gateway's is pinned ([`crate::flows::GATEWAY_OFPORT`]).
    pub ofport_request: Option<i64>,
    pub mtu: Option<i64>,
    pub external_ids: BTreeMap<String, String>,
}

impl InterfaceRow {
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

/// What one read of the database returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every bridge, owned or not (see [`Snapshot::owned_bridges`]).
    pub bridges: Vec<BridgeRow>,
    /// The ports the plugin owns (the read selects only those).
    pub ports: Vec<PortRow>,
    /// The interfaces the scope selects: the owned ones ([`Scope::Config`]) or every one
    /// ([`Scope::Runtime`]).
    pub interfaces: Vec<InterfaceRow>,
    /// `Open_vSwitch.other_config`: host-wide settings, among them OVS IPsec's certificate
    /// files ([`crate::ipsec::PKI_OTHER_CONFIG_KEYS`]).
    pub ovs_other_config: BTreeMap<String, String>,
}

impl Snapshot {
    /// Every bridge of the database, owned or not.
    pub fn all_bridges(&self) -> impl Iterator<Item = &BridgeRow> {
        self.bridges.iter()
    }

    /// The bridges the plugin created.
    pub fn owned_bridges(&self) -> impl Iterator<Item = &BridgeRow> {
        self.bridges.iter().filter(|b| b.is_owned())
    }

    /// The bridge of this name, owned or not.
    pub fn bridge(&self, name: &str) -> Option<&BridgeRow> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// The owned port of this name.
    pub fn owned_port(&self, name: &str) -> Option<&PortRow> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// The owned ports that are attached to `bridge`.
    pub fn ports_of<'a>(&'a self, bridge: &'a BridgeRow) -> impl Iterator<Item = &'a PortRow> + 'a {
        self.ports
            .iter()
            .filter(move |p| bridge.ports.contains(&p.uuid))
    }

    /// The bridge an owned port is attached to, owned or not.
    pub fn bridge_of(&self, port: &PortRow) -> Option<&BridgeRow> {
        self.bridges.iter().find(|b| b.ports.contains(&port.uuid))
    }

    /// The interface row of this name, among those the scope read.
    pub fn interface(&self, name: &str) -> Option<&InterfaceRow> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// Whether an interface row the scope read has this name: in [`Scope::Runtime`], any row,
    /// owned or not.
    pub fn has_interface(&self, name: &str) -> bool {
        self.interface(name).is_some()
    }

    /// The interface of a port (the plugin's ports have exactly one; [`Scope::Runtime`]).
    pub fn interface_of(&self, port: &PortRow) -> Option<&InterfaceRow> {
        port.interfaces
            .iter()
            .find_map(|u| self.interfaces.iter().find(|i| &i.uuid == u))
    }

    /// The namespace paths the container ports were set up for.
    pub fn netns_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .ports
            .iter()
            .filter_map(PortRow::container)
            .filter_map(|record| record.netns)
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

impl Ovs {
    /// Reads the database in `scope`, in one read-only transaction.
    pub fn snapshot(&mut self, scope: Scope) -> Result<Snapshot> {
        let results = self.client.transact(DB, read_ops(scope))?;
        decode(&results)
    }
}

const BRIDGE_COLUMNS: &[&str] = &[
    "_uuid",
    "name",
    "external_ids",
    "datapath_type",
    "fail_mode",
    "ports",
];

const CONFIG_PORT_COLUMNS: &[&str] = &["_uuid", "name", "external_ids", "protected"];

const RUNTIME_PORT_COLUMNS: &[&str] = &["_uuid", "name", "external_ids", "interfaces"];

// `options` and `external_ids`: the tunnels' are reconciled (encryption and its key).
const CONFIG_INTERFACE_COLUMNS: &[&str] = &[
    "_uuid",
    "name",
    "bfd",
    "ofport_request",
    "options",
    "external_ids",
];

const RUNTIME_INTERFACE_COLUMNS: &[&str] = &[
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

/// The operations of the read transaction of `scope`, in the order [`decode`] expects.
pub fn read_ops(scope: Scope) -> Vec<Value> {
    let (port_columns, interfaces, interface_columns) = match scope {
        Scope::Config => (
            CONFIG_PORT_COLUMNS,
            vec![owned_condition()],
            CONFIG_INTERFACE_COLUMNS,
        ),
        Scope::Runtime => (RUNTIME_PORT_COLUMNS, vec![], RUNTIME_INTERFACE_COLUMNS),
    };
    vec![
        ops::select("Bridge", vec![], Some(BRIDGE_COLUMNS)),
        ops::select("Port", vec![owned_condition()], Some(port_columns)),
        ops::select("Interface", interfaces, Some(interface_columns)),
        ops::select("Open_vSwitch", vec![], Some(&["other_config"])),
    ]
}

/// Decodes the results of [`read_ops`], whatever its scope.
pub fn decode(results: &[Value]) -> Result<Snapshot> {
    let [bridges, ports, interfaces, open_vswitch] = results else {
        bail!(
            "expected 4 results from the OVSDB read, got {}",
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
        .filter(|p| p.as_ref().map_or(true, |p| is_owned(&p.external_ids)))
        .collect::<Result<Vec<_>>>()
        .context("cannot decode the Port table")?;
    let interfaces = value::rows(interfaces)?
        .iter()
        .map(decode_interface)
        .collect::<Result<Vec<_>>>()
        .context("cannot decode the Interface table")?;
    let ovs_other_config = match value::rows(open_vswitch)?.first() {
        Some(row) => selected(row, "other_config", value::string_map)
            .context("cannot decode the Open_vSwitch table")?,
        None => BTreeMap::new(),
    };
    Ok(Snapshot {
        bridges,
        ports,
        interfaces,
        ovs_other_config,
    })
}

/// `column` decoded by `decode`, or its empty value if the read did not select it.
fn selected<T: Default>(
    row: &Value,
    column: &str,
    decode: impl FnOnce(&Value) -> Result<T>,
) -> Result<T> {
    match row.get(column) {
        None => Ok(T::default()),
        Some(v) => decode(v).with_context(|| format!("column {column}")),
    }
}

fn uuid(row: &Value) -> Result<String> {
    Ok(value::uuid_str(value::column(row, "_uuid")?)?.to_string())
}

fn name(row: &Value) -> Result<String> {
    Ok(value::string(value::column(row, "name")?)?.to_string())
}

fn string(v: &Value) -> Result<String> {
    value::string(v).map(str::to_string)
}

fn uuids(v: &Value) -> Result<Vec<String>> {
    value::set_elements(v)?
        .iter()
        .map(|u| value::uuid_str(u).map(str::to_string))
        .collect()
}

/// An optional column (a set of at most one value).
fn optional<T>(decode: impl Fn(&Value) -> Result<T>) -> impl Fn(&Value) -> Result<Option<T>> {
    move |v| value::optional(v)?.map(|v| decode(&v)).transpose()
}

fn decode_bridge(row: &Value) -> Result<BridgeRow> {
    Ok(BridgeRow {
        uuid: uuid(row)?,
        name: name(row)?,
        external_ids: selected(row, "external_ids", value::string_map)?,
        datapath_type: selected(row, "datapath_type", string)?,
        fail_mode: selected(row, "fail_mode", optional(string))?,
        ports: selected(row, "ports", uuids)?,
    })
}

fn decode_port(row: &Value) -> Result<PortRow> {
    Ok(PortRow {
        uuid: uuid(row)?,
        name: name(row)?,
        external_ids: selected(row, "external_ids", value::string_map)?,
        protected: selected(row, "protected", |v| Ok(v.as_bool().unwrap_or(false)))?,
        interfaces: selected(row, "interfaces", uuids)?,
    })
}

fn decode_interface(row: &Value) -> Result<InterfaceRow> {
    Ok(InterfaceRow {
        uuid: uuid(row)?,
        name: name(row)?,
        kind: selected(row, "type", string)?,
        options: selected(row, "options", value::string_map)?,
        bfd: selected(row, "bfd", value::string_map)?,
        bfd_status: selected(row, "bfd_status", value::string_map)?,
        statistics: selected(row, "statistics", |v| {
            Ok(value::map_entries(v)?
                .into_iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_i64()?)))
                .collect())
        })?,
        error: selected(row, "error", optional(string))?,
        ofport: selected(row, "ofport", optional(value::integer))?,
        ofport_request: selected(row, "ofport_request", optional(value::integer))?,
        mtu: selected(row, "mtu", optional(value::integer))?,
        external_ids: selected(row, "external_ids", value::string_map)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_config_rows_with_one_element_sets() {
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
            json!({"rows": [{"other_config": ["map", [["certificate", "/etc/c.pem"]]]}]}),
        ];
        let observed = decode(&results).unwrap();
        assert_eq!(observed.ovs_other_config["certificate"], "/etc/c.pem");
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
    fn malformed_config_rows_are_errors_not_panics() {
        let results = vec![
            json!({"rows": [{"_uuid": "nope"}]}),
            json!({"rows": []}),
            json!({"rows": []}),
            json!({"rows": []}),
        ];
        assert!(decode(&results).is_err());
        assert!(decode(&[json!({})]).is_err());
    }

    #[test]
    fn decodes_runtime_rows() {
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
            json!({"rows": []}),
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
    fn malformed_runtime_results_are_errors() {
        assert!(decode(&[json!({"rows": []})]).is_err());
        let bad = vec![
            json!({"rows": []}),
            json!({"rows": []}),
            json!({"rows": [{"_uuid": ["uuid", "i"], "name": 3}]}),
            json!({"rows": []}),
        ];
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn both_scopes_read_every_bridge_and_only_runtime_every_interface() {
        for scope in [Scope::Config, Scope::Runtime] {
            let ops = read_ops(scope);
            assert_eq!(ops[0]["table"], "Bridge");
            assert_eq!(ops[0]["where"], json!([]), "{scope:?}");
            assert_eq!(ops[1]["where"], json!([owned_condition()]), "{scope:?}");
        }
        let config = read_ops(Scope::Config);
        assert_eq!(config[2]["where"], json!([owned_condition()]));
        assert!(!config[2]["columns"].to_string().contains("statistics"));
        let runtime = read_ops(Scope::Runtime);
        assert_eq!(runtime[2]["where"], json!([]));
        assert!(runtime[2]["columns"].to_string().contains("bfd_status"));
    }

    #[test]
    fn owned_bridges_leave_out_what_all_bridges_hold() {
        let results = vec![
            json!({"rows": [
                {"_uuid": ["uuid", "b1"], "name": "gnv5", "datapath_type": "netdev",
                 "external_ids": ["map", [["geneve-ovs.owner", "geneve-ovs"]]],
                 "ports": ["set", []]},
                {"_uuid": ["uuid", "b2"], "name": "br-ext", "datapath_type": "netdev",
                 "external_ids": ["map", []], "ports": ["set", []]}
            ]}),
            json!({"rows": []}),
            json!({"rows": []}),
            json!({"rows": []}),
        ];
        let snapshot = decode(&results).unwrap();
        let all: Vec<_> = snapshot.all_bridges().map(|b| b.name.as_str()).collect();
        let owned: Vec<_> = snapshot.owned_bridges().map(|b| b.name.as_str()).collect();
        assert_eq!(all, ["gnv5", "br-ext"]);
        assert_eq!(owned, ["gnv5"]);
        assert_eq!(snapshot.bridge("br-ext").map(|b| b.is_owned()), Some(false));
    }
}
