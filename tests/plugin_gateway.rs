//! Non-internal networks: the distributed gateway, outbound NAT, port mappings, isolation
//! between networks, and what a host outside `peers` can do to the overlay.
//!
//! The lab's underlay switch namespace stands for the outside world ("the internet"): it gets
//! the address 10.99.0.254 on the underlay.

mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use common::background::Background;
use common::cmd::Cmd;
use common::podman::{self, create, setup, teardown};
use common::{Container, Host, Lab, Underlay};
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_secs(15);
const OUTSIDE: &str = "10.99.0.254";

/// A network as `podman network create -d geneve-ovs --subnet S --opt peers=...` (no
/// `--internal`) sends it.
fn open_network(name: &str, subnet: &str, peers: &str) -> Value {
    let mut net = podman::network(name, subnet, None, &[("peers", peers)]);
    net["internal"] = false.into();
    net
}

fn switch(lab: &Lab, cmd: &str, args: &[&str]) -> Result<String> {
    Cmd::in_netns(&lab.switch_netns(), cmd, args).run()
}

fn make_outside(lab: &Lab) -> Result<()> {
    switch(
        lab,
        "ip",
        &["addr", "add", &format!("{OUTSIDE}/24"), "dev", "br0"],
    )?;
    Ok(())
}

fn gateway_mac_seen_by(c: &Container, gateway: &str) -> Result<String> {
    c.wait_ping(gateway, SETTLE)?;
    let neigh: Value = serde_json::from_str(&c.exec_ok("ip", &["-j", "neigh", "show", gateway])?)?;
    Ok(neigh[0]["lladdr"].as_str().unwrap_or_default().to_string())
}

fn nft_table(host: &Host) -> Result<String> {
    let out = host.exec("nft", &["list", "table", "inet", "geneve_ovs"]);
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn gateway_nat_and_port_mapping() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    make_outside(&lab)?;
    let peers = "10.99.0.1,10.99.0.2";
    let nets: Vec<Value> = (1..=2)
        .map(|i| create(lab.host(i), &open_network("web", "192.168.120.0/24", peers)))
        .collect::<Result<_>>()?;
    // The gateway is the subnet's first address, set by create so every host agrees.
    assert_eq!(nets[0]["subnets"][0]["gateway"], "192.168.120.1");
    assert_eq!(
        nets[0]["subnets"][0]["subnet"],
        nets[1]["subnets"][0]["subnet"]
    );
    assert_eq!(
        nets[0]["subnets"][0]["gateway"],
        nets[1]["subnets"][0]["gateway"]
    );
    let vni: u32 = nets[0]["options"]["vni"].as_str().unwrap().parse()?;
    let gw_mac = geneve_ovs::naming::format_mac(&geneve_ovs::naming::gateway_mac(vni));

    // Capture the tunnel traffic of host 1 while the containers come up and use the gateway.
    let capture = lab.dir().join("geneve.txt");
    let tcpdump = Background::start(
        lab.host(1).name(),
        "tcpdump",
        &["-l", "-n", "-e", "-i", "eth0", "udp", "port", "6081"],
        &capture,
    )?;

    let c1 = lab.host(1).container("c1")?;
    let c2 = lab.host(2).container("c2")?;
    let mapping = json!([{"container_port": 80, "host_ip": "", "host_port": 8080, "protocol": "tcp", "range": 1}]);
    let mut e1 = podman::exec(&nets[0], "c1", &["192.168.120.10"], None);
    e1["port_mappings"] = mapping;
    let s1 = setup(lab.host(1), &c1, &e1)?;
    let e2 = podman::exec(&nets[1], "c2", &["192.168.120.20"], None);
    setup(lab.host(2), &c2, &e2)?;
    assert_eq!(
        s1["interfaces"]["eth0"]["subnets"][0]["gateway"],
        "192.168.120.1"
    );
    let routes = c1.exec_ok("ip", &["route", "show", "default"])?;
    assert!(
        routes.contains("default via 192.168.120.1 dev eth0"),
        "{routes}"
    );

    // Overlay, and each container's gateway answers from its own host with the shared MAC.
    c1.wait_ping("192.168.120.20", SETTLE)?;
    assert_eq!(gateway_mac_seen_by(&c1, "192.168.120.1")?, gw_mac);
    assert_eq!(gateway_mac_seen_by(&c2, "192.168.120.1")?, gw_mac);
    for i in 1..=2 {
        let gw = format!("gw{vni}");
        assert_eq!(
            lab.host(i).vsctl(&["get", "Port", &gw, "protected"])?,
            "true"
        );
        let addrs = lab.host(i).exec_ok("ip", &["-br", "addr", "show", &gw])?;
        assert!(addrs.contains("192.168.120.1/24"), "{addrs}");
    }

    // Outbound: the outside sees the host's underlay address, not the container's.
    let seen = lab.dir().join("outside.txt");
    let _outside_dump = Background::start(
        &lab.switch_netns(),
        "tcpdump",
        &[
            "-l", "-n", "-i", "br0", "icmp", "and", "dst", "host", OUTSIDE,
        ],
        &seen,
    )?;
    c1.wait_ping(OUTSIDE, SETTLE)?;
    c2.wait_ping(OUTSIDE, SETTLE)?;
    common::wait::until("the outside capture", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&seen).unwrap_or_default();
        Ok(text.contains("10.99.0.1 > 10.99.0.254") && text.contains("10.99.0.2 > 10.99.0.254"))
    })?;
    let text = std::fs::read_to_string(&seen)?;
    assert!(
        !text.contains("192.168.120."),
        "container addresses leaked past NAT: {text}"
    );

    // Port mapping: a client on the underlay reaches c1's web server through host 1.
    std::fs::create_dir_all(lab.dir().join("www"))?;
    std::fs::write(lab.dir().join("www/motd"), "served across the overlay\n")?;
    let www = lab.dir().join("www");
    c1.exec_ok(
        "busybox",
        &["httpd", "-p", "80", "-h", www.to_str().unwrap()],
    )?;
    let mut body = String::new();
    common::wait::until("the mapped port to answer", SETTLE, || {
        let out = Cmd::in_netns(
            &lab.switch_netns(),
            "busybox",
            &["wget", "-O", "-", "http://10.99.0.1:8080/motd"],
        )
        .timeout(Duration::from_secs(3))
        .output()?;
        body = String::from_utf8_lossy(&out.stdout).to_string();
        Ok(out.status.success())
    })?;
    assert_eq!(body, "served across the overlay\n");
    // Only on the container's own host.
    let other = Cmd::in_netns(
        &lab.switch_netns(),
        "busybox",
        &["wget", "-O", "-", "http://10.99.0.2:8080/motd"],
    )
    .timeout(Duration::from_secs(3))
    .output()?;
    assert!(!other.status.success());

    // Nothing the gateway sent crossed a tunnel.
    drop(tcpdump);
    let tunnel = std::fs::read_to_string(&capture).unwrap_or_default();
    assert!(
        tunnel.lines().count() > 0,
        "the capture saw no tunnel traffic at all"
    );
    assert!(
        !tunnel.contains(&gw_mac),
        "a frame of the gateway crossed a tunnel: {tunnel}"
    );
    assert!(
        !tunnel.contains("is-at 02:67:77"),
        "an ARP reply for the gateway crossed: {tunnel}"
    );

    // The last container leaving takes its published port, not the network's gateway port:
    // that stays, with its address, for the next container (a teardown and the next setup do
    // not each wait for ovs-vswitchd to delete and create the device).
    let table = nft_table(lab.host(1))?;
    assert!(
        table.contains("masquerade") && table.contains("dnat"),
        "{table}"
    );
    teardown(lab.host(1), c1.netns_path().to_str().unwrap(), &e1)?;
    let ports = lab
        .host(1)
        .vsctl(&["list-ports", nets[0]["network_interface"].as_str().unwrap()])?;
    assert!(ports.contains(&format!("gw{vni}")), "{ports}");
    let addrs = lab
        .host(1)
        .exec_ok("ip", &["-br", "addr", "show", &format!("gw{vni}")])?;
    assert!(addrs.contains("192.168.120.1/24"), "{addrs}");
    // The NAT rules stay (they only look up the network's gateway port, which stays in its
    // set); the container's published port is gone.
    let table = nft_table(lab.host(1))?;
    assert!(!table.contains("192.168.120.10"), "{table}");
    assert!(!table.contains("8080"), "{table}");
    // And the next container brings them back.
    let c3 = lab.host(1).container("c3")?;
    setup(
        lab.host(1),
        &c3,
        &podman::exec(&nets[0], "c3", &["192.168.120.11"], None),
    )?;
    c3.wait_ping(OUTSIDE, SETTLE)?;
    Ok(())
}

#[test]
fn networks_do_not_route_into_each_other() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    make_outside(&lab)?;
    let h1 = lab.host(1);
    let red = create(h1, &open_network("red", "192.168.120.0/24", ""))?;
    let blue = create(h1, &open_network("blue", "192.168.130.0/24", ""))?;
    let r = h1.container("r")?;
    let b = h1.container("b")?;
    setup(h1, &r, &podman::exec(&red, "r", &["192.168.120.10"], None))?;
    setup(h1, &b, &podman::exec(&blue, "b", &["192.168.130.10"], None))?;
    // Both reach the outside (and so their gateways and the host's forwarding work) ...
    r.wait_ping(OUTSIDE, SETTLE)?;
    b.wait_ping(OUTSIDE, SETTLE)?;
    // ... but not each other.
    assert!(
        !r.ping("192.168.130.10"),
        "red reached blue through the host"
    );
    assert!(
        !b.ping("192.168.120.10"),
        "blue reached red through the host"
    );
    Ok(())
}

#[test]
fn a_host_outside_peers_cannot_inject_into_the_overlay() -> Result<()> {
    let lab = Lab::new(3, Underlay::V4)?;
    // Hosts 1 and 2 form the overlay; host 3 is not in their peers.
    let peers = "10.99.0.1,10.99.0.2";
    let n1 = create(
        lab.host(1),
        &podman::network("net1", "192.168.120.0/24", None, &[("peers", peers)]),
    )?;
    let n2 = create(
        lab.host(2),
        &podman::network("net1", "192.168.120.0/24", None, &[("peers", peers)]),
    )?;
    let c1 = lab.host(1).container("c1")?;
    let c2 = lab.host(2).container("c2")?;
    setup(
        lab.host(1),
        &c1,
        &podman::exec(&n1, "c1", &["192.168.120.1"], None),
    )?;
    setup(
        lab.host(2),
        &c2,
        &podman::exec(&n2, "c2", &["192.168.120.2"], None),
    )?;
    c1.wait_ping("192.168.120.2", SETTLE)?;

    // Host 3 builds, by hand, a bridge with a GENEVE port to host 1 with the right VNI.
    let intruder = lab.host(3);
    let vni: u32 = n1["options"]["vni"].as_str().unwrap().parse()?;
    intruder.add_netdev_bridge("evil")?;
    intruder.add_geneve_port("evil", "toh1", "10.99.0.1", vni)?;
    let x = intruder.container("x")?;
    intruder.wire_container(&x, "evil", "xh", "192.168.120.66/24", 1450)?;
    ensure!(
        intruder.ping("10.99.0.1"),
        "the intruder must at least reach host 1's underlay"
    );
    // Its frames never get into the overlay: c1 and c2 are unreachable, and c1 never learns it.
    assert!(!x.ping("192.168.120.1"));
    assert!(!x.ping("192.168.120.2"));
    let neigh = c1.exec_ok("ip", &["neigh", "show", "192.168.120.66"])?;
    assert!(
        !neigh.contains("lladdr"),
        "c1 heard from the intruder: {neigh}"
    );
    // While the real peers still talk.
    assert!(c1.ping("192.168.120.2"));
    Ok(())
}
