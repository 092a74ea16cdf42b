//! Traffic between containers on simulated hosts, through the bridges and GENEVE tunnels the
//! plugin built: the overlay works, carries full-MTU frames and TCP, does not loop in a mesh,
//! and keeps networks with different VNIs apart.

mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use common::podman::{self, create, setup};
use common::{traffic, Container, Lab, Underlay};
use serde_json::Value;

const SUBNET: &str = "192.168.120.0/24";
const SETTLE: Duration = Duration::from_secs(15);

fn all_peers(lab: &Lab) -> String {
    lab.hosts()
        .iter()
        .map(|h| h.underlay_ip().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates `name` on every host (the identical command everywhere) and returns what each
/// host's podman saved.
fn create_everywhere(
    lab: &Lab,
    name: &str,
    subnet: &str,
    extra: &[(&str, &str)],
) -> Result<Vec<Value>> {
    let peers = all_peers(lab);
    let mut options = vec![("peers", peers.as_str())];
    options.extend_from_slice(extra);
    lab.hosts()
        .iter()
        .map(|h| create(h, &podman::network(name, subnet, None, &options)))
        .collect()
}

/// One container per host on `nets`, with address `<prefix><host index>`.
fn container_per_host(
    lab: &Lab,
    nets: &[Value],
    tag: &str,
    ip_of: impl Fn(usize) -> String,
) -> Result<Vec<Container>> {
    let mut containers = Vec::new();
    for (i, net) in nets.iter().enumerate() {
        let host = lab.host(i + 1);
        let c = host.container(&format!("{tag}{}", i + 1))?;
        let ip = ip_of(i + 1);
        setup(
            host,
            &c,
            &podman::exec(net, &format!("{tag}{}", i + 1), &[&ip], None),
        )?;
        containers.push(c);
    }
    Ok(containers)
}

/// A TCP transfer of `bytes` from `client` to `server_ip` (iperf3 with a byte count, which
/// fails on any stall), proving that checksums and segmentation work end to end.
fn tcp_transfer(
    server: &Container,
    client: &Container,
    server_ip: &str,
    bytes: &str,
) -> Result<()> {
    let t = traffic::tcp_transfer(client, server, server_ip, 5201, bytes, false)?;
    ensure!(t.bytes_sent > 0, "nothing sent");
    Ok(())
}

#[test]
fn two_hosts_ping_and_tcp_across_the_tunnel() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let nets = create_everywhere(&lab, "net1", SUBNET, &[])?;
    let c = container_per_host(&lab, &nets, "c", |i| format!("192.168.120.{i}"))?;
    c[0].wait_ping("192.168.120.2", SETTLE)?;
    c[1].wait_ping("192.168.120.1", SETTLE)?;
    tcp_transfer(&c[0], &c[1], "192.168.120.1", "20M")?;
    tcp_transfer(&c[1], &c[0], "192.168.120.2", "20M")?;
    Ok(())
}

#[test]
fn full_mtu_frames_cross_with_df_set() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let nets = create_everywhere(&lab, "net1", SUBNET, &[])?;
    assert_eq!(nets[0]["options"]["mtu"], "1450", "underlay 1500 minus 50");
    let c = container_per_host(&lab, &nets, "c", |i| format!("192.168.120.{i}"))?;
    let link = &c[0].ip_json(&["link", "show", "eth0"])?[0];
    assert_eq!(link["mtu"], 1450);
    c[0].wait_ping("192.168.120.2", SETTLE)?;
    // 1450 - 20 (IP) - 8 (ICMP) bytes of payload fill the MTU exactly.
    let full = c[0].exec(
        "ping",
        &[
            "-c",
            "3",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1422",
            "192.168.120.2",
        ],
    );
    assert!(
        full.status.success(),
        "full-size ping failed: {}",
        String::from_utf8_lossy(&full.stdout)
    );
    let over = c[0].exec(
        "ping",
        &[
            "-c",
            "1",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            "1423",
            "192.168.120.2",
        ],
    );
    assert!(
        !over.status.success(),
        "a ping over the MTU with DF set must not pass"
    );
    Ok(())
}

#[test]
fn three_host_mesh_every_pair_pings_without_a_flood_loop() -> Result<()> {
    let lab = Lab::new(3, Underlay::V4)?;
    let nets = create_everywhere(&lab, "net1", SUBNET, &[])?;
    let c = container_per_host(&lab, &nets, "c", |i| format!("192.168.120.{i}"))?;
    for (i, from) in c.iter().enumerate() {
        for j in 1..=3 {
            if j != i + 1 {
                from.wait_ping(&format!("192.168.120.{j}"), SETTLE)?;
            }
        }
    }
    // A loop would multiply each broadcast into thousands of packets per tunnel. OVS writes
    // the counters every 5 s: wait until every tunnel reports traffic, then check how much.
    let bridge = nets[0]["network_interface"].as_str().unwrap();
    for host in lab.hosts() {
        let ports = host.vsctl(&["list-ports", bridge])?;
        for port in ports.lines().filter(|p| p.starts_with("gt")) {
            common::wait::until("tunnel statistics", Duration::from_secs(12), || {
                Ok(host.interface_stat(port, "tx_packets")? > 0)
            })?;
            let tx = host.interface_stat(port, "tx_packets")?;
            let rx = host.interface_stat(port, "rx_packets")?;
            assert!(
                tx < 300 && rx < 300,
                "{} {port}: tx {tx} rx {rx}: flooding",
                host.name()
            );
        }
    }
    Ok(())
}

#[test]
fn networks_with_different_vnis_do_not_mix() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let red = create_everywhere(&lab, "red", SUBNET, &[])?;
    let blue = create_everywhere(&lab, "blue", SUBNET, &[])?;
    assert_ne!(red[0]["options"]["vni"], blue[0]["options"]["vni"]);
    // red: .1 on host 1, .2 on host 2; blue: .3 on host 1, .4 on host 2.
    let r = container_per_host(&lab, &red, "r", |i| format!("192.168.120.{i}"))?;
    let b = container_per_host(&lab, &blue, "b", |i| format!("192.168.120.{}", i + 2))?;
    r[0].wait_ping("192.168.120.2", SETTLE)?;
    b[0].wait_ping("192.168.120.4", SETTLE)?;
    for (from, to) in [
        (&r[0], "192.168.120.4"),
        (&r[1], "192.168.120.3"),
        (&b[0], "192.168.120.2"),
        (&b[1], "192.168.120.1"),
        (&r[0], "192.168.120.3"),
    ] {
        assert!(
            !from.ping(to),
            "{} reached {to} on another network",
            from.name()
        );
    }
    Ok(())
}

#[test]
fn ipv6_overlay_on_an_ipv6_underlay() -> Result<()> {
    let lab = Lab::new(2, Underlay::V6)?;
    let nets = create_everywhere(&lab, "net6", "fd12:3456::/64", &[])?;
    assert_eq!(nets[0]["options"]["mtu"], "1430", "underlay 1500 minus 70");
    let remote = nets[0]["options"]["peers"].as_str().unwrap();
    assert_eq!(remote, "fd99::2");
    let c = container_per_host(&lab, &nets, "c", |i| format!("fd12:3456::{i}"))?;
    c[0].wait_ping("fd12:3456::2", SETTLE)?;
    c[1].wait_ping("fd12:3456::1", SETTLE)?;
    // 1430 - 40 (IPv6) - 8 (ICMPv6) bytes fill the MTU.
    let full = c[0].exec(
        "ping",
        &[
            "-c",
            "2",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1382",
            "fd12:3456::2",
        ],
    );
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stdout)
    );
    tcp_transfer(&c[1], &c[0], "fd12:3456::2", "10M")?;
    Ok(())
}
