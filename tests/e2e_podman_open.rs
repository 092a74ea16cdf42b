//! End-to-end tests with real podman on non-internal networks (no `--internal`) and on the
//! user's exact command with neither subnet nor range:
//!
//! * containers on two hosts reach each other and their gateway, the first subnet address,
//!   which each resolves to its own host's gateway port (MAC `02:67:77:<VNI>`, the same on
//!   every host);
//! * a container reaches an address outside the overlay with its source NAT'ed to its host;
//! * `podman run -p 8080:80` serves a client outside the hosts via the host's address;
//! * ten `podman run -p` at once: each port answers from its host (127.0.0.1 and the host's
//!   address) and from another host, the DNAT maps hold exactly their elements, and after
//!   `podman rm -f` of all of them not one element is left;
//! * a second geneve-ovs network on the same host cannot reach the first through the host;
//! * `podman network create -d geneve-ovs --opt peers=<the other hosts> net1` on 2 and on 3
//!   hosts: one subnet, disjoint per-host ranges, containers that reach each other.
//!
//! The lab's underlay switch namespace stands for the outside world, with the address
//! [`OUTSIDE`] on the underlay.

mod podman_lab;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use podman_lab::{netns, ok, stdout, wait, Container, Host, PodmanLab};
use serde_json::Value;

/// "The internet": an address of the underlay switch, outside every host.
const OUTSIDE: &str = "10.99.0.254";
const NET: &str = "web";
const SUBNET: &str = "192.168.121.0/24";
const GATEWAY: &str = "192.168.121.1";
const SETTLE: Duration = Duration::from_secs(15);

/// On host `h`: `podman network create -d geneve-ovs --subnet SUBNET --opt peers=PEERS NAME`.
fn open_network(h: Host, name: &str, subnet: &str, peers: &str) -> Result<Value> {
    h.create_network(
        name,
        &["--subnet", subnet, "--opt", &format!("peers={peers}")],
    )
}

fn vni_of(net: &Value) -> Result<u32> {
    net["options"]["vni"]
        .as_str()
        .context("no vni option")?
        .parse()
        .context("vni")
}

/// The gateway port's MAC: `02:67:77` and the 24-bit VNI, the same on every host.
fn gateway_mac(vni: u32) -> String {
    format!(
        "02:67:77:{:02x}:{:02x}:{:02x}",
        (vni >> 16) & 0xff,
        (vni >> 8) & 0xff,
        vni & 0xff
    )
}

/// The lease range of a network's first subnet, as integers.
fn lease_range(net: &Value) -> Result<(u32, u32)> {
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
fn address_in(c: &Container, network: &str, range: (u32, u32)) -> Result<String> {
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
fn check_own_gateway(c: &Container, bridge: &str, gateway: &str, vni: u32) -> Result<()> {
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

#[test]
fn open_network_gateway_and_outbound_nat() -> Result<()> {
    let lab = PodmanLab::up("open", 2)?;
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
    let listener = netns::listen(lab.switch_netns(), SocketAddr::new(OUTSIDE.parse()?, 9000))?;
    for (c, _) in &containers {
        let server = listener.try_clone()?;
        let accepted = std::thread::spawn(move || netns::accept_one(&server, SETTLE));
        let line = format!("hello from {}", c.name());
        let out = c.exec(&[
            "sh",
            "-c",
            &format!("echo '{line}' | nc -w 5 {OUTSIDE} 9000"),
        ]);
        let (peer, got) = accepted
            .join()
            .map_err(|_| anyhow::anyhow!("accept thread panicked"))??;
        assert!(ok(&out), "nc: {}", stdout(&out));
        assert_eq!(got, line);
        assert_eq!(
            peer.ip(),
            c.host().ip().parse::<IpAddr>()?,
            "{} not NAT'ed to its host",
            c.name()
        );
    }
    Ok(())
}

#[test]
fn open_network_port_mapping_and_isolation() -> Result<()> {
    let lab = PodmanLab::up("ports", 2)?;
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
    let (status, body) = wait::until_some("the published port", SETTLE, || {
        Ok(netns::http_get(lab.switch_netns(), published, "/index.html").ok())
    })?;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "lab busybox image\n");
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

/// The DNAT maps of the plugin's table on `h` (`dnat4_addr`, `dnat4_port`, ... the maps of
/// `-p` and of `-p HOST_IP:...`, both families) with their elements, as `nft -j` lists them.
/// Fails when the table or one of these maps does not exist.
fn dnat_maps(h: Host) -> Result<BTreeMap<String, Vec<Value>>> {
    let text = h.exec_ok(&["nft", "-j", "list", "table", "inet", "geneve_ovs"])?;
    let listing: Value = serde_json::from_str(&text).context("nft -j output")?;
    let mut maps = BTreeMap::new();
    for object in listing["nftables"].as_array().into_iter().flatten() {
        let Some(map) = object.get("map") else {
            continue;
        };
        if let Some(name) = map["name"].as_str().filter(|n| n.starts_with("dnat")) {
            let elements = map["elem"].as_array().cloned().unwrap_or_default();
            maps.insert(name.to_string(), elements);
        }
    }
    for family in ["4", "6"] {
        for host_ip in ["", "_host"] {
            for value in ["addr", "port"] {
                let name = format!("dnat{family}{host_ip}_{value}");
                ensure!(
                    maps.contains_key(&name),
                    "h{}: no DNAT map {name} in the table:\n{text}",
                    h.index()
                );
            }
        }
    }
    Ok(maps)
}

/// busybox wget of `url` on host `h`, retried until `timeout`; returns the body.
fn host_fetch(h: Host, url: &str, timeout: Duration) -> Result<String> {
    wait::until_some(&format!("h{} to fetch {url}", h.index()), timeout, || {
        let out = h.exec(&["busybox", "wget", "-q", "-T", "2", "-O", "-", url]);
        Ok(ok(&out).then(|| stdout(&out)))
    })
}

#[test]
fn ten_parallel_runs_with_published_ports_answer_and_leave_nothing_behind() -> Result<()> {
    const N: u16 = 10;
    const FIRST_PORT: u16 = 8000;
    let lab = PodmanLab::up("parallel", 2)?;
    let (h1, h2) = (lab.host(1), lab.host(2));
    let peers = lab.all_peers();
    for h in lab.hosts() {
        open_network(h, NET, SUBNET, &peers)?;
    }

    // Ten `podman run -d -p PORT:80` at once, each serving its own name.
    let started: Vec<Result<Container>> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..N)
            .map(|i| {
                scope.spawn(move || {
                    let publish = format!("{}:80", FIRST_PORT + i);
                    let serve = format!(
                        "mkdir -p /w && echo pub{i} > /w/index.html && exec httpd -f -p 80 -h /w"
                    );
                    h1.run_detached(
                        &format!("pub{i}"),
                        &["--net", NET, "-p", &publish],
                        &["sh", "-c", &serve],
                    )
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err(anyhow!("podman run thread panicked")))
            })
            .collect()
    });
    let containers: Vec<Container> = started.into_iter().collect::<Result<_>>()?;
    let addresses: Vec<String> = containers
        .iter()
        .map(|c| c.ip(NET))
        .collect::<Result<_>>()?;

    for (i, address) in (0..N).zip(&addresses) {
        let port = FIRST_PORT + i;
        let body = format!("pub{i}");
        for (h, via) in [(h1, "127.0.0.1".to_string()), (h1, h1.ip()), (h2, h1.ip())] {
            let url = format!("http://{via}:{port}/index.html");
            let got = host_fetch(h, &url, SETTLE).with_context(|| {
                format!("pub{i} ({address}) on port {port}, from h{}", h.index())
            })?;
            assert_eq!(got, body, "h{} {url}", h.index());
        }
    }

    // The maps hold exactly one element per published port, towards its container.
    let maps = dnat_maps(h1)?;
    for (name, elements) in &maps {
        let expected = if name == "dnat4_addr" || name == "dnat4_port" {
            usize::from(N)
        } else {
            0
        };
        assert_eq!(elements.len(), expected, "{name}: {elements:?}");
    }
    for (i, address) in (0..N).zip(&addresses) {
        let key = serde_json::json!({"concat": ["tcp", FIRST_PORT + i]});
        let to = |name: &str| {
            maps[name]
                .iter()
                .find(|e| e[0] == key)
                .map(|e| e[1].clone())
        };
        assert_eq!(
            to("dnat4_addr"),
            Some(Value::from(address.as_str())),
            "pub{i}"
        );
        assert_eq!(to("dnat4_port"), Some(Value::from(80)), "pub{i}");
    }

    // `podman rm -f` of all of them at once: nothing of theirs stays.
    let removed: Vec<Result<String>> = std::thread::scope(|scope| {
        let rms: Vec<_> = containers
            .iter()
            .map(|c| scope.spawn(move || h1.podman_ok(&["rm", "-f", c.name()])))
            .collect();
        rms.into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err(anyhow!("podman rm thread panicked")))
            })
            .collect()
    });
    for result in removed {
        result?;
    }
    let ports = h1.find("Port", "name", &["external_ids:geneve-ovs.role=container"])?;
    ensure!(ports.is_empty(), "container ports stayed in OVS: {ports:?}");
    let left: Vec<(String, Value)> = dnat_maps(h1)?
        .into_iter()
        .flat_map(|(name, elements)| elements.into_iter().map(move |e| (name.clone(), e)))
        .collect();
    assert!(
        left.is_empty(),
        "elements left after podman rm -f: {left:?}"
    );
    let table = h1.exec_ok(&["nft", "list", "table", "inet", "geneve_ovs"])?;
    for address in &addresses {
        assert!(
            !table.contains(address.as_str()),
            "{address} left in\n{table}"
        );
    }
    Ok(())
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
