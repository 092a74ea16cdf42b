//! `geneve-ovs teardown <netns>`: detach a container: remove its OVS port and its veth.
//!
//! Tolerates what is already gone (the netns, the veth, the port), so a second teardown, or one
//! after a crash, succeeds. Never removes the bridge or tunnels: the network lives until it is
//! removed.

use std::path::Path;

use anyhow::Result;
use log::debug;

use super::{attachment, connect_ovs, parse_input};
use crate::container_link;
use crate::control;
use crate::naming;
use crate::phases::Phases;
use crate::types::NetworkPluginExec;

pub fn run(_netns: &Path, input: &str) -> Result<()> {
    let mut phases = Phases::start("teardown");
    let exec: NetworkPluginExec = parse_input(input, "teardown request")?;
    let host_name = naming::host_veth_name(&exec.network.id, &exec.container_id);
    let _lock = super::lock_host_shared()
        .map_err(|err| log::warn!("teardown without the host lock: {err:#}"))
        .ok()
        .flatten();
    phases.mark("lock");

    let addresses = exec.network_options.static_ips.clone().unwrap_or_default();
    let plane = control::for_network(&exec.network);
    let open = !exec.network.internal;
    let ((port, veth), firewall) = attachment::alongside_firewall_detach(open, &addresses, || {
        let port = connect_ovs().and_then(|mut ovs| {
            attachment::detach_port(&mut ovs, plane, &exec.network, &host_name)
        });
        phases.mark("ovs port");
        let veth = container_link::detach(&host_name);
        phases.mark("veth");
        (port, veth)
    });
    if open {
        // The nftables update runs alongside the rest: this is only the wait for it after.
        phases.mark("firewall");
    }
    phases.log();
    let removed_port = attachment::first_error(port, firewall)?;
    let removed_veth = veth?;
    debug!("teardown {host_name}: port removed {removed_port}, veth removed {removed_veth}");
    Ok(())
}
