//! The user's exact command, `podman network create -d geneve-ovs --opt peers=<the others>
//! net1`, with no subnet and no range: every host picks the same subnet and gateway and a
//! disjoint share of the addresses, with no coordination.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use common::podman::{self, create, setup};
use common::{Lab, Underlay};
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_secs(15);

/// What podman sends for `podman network create -d geneve-ovs --opt peers=P net1`.
fn bare_network(peers: &str) -> Value {
    let mut net = podman::network("net1", "0.0.0.0/0", None, &[("peers", peers)]);
    net["subnets"] = Value::Null;
    net["internal"] = false.into();
    net
}

fn lease_range(net: &Value) -> (IpAddr, IpAddr) {
    let lr = &net["subnets"][0]["lease_range"];
    (
        lr["start_ip"].as_str().unwrap().parse().unwrap(),
        lr["end_ip"].as_str().unwrap().parse().unwrap(),
    )
}

fn check_mirrored(n: usize) -> Result<()> {
    let lab = Lab::new(n, Underlay::V4)?;
    let mut nets = Vec::new();
    for i in 1..=n {
        // Each host lists the others only: the mirror image of the user's command.
        let peers: Vec<String> = (1..=n)
            .filter(|j| *j != i)
            .map(|j| format!("10.99.0.{j}"))
            .collect();
        nets.push(create(lab.host(i), &bare_network(&peers.join(",")))?);
    }
    let subnet = nets[0]["subnets"][0]["subnet"].clone();
    let gateway = nets[0]["subnets"][0]["gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ranges: Vec<(IpAddr, IpAddr)> = Vec::new();
    for net in &nets {
        assert_eq!(
            net["subnets"][0]["subnet"], subnet,
            "every host picks the same subnet"
        );
        assert_eq!(net["subnets"][0]["gateway"], json!(gateway));
        ranges.push(lease_range(net));
    }
    let mut sorted = ranges.clone();
    sorted.sort();
    for w in sorted.windows(2) {
        assert!(w[0].1 < w[1].0, "ranges overlap: {sorted:?}");
    }
    let gw: IpAddr = gateway.parse()?;
    assert!(
        ranges.iter().all(|(a, b)| !(a..=b).contains(&&gw)),
        "{ranges:?} hold the gateway"
    );

    // podman's IPAM hands out the first address of each host's range.
    let containers: Vec<_> = (1..=n)
        .map(|i| lab.host(i).container(&format!("c{i}")))
        .collect::<Result<_>>()?;
    for (i, c) in containers.iter().enumerate() {
        let ip = ranges[i].0.to_string();
        setup(
            lab.host(i + 1),
            c,
            &podman::exec(&nets[i], &format!("c{i}"), &[&ip], None),
        )?;
    }
    for (i, c) in containers.iter().enumerate() {
        c.wait_ping(&gateway, SETTLE)?;
        for (j, (start, _)) in ranges.iter().enumerate() {
            if i != j {
                c.wait_ping(&start.to_string(), SETTLE)?;
            }
        }
    }
    Ok(())
}

#[test]
fn the_users_command_on_two_hosts() -> Result<()> {
    check_mirrored(2)
}

#[test]
fn the_users_command_on_three_hosts() -> Result<()> {
    check_mirrored(3)
}
