//! The underlay filter of the plugin's nftables table, on the kernel's own receive path (what
//! hosts on the kernel datapath use): GENEVE's UDP port accepts datagrams from the configured
//! peers only. First with the plugin's library on two bare namespaces, then with the plugin's
//! `gc` (the boot unit) on a simulated host after a reboot, and with the plugin's `create` of an
//! internal network on a simulated host whose Open vSwitch offers the kernel datapath.

mod common;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::time::Duration;

use anyhow::{Context, Result};
use common::cmd::Cmd;
use common::operate::{gc_json, network_dir, save_network};
use common::podman;
use common::{Host, Lab, Underlay as LabUnderlay};
use geneve_ovs::firewall::{self, Desired, Underlay};
use geneve_ovs::netns::Netns;

/// A namespace of this test, deleted on drop (also when the test fails).
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Result<Ns> {
        let name = format!("gvfw{}{tag}", std::process::id());
        common::netns::add(&name)?;
        Ok(Ns(name))
    }
    fn ip(&self, args: &[&str]) -> Result<String> {
        Cmd::new("ip").arg("-n").arg(&self.0).args(args).run()
    }
    fn enter<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        Netns::open(&common::netns::path(&self.0))?.enter(f)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = common::netns::delete(&self.0);
    }
}

/// Sends one datagram from `from` (an address of namespace `sender`) to `to` and says whether
/// `receiver` got it. A send the sender's own firewall drops (EPERM) is not delivered.
fn delivered(sender: &str, receiver: &UdpSocket, from: &str, to: &str) -> Result<bool> {
    let sent = Netns::open(&common::netns::path(sender))?.enter(|| {
        let socket =
            UdpSocket::bind(format!("{from}:0")).with_context(|| format!("bind {from}"))?;
        match socket.send_to(b"geneve?", to) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => Ok(false),
            Err(err) => Err(err.into()),
        }
    })?;
    if !sent {
        return Ok(false);
    }
    let mut buf = [0u8; 64];
    loop {
        match receiver.recv_from(&mut buf) {
            Ok((_, peer)) if peer.ip().to_string() == from => return Ok(true),
            // A late datagram of an earlier probe.
            Ok(_) => continue,
            Err(_) => return Ok(false),
        }
    }
}

#[test]
fn geneve_is_accepted_only_from_peers() -> Result<()> {
    let host = Ns::new("h")?;
    let underlay = Ns::new("u")?;
    Cmd::new("ip")
        .args([
            "link",
            "add",
            "fwh",
            "netns",
            &host.0,
            "type",
            "veth",
            "peer",
            "name",
            "fwu",
            "netns",
            &underlay.0,
        ])
        .run()?;
    host.ip(&["addr", "add", "10.88.0.1/24", "dev", "fwh"])?;
    host.ip(&["link", "set", "fwh", "up"])?;
    underlay.ip(&["addr", "add", "10.88.0.2/24", "dev", "fwu"])?;
    underlay.ip(&["addr", "add", "10.88.0.3/24", "dev", "fwu"])?;
    underlay.ip(&["link", "set", "fwu", "up"])?;

    let receiver = host.enter(|| Ok(UdpSocket::bind("10.88.0.1:6081")?))?;
    receiver.set_read_timeout(Some(Duration::from_millis(500)))?;
    let to = "10.88.0.1:6081";
    // Without the table both senders get through (the filter is what makes the difference).
    assert!(delivered(&underlay.0, &receiver, "10.88.0.2", to)?);
    assert!(delivered(&underlay.0, &receiver, "10.88.0.3", to)?);

    let filter = Underlay {
        ports: BTreeSet::from([6081]),
        peers: BTreeSet::from([("10.88.0.2".parse()?, 6081)]),
        encrypted: BTreeSet::new(),
    };
    host.enter(|| firewall::replace_underlay(&filter))?;
    assert!(
        delivered(&underlay.0, &receiver, "10.88.0.2", to)?,
        "a peer's GENEVE was dropped"
    );
    assert!(
        !delivered(&underlay.0, &receiver, "10.88.0.3", to)?,
        "a stranger's GENEVE got through"
    );

    // With no network left the table goes: everything gets through again.
    host.enter(|| firewall::reconcile(&Desired::default()))?;
    assert!(delivered(&underlay.0, &receiver, "10.88.0.3", to)?);
    let tables = Cmd::new("ip")
        .args(["netns", "exec", &host.0, "nft", "list", "tables"])
        .run()?;
    assert!(!tables.contains(firewall::TABLE), "{tables}");
    Ok(())
}

/// An encrypted network's peer gets no clear GENEVE from this host and none of its clear
/// GENEVE is taken, while a clear network's peer on the same host pair keeps its own: this
/// kernel has no IPsec, so nothing here has a security path or an IPsec route, exactly the
/// case of an IKE daemon that is down or a peer that does not encrypt.
#[test]
fn clear_geneve_to_and_from_encrypted_peers_is_dropped() -> Result<()> {
    let host = Ns::new("eh")?;
    let underlay = Ns::new("eu")?;
    Cmd::new("ip")
        .args([
            "link",
            "add",
            "fweh",
            "netns",
            &host.0,
            "type",
            "veth",
            "peer",
            "name",
            "fweu",
            "netns",
            &underlay.0,
        ])
        .run()?;
    host.ip(&["addr", "add", "10.88.1.1/24", "dev", "fweh"])?;
    host.ip(&["link", "set", "fweh", "up"])?;
    underlay.ip(&["addr", "add", "10.88.1.2/24", "dev", "fweu"])?;
    underlay.ip(&["addr", "add", "10.88.1.3/24", "dev", "fweu"])?;
    underlay.ip(&["link", "set", "fweu", "up"])?;

    let host_rx = host.enter(|| Ok(UdpSocket::bind("10.88.1.1:6081")?))?;
    host_rx.set_read_timeout(Some(Duration::from_millis(500)))?;
    let peer_rx = underlay.enter(|| Ok(UdpSocket::bind("10.88.1.2:6081")?))?;
    peer_rx.set_read_timeout(Some(Duration::from_millis(500)))?;
    let clear_rx = underlay.enter(|| Ok(UdpSocket::bind("10.88.1.3:6081")?))?;
    clear_rx.set_read_timeout(Some(Duration::from_millis(500)))?;
    // Before the guard, everything crosses both ways (the guard is what makes the difference).
    assert!(delivered(
        &underlay.0,
        &host_rx,
        "10.88.1.2",
        "10.88.1.1:6081"
    )?);
    assert!(delivered(&host.0, &peer_rx, "10.88.1.1", "10.88.1.2:6081")?);

    // 10.88.1.2 is the peer of an encrypted network, 10.88.1.3 of a clear one.
    let filter = Underlay {
        ports: BTreeSet::from([6081]),
        peers: BTreeSet::from([("10.88.1.2".parse()?, 6081), ("10.88.1.3".parse()?, 6081)]),
        encrypted: BTreeSet::from([("10.88.1.2".parse()?, 6081)]),
    };
    host.enter(|| firewall::replace_underlay(&filter))?;
    assert!(
        !delivered(&underlay.0, &host_rx, "10.88.1.2", "10.88.1.1:6081")?,
        "clear GENEVE from an encrypted peer was taken"
    );
    assert!(
        !delivered(&host.0, &peer_rx, "10.88.1.1", "10.88.1.2:6081")?,
        "clear GENEVE went out to an encrypted peer"
    );
    assert!(
        delivered(&underlay.0, &host_rx, "10.88.1.3", "10.88.1.1:6081")?,
        "a clear network's peer lost its GENEVE"
    );
    assert!(
        delivered(&host.0, &clear_rx, "10.88.1.1", "10.88.1.3:6081")?,
        "GENEVE to a clear network's peer was dropped"
    );
    host.enter(|| firewall::reconcile(&Desired::default()))?;
    Ok(())
}

/// The OVS rows `create` makes for an internal network on the kernel datapath with peer
/// 10.99.0.2, written by hand: the lab's ovs-vswitchd has no kernel datapath, so it cannot
/// realise them, but the database is all the firewall and `gc` read.
fn kernel_datapath_rows(host: &Host, network: &serde_json::Value) -> Result<()> {
    let name = network["name"].as_str().context("name")?;
    let id = network["id"].as_str().context("id")?;
    let common = format!(
        "external_ids:geneve-ovs.owner=geneve-ovs external_ids:geneve-ovs.network={name} \
         external_ids:geneve-ovs.network-id={id}"
    );
    let bridge = format!(
        "--no-wait add-br gnvk1 -- set Bridge gnvk1 datapath_type=system {common} \
         external_ids:geneve-ovs.role=bridge external_ids:geneve-ovs.vni=77 \
         external_ids:geneve-ovs.datapath=system external_ids:geneve-ovs.internal=true \
         -- set Port gnvk1 {common} external_ids:geneve-ovs.role=bridge \
         -- add-port gnvk1 gtk1 -- set Interface gtk1 type=geneve options:remote_ip=10.99.0.2 \
         options:key=77 {common} external_ids:geneve-ovs.role=tunnel \
         -- set Port gtk1 {common} external_ids:geneve-ovs.role=tunnel \
         external_ids:geneve-ovs.peer=10.99.0.2 external_ids:geneve-ovs.dst-port=6081"
    );
    let args: Vec<&str> = bridge.split_whitespace().collect();
    host.vsctl(&args)?;
    Ok(())
}

#[test]
fn after_a_reboot_gc_puts_the_underlay_filter_back_before_any_container() -> Result<()> {
    let lab = Lab::new(3, LabUnderlay::V4)?;
    let h1 = lab.host(1);
    let dir = network_dir(&lab, 1)?;
    let network = podman::network("kern", "192.168.120.0/24", None, &[("peers", "10.99.0.2")]);
    save_network(&dir, &network)?;
    kernel_datapath_rows(h1, &network)?;

    // The reboot: the kernel's nftables state is gone, Open vSwitch comes back with its
    // database; no container of the (internal) network starts.
    h1.exec_ok("nft", &["flush", "ruleset"])?;
    h1.stop_vswitchd()?;
    h1.start_vswitchd()?;

    let receiver =
        Netns::open(&h1.netns_path())?.enter(|| Ok(UdpSocket::bind("10.99.0.1:6081")?))?;
    receiver.set_read_timeout(Some(Duration::from_millis(500)))?;
    let (peer, stranger) = (lab.host(2).name(), lab.host(3).name());
    let to = "10.99.0.1:6081";
    // Without the filter anyone's GENEVE reaches the host (what the boot unit must close).
    assert!(delivered(stranger, &receiver, "10.99.0.3", to)?);

    // The boot unit: `geneve-ovs gc`.
    let gc = gc_json(h1, &dir, &[])?;
    assert!(gc["failed"].as_array().is_some_and(Vec::is_empty), "{gc:#}");
    assert!(
        !delivered(stranger, &receiver, "10.99.0.3", to)?,
        "a stranger's GENEVE got through after gc"
    );
    assert!(
        delivered(peer, &receiver, "10.99.0.2", to)?,
        "the peer's GENEVE was dropped"
    );

    // The network removed (podman network rm), gc takes its bridge and the table with it.
    std::fs::remove_file(dir.join("kern.json"))?;
    let gc = gc_json(h1, &dir, &[])?;
    assert!(gc["failed"].as_array().is_some_and(Vec::is_empty), "{gc:#}");
    let tables = h1.exec_ok("nft", &["list", "tables"])?;
    assert!(!tables.contains(firewall::TABLE), "{tables}\n{gc:#}");
    assert!(delivered(stranger, &receiver, "10.99.0.3", to)?);
    Ok(())
}

#[test]
fn right_after_create_of_an_internal_kernel_network_only_peers_get_through() -> Result<()> {
    let lab = Lab::new(3, LabUnderlay::V4)?;
    let h1 = lab.host(1);
    // An Open vSwitch that offers the kernel datapath, so that `create` picks it.
    h1.stop_vswitchd()?;
    h1.start_vswitchd_offering_system()?;
    let types = h1.vsctl(&["get", "Open_vSwitch", ".", "datapath_types"])?;
    assert!(types.contains("system"), "datapath_types = {types}");

    let receiver =
        Netns::open(&h1.netns_path())?.enter(|| Ok(UdpSocket::bind("10.99.0.1:6081")?))?;
    receiver.set_read_timeout(Some(Duration::from_millis(500)))?;
    let (peer, stranger) = (lab.host(2).name(), lab.host(3).name());
    let to = "10.99.0.1:6081";
    // Before the network exists anyone's datagrams reach the port (the filter makes the
    // difference below).
    assert!(delivered(stranger, &receiver, "10.99.0.3", to)?);

    // podman network create --internal, on the kernel datapath; no container ever starts.
    let network = podman::network(
        "kern",
        "192.168.120.0/24",
        None,
        &[("peers", "10.99.0.2"), ("datapath", "system")],
    );
    let created = podman::create(h1, &network)?;
    assert_eq!(created["options"]["datapath"], "system", "{created:#}");
    assert_eq!(created["internal"], true, "{created:#}");
    assert!(
        h1.container_ports()?.is_empty(),
        "a container port exists before any container"
    );
    assert!(
        !delivered(stranger, &receiver, "10.99.0.3", to)?,
        "a stranger's GENEVE got through right after create"
    );
    assert!(
        delivered(peer, &receiver, "10.99.0.2", to)?,
        "the peer's GENEVE was dropped"
    );
    Ok(())
}

/// Rounds of several `create`s at once, each of an internal kernel-datapath network with a
/// GENEVE port of its own. Each run replaces the whole filter, so without the firewall lock a
/// run that read OVS before another's network existed could apply a filter that lacks that
/// network's port (a race: it shows in some rounds only).
#[test]
fn concurrent_creates_of_kernel_networks_each_filter_their_own_port() -> Result<()> {
    const ROUNDS: u16 = 3;
    const PER_ROUND: u16 = 6;
    const FIRST_PORT: u16 = 7001;
    let lab = Lab::new(3, LabUnderlay::V4)?;
    let h1 = lab.host(1);
    h1.stop_vswitchd()?;
    h1.start_vswitchd_offering_system()?;
    let (peer, stranger) = (lab.host(2).name(), lab.host(3).name());

    let mut receivers: Vec<(u16, UdpSocket)> = Vec::new();
    for round in 0..ROUNDS {
        let ports: Vec<u16> = (0..PER_ROUND)
            .map(|i| FIRST_PORT + round * PER_ROUND + i)
            .collect();
        for port in &ports {
            let socket = Netns::open(&h1.netns_path())?
                .enter(|| Ok(UdpSocket::bind(format!("10.99.0.1:{port}"))?))?;
            socket.set_read_timeout(Some(Duration::from_millis(500)))?;
            receivers.push((*port, socket));
        }
        let networks: Vec<serde_json::Value> = ports
            .iter()
            .map(|port| {
                podman::network(
                    &format!("kern{port}"),
                    "192.168.120.0/24",
                    None,
                    &[
                        ("peers", "10.99.0.2"),
                        ("datapath", "system"),
                        ("dst_port", &port.to_string()),
                    ],
                )
            })
            .collect();
        let barrier = std::sync::Barrier::new(networks.len());
        let created: Vec<Result<serde_json::Value>> = std::thread::scope(|scope| {
            let runs: Vec<_> = networks
                .iter()
                .map(|network| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        podman::create(h1, network)
                    })
                })
                .collect();
            runs.into_iter()
                .map(|r| {
                    r.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("create thread panicked")))
                })
                .collect()
        });
        for (port, result) in ports.iter().zip(created) {
            result.with_context(|| format!("round {round}: create kern{port}"))?;
        }
        // Every network created so far, this round's and the earlier ones'.
        for (port, receiver) in &receivers {
            let to = format!("10.99.0.1:{port}");
            assert!(
                !delivered(stranger, receiver, "10.99.0.3", &to)?,
                "round {round}: a stranger's GENEVE to kern{port}'s port got through"
            );
            assert!(
                delivered(peer, receiver, "10.99.0.2", &to)?,
                "round {round}: the peer's GENEVE to kern{port}'s port was dropped"
            );
        }
    }
    Ok(())
}
