//! Duplicate-address detection across the overlay: `setup` probes for each address before it
//! configures it, and refuses one that a container on another host already uses, leaving
//! nothing behind.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::podman::{self, create, error_of, setup};
use common::{Lab, Underlay};
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_secs(15);

fn dual_stack(options: &[(&str, &str)]) -> Value {
    let mut net = podman::network("net1", "192.168.120.0/24", None, options);
    net["ipv6_enabled"] = true.into();
    net["subnets"] = json!([{"subnet": "192.168.120.0/24"}, {"subnet": "fd12:3456::/64"}]);
    net
}

#[test]
fn an_address_in_use_on_another_host_is_refused() -> Result<()> {
    // The longest wait the option allows, kept as given.
    refuses_an_address_in_use(&[("dad_timeout_ms", "1000")], "1000")
}

#[test]
fn an_address_in_use_is_refused_with_the_window_measured_from_the_round_trip() -> Result<()> {
    // The default: each setup measures the round trip to the peer and listens for a window
    // derived from it (a few milliseconds on this underlay), saved as `auto`.
    refuses_an_address_in_use(&[], "auto")
}

/// Host 1's container holds an address; host 2's setups for it (alone, and as the IPv6 one of
/// two) are refused, naming the holder, and leave nothing behind; a free address passes.
/// `extra` are options beyond the peers, `saved_timeout` what `create` saves of the window.
fn refuses_an_address_in_use(extra: &[(&str, &str)], saved_timeout: &str) -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let mut opts = vec![("peers", "10.99.0.1,10.99.0.2")];
    opts.extend_from_slice(extra);
    let n1 = create(lab.host(1), &dual_stack(&opts))?;
    let n2 = create(lab.host(2), &dual_stack(&opts))?;
    for saved in [&n1, &n2] {
        assert_eq!(saved["options"]["dad_timeout_ms"], saved_timeout);
    }
    let c1 = lab.host(1).container("c1")?;
    let s1 = setup(
        lab.host(1),
        &c1,
        &podman::exec(&n1, "c1", &["192.168.120.10", "fd12:3456::10"], None),
    )?;
    let mac1 = s1["interfaces"]["eth0"]["mac_address"]
        .as_str()
        .unwrap()
        .to_string();

    let h2 = lab.host(2);
    let links_before = h2.links()?;
    let c2 = h2.container("c2")?;
    let netns = c2.netns_path().to_str().unwrap().to_string();
    for ips in [
        vec!["192.168.120.10"],
        vec!["192.168.120.11", "fd12:3456::10"],
    ] {
        let exec = podman::exec(&n2, "c2", &ips, None);
        let err = error_of(&h2.plugin(&["setup", &netns], &exec.to_string()))?;
        let taken = if ips.len() == 1 {
            "192.168.120.10"
        } else {
            "fd12:3456::10"
        };
        assert!(
            err.contains(&format!("address {taken} is already in use")) && err.contains(&mac1),
            "{err}"
        );
        // Nothing of the refused container stays: no veth, no port, no interface inside.
        assert_eq!(h2.links()?, links_before);
        let ports = h2.vsctl(&[
            "--bare",
            "--columns=name",
            "find",
            "Port",
            "external_ids:geneve-ovs.role=container",
        ])?;
        assert!(ports.trim().is_empty(), "{ports}");
        assert_eq!(c2.ip_json(&["link", "show"])?.as_array().unwrap().len(), 1);
    }

    // The original keeps working, and a free address passes the probe.
    setup(
        h2,
        &c2,
        &podman::exec(&n2, "c2", &["192.168.120.11", "fd12:3456::11"], None),
    )?;
    c2.wait_ping("192.168.120.10", SETTLE)?;
    c2.wait_ping("fd12:3456::10", SETTLE)?;
    Ok(())
}

#[test]
fn the_check_can_be_turned_off() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let peers = "10.99.0.1,10.99.0.2";
    let opts = [("peers", peers), ("dad", "false")];
    let n1 = create(
        lab.host(1),
        &podman::network("net1", "192.168.120.0/24", None, &opts),
    )?;
    let n2 = create(
        lab.host(2),
        &podman::network("net1", "192.168.120.0/24", None, &opts),
    )?;
    assert_eq!(n1["options"]["dad"], "false");
    let c1 = lab.host(1).container("c1")?;
    setup(
        lab.host(1),
        &c1,
        &podman::exec(&n1, "c1", &["192.168.120.10"], None),
    )?;
    let c2 = lab.host(2).container("c2")?;
    // The same address again: without the probe, nothing stops it.
    setup(
        lab.host(2),
        &c2,
        &podman::exec(&n2, "c2", &["192.168.120.10"], None),
    )?;
    Ok(())
}
