//! Scenarios on non-internal networks (gateway, outbound NAT, `-p`), run by
//! `e2e_podman_open.rs` (userspace datapath) and `e2e_kernel.rs` (kernel datapath). The lab's
//! underlay switch namespace stands for the outside world, with the address [`OUTSIDE`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::podman_lab::{wait, Container, Host, PodmanLab};

/// "The internet": an address of the underlay switch, outside every host.
pub const OUTSIDE: &str = "10.99.0.254";
pub const NET: &str = "web";
pub const SUBNET: &str = "192.168.121.0/24";
pub const GATEWAY: &str = "192.168.121.1";
pub const SETTLE: Duration = Duration::from_secs(15);

/// On host `h`: `podman network create -d geneve-ovs --subnet SUBNET --opt peers=PEERS NAME`.
pub fn open_network(h: Host, name: &str, subnet: &str, peers: &str) -> Result<Value> {
    h.create_network(
        name,
        &["--subnet", subnet, "--opt", &format!("peers={peers}")],
    )
}

pub fn vni_of(net: &Value) -> Result<u32> {
    net["options"]["vni"]
        .as_str()
        .context("no vni option")?
        .parse()
        .context("vni")
}

/// The gateway port's MAC: `02:67:77` and the 24-bit VNI, the same on every host.
pub fn gateway_mac(vni: u32) -> String {
    format!(
        "02:67:77:{:02x}:{:02x}:{:02x}",
        (vni >> 16) & 0xff,
        (vni >> 8) & 0xff,
        vni & 0xff
    )
}

/// The lease range of a network's first subnet, as integers.
pub fn lease_range(net: &Value) -> Result<(u32, u32)> {
    let range = &net["subnets"][0]["lease_range"];
    let parse = |key: &str| -> Result<u32> {
        let ip: Ipv4Addr = range[key]
            .as_str()
            .with_context(|| format!("no {key} in {range}"))?
            .parse()?;
        Ok(u32::from(ip))
    };
    Ok((parse("start_ip")?, parse("end_ip")?))
}

/// The container's address on `network`, checked to lie in `range`.
pub fn address_in(c: &Container, network: &str, range: (u32, u32)) -> Result<String> {
    let ip = c.ip(network)?;
    let n = u32::from(ip.parse::<Ipv4Addr>()?);
    ensure!(
        range.0 <= n && n <= range.1,
        "{} got {ip}, outside its host's range {}-{}",
        c.name(),
        Ipv4Addr::from(range.0),
        Ipv4Addr::from(range.1)
    );
    Ok(ip)
}

/// The container resolves `gateway` to the shared gateway MAC, and its host's bridge learned
/// that MAC on its own gateway port, never from a tunnel.
pub fn check_own_gateway(c: &Container, bridge: &str, gateway: &str, vni: u32) -> Result<()> {
    let mac = gateway_mac(vni);
    c.wait_ping(gateway, SETTLE)?;
    assert_eq!(c.neighbour(gateway)?, Some(mac.clone()), "{}", c.name());
    let routes = c.exec_ok(&["ip", "route"])?;
    assert!(
        routes.contains(&format!("default via {gateway} dev eth0")),
        "{routes}"
    );
    let h = c.host();
    let port = format!("gw{vni}");
    let rows = h.find("Interface", "ofport,mac_in_use", &[&format!("name={port}")])?;
    ensure!(rows.len() == 1, "h{}: no gateway port {port}", h.index());
    assert_eq!(rows[0]["mac_in_use"], mac.as_str(), "h{}", h.index());
    let ofport = rows[0]["ofport"].as_u64().context("gateway ofport")?;
    let learned: Vec<u32> = h
        .fdb(bridge)?
        .into_iter()
        .filter(|(_, m)| *m == mac)
        .map(|(p, _)| p)
        .collect();
    assert!(
        !learned.is_empty() && learned.iter().all(|p| u64::from(*p) == ofport),
        "h{}: gateway MAC learned on ports {learned:?}, its own gateway port is {ofport}",
        h.index()
    );
    Ok(())
}

/// A non-internal network on two hosts: the gateway, and outbound NAT to the outside.
pub fn open_network_gateway_and_outbound_nat(lab: &PodmanLab) -> Result<()> {
    lab.add_switch_address(&format!("{OUTSIDE}/24"))?;
    let peers = lab.all_peers();
    let mut nets = Vec::new();
    for h in lab.hosts() {
        let net = open_network(h, NET, SUBNET, &peers)?;
        assert_eq!(net["internal"], false);
        assert_eq!(net["subnets"][0]["gateway"], GATEWAY);
        nets.push(net);
    }
    let vni = vni_of(&nets[0])?;
    assert_eq!(vni_of(&nets[1])?, vni);
    let bridge = nets[0]["network_interface"].as_str().context("bridge")?;

    let mut containers = Vec::new();
    for (h, net) in lab.hosts().into_iter().zip(&nets) {
        let c = h.run_sleeper(&format!("o{}", h.index()), NET)?;
        let ip = address_in(&c, NET, lease_range(net)?)?;
        containers.push((c, ip));
    }
    let [(o1, ip1), (o2, ip2)] = &containers[..] else {
        unreachable!()
    };
    o1.wait_ping(ip2, SETTLE)?;
    o2.wait_ping(ip1, SETTLE)?;

    for (c, _) in &containers {
        check_own_gateway(c, bridge, GATEWAY, vni)?;
    }

    // Outbound: a server outside sees each container as its host's underlay address.
    lab.start_outside_server(OUTSIDE, 9000)?;
    for (c, _) in &containers {
        let seen = c.fetch(&format!("http://{OUTSIDE}:9000/cgi-bin/who"), SETTLE)?;
        assert_eq!(
            seen.trim().parse::<IpAddr>()?,
            c.host().ip().parse::<IpAddr>()?,
            "{} not NAT'ed to its host",
            c.name()
        );
    }
    Ok(())
}

/// `podman run -p` serves the outside; two networks on one host stay apart (2 hosts).
pub fn open_network_port_mapping_and_isolation(lab: &PodmanLab) -> Result<()> {
    lab.add_switch_address(&format!("{OUTSIDE}/24"))?;
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    for h in lab.hosts() {
        open_network(h, NET, SUBNET, &peers)?;
    }

    // podman run -p 8080:80: a client outside reaches it at host 1's address.
    h1.run_detached(
        "pm",
        &["--net", NET, "-p", "8080:80"],
        &["httpd", "-f", "-p", "80", "-h", "/var/www"],
    )?;
    let published = SocketAddr::new(h1.ip().parse()?, 8080);
    let body = wait::until_some("the published port", SETTLE, || {
        Ok(lab.outside_get(&h1.ip(), 8080, "/index.html"))
    })?;
    assert_eq!(body, "lab busybox image");
    // And a container on host 2 reaches it the same way, through its own host.
    let o2 = h2.run_sleeper("o2", NET)?;
    let fetched = o2.fetch(&format!("http://{published}/index.html"), SETTLE)?;
    assert_eq!(fetched, "lab busybox image");

    // A second network on host 1 reaches its own gateway and the outside, never the first
    // network through the host.
    let o1 = h1.run_sleeper("o1", NET)?;
    let ip1 = o1.ip(NET)?;
    o1.wait_ping(GATEWAY, SETTLE)?;
    open_network(h1, "other", "192.168.122.0/24", &peers)?;
    let x1 = h1.run_sleeper("x1", "other")?;
    let x_ip = x1.ip("other")?;
    x1.wait_ping("192.168.122.1", SETTLE)?;
    x1.wait_ping(OUTSIDE, SETTLE)?;
    for _ in 0..3 {
        assert!(!x1.ping(&ip1), "other -> web crossed the host");
        assert!(!o1.ping(&x_ip), "web -> other crossed the host");
    }
    let forward = h1.exec_ok(&["nft", "list", "chain", "inet", "geneve_ovs", "forward"])?;
    assert!(forward.contains("drop"), "{forward}");
    Ok(())
}
