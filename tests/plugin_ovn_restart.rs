//! OVN mode: a container set up again after its host lost it (a reboot: the veth is gone, the
//! OVS port and the logical port remain) while ovn-northd relays nothing, as while the central
//! hosts re-elect their Raft leaders and northd its lock after a central host's reboot.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::ovn::{container_ip, OvnLab};
use common::podman::{self, setup};
use common::wait;

fn lsp_up(ovn: &OvnLab, label: &str) -> Result<String> {
    let name = format!("{}-eth0", podman::id(&format!("container {label}")));
    ovn.nbctl(&["get", "Logical_Switch_Port", &name, "up"])
}

#[test]
fn a_restarted_container_is_set_up_while_northd_relays_nothing() -> Result<()> {
    let ovn = OvnLab::new(2, 2)?;
    let net = ovn.network("net1");
    let saved = ovn.create_on_hosts(2, &net)?;
    let h1 = ovn.host(1);
    let c1 = h1.container("c1")?;
    // A static MAC (podman's --mac-address): the port binding SB keeps has the same one.
    let exec1 = podman::exec(
        &saved[0],
        "c1",
        &[&container_ip(1)],
        Some("0a:58:c0:a8:78:0b"),
    );
    setup(h1, &c1, &exec1)?;
    let h2 = ovn.host(2);
    let c2 = h2.container("c2")?;
    setup(
        h2,
        &c2,
        &podman::exec(&saved[1], "c2", &[&container_ip(2)], None),
    )?;
    c2.wait_ping(&container_ip(1), Duration::from_secs(15))?;
    assert_eq!(lsp_up(&ovn, "c1")?, "true");

    // Host 1 loses the container without a teardown (its namespace and veth go), and the
    // central stops relaying: only ovn-controller and the databases work. setup returns once
    // ovn-controller has bound the port from the port binding SB still has.
    drop(c1);
    ovn.stop_northd()?;
    let c1 = h1.container("c1")?;
    let started = Instant::now();
    setup(h1, &c1, &exec1).context("setup of the restarted container with northd down")?;
    let took = started.elapsed();
    eprintln!("[ovn-restart] setup again with northd down: {took:.1?}");
    assert!(took < Duration::from_secs(5), "setup took {took:?}");
    // NB's up is northd's relay, which did not happen: setup did not wait for it.
    assert_ne!(lsp_up(&ovn, "c1")?, "true");
    // Once the central relays again, NB says up too. (Traffic is not checked here: a veth
    // re-made with the name of one deleted a moment before is not always read again by the
    // userspace datapath's ovs-vswitchd, which a real reboot restarts.)
    ovn.start_northd()?;
    wait::until("NB to report c1 up", Duration::from_secs(15), || {
        Ok(lsp_up(&ovn, "c1")? == "true")
    })?;
    Ok(())
}
