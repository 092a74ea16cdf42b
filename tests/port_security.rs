//! Port security on the overlay: what a container with NET_RAW sends as someone else (another
//! container's address in ARP, neighbour advertisements or IP, another MAC, the gateway's MAC,
//! router advertisements, DHCP server replies, VLAN tags, frames to BFD's MAC) reaches no
//! other container on any host, while its own traffic does; with `port_security=false` all of
//! it does (so the capture would see it). Also: UDP 3784 between containers with BFD up, the
//! protection after an ovs-vswitchd restart and its restore, and static MACs refused.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::frames;
use common::operate::{gc_json, network_dir, save_network, status_json};
use common::podman::{self, create, error_of, setup};
use common::{Container, Lab, Underlay};
use geneve_ovs::netns::Netns;
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_secs(15);
const FAKE_MAC: [u8; 6] = [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01];

fn dual_stack(options: &[(&str, &str)]) -> Value {
    let mut net = podman::network("net1", "192.168.120.0/24", None, options);
    net["ipv6_enabled"] = true.into();
    net["subnets"] = json!([{"subnet": "192.168.120.0/24"}, {"subnet": "fd12:3456::/64"}]);
    net
}

fn mac_of(status: &Value) -> Result<[u8; 6]> {
    let text = status["interfaces"]["eth0"]["mac_address"]
        .as_str()
        .context("mac_address in setup's answer")?;
    geneve_ovs::naming::parse_mac(text).context("a MAC in setup's answer")
}

fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    geneve_ovs::flows::link_local(mac)
}

/// Two hosts, the attacker `a` (192.168.120.1) and a victim `v1` (.3) on host 1, a victim `v2`
/// (.2) on host 2; `.4` / `fd12:3456::4` belong to a fourth container `t` on host 2.
struct Scene {
    lab: Lab,
    nets: Vec<Value>,
    a: Container,
    a_mac: [u8; 6],
    victims: Vec<Container>,
    /// The container whose addresses the attacker claims.
    _impersonated: Container,
}

fn scene(options: &[(&str, &str)]) -> Result<Scene> {
    let lab = Lab::new(2, Underlay::V4)?;
    let mut opts = vec![("peers", "10.99.0.1,10.99.0.2")];
    opts.extend_from_slice(options);
    let nets = vec![
        create(lab.host(1), &dual_stack(&opts))?,
        create(lab.host(2), &dual_stack(&opts))?,
    ];
    let (h1, h2) = (lab.host(1), lab.host(2));
    let a = h1.container("a")?;
    let sa = setup(
        h1,
        &a,
        &podman::exec(&nets[0], "a", &["192.168.120.1", "fd12:3456::1"], None),
    )?;
    let v1 = h1.container("v1")?;
    setup(
        h1,
        &v1,
        &podman::exec(&nets[0], "v1", &["192.168.120.3", "fd12:3456::3"], None),
    )?;
    let v2 = h2.container("v2")?;
    setup(
        h2,
        &v2,
        &podman::exec(&nets[1], "v2", &["192.168.120.2", "fd12:3456::2"], None),
    )?;
    let t = h2.container("t")?;
    setup(
        h2,
        &t,
        &podman::exec(&nets[1], "t", &["192.168.120.4", "fd12:3456::4"], None),
    )?;
    a.wait_ping("192.168.120.2", SETTLE)?;
    a.wait_ping("192.168.120.3", SETTLE)?;
    Ok(Scene {
        lab,
        a_mac: mac_of(&sa)?,
        nets,
        a,
        victims: vec![v1, v2],
        _impersonated: t,
    })
}

/// Each named frame the attacker sends, and whether each victim received it.
struct Outcome {
    received: Vec<(String, Vec<bool>)>,
}

impl Outcome {
    fn arrived(&self, name: &str) -> Vec<bool> {
        self.received
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    }
}

/// Sends `frames` from the attacker's eth0 and captures on every victim's eth0.
fn send_and_capture(s: &Scene, frames: &[(&str, Vec<u8>)]) -> Result<Outcome> {
    let captures = s
        .victims
        .iter()
        .map(|v| frames::capture(&v.netns_path(), "eth0", Duration::from_millis(1500)))
        .collect::<Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_millis(200));
    let all: Vec<Vec<u8>> = frames.iter().map(|(_, f)| f.clone()).collect();
    frames::send(&s.a.netns_path(), "eth0", &all)?;
    let mut seen = Vec::new();
    for c in captures {
        seen.push(
            c.join()
                .map_err(|_| anyhow::anyhow!("capture thread panicked"))??,
        );
    }
    let received = frames
        .iter()
        .map(|(name, frame)| {
            // The kernel may hand a tagged frame to the capture with its tag taken off.
            let untagged = (frame.len() > 16 && frame[12..14] == [0x81, 0x00])
                .then(|| [&frame[..12], &frame[16..]].concat());
            let hit = seen
                .iter()
                .map(|got| {
                    got.iter()
                        .any(|g| g == frame || Some(g) == untagged.as_ref())
                })
                .collect();
            (name.to_string(), hit)
        })
        .collect();
    Ok(Outcome { received })
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The attacker's forged frames, by name.
fn attacks(s: &Scene) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mac = s.a_mac;
    let vni: u32 = s.nets[0]["options"]["vni"]
        .as_str()
        .context("vni")?
        .parse()?;
    let gateway_mac = geneve_ovs::naming::gateway_mac(vni);
    let own = ip4("192.168.120.1");
    let victim = ip4("192.168.120.2");
    let other = ip4("192.168.120.4");
    let ll = link_local(mac);
    let vlan_inner = frames::udp4(
        frames::BROADCAST,
        mac,
        own,
        victim,
        4000,
        9999,
        b"vlan-tagged",
    );
    Ok(vec![
        (
            "gratuitous ARP reply for another's address",
            frames::arp(mac, 2, other, other),
        ),
        (
            "gratuitous ARP request for another's address",
            frames::arp(mac, 1, other, other),
        ),
        (
            "unsolicited NA for another's address",
            frames::neighbour_advertisement(mac, ll, ip6("fd12:3456::4")),
        ),
        (
            "NA for another's address from that address",
            frames::neighbour_advertisement(mac, ip6("fd12:3456::4"), ip6("fd12:3456::4")),
        ),
        (
            "spoofed source IPv4",
            frames::udp4(
                frames::BROADCAST,
                mac,
                other,
                victim,
                4000,
                9999,
                b"spoofed-ip",
            ),
        ),
        (
            "spoofed source IPv6",
            frames::udp6(mac, ip6("fd12:3456::4"), 4000, 9999, b"spoofed-ip6"),
        ),
        (
            "spoofed source MAC",
            frames::udp4(
                frames::BROADCAST,
                FAKE_MAC,
                own,
                victim,
                4000,
                9999,
                b"spoofed-mac",
            ),
        ),
        (
            "the gateway's MAC as source",
            frames::udp4(
                frames::BROADCAST,
                gateway_mac,
                own,
                victim,
                4000,
                9999,
                b"gw-mac",
            ),
        ),
        (
            "router advertisement",
            frames::router_advertisement(mac, ll),
        ),
        ("DHCP offer", frames::dhcp_offer(mac, own, victim)),
        (
            "DHCPv6 server reply",
            frames::udp6(mac, ll, 547, 546, b"dhcpv6-reply"),
        ),
        ("VLAN-tagged frame", frames::tagged(&vlan_inner, 7)),
        (
            "frame to BFD's MAC",
            frames::udp4(
                geneve_ovs::flows::BFD_DST_MAC,
                mac,
                own,
                victim,
                4000,
                9999,
                b"to-bfd-mac",
            ),
        ),
    ])
}

/// What the attacker may send: its own addresses, from its own MAC.
fn legitimate(s: &Scene) -> Vec<(&'static str, Vec<u8>)> {
    let mac = s.a_mac;
    let own = ip4("192.168.120.1");
    vec![
        (
            "own IPv4",
            frames::udp4(
                frames::BROADCAST,
                mac,
                own,
                ip4("192.168.120.2"),
                4000,
                9999,
                b"own-ip",
            ),
        ),
        (
            "own IPv6",
            frames::udp6(mac, ip6("fd12:3456::1"), 4000, 9999, b"own-ip6"),
        ),
        (
            "gratuitous ARP for its own address",
            frames::arp(mac, 2, own, own),
        ),
        (
            "NA for its own address",
            frames::neighbour_advertisement(mac, link_local(mac), ip6("fd12:3456::1")),
        ),
    ]
}

fn check(s: &Scene, expect_attacks_through: bool) -> Result<()> {
    let mut all = legitimate(s);
    let attacks = attacks(s)?;
    all.extend(attacks.iter().cloned());
    let outcome = send_and_capture(s, &all)?;
    let mut wrong = Vec::new();
    for (name, _) in legitimate(s) {
        let got = outcome.arrived(name);
        if got != vec![true, true] {
            wrong.push(format!(
                "legitimate {name:?} reached victims (host 1, host 2): {got:?}"
            ));
        }
    }
    for (name, _) in &attacks {
        let got = outcome.arrived(name);
        let want = vec![expect_attacks_through; 2];
        if got != want {
            wrong.push(format!(
                "{name:?} reached victims (host 1, host 2): {got:?}, expected {want:?}"
            ));
        }
    }
    if !wrong.is_empty() {
        bail!("{}", wrong.join("\n"));
    }
    Ok(())
}

#[test]
fn forged_frames_reach_no_other_container_on_any_host() -> Result<()> {
    let s = scene(&[])?;
    check(&s, false)?;
    // The victim on the other host still resolves the impersonated address to its owner.
    let out = s.victims[1].exec_ok("ip", &["neigh", "show", "192.168.120.4"])?;
    ensure!(
        !out.contains(&geneve_ovs::naming::format_mac(&s.a_mac)),
        "the attacker's MAC is in the victim's neighbour table: {out}"
    );
    // And the overlay still works both ways, IPv4 and IPv6 (neighbour discovery included).
    s.victims[1].wait_ping("192.168.120.1", SETTLE)?;
    s.victims[1].wait_ping("fd12:3456::1", SETTLE)?;
    s.a.wait_ping("fd12:3456::3", SETTLE)?;
    Ok(())
}

#[test]
fn without_port_security_the_same_frames_get_through() -> Result<()> {
    let s = scene(&[("port_security", "false")])?;
    check(&s, true)
}

/// A UDP datagram from `from` to `to_ip:port`, received by a socket in `to`'s namespace.
fn udp_crosses(from: &Container, to: &Container, to_ip: &str, port: u16) -> Result<bool> {
    let receiver = Netns::open(&to.netns_path())?.enter(|| {
        let socket = UdpSocket::bind(("0.0.0.0", port)).context("binding the receiver")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(socket)
    })?;
    let target: std::net::SocketAddr = format!("{to_ip}:{port}").parse()?;
    Netns::open(&from.netns_path())?.enter(|| {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        for _ in 0..3 {
            socket.send_to(b"not bfd", target)?;
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    })?;
    let mut buf = [0u8; 64];
    Ok(matches!(receiver.recv_from(&mut buf), Ok((7, _))))
}

fn bfd_states(report: &Value) -> Vec<String> {
    report["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| n["tunnels"].as_array().cloned().unwrap_or_default())
        .map(|t| t["bfd"].as_str().unwrap_or("").to_string())
        .collect()
}

fn wait_bfd_up(host: &common::Host, dir: &Path) -> Result<()> {
    common::wait::until("BFD up", SETTLE, || {
        let (_, report) = status_json(host, dir)?;
        Ok(bfd_states(&report) == vec!["up".to_string()])
    })
}

#[test]
fn udp_3784_between_containers_crosses_hosts_and_bfd_stays_up() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let opts = [("peers", "10.99.0.1,10.99.0.2")];
    let n1 = create(
        lab.host(1),
        &podman::network("net1", "192.168.120.0/24", None, &opts),
    )?;
    let n2 = create(
        lab.host(2),
        &podman::network("net1", "192.168.120.0/24", None, &opts),
    )?;
    let dir1 = network_dir(&lab, 1)?;
    save_network(&dir1, &n1)?;
    let c1 = lab.host(1).container("c1")?;
    setup(
        lab.host(1),
        &c1,
        &podman::exec(&n1, "c1", &["192.168.120.1"], None),
    )?;
    let c2 = lab.host(2).container("c2")?;
    setup(
        lab.host(2),
        &c2,
        &podman::exec(&n2, "c2", &["192.168.120.2"], None),
    )?;
    wait_bfd_up(lab.host(1), &dir1)?;
    c1.wait_ping("192.168.120.2", SETTLE)?;
    ensure!(
        udp_crosses(&c1, &c2, "192.168.120.2", 3784)?,
        "UDP 3784 from host 1's container never reached host 2's"
    );
    ensure!(
        udp_crosses(&c2, &c1, "192.168.120.1", 3784)?,
        "UDP 3784 from host 2's container never reached host 1's"
    );
    // BFD itself still runs: up now, and still up after more than its detection time.
    std::thread::sleep(Duration::from_secs(4));
    let (code, report) = status_json(lab.host(1), &dir1)?;
    assert_eq!(bfd_states(&report), vec!["up"], "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    Ok(())
}

/// The flows column of every container in a status report.
fn flows_column(report: &Value) -> Vec<String> {
    report["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| n["containers"].as_array().cloned().unwrap_or_default())
        .map(|c| c["flows"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn after_a_vswitchd_restart_nothing_crosses_until_the_restore_and_status_says_so() -> Result<()> {
    let s = scene(&[])?;
    let h2 = s.lab.host(2);
    let dir2 = network_dir(&s.lab, 2)?;
    save_network(&dir2, &s.nets[1])?;
    wait_bfd_up(h2, &dir2)?;
    let (code, report) = status_json(h2, &dir2)?;
    assert_eq!(
        flows_column(&report),
        vec!["present", "present"],
        "{report:#}"
    );
    assert_eq!(code, 0, "{report:#}");

    // One port's flows gone (deleted by hand): status names it and exits 2, gc puts them back.
    let bridge = format!(
        "gnv{}",
        s.nets[1]["options"]["vni"].as_str().context("vni")?
    );
    let port = report["networks"][0]["containers"][0]["port"]
        .as_str()
        .context("port")?
        .to_string();
    common::cmd::Cmd::new("ovs-ofctl")
        .arg("del-flows")
        .arg(format!("unix:{}/{bridge}.mgmt", h2.ovs_rundir().display()))
        .arg(format!(
            "cookie={:#x}/-1",
            geneve_ovs::flows::port_cookie(&port)
        ))
        .run()?;
    let (code, report) = status_json(h2, &dir2)?;
    assert_eq!(
        flows_column(&report),
        vec!["missing", "present"],
        "{report:#}"
    );
    assert_eq!(report["flows_missing"], 1, "{report:#}");
    assert_eq!(code, 2, "{report:#}");
    let (_, text) = common::operate::operator(h2, &dir2, &["status"]);
    assert!(
        text.contains("1 container port(s) WITHOUT their port-security flows"),
        "{text}"
    );
    gc_json(h2, &dir2, &[])?;
    assert_eq!(status_json(h2, &dir2)?.0, 0);

    h2.stop_vswitchd()?;
    h2.start_vswitchd()?;
    // Until the restore runs, host 2's bridge (fail_mode=secure) has no flows: no forged
    // frame, and nothing else, crosses it; status reports both ports and exits 2.
    let outcome = send_and_capture(&s, &attacks(&s)?)?;
    for (name, got) in &outcome.received {
        assert!(
            !got[1],
            "{name:?} reached host 2's container before the restore"
        );
    }
    let (code, report) = status_json(h2, &dir2)?;
    assert_eq!(
        flows_column(&report),
        vec!["missing", "missing"],
        "{report:#}"
    );
    assert_eq!(report["flows_missing"], 2, "{report:#}");
    assert_eq!(code, 2, "{report:#}");
    ensure!(
        !s.a.ping("192.168.120.2"),
        "traffic crossed an unrestored bridge"
    );

    // The restore, as contrib/systemd/geneve-ovs-flows.service runs it: `geneve-ovs gc`.
    let started = Instant::now();
    let result = gc_json(h2, &dir2, &[])?;
    let restored = started.elapsed();
    assert_eq!(result["flows_restored"], json!([bridge]), "{result:#}");
    s.a.wait_ping("192.168.120.2", SETTLE)?;
    let back = started.elapsed();
    eprintln!(
        "restore: gc took {} ms; traffic back {} ms after gc started",
        restored.as_millis(),
        back.as_millis()
    );
    let (_, report) = status_json(h2, &dir2)?;
    assert_eq!(
        flows_column(&report),
        vec!["present", "present"],
        "{report:#}"
    );
    assert_eq!(report["flows_missing"], 0, "{report:#}");
    // Protected again: the forged frames still reach nobody.
    check(&s, false)
}

#[test]
fn a_static_mac_no_container_may_have_is_refused_before_anything_is_built() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    let net = create(h1, &podman::network("net1", "192.168.120.0/24", None, &[]))?;
    let vni: u32 = net["options"]["vni"].as_str().context("vni")?.parse()?;
    let gateway = geneve_ovs::naming::format_mac(&geneve_ovs::naming::gateway_mac(vni));
    let c = h1.container("c1")?;
    let netns = c.netns_path().to_str().context("netns path")?.to_string();
    let links_before = h1.links()?;
    for (mac, why) in [
        (gateway.as_str(), "gateway"),
        ("01:00:5e:00:00:01", "multicast"),
        ("00:00:00:00:00:00", "all-zero"),
    ] {
        let exec = podman::exec(&net, "c1", &["192.168.120.5"], Some(mac));
        let err = error_of(&h1.plugin(&["setup", &netns], &exec.to_string()))?;
        assert!(err.contains(mac) && err.contains(why), "{err}");
        assert_eq!(
            h1.links()?,
            links_before,
            "setup left a link behind for mac={mac}"
        );
        assert!(
            h1.container_ports()?.is_empty(),
            "setup left a port behind for mac={mac}"
        );
    }
    Ok(())
}

#[test]
fn a_bridge_of_an_older_version_keeps_its_running_containers_when_it_becomes_secure() -> Result<()>
{
    let lab = Lab::new(2, Underlay::V4)?;
    let opts = [("peers", "10.99.0.1,10.99.0.2")];
    let n1 = create(
        lab.host(1),
        &podman::network("net1", "192.168.120.0/24", None, &opts),
    )?;
    let n2 = create(
        lab.host(2),
        &podman::network("net1", "192.168.120.0/24", None, &opts),
    )?;
    let (h1, h2) = (lab.host(1), lab.host(2));
    let c1 = h1.container("c1")?;
    setup(h1, &c1, &podman::exec(&n1, "c1", &["192.168.120.1"], None))?;
    let c2 = h2.container("c2")?;
    setup(h2, &c2, &podman::exec(&n2, "c2", &["192.168.120.2"], None))?;
    c1.wait_ping("192.168.120.2", SETTLE)?;

    // Host 1's bridge as a version without port security left it: standalone, one NORMAL flow.
    let bridge = format!("gnv{}", n1["options"]["vni"].as_str().context("vni")?);
    let mgmt = format!("unix:{}/{bridge}.mgmt", h1.ovs_rundir().display());
    h1.vsctl(&["clear", "Bridge", &bridge, "fail_mode"])?;
    common::cmd::Cmd::new("ovs-ofctl")
        .args(["replace-flows", mgmt.as_str(), "-"])
        .stdin("priority=0,actions=NORMAL\n")
        .run()?;
    c1.wait_ping("192.168.120.2", SETTLE)?;

    // The next container there makes the bridge secure, which empties its table: the one that
    // was already running must get its flows back in the same setup.
    let c3 = h1.container("c3")?;
    setup(h1, &c3, &podman::exec(&n1, "c3", &["192.168.120.3"], None))?;
    assert_eq!(
        h1.vsctl(&["get", "Bridge", &bridge, "fail_mode"])?.trim(),
        "secure"
    );
    c1.wait_ping("192.168.120.2", SETTLE)?;
    c3.wait_ping("192.168.120.2", SETTLE)?;
    let dir1 = network_dir(&lab, 1)?;
    save_network(&dir1, &n1)?;
    let (_, report) = status_json(h1, &dir1)?;
    assert_eq!(
        flows_column(&report),
        vec!["present", "present"],
        "{report:#}"
    );
    Ok(())
}
