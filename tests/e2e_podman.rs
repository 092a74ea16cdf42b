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
//! Non-internal networks and default subnets are in `e2e_podman_open.rs`. The bodies of the
//! scenarios the kernel-datapath suite (`e2e_kernel.rs`) runs too are in `scenarios/overlay.rs`.

mod podman_lab;
mod scenarios;

use std::collections::BTreeSet;

use anyhow::{ensure, Result};
use podman_lab::{ok, stderr, Host, PodmanLab, UNDERLAY_MTU};
use scenarios::overlay::{
    self, bridge_of, container_ports, host_veths, internal_network, opt, MESH_RANGES, NET,
    OVERHEAD_V4, SEED_RANGES, SETTLE, SUBNET,
};

#[test]
fn seed_scenario_two_hosts() -> Result<()> {
    overlay::seed_scenario_two_hosts(&PodmanLab::up("seed", 2)?)
}

#[test]
fn three_hosts_every_pair_pings_without_flooding() -> Result<()> {
    overlay::three_hosts_every_pair_pings_without_flooding(&PodmanLab::up("mesh3", 3)?)
}

#[test]
fn mtu_is_the_underlays_minus_50_and_full_frames_cross() -> Result<()> {
    overlay::mtu_is_the_underlays_minus_50_and_full_frames_cross(&PodmanLab::up("mtu", 2)?)
}

#[test]
fn ipv6_overlay_and_ipv6_underlay() -> Result<()> {
    overlay::ipv6_overlay_and_ipv6_underlay(&PodmanLab::up("ipv6", 2)?)
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
        assert_eq!(rows[0]["datapath_type"], lab.datapath().ovs_name());
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
