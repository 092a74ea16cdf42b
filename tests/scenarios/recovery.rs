//! Scenarios of a host's life outside the plugin's calls (reboot, ovs-vswitchd crash), on an
//! internal network spanning two hosts; run by `e2e_podman_reboot.rs` (userspace datapath) and
//! `e2e_kernel.rs` (kernel datapath).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::podman_lab::{Container, Datapath, Host, PodmanLab, PLUGIN};

pub const NET: &str = "net1";
pub const SUBNET: &str = "192.168.120.0/24";
/// Disjoint ranges of [`SUBNET`] for host 1 and host 2.
pub const RANGES: [&str; 2] = [
    "192.168.120.1-192.168.120.126",
    "192.168.120.129-192.168.120.254",
];
/// Bound on any recovery: generous, the machine may be loaded.
pub const RECOVER: Duration = Duration::from_secs(60);
/// Where the lab installs the plugin in each host.
pub const PLUGIN_IN_HOST: &str = "/usr/libexec/netavark/geneve-ovs";

/// Two hosts, the internal network on both (peers = the other host), a sleeper on each,
/// pinging each other.
pub fn two_hosts_with_sleepers(lab: &PodmanLab) -> Result<(Container<'_>, Container<'_>)> {
    for (h, range) in lab.hosts().into_iter().zip(RANGES) {
        let peers = format!("peers={}", h.other_peers());
        h.create_network(
            NET,
            &[
                "--internal",
                "--subnet",
                SUBNET,
                "--ip-range",
                range,
                "--opt",
                &peers,
            ],
        )?;
    }
    let c1 = lab.host(1).run_sleeper("c1", NET)?;
    let c2 = lab.host(2).run_sleeper("c2", NET)?;
    for c in [&c1, &c2] {
        let policy = c.host().podman_ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.RestartPolicy.Name}}",
            c.name(),
        ])?;
        ensure!(
            policy.is_empty() || policy == "no",
            "{}: restart policy {policy:?}, expected none",
            c.name()
        );
    }
    c1.wait_ping(&c2.ip(NET)?, RECOVER)?;
    c2.wait_ping(&c1.ip(NET)?, RECOVER)?;
    Ok((c1, c2))
}

/// The plugin's container ports in a host's OVS.
pub fn container_ports(h: Host) -> Result<Vec<String>> {
    Ok(
        h.find("Port", "name", &["external_ids:geneve-ovs.role=container"])?
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect(),
    )
}

/// The host ends of container veths (`gv` + 13 hex digits).
pub fn host_veths(h: Host) -> Result<Vec<String>> {
    Ok(h.links()?
        .into_iter()
        .filter(|l| l.len() == 15 && l.starts_with("gv"))
        .collect())
}

/// OVS interfaces of a host that ovs-vswitchd could not open (name, error).
pub fn interfaces_in_error(h: Host) -> Result<Vec<(String, String)>> {
    Ok(h.find("Interface", "name,error,ofport", &[])?
        .iter()
        .filter_map(|i| {
            let name = i["name"].as_str().unwrap_or_default().to_string();
            let error = i["error"].as_str().map(str::to_string);
            let ofport = i["ofport"].as_i64().unwrap_or(-1);
            match error {
                Some(e) => Some((name, e)),
                None if ofport <= 0 => Some((name, format!("ofport {ofport}"))),
                None => None,
            }
        })
        .collect())
}

/// Exactly one container port on `h`, its veth is the only `gv*` device, nothing in error.
pub fn one_clean_port(h: Host) -> Result<String> {
    let ports = container_ports(h)?;
    let veths = host_veths(h)?;
    ensure!(
        ports.len() == 1 && ports == veths,
        "h{}: container ports {ports:?}, gv veths {veths:?}",
        h.index()
    );
    let broken = interfaces_in_error(h)?;
    ensure!(broken.is_empty(), "h{}: interfaces {broken:?}", h.index());
    Ok(ports[0].clone())
}

/// Pings `target` from `c` until answered; how long it took.
pub fn time_to_ping(c: &Container, target: &str) -> Result<Duration> {
    let start = Instant::now();
    c.wait_ping(target, RECOVER)?;
    Ok(start.elapsed())
}

/// Host 1 of two reboots, optionally `gc` runs, then `podman start c1` (2 hosts).
pub fn reboot_case(lab: &PodmanLab, name: &str, with_gc: bool) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let (c1, c2) = two_hosts_with_sleepers(lab)?;
    let ip2 = c2.ip(NET)?;
    let old_port = one_clean_port(h1)?;
    let plugin = std::fs::metadata(PLUGIN).context("plugin binary")?;
    eprintln!("plugin under test: {PLUGIN} ({} bytes)", plugin.len());

    let reboot = Instant::now();
    h1.reboot()?;
    let reboot = reboot.elapsed();

    // What a reboot leaves: the container stopped, no veth, its OVS port still in the
    // database with a device that is gone.
    let state = c1
        .host()
        .podman_ok(&["inspect", "--format", "{{.State.Status}}", "c1"])?;
    ensure!(state != "running", "c1 is {state} after the reboot");
    ensure!(
        host_veths(h1)?.is_empty(),
        "veths survived: {:?}",
        host_veths(h1)?
    );
    ensure!(
        container_ports(h1)? == [old_port.clone()],
        "before gc: ports {:?}",
        container_ports(h1)?
    );
    ensure!(
        interfaces_in_error(h1)?.iter().any(|(n, _)| *n == old_port),
        "the stale port {old_port} is not in error: {:?}",
        interfaces_in_error(h1)?
    );

    // The boot unit: contrib/systemd/geneve-ovs-gc.service.
    let gc = Instant::now();
    if with_gc {
        let report = h1.exec_ok(&[PLUGIN_IN_HOST, "gc"])?;
        eprintln!("gc after the reboot:\n{report}");
        ensure!(
            report.contains(&old_port),
            "gc did not report {old_port}: {report}"
        );
        ensure!(container_ports(h1)?.is_empty(), "ports left after gc");
        ensure!(
            interfaces_in_error(h1)?.is_empty(),
            "after gc: {:?}",
            interfaces_in_error(h1)?
        );
    }
    let gc = with_gc.then(|| format!("{:.2?}", gc.elapsed()));
    let gc = gc.as_deref().unwrap_or("skipped");

    // podman start, then the first reply from host 2's container.
    let start = Instant::now();
    h1.podman_ok(&["start", "c1"])?;
    let started = start.elapsed();
    let first_ping = time_to_ping(&c1, &ip2)?;
    let total = start.elapsed();
    c2.wait_ping(&c1.ip(NET)?, RECOVER)
        .context("host 2 -> host 1 after the reboot")?;

    let new_port = one_clean_port(h1)?;
    one_clean_port(h2)?;
    if !with_gc {
        // Nothing for a later gc either.
        let report = h1.exec_ok(&[PLUGIN_IN_HOST, "gc", "--dry-run"])?;
        ensure!(!report.contains("would remove"), "gc --dry-run: {report}");
    }
    eprintln!(
        "[{name}] lab.sh reboot {reboot:.2?}, gc {gc}, podman start {started:.2?}, \
         first reply {first_ping:.2?} after it returned: {total:.2?} from podman start \
         (port {old_port} -> {new_port})"
    );
    Ok(())
}

/// ovs-vswitchd of host 1 crashes and starts again while the containers run (2 hosts): traffic
/// stops with it on the userspace datapath (the kernel's keeps the flows it holds), and is back
/// on its own after the restart, on the same port.
pub fn vswitchd_restart_while_containers_run(lab: &PodmanLab) -> Result<()> {
    let h1 = lab.host(1);
    let (c1, c2) = two_hosts_with_sleepers(lab)?;
    let ip2 = c2.ip(NET)?;
    let port = one_clean_port(h1)?;

    // A crash: SIGKILL by pidfile, then the daemon started as a boot starts it (the
    // harness's one place for that, with the lab's datapath).
    h1.kill_vswitchd()?;
    // The userspace datapath is the daemon: nothing crosses while it is dead. The kernel's
    // outlives the daemon: whatever flows it holds keep forwarding, and nobody expires them,
    // so whether this ping crosses depends on whether the conversation's flows were still
    // cached when the daemon died (they idle out after 10 s): nothing to assert there.
    if lab.datapath() == Datapath::Userspace {
        ensure!(!c1.ping(&ip2), "ping crossed with ovs-vswitchd dead");
    }
    let up = Instant::now();
    h1.start_vswitchd()?;
    let daemon = up.elapsed();
    // The flows are lost with the daemon and the bridges are fail_mode=secure: nothing is
    // switched until contrib/systemd/geneve-ovs-flows.service puts them back after the start,
    // as here. (On the kernel datapath the restarted daemon removes the datapath flows it
    // does not know, so the same holds there once it has revalidated them.)
    if lab.datapath() == Datapath::Userspace {
        ensure!(!c1.ping(&ip2), "ping crossed a bridge without its flows");
    }
    let restore = Instant::now();
    h1.exec_ok(&[PLUGIN_IN_HOST, "gc", "--flows-only"])?;
    let restore = restore.elapsed();
    let first_ping = time_to_ping(&c1, &ip2)?;
    c2.wait_ping(&c1.ip(NET)?, RECOVER)
        .context("host 2 -> host 1 after the restart")?;
    ensure!(
        one_clean_port(h1)? == port,
        "the container port changed: {:?}",
        container_ports(h1)?
    );
    eprintln!(
        "[vswitchd] daemon started in {daemon:.2?}; flows restored in {restore:.2?}; first \
         reply {first_ping:.2?} after that"
    );
    Ok(())
}
