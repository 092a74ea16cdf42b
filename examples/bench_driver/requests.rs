//! The JSON documents podman sends to the plugin, in the shapes podman 5.4 gives them (`null`s
//! included), for benchmark containers and networks.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// A 64-hex-digit id derived from a label, the way podman's random ids look.
pub fn id(label: &str) -> String {
    let mut out = String::new();
    let mut x: u64 = 0xcbf2_9ce4_8422_2325;
    while out.len() < 64 {
        for b in label.bytes() {
            x ^= u64::from(b);
            x = x.wrapping_mul(0x100_0000_01b3);
        }
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(64);
    out
}

/// What `setup`/`teardown` get for container `label` with one static IP (podman's IPAM
/// result) on `network` (the network as podman saved it).
pub fn exec(network: &Value, label: &str, ip: IpAddr) -> Value {
    let cid = id(&format!("bench container {label}"));
    json!({
        "container_id": cid,
        "container_name": label,
        "port_mappings": null,
        "network": network,
        "network_options": {
            "aliases": [&cid[..12]],
            "interface_name": "eth0",
            "static_ips": [ip],
            "static_mac": null,
            "options": null,
        },
    })
}

/// What `podman network create -d geneve-ovs --internal --subnet SUBNET --opt peers=PEERS
/// NAME` sends to `create`.
pub fn network(name: &str, subnet: &str, peers: &[Ipv4Addr]) -> Value {
    network_with(name, subnet, peers, &[])
}

/// [`network`] with more `--opt K=V`.
pub fn network_with(name: &str, subnet: &str, peers: &[Ipv4Addr], extra: &[(&str, &str)]) -> Value {
    let peers: Vec<String> = peers.iter().map(Ipv4Addr::to_string).collect();
    let mut options = serde_json::Map::new();
    options.insert("peers".into(), Value::String(peers.join(",")));
    for (k, v) in extra {
        options.insert((*k).into(), Value::String((*v).into()));
    }
    json!({
        "name": name,
        "id": id(&format!("bench network {name}")),
        "driver": "geneve-ovs",
        "created": "2026-11-26T06:42:40.598345136Z",
        "subnets": [{ "subnet": subnet }],
        "ipv6_enabled": false,
        "internal": true,
        "dns_enabled": true,
        "options": options,
    })
}

/// The `n`th host address (from 0) of an IPv4 subnet given as `a.b.c.d/len`, skipping the
/// network address and the first host (which podman would keep for a gateway).
pub fn nth_address(subnet: &str, n: u32) -> Result<IpAddr> {
    let (base, len) = subnet
        .split_once('/')
        .with_context(|| format!("subnet {subnet:?} has no prefix length"))?;
    let base: Ipv4Addr = base
        .parse()
        .with_context(|| format!("subnet {subnet:?} is not IPv4"))?;
    let len: u32 = len.parse().context("prefix length")?;
    let size = 1u64 << (32 - len.min(32));
    // Hosts are base+1 .. base+size-2; base+1 is skipped.
    if u64::from(n) + 4 > size {
        bail!("subnet {subnet} has no room for address number {n}");
    }
    Ok(IpAddr::V4(Ipv4Addr::from(u32::from(base) + 2 + n)))
}

/// The saved network's first IPv4 subnet.
pub fn first_subnet(network: &Value) -> Result<String> {
    network["subnets"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(|s| s["subnet"].as_str())
        .map(str::to_string)
        .context("the network has no subnet")
}

/// `count` consecutive IPv4 addresses from `first`.
pub fn peer_addresses(first: Ipv4Addr, count: u32) -> Vec<Ipv4Addr> {
    (0..count)
        .map(|i| Ipv4Addr::from(u32::from(first) + i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_network_and_gateway() {
        assert_eq!(
            nth_address("10.123.0.0/16", 0).unwrap().to_string(),
            "10.123.0.2"
        );
        assert_eq!(
            nth_address("10.123.0.0/16", 300).unwrap().to_string(),
            "10.123.1.46"
        );
        assert!(nth_address("10.1.1.0/30", 1).is_err());
    }
}
