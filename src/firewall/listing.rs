//! Reads what the DNAT maps hold out of `nft -j list table inet geneve_ovs` (pure).

use std::net::IpAddr;

use serde_json::Value;

use super::elements::{Current, Listing, PortKey, Protocol};
use super::render::{dnat_maps, dns_map, GATEWAYS, SAME_GATEWAY, SKELETON_STAMP};

fn protocol(v: &Value) -> Option<Protocol> {
    match v {
        Value::String(s) => Protocol::parse(s),
        Value::Number(n) => Protocol::parse(&n.to_string()),
        _ => None,
    }
}

fn port(v: &Value) -> Option<u16> {
    v.as_u64().and_then(|p| u16::try_from(p).ok())
}

fn address(v: &Value) -> Option<IpAddr> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// The key of an element of a DNAT map.
fn key(v: &Value, ipv4: bool, host_ip: bool) -> Option<PortKey> {
    let parts = v.get("concat")?.as_array()?;
    let (host, rest) = if host_ip {
        let (first, rest) = parts.split_first()?;
        (Some(address(first)?), rest)
    } else {
        (None, parts.as_slice())
    };
    let [proto, dport] = rest else {
        return None;
    };
    Some(PortKey {
        ipv4,
        host_ip: host,
        protocol: protocol(proto)?,
        host_port: port(dport)?,
    })
}

/// Parses nft's JSON listing of the table. Elements that do not read as the plugin writes them
/// are skipped with a warning (a full reconcile by `gc` replaces them).
pub fn parse(listing: &Value) -> Listing {
    let mut out = Listing {
        exists: true,
        ..Listing::default()
    };
    let objects = listing
        .get("nftables")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let maps = dnat_maps();
    for object in objects {
        if let Some(rule) = object.get("rule") {
            let stamp = rule.get("comment").and_then(Value::as_str);
            if let Some(id) = stamp.and_then(|c| c.strip_prefix(SKELETON_STAMP)) {
                out.skeleton = Some(id.to_string());
            }
            continue;
        }
        if let Some(set) = object.get("set") {
            read_gateways(&mut out, set);
            continue;
        }
        let Some(map) = object.get("map") else {
            continue;
        };
        let Some(name) = map.get("name").and_then(Value::as_str) else {
            continue;
        };
        if let Some(ipv4) = [true, false].into_iter().find(|v4| dns_map(*v4) == name) {
            read_dns(&mut out, map, ipv4);
            continue;
        }
        let Some((_, ipv4, host_ip, is_addr)) = maps.iter().find(|m| m.0 == name) else {
            continue;
        };
        let elements = map
            .get("elem")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for element in elements {
            let pair = element.as_array().map(Vec::as_slice);
            let Some([k, v]) = pair else {
                log::warn!("unexpected element {element} in map {name}");
                continue;
            };
            let Some(key) = key(k, *ipv4, *host_ip) else {
                log::warn!("unexpected key {k} in map {name}");
                continue;
            };
            let entry = out.dnat.entry(key).or_insert(Current {
                addr: None,
                port: None,
            });
            if *is_addr {
                entry.addr = address(v);
            } else {
                entry.port = port(v);
            }
        }
    }
    out
}

/// The elements of the gateway sets: `gateway`, and `(gateway . gateway)`.
fn read_gateways(out: &mut Listing, set: &Value) {
    let name = set.get("name").and_then(Value::as_str);
    let elements = set
        .get("elem")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    match name {
        Some(GATEWAYS) => out.gateways.extend(
            elements
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string),
        ),
        Some(SAME_GATEWAY) => out.same_gateway.extend(elements.iter().filter_map(|e| {
            match e.get("concat")?.as_array()?.as_slice() {
                [Value::String(a), Value::String(b)] if a == b => Some(a.clone()),
                _ => None,
            }
        })),
        _ => {}
    }
}

/// The elements of a DNS map: (gateway port, upstream).
fn read_dns(out: &mut Listing, map: &Value, ipv4: bool) {
    let elements = map
        .get("elem")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for element in elements {
        let pair = element.as_array().map(Vec::as_slice);
        let Some([Value::String(gateway), upstream]) = pair else {
            log::warn!("unexpected element {element} in map {}", dns_map(ipv4));
            continue;
        };
        match address(upstream) {
            Some(addr) => {
                out.dns.insert((gateway.clone(), ipv4), addr);
            }
            None => log::warn!("unexpected element {element} in map {}", dns_map(ipv4)),
        }
    }
}
