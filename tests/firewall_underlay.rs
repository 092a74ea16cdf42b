//! The underlay filter of the plugin's nftables table, on the kernel's own receive path (what
//! hosts on the kernel datapath use): GENEVE's UDP port accepts datagrams from the configured
//! peers only. Two namespaces stand for the host and the underlay; the rules are the ones
//! `create` renders, applied with the plugin's own code.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::time::Duration;

use anyhow::{Context, Result};
use common::cmd::Cmd;
use geneve_ovs::firewall::{self, Rules};
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

/// Sends one datagram from `from` (an address of the underlay namespace) to the host's
/// 10.88.0.1:6081 and says whether the host's socket got it.
fn delivered(underlay: &Ns, receiver: &UdpSocket, from: &str) -> Result<bool> {
    underlay.enter(|| {
        let socket =
            UdpSocket::bind(format!("{from}:0")).with_context(|| format!("bind {from}"))?;
        socket.send_to(b"geneve?", "10.88.0.1:6081")?;
        Ok(())
    })?;
    let mut buf = [0u8; 64];
    match receiver.recv_from(&mut buf) {
        Ok((_, peer)) => Ok(peer.ip().to_string() == from),
        Err(_) => Ok(false),
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
    // Without the table both senders get through (the filter is what makes the difference).
    assert!(delivered(&underlay, &receiver, "10.88.0.2")?);
    assert!(delivered(&underlay, &receiver, "10.88.0.3")?);

    let rules = Rules {
        underlay: BTreeMap::from([(6081, BTreeSet::from(["10.88.0.2".parse()?]))]),
        ..Default::default()
    };
    host.enter(|| firewall::apply(&rules))?;
    assert!(
        delivered(&underlay, &receiver, "10.88.0.2")?,
        "a peer's GENEVE was dropped"
    );
    assert!(
        !delivered(&underlay, &receiver, "10.88.0.3")?,
        "a stranger's GENEVE got through"
    );

    // An empty rule set removes the table: everything gets through again.
    host.enter(|| firewall::apply(&Rules::default()))?;
    assert!(delivered(&underlay, &receiver, "10.88.0.3")?);
    let tables = Cmd::new("ip")
        .args(["netns", "exec", &host.0, "nft", "list", "tables"])
        .run()?;
    assert!(!tables.contains(firewall::TABLE), "{tables}");
    Ok(())
}
