//! A container's attachment to its network, undone as a whole unless `setup` commits it, and
//! the detaching that both that undo and `teardown` do.

use std::net::IpAddr;

use anyhow::Result;

use super::{ovs_rundir, LiveHost};
use crate::container_link;
use crate::control::ControlPlane;
use crate::firewall;
use crate::naming;
use crate::openflow::Switch;
use crate::options::{self, NetworkConfig, Stage};
use crate::ovs::snapshot::Scope;
use crate::ovs::{Applied, ContainerPort, Ovs};
use crate::port_security;
use crate::types::Network;

/// What an uncommitted attachment has built so far, and so what its undo removes.
enum Built {
    /// The container's veth pair (host end named so).
    Veth { veth: String },
    /// The veth, and its port on the network's switch with the container's addresses.
    Port {
        veth: String,
        port: String,
        addresses: Vec<IpAddr>,
        /// The gateway port (and its bridge), when this attachment created it with the
        /// network's first container here: the undo removes it again if no other container
        /// came meanwhile, so a failed `setup` leaves nothing behind.
        gateway: Option<(String, String)>,
    },
}

/// Holds the connection to OVS while a container is being attached. Dropped without
/// [`Attachment::commit`] (any error of `setup` after the veth exists), it removes the
/// container entirely: its port, its published ports and then its veth, and the mesh's gateway
/// port when this attachment created it and no other container came meanwhile (OVN mode
/// drops this host's end of its gateway with the last container in any case). The network's
/// rules stay, as after a `teardown`.
pub struct Attachment<'a> {
    ovs: Ovs,
    network: &'a Network,
    plane: &'static dyn ControlPlane,
    built: Option<Built>,
}

impl<'a> Attachment<'a> {
    /// Starts guarding an attachment whose veth (host end `veth`) was just created.
    pub fn new(
        ovs: Ovs,
        network: &'a Network,
        plane: &'static dyn ControlPlane,
        veth: &str,
    ) -> Self {
        Attachment {
            ovs,
            network,
            plane,
            built: Some(Built::Veth {
                veth: veth.to_string(),
            }),
        }
    }

    /// The connection to OVS, for the steps between attaching and committing.
    pub fn ovs(&mut self) -> &mut Ovs {
        &mut self.ovs
    }

    /// Adds the container's port to the network's switch; from now on the undo removes it too.
    pub fn attach_port(&mut self, cfg: &NetworkConfig, port: &ContainerPort) -> Result<Applied> {
        let applied = self.plane.attach_port(&mut self.ovs, cfg, port)?;
        let gateway = naming::gateway_port_name(cfg.vni);
        let gateway =
            (!cfg.internal && applied.created(&gateway)).then(|| (cfg.bridge.clone(), gateway));
        if let Some(Built::Veth { veth }) = self.built.take() {
            self.built = Some(Built::Port {
                veth,
                port: port.name.clone(),
                addresses: port.addresses.clone(),
                gateway,
            });
        }
        Ok(applied)
    }

    /// The container is attached: nothing is undone.
    pub fn commit(mut self) {
        self.built = None;
    }
}

impl Drop for Attachment<'_> {
    fn drop(&mut self) {
        let veth = match self.built.take() {
            None => return,
            Some(Built::Veth { veth }) => veth,
            Some(Built::Port {
                veth,
                port,
                addresses,
                gateway,
            }) => {
                if let Err(cleanup) =
                    detach_from_ovs(&mut self.ovs, self.plane, self.network, &port, &addresses)
                {
                    log::error!("could not remove OVS port {port}: {cleanup:#}");
                }
                if let Some((bridge, gateway)) = gateway {
                    if let Err(cleanup) = self.ovs.remove_idle_gateway(&bridge, &gateway) {
                        log::error!("could not remove OVS gateway port {gateway}: {cleanup:#}");
                    }
                }
                veth
            }
        };
        if let Err(cleanup) = container_link::detach(&veth) {
            log::error!("could not remove veth {veth}: {cleanup:#}");
        }
    }
}

/// Removes a container's port (its flows first, so it is closed before it goes), and for a
/// non-internal network every published port that targets one of its `addresses` (and, in
/// OVN mode, this host's end of the gateway port once it was the last container here; the
/// mesh keeps its gateway port while the network exists). What `teardown` does, and the undo
/// of an [`Attachment`].
///
/// The nftables part runs alongside the OVS part ([`alongside_firewall_detach`]): the two
/// touch nothing in common, and each costs process starts (`nft` twice, `ovs-ofctl` once).
pub fn detach_from_ovs(
    ovs: &mut Ovs,
    plane: &dyn ControlPlane,
    network: &Network,
    port: &str,
    addresses: &[IpAddr],
) -> Result<bool> {
    let (removed, detached) = alongside_firewall_detach(!network.internal, addresses, || {
        detach_port(ovs, plane, network, port)
    });
    first_error(removed, detached)
}

/// Runs `ovs_part` while, when `open` (a non-internal network), another thread deletes every
/// nftables element that targets one of `addresses` (`Ok` when there is nothing to do);
/// returns both results once both are done.
pub fn alongside_firewall_detach<T>(
    open: bool,
    addresses: &[IpAddr],
    ovs_part: impl FnOnce() -> T,
) -> (T, Result<()>) {
    if !open {
        return (ovs_part(), Ok(()));
    }
    std::thread::scope(|scope| {
        let firewall = scope.spawn(|| firewall::detach_container(addresses));
        let done = ovs_part();
        let detached = firewall
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the nftables update panicked")));
        (done, detached)
    })
}

/// `result`, unless only `firewall` failed; a firewall error behind another is logged.
pub fn first_error<T>(result: Result<T>, firewall: Result<()>) -> Result<T> {
    match (result, firewall) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(err), firewall) => {
            if let Err(firewall) = firewall {
                log::error!("{firewall:#}");
            }
            Err(err)
        }
        (Ok(_), Err(err)) => Err(err),
    }
}

/// The OVS part of [`detach_from_ovs`]: the port's flows, the port, and for a non-internal
/// network the network's switch as it should be without it.
pub fn detach_port(
    ovs: &mut Ovs,
    plane: &dyn ControlPlane,
    network: &Network,
    port: &str,
) -> Result<bool> {
    let observed = ovs.snapshot(Scope::Config)?;
    let bridge = observed
        .owned_port(port)
        .and_then(|p| observed.bridge_of(p))
        .filter(|_| plane.programs_flows());
    if let Some(bridge) = bridge {
        // Best effort: flows left behind match a port number nothing uses until OVS hands it
        // out again, and `gc` replaces every owned bridge's table whole.
        if let Err(err) = port_security::remove(&Switch::new(&ovs_rundir()), &bridge.name, port) {
            log::warn!("the flows of port {port} stay behind: {err:#}");
        }
    }
    let removed = plane.detach_port(ovs, network, port)?;
    if !network.internal && plane.settles_after_detach() {
        let cfg = options::resolve(network, Stage::Saved, &mut LiveHost::new(ovs))?;
        plane.create_switch(ovs, &cfg)?;
    }
    Ok(removed)
}
