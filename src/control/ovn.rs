//! OVN as a network's control plane: the network is a logical switch in OVN's northbound
//! database, created by the first host and found by every later one; a container is a
//! logical port pinned to this host's chassis plus its veth's host end on `br-int` with
//! `iface-id`, which ovn-controller binds. No host lists any other: ovn-controller builds the
//! tunnels to every chassis itself.
//!
//! Each switch also has a gateway `localport` holding the network's gateway addresses: the
//! containers' name server everywhere and, on a host with containers of a non-internal
//! network, bound to this host's gateway device (the mesh's gateway port, NAT and `-p`).
//!
//! The northbound side is [`crate::ovn`]; this module only puts it together with this host's
//! Open vSwitch, in the order that leaves nothing behind on a refusal: prerequisites, then
//! the logical port (where a taken address is refused), then the local port, then the wait
//! for this host's ovn-controller to report the port's flows installed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{ControlPlane, TunnelStatus};
use crate::options::{self, NetworkConfig};
use crate::ovn::host::{self, Chassis};
use crate::ovn::northbound::{Northbound, PortRequest};
use crate::ovn::plan;
use crate::ovn::record::JoinedNetwork;
use crate::ovn::schema::SwitchPortRow;
use crate::ovs::schema::{keys, network_of, Role};
use crate::ovs::snapshot::{BridgeRow, PortRow, Scope, Snapshot};
use crate::ovs::{Applied, ContainerPort, Ovs};
use crate::types::Network;

/// How long `setup` waits for ovn-controller to report a new port installed. About 200 ms
/// when healthy; this only bounds a host whose ovn-controller is down or cut off from the
/// southbound database, or a port ovn-northd never put there.
pub const PORT_UP_TIMEOUT: Duration = Duration::from_secs(15);

/// The key ovn-controller sets to "true" in the `external_ids` of a port's OVS interface once
/// the port is bound to this chassis and its flows are installed.
const OVN_INSTALLED: &str = "ovn-installed";

/// How often the interface is read again while waiting for [`OVN_INSTALLED`]: one select on
/// the local OVSDB socket, well under a millisecond, against the up to one poll that `setup`
/// waits past the moment ovn-controller sets the key.
const INSTALLED_POLL: Duration = Duration::from_millis(5);
/// NB's `up` is read at every this many polls of the interface (every 200 ms).
const NB_POLL_EVERY: u64 = 40;

/// The OVN control plane.
pub struct Ovn;

/// This host's chassis, provided it is ready for OVN.
fn local_chassis(ovs: &mut Ovs) -> Result<Chassis> {
    let ids = ovs.local_external_ids()?;
    let inventory = ovs.snapshot(Scope::Config)?;
    host::chassis(&ids, |bridge| inventory.bridge(bridge).is_some())
}

impl ControlPlane for Ovn {
    /// Checks this host's prerequisites, then finds or creates the network's switch and its
    /// gateway port, and drops this host's end of the gateway port when no container of the
    /// network is left here (`teardown` of a non-internal network's container ends here).
    fn create_switch(&self, ovs: &mut Ovs, cfg: &NetworkConfig) -> Result<()> {
        let chassis = local_chassis(ovs)?;
        // First, and local only: a teardown ends here, and must not leave the gateway's host
        // end behind because the northbound database is out of reach.
        drop_idle_gateway(ovs, cfg, &chassis)?;
        let mut nb = Northbound::connect(&cfg.ovn)?;
        nb.ensure_switch(cfg)
            .and_then(|_| nb.ensure_gateway_port(cfg))
            .with_context(|| format!("OVN northbound database at {}", nb.remote()))?;
        record_joined(ovs, cfg)
    }

    fn settles_after_detach(&self) -> bool {
        true
    }

    fn attach_port(
        &self,
        ovs: &mut Ovs,
        cfg: &NetworkConfig,
        port: &ContainerPort,
    ) -> Result<Applied> {
        let chassis = local_chassis(ovs)?;
        let mut nb = Northbound::connect(&cfg.ovn)?;
        // The gateway port is the containers' DNS server: made by `create`, made here for a
        // switch someone emptied.
        let gateway = nb.ensure_gateway_port(cfg)?;
        let name = plan::port_name(&port.container_id, &port.interface);
        let mut dns_names = vec![port.container_name.clone()];
        dns_names.extend(port.aliases.iter().cloned());
        nb.add_port(&PortRequest {
            cfg,
            port,
            name: &name,
            chassis: &chassis.name,
            dns_names: &dns_names,
        })?;
        let attached =
            attach_locally(ovs, &mut nb, cfg, port, &chassis, &name).and_then(|applied| {
                if !cfg.internal {
                    bind_gateway(ovs, cfg, &chassis, gateway.as_ref())?;
                }
                Ok(applied)
            });
        if attached.is_ok() {
            // A network created by an earlier version has no record yet.
            if let Err(err) = ensure_recorded(ovs, cfg) {
                log::warn!(
                    "network {}: {err:#}; `gc` will not remove its switch once the network \
                     is removed",
                    cfg.name
                );
            }
        }
        if attached.is_err() {
            // The caller undoes only what this returned; the logical port (and the local
            // port, if it was made) are this function's to remove.
            if let Err(err) = nb.remove_port(&cfg.name, &name) {
                log::error!("could not remove logical port {name}: {err:#}");
            }
            if let Err(err) = ovs.remove_container_port(&port.name) {
                log::error!("could not remove OVS port {}: {err:#}", port.name);
            }
        }
        attached
    }

    fn detach_port(&self, ovs: &mut Ovs, network: &Network, port: &str) -> Result<bool> {
        let record = ovs
            .snapshot(Scope::Config)?
            .owned_port(port)
            .and_then(|p| p.container());
        let removed = ovs.remove_container_port(port)?;
        let Some(record) = record else {
            return Ok(removed);
        };
        let (Some(container_id), Some(interface)) = (record.container_id, record.interface) else {
            return Ok(removed);
        };
        let name = plan::port_name(&container_id, &interface);
        let remotes = options::parse(&network.options())?.ovn;
        let mut nb = Northbound::connect(&remotes)?;
        Ok(nb.remove_port(&network.name, &name)? || removed)
    }

    fn health(
        &self,
        _inventory: &Snapshot,
        _bridge: Option<&BridgeRow>,
        _expected_peers: Vec<String>,
        _running: bool,
    ) -> Vec<TunnelStatus> {
        // OVN's tunnels are ovn-controller's, to every chassis: none is the plugin's to report.
        Vec::new()
    }

    fn remove_switch(&self, ovs: &mut Ovs, uuid: &str, name: &str, ports: &[String]) -> Result<()> {
        // An OVN network has no bridge of its own; only a mesh's can reach here.
        ovs.remove_owned_bridge(uuid, name, ports)
    }

    fn programs_flows(&self) -> bool {
        false
    }
}

/// This host's end of the network's gateway port on the integration bridge (a non-internal
/// network's way out), made with the network's first container here.
fn bind_gateway(
    ovs: &mut Ovs,
    cfg: &NetworkConfig,
    chassis: &Chassis,
    row: Option<&SwitchPortRow>,
) -> Result<()> {
    let Some(row) = row else {
        bail!(
            "network {} has no gateway address, so no way out of OVN: remove the network and \
             create it again (podman network create gives it one)",
            cfg.name
        );
    };
    ovs.ensure_gateway_on(&chassis.bridge, &plan::local_gateway(cfg, row)?)
}

/// Removes this host's end of the network's gateway port once no container of the network is
/// left on this host (after a `teardown`, and at `create`), as the mesh does.
fn drop_idle_gateway(ovs: &mut Ovs, cfg: &NetworkConfig, chassis: &Chassis) -> Result<()> {
    let inventory = ovs.snapshot(Scope::Config)?;
    let Some(bridge) = inventory.bridge(&chassis.bridge) else {
        return Ok(());
    };
    let of_network = |p: &&PortRow| network_of(&p.external_ids) == Some(cfg.name.as_str());
    let ports: Vec<&PortRow> = inventory.ports_of(bridge).filter(of_network).collect();
    if ports.iter().any(|p| p.has_role(Role::Container)) {
        return Ok(());
    }
    for gateway in ports.iter().filter(|p| p.has_role(Role::Gateway)) {
        ovs.remove_container_port(&gateway.name)?;
    }
    Ok(())
}

/// The veth's host end on the integration bridge, named to ovn-controller by `iface-id`, and
/// the wait until ovn-controller reports it installed.
fn attach_locally(
    ovs: &mut Ovs,
    nb: &mut Northbound,
    cfg: &NetworkConfig,
    port: &ContainerPort,
    chassis: &Chassis,
    name: &str,
) -> Result<Applied> {
    let mut ids: BTreeMap<String, String> = port.external_ids(cfg);
    ids.insert(keys::IFACE_ID.to_string(), name.to_string());
    let remotes: Vec<String> = cfg.ovn.iter().map(ToString::to_string).collect();
    ids.insert(keys::OVN_NB.to_string(), remotes.join(","));
    let applied = ovs.add_port_to(&chassis.bridge, &port.name, &ids)?;
    wait_installed(ovs, nb, &port.name, name, PORT_UP_TIMEOUT)?;
    Ok(applied)
}

/// Records in this host's Open vSwitch that it joined the network ([`crate::ovn::record`]),
/// so that `gc` can remove the network's switch once podman has forgotten the network.
pub fn record_joined(ovs: &mut Ovs, cfg: &NetworkConfig) -> Result<()> {
    let record = JoinedNetwork::of(cfg);
    ovs.set_local_external_id(&record.key(), Some(&record.value()))
}

/// [`record_joined`], unless the record is there already as `cfg` says (one read).
fn ensure_recorded(ovs: &mut Ovs, cfg: &NetworkConfig) -> Result<()> {
    let record = JoinedNetwork::of(cfg);
    let ids = ovs.local_external_ids()?;
    if ids.get(&record.key()) == Some(&record.value()) {
        return Ok(());
    }
    ovs.set_local_external_id(&record.key(), Some(&record.value()))
}

/// Waits until this host's ovn-controller marks the interface `iface` of logical port `name`
/// [`OVN_INSTALLED`] (the port is bound here and its flows are in `br-int`), or NB reports
/// the port up, whichever comes first.
///
/// This host's own signal rather than the northbound `Logical_Switch_Port.up`, which is the
/// same fact relayed through the southbound database and ovn-northd: after a central host's
/// reboot both are re-electing their Raft leader and northd its lock, and the relay took 5 s
/// more than ovn-controller in the lab (past the timeout on a loaded machine), which had
/// installed the port and reported it up in the southbound database by then. A local poll:
/// OVSDB's `wait` compares a whole column, and `external_ids` holds more keys than this one.
///
/// NB's `up` is still read, less often, because ovn-controller of OVN 23.03 (Debian 12) was
/// seen, once in about twenty setups in the netns lab, not to mark a new port within the
/// timeout (cause not found; NB's `up` never failed so). An NB error only ends the NB side of
/// the wait: the database may be electing.
fn wait_installed(
    ovs: &mut Ovs,
    nb: &mut Northbound,
    iface: &str,
    name: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut nb_usable = true;
    let mut poll: u64 = 0;
    loop {
        let ids = ovs.interface_external_ids(iface)?;
        if ids.as_ref().is_some_and(is_installed) {
            return Ok(());
        }
        if nb_usable && poll.is_multiple_of(NB_POLL_EVERY) {
            match nb.port_is_up(name) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(err) => {
                    log::debug!("reading logical port {name}'s up in NB: {err:#}");
                    nb_usable = false;
                }
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "ovn-controller did not report logical port {name} installed on this host \
                 within {timeout:?} (external_ids:{OVN_INSTALLED} of OVS interface {iface}): \
                 check that ovn-controller runs on this host and is connected to the southbound \
                 database (ovn-appctl -t ovn-controller connection-status), that ovn-northd \
                 runs, and that this host's chassis is registered (ovn-sbctl show)"
            );
        }
        std::thread::sleep(INSTALLED_POLL);
        poll = poll.wrapping_add(1);
    }
}

/// Whether an interface's `external_ids` say ovn-controller installed its port.
fn is_installed(external_ids: &BTreeMap<String, String>) -> bool {
    external_ids.get(OVN_INSTALLED).is_some_and(|v| v == "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_only_when_ovn_controller_says_true() {
        let ids = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(is_installed(&ids(&[
            ("iface-id", "p"),
            ("ovn-installed", "true")
        ])));
        assert!(!is_installed(&ids(&[("iface-id", "p")])));
        assert!(!is_installed(&ids(&[("ovn-installed", "false")])));
    }
}
