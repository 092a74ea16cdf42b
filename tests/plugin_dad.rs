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
    let lab = Lab::new(2, Underlay::V4)?;
    // The longest wait the option allows: the test machine is shared and busy, and a probe
    // answered after the wait is a conflict missed. The default is for quiet production hosts.
    let opts = [("peers", "10.99.0.1,10.99.0.2"), ("dad_timeout_ms", "1000")];
    let n1 = create(lab.host(1), &dual_stack(&opts))?;
    let n2 = create(lab.host(2), &dual_stack(&opts))?;
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
