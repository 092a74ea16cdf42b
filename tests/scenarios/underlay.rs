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
/// Source MACs of the hand-made frames: what the receiving bridge would learn.
const PEER_MAC: &str = "02:00:00:00:be:ef";
const STRANGER_MAC: &str = "02:00:00:00:ba:ad";

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

/// Datapath flows of `h` whose tunnel source is `src`: what the kernel's GENEVE vport passed
/// up to OVS from that address (a packet dropped by the filter never makes one).
fn tunnel_flows_from(h: Host, src: &str) -> Result<Vec<String>> {
    let flows = h.exec_ok(&["ovs-appctl", "dpctl/dump-flows"])?;
    Ok(flows
        .lines()
        .filter(|l| l.contains("tunnel(") && l.contains(&format!("src={src},")))
        .map(str::to_string)
        .collect())
}

/// Host 2 (a peer) and the outside machine (a stranger) each send host 1 GENEVE frames with
/// the network's VNI: the peer's arrive (host 1's bridge learns its MAC), the stranger's never
/// reach OVS.
fn check_filter(lab: &PodmanLab, vni: u32, bridge: &str, when: &str) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    lab.outside(&["bash", "-c", &send_command(&h1.ip(), vni, STRANGER_MAC)?])?;
    h2.exec_ok(&["bash", "-c", &send_command(&h1.ip(), vni, PEER_MAC)?])?;
    wait::until(
        &format!("{when}: host 1 to learn the peer's frame"),
        Duration::from_secs(10),
        || Ok(h1.fdb(bridge)?.iter().any(|(_, m)| m == PEER_MAC)),
    )?;
    let stranger = tunnel_flows_from(h1, STRANGER)?;
    ensure!(
        stranger.is_empty(),
        "{when}: a stranger's GENEVE reached OVS: {stranger:?}"
    );
    ensure!(
        !h1.fdb(bridge)?.iter().any(|(_, m)| m == STRANGER_MAC),
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
    // Without the filter the stranger's packet would reach OVS (and be dropped only there):
    // the check below would see its datapath flow.
    check_filter(lab, vni, &bridge, "after create")?;

    lab.host(1).reboot()?;
    let report = lab.host(1).exec_ok(&[PLUGIN_IN_HOST, "gc"])?;
    eprintln!("gc after the reboot:\n{report}");
    // The learned MAC went with the reboot's ovs-vswitchd; wait for the bridge to be back.
    wait::until("host 1's bridge after the reboot", Duration::from_secs(30), || {
        Ok(lab.host(1).bridges()?.contains(&bridge))
    })?;
    check_filter(lab, vni, &bridge, "after a reboot, before any container")?;
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
        let bfd = first_tunnel(&report)["bfd"].as_str().unwrap_or("").to_string();
        Ok((code, bfd))
    };
    let start = Instant::now();
    wait::until("BFD up in status on both hosts", Duration::from_secs(60), || {
        Ok(bfd_of(h1)? == (0, "up".into()) && bfd_of(h2)? == (0, "up".into()))
    })?;
    eprintln!("[bfd] up in status {:.1?} after create", start.elapsed());

    h2.kill_vswitchd()?;
    let start = Instant::now();
    wait::until("BFD down in host 1's status", Duration::from_secs(30), || {
        Ok(bfd_of(h1)?.1 == "down")
    })?;
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
    eprintln!("[bfd] up again {:.1?} after the peer's ovs-vswitchd started", start.elapsed());
    Ok(())
}
