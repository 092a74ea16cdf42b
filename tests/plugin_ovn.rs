//! OVN mode (`--opt ovn=...`) against real OVN: NB/SB ovsdb-servers and ovn-northd in the
//! lab's switch namespace, ovn-controller on every simulated host (userspace datapath), the
//! plugin run as podman runs it.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::cmd::Cmd;
use common::ovn::{container_ip, start, OvnLab, NB_REMOTE, SUBNET};
use common::podman::{self, create, error_of, setup, teardown};
use common::resolv_conf::HostResolvConf;
use common::{dns, frames, netns, Container, Host};
use serde_json::json;

/// What `busybox nslookup NAME SERVER` in `c` answers, `None` when it finds nothing.
fn resolve(c: &Container, name: &str, server: &str) -> Option<String> {
    let out = c.exec_timeout(
        Duration::from_secs(10),
        "busybox",
        &["nslookup", "-type=a", name, server],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // The answer section follows the server's own lines: "Name: X" then "Address: IP".
    let answer = text
        .split_once(&format!("Name:\t{name}"))
        .map(|(_, rest)| rest)?;
    answer
        .lines()
        .find_map(|l| l.trim().strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
}

/// The names of the logical switch ports of `switch`, the network's gateway port included.
fn all_logical_ports(ovn: &OvnLab, switch: &str) -> Result<Vec<String>> {
    Ok(ovn
        .nbctl(&["lsp-list", switch])?
        .lines()
        .filter_map(|l| {
            l.split_once(" (")
                .map(|(_, n)| n.trim_end_matches(')').to_string())
        })
        .collect())
}

/// The names of the containers' logical switch ports of `switch`.
fn logical_ports(ovn: &OvnLab, switch: &str) -> Result<Vec<String>> {
    let gateway = format!("{switch}.gateway");
    Ok(all_logical_ports(ovn, switch)?
        .into_iter()
        .filter(|name| *name != gateway)
        .collect())
}

#[test]
fn a_host_joins_alone_and_its_container_reaches_and_resolves_the_others() -> Result<()> {
    let mut ovn = OvnLab::new(4, 3)?;
    let net = ovn.network("net1");
    let saved = ovn.create_on_hosts(3, &net)?;
    for config in &saved {
        assert!(config["options"].get("peers").is_none(), "{config}");
    }
    let containers = ovn.start_containers(&saved)?;
    // Host 4 joins: its own settings and ovn-controller, its own create; nothing on 1-3.
    ovn.join(4)?;
    let saved4 = create(ovn.host(4), &net)?;
    let (c4, _) = start(ovn.host(4), &saved4, "c4", &container_ip(4))?;
    for i in 1..=3 {
        c4.wait_ping(&container_ip(i), Duration::from_secs(15))
            .with_context(|| format!("c4 reaching c{i}"))?;
        containers[i - 1]
            .0
            .wait_ping(&container_ip(4), Duration::from_secs(15))?;
    }

    // Names across hosts, answered by OVN on the container's own port (sent to any address
    // of the network the container can reach, here c1's).
    for (name, want) in [
        ("c2", container_ip(2)),
        ("c2.net1", container_ip(2)),
        ("C3.NET1", container_ip(3)),
    ] {
        assert_eq!(
            resolve(&c4, name, &container_ip(1)).as_deref(),
            Some(want.as_str()),
            "{name}"
        );
    }
    // The alias podman gives every container (its short id) too.
    let alias = podman::id("container c2")[..12].to_string();
    assert_eq!(
        resolve(&c4, &alias, &container_ip(1)),
        Some(container_ip(2)),
        "alias {alias}"
    );

    // Teardown of c2 removes its logical port, its records, its br-int port and its veth.
    let switch = "geneve-ovs.net1";
    let before = logical_ports(&ovn, switch)?;
    assert_eq!(before.len(), 4, "{before:?}");
    let (c2, exec2) = &containers[1];
    let netns = c2.netns_path();
    teardown(ovn.host(2), netns.to_str().context("netns")?, exec2)?;
    let after = logical_ports(&ovn, switch)?;
    assert_eq!(after.len(), 3, "{after:?}");
    let records = ovn.nbctl(&["--bare", "--columns=records", "list", "DNS"])?;
    let names: Vec<&str> = records
        .split_whitespace()
        .filter_map(|r| r.split_once('=').map(|(name, _)| name.trim_matches('"')))
        .collect();
    assert!(
        !names.contains(&"c2") && !names.contains(&"c2.net1"),
        "{records}"
    );
    assert!(names.contains(&"c3.net1"), "{records}");
    assert_eq!(resolve(&c4, "c2.net1", &container_ip(1)), None);
    assert!(
        ovn.host(2).container_ports()?.is_empty(),
        "{:?}",
        ovn.host(2).container_ports()
    );
    assert!(!c4.ping(&container_ip(2)));
    Ok(())
}

/// What podman's containers ask for names: `setup` returns the network's gateway address as
/// the name server, and OVN answers there, on every host, for the names of containers on any
/// host (the gateway is a `localport` of the switch: present on every chassis).
#[test]
fn setup_gives_the_gateway_port_as_name_server_and_ovn_answers_there() -> Result<()> {
    let ovn = OvnLab::new(2, 2)?;
    let net = ovn.network("net1");
    let saved1 = create(ovn.host(1), &net)?;
    let saved2 = create(ovn.host(2), &net)?;
    let gateway = "192.168.120.1";
    assert_eq!(saved1["subnets"][0]["gateway"], gateway, "{saved1}");
    assert_eq!(saved2["subnets"][0]["gateway"], gateway, "{saved2}");
    let ports = all_logical_ports(&ovn, "geneve-ovs.net1")?;
    assert_eq!(ports, ["geneve-ovs.net1.gateway"], "{ports:?}");
    let kind = ovn.nbctl(&["lsp-get-type", "geneve-ovs.net1.gateway"])?;
    assert_eq!(kind.trim(), "localport");

    let c1 = ovn.host(1).container("db")?;
    let exec1 = podman::exec(&saved1, "db", &[&container_ip(1)], None);
    let status1 = setup(ovn.host(1), &c1, &exec1)?;
    let (c2, _) = start(ovn.host(2), &saved2, "web", &container_ip(2))?;
    assert_eq!(status1["dns_server_ips"], json!([gateway]), "{status1}");
    // Still internal: the container gets no route out through the gateway.
    let routes = c1.exec_timeout(Duration::from_secs(5), "ip", &["route"]);
    let routes = String::from_utf8_lossy(&routes.stdout).to_string();
    assert!(!routes.contains("default"), "{routes}");

    c2.wait_ping(&container_ip(1), Duration::from_secs(15))?;
    let started = Instant::now();
    for name in ["db", "db.net1"] {
        assert_eq!(
            resolve(&c2, name, gateway).as_deref(),
            Some(container_ip(1).as_str()),
            "{name} from host 2"
        );
    }
    eprintln!(
        "[ovn-dns] two names resolved at the gateway port in {:?}",
        started.elapsed()
    );
    assert_eq!(
        resolve(&c1, "web", gateway),
        Some(container_ip(2)),
        "web from host 1"
    );
    // The gateway address is the gateway port's: no container may have it.
    let c3 = ovn.host(2).container("thief")?;
    let exec3 = podman::exec(&saved2, "thief", &[gateway], None);
    let err = error_of(&ovn.host(2).plugin(
        &["setup", c3.netns_path().to_str().context("netns")?],
        &exec3.to_string(),
    ))?;
    assert!(
        err.contains("192.168.120.1 is already bound to OVN port geneve-ovs.net1.gateway"),
        "{err}"
    );
    Ok(())
}

/// A non-internal OVN network: each host's end of the gateway port (an OVS internal port on
/// br-int bound to the switch's `localport`) carries the gateway address, the host NATs the
/// containers' traffic to the outside and publishes `-p` ports, as the mesh does; the last
/// container leaving takes the host's end with it.
#[test]
fn an_open_network_nats_outbound_and_publishes_ports_through_the_host() -> Result<()> {
    let ovn = OvnLab::new(2, 2)?;
    let lab = ovn.lab();
    let outside = "10.99.0.254";
    Cmd::in_netns(
        &lab.switch_netns(),
        "ip",
        &["addr", "add", &format!("{outside}/24"), "dev", "br0"],
    )
    .run()?;
    let mut net = ovn.network("web");
    net["internal"] = false.into();
    let saved1 = create(ovn.host(1), &net)?;
    let saved2 = create(ovn.host(2), &net)?;
    assert_eq!(saved1["internal"], false, "{saved1}");
    let gateway = "192.168.120.1";
    let vni: u32 = saved1["options"]["vni"].as_str().context("vni")?.parse()?;
    let gw = format!("gw{vni}");

    let c1 = ovn.host(1).container("c1")?;
    let mut e1 = podman::exec(&saved1, "c1", &[&container_ip(1)], None);
    e1["port_mappings"] = json!([{"container_port": 80, "host_ip": "", "host_port": 8080,
        "protocol": "tcp", "range": 1}]);
    let started = Instant::now();
    let s1 = setup(ovn.host(1), &c1, &e1)?;
    eprintln!(
        "[ovn-gateway] setup of the first container, gateway and -p included: {:?}",
        started.elapsed()
    );
    let (c2, e2) = start(ovn.host(2), &saved2, "c2", &container_ip(2))?;
    let c3 = ovn.host(2).container("c3")?;
    let started = Instant::now();
    setup(
        ovn.host(2),
        &c3,
        &podman::exec(&saved2, "c3", &[&container_ip(3)], None),
    )?;
    eprintln!(
        "[ovn-gateway] setup of a second container (gateway already there): {:?}",
        started.elapsed()
    );
    assert_eq!(s1["interfaces"]["eth0"]["subnets"][0]["gateway"], gateway);
    assert_eq!(s1["dns_server_ips"], json!([gateway]), "{s1}");
    let routes = c1.exec_ok("ip", &["route", "show", "default"])?;
    assert!(
        routes.contains(&format!("default via {gateway}")),
        "{routes}"
    );
    for i in 1..=2 {
        let h = ovn.host(i);
        let addrs = h.exec_ok("ip", &["-br", "addr", "show", &gw])?;
        assert!(addrs.contains("192.168.120.1/24"), "host {i}: {addrs}");
        let iface_id = h.vsctl(&["get", "Interface", &gw, "external_ids:iface-id"])?;
        assert_eq!(iface_id.trim_matches('"'), "geneve-ovs.web.gateway");
    }
    c1.wait_ping(&container_ip(2), Duration::from_secs(15))?;

    // Outbound: the outside sees each host's underlay address, never a container's.
    let seen = lab.dir().join("outside.txt");
    let _dump = common::background::Background::start(
        &lab.switch_netns(),
        "tcpdump",
        &[
            "-l", "-n", "-i", "br0", "icmp", "and", "dst", "host", outside,
        ],
        &seen,
    )?;
    let started = Instant::now();
    c1.wait_ping(outside, Duration::from_secs(15))?;
    eprintln!(
        "[ovn-gateway] first ping out answered after {:?}",
        started.elapsed()
    );
    c2.wait_ping(outside, Duration::from_secs(15))?;
    common::wait::until("the outside capture", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&seen).unwrap_or_default();
        Ok(text.contains("10.99.0.1 > 10.99.0.254") && text.contains("10.99.0.2 > 10.99.0.254"))
    })?;
    let text = std::fs::read_to_string(&seen)?;
    assert!(!text.contains("192.168.120."), "past NAT: {text}");

    // -p: a client outside reaches c1's server through host 1, and only there.
    let www = lab.dir().join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("motd"), "served from OVN\n")?;
    c1.exec_ok(
        "busybox",
        &["httpd", "-p", "80", "-h", www.to_str().context("www")?],
    )?;
    let get = |host: &str| {
        Cmd::in_netns(
            &lab.switch_netns(),
            "busybox",
            &["wget", "-O", "-", &format!("http://{host}:8080/motd")],
        )
        .timeout(Duration::from_secs(3))
        .output()
    };
    let mut body = String::new();
    common::wait::until(
        "the published port to answer",
        Duration::from_secs(15),
        || {
            let out = get("10.99.0.1")?;
            body = String::from_utf8_lossy(&out.stdout).to_string();
            Ok(out.status.success())
        },
    )?;
    assert_eq!(body, "served from OVN\n");
    assert!(!get("10.99.0.2")?.status.success(), "published on host 2");

    // The last container leaving takes the host's end of the gateway port with it.
    teardown(ovn.host(1), c1.netns_path().to_str().context("netns")?, &e1)?;
    let ports = ovn.host(1).vsctl(&["list-ports", "br-int"])?;
    assert!(!ports.contains(&gw), "{ports}");
    assert!(ovn.host(2).vsctl(&["list-ports", "br-int"])?.contains(&gw));
    teardown(ovn.host(2), c2.netns_path().to_str().context("netns")?, &e2)?;
    assert!(
        ovn.host(2).vsctl(&["list-ports", "br-int"])?.contains(&gw),
        "c3 still needs it"
    );
    let e3 = podman::exec(&saved2, "c3", &[&container_ip(3)], None);
    teardown(ovn.host(2), c3.netns_path().to_str().context("netns")?, &e3)?;
    assert!(!ovn.host(2).vsctl(&["list-ports", "br-int"])?.contains(&gw));
    Ok(())
}

/// An open OVN network: at the gateway address OVN answers the names of the network's
/// containers, and every other query, over UDP and TCP, reaches the host's name server (listed
/// in its `/etc/resolv.conf`, outside the overlay), from the host's address, also after a `gc`;
/// nothing else of the name server's host is reached through the gateway address. A host whose
/// only name server is on its loopback sends containers nowhere.
#[test]
fn an_open_network_sends_the_names_ovn_does_not_know_to_the_hosts_name_server() -> Result<()> {
    let ovn = OvnLab::new(2, 2)?;
    let lab = ovn.lab();
    let outside = Ipv4Addr::new(10, 99, 0, 254);
    Cmd::in_netns(
        &lab.switch_netns(),
        "ip",
        &["addr", "add", &format!("{outside}/24"), "dev", "br0"],
    )
    .run()?;
    let far = Ipv4Addr::new(10, 99, 0, 77);
    let names = [("outside.example", far)];
    let resolver = dns::Server::start(&netns::path(&lab.switch_netns()), outside, 53, &names)?;
    // Another service of the name server's host, which the gateway address must not lead to.
    let other = dns::Server::start(&netns::path(&lab.switch_netns()), outside, 5353, &names)?;
    // Host 2 has only a loopback name server (as with systemd-resolved's stub).
    let stub = Ipv4Addr::new(127, 0, 0, 53);
    let loopback = dns::Server::start(&ovn.host(2).netns_path(), stub, 53, &names)?;
    let _conf1 = HostResolvConf::write(
        ovn.host(1),
        &format!("# the stub first, as often\nnameserver {stub}\nnameserver {outside}\n"),
    )?;
    let _conf2 = HostResolvConf::write(ovn.host(2), &format!("nameserver {stub}\n"))?;

    let mut net = ovn.network("web");
    net["internal"] = false.into();
    let saved1 = create(ovn.host(1), &net)?;
    let saved2 = create(ovn.host(2), &net)?;
    let dir = common::operate::network_dir(lab, 1)?;
    common::operate::save_network(&dir, &saved1)?;
    let gateway = "192.168.120.1";
    let (c1, _) = start(ovn.host(1), &saved1, "c1", &container_ip(1))?;
    let (c2, _) = start(ovn.host(2), &saved2, "c2", &container_ip(2))?;
    c1.wait_ping(&container_ip(2), Duration::from_secs(15))?;
    let at = |port: u16| SocketAddr::from((gateway.parse::<Ipv4Addr>().unwrap(), port));

    let started = Instant::now();
    assert_eq!(
        resolve(&c1, "outside.example", gateway),
        Some(far.to_string()),
        "busybox nslookup over UDP"
    );
    eprintln!(
        "[ovn-dns] an outside name answered through the gateway in {:?}",
        started.elapsed()
    );
    let udp = dns::lookup_udp(&c1.netns_path(), at(53), "outside.example")?;
    assert_eq!(udp, dns::Answer::Address(far));
    let tcp = dns::lookup_tcp(&c1.netns_path(), at(53), "outside.example")?;
    assert_eq!(tcp, dns::Answer::Address(far));
    let started = Instant::now();
    let unknown = dns::lookup_udp(&c1.netns_path(), at(53), "nowhere.example")?;
    assert_eq!(
        unknown,
        dns::Answer::Nothing(3),
        "NXDOMAIN from the name server"
    );
    eprintln!(
        "[ovn-dns] an unknown name answered NXDOMAIN in {:?}",
        started.elapsed()
    );
    // OVN still answers the network's own names, without asking the name server.
    assert_eq!(resolve(&c1, "c2", gateway), Some(container_ip(2)));
    assert_eq!(resolve(&c1, "c2.web", gateway), Some(container_ip(2)));
    let seen = resolver.seen();
    assert!(
        seen.iter().all(|q| q.name != "c2" && q.name != "c2.web"),
        "{seen:?}"
    );
    // Every query came from host 1's underlay address: past the outbound NAT.
    assert!(seen.len() >= 4, "{seen:?}");
    assert!(
        seen.iter()
            .all(|q| q.from.ip() == ovn.host(1).underlay_ip()),
        "{seen:?}"
    );
    // Nothing but port 53 leads there.
    assert!(dns::lookup_udp(&c1.netns_path(), at(5353), "outside.example").is_err());
    assert!(other.seen().is_empty(), "{:?}", other.seen());

    // The loopback-only host: the query goes nowhere, its loopback service is not reached.
    assert!(dns::lookup_udp(&c2.netns_path(), at(53), "outside.example").is_err());
    assert_eq!(
        resolve(&c2, "c1", gateway),
        Some(container_ip(1)),
        "OVN still answers"
    );
    assert!(loopback.seen().is_empty(), "{:?}", loopback.seen());

    // gc's full reconcile of the table keeps the forwarding.
    common::operate::gc_json(ovn.host(1), &dir, &[])?;
    let after_gc = dns::lookup_tcp(&c1.netns_path(), at(53), "outside.example")?;
    assert_eq!(after_gc, dns::Answer::Address(far));
    Ok(())
}

#[test]
fn a_taken_address_is_refused_at_once_naming_container_and_chassis() -> Result<()> {
    let ovn = OvnLab::new(2, 2)?;
    let net = ovn.network("net1");
    let saved1 = create(ovn.host(1), &net)?;
    let saved2 = create(ovn.host(2), &net)?;
    start(ovn.host(1), &saved1, "db", &container_ip(1))?;

    let h2 = ovn.host(2);
    let c = h2.container("web")?;
    let exec = podman::exec(&saved2, "web", &[&container_ip(1)], None);
    let started = Instant::now();
    let out = h2.plugin(
        &["setup", c.netns_path().to_str().context("netns")?],
        &exec.to_string(),
    );
    let took = started.elapsed();
    let err = error_of(&out)?;
    assert!(
        err.contains(&format!(
            "address {} is already bound to container db",
            container_ip(1)
        )) && err.contains("on chassis chassis-1"),
        "{err}"
    );
    assert!(took < Duration::from_secs(2), "refused after {took:?}");
    // Nothing left behind: no port on host 2, one logical port.
    assert!(
        h2.container_ports()?.is_empty(),
        "{:?}",
        h2.container_ports()
    );
    assert_eq!(logical_ports(&ovn, "geneve-ovs.net1")?.len(), 1);
    assert!(
        !h2.links()?.iter().any(|l| l.starts_with("gv")),
        "{:?}",
        h2.links()
    );
    // Another address is fine.
    start(h2, &saved2, "web2", &container_ip(2))?;
    Ok(())
}

#[test]
fn port_security_and_acls_drop_what_a_container_forges() -> Result<()> {
    let ovn = OvnLab::new(2, 2)?;
    let mut net = ovn.network("net1");
    net["ipv6_enabled"] = true.into();
    net["subnets"] = json!([{"subnet": SUBNET}, {"subnet": "fd12:3456::/64"}]);
    let saved1 = create(ovn.host(1), &net)?;
    let saved2 = create(ovn.host(2), &net)?;
    let mac = [0x0a, 0x58, 0xc0, 0xa8, 0x78, 0x0b];
    let attacker = ovn.host(1).container("a")?;
    let exec = podman::exec(
        &saved1,
        "a",
        &["192.168.120.11", "fd12:3456::11"],
        Some("0a:58:c0:a8:78:0b"),
    );
    setup(ovn.host(1), &attacker, &exec)?;
    let victim = ovn.host(2).container("v")?;
    let exec = podman::exec(&saved2, "v", &["192.168.120.12", "fd12:3456::12"], None);
    setup(ovn.host(2), &victim, &exec)?;
    let near = ovn.host(1).container("n")?;
    let exec = podman::exec(&saved1, "n", &["192.168.120.13", "fd12:3456::13"], None);
    setup(ovn.host(1), &near, &exec)?;
    // The path is up before anything is judged.
    attacker.wait_ping("192.168.120.12", Duration::from_secs(15))?;
    attacker.wait_ping("192.168.120.13", Duration::from_secs(15))?;

    let own = Ipv4Addr::new(192, 168, 120, 11);
    let victim_ip = Ipv4Addr::new(192, 168, 120, 12);
    let other = Ipv4Addr::new(192, 168, 120, 14);
    let ll = link_local(mac);
    let forged: Vec<(&str, Vec<u8>)> = vec![
        (
            "gratuitous ARP for another address",
            frames::arp(mac, 2, other, other),
        ),
        (
            "spoofed source IPv4",
            frames::udp4(
                frames::BROADCAST,
                mac,
                other,
                victim_ip,
                4000,
                9999,
                b"spoof4",
            ),
        ),
        (
            "spoofed source MAC",
            frames::udp4(
                frames::BROADCAST,
                [0x0a, 0x58, 0xc0, 0xa8, 0x78, 0x63],
                own,
                victim_ip,
                4000,
                9999,
                b"spoof-mac",
            ),
        ),
        (
            "spoofed source IPv6",
            frames::udp6(mac, "fd12:3456::99".parse()?, 4000, 9999, b"spoof6"),
        ),
        ("DHCP offer", frames::dhcp_offer(mac, own, victim_ip)),
        (
            "DHCPv6 server reply",
            frames::udp6(mac, ll, 547, 546, b"dhcpv6-reply"),
        ),
    ];
    let genuine = (
        "own IPv4",
        frames::udp4(frames::BROADCAST, mac, own, victim_ip, 4000, 9999, b"own"),
    );
    let captures = [&victim, &near]
        .iter()
        .map(|v| frames::capture(&v.netns_path(), "eth0", Duration::from_millis(1500)))
        .collect::<Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_millis(200));
    let mut all: Vec<Vec<u8>> = forged.iter().map(|(_, f)| f.clone()).collect();
    all.push(genuine.1.clone());
    all.push(frames::router_advertisement(mac, ll));
    frames::send(&attacker.netns_path(), "eth0", &all)?;
    let mut seen = Vec::new();
    for c in captures {
        seen.push(
            c.join()
                .map_err(|_| anyhow::anyhow!("capture panicked"))??,
        );
    }
    for got in &seen {
        assert!(got.contains(&genuine.1), "the genuine frame must arrive");
    }
    let through: Vec<&str> = forged
        .iter()
        .filter(|(_, f)| seen.iter().any(|got| got.contains(f)))
        .map(|(n, _)| *n)
        .collect();
    assert!(through.is_empty(), "forged frames delivered: {through:?}");
    // OVN lets router advertisements through whatever the ACLs say (it allows neighbour
    // discovery first): on OVN networks no container takes one, so the impostor's never
    // becomes anybody's default router.
    for v in [&victim, &near] {
        assert_eq!(
            v.exec_ok("cat", &["/proc/sys/net/ipv6/conf/eth0/accept_ra"])?
                .trim(),
            "0"
        );
        let routes = v.exec_ok("ip", &["-6", "route", "show", "default"])?;
        assert!(routes.trim().is_empty(), "{}: {routes}", v.name());
    }
    Ok(())
}

/// The EUI-64 link-local address of `mac`.
fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([mac[0] ^ 2, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    )
}

#[test]
fn create_names_missing_prerequisites_and_refuses_a_conflicting_switch() -> Result<()> {
    let mut ovn = OvnLab::new(1, 0)?;
    let h1 = ovn.host(1);
    let err = error_of(&h1.plugin(&["create"], &ovn.network("net1").to_string()))?;
    for says in [
        "not ready for an OVN network",
        "external_ids:system-id",
        "external_ids:ovn-remote",
        "ovn-encap-type=geneve",
        "external_ids:ovn-encap-ip",
        "ovs-vsctl set open .",
    ] {
        assert!(err.contains(says), "{says}: {err}");
    }
    // Settings without ovn-controller: the missing br-int is named.
    ovn.configure(1)?;
    let err = error_of(
        &ovn.host(1)
            .plugin(&["create"], &ovn.network("net1").to_string()),
    )?;
    assert!(
        err.contains("integration bridge br-int") && err.contains("ovn-controller"),
        "{err}"
    );
    assert_eq!(ovn.nbctl(&["ls-list"])?.trim(), "", "nothing made in OVN");

    ovn.start_controller(1)?;
    let saved = create(ovn.host(1), &ovn.network("net1"))?;
    // An OVN network has no peers to change: `geneve-ovs peers` says why.
    let dir = common::operate::network_dir(ovn.lab(), 1)?;
    common::operate::save_network(&dir, &saved)?;
    for args in [
        &["peers", "net1", "list"][..],
        &["peers", "net1", "add", "10.99.0.2"],
    ] {
        let (code, out) = common::operate::operator(ovn.host(1), &dir, args);
        assert_ne!(code, 0, "{args:?}: {out}");
    }
    let out = ovn.host(1).plugin(
        &[
            "peers",
            "net1",
            "add",
            "10.99.0.2",
            "--network-config-dir",
            dir.to_str().context("dir")?,
        ],
        "",
    );
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("uses OVN") && text.contains("joins it alone"),
        "{text}"
    );
    let other = podman::network("net1", "192.168.121.0/24", None, &[("ovn", NB_REMOTE)]);
    let err = error_of(&ovn.host(1).plugin(&["create"], &other.to_string()))?;
    assert!(
        err.contains("network net1 already exists in OVN")
            && err.contains("subnets is 192.168.120.0/24 there, 192.168.121.0/24 here"),
        "{err}"
    );
    // A switch of that name someone else made is refused too.
    ovn.nbctl(&["ls-add", "geneve-ovs.net2"])?;
    let err = error_of(
        &ovn.host(1)
            .plugin(&["create"], &ovn.network("net2").to_string()),
    )?;
    assert!(err.contains("was not made by geneve-ovs"), "{err}");
    // Remotes are tried in turn: one that refuses first, then the database.
    let dead = "tcp:10.99.0.250:6650";
    let both = podman::network(
        "net4",
        SUBNET,
        None,
        &[("ovn", &format!("{dead},{NB_REMOTE}"))],
    );
    create(ovn.host(1), &both)?;
    // None reachable: the error names each remote and what to check.
    let none = podman::network("net5", SUBNET, None, &[("ovn", dead)]);
    let err = error_of(&ovn.host(1).plugin(&["create"], &none.to_string()))?;
    assert!(
        err.contains("cannot reach the OVN northbound database") && err.contains(dead),
        "{err}"
    );
    // peers and ovn together never reach OVN.
    let both = podman::network(
        "net3",
        SUBNET,
        None,
        &[("ovn", NB_REMOTE), ("peers", "10.99.0.2")],
    );
    let err = error_of(&ovn.host(1).plugin(&["create"], &both.to_string()))?;
    assert!(
        err.contains("options ovn and peers exclude each other"),
        "{err}"
    );
    Ok(())
}

/// `setup` in OVN mode against the mesh with duplicate-address detection on, side by side
/// on the same two hosts: the figures are printed (run with `--nocapture`); the test holds
/// OVN's below a second, far from any timeout, so a wait that never ends early fails it.
#[test]
fn setup_time_in_ovn_mode_beside_the_mesh() -> Result<()> {
    const ROUNDS: usize = 10;
    let ovn = OvnLab::new(2, 2)?;
    let h1 = ovn.host(1);
    let ovn_net = create(h1, &ovn.network("net1"))?;
    create(ovn.host(2), &ovn.network("net1"))?;
    let mesh_net = create(
        h1,
        &podman::network("mesh1", "192.168.121.0/24", None, &[("peers", "10.99.0.2")]),
    )?;
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for (k, (saved, prefix)) in [(&mesh_net, "192.168.121"), (&ovn_net, "192.168.120")]
            .into_iter()
            .enumerate()
        {
            let label = format!("t{k}x{round}");
            let c = h1.container(&label)?;
            let address = format!("{prefix}.{}", 100 + round);
            let exec = podman::exec(saved, &label, &[&address], None);
            let started = Instant::now();
            setup(h1, &c, &exec)?;
            times[k].push(started.elapsed());
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mesh = median(&mut times[0]);
    let ovn_mode = median(&mut times[1]);
    eprintln!(
        "setup, median of {ROUNDS}: mesh (DAD on) {:.1} ms, OVN {:.1} ms ({:.2}x)",
        mesh.as_secs_f64() * 1e3,
        ovn_mode.as_secs_f64() * 1e3,
        ovn_mode.as_secs_f64() / mesh.as_secs_f64()
    );
    assert!(
        ovn_mode < Duration::from_secs(1),
        "OVN setup took {ovn_mode:?}"
    );
    Ok(())
}

#[test]
fn gc_removes_the_logical_port_of_a_vanished_container() -> Result<()> {
    let ovn = OvnLab::new(2, 2)?;
    let dir = common::operate::network_dir(ovn.lab(), 1)?;
    let saved1 = create(ovn.host(1), &ovn.network("net1"))?;
    common::operate::save_network(&dir, &saved1)?;
    let saved2 = create(ovn.host(2), &ovn.network("net1"))?;
    let (gone, _) = start(ovn.host(1), &saved1, "gone", &container_ip(1))?;
    let port = ovn.host(1).container_ports()?;
    // The container vanishes without a teardown (a crash, a reboot): its address stays bound.
    common::netns::delete(gone.name())?;
    let c = ovn.host(2).container("next")?;
    let exec = podman::exec(&saved2, "next", &[&container_ip(1)], None);
    let netns = c.netns_path();
    let refused = ovn.host(2).plugin(
        &["setup", netns.to_str().context("netns")?],
        &exec.to_string(),
    );
    assert!(
        error_of(&refused)?.contains("container gone"),
        "bound to the vanished container"
    );

    let result = common::operate::gc_json(ovn.host(1), &dir, &[])?;
    let removed = common::operate::gc_items(&result, "removed");
    assert!(
        removed.contains(&("port".to_string(), port[0].clone())),
        "{result}"
    );
    assert!(logical_ports(&ovn, "geneve-ovs.net1")?.is_empty());
    assert!(ovn.host(1).container_ports()?.is_empty());
    // The address is free again.
    setup(ovn.host(2), &c, &exec)?;
    Ok(())
}

/// The human-readable `status` of a host, and its exit code.
fn status_text(host: &Host, dir: &std::path::Path) -> (i32, String) {
    common::operate::operator(host, dir, &["status"])
}

#[test]
fn status_shows_chassis_bindings_and_leader_and_exits_2_when_disconnected() -> Result<()> {
    let ovn = OvnLab::new(2, 2)?;
    let dir = common::operate::network_dir(ovn.lab(), 1)?;
    let saved1 = create(ovn.host(1), &ovn.network("net1"))?;
    common::operate::save_network(&dir, &saved1)?;
    let saved2 = create(ovn.host(2), &ovn.network("net1"))?;
    let dir2 = common::operate::network_dir(ovn.lab(), 2)?;
    common::operate::save_network(&dir2, &saved2)?;
    let _a = start(ovn.host(1), &saved1, "a", &container_ip(1))?;
    let _b = start(ovn.host(2), &saved2, "b", &container_ip(2))?;

    // Healthy: connected, the network spans both chassis, a's port is up and bound here.
    let (code, report) = common::operate::status_json(ovn.host(1), &dir)?;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ovn"]["southbound"], "connected", "{report:#}");
    assert_eq!(report["ovn"]["chassis"], "chassis-1", "{report:#}");
    assert_eq!(report["ovn"]["problems"], 0, "{report:#}");
    let net = &report["networks"][0];
    assert_eq!(net["name"], "net1");
    assert_eq!(net["ovn"]["switch_state"], "present", "{net:#}");
    assert_eq!(net["ovn"]["northbound"], NB_REMOTE, "{net:#}");
    assert_eq!(net["ovn"]["leader"], NB_REMOTE, "{net:#}");
    assert_eq!(
        net["ovn"]["chassis"],
        json!(["chassis-1", "chassis-2"]),
        "{net:#}"
    );
    let containers = net["containers"].as_array().context("containers")?;
    assert_eq!(containers.len(), 1, "only this host's: {net:#}");
    assert_eq!(containers[0]["state"], "ok", "{net:#}");
    let port = &containers[0]["ovn"];
    assert_eq!(port["binding"], "here", "{port:#}");
    assert_eq!(port["bound_to"], "chassis-1", "{port:#}");
    assert_eq!(port["up"], true, "{port:#}");
    let t = Instant::now();
    let (code, text) = status_text(ovn.host(1), &dir);
    eprintln!("status of a healthy host took {:?}:\n{text}", t.elapsed());
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("ovn-controller (chassis chassis-1): connected to the southbound database"),
        "{text}"
    );
    assert!(
        text.contains(&format!("northbound: {NB_REMOTE} (leader)")),
        "{text}"
    );

    // ovn-controller stopped: exit 2, naming why.
    ovn.stop_controller(1)?;
    let (code, text) = status_text(ovn.host(1), &dir);
    eprintln!("with ovn-controller stopped:\n{text}");
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("NOT CONNECTED") && text.contains("ovn-controller does not answer"),
        "{text}"
    );

    // The northbound database unreachable (host 2's controller still runs): exit 2 as well.
    ovn.stop_central("ovsdb-nb")?;
    let (_, text) = status_text(ovn.host(2), &dir2);
    eprintln!("with the northbound database down:\n{text}");
    let (code, report) = common::operate::status_json(ovn.host(2), &dir2)?;
    assert_eq!(code, 2, "{report:#}");
    let net = &report["networks"][0];
    assert_eq!(net["ovn"]["switch_state"], "unknown", "{net:#}");
    assert_eq!(net["ovn"]["members"][0]["role"], "unreachable", "{net:#}");
    let problem = net["ovn"]["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("cannot reach the OVN northbound database"),
        "{net:#}"
    );
    assert_eq!(report["ovn"]["southbound"], "connected", "{report:#}");
    Ok(())
}

/// Whether the lab's northbound database has a logical switch named `name`.
fn has_switch(ovn: &OvnLab, name: &str) -> Result<bool> {
    Ok(ovn.switches()?.iter().any(|s| s == name))
}

/// The number of rows of `table` that geneve-ovs owns.
fn owned_rows(ovn: &OvnLab, table: &str) -> Result<usize> {
    Ok(ovn
        .nbctl(&["--bare", "--columns=external_ids", "list", table])?
        .lines()
        .filter(|l| l.contains("geneve-ovs.owner=geneve-ovs"))
        .count())
}

#[test]
fn gc_removes_a_removed_networks_switch_once_no_host_has_a_port() -> Result<()> {
    let ovn = OvnLab::new(2, 2)?;
    let dir1 = common::operate::network_dir(ovn.lab(), 1)?;
    let dir2 = common::operate::network_dir(ovn.lab(), 2)?;
    let saved1 = create(ovn.host(1), &ovn.network("net1"))?;
    common::operate::save_network(&dir1, &saved1)?;
    let saved2 = create(ovn.host(2), &ovn.network("net1"))?;
    common::operate::save_network(&dir2, &saved2)?;
    // `create` recorded the network on each host; `setup` records it when it is missing (a
    // network created by an earlier version).
    let record = "external_ids:geneve-ovs.ovn-network.net1";
    assert!(ovn.host(1).vsctl(&["get", "open", ".", record]).is_ok());
    ovn.host(2).vsctl(&[
        "remove",
        "open",
        ".",
        "external_ids",
        "geneve-ovs.ovn-network.net1",
    ])?;
    let (b, exec_b) = start(ovn.host(2), &saved2, "b", &container_ip(2))?;
    let recorded = ovn.host(2).vsctl(&["get", "open", ".", record])?;
    assert!(recorded.contains("tcp:10.99.0.250:6641"), "{recorded}");
    assert_eq!(owned_rows(&ovn, "ACL")?, 4);
    assert_eq!(owned_rows(&ovn, "DNS")?, 1);

    // Host 1 removes the network while host 2 has a container on it: the switch stays.
    common::operate::forget_network(&dir1, "net1")?;
    let result = common::operate::gc_json(ovn.host(1), &dir1, &[])?;
    let kept = common::operate::gc_items(&result, "kept");
    assert!(
        kept.contains(&("switch".to_string(), "geneve-ovs.net1".to_string())),
        "{result:#}"
    );
    assert!(
        result.to_string().contains("container b on chassis-2"),
        "{result:#}"
    );
    assert!(has_switch(&ovn, "geneve-ovs.net1")?);

    // The last port goes: host 1's next gc removes the switch, its DNS row and its ACLs.
    let netns = b.netns_path();
    teardown(ovn.host(2), netns.to_str().context("netns")?, &exec_b)?;
    let dry = common::operate::gc_json(ovn.host(1), &dir1, &["--dry-run"])?;
    assert!(
        common::operate::gc_items(&dry, "removed")
            .contains(&("switch".to_string(), "geneve-ovs.net1".to_string())),
        "{dry:#}"
    );
    assert!(has_switch(&ovn, "geneve-ovs.net1")?, "--dry-run removed it");
    let result = common::operate::gc_json(ovn.host(1), &dir1, &[])?;
    let removed = common::operate::gc_items(&result, "removed");
    assert!(
        removed.contains(&("switch".to_string(), "geneve-ovs.net1".to_string())),
        "{result:#}"
    );
    assert!(!has_switch(&ovn, "geneve-ovs.net1")?);
    assert_eq!(owned_rows(&ovn, "ACL")?, 0);
    assert_eq!(owned_rows(&ovn, "DNS")?, 0);
    // Host 1 forgot the network: another gc has nothing of it to do.
    let again = common::operate::gc_json(ovn.host(1), &dir1, &[])?;
    assert!(!again.to_string().contains("geneve-ovs.net1"), "{again:#}");

    // Host 2 still has the network: its next setup makes the switch again, ACLs included,
    // and the container works.
    let (c, _) = start(ovn.host(2), &saved2, "c", &container_ip(3))?;
    assert!(has_switch(&ovn, "geneve-ovs.net1")?);
    assert_eq!(owned_rows(&ovn, "ACL")?, 4);
    assert_eq!(
        logical_ports(&ovn, "geneve-ovs.net1")?.len(),
        1,
        "the new container's port"
    );
    drop(c);

    // A switch of the name that is another network's now (other subnets) is never touched:
    // host 1 creates net2 and forgets it; the switch is removed by hand and host 2 creates a
    // different net2.
    let saved = create(ovn.host(1), &ovn.network("net2"))?;
    common::operate::save_network(&dir1, &saved)?;
    common::operate::forget_network(&dir1, "net2")?;
    ovn.nbctl(&["ls-del", "geneve-ovs.net2"])?;
    create(
        ovn.host(2),
        &podman::network("net2", "192.168.121.0/24", None, &[("ovn", NB_REMOTE)]),
    )?;
    let result = common::operate::gc_json(ovn.host(1), &dir1, &[])?;
    assert!(
        result
            .to_string()
            .contains("another network of the same name"),
        "{result:#}"
    );
    assert!(has_switch(&ovn, "geneve-ovs.net2")?);
    Ok(())
}
