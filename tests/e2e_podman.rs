//! End-to-end tests with real podman (5.4, netavark 1.14) on simulated hosts
//! (`contrib/lab/`), each with its own Open vSwitch: the plugin as users drive it, through
//! `podman network create -d geneve-ovs` and `podman run --net`, on internal networks.
//!
//! * the seed scenario on two hosts: ping both ways, busybox `httpd` serving `/etc` on host 1,
//!   `wget .../motd` from host 2;
//! * `podman network create` alone builds the bridge and the tunnels;
//! * three hosts: every ordered pair of containers pings, no flood loop over the tunnels;
//! * two networks with the same subnet and different VNIs do not exchange a frame;
//! * `podman rm -f`, `podman restart`, `podman network inspect`;
//! * MTU: the underlay's minus 50, and a full-size don't-fragment ping crosses;
//! * IPv6 overlay, and IPv6 underlay (MTU minus 70);
//! * wrong options are reported with the plugin's message, and nothing is left in OVS.
//!
//! Non-internal networks and default subnets are in `e2e_podman_open.rs`.

mod podman_lab;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use podman_lab::{ok, stderr, stdout, wait, Container, Host, PodmanLab, IMAGE, UNDERLAY_MTU};
use serde_json::Value;

const NET: &str = "net1";
const SUBNET: &str = "192.168.120.0/24";
/// The seed's disjoint ranges: host 1 and host 2.
const SEED_RANGES: [&str; 2] = [
    "192.168.120.1-192.168.120.126",
    "192.168.120.129-192.168.120.254",
];
/// Three hosts' disjoint ranges of [`SUBNET`].
const MESH_RANGES: [&str; 3] = [
    "192.168.120.1-192.168.120.80",
    "192.168.120.81-192.168.120.160",
    "192.168.120.161-192.168.120.240",
];
/// How long a first packet may take (ARP, MAC learning, a fresh veth).
const SETTLE: Duration = Duration::from_secs(15);
/// GENEVE over IPv4: outer IPv4 + UDP + GENEVE + inner Ethernet.
const OVERHEAD_V4: u32 = 50;
/// GENEVE over IPv6.
const OVERHEAD_V6: u32 = 70;

/// On host `h`: `podman network create -d geneve-ovs --internal --subnet SUBNET --ip-range
/// RANGE --opt peers=PEERS EXTRA... NAME`, as in the seed.
fn internal_network(
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
fn opt(net: &Value, key: &str) -> String {
    net["options"][key].as_str().unwrap_or_default().to_string()
}

fn bridge_of(net: &Value) -> String {
    net["network_interface"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every ordered pair of containers pings.
fn all_pairs_ping(containers: &[(Container, String)]) -> Result<()> {
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
fn container_ports(h: Host) -> Result<Vec<String>> {
    Ok(
        h.find("Port", "name", &["external_ids:geneve-ovs.role=container"])?
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect(),
    )
}

/// The host ends of container veths (`gv` + 13 hex digits).
fn host_veths(h: Host) -> Result<Vec<String>> {
    Ok(h.links()?
        .into_iter()
        .filter(|l| l.len() == 15 && l.starts_with("gv"))
        .collect())
}

#[test]
fn seed_scenario_two_hosts() -> Result<()> {
    let lab = PodmanLab::up("seed", 2)?;
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    for (h, range) in lab.hosts().into_iter().zip(SEED_RANGES) {
        internal_network(h, NET, SUBNET, range, &peers, &[])?;
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

#[test]
fn network_create_alone_builds_bridge_and_tunnels() -> Result<()> {
    let lab = PodmanLab::up("create", 3)?;
    let peers = lab.all_peers();
    for h in lab.hosts() {
        assert_eq!(h.bridges()?, ["br-phy"], "h{} before create", h.index());
    }
    for (h, range) in lab.hosts().into_iter().zip(MESH_RANGES) {
        let net = internal_network(h, NET, SUBNET, range, &peers, &[])?;
        let vni = opt(&net, "vni");
        let bridge = bridge_of(&net);
        assert_eq!(bridge, format!("gnv{vni}"));
        assert!(h.podman_ok(&["ps", "-aq"])?.is_empty());

        let rows = h.find(
            "Bridge",
            "name,datapath_type,external_ids",
            &[&format!("name={bridge}")],
        )?;
        ensure!(rows.len() == 1, "h{}: bridge {bridge} missing", h.index());
        assert_eq!(rows[0]["datapath_type"], "netdev");
        assert_eq!(rows[0]["external_ids"]["geneve-ovs.owner"], "geneve-ovs");
        assert_eq!(rows[0]["external_ids"]["geneve-ovs.network"], NET);
        // ovs-vswitchd made the bridge's own device.
        assert!(h.links()?.contains(&bridge), "no device {bridge}");

        // One tunnel per other host, with the VNI as key, realised by ovs-vswitchd, and
        // protected (no flooding from one peer to another).
        let ports = h.ports(&bridge)?;
        assert_eq!(ports.len(), lab.hosts().len() - 1, "ports {ports:?}");
        let tunnels = h.tunnels()?;
        let remotes: BTreeSet<String> = tunnels
            .iter()
            .map(|t| t["options"]["remote_ip"].as_str().unwrap_or("").to_string())
            .collect();
        let others: BTreeSet<String> = lab
            .hosts()
            .iter()
            .filter(|o| o.index() != h.index())
            .map(Host::ip)
            .collect();
        assert_eq!(remotes, others, "h{} tunnels {tunnels:?}", h.index());
        for t in &tunnels {
            let name = t["name"].as_str().unwrap_or_default();
            assert!(ports.iter().any(|p| p == name), "{name} not on {bridge}");
            assert_eq!(t["options"]["key"].as_str(), Some(vni.as_str()), "{t}");
            assert!(t["ofport"].as_i64().unwrap_or(-1) > 0, "not realised: {t}");
            let port = h.find("Port", "protected", &[&format!("name={name}")])?;
            assert_eq!(port[0]["protected"], true, "{name}");
        }
    }
    Ok(())
}

#[test]
fn three_hosts_every_pair_pings_without_flooding() -> Result<()> {
    let lab = PodmanLab::up("mesh3", 3)?;
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
        let counters = tunnel_counters(&lab)?;
        Ok(counters.values().all(|(tx, _)| *tx > 0).then_some(counters))
    })?;
    for (c, _) in &containers {
        let _ = c.exec(&["ping", "-c", "2", "-W", "1", "192.168.120.250"]);
    }
    let after = wait::until_some("the broadcasts in the statistics", SETTLE, || {
        let counters = tunnel_counters(&lab)?;
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

/// (host, tunnel) -> (tx_packets, rx_packets) of every GENEVE interface of the lab.
fn tunnel_counters(lab: &PodmanLab) -> Result<BTreeMap<(usize, String), (u64, u64)>> {
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

#[test]
fn networks_with_the_same_subnet_and_different_vnis_do_not_mix() -> Result<()> {
    let lab = PodmanLab::up("vnis", 2)?;
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    let mut vnis = BTreeSet::new();
    for (h, range) in lab.hosts().into_iter().zip(SEED_RANGES) {
        let blue = internal_network(h, "blue", SUBNET, range, &peers, &["--opt", "vni=4242"])?;
        let green = internal_network(h, "green", SUBNET, range, &peers, &[])?;
        vnis.insert(opt(&blue, "vni"));
        vnis.insert(opt(&green, "vni"));
    }
    assert_eq!(vnis.len(), 2, "one VNI per network, the same on both hosts");

    // The same addresses on both networks: .1 on host 1, .129 on host 2.
    let a1 = h1.run_sleeper("a1", "blue")?;
    let a2 = h2.run_sleeper("a2", "blue")?;
    let b1 = h1.run_sleeper("b1", "green")?;
    let b2 = h2.run_sleeper("b2", "green")?;
    // And one address that exists on green only.
    let b3 = h2.run_detached(
        "b3",
        &[
            "--net",
            "green",
            "--ip",
            "192.168.120.200",
            "--cap-add",
            "NET_RAW",
        ],
        &["sleep", "3600"],
    )?;
    assert_eq!(a1.ip("blue")?, b1.ip("green")?);
    assert_eq!(a2.ip("blue")?, b2.ip("green")?);
    let (low, high) = (a1.ip("blue")?, a2.ip("blue")?);

    // Each network resolves the shared addresses to its own containers.
    for (from, to, net) in [(&a1, &a2, "blue"), (&b1, &b2, "green")] {
        from.wait_ping(&high, SETTLE)?;
        assert_eq!(from.neighbour(&high)?, Some(to.mac()?), "{net} from host 1");
        to.wait_ping(&low, SETTLE)?;
        assert_eq!(to.neighbour(&low)?, Some(from.mac()?), "{net} from host 2");
    }
    // blue has no 192.168.120.200, and its ARP requests never reach green's b3.
    assert!(!a1.ping("192.168.120.200") && !a1.ping("192.168.120.200"));
    let a1_mac = a1.mac()?;
    assert!(!b3.neighbour_macs()?.contains(&a1_mac));

    // No MAC of one network was ever learned on the other's bridges.
    let blue_macs: BTreeSet<String> = [&a1, &a2].iter().map(|c| c.mac()).collect::<Result<_>>()?;
    let green_macs: BTreeSet<String> = [&b1, &b2, &b3]
        .iter()
        .map(|c| c.mac())
        .collect::<Result<_>>()?;
    for h in [h1, h2] {
        for (net, own, foreign) in [
            ("blue", &blue_macs, &green_macs),
            ("green", &green_macs, &blue_macs),
        ] {
            let bridge = bridge_of(&h.inspect_network(net)?);
            let learned: BTreeSet<String> = h.fdb(&bridge)?.into_iter().map(|(_, m)| m).collect();
            assert!(
                learned.intersection(own).count() > 0,
                "h{}: {net} learned nothing: {learned:?}",
                h.index()
            );
            assert!(
                learned.is_disjoint(foreign),
                "h{}: {net} learned a MAC of the other network: {learned:?}",
                h.index()
            );
        }
    }
    Ok(())
}

#[test]
fn rm_restart_and_inspect() -> Result<()> {
    let lab = PodmanLab::up("lifecycle", 2)?;
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    for (h, range) in lab.hosts().into_iter().zip(SEED_RANGES) {
        internal_network(h, NET, SUBNET, range, &peers, &[])?;
    }

    // `podman network inspect` shows what is in force: the VNI derived from the name (the
    // README's worked example), the MTU, the datapath, the port, and the peers other than
    // this host.
    for (h, other) in [(h1, h2), (h2, h1)] {
        let net = h.inspect_network(NET)?;
        assert_eq!(net["driver"], "geneve-ovs");
        assert_eq!(opt(&net, "vni"), "2559839");
        assert_eq!(bridge_of(&net), "gnv2559839");
        assert_eq!(opt(&net, "mtu"), (UNDERLAY_MTU - OVERHEAD_V4).to_string());
        assert_eq!(opt(&net, "datapath"), "netdev");
        assert_eq!(opt(&net, "dst_port"), "6081");
        assert_eq!(opt(&net, "peers"), other.ip());
        assert_eq!(net["internal"], true);
        assert_eq!(net["dns_enabled"], false);
        assert_eq!(net["subnets"][0]["subnet"], SUBNET);
    }

    let c1 = h1.run_sleeper("c1", NET)?;
    let c2 = h2.run_sleeper("c2", NET)?;
    let ip2 = c2.ip(NET)?;
    c1.wait_ping(&ip2, SETTLE)?;
    assert_eq!(container_ports(h1)?.len(), 1);
    assert_eq!(host_veths(h1)?.len(), 1);

    // restart: torn down and set up again (podman may hand out another address).
    h1.podman_ok(&["restart", "-t", "0", "c1"])?;
    let ip1 = c1.ip(NET)?;
    c1.wait_ping(&ip2, SETTLE)?;
    c2.wait_ping(&ip1, SETTLE)?;
    assert_eq!(container_ports(h1)?.len(), 1, "one port after restart");
    assert_eq!(host_veths(h1)?.len(), 1, "one veth after restart");

    // rm -f: no container port and no veth left; the network, its bridge and its tunnel stay.
    h1.podman_ok(&["rm", "-f", "-t", "0", "c1"])?;
    assert_eq!(container_ports(h1)?, Vec::<String>::new());
    assert_eq!(host_veths(h1)?, Vec::<String>::new());
    assert_eq!(h1.ports("gnv2559839")?.len(), 1, "the tunnel stays");
    assert!(h1.network_names()?.contains(&NET.to_string()));
    assert_eq!(container_ports(h2)?.len(), 1, "host 2 untouched");

    // The network still works for a new container.
    let c3 = h1.run_sleeper("c3", NET)?;
    c3.wait_ping(&ip2, SETTLE)?;
    lab.down_and_check()
}

#[test]
fn mtu_is_the_underlays_minus_50_and_full_frames_cross() -> Result<()> {
    let lab = PodmanLab::up("mtu", 2)?;
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

#[test]
fn ipv6_overlay_and_ipv6_underlay() -> Result<()> {
    let lab = PodmanLab::up("ipv6", 2)?;
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

/// What a failed `create` must leave unchanged: podman's networks and the OVS rows.
fn footprint(h: Host) -> Result<(Vec<String>, Vec<String>, usize, usize)> {
    Ok((
        h.network_names()?,
        h.bridges()?,
        h.find("Port", "name", &[])?.len(),
        h.find("Interface", "name", &[])?.len(),
    ))
}

#[test]
fn wrong_options_are_reported_and_leave_nothing() -> Result<()> {
    let lab = PodmanLab::up("options", 1)?;
    let h = lab.host(1);
    let base = ["--internal", "--subnet", "192.168.130.0/24"];
    let valid: Vec<&str> = geneve_ovs::options::OPTIONS
        .iter()
        .map(|o| o.name)
        .collect();
    let unknown = format!(
        r#"unknown option "colour" (valid options: {})"#,
        valid.join(", ")
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["--opt", "vni=0"],
            r#"invalid option vni="0": must be an integer from 1 to 16777215"#,
        ),
        (&["--opt", "colour=blue"], &unknown),
        (
            &["--opt", "peers=10.99.0.2,10.99.0.2"],
            r#"invalid option peers="10.99.0.2,10.99.0.2": 10.99.0.2 is listed twice"#,
        ),
        (
            &["--opt", "peers=10.99.0.2,224.0.0.1"],
            r#"invalid option peers="10.99.0.2,224.0.0.1": 224.0.0.1 is a multicast address"#,
        ),
        (
            &["--opt", "mtu=70000"],
            r#"invalid option mtu="70000": must be an integer from 68 to 65535"#,
        ),
        (
            &["--opt", "datapath=system"],
            r#"invalid option datapath="system": this ovs-vswitchd offers only: netdev"#,
        ),
        (
            &["--opt", "peers=10.99.0.2", "--opt", "local_ip=10.99.0.77"],
            r#"invalid option local_ip="10.99.0.77": is not an address of this host"#,
        ),
        (
            &["--interface-name", "much-too-long-name"],
            r#"invalid interface name "much-too-long-name" (--interface-name)"#,
        ),
    ];
    let before = footprint(h)?;
    for (flags, message) in cases {
        let mut args = vec!["network", "create", "-d", "geneve-ovs"];
        args.extend_from_slice(&base);
        args.extend_from_slice(flags);
        args.push("bad");
        let out = h.podman(&args);
        assert!(!ok(&out), "{flags:?} was accepted");
        assert_eq!(out.status.code(), Some(125), "{flags:?}");
        let err = stderr(&out);
        assert!(err.starts_with("Error: "), "{err}");
        assert!(
            err.contains(&format!("netavark: {message}")),
            "{flags:?}: expected {message:?} in:\n{err}"
        );
        assert_eq!(footprint(h)?, before, "{flags:?} left something behind");
    }

    // IPv6 needs at least 1280.
    let out = h.podman(&[
        "network",
        "create",
        "-d",
        "geneve-ovs",
        "--internal",
        "--ipv6",
        "--subnet",
        "fd12:3456::/64",
        "--opt",
        "mtu=1200",
        "bad",
    ]);
    assert!(stderr(&out).contains(
        r#"netavark: invalid option mtu="1200": a network with an IPv6 subnet needs an MTU of at least 1280"#
    ), "{}", stderr(&out));
    assert_eq!(footprint(h)?, before);

    // A VNI already in use on this host: found only once OVS is asked.
    h.create_network(
        "net1",
        &["--internal", "--subnet", SUBNET, "--opt", "vni=4242"],
    )?;
    let before = footprint(h)?;
    let mut args = vec!["network", "create", "-d", "geneve-ovs"];
    args.extend_from_slice(&base);
    args.extend_from_slice(&["--opt", "vni=4242", "bad"]);
    let out = h.podman(&args);
    assert!(
        stderr(&out).contains(
            r#"netavark: VNI 4242 is already used on this host by geneve-ovs network "net1""#
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(footprint(h)?, before);

    // The name is still free, and a correct command works.
    h.create_network("bad", &base)?;
    Ok(())
}
