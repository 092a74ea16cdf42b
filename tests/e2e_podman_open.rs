//! End-to-end tests with real podman on non-internal networks (no `--internal`) and on the
//! user's exact command with neither subnet nor range:
//!
//! * containers on two hosts reach each other and their gateway, the first subnet address,
//!   which each resolves to its own host's gateway port (MAC `02:67:77:<VNI>`, the same on
//!   every host);
//! * a container reaches an address outside the overlay with its source NAT'ed to its host;
//! * `podman run -p 8080:80` serves a client outside the hosts via the host's address;
//! * ten `podman run -p` at once: each port answers from its host (127.0.0.1 and the host's
//!   address) and from another host, and after `podman rm -f` of all not one DNAT element is left;
//! * a second geneve-ovs network on the same host cannot reach the first through the host;
//! * `podman network create -d geneve-ovs --opt peers=<the other hosts> net1` on 2 and on 3
//!   hosts: one subnet, disjoint per-host ranges, containers that reach each other.
//!
//! The lab's underlay switch namespace stands for the outside world, with the address
//! [`OUTSIDE`] on the underlay.

mod podman_lab;
mod scenarios;

use std::net::Ipv4Addr;

use anyhow::{ensure, Context, Result};
use podman_lab::{ok, stdout, PodmanLab};
use scenarios::open::{self, address_in, check_own_gateway, lease_range, vni_of, SETTLE};

#[test]
fn open_network_gateway_and_outbound_nat() -> Result<()> {
    open::open_network_gateway_and_outbound_nat(&PodmanLab::up("open", 2)?)
}

#[test]
fn open_network_port_mapping_and_isolation() -> Result<()> {
    open::open_network_port_mapping_and_isolation(&PodmanLab::up("ports", 2)?)
}

#[test]
fn ten_parallel_runs_with_published_ports_answer_and_leave_nothing_behind() -> Result<()> {
    open::ten_parallel_runs_with_published_ports(&PodmanLab::up("parallel", 2)?)
}

/// `podman network create -d geneve-ovs --opt peers=<the other hosts> net1` on each of `n`
/// hosts: the same subnet and gateway everywhere, disjoint ranges, and containers with
/// addresses from their host's range that reach each other and their gateway.
fn users_command_on(n: usize) -> Result<()> {
    let lab = PodmanLab::up(&format!("default{n}"), n)?;
    let mut nets = Vec::new();
    for h in lab.hosts() {
        let peers = format!("peers={}", h.other_peers());
        nets.push(h.create_network("net1", &["--opt", &peers])?);
    }
    let subnet = nets[0]["subnets"][0]["subnet"].clone();
    let gateway = nets[0]["subnets"][0]["gateway"]
        .as_str()
        .context("no gateway")?
        .to_string();
    let pool: ipnet::Ipv4Net = "10.100.0.0/14".parse()?;
    let net: ipnet::Ipv4Net = subnet.as_str().context("subnet")?.parse()?;
    assert!(pool.contains(&net) && net.prefix_len() == 24, "{net}");
    assert_eq!(
        gateway,
        Ipv4Addr::from(u32::from(net.network()) + 1).to_string()
    );
    let mut ranges = Vec::new();
    for (h, inspected) in lab.hosts().iter().zip(&nets) {
        assert_eq!(inspected["subnets"][0]["subnet"], subnet, "h{}", h.index());
        assert_eq!(inspected["subnets"][0]["gateway"], gateway.as_str());
        assert_eq!(inspected["internal"], false);
        let range = lease_range(inspected)?;
        let gw = u32::from(gateway.parse::<Ipv4Addr>()?);
        assert!(
            range.0 <= range.1 && !(range.0..=range.1).contains(&gw),
            "h{} {range:?}",
            h.index()
        );
        assert!(net.contains(&Ipv4Addr::from(range.0)) && net.contains(&Ipv4Addr::from(range.1)));
        ranges.push(range);
    }
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            assert!(a.1 < b.0 || b.1 < a.0, "ranges overlap: {ranges:?}");
        }
    }

    let vni = vni_of(&nets[0])?;
    let bridge = nets[0]["network_interface"]
        .as_str()
        .context("bridge")?
        .to_string();
    let mut containers = Vec::new();
    for (h, range) in lab.hosts().into_iter().zip(&ranges) {
        let c = h.run_sleeper(&format!("c{}", h.index()), "net1")?;
        let ip = address_in(&c, "net1", *range)?;
        containers.push((c, ip));
    }
    for (a, _) in &containers {
        for (b, ip) in &containers {
            if a.name() != b.name() {
                a.wait_ping(ip, SETTLE)
                    .with_context(|| format!("{} -> {}", a.name(), b.name()))?;
            }
        }
        check_own_gateway(a, &bridge, &gateway, vni)?;
    }
    Ok(())
}

#[test]
fn users_command_without_subnet_on_two_hosts() -> Result<()> {
    users_command_on(2)
}

#[test]
fn users_command_without_subnet_on_three_hosts() -> Result<()> {
    users_command_on(3)
}

/// `podman run --network net1:ip=X` on host 2, where X is in use by a container on host 1: the
/// plugin's duplicate-address probe refuses it with an error naming the address and the MAC
/// that answered, nothing of it stays in OVS or on the host, and the original keeps working.
#[test]
fn an_address_in_use_on_another_host_is_refused() -> Result<()> {
    let lab = PodmanLab::up("dad", 2)?;
    for h in lab.hosts() {
        // The longest probe window the option allows: this shared test machine is busy, and a
        // late answer is a missed conflict. The default (50 ms) is for quiet hosts.
        let peers = format!("peers={}", h.other_peers());
        h.create_network("net1", &["--opt", &peers, "--opt", "dad_timeout_ms=1000"])?;
    }
    let (h1, h2) = (lab.host(1), lab.host(2));
    let c1 = h1.run_sleeper("c1", "net1")?;
    let taken = c1.ip("net1")?;
    let mac = c1.mac()?;

    let links_before = h2.links()?;
    let out = h2.podman(&[
        "run",
        "-d",
        "--name",
        "dup",
        "--network",
        &format!("net1:ip={taken}"),
        "localhost/busybox",
        "sleep",
        "3600",
    ]);
    ensure!(
        !ok(&out),
        "a container with an address in use started: {}",
        stdout(&out)
    );
    let err = podman_lab::stderr(&out);
    ensure!(
        err.contains(&format!("address {taken} is already in use")) && err.contains(&mac),
        "podman said: {err}"
    );
    ensure!(h2.links()? == links_before, "a host veth stayed behind");
    let ports = h2.find("Port", "name", &["external_ids:geneve-ovs.role=container"])?;
    ensure!(ports.is_empty(), "container ports stayed in OVS: {ports:?}");

    // The original is untouched, and a container with a free address reaches it.
    let c2 = h2.run_sleeper("c2", "net1")?;
    c2.wait_ping(&taken, SETTLE)?;
    Ok(())
}
