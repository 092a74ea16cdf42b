//! Link and namespace plumbing against the real kernel (needs root).
//!
//! Every test makes its own network namespaces (named with the process id, removed on drop even
//! when the test fails) and runs the library code with its thread inside a private "host"
//! namespace, so nothing is ever created in the machine's root namespace. `ip` is only used to
//! prepare fixtures and to look at the result independently of the code under test.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use geneve_ovs::container_link::{self, AttachedLink, ContainerLinkSpec, ContainerRoute};
use geneve_ovs::ethtool;
use geneve_ovs::netlink::{self, Netlink};
use geneve_ovs::netns::Netns;
use serde_json::Value;

/// A network namespace owned by one test, deleted on drop.
struct TestNs {
    name: String,
}

impl TestNs {
    fn new(tag: &str) -> TestNs {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "gvo-test-{}-{tag}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        TestNs { name }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    fn netns(&self) -> Netns {
        Netns::open(&self.path()).expect("open test netns")
    }

    /// Runs `f` with this thread inside the namespace.
    fn run<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.netns().enter(f)
    }

    /// `ip -n NS ARGS...`
    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// `ip -n NS -j ARGS...`, parsed.
    fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let out = self.ip(&full);
        if out.trim().is_empty() {
            return Value::Array(Vec::new());
        }
        serde_json::from_str(&out).expect("ip -j output is JSON")
    }

    fn link_names(&self) -> Vec<String> {
        self.ip_json(&["link", "show"])
            .as_array()
            .expect("link list")
            .iter()
            .map(|link| link["ifname"].as_str().expect("ifname").to_string())
            .collect()
    }

    fn sysctl(&self, key: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "cat"])
            .arg(format!("/proc/sys/{key}"))
            .output()
            .expect("run ip netns exec");
        assert!(out.status.success(), "reading {key} in {}", self.name);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().expect("test prefix")
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn spec(host_name: &str) -> ContainerLinkSpec {
    ContainerLinkSpec {
        host_name: host_name.to_string(),
        interface_name: "eth0".to_string(),
        mtu: 1400,
        mac: None,
        addresses: vec![net("10.99.0.5/24")],
        routes: Vec::new(),
        default_gateways: vec![addr("10.99.0.1")],
        disable_tx_checksum: false,
        ignore_router_advertisements: false,
    }
}

fn full_spec(host_name: &str) -> ContainerLinkSpec {
    ContainerLinkSpec {
        mac: Some([0x02, 0x99, 0x00, 0x00, 0x00, 0x05]),
        addresses: vec![net("10.99.0.5/24"), net("fd99::5/64")],
        routes: vec![
            ContainerRoute {
                destination: net("192.168.120.0/24"),
                gateway: addr("10.99.0.1"),
                metric: Some(100),
            },
            ContainerRoute {
                destination: net("fd98::/64"),
                gateway: addr("fd99::1"),
                metric: None,
            },
        ],
        default_gateways: vec![addr("10.99.0.1"), addr("fd99::1")],
        disable_tx_checksum: true,
        ..spec(host_name)
    }
}

fn attach_from(
    host: &TestNs,
    container: &TestNs,
    spec: &ContainerLinkSpec,
) -> Result<AttachedLink> {
    host.run(|| container_link::attach(&container.path(), spec))
}

fn routes(ns: &TestNs, family: &str) -> Vec<Value> {
    ns.ip_json(&[family, "route", "show"])
        .as_array()
        .expect("route list")
        .clone()
}

fn find_route<'a>(routes: &'a [Value], dst: &str) -> &'a Value {
    routes
        .iter()
        .find(|route| route["dst"] == dst)
        .unwrap_or_else(|| panic!("no route to {dst} in {routes:?}"))
}

#[test]
fn attach_configures_the_container_side() {
    let host = TestNs::new("host");
    let container = TestNs::new("ctr");
    // A host interface with the container interface's name: its sysctls must stay untouched.
    host.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    let host_before = [
        host.sysctl("net/ipv4/conf/eth0/arp_notify"),
        host.sysctl("net/ipv6/conf/eth0/accept_dad"),
        host.sysctl("net/ipv6/conf/eth0/autoconf"),
    ];

    let spec = full_spec("gvo-h0");
    let attached = attach_from(&host, &container, &spec).expect("attach");
    assert_eq!(attached.mac, [0x02, 0x99, 0x00, 0x00, 0x00, 0x05]);

    // Container interface: name, MTU, MAC, up.
    let link = &container.ip_json(&["link", "show", "eth0"])[0];
    assert_eq!(link["mtu"], 1400);
    assert_eq!(link["address"], mac_string(attached.mac));
    assert!(link["flags"]
        .as_array()
        .unwrap()
        .contains(&Value::from("UP")));
    let lo = &container.ip_json(&["link", "show", "lo"])[0];
    assert!(lo["flags"].as_array().unwrap().contains(&Value::from("UP")));
    assert_eq!(
        container.link_names().len(),
        2,
        "only lo and eth0 in the container"
    );

    // Addresses with their prefixes; the IPv6 one without DAD.
    let addrs = &container.ip_json(&["addr", "show", "dev", "eth0"])[0]["addr_info"];
    let found: Vec<String> = addrs
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert!(found.contains(&"10.99.0.5/24".to_string()), "{found:?}");
    assert!(found.contains(&"fd99::5/64".to_string()), "{found:?}");
    let v6 = addrs
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["local"] == "fd99::5")
        .unwrap();
    assert_eq!(v6["nodad"], true, "{v6}");
    assert!(v6.get("tentative").is_none(), "{v6}");

    // Routes and default routes.
    let v4 = routes(&container, "-4");
    let extra = find_route(&v4, "192.168.120.0/24");
    assert_eq!(extra["gateway"], "10.99.0.1");
    assert_eq!(extra["dev"], "eth0");
    assert_eq!(extra["metric"], 100);
    assert_eq!(find_route(&v4, "default")["gateway"], "10.99.0.1");
    let v6 = routes(&container, "-6");
    assert_eq!(find_route(&v6, "fd98::/64")["gateway"], "fd99::1");
    assert_eq!(find_route(&v6, "default")["gateway"], "fd99::1");

    // Sysctls: set in the container, untouched on the host.
    assert_eq!(container.sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
    assert_eq!(container.sysctl("net/ipv6/conf/eth0/accept_dad"), "0");
    assert_eq!(container.sysctl("net/ipv6/conf/eth0/autoconf"), "0");
    let host_after = [
        host.sysctl("net/ipv4/conf/eth0/arp_notify"),
        host.sysctl("net/ipv6/conf/eth0/accept_dad"),
        host.sysctl("net/ipv6/conf/eth0/autoconf"),
    ];
    assert_eq!(host_before, host_after);

    // TX checksum: off in the container, still on at the host end.
    let container_tx = container
        .run(|| ethtool::tx_checksum_enabled("eth0"))
        .unwrap();
    assert!(!container_tx);
    let host_tx = host.run(|| ethtool::tx_checksum_enabled("gvo-h0")).unwrap();
    assert!(host_tx);

    // Host end: in the host namespace, up and promiscuous (as OVS would make it: adding it
    // as a port then changes no flag), same MTU, the reported index.
    let host_end = &host.ip_json(&["link", "show", "gvo-h0"])[0];
    assert_eq!(host_end["ifindex"], attached.host_index);
    assert_eq!(host_end["mtu"], 1400);
    let host_flags = host_end["flags"].as_array().unwrap();
    assert!(host_flags.contains(&Value::from("UP")));
    assert!(
        host_flags.contains(&Value::from("PROMISC")),
        "host end flags: {host_flags:?}"
    );
    let info = host
        .run(|| Netlink::open()?.link_by_name("gvo-h0"))
        .unwrap()
        .unwrap();
    assert_eq!(info.index, attached.host_index);
    assert!(info.up);
    assert_eq!(info.mtu, 1400);
}

#[test]
fn attach_with_random_mac_reports_the_real_one() {
    let host = TestNs::new("host");
    let container = TestNs::new("ctr");
    let attached = attach_from(&host, &container, &spec("gvo-h1")).expect("attach");
    let link = &container.ip_json(&["link", "show", "eth0"])[0];
    assert_eq!(link["address"], mac_string(attached.mac));
    assert_ne!(attached.mac, [0; 6]);
    // Not asked for: offload stays on, and no IPv6 sysctl was touched.
    assert!(container
        .run(|| ethtool::tx_checksum_enabled("eth0"))
        .unwrap());
    assert_eq!(container.sysctl("net/ipv6/conf/eth0/accept_dad"), "1");
    assert_eq!(container.sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
    assert!(routes(&container, "-6")
        .iter()
        .all(|r| r["dst"] != "default"));
}

/// The IPv6 addresses of `ifname` in `ns`, as `ip` prints them.
fn ipv6_addresses(ns: &TestNs, ifname: &str) -> Vec<String> {
    ns.ip_json(&["-6", "addr", "show", "dev", ifname])
        .as_array()
        .and_then(|links| links.first())
        .and_then(|link| link["addr_info"].as_array())
        .map(|addrs| {
            addrs
                .iter()
                .filter_map(|a| a["local"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_ipv4_only_interface_has_no_ipv6_and_a_dual_stack_one_keeps_its_link_local() {
    let host = TestNs::new("host");
    let v4_only = TestNs::new("ctr4");
    let dual = TestNs::new("ctr6");
    attach_from(&host, &v4_only, &spec("gvo-h4")).expect("attach IPv4-only");
    attach_from(&host, &dual, &full_spec("gvo-h6")).expect("attach dual-stack");

    // Dual stack: the link-local address comes with the carrier (no DAD, so not tentative).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ipv6_addresses(&dual, "eth0")
        .iter()
        .any(|a| a.starts_with("fe80:"))
    {
        assert!(
            Instant::now() < deadline,
            "no link-local address on a dual-stack interface: {:?}",
            ipv6_addresses(&dual, "eth0")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dual.sysctl("net/ipv6/conf/eth0/disable_ipv6"), "0");

    // IPv4 only: no IPv6 at all, so nothing multicast of its own on the overlay. By the time
    // the dual-stack interface had its link-local address, this one (up earlier) would too.
    assert_eq!(v4_only.sysctl("net/ipv6/conf/eth0/disable_ipv6"), "1");
    assert_eq!(ipv6_addresses(&v4_only, "eth0"), Vec::<String>::new());
    // Its IPv4 side is as before.
    let v4 = &v4_only.ip_json(&["-4", "addr", "show", "dev", "eth0"])[0]["addr_info"][0];
    assert_eq!(v4["local"], "10.99.0.5");
}

#[test]
fn failed_attach_leaves_nothing_behind() {
    let host = TestNs::new("host");
    let container = TestNs::new("ctr");
    let mut bad = full_spec("gvo-h2");
    bad.routes.push(ContainerRoute {
        destination: net("192.168.120.128/25"),
        gateway: addr("10.88.7.1"),
        metric: None,
    });
    let err = attach_from(&host, &container, &bad).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("10.88.7.1"), "{message}");
    assert!(message.contains("eth0"), "{message}");
    assert!(message.contains(&container.name), "{message}");
    assert!(!host.link_names().contains(&"gvo-h2".to_string()));
    assert_eq!(container.link_names(), vec!["lo".to_string()]);

    // The kernel refuses the name (our check lets it pass, IFNAMSIZ is the kernel's limit too).
    let mut bad = spec("gvo-h3");
    bad.interface_name = "bad%name".to_string();
    assert!(attach_from(&host, &container, &bad).is_err());
    assert!(!host.link_names().contains(&"gvo-h3".to_string()));
    assert_eq!(container.link_names(), vec!["lo".to_string()]);

    // Names that could escape /proc/sys are refused before anything exists.
    let mut bad = spec("gvo-h4");
    bad.interface_name = "..".to_string();
    assert!(attach_from(&host, &container, &bad).is_err());
    assert!(!host.link_names().contains(&"gvo-h4".to_string()));

    // The container name is taken: a clear error, and our host end is not left behind.
    container.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    let err = attach_from(&host, &container, &spec("gvo-h5")).unwrap_err();
    assert!(netlink::is_exists_error(&err), "{err:#}");
    assert!(format!("{err:#}").contains("already exists"), "{err:#}");
    assert!(!host.link_names().contains(&"gvo-h5".to_string()));

    // Both a stale host end and a taken container name: the stale end goes, the error stays.
    host.ip(&[
        "link", "add", "gvo-h10", "type", "veth", "peer", "name", "stale10",
    ]);
    let err = attach_from(&host, &container, &spec("gvo-h10")).unwrap_err();
    assert!(format!("{err:#}").contains("already exists"), "{err:#}");
    let names = host.link_names();
    assert!(!names.contains(&"gvo-h10".to_string()), "{names:?}");
    assert!(!names.contains(&"stale10".to_string()), "{names:?}");
}

#[test]
fn attach_replaces_a_stale_host_end() {
    let host = TestNs::new("host");
    let container = TestNs::new("ctr");
    // Leftover of a crashed run whose container end still sits in the container.
    host.ip(&[
        "link",
        "add",
        "gvo-h6",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &container.name,
    ]);
    let attached = attach_from(&host, &container, &spec("gvo-h6")).expect("attach over stale");
    let link = &container.ip_json(&["link", "show", "eth0"])[0];
    assert_eq!(link["address"], mac_string(attached.mac));
    assert_eq!(link["mtu"], 1400);

    // Leftover whose peer stayed on the host.
    let other = TestNs::new("ctr");
    host.ip(&[
        "link", "add", "gvo-h7", "type", "veth", "peer", "name", "stale7",
    ]);
    attach_from(&host, &other, &spec("gvo-h7")).expect("attach over stale");
    assert!(!host.link_names().contains(&"stale7".to_string()));
}

#[test]
fn detach_is_idempotent() {
    let host = TestNs::new("host");
    let container = TestNs::new("ctr");
    attach_from(&host, &container, &spec("gvo-h8")).expect("attach");
    assert!(host.run(|| container_link::detach("gvo-h8")).unwrap());
    assert!(!host.run(|| container_link::detach("gvo-h8")).unwrap());
    assert!(!host.link_names().contains(&"gvo-h8".to_string()));
    assert_eq!(container.link_names(), vec!["lo".to_string()]);
}

#[test]
fn routes_and_local_addresses() {
    let ns = TestNs::new("mtu");
    ns.ip(&[
        "link", "add", "va", "mtu", "1400", "type", "veth", "peer", "name", "vb",
    ]);
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "va"]);
    ns.ip(&["addr", "add", "fd99::1/64", "dev", "va", "nodad"]);
    ns.ip(&["link", "set", "va", "up"]);
    ns.ip(&["link", "set", "vb", "up"]);
    ns.ip(&[
        "route",
        "add",
        "192.168.120.0/24",
        "via",
        "10.99.0.2",
        "mtu",
        "1300",
    ]);

    // The socket lives in the test namespace although this thread never entered it.
    let netlink = Netlink::open_in(&ns.netns()).unwrap();
    let mtu = |dst: &str| netlink.route_to(addr(dst)).unwrap().map(|r| r.mtu);
    assert_eq!(mtu("10.99.0.2"), Some(1400));
    assert_eq!(mtu("fd99::2"), Some(1400));
    assert_eq!(mtu("192.168.120.7"), Some(1300));
    assert_eq!(mtu("10.88.1.1"), None);
    assert_eq!(mtu("fd98::1"), None);
    // The source address the kernel would pick.
    let source = netlink
        .route_to(addr("10.99.0.2"))
        .unwrap()
        .and_then(|r| r.source);
    assert_eq!(source, Some(addr("10.99.0.1")));
    // The routes of the main table, without default routes.
    let routes = netlink.route_destinations().unwrap();
    for want in ["10.99.0.0/24", "192.168.120.0/24", "fd99::/64"] {
        assert!(
            routes.contains(&want.parse().unwrap()),
            "{want} not in {routes:?}"
        );
    }

    let local = netlink.local_addresses().unwrap();
    assert!(local.contains(&addr("10.99.0.1")), "{local:?}");
    assert!(local.contains(&addr("fd99::1")), "{local:?}");
    assert!(!local.contains(&addr("10.99.0.2")), "{local:?}");

    assert_eq!(netlink.link_by_name("no-such-link").unwrap(), None);
    let va = netlink.link_by_name("va").unwrap().unwrap();
    assert_eq!(va.mtu, 1400);
    assert!(va.up);
    assert!(!netlink.delete_link("no-such-link").unwrap());
}

#[test]
fn enter_returns_to_the_original_namespace() {
    let ns = TestNs::new("enter");
    let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let inside = ns
        .run(|| Ok(std::fs::read_link("/proc/thread-self/ns/net")?))
        .unwrap();
    assert_ne!(before, inside);
    let failed: Result<()> = ns.run(|| anyhow::bail!("fails inside"));
    assert!(failed.is_err());
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        before
    );
}

#[test]
fn enter_returns_even_when_the_closure_panics() {
    let ns = TestNs::new("panic");
    let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let netns = ns.netns();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Result<()> = netns.enter(|| panic!("panics inside"));
    }));
    assert!(outcome.is_err());
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        before
    );
}

/// Not an assertion: prints what attach and detach cost, for the setup latency budget.
#[test]
fn attach_detach_timing() {
    const ROUNDS: usize = 20;
    let host = TestNs::new("host");
    let container = TestNs::new("ctr");
    let spec = full_spec("gvo-h9");
    let mut attach_times = Vec::new();
    let mut detach_times = Vec::new();
    host.run(|| {
        for _ in 0..ROUNDS {
            let start = Instant::now();
            container_link::attach(&container.path(), &spec)?;
            attach_times.push(start.elapsed());
            let start = Instant::now();
            container_link::detach(&spec.host_name)?;
            detach_times.push(start.elapsed());
        }
        Ok(())
    })
    .unwrap();
    println!("attach: {}", summary(&mut attach_times));
    println!("detach: {}", summary(&mut detach_times));
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let total: Duration = times.iter().sum();
    format!(
        "min {:?} median {:?} max {:?} mean {:?} over {} rounds",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        total / times.len() as u32,
        times.len()
    )
}
