//! The static mesh: every host of a network has one GENEVE tunnel to each peer the network's
//! `peers` option lists, written by this host's own plugin (the OVS side is [`crate::ovs`]:
//! [`crate::ovs::plan::desired_tunnels`], the `network_guards` of a `setup`). Nothing is
//! coordinated between hosts: each builds its half of every tunnel.

use anyhow::Result;

use super::{ControlPlane, TunnelStatus};
use crate::options::NetworkConfig;
use crate::ovs::schema::{Role, TunnelRecord};
use crate::ovs::snapshot::{BridgeRow, InterfaceRow, PortRow, Snapshot};
use crate::ovs::{Applied, ContainerPort, Ovs};
use crate::types::Network;

/// The static mesh of tunnels.
pub struct Mesh;

impl ControlPlane for Mesh {
    fn create_switch(&self, ovs: &mut Ovs, cfg: &NetworkConfig) -> Result<()> {
        ovs.ensure_network(cfg)
    }

    fn attach_port(
        &self,
        ovs: &mut Ovs,
        cfg: &NetworkConfig,
        port: &ContainerPort,
    ) -> Result<Applied> {
        ovs.add_container_port(cfg, port)
    }

    fn detach_port(&self, ovs: &mut Ovs, _network: &Network, port: &str) -> Result<bool> {
        ovs.remove_container_port(port)
    }

    /// The tunnels of `bridge`, and a missing one for each peer the saved network lists that
    /// has none, sorted by peer.
    fn health(
        &self,
        inventory: &Snapshot,
        bridge: Option<&BridgeRow>,
        expected_peers: Vec<String>,
        running: bool,
    ) -> Vec<TunnelStatus> {
        let Some(bridge) = bridge else {
            return expected_peers.into_iter().map(missing_tunnel).collect();
        };
        let mut tunnels: Vec<TunnelStatus> = inventory
            .ports_of(bridge)
            .filter(|p| p.has_role(Role::Tunnel))
            .map(|p| tunnel_status(p, inventory.interface_of(p), running))
            .collect();
        for peer in expected_peers {
            if !tunnels.iter().any(|t| t.peer == peer) {
                tunnels.push(missing_tunnel(peer));
            }
        }
        tunnels.sort_by(|a, b| a.peer.cmp(&b.peer));
        tunnels
    }

    fn remove_switch(&self, ovs: &mut Ovs, uuid: &str, name: &str, ports: &[String]) -> Result<()> {
        ovs.remove_owned_bridge(uuid, name, ports)
    }
}

fn missing_tunnel(peer: String) -> TunnelStatus {
    TunnelStatus {
        peer,
        port: None,
        state: "down",
        bfd: "none".to_string(),
        bfd_diagnostic: None,
        error: Some(
            "no tunnel port in OVS: the next setup (or podman network create) on this \
             network adds it"
                .to_string(),
        ),
        rx_packets: None,
        tx_packets: None,
        rx_bytes: None,
        tx_bytes: None,
        encrypted: false,
        ipsec: None,
    }
}

fn counter(iface: Option<&InterfaceRow>, key: &str) -> Option<u64> {
    iface?
        .statistics
        .get(key)
        .and_then(|v| u64::try_from(*v).ok())
}

fn tunnel_status(port: &PortRow, iface: Option<&InterfaceRow>, running: bool) -> TunnelStatus {
    let record = TunnelRecord::read(&port.external_ids);
    let encrypted = record.as_ref().is_some_and(|t| t.encrypted);
    let peer = record
        .and_then(|t| t.peer)
        .map(|p| p.to_string())
        .or_else(|| iface.and_then(|i| i.options.get("remote_ip").cloned()))
        .unwrap_or_else(|| "?".to_string());
    let enabled = iface.is_some_and(InterfaceRow::bfd_enabled);
    let bfd = match iface {
        _ if !enabled => "disabled".to_string(),
        _ if !running => "unknown".to_string(),
        Some(i) => i
            .bfd_status
            .get("state")
            .cloned()
            .unwrap_or_else(|| "pending".to_string()),
        None => "unknown".to_string(),
    };
    let bfd_diagnostic = iface
        .and_then(|i| i.bfd_status.get("diagnostic"))
        .filter(|d| enabled && running && d.as_str() != "No Diagnostic")
        .cloned();
    let error = match iface {
        None => Some("the port has no interface row".to_string()),
        Some(i)
            if encrypted
                && !i.options.contains_key("psk")
                && !i.options.contains_key("remote_name") =>
        {
            Some(
                "the network encrypts, but the tunnel has no key in OVS (options:psk, or \
             options:remote_name with certificates): \
             podman network create again (or the next setup) puts it back"
                    .to_string(),
            )
        }
        Some(i) => i.problem(),
    };
    let state = if error.is_some() || !running {
        "down"
    } else if enabled {
        if bfd == "up" {
            "up"
        } else {
            "down"
        }
    } else {
        "unknown"
    };
    TunnelStatus {
        peer,
        port: Some(port.name.clone()),
        state,
        bfd,
        bfd_diagnostic,
        error,
        rx_packets: counter(iface, "rx_packets"),
        tx_packets: counter(iface, "tx_packets"),
        rx_bytes: counter(iface, "rx_bytes"),
        tx_bytes: counter(iface, "tx_bytes"),
        encrypted,
        ipsec: None,
    }
}
