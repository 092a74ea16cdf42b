//! What the plugin keeps in the `external_ids` of its OVSDB rows, and the typed records those
//! maps hold: the one place that knows the keys, so that a reader finds where a row's ids are
//! written and read in one file.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::options::NetworkConfig;
use crate::ovsdb::{ops, value};
use crate::types::PortMapping;

/// The Open vSwitch database name.
pub const DB: &str = "Open_vSwitch";

/// The value of [`keys::OWNER`] on every OVSDB row this plugin creates.
pub const OWNER: &str = "geneve-ovs";

/// Keys of the `external_ids` this plugin writes on its OVSDB rows.
///
/// They say who owns a row and what it is for, so that the plugin (and an operator reading
/// `ovs-vsctl list`) can tell its rows from everybody else's and never touches the others.
pub mod keys {
    /// Always [`super::OWNER`]: the plugin only modifies or deletes rows carrying it.
    pub const OWNER: &str = "geneve-ovs.owner";
    /// What the row is: one of the `ROLE_*` values.
    pub const ROLE: &str = "geneve-ovs.role";
    /// The podman network name.
    pub const NETWORK: &str = "geneve-ovs.network";
    /// The podman network id (random per host).
    pub const NETWORK_ID: &str = "geneve-ovs.network-id";
    /// The VNI of the network (on bridges), so that a VNI collision can name the other network.
    pub const VNI: &str = "geneve-ovs.vni";
    /// The peer's underlay address (on tunnels).
    pub const PEER: &str = "geneve-ovs.peer";
    /// The podman container id (on container ports).
    pub const CONTAINER_ID: &str = "geneve-ovs.container-id";
    /// The container's interface name inside its netns (on container ports).
    pub const INTERFACE: &str = "geneve-ovs.interface";
    /// The netns path the container port was set up for (on container ports), for `gc`.
    pub const NETNS: &str = "geneve-ovs.netns";
    /// The podman container name (on container ports), for `status`.
    pub const CONTAINER_NAME: &str = "geneve-ovs.container-name";
    /// The MAC address of the container's interface (on container ports), for `status`.
    pub const MAC: &str = "geneve-ovs.mac";
    /// The UDP port of a tunnel (on tunnels), for the underlay filter.
    pub const DST_PORT: &str = "geneve-ovs.dst-port";
    /// The OVS datapath of a network (on bridges).
    pub const DATAPATH: &str = "geneve-ovs.datapath";
    /// `true` when the network is `--internal` (on bridges).
    pub const INTERNAL: &str = "geneve-ovs.internal";
    /// The network's subnets, comma-separated (on bridges), for NAT.
    pub const SUBNETS: &str = "geneve-ovs.subnets";
    /// The container's addresses, comma-separated (on container ports), for port mappings.
    pub const ADDRESSES: &str = "geneve-ovs.addresses";
    /// The container's port mappings as compact JSON (on container ports).
    pub const PORT_MAPPINGS: &str = "geneve-ovs.port-mappings";
    /// `false` when the network's container ports are plain switch ports (on bridges), so that
    /// `gc` restores the same flows `setup` installed.
    pub const PORT_SECURITY: &str = "geneve-ovs.port-security";

    pub const ROLE_BRIDGE: &str = "bridge";
    pub const ROLE_TUNNEL: &str = "tunnel";
    pub const ROLE_CONTAINER: &str = "container";
    pub const ROLE_GATEWAY: &str = "gateway";
}

/// Whether an `external_ids` map marks a row as the plugin's.
pub fn is_owned(external_ids: &BTreeMap<String, String>) -> bool {
    external_ids.get(keys::OWNER).map(String::as_str) == Some(OWNER)
}

pub fn owned_value<'a>(external_ids: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    if is_owned(external_ids) {
        external_ids.get(key).map(String::as_str)
    } else {
        None
    }
}

/// The `where` condition that matches the rows the plugin owns.
pub fn owned_condition() -> Value {
    ops::cond(
        "external_ids",
        "includes",
        value::map([(keys::OWNER, OWNER)]),
    )
}

/// The `external_ids` of the network's bridge.
pub fn bridge_external_ids(cfg: &NetworkConfig) -> BTreeMap<String, String> {
    let mut ids = common_ids(cfg, keys::ROLE_BRIDGE);
    ids.insert(keys::VNI.to_string(), cfg.vni.to_string());
    ids.insert(keys::DATAPATH.to_string(), cfg.datapath.to_string());
    ids.insert(keys::INTERNAL.to_string(), cfg.internal.to_string());
    let subnets: Vec<String> = cfg.subnets.iter().map(IpNet::to_string).collect();
    ids.insert(keys::SUBNETS.to_string(), subnets.join(","));
    ids.insert(
        keys::PORT_SECURITY.to_string(),
        cfg.port_security.to_string(),
    );
    ids
}

/// The `external_ids` every row of the network carries: owner, role, network name and id.
pub fn common_ids(cfg: &NetworkConfig, role: &str) -> BTreeMap<String, String> {
    [
        (keys::OWNER, OWNER),
        (keys::ROLE, role),
        (keys::NETWORK, cfg.name.as_str()),
        (keys::NETWORK_ID, cfg.id.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A container's port on the network's bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    /// The host end of the container's veth; also the OVS port name.
    pub name: String,
    pub container_id: String,
    /// The podman container name, shown by `status`.
    pub container_name: String,
    /// The interface name inside the container.
    pub interface: String,
    /// The MAC address of that interface, shown by `status`.
    pub mac: String,
    /// The netns path `setup` was given.
    pub netns: String,
    /// The container's addresses on the network.
    pub addresses: Vec<IpAddr>,
    /// The container's `-p` mappings, kept with the port so that the firewall rules of every
    /// container can be rebuilt from the database alone.
    pub port_mappings: Vec<PortMapping>,
    /// podman's aliases of the container on this network (`--network-alias`), for the names
    /// a control plane with DNS serves.
    pub aliases: Vec<String>,
}

impl ContainerPort {
    pub fn external_ids(&self, cfg: &NetworkConfig) -> BTreeMap<String, String> {
        let mut ids = common_ids(cfg, keys::ROLE_CONTAINER);
        ids.insert(keys::CONTAINER_ID.to_string(), self.container_id.clone());
        ids.insert(keys::INTERFACE.to_string(), self.interface.clone());
        ids.insert(keys::NETNS.to_string(), self.netns.clone());
        ids.insert(
            keys::CONTAINER_NAME.to_string(),
            self.container_name.clone(),
        );
        ids.insert(keys::MAC.to_string(), self.mac.clone());
        if !self.addresses.is_empty() {
            let addresses: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
            ids.insert(keys::ADDRESSES.to_string(), addresses.join(","));
        }
        if !self.port_mappings.is_empty() {
            // Serialising plain structs to a string cannot fail; an empty value would only
            // lose the mappings' firewall rules, never break the port.
            let json = serde_json::to_string(&self.port_mappings).unwrap_or_default();
            ids.insert(keys::PORT_MAPPINGS.to_string(), json);
        }
        ids
    }
}

/// The `external_ids` of the network's tunnel to `peer`.
pub fn tunnel_external_ids(cfg: &NetworkConfig, peer: IpAddr) -> BTreeMap<String, String> {
    let mut ids = common_ids(cfg, keys::ROLE_TUNNEL);
    ids.insert(keys::PEER.to_string(), peer.to_string());
    ids.insert(keys::DST_PORT.to_string(), cfg.dst_port.to_string());
    ids
}

/// The `external_ids` of the network's gateway port.
pub fn gateway_external_ids(cfg: &NetworkConfig) -> BTreeMap<String, String> {
    common_ids(cfg, keys::ROLE_GATEWAY)
}

/// The `where` condition that matches the rows of `cfg`'s tunnels (ports and interfaces carry
/// the same `external_ids`).
pub fn tunnels_condition(cfg: &NetworkConfig) -> Value {
    ops::cond(
        "external_ids",
        "includes",
        value::map([
            (keys::NETWORK_ID, cfg.id.as_str()),
            (keys::ROLE, keys::ROLE_TUNNEL),
        ]),
    )
}

/// The network an owned row belongs to.
pub fn network_of(external_ids: &BTreeMap<String, String>) -> Option<&str> {
    owned_value(external_ids, keys::NETWORK)
}

/// What an owned row is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Bridge,
    Tunnel,
    Container,
    Gateway,
}

impl Role {
    fn key(self) -> &'static str {
        match self {
            Role::Bridge => keys::ROLE_BRIDGE,
            Role::Tunnel => keys::ROLE_TUNNEL,
            Role::Container => keys::ROLE_CONTAINER,
            Role::Gateway => keys::ROLE_GATEWAY,
        }
    }
}

/// The role value of a row's `external_ids`, as written.
pub fn role(external_ids: &BTreeMap<String, String>) -> Option<&str> {
    external_ids.get(keys::ROLE).map(String::as_str)
}

/// Whether a row's `external_ids` give it `role`.
pub fn has_role(external_ids: &BTreeMap<String, String>, role: Role) -> bool {
    self::role(external_ids) == Some(role.key())
}

fn get(external_ids: &BTreeMap<String, String>, key: &str) -> Option<String> {
    external_ids.get(key).cloned()
}

/// A comma-separated list of addresses; an entry that does not parse is left out (rows are
/// only written by the plugin: a bad entry means a hand edit, and the rest still counts).
fn addresses(external_ids: &BTreeMap<String, String>) -> Vec<IpAddr> {
    external_ids
        .get(keys::ADDRESSES)
        .map(|s| s.split(',').filter_map(|a| a.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// What the plugin's bridge row says about its network, as read back. Rows of older versions
/// lack some keys: each field says what its absence means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRecord {
    pub network: Option<String>,
    pub network_id: Option<String>,
    /// `None` when missing or unreadable.
    pub vni: Option<u32>,
    /// The OVS datapath the network was created on (`netdev`, `system`).
    pub datapath: Option<String>,
    /// Bridges made before networks could be non-internal carry no flag: they are internal.
    pub internal: bool,
    pub subnets: Vec<IpNet>,
    /// Bridges of versions without port security carry no flag: they get the default, on.
    pub port_security: bool,
}

impl BridgeRecord {
    /// The record of `cfg`'s bridge, as `create` writes it.
    pub fn of_network(cfg: &NetworkConfig) -> BridgeRecord {
        BridgeRecord {
            network: Some(cfg.name.clone()),
            network_id: Some(cfg.id.clone()),
            vni: Some(cfg.vni),
            datapath: Some(cfg.datapath.to_string()),
            internal: cfg.internal,
            subnets: cfg.subnets.clone(),
            port_security: cfg.port_security,
        }
    }

    /// Reads an owned bridge's `external_ids`; `None` for a bridge the plugin does not own.
    pub fn read(external_ids: &BTreeMap<String, String>) -> Option<BridgeRecord> {
        if !is_owned(external_ids) {
            return None;
        }
        Some(BridgeRecord {
            network: get(external_ids, keys::NETWORK),
            network_id: get(external_ids, keys::NETWORK_ID),
            vni: external_ids.get(keys::VNI).and_then(|v| v.parse().ok()),
            datapath: get(external_ids, keys::DATAPATH),
            internal: external_ids.get(keys::INTERNAL).map(String::as_str) != Some("false"),
            subnets: external_ids
                .get(keys::SUBNETS)
                .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
                .unwrap_or_default(),
            port_security: external_ids.get(keys::PORT_SECURITY).map(String::as_str)
                != Some("false"),
        })
    }

    /// Whether the network runs on the kernel datapath (its tunnels cross the host's netfilter).
    pub fn on_kernel_datapath(&self) -> bool {
        self.datapath.as_deref() == Some("system")
    }
}

/// A tunnel row, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRecord {
    pub network: Option<String>,
    pub peer: Option<IpAddr>,
    pub dst_port: Option<u16>,
}

impl TunnelRecord {
    /// Reads an owned tunnel's `external_ids`; `None` for any other row.
    pub fn read(external_ids: &BTreeMap<String, String>) -> Option<TunnelRecord> {
        if !is_owned(external_ids) || !has_role(external_ids, Role::Tunnel) {
            return None;
        }
        Some(TunnelRecord {
            network: get(external_ids, keys::NETWORK),
            peer: external_ids.get(keys::PEER).and_then(|p| p.parse().ok()),
            dst_port: external_ids
                .get(keys::DST_PORT)
                .and_then(|p| p.parse().ok()),
        })
    }
}

/// A container port row, as read back: every field of [`ContainerPort`] (and the network), each
/// `None` when the row lacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPortRecord {
    pub network: Option<String>,
    pub network_id: Option<String>,
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    pub interface: Option<String>,
    pub mac: Option<String>,
    pub netns: Option<String>,
    pub addresses: Vec<IpAddr>,
    /// `None` when the container publishes nothing; the error when the JSON is unreadable.
    pub port_mappings: Option<Result<Vec<PortMapping>, String>>,
}

impl ContainerPortRecord {
    /// Reads an owned container port's `external_ids`; `None` for any other row.
    pub fn read(external_ids: &BTreeMap<String, String>) -> Option<ContainerPortRecord> {
        if !is_owned(external_ids) || !has_role(external_ids, Role::Container) {
            return None;
        }
        Some(ContainerPortRecord {
            network: get(external_ids, keys::NETWORK),
            network_id: get(external_ids, keys::NETWORK_ID),
            container_id: get(external_ids, keys::CONTAINER_ID),
            container_name: get(external_ids, keys::CONTAINER_NAME),
            interface: get(external_ids, keys::INTERFACE),
            mac: get(external_ids, keys::MAC),
            netns: get(external_ids, keys::NETNS),
            addresses: addresses(external_ids),
            port_mappings: external_ids
                .get(keys::PORT_MAPPINGS)
                .map(|json| serde_json::from_str(json).map_err(|e| e.to_string())),
        })
    }
}

/// A gateway port row, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRecord {
    pub network: Option<String>,
}

impl GatewayRecord {
    /// Reads an owned gateway port's `external_ids`; `None` for any other row.
    pub fn read(external_ids: &BTreeMap<String, String>) -> Option<GatewayRecord> {
        if !is_owned(external_ids) || !has_role(external_ids, Role::Gateway) {
            return None;
        }
        Some(GatewayRecord {
            network: get(external_ids, keys::NETWORK),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::sample_config;

    fn cfg() -> NetworkConfig {
        NetworkConfig {
            peers: vec!["10.99.0.2".parse().unwrap()],
            subnets: vec![
                "192.168.120.0/24".parse().unwrap(),
                "fd12::/64".parse().unwrap(),
            ],
            internal: false,
            port_security: false,
            ..sample_config()
        }
    }

    #[test]
    fn a_bridge_record_round_trips() {
        let cfg = cfg();
        let written = BridgeRecord::of_network(&cfg);
        let ids = bridge_external_ids(&cfg);
        assert!(is_owned(&ids) && has_role(&ids, Role::Bridge));
        assert_eq!(BridgeRecord::read(&ids), Some(written));
        let record = BridgeRecord::read(&ids).unwrap();
        assert!(!record.internal && !record.port_security);
        assert_eq!(record.vni, Some(cfg.vni));
    }

    #[test]
    fn an_old_bridge_without_flags_reads_as_internal_and_secure() {
        let mut ids = bridge_external_ids(&cfg());
        ids.remove(keys::INTERNAL);
        ids.remove(keys::PORT_SECURITY);
        ids.insert(keys::VNI.into(), "nope".into());
        let record = BridgeRecord::read(&ids).unwrap();
        assert!(record.internal && record.port_security);
        assert_eq!(record.vni, None);
        ids.remove(keys::OWNER);
        assert_eq!(
            BridgeRecord::read(&ids),
            None,
            "a foreign bridge has no record"
        );
    }

    #[test]
    fn a_tunnel_record_round_trips() {
        let cfg = cfg();
        let peer: IpAddr = "fd99::2".parse().unwrap();
        let ids = tunnel_external_ids(&cfg, peer);
        let record = TunnelRecord::read(&ids).unwrap();
        assert_eq!(record.peer, Some(peer));
        assert_eq!(record.dst_port, Some(cfg.dst_port));
        assert_eq!(record.network.as_deref(), Some(cfg.name.as_str()));
        assert_eq!(ContainerPortRecord::read(&ids), None);
        assert_eq!(GatewayRecord::read(&ids), None);
    }

    #[test]
    fn a_container_port_record_round_trips() {
        let cfg = cfg();
        let port = ContainerPort {
            name: "gv0123456789abc".into(),
            container_id: "c0ffee".into(),
            container_name: "web".into(),
            interface: "eth0".into(),
            mac: "0a:58:c0:a8:78:05".into(),
            netns: "/run/netns/x".into(),
            addresses: vec!["192.168.120.5".parse().unwrap(), "fd12::5".parse().unwrap()],
            port_mappings: serde_json::from_str(r#"[{"container_port":80,"host_port":8080}]"#)
                .unwrap(),
            aliases: vec![],
        };
        let record = ContainerPortRecord::read(&port.external_ids(&cfg)).unwrap();
        assert_eq!(
            record,
            ContainerPortRecord {
                network: Some(cfg.name.clone()),
                network_id: Some(cfg.id.clone()),
                container_id: Some(port.container_id.clone()),
                container_name: Some(port.container_name.clone()),
                interface: Some(port.interface.clone()),
                mac: Some(port.mac.clone()),
                netns: Some(port.netns.clone()),
                addresses: port.addresses.clone(),
                port_mappings: Some(Ok(port.port_mappings.clone())),
            }
        );
        // Nothing published, no addresses: the keys are left out and read back as empty.
        let bare = ContainerPort {
            addresses: Vec::new(),
            port_mappings: Vec::new(),
            ..port
        };
        let ids = bare.external_ids(&cfg);
        assert!(!ids.contains_key(keys::ADDRESSES) && !ids.contains_key(keys::PORT_MAPPINGS));
        let record = ContainerPortRecord::read(&ids).unwrap();
        assert!(record.addresses.is_empty() && record.port_mappings.is_none());
    }

    #[test]
    fn unreadable_values_of_a_container_port_are_kept_apart() {
        let mut ids = common_ids(&cfg(), keys::ROLE_CONTAINER);
        ids.insert(
            keys::ADDRESSES.into(),
            "192.168.120.5,bogus, fd12::5".into(),
        );
        ids.insert(keys::PORT_MAPPINGS.into(), "{not json".into());
        let record = ContainerPortRecord::read(&ids).unwrap();
        assert_eq!(
            record.addresses,
            vec![
                "192.168.120.5".parse::<IpAddr>().unwrap(),
                "fd12::5".parse().unwrap()
            ]
        );
        assert!(matches!(record.port_mappings, Some(Err(_))));
    }

    #[test]
    fn a_gateway_record_round_trips() {
        let cfg = cfg();
        let ids = common_ids(&cfg, keys::ROLE_GATEWAY);
        assert_eq!(
            GatewayRecord::read(&ids),
            Some(GatewayRecord {
                network: Some(cfg.name.clone())
            })
        );
        assert_eq!(TunnelRecord::read(&ids), None);
    }
}
