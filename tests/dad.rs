//! Duplicate-address detection against real kernels (needs root).
//!
//! Each test builds its own layer-2 segment: a "switch" namespace holding a Linux bridge (multicast
//! snooping off, like an OVS bridge by default) and station namespaces attached to it by veth pairs,
//! each station's end named `eth0`. Station A holds 192.168.120.5/24 and fd12:3456::5/64 the
//! ordinary way, so its kernel defends them; the other stations are up without addresses and
//! without kernel DAD, like a container interface the plugin has attached but not configured yet.
//! The probing runs with the test thread inside a station's namespace. Namespaces are named with
//! the process id and removed on drop, also when a test fails.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::Result;
use geneve_ovs::dad::round_trip::{RoundTrips, MEASURE_FOR};
use geneve_ovs::dad::window::{measured_window, UNMEASURED_WINDOW};
use geneve_ovs::dad::{self, Conflict};
use geneve_ovs::netns::Netns;
use serde_json::Value;

/// The timeout the plugin is meant to use.
const TIMEOUT: Duration = Duration::from_millis(100);
/// A generous bound for "about the timeout" on a loaded test machine.
const UPPER_BOUND: Duration = Duration::from_secs(1);

/// A network namespace owned by one test, deleted on drop.
struct TestNs {
    name: String,
}

impl TestNs {
    fn new(role: &str) -> TestNs {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "gvo-dad-{}-{role}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = TestNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Runs `f` with this thread inside the namespace.
    fn run<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        Netns::open(&self.path())?.enter(f)
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

    fn sysctl(&self, key: &str, value: &str) {
        let setting = format!("{key}={value}");
        let status = Command::new("ip")
            .args(["netns", "exec", &self.name, "sysctl", "-qw", &setting])
            .status()
            .expect("run sysctl");
        assert!(status.success(), "sysctl {setting} in {}", self.name);
    }

    fn mac(&self, ifname: &str) -> [u8; 6] {
        let links = self.ip_json(&["link", "show", "dev", ifname]);
        let text = links[0]["address"].as_str().expect("link address");
        let bytes: Vec<u8> = text
            .split(':')
            .map(|part| u8::from_str_radix(part, 16).expect("hex"))
            .collect();
        bytes.try_into().expect("six bytes")
    }

    /// The addresses on `ifname` in `family` ("-4" or "-6") of `scope`.
    fn addresses(&self, family: &str, ifname: &str, scope: &str) -> Vec<String> {
        self.ip_json(&[family, "addr", "show", "dev", ifname, "scope", scope])
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|info| info["local"].as_str().map(str::to_string))
            .collect()
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

/// A bridge and the stations on it. Field order is drop order: stations go first, taking their
/// veth pairs with them, then the switch.
struct Segment {
    /// Station A, holding the test addresses.
    holder: TestNs,
    /// Unconfigured stations, as many as asked for.
    probers: Vec<TestNs>,
    _switch: TestNs,
}

impl Segment {
    fn new(probers: usize) -> Segment {
        let switch = TestNs::new("sw");
        switch.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        switch.ip(&["link", "set", "br0", "up"]);
        let mut port = 0;
        let mut station = |role: &str| {
            let ns = TestNs::new(role);
            let peer = format!("p{port}");
            port += 1;
            switch.ip(&[
                "link", "add", &peer, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
            ]);
            switch.ip(&["link", "set", &peer, "master", "br0", "up"]);
            ns.sysctl("net.ipv6.conf.eth0.accept_dad", "0");
            ns.ip(&["link", "set", "eth0", "up"]);
            ns
        };
        let holder = station("a");
        let probers = (0..probers).map(|_| station("p")).collect();
        holder.ip(&["addr", "add", "192.168.120.5/24", "dev", "eth0"]);
        holder.ip(&["addr", "add", "fd12:3456::5/64", "dev", "eth0", "nodad"]);
        Segment {
            holder,
            probers,
            _switch: switch,
        }
    }

    fn prober(&self) -> &TestNs {
        &self.probers[0]
    }
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|byte| format!("{byte:02x}")).join(":")
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Probes `addresses` from inside `station`; the result and how long the call took.
fn probe_from(
    station: &TestNs,
    addresses: &[IpAddr],
    timeout: Duration,
) -> (Option<Conflict>, Duration) {
    let own_mac = station.mac("eth0");
    station
        .run(|| {
            let started = Instant::now();
            let result = dad::probe("eth0", own_mac, addresses, timeout)?;
            Ok((result, started.elapsed()))
        })
        .expect("probe runs")
}

/// The probes configured nothing on the prober: no IPv4 address, no global IPv6 address, and the
/// answers taught its kernel no neighbour entry for the holder's addresses.
fn assert_still_unconfigured(station: &TestNs) {
    assert_eq!(
        station.addresses("-4", "eth0", "global"),
        Vec::<String>::new()
    );
    assert_eq!(
        station.addresses("-6", "eth0", "global"),
        Vec::<String>::new()
    );
    let neighbours = station.ip(&["neigh", "show", "dev", "eth0"]);
    for address in ["192.168.120.5 ", "fd12:3456::5 "] {
        assert!(
            !neighbours.contains(address),
            "{}: {neighbours}",
            address.trim()
        );
    }
}

#[test]
fn ipv4_conflict_names_the_holder() {
    let segment = Segment::new(1);
    let holder_mac = segment.holder.mac("eth0");
    let (result, elapsed) = probe_from(segment.prober(), &[addr("192.168.120.5")], TIMEOUT);
    assert_eq!(
        result,
        Some(Conflict {
            address: addr("192.168.120.5"),
            mac: holder_mac
        })
    );
    assert!(elapsed < UPPER_BOUND, "{elapsed:?}");
    assert_still_unconfigured(segment.prober());
    // A probe from 0.0.0.0 teaches the holder nothing about the prober either.
    let prober_mac = mac_text(segment.prober().mac("eth0"));
    let neighbours = segment.holder.ip(&["-4", "neigh", "show", "dev", "eth0"]);
    assert!(
        !neighbours.contains(&prober_mac),
        "holder learnt {prober_mac}: {neighbours}"
    );
}

#[test]
fn ipv6_conflict_names_the_holder() {
    let segment = Segment::new(1);
    let holder_mac = segment.holder.mac("eth0");
    let (result, elapsed) = probe_from(segment.prober(), &[addr("fd12:3456::5")], TIMEOUT);
    assert_eq!(
        result,
        Some(Conflict {
            address: addr("fd12:3456::5"),
            mac: holder_mac
        })
    );
    assert!(elapsed < UPPER_BOUND, "{elapsed:?}");
    assert_still_unconfigured(segment.prober());
}

#[test]
fn free_addresses_take_about_the_timeout() {
    let segment = Segment::new(1);
    // The segment works: the taken address is seen (so silence below means something).
    let (taken, _) = probe_from(segment.prober(), &[addr("192.168.120.5")], TIMEOUT);
    assert!(taken.is_some());

    for addresses in [
        vec![addr("192.168.120.6")],
        vec![addr("fd12:3456::6")],
        vec![addr("192.168.120.6"), addr("fd12:3456::6")],
    ] {
        let (result, elapsed) = probe_from(segment.prober(), &addresses, TIMEOUT);
        assert_eq!(result, None, "{addresses:?}");
        assert!(
            elapsed >= TIMEOUT,
            "{addresses:?}: returned early, {elapsed:?}"
        );
        assert!(elapsed < UPPER_BOUND, "{addresses:?}: {elapsed:?}");
    }
    assert_still_unconfigured(segment.prober());
}

#[test]
fn overhead_beyond_the_timeout() {
    let segment = Segment::new(1);
    let addresses = [addr("192.168.120.6"), addr("fd12:3456::6")];
    let mut overheads: Vec<Duration> = (0..10)
        .map(|_| {
            let (result, elapsed) = probe_from(segment.prober(), &addresses, TIMEOUT);
            assert_eq!(result, None);
            assert!(elapsed >= TIMEOUT && elapsed < UPPER_BOUND, "{elapsed:?}");
            elapsed - TIMEOUT
        })
        .collect();
    overheads.sort();
    eprintln!(
        "dad overhead beyond {TIMEOUT:?} for 2 addresses: min {:?}, median {:?}, max {:?}",
        overheads[0],
        overheads[overheads.len() / 2],
        overheads[overheads.len() - 1]
    );
}

#[test]
fn a_conflict_ends_the_wait_early() {
    let segment = Segment::new(1);
    let holder_mac = segment.holder.mac("eth0");
    let addresses = [
        addr("192.168.120.6"),
        addr("fd12:3456::6"),
        addr("192.168.120.5"),
        addr("fd12:3456::5"),
    ];
    let long = Duration::from_secs(5);
    let (result, elapsed) = probe_from(segment.prober(), &addresses, long);
    let conflict = result.expect("a conflict");
    assert!(
        [addr("192.168.120.5"), addr("fd12:3456::5")].contains(&conflict.address),
        "{conflict:?}"
    );
    assert_eq!(conflict.mac, holder_mac);
    assert!(elapsed < UPPER_BOUND, "waited {elapsed:?} of {long:?}");
}

#[test]
fn rival_probers_see_each_other() {
    let segment = Segment::new(2);
    let (b, c) = (&segment.probers[0], &segment.probers[1]);
    let (b_mac, c_mac) = (b.mac("eth0"), c.mac("eth0"));
    let timeout = Duration::from_millis(300);
    for address in [addr("192.168.120.7"), addr("fd12:3456::7")] {
        let start = Barrier::new(2);
        let probe = |station: &TestNs| {
            start.wait();
            probe_from(station, &[address], timeout).0
        };
        let (b_result, c_result) = std::thread::scope(|scope| {
            let b_thread = scope.spawn(|| probe(b));
            let c_result = probe(c);
            (b_thread.join().expect("prober thread"), c_result)
        });
        // Whoever sent second was listening when the other's probe came, and the one that sent
        // first hears the second; at least one side must notice, each naming the other.
        assert!(
            b_result.is_some() || c_result.is_some(),
            "{address}: no side saw the other"
        );
        if let Some(conflict) = b_result {
            assert_eq!(
                conflict,
                Conflict {
                    address,
                    mac: c_mac
                }
            );
        }
        if let Some(conflict) = c_result {
            assert_eq!(
                conflict,
                Conflict {
                    address,
                    mac: b_mac
                }
            );
        }
    }
}

#[test]
fn a_missing_interface_is_an_error() {
    let segment = Segment::new(1);
    let err = segment
        .prober()
        .run(|| {
            dad::probe(
                "nosuch0",
                [2, 0, 0, 0, 0, 1],
                &[addr("192.168.120.6")],
                TIMEOUT,
            )
        })
        .expect_err("no such interface");
    assert!(format!("{err:#}").contains("nosuch0"), "{err:#}");
}

#[test]
fn a_down_interface_is_an_error() {
    let segment = Segment::new(1);
    let prober = segment.prober();
    let own_mac = prober.mac("eth0");
    prober.ip(&["link", "set", "eth0", "down"]);
    let started = Instant::now();
    let result = prober.run(|| dad::probe("eth0", own_mac, &[addr("192.168.120.6")], TIMEOUT));
    assert!(result.is_err(), "{result:?}");
    assert!(started.elapsed() < UPPER_BOUND);
}

#[test]
fn round_trips_are_measured_to_stations_that_answer_and_unknown_for_others() {
    let segment = Segment::new(2);
    // The measuring station has addresses, as a host on its underlay does.
    let host = &segment.probers[1];
    host.ip(&["addr", "add", "192.168.120.9/24", "dev", "eth0"]);
    host.ip(&["addr", "add", "fd12:3456::9/64", "dev", "eth0", "nodad"]);
    let peers = [
        addr("192.168.120.5"),
        addr("192.168.120.77"),
        addr("fd12:3456::5"),
    ];
    let (measured, took) = host
        .run(|| {
            let started = Instant::now();
            let measured = RoundTrips::start(&peers).finish();
            Ok((measured, started.elapsed()))
        })
        .unwrap();
    assert_eq!(measured.len(), 3);
    assert!(
        measured[0].is_some_and(|rtt| rtt < MEASURE_FOR),
        "{measured:?}"
    );
    assert_eq!(measured[1], None, "nobody holds 192.168.120.77");
    assert!(
        measured[2].is_some_and(|rtt| rtt < MEASURE_FOR),
        "{measured:?}"
    );
    // The silent one is waited for until the measurement ends, and no longer.
    assert!(took >= MEASURE_FOR && took < UPPER_BOUND, "{took:?}");
    // A silent peer brings the constant window back; without it the window is a few ms.
    assert_eq!(measured_window(&measured), UNMEASURED_WINDOW);
    let window = measured_window(&[measured[0], measured[2]]);
    assert!(window < UNMEASURED_WINDOW / 2, "{window:?}");

    // And within that window the holder's answer is still heard, for both families.
    for address in ["192.168.120.5", "fd12:3456::5"] {
        let (conflict, _) = probe_from(segment.prober(), &[addr(address)], window);
        let conflict = conflict.unwrap_or_else(|| panic!("{address} missed in {window:?}"));
        assert_eq!(conflict.mac, segment.holder.mac("eth0"));
    }
    assert_still_unconfigured(segment.prober());
}
