//! Scenarios on non-internal networks (gateway, outbound NAT, `-p`), run by
//! `e2e_podman_open.rs` (userspace datapath) and `e2e_kernel.rs` (kernel datapath). The lab's
//! underlay switch namespace stands for the outside world, with the address [`OUTSIDE`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::Value;

use crate::podman_lab::{ok, stdout, wait, Container, Host, PodmanLab};

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

/// The DNAT maps of the plugin's table on `h` (`dnat4_addr`, `dnat4_port`, ... the maps of
/// `-p` and of `-p HOST_IP:...`, both families) with their elements, as `nft -j` lists them.
/// Fails when the table or one of these maps does not exist.
pub fn dnat_maps(h: Host) -> Result<BTreeMap<String, Vec<Value>>> {
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
pub fn host_fetch(h: Host, url: &str, timeout: Duration) -> Result<String> {
    wait::until_some(&format!("h{} to fetch {url}", h.index()), timeout, || {
        let out = h.exec(&["busybox", "wget", "-q", "-T", "2", "-O", "-", url]);
        Ok(ok(&out).then(|| stdout(&out)))
    })
}

/// On 2 hosts: ten `podman run -d -p PORT:80` at once on a non-internal network. Each port
/// answers from its host (127.0.0.1 and the host's address) and from the other host, the DNAT
/// maps hold exactly their elements, and after ten parallel `podman rm -f` none is left.
pub fn ten_parallel_runs_with_published_ports(lab: &PodmanLab) -> Result<()> {
    const N: u16 = 10;
    const FIRST_PORT: u16 = 8000;
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
