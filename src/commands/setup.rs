//! `geneve-ovs setup <netns>`: attach a container to the network.
//!
//! Creates a veth pair whose container end is born inside the container's netns, configured
//! as podman's own bridge driver would (name, MAC, MTU, addresses, routes), and adds the host
//! end to the network's OVS bridge. Any failure undoes what this call created.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::attachment::Attachment;
use super::setup_plan::{self, SetupPlan};
use super::{connect_ovs, lock_firewall, ovs_rundir, parse_input, refresh_underlay, LiveHost};
use crate::container_link::{self, ContainerLinkSpec};
use crate::control;
use crate::dad;
use crate::firewall::{self, PortTaken, Published};
use crate::gateway;
use crate::naming;
use crate::openflow::Switch;
use crate::options::{self, Datapath, NetworkConfig, Stage};
use crate::ovs::schema::ContainerPortRecord;
use crate::ovs::snapshot::Scope;
use crate::ovs::{Applied, ContainerPort, Ovs};
use crate::phases::Phases;
use crate::port_security;
use crate::types::{Network, NetworkPluginExec};

pub fn run(netns: &Path, input: &str) -> Result<String> {
    let mut phases = Phases::start("setup");
    let exec: NetworkPluginExec = parse_input(input, "setup request")?;
    // Everything that can be checked without touching the host comes first.
    let request = setup_plan::check_request(&exec)?;
    // Connect before building anything, so that OVS being down leaves nothing behind.
    let mut ovs = connect_ovs()?;
    let cfg = options::resolve(&exec.network, Stage::Saved, &mut LiveHost::new(&mut ovs))?;
    let plan = SetupPlan::new(&exec, netns, request, &cfg)?;
    phases.mark("options");
    let mac = apply(ovs, netns, &exec.network, &cfg, &plan, &mut phases)?;
    phases.log();
    Ok(serde_json::to_string(&plan.status(mac))?)
}

/// Builds what `plan` says in the container's namespace `netns`: all of it, or (through the
/// [`Attachment`] guard) nothing. Returns the MAC of the container's interface.
fn apply(
    ovs: Ovs,
    netns: &Path,
    network: &Network,
    cfg: &NetworkConfig,
    plan: &SetupPlan,
    phases: &mut Phases,
) -> Result<[u8; 6]> {
    // From the veth's birth to its OVS port, keep `gc` from taking it for a leak.
    let _lock = super::lock_host_shared()?;
    phases.mark("lock");

    let spec = &plan.link;
    let plane = control::for_network(network);
    // The round trips to the peers, which the probe's window derives from, are measured while
    // the port is built (from here in the host's namespace, where the underlay is).
    let dad_window = cfg
        .dad
        .map(|window| dad::PendingWindow::start(window, &cfg.peers));
    // Likewise the firewall's listing, which its update starts from.
    let firewall_listing = (!cfg.internal).then(firewall::Prefetch::start).flatten();
    let link = container_link::create(netns, spec)?;
    phases.mark("veth");
    let port = plan.port(link.mac());
    let mut attachment = Attachment::new(ovs, network, plane, &spec.host_name);
    let applied = attachment.attach_port(cfg, &port).with_context(|| {
        format!(
            "cannot add container {} to OVS bridge {}",
            port.container_name, cfg.bridge
        )
    })?;
    phases.mark("ovs port");
    if spec.disable_tx_checksum && applied.completes_checksums(&port.name) {
        keep_offloads(&link, spec);
    }
    // The port's flows before anything is sent from it: the bridge drops whatever a port
    // without flows sends, so a probe sent earlier would get no answer and DAD would pass.
    // (Where a controller owns the bridge's table, the port was up, secured, before this.)
    if plane.programs_flows() {
        install_flows(attachment.ovs(), cfg, &port, &applied)?;
        phases.mark("flows");
    }
    if let Some(timeout) = dad_window.map(dad::PendingWindow::finish) {
        // The port is on the bridge and the link up for the probe only: an address in use
        // elsewhere on the overlay is refused before this container ever claims it.
        if let Some(conflict) = link.probe(&port.addresses, timeout)? {
            bail!(
                "address {} is already in use on network {:?}: the interface with MAC {} \
                 answered for it (duplicate-address detection; choose another address, or \
                 turn the check off with --opt dad=false)",
                conflict.address,
                network.name,
                naming::format_mac(&conflict.mac)
            );
        }
        phases.mark("dad");
    }
    link.configure(spec)?;
    phases.mark("addresses");
    if !cfg.internal {
        connect_outside(
            attachment.ovs(),
            cfg,
            &port.addresses,
            &plan.published,
            firewall_listing,
        )?;
        phases.mark("outside");
    } else if cfg.datapath == Datapath::System {
        // As in `create`: defence in depth, not a condition for the network to work.
        if let Err(err) = refresh_underlay(attachment.ovs()) {
            log::warn!("GENEVE underlay filter not refreshed: {err:#}");
        }
    }
    let attached = link.attached();
    attachment.commit();
    Ok(attached.mac)
}

/// On the userspace datapath the container end starts with TX checksum offload off, because
/// OVS normally reads the host end without offload metadata and would forward partial
/// checksums as they are. With `userspace-tso-enable`, OVS reads it with that metadata and
/// completes checksums and segments itself (it says so in the port's status, read with the
/// wait for ovs-vswitchd): the container end then gets its offloads back, and sends TSO frames
/// instead of MTU-sized ones. Best effort: on failure the container keeps the slower,
/// always-correct setting.
fn keep_offloads(link: &container_link::PendingLink, spec: &ContainerLinkSpec) {
    if let Err(err) = link.enable_tx_checksum(spec) {
        log::warn!(
            "keeping TX checksum offload off on {}: {err:#}",
            spec.interface_name
        );
    }
}

/// The bridge's base flows and the port's own; the whole bridge's when the network had to be
/// repaired on the way (an older version's bridge just made `fail_mode=secure` has lost the
/// flows of the containers already on it). The repair is best effort: the port's own flows are
/// what this container needs.
fn install_flows(
    ovs: &mut Ovs,
    cfg: &NetworkConfig,
    port: &ContainerPort,
    applied: &Applied,
) -> Result<()> {
    let switch = Switch::new(&ovs_rundir()).knowing_ports(applied.ofports());
    if applied.repaired {
        let changes = ovs.snapshot(Scope::Runtime).and_then(|inventory| {
            let mut changes = port_security::repair_changes(&inventory, &cfg.bridge)?;
            changes.extend(port_security::setup_changes(cfg, port)?);
            Ok(changes)
        });
        match changes.and_then(|changes| switch.apply(&cfg.bridge, &changes)) {
            Ok(()) => return Ok(()),
            Err(err) => log::warn!(
                "could not restore the flows of the other ports of bridge {} ({err:#}): \
                 `geneve-ovs gc` restores them",
                cfg.bridge
            ),
        }
    }
    port_security::install(&switch, cfg, port)
}

/// The part of a non-internal network beyond the overlay: the gateway addresses on this host's
/// gateway port, and the network's and the container's elements in the nftables table (with
/// the underlay filter on the kernel datapath).
fn connect_outside(
    ovs: &mut Ovs,
    cfg: &NetworkConfig,
    addresses: &[IpAddr],
    published: &[Published],
    listed: Option<firewall::Prefetch>,
) -> Result<()> {
    let gateway = naming::gateway_port_name(cfg.vni);
    gateway::configure(&gateway, &cfg.gateways)?;
    let (_lock, underlay) = if cfg.datapath == Datapath::System {
        let lock = lock_firewall()?;
        let underlay = firewall::Underlay::from_observed(&ovs.snapshot(Scope::Config)?);
        (Some(lock), Some(underlay))
    } else {
        (None, None)
    };
    // OVN answers its own names at the gateway address; the others go to the host's resolvers
    // (the mesh gives containers no name server of its own).
    let name_servers = (!cfg.ovn.is_empty()).then(crate::host_resolvers::read);
    match firewall::attach_container(
        &gateway,
        addresses,
        published,
        name_servers.as_ref(),
        underlay.as_ref(),
        listed,
    ) {
        Ok(()) => Ok(()),
        Err(err) => match err.downcast_ref::<PortTaken>() {
            Some(taken) => Err(anyhow::anyhow!(
                "{taken}{}; choose another host port, or, if that container is gone, run \
                 `geneve-ovs gc` to remove what it left",
                holder_of(ovs, taken.holder)
            )),
            None => Err(err),
        },
    }
}

/// ": container NAME (ID) on network NET" for the container port that has `address`, if OVS
/// knows one.
fn holder_of(ovs: &mut Ovs, address: IpAddr) -> String {
    let Ok(observed) = ovs.snapshot(Scope::Config) else {
        return String::new();
    };
    observed
        .ports
        .iter()
        .filter_map(|p| ContainerPortRecord::read(&p.external_ids))
        .find(|record| record.addresses.contains(&address))
        .map(|record| {
            let get = |v: Option<String>| v.unwrap_or_else(|| "?".to_string());
            format!(
                ": container {} ({}) on network {}",
                get(record.container_name),
                get(record.container_id)
                    .chars()
                    .take(12)
                    .collect::<String>(),
                get(record.network)
            )
        })
        .unwrap_or_default()
}
