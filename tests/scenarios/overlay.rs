//! Scenarios on internal networks, run by the userspace suite (`e2e_podman.rs`) and by the
//! kernel-datapath suite (`e2e_kernel.rs`) alike: each takes a running lab of the size it
//! names and leaves it for [`PodmanLab::reset`].

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::podman_lab::{ok, stdout, wait, Container, Host, PodmanLab, IMAGE, UNDERLAY_MTU};

pub const NET: &str = "net1";
pub const SUBNET: &str = "192.168.120.0/24";
/// The seed's disjoint ranges: host 1 and host 2.
pub const SEED_RANGES: [&str; 2] = [
    "192.168.120.1-192.168.120.126",
    "192.168.120.129-192.168.120.254",
];
/// Three hosts' disjoint ranges of [`SUBNET`].
pub const MESH_RANGES: [&str; 3] = [
    "192.168.120.1-192.168.120.80",
    "192.168.120.81-192.168.120.160",
    "192.168.120.161-192.168.120.240",
];
/// How long a first packet may take (ARP, MAC learning, a fresh veth).
pub const SETTLE: Duration = Duration::from_secs(15);
/// GENEVE over IPv4: outer IPv4 + UDP + GENEVE + inner Ethernet.
pub const OVERHEAD_V4: u32 = 50;
/// GENEVE over IPv6.
pub const OVERHEAD_V6: u32 = 70;

/// On host `h`: `podman network create -d geneve-ovs --internal --subnet SUBNET --ip-range
/// RANGE --opt peers=PEERS EXTRA... NAME`, as in the seed.
pub fn internal_network(
    h: Host,
    name: &str,
    subnet: &str,
    range: &str,
    peers: &str,
    extra: &[&str],
) -> Result<Value> {
    let peers = format!("peers={peers}");
    let mut flags = vec![
        "--internal",
        "--subnet",
        subnet,
        "--ip-range",
        range,
        "--opt",
        &peers,
    ];
    flags.extend_from_slice(extra);
    h.create_network(name, &flags)
}

/// A resolved option of an inspected network.
pub fn opt(net: &Value, key: &str) -> String {
    net["options"][key].as_str().unwrap_or_default().to_string()
}

pub fn bridge_of(net: &Value) -> String {
    net["network_interface"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every ordered pair of containers pings.
pub fn all_pairs_ping(containers: &[(Container, String)]) -> Result<()> {
    for (a, _) in containers {
        for (b, ip) in containers {
            if a.name() != b.name() {
                a.wait_ping(ip, SETTLE)
                    .with_context(|| format!("{} -> {}", a.name(), b.name()))?;
            }
        }
    }
    Ok(())
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

/// (host, tunnel) -> (tx_packets, rx_packets) of every GENEVE interface of the lab.
pub fn tunnel_counters(lab: &PodmanLab) -> Result<BTreeMap<(usize, String), (u64, u64)>> {
    let mut counters = BTreeMap::new();
    for h in lab.hosts() {
        for t in h.tunnels()? {
            let stat = |k: &str| t["statistics"][k].as_u64().unwrap_or(0);
            let name = t["name"].as_str().unwrap_or_default().to_string();
            counters.insert((h.index(), name), (stat("tx_packets"), stat("rx_packets")));
        }
    }
    Ok(counters)
}

pub fn seed_scenario_two_hosts(lab: &PodmanLab) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    for (h, range) in lab.hosts().into_iter().zip(SEED_RANGES) {
        let net = internal_network(h, NET, SUBNET, range, &peers, &[])?;
        // No datapath option: the plugin finds what ovs-vswitchd offers (the kernel's where
        // the openvswitch module is loaded).
        assert_eq!(opt(&net, "datapath"), lab.datapath().ovs_name());
    }

    // A container on each host gets the first address of its host's range, as in the seed.
    let c1 = h1.run_sleeper("c1", NET)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    let (ip1, ip2) = (c1.ip(NET)?, c2.ip(NET)?);
    assert_eq!(ip1, "192.168.120.1");
    assert_eq!(ip2, "192.168.120.129");
    let addr = c2.exec_ok(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])?;
    assert!(addr.contains("inet 192.168.120.129/24"), "{addr}");

    c1.wait_ping(&ip2, SETTLE)?;
    assert!(c2.ping(&ip1), "host 2 -> host 1");
    assert!(c1.ping(&ip2), "host 1 -> host 2");

    // busybox httpd serving /etc on host 1; host 2 fetches the motd.
    let web = h1.run_detached(
        "web",
        &["--net", NET],
        &["httpd", "-f", "-p", "8080", "-h", "/etc"],
    )?;
    let url = format!("http://{}:8080/motd", web.ip(NET)?);
    let motd = h1.podman_ok(&["run", "--rm", IMAGE, "cat", "/etc/motd"])?;
    assert!(motd.contains("Debian GNU/Linux"), "image motd: {motd}");
    c2.fetch(&url, SETTLE)?;
    // The seed's own command: a fresh container on host 2.
    let fetched = h2.podman_ok(&[
        "run", "--rm", "--net", NET, IMAGE, "wget", "-q", "-O", "-", &url,
    ])?;
    assert_eq!(fetched.trim(), motd.trim());
    Ok(())
}

pub fn three_hosts_every_pair_pings_without_flooding(lab: &PodmanLab) -> Result<()> {
    let peers = lab.all_peers();
    let mut containers = Vec::new();
    for (h, range) in lab.hosts().into_iter().zip(MESH_RANGES) {
        internal_network(h, NET, SUBNET, range, &peers, &[])?;
        let c = h.run_sleeper(&format!("c{}", h.index()), NET)?;
        let ip = c.ip(NET)?;
        containers.push((c, ip));
    }
    all_pairs_ping(&containers)?;

    // ovs-vswitchd writes Interface.statistics every 5 s. Take the counters once every
    // tunnel has them, flood the overlay with ARP broadcasts (pings to an address nobody
    // has), and take them again once every tunnel counted the broadcasts: besides those, the
    // tunnels carry BFD's packet a second; a loop would add thousands a second.
    let before = wait::until_some("tunnel statistics", Duration::from_secs(20), || {
        let counters = tunnel_counters(lab)?;
        Ok(counters.values().all(|(tx, _)| *tx > 0).then_some(counters))
    })?;
    for (c, _) in &containers {
        let _ = c.exec(&["ping", "-c", "2", "-W", "1", "192.168.120.250"]);
    }
    let after = wait::until_some("the broadcasts in the statistics", SETTLE, || {
        let counters = tunnel_counters(lab)?;
        let grew = counters
            .iter()
            .all(|(k, (tx, _))| before.get(k).is_some_and(|(tx0, _)| tx > tx0));
        Ok(grew.then_some(counters))
    })?;
    assert_eq!(after.len(), 6, "two tunnels per host: {after:?}");
    for (key, (tx, rx)) in &after {
        let (tx0, rx0) = before[key];
        eprintln!("{key:?}: tx {tx0} -> {tx}, rx {rx0} -> {rx}");
        assert!(
            tx - tx0 < 150 && rx.saturating_sub(rx0) < 150,
            "{key:?}: tx {tx0} -> {tx}, rx {rx0} -> {rx}: a flood loop?"
        );
    }
    Ok(())
}

pub fn mtu_is_the_underlays_minus_50_and_full_frames_cross(lab: &PodmanLab) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    for (h, range) in lab.hosts().into_iter().zip(SEED_RANGES) {
        let net = internal_network(h, NET, SUBNET, range, &peers, &[])?;
        assert_eq!(opt(&net, "mtu"), "1450");
    }
    let c1 = h1.run_sleeper("c1", NET)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    assert_eq!(c1.mtu("eth0")?, UNDERLAY_MTU - OVERHEAD_V4);
    assert_eq!(c2.mtu("eth0")?, UNDERLAY_MTU - OVERHEAD_V4);
    let (ip1, ip2) = (c1.ip(NET)?, c2.ip(NET)?);
    c1.wait_ping(&ip2, SETTLE)?;

    // IPv4 header 20 + ICMP 8 + payload = exactly the MTU, don't-fragment set.
    let full = UNDERLAY_MTU - OVERHEAD_V4 - 28;
    for (from, to) in [(&c1, &ip2), (&c2, &ip1)] {
        let out = from.ping_df(to, full)?;
        assert!(ok(&out), "{}", stdout(&out));
    }
    let over = c1.ping_df(&ip2, full + 1)?;
    assert!(!ok(&over), "a frame over the MTU left with DF set");

    // The MTU follows the underlay: lower it and create another network.
    let lower = 1400;
    for h in lab.hosts() {
        h.vsctl(&[
            "set",
            "Interface",
            "br-phy",
            &format!("mtu_request={lower}"),
        ])?;
        wait::until("br-phy MTU", Duration::from_secs(10), || {
            Ok(h.exec_ok(&["cat", "/sys/class/net/br-phy/mtu"])? == lower.to_string())
        })?;
    }
    let mut small = Vec::new();
    for (h, range) in lab.hosts().into_iter().zip([
        "192.168.121.1-192.168.121.126",
        "192.168.121.129-192.168.121.254",
    ]) {
        let net = internal_network(h, "small", "192.168.121.0/24", range, &peers, &[])?;
        assert_eq!(opt(&net, "mtu"), (lower - OVERHEAD_V4).to_string());
        let c = h.run_sleeper(&format!("s{}", h.index()), "small")?;
        assert_eq!(c.mtu("eth0")?, lower - OVERHEAD_V4);
        small.push(c);
    }
    let target = small[1].ip("small")?;
    small[0].wait_ping(&target, SETTLE)?;
    let out = small[0].ping_df(&target, lower - OVERHEAD_V4 - 28)?;
    assert!(ok(&out), "{}", stdout(&out));
    Ok(())
}

pub fn ipv6_overlay_and_ipv6_underlay(lab: &PodmanLab) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));

    // An IPv6 overlay over the IPv4 underlay; each host takes its own half of the /64.
    let mut ranges = Vec::new();
    for h in lab.hosts() {
        let net = h.create_network(
            "net6",
            &[
                "--internal",
                "--ipv6",
                "--subnet",
                "fd12:3456::/64",
                "--opt",
                &format!("peers={}", lab.all_peers()),
            ],
        )?;
        assert_eq!(opt(&net, "mtu"), (UNDERLAY_MTU - OVERHEAD_V4).to_string());
        let range = &net["subnets"][0]["lease_range"];
        let start: std::net::Ipv6Addr = range["start_ip"].as_str().context("start")?.parse()?;
        let end: std::net::Ipv6Addr = range["end_ip"].as_str().context("end")?.parse()?;
        ranges.push((start, end));
    }
    assert!(ranges[0].1 < ranges[1].0, "ranges overlap: {ranges:?}");
    let c1 = h1.run_sleeper("c1", "net6")?;
    let c2 = h2.run_sleeper("c2", "net6")?;
    let (ip1, ip2) = (c1.ip6("net6")?, c2.ip6("net6")?);
    for (ip, (start, end)) in [(&ip1, ranges[0]), (&ip2, ranges[1])] {
        let ip: std::net::Ipv6Addr = ip.parse()?;
        assert!(start <= ip && ip <= end, "{ip} outside {start}-{end}");
    }
    c1.wait_ping(&ip2, SETTLE)?;
    c2.wait_ping(&ip1, SETTLE)?;
    // IPv6 header 40 + ICMPv6 8 + payload = the MTU.
    let out = c1.ping_df(&ip2, UNDERLAY_MTU - OVERHEAD_V4 - 48)?;
    assert!(ok(&out), "{}", stdout(&out));

    // An IPv4 overlay over the IPv6 underlay: tunnels to fd99::N, MTU minus 70.
    let peers6 = lab.all_peers6();
    let mut small = Vec::new();
    for (h, range) in lab.hosts().into_iter().zip([
        "192.168.121.1-192.168.121.126",
        "192.168.121.129-192.168.121.254",
    ]) {
        let net = internal_network(h, "under6", "192.168.121.0/24", range, &peers6, &[])?;
        assert_eq!(opt(&net, "mtu"), (UNDERLAY_MTU - OVERHEAD_V6).to_string());
        let bridge = bridge_of(&net);
        let ports = h.ports(&bridge)?;
        let remotes: Vec<String> = h
            .tunnels()?
            .iter()
            .filter(|t| ports.iter().any(|p| t["name"] == p.as_str()))
            .map(|t| t["options"]["remote_ip"].as_str().unwrap_or("").to_string())
            .collect();
        let other = if h.index() == 1 { h2.ip6() } else { h1.ip6() };
        assert_eq!(remotes, [other]);
        let c = h.run_sleeper(&format!("u{}", h.index()), "under6")?;
        assert_eq!(c.mtu("eth0")?, UNDERLAY_MTU - OVERHEAD_V6);
        small.push(c);
    }
    let (u1, u2) = (small[0].ip("under6")?, small[1].ip("under6")?);
    small[0].wait_ping(&u2, SETTLE)?;
    small[1].wait_ping(&u1, SETTLE)?;
    let out = small[0].ping_df(&u2, UNDERLAY_MTU - OVERHEAD_V6 - 28)?;
    assert!(ok(&out), "{}", stdout(&out));
    Ok(())
}
