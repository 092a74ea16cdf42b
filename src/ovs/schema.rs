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
