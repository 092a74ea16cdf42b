//! Scenarios of the underlay itself: the nftables filter that lets GENEVE in only from the
//! network's peers, and BFD as `geneve-ovs status` reports it. Run by `e2e_kernel.rs`: on the
//! kernel datapath the filter sits on the real receive path of the tunnels. On the userspace
//! datapath OVS reads the underlay with AF_PACKET, before the host's IP stack, so no nftables
//! rule ever sees a tunnel packet there; `firewall_underlay.rs` checks the rules on a plain
//! kernel socket instead.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use super::overlay::{bridge_of, internal_network, opt, NET, SEED_RANGES, SUBNET};
use crate::podman_lab::{wait, Host, PodmanLab};

/// The outside machine's underlay address (on the switch's bridge).
const STRANGER: &str = "10.99.0.254";
/// Where the lab installs the plugin in each host.
const PLUGIN_IN_HOST: &str = "/usr/libexec/netavark/geneve-ovs";
/// Source MACs of the hand-made frames (one pair per phase of the scenario): what the
/// receiving bridge learns, and what ovs-vswitchd logs of a frame no tunnel port takes.
const PEER_MACS: [&str; 2] = ["02:00:00:00:be:01", "02:00:00:00:be:02"];
const STRANGER_MACS: [&str; 2] = ["02:00:00:00:ba:01", "02:00:00:00:ba:02"];

/// One GENEVE packet (UDP to `to`:6081, VNI `vni`) carrying a broadcast ARP request from
/// `mac`, as `printf` escapes for bash's `/dev/udp`.
fn geneve_arp(vni: u32, mac: &str) -> Result<String> {
    let mut bytes: Vec<u8> = vec![0, 0, 0x65, 0x58];
    bytes.extend_from_slice(&vni.to_be_bytes()[1..]);
    bytes.push(0);
    let mac: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .context("mac")?;
    bytes.extend_from_slice(&[0xff; 6]);
    bytes.extend_from_slice(&mac);
    bytes.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    bytes.extend_from_slice(&mac);
    bytes.extend_from_slice(&[192, 168, 120, 250]);
    bytes.extend_from_slice(&[0; 6]);
    bytes.extend_from_slice(&[192, 168, 120, 251]);
    bytes.resize(8 + 60, 0);
    Ok(bytes.iter().map(|b| format!("\\x{b:02x}")).collect())
}

/// The bash command that sends [`geneve_arp`] to `to`:6081.
fn send_command(to: &str, vni: u32, mac: &str) -> Result<String> {
    Ok(format!(
        "for i in 1 2 3; do printf '{}' >/dev/udp/{to}/6081; sleep 0.2; done",
        geneve_arp(vni, mac)?
    ))
}

/// What ovs-vswitchd of `h` logged about a frame from `mac` that came in through the kernel's
/// GENEVE vport: a frame from a stranger that got past the filter reaches OVS, which finds no
/// tunnel port for its source and says so ("receive tunnel port not found (...
/// tun_src=...,dl_src=MAC,...)"). A frame the filter dropped never gets there.
fn ovs_saw(h: Host, mac: &str) -> Result<Vec<String>> {
    let out = h.exec(&[
        "grep",
        &format!("dl_src={mac}"),
        "/var/log/openvswitch/ovs-vswitchd.log",
    ]);
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// Host 2 (a peer) and the outside machine (a stranger) each send host 1 GENEVE frames with
/// the network's VNI: the peer's arrive (host 1's bridge learns its MAC), the stranger's never
/// reach OVS.
fn check_filter(lab: &PodmanLab, vni: u32, bridge: &str, phase: usize, when: &str) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let (stranger_mac, peer_mac) = (STRANGER_MACS[phase], PEER_MACS[phase]);
    lab.outside(&["bash", "-c", &send_command(&h1.ip(), vni, stranger_mac)?])?;
    h2.exec_ok(&["bash", "-c", &send_command(&h1.ip(), vni, peer_mac)?])?;
    // The peer's frames were sent after the stranger's: once OVS has learned the peer's MAC
    // it has handled whatever of the stranger's got through.
    wait::until(
        &format!("{when}: host 1 to learn the peer's frame"),
        Duration::from_secs(20),
        || Ok(h1.fdb(bridge)?.iter().any(|(_, m)| m == peer_mac)),
    )?;
    let seen = ovs_saw(h1, stranger_mac)?;
    ensure!(
        seen.is_empty(),
        "{when}: a stranger's GENEVE ({STRANGER}) reached OVS: {seen:?}"
    );
    ensure!(
        !h1.fdb(bridge)?.iter().any(|(_, m)| m == stranger_mac),
        "{when}: the stranger's MAC was learned"
    );
    Ok(())
}

/// The underlay filter on two hosts: a stranger's GENEVE with the right VNI is dropped, a
/// peer's accepted; the same after host 1 reboots, before any container runs (the filter
/// comes back with the boot unit, `geneve-ovs gc`).
pub fn geneve_only_from_peers(lab: &PodmanLab) -> Result<()> {
    lab.add_switch_address(&format!("{STRANGER}/24"))?;
    let peers = lab.all_peers();
    let mut vni = 0;
    let mut bridge = String::new();
    for (h, range) in lab.hosts().into_iter().zip(SEED_RANGES) {
        let net = internal_network(h, NET, SUBNET, range, &peers, &[])?;
        vni = opt(&net, "vni").parse().context("vni")?;
        bridge = bridge_of(&net);
    }
    // Without the filter the stranger's packet reaches OVS (and is dropped only there, for
    // want of a tunnel port with its address): the check sees ovs-vswitchd's log line.
    check_filter(lab, vni, &bridge, 0, "after create")?;

    lab.host(1).reboot()?;
    let report = lab.host(1).exec_ok(&[PLUGIN_IN_HOST, "gc"])?;
    eprintln!("gc after the reboot:\n{report}");
    // The learned MAC went with the reboot's ovs-vswitchd; wait for the bridge to be back.
    wait::until(
        "host 1's bridge after the reboot",
        Duration::from_secs(30),
        || Ok(lab.host(1).bridges()?.contains(&bridge)),
    )?;
    check_filter(lab, vni, &bridge, 1, "after a reboot, before any container")?;
    Ok(())
}

/// `geneve-ovs status --json` on `h`: exit code and report.
fn status(h: Host) -> Result<(i32, Value)> {
    let out = h.exec(&[PLUGIN_IN_HOST, "status", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("status printed {:?}", String::from_utf8_lossy(&out.stdout)))?;
    Ok((out.status.code().unwrap_or(-1), report))
}

fn first_tunnel(report: &Value) -> &Value {
    &report["networks"][0]["tunnels"][0]
}

/// BFD on two hosts as `status` reports it: up after create, down on host 1 within seconds of
/// host 2's ovs-vswitchd dying (exit code 2), up again once it runs again.
pub fn bfd_up_down_in_status(lab: &PodmanLab) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    for (h, range) in lab.hosts().into_iter().zip(SEED_RANGES) {
        let net = internal_network(h, NET, SUBNET, range, &peers, &[])?;
        assert_eq!(opt(&net, "bfd"), "true");
    }
    let bfd_of = |h: Host| -> Result<(i32, String)> {
        let (code, report) = status(h)?;
        let bfd = first_tunnel(&report)["bfd"]
            .as_str()
            .unwrap_or("")
            .to_string();
        Ok((code, bfd))
    };
    let start = Instant::now();
    wait::until(
        "BFD up in status on both hosts",
        Duration::from_secs(60),
        || Ok(bfd_of(h1)? == (0, "up".into()) && bfd_of(h2)? == (0, "up".into())),
    )?;
    eprintln!("[bfd] up in status {:.1?} after create", start.elapsed());

    h2.kill_vswitchd()?;
    let start = Instant::now();
    wait::until(
        "BFD down in host 1's status",
        Duration::from_secs(30),
        || Ok(bfd_of(h1)?.1 == "down"),
    )?;
    let down = start.elapsed();
    let (code, report) = status(h1)?;
    assert_eq!(code, 2, "a tunnel is down: {report:#}");
    assert_eq!(first_tunnel(&report)["state"], "down");
    eprintln!("[bfd] down in status {down:.1?} after the peer's ovs-vswitchd died");

    h2.start_vswitchd()?;
    let start = Instant::now();
    wait::until("BFD up again", Duration::from_secs(60), || {
        Ok(bfd_of(h1)? == (0, "up".into()) && bfd_of(h2)? == (0, "up".into()))
    })?;
    eprintln!(
        "[bfd] up again {:.1?} after the peer's ovs-vswitchd started",
        start.elapsed()
    );
    Ok(())
}
