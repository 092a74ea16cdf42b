//! Self-test of the lab harness, and proof of the Open vSwitch facts the plugin relies
//! on, using only ovs-vsctl and ip to build what the plugin will build:
//! * the lab's vswitchd offers the userspace datapath only;
//! * GENEVE between two hosts' netdev bridges carries ping and TCP, over an IPv4 or
//!   IPv6 underlay, provided the container end of each veth has TX checksum offload
//!   off and the overlay MTU leaves room for the encapsulation;
//! * a full mesh of protected tunnel ports does not loop;
//! * the lab cleans up after itself, after a panic, and after a crashed run.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::lab::cleanup_stale;
use common::traffic::{iperf3_client, start_iperf3_server, tcp_transfer};
use common::{netns, process, Container, Lab, Underlay};

/// VNI of the hand-made overlay.
const VNI: u32 = 5001;
/// The hand-made overlay's OVS bridge.
const BRIDGE: &str = "br-gnv";

/// Overlay address of the container on host `i`.
fn overlay_ip(i: usize) -> String {
    format!("192.168.120.{i}")
}

/// On every host: a netdev bridge with a protected GENEVE port to every other host,
/// and one container joined by a veth; returns the containers in host order.
fn full_mesh(lab: &Lab) -> Vec<Container> {
    let mut containers = Vec::new();
    for h in lab.hosts() {
        h.add_netdev_bridge(BRIDGE).unwrap();
        for peer in lab.hosts() {
            if peer.index() != h.index() {
                let port = format!("gnv{}", peer.index());
                h.add_geneve_port(BRIDGE, &port, &peer.underlay_ip().to_string(), VNI)
                    .unwrap();
            }
        }
        let c = h.container("c").unwrap();
        let cidr = format!("{}/24", overlay_ip(h.index()));
        h.wire_container(&c, BRIDGE, "vc", &cidr, lab.overlay_mtu())
            .unwrap();
        containers.push(c);
    }
    containers
}

fn timed_lab(n: usize, underlay: Underlay) -> Lab {
    let t = Instant::now();
    let lab = Lab::new(n, underlay).unwrap();
    eprintln!(
        "Lab::new({n}, {underlay:?}) took {:?} ({})",
        t.elapsed(),
        lab.prefix()
    );
    lab
}

#[test]
fn datapath_types_offered_by_lab_vswitchd() {
    let lab = timed_lab(1, Underlay::V4);
    let h = lab.host(1);
    let types = h
        .vsctl(&["get", "Open_vSwitch", ".", "datapath_types"])
        .unwrap();
    println!("Open_vSwitch datapath_types: {types}");
    assert!(types.contains("netdev"), "datapath_types = {types}");
    // With --disable-system the kernel datapath is not offered, so the plugin's
    // "system when offered, else netdev" choice lands on netdev here.
    assert!(!types.contains("system"), "datapath_types = {types}");
    let version = h.appctl(&["version"]).unwrap();
    println!("{version}");
}

#[test]
fn two_hosts_v4_ping_tcp_checksum_and_mtu() {
    let lab = timed_lab(2, Underlay::V4);
    let c = full_mesh(&lab);
    c[0].wait_ping(&overlay_ip(2), Duration::from_secs(10))
        .unwrap();
    assert!(c[1].ping(&overlay_ip(1)));

    // Full-size frames at the overlay MTU fit the underlay (don't-fragment set).
    let size = (lab.overlay_mtu() - 28).to_string();
    let big = c[0].exec(
        "ping",
        &[
            "-q",
            "-c",
            "2",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            &size,
            &overlay_ip(2),
        ],
    );
    assert!(big.status.success(), "{}", common::cmd::describe(&big));

    // TCP both ways, with checksum offload off on the containers' veth ends.
    let t = tcp_transfer(&c[0], &c[1], &overlay_ip(2), 5201, "10M", false).unwrap();
    eprintln!("c1 -> c2: {t:?}");
    assert!(t.bytes_sent >= 10 << 20 && t.bytes_received > 0);
    let t = tcp_transfer(&c[0], &c[1], &overlay_ip(2), 5202, "10M", true).unwrap();
    eprintln!("c2 -> c1: {t:?}");
    assert!(t.bytes_sent >= 10 << 20 && t.bytes_received > 0);

    // The same with offload on at the sender: ping still works, TCP does not, because
    // OVS reads the veth with AF_PACKET and forwards packets whose checksum the kernel
    // left for "hardware" to fill in.
    c[0].exec_ok("ethtool", &["-K", "eth0", "tx", "on"])
        .unwrap();
    assert!(c[0].ping(&overlay_ip(2)));
    start_iperf3_server(&c[1], 5203).unwrap();
    let r = iperf3_client(
        &c[0],
        &overlay_ip(2),
        5203,
        "1M",
        false,
        Duration::from_secs(15),
    );
    assert!(r.is_err(), "TCP worked with TX checksum offload on: {r:?}");
    c[0].exec_ok("ethtool", &["-K", "eth0", "tx", "off"])
        .unwrap();
    iperf3_client(
        &c[0],
        &overlay_ip(2),
        5203,
        "1M",
        false,
        Duration::from_secs(30),
    )
    .unwrap();

    // Frames larger than the overlay MTU are lost in the underlay without a trace:
    // raise both ends of c1's veth to the underlay MTU and send one full frame.
    let h1 = lab.host(1);
    let full = common::UNDERLAY_MTU.to_string();
    h1.exec_ok("ip", &["link", "set", "vc", "mtu", &full])
        .unwrap();
    c[0].exec_ok("ip", &["link", "set", "eth0", "mtu", &full])
        .unwrap();
    let size = (common::UNDERLAY_MTU - 28).to_string();
    let too_big = c[0].exec(
        "ping",
        &[
            "-q",
            "-c",
            "2",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            &size,
            &overlay_ip(2),
        ],
    );
    assert!(
        !too_big.status.success(),
        "an underlay-sized frame crossed the tunnel"
    );
}

#[test]
fn two_hosts_v6_underlay() {
    let lab = timed_lab(2, Underlay::V6);
    assert_eq!(lab.host(2).underlay_ip().to_string(), "fd99::2");
    let c = full_mesh(&lab);
    let remote = lab
        .host(1)
        .vsctl(&["get", "Interface", "gnv2", "options:remote_ip"])
        .unwrap();
    assert_eq!(remote, "\"fd99::2\"");
    c[0].wait_ping(&overlay_ip(2), Duration::from_secs(10))
        .unwrap();
    assert!(c[1].ping(&overlay_ip(1)));
    let size = (lab.overlay_mtu() - 28).to_string();
    let big = c[1].exec(
        "ping",
        &[
            "-q",
            "-c",
            "2",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            &size,
            &overlay_ip(1),
        ],
    );
    assert!(big.status.success(), "{}", common::cmd::describe(&big));
    let t = tcp_transfer(&c[1], &c[0], &overlay_ip(1), 5201, "10M", false).unwrap();
    eprintln!("v6 underlay c2 -> c1: {t:?}");
    assert!(t.bytes_sent >= 10 << 20 && t.bytes_received > 0);
}

#[test]
fn three_host_mesh_with_protected_tunnels_does_not_loop() {
    let lab = timed_lab(3, Underlay::V4);
    let c = full_mesh(&lab);
    for (a, ca) in c.iter().enumerate() {
        for b in 0..c.len() {
            if a != b {
                ca.wait_ping(&overlay_ip(b + 1), Duration::from_secs(10))
                    .unwrap();
            }
        }
    }
    // vswitchd writes Interface.statistics only every 5 s: wait until every tunnel's
    // counter has been written once, then check that none counts a storm.
    let tunnels: Vec<(usize, String)> = lab
        .hosts()
        .iter()
        .flat_map(|h| {
            lab.hosts()
                .iter()
                .filter(move |p| p.index() != h.index())
                .map(move |p| (h.index(), format!("gnv{}", p.index())))
        })
        .collect();
    common::wait::until("tunnel statistics", Duration::from_secs(15), || {
        for (h, port) in &tunnels {
            if lab.host(*h).interface_stat(port, "tx_packets")? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .unwrap();
    for (h, port) in &tunnels {
        let tx = lab.host(*h).interface_stat(port, "tx_packets").unwrap();
        eprintln!("host {h} {port}: tx_packets {tx}");
        assert!(
            tx < 200,
            "host {h} {port} sent {tx} packets: a forwarding loop"
        );
    }
}

#[test]
fn daemons_stop_and_start_again() {
    let lab = timed_lab(2, Underlay::V4);
    let c = full_mesh(&lab);
    c[0].wait_ping(&overlay_ip(2), Duration::from_secs(10))
        .unwrap();
    let h2 = lab.host(2);

    h2.stop_vswitchd().unwrap();
    assert!(h2.daemon_pid("ovs-vswitchd").is_none());
    assert!(!c[0].ping(&overlay_ip(2)));
    h2.start_vswitchd().unwrap();
    // The netdev bridges' tap devices outlive vswitchd, with the underlay address.
    c[0].wait_ping(&overlay_ip(2), Duration::from_secs(15))
        .unwrap();

    h2.stop_ovsdb().unwrap();
    assert!(h2.daemon_pid("ovsdb-server").is_none());
    assert!(h2.vsctl(&["show"]).is_err());
    h2.start_ovsdb().unwrap();
    h2.vsctl(&["show"]).unwrap();
    // vswitchd reconnects to the new server on its own and applies changes again.
    h2.vsctl(&["set", "Bridge", BRIDGE, "external_ids:lab=restarted"])
        .unwrap();
    assert!(c[0].ping(&overlay_ip(2)));
}

#[test]
fn plugin_environment_and_namespace() {
    assert!(
        Path::new(common::host::PLUGIN_BIN).is_file(),
        "plugin binary {} missing",
        common::host::PLUGIN_BIN
    );
    let lab = timed_lab(1, Underlay::V4);
    let h = lab.host(1);
    // A stand-in for the plugin reports what it sees.
    let script = "cat; echo; echo \"rundir=$OVS_RUNDIR\"; echo \"log=$RUST_LOG\"; \
                  test -S \"$OVS_RUNDIR/db.sock\" && echo db=ok; ip -br addr show br-phy";
    let out = h.run_as_plugin("sh", &["-c", script], "{\"stdin\":true}");
    assert!(out.status.success(), "{}", common::cmd::describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(text.starts_with("{\"stdin\":true}"));
    assert!(text.contains(&format!("rundir={}", h.ovs_rundir().display())));
    assert!(text.contains("db=ok"));
    assert!(text.contains("10.99.0.1/24"), "not in the host namespace");
    if let Ok(log) = std::env::var("RUST_LOG") {
        assert!(text.contains(&format!("log={log}")));
    }
    // The real binary starts in the same way (whatever it answers to no arguments).
    let out = h.plugin(&[], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some() && !stderr.contains("exec of") && !stderr.contains("[lab]"),
        "{}",
        common::cmd::describe(&out)
    );
}

/// What a lab leaves on the machine while it exists: its namespaces, daemon pids and
/// directory.
struct Footprint {
    prefix: String,
    pids: Vec<i32>,
    dir: std::path::PathBuf,
}

impl Footprint {
    fn of(lab: &Lab) -> Footprint {
        let pids: Vec<i32> = lab
            .hosts()
            .iter()
            .flat_map(|h| {
                ["ovsdb-server", "ovs-vswitchd"]
                    .into_iter()
                    .filter_map(|d| h.daemon_pid(d))
            })
            .collect();
        assert_eq!(pids.len(), 2 * lab.hosts().len());
        Footprint {
            prefix: lab.prefix().to_string(),
            pids,
            dir: lab.dir().to_path_buf(),
        }
    }

    fn assert_gone(&self) {
        let left: Vec<String> = netns::list()
            .unwrap()
            .into_iter()
            .filter(|n| netns::parse_prefix(n).is_some_and(|(p, _)| p == self.prefix))
            .collect();
        assert!(left.is_empty(), "namespaces left: {left:?}");
        for pid in &self.pids {
            assert!(!process::alive(*pid), "daemon {pid} still runs");
        }
        assert!(!self.dir.exists(), "{} left", self.dir.display());
    }
}

#[test]
fn drop_removes_everything_also_after_a_panic() {
    let lab = timed_lab(2, Underlay::V4);
    let c = lab.host(1).container("sleeper").unwrap();
    // A process left running in a container namespace must not keep it alive.
    let sleeper = std::process::Command::new("ip")
        .args(["netns", "exec", c.name(), "sleep", "300"])
        .spawn()
        .unwrap();
    let footprint = Footprint::of(&lab);
    std::mem::forget(c); // leaked on purpose: the lab must still remove its namespace
    drop(lab);
    footprint.assert_gone();
    let mut sleeper = sleeper;
    let _ = sleeper.wait();

    let captured = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let lab = Lab::new(2, Underlay::V6).unwrap();
        let _c = lab.host(2).container("c").unwrap();
        *captured.lock().unwrap() = Some(Footprint::of(&lab));
        panic!("deliberate panic with a lab alive");
    });
    assert!(result.is_err());
    captured.lock().unwrap().take().unwrap().assert_gone();
}

/// Environment variable that turns `crash_helper` into a lab that is never cleaned up.
const CRASH_ENV: &str = "GENEVE_OVS_LAB_CRASH_HELPER";

/// Run only as a child of `stale_labs_of_dead_processes_are_removed`: builds a lab and
/// aborts, so that no destructor runs.
#[test]
#[ignore = "helper process for stale_labs_of_dead_processes_are_removed"]
fn crash_helper() {
    if std::env::var_os(CRASH_ENV).is_none() {
        return;
    }
    let lab = Lab::new(2, Underlay::V4).unwrap();
    let c = lab.host(1).container("c").unwrap();
    println!("prefix={} container={}", lab.prefix(), c.name());
    std::process::abort();
}

#[test]
fn stale_labs_of_dead_processes_are_removed() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "crash_helper", "--ignored", "--nocapture"])
        .env(CRASH_ENV, "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the helper should have aborted");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let prefix = stdout
        .lines()
        .find_map(|l| l.strip_prefix("prefix="))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no prefix in helper output: {stdout}"))
        .to_string();
    let ours = |n: &String| netns::parse_prefix(n).is_some_and(|(p, _)| p == prefix);
    let before: Vec<String> = netns::list().unwrap().into_iter().filter(ours).collect();
    // Switch, two hosts, one container; fewer only if another test process cleaned
    // stale labs in the meantime (possible when several test binaries run at once).
    if before.len() != 4 {
        eprintln!("crashed lab already partly removed: {before:?}");
    }
    let dir = std::env::temp_dir().join("geneve-ovs-lab").join(&prefix);
    let pids: Vec<i32> = ["h1", "h2"]
        .iter()
        .flat_map(|h| {
            ["ovsdb-server", "ovs-vswitchd"]
                .into_iter()
                .filter_map(|d| {
                    process::pid_from_file(
                        &dir.join(h).join(format!("{d}.pid")),
                        &format!("{}/", dir.join(h).display()),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if pids.len() != 4 {
        eprintln!("crashed lab's daemons already partly stopped: {pids:?}");
    }

    cleanup_stale();
    Footprint { prefix, pids, dir }.assert_gone();
}
