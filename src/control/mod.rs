//! The control plane: what differs between ways of connecting one network's hosts, behind one
//! interface. Everything else (the options, the container's link, duplicate-address detection,
//! the gateway's addresses, the firewall, port security) is shared and stays outside.
//!
//! What a control plane does:
//! * builds the network's switch on this host (`create`) and removes it (`gc`);
//! * attaches and detaches a container port (`setup`, `teardown`);
//! * reports the health of the network's links to other hosts (`status`).
//!
//! The first one is the static mesh ([`mesh::Mesh`]): one GENEVE tunnel per listed peer. The
//! second is OVN ([`ovn::Ovn`]): a logical switch in OVN's northbound database, ports bound by
//! ovn-controller, which builds the tunnels to every other chassis. The functions below are
//! where a network's options (`ovn`) choose one.

pub mod mesh;
pub mod ovn;

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
    /// converges; OVN's also drops this host's end of the gateway port of a network left
    /// without containers here).
    fn create_switch(&self, ovs: &mut Ovs, cfg: &NetworkConfig) -> Result<()>;

    /// Adds a container's port to the network's switch.
    fn attach_port(
        &self,
        ovs: &mut Ovs,
        cfg: &NetworkConfig,
        port: &ContainerPort,
    ) -> Result<Applied>;

    /// Removes a container's port (`port`: the host end of its veth) from `network`; whether
    /// there was one. Takes podman's network rather than a resolved configuration: a
    /// teardown must work whatever else the saved options say.
    fn detach_port(&self, ovs: &mut Ovs, network: &Network, port: &str) -> Result<bool>;

    /// Whether a non-internal network's switch is reconciled again ([`Self::create_switch`])
    /// after a container left (`teardown`): in OVN mode, which drops this host's end of the
    /// gateway port with the last container here. The mesh keeps its gateway port while the
    /// network exists, so its `teardown` has nothing more to do.
    fn settles_after_detach(&self) -> bool {
        false
    }

    /// Whether the plugin writes the OpenFlow table of the network's bridge itself (its base
    /// flows and every container port's port security). Not where a controller owns the
    /// bridge's table (OVN's `br-int`): there port security is the controller's.
    fn programs_flows(&self) -> bool {
        true
    }

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
static OVN: ovn::Ovn = ovn::Ovn;

/// The control plane of a podman network, from its options: OVN with option `ovn`, else the
/// static mesh (its `peers` option lists the other hosts). Options that do not parse are the
/// mesh's to refuse, as they always were.
pub fn for_network(network: &Network) -> &'static dyn ControlPlane {
    by_options(&network.options())
}

/// The control plane of a network podman saved, from its options.
pub fn for_saved(saved: &SavedNetwork) -> &'static dyn ControlPlane {
    by_options(&saved.options)
}

fn by_options(options: &std::collections::BTreeMap<String, String>) -> &'static dyn ControlPlane {
    let ovn = options.get("ovn").is_some_and(|v| !v.trim().is_empty());
    if ovn {
        &OVN
    } else {
        &MESH
    }
}

/// The control plane of one of the plugin's bridges, from its `external_ids`: every bridge
/// the plugin writes today is a mesh's.
pub fn for_bridge(_bridge: &BridgeRow) -> &'static dyn ControlPlane {
    &MESH
}
