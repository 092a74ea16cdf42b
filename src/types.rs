//! The netavark plugin protocol: what podman sends on stdin and what we print on stdout.
//!
//! These are our own serde types, written from the documented protocol (netavark plugin API
//! 1.0.0, podman >= 4.5). Podman sends `null` for most optional fields, so every optional field
//! is an `Option`; fields we do not know are kept in `extra` maps and written back unchanged,
//! because podman saves whatever `create` returns as the network's configuration.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The plugin API version we speak; netavark refuses plugins that report another major.
pub const API_VERSION: &str = "1.0.0";

/// A podman network as saved in `/etc/containers/networks/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<Vec<Subnet>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    #[serde(default)]
    pub ipv6_enabled: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub dns_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_dns_servers: Option<Vec<IpAddr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam_options: Option<BTreeMap<String, String>>,
    /// Fields added by newer podman versions: passed back untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Network {
    /// The subnets of the network, empty when podman sent none or `null`.
    pub fn subnets(&self) -> &[Subnet] {
        self.subnets.as_deref().unwrap_or_default()
    }

    /// The static routes of the network, empty when podman sent none or `null`.
    pub fn routes(&self) -> &[Route] {
        self.routes.as_deref().unwrap_or_default()
    }

    /// The `--opt k=v` options; an absent map reads as empty.
    pub fn options(&self) -> BTreeMap<String, String> {
        self.options.clone().unwrap_or_default()
    }
}

/// One subnet of a network (`--subnet`, `--gateway`, `--ip-range`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_range: Option<LeaseRange>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The part of a subnet podman's IPAM allocates from on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ip: Option<IpAddr>,
}

/// A static route of a network (`--route`), installed in every container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub destination: IpNet,
    pub gateway: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// What `setup` and `teardown` receive on stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkPluginExec {
    pub container_id: String,
    #[serde(default)]
    pub container_name: String,
    #[serde(default)]
    pub port_mappings: Option<Vec<PortMapping>>,
    pub network: Network,
    pub network_options: PerNetworkOptions,
}

/// One `-p` mapping of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub container_port: u16,
    #[serde(default)]
    pub host_ip: Option<String>,
    pub host_port: u16,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub range: Option<u16>,
}

/// The container's options for this network (`--network net1:ip=...,mac=...`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PerNetworkOptions {
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
    pub interface_name: String,
    #[serde(default)]
    pub static_ips: Option<Vec<IpAddr>>,
    #[serde(default)]
    pub static_mac: Option<String>,
    #[serde(default)]
    pub options: Option<HashMap<String, String>>,
}

/// What `setup` prints: the container's interfaces as configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusBlock {
    pub dns_search_domains: Vec<String>,
    pub dns_server_ips: Vec<IpAddr>,
    pub interfaces: BTreeMap<String, NetInterface>,
}

/// One interface of the [`StatusBlock`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetInterface {
    pub mac_address: String,
    pub subnets: Vec<NetAddress>,
}

/// An address of an interface, with the gateway podman should report for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetAddress {
    pub ipnet: IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// What `info` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginInfo {
    pub version: String,
    pub api_version: String,
}

/// The only error shape podman accepts: `{"error": "..."}` with no other key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginError {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `create` input captured from podman 5.4.2.
    const CREATE_IN: &str = include_str!("../tests/fixtures/podman-create.json");

    /// `setup` input captured from podman 5.4.2 (nulls included).
    const SETUP_IN: &str = include_str!("../tests/fixtures/podman-setup.json");

    #[test]
    fn create_input_round_trips() {
        let net: Network = serde_json::from_str(CREATE_IN).unwrap();
        assert_eq!(net.name, "gnet");
        assert_eq!(net.subnets().len(), 1);
        let back = serde_json::to_value(&net).unwrap();
        let orig: Value = serde_json::from_str(CREATE_IN).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn setup_input_with_nulls_parses() {
        let exec: NetworkPluginExec = serde_json::from_str(SETUP_IN).unwrap();
        assert!(exec.port_mappings.is_none());
        assert_eq!(exec.network_options.interface_name, "eth0");
        assert_eq!(
            exec.network_options.static_ips.unwrap(),
            vec!["192.168.121.1".parse::<IpAddr>().unwrap()]
        );
        assert!(exec.network.routes().is_empty());
        assert_eq!(exec.network.subnets()[0].gateway, None);
    }

    #[test]
    fn unknown_fields_are_kept() {
        let mut doc: Value = serde_json::from_str(CREATE_IN).unwrap();
        doc["future_field"] = serde_json::json!({"a": [1, 2]});
        doc["subnets"][0]["future_subnet_field"] = Value::Bool(true);
        let net: Network = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(serde_json::to_value(&net).unwrap(), doc);
    }

    #[test]
    fn status_block_shape() {
        let mut interfaces = BTreeMap::new();
        interfaces.insert(
            "eth0".to_string(),
            NetInterface {
                mac_address: "aa:bb:cc:dd:aa:00".into(),
                subnets: vec![NetAddress {
                    ipnet: "192.168.121.1/24".parse().unwrap(),
                    gateway: None,
                }],
            },
        );
        let sb = StatusBlock {
            interfaces,
            ..Default::default()
        };
        let v = serde_json::to_value(&sb).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"dns_search_domains":[],"dns_server_ips":[],
              "interfaces":{"eth0":{"mac_address":"aa:bb:cc:dd:aa:00",
                "subnets":[{"ipnet":"192.168.121.1/24"}]}}})
        );
    }
}
