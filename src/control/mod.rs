//! The control plane: what differs between ways of connecting one network's hosts, behind one
//! interface. Everything else (the options, the container's link, duplicate-address detection,
//! the gateway's addresses, the firewall, port security) is shared and stays outside.
//!
//! What a control plane does:
//! * builds the network's switch on this host (`create`) and removes it (`gc`);
//! * attaches and detaches a container port (`setup`, `teardown`);
//! * reports the health of the network's links to other hosts (`status`).
//!
//! The first one is the static mesh ([`mesh::Mesh`]): one GENEVE tunnel per listed peer. A
//! database-driven plane (OVN: a logical switch, ports bound by ovn-controller, tunnels to
//! chassis) implements the same interface; the functions below are where a network's options
//! choose it.

pub mod mesh;

use anyhow::Result;
use serde::Serialize;

use crate::netconf::SavedNetwork;
use crate::options::NetworkConfig;
use crate::ovs::snapshot::{BridgeRow, Snapshot};
use crate::ovs::{Applied, ContainerPort, Ovs};
use crate::types::Network;

/// How one network's hosts are connected.
pub trait ControlPlane {
    /// Makes the database hold the network's switch as `cfg` says (a reconcile: run again it
    /// converges, and drops the gateway port of a network left without containers).
    fn create_switch(&self, ovs: &mut Ovs, cfg: &NetworkConfig) -> Result<()>;

    /// Adds a container's port to the network's switch.
    fn attach_port(
        &self,
        ovs: &mut Ovs,
        cfg: &NetworkConfig,
        port: &ContainerPort,
    ) -> Result<Applied>;

    /// Removes a container's port; whether there was one.
    fn detach_port(&self, ovs: &mut Ovs, port: &str) -> Result<bool>;

    /// The health of the network's links to other hosts: what `bridge` (absent: the network
    /// has no switch on this host) holds, and what the saved network expects.
    fn health(
        &self,
        inventory: &Snapshot,
        bridge: Option<&BridgeRow>,
        expected_peers: Vec<String>,
        running: bool,
    ) -> Vec<TunnelStatus>;

    /// Removes the switch of a network that is gone (`gc`), provided it still holds `ports`.
    fn remove_switch(&self, ovs: &mut Ovs, uuid: &str, name: &str, ports: &[String]) -> Result<()>;
}

/// The health of one link to another host, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelStatus {
    pub peer: String,
    /// The OVS port, `None` when the tunnel is missing.
    pub port: Option<String>,
    /// `up`, `down`, or `unknown` (BFD disabled and nothing wrong).
    pub state: &'static str,
    /// BFD's own state: `up`, `down`, `init`, `admin_down`, `pending` (no state yet),
    /// `disabled`, `unknown` (ovs-vswitchd not running) or `none` (no tunnel).
    pub bfd: String,
    /// BFD's diagnostic, when it has one to give.
    pub bfd_diagnostic: Option<String>,
    /// What OVS reports wrong with the tunnel, or why it is missing.
    pub error: Option<String>,
    pub rx_packets: Option<u64>,
    pub tx_packets: Option<u64>,
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
    /// Whether the network encrypts this tunnel (`encrypt=ipsec`).
    pub encrypted: bool,
    /// For an encrypted tunnel, the kernel's IPsec state towards the peer: `established`,
    /// `one-way`, `no-sa` ([`crate::ipsec::PeerSecurity`]) or `unknown` (not read).
    pub ipsec: Option<String>,
}

static MESH: mesh::Mesh = mesh::Mesh;

/// The control plane of a podman network, from its options. Every network is a static mesh
/// today (its `peers` option lists the other hosts).
pub fn for_network(_network: &Network) -> &'static dyn ControlPlane {
    &MESH
}

/// The control plane of a network podman saved, from its options.
pub fn for_saved(_saved: &SavedNetwork) -> &'static dyn ControlPlane {
    &MESH
}

/// The control plane of one of the plugin's bridges, from its `external_ids`: every bridge
/// the plugin writes today is a mesh's.
pub fn for_bridge(_bridge: &BridgeRow) -> &'static dyn ControlPlane {
    &MESH
}
