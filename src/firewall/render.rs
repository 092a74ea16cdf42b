//! The nft JSON of the plugin's table: a fixed skeleton (chains, named sets and maps, rules
//! that only reference them) and element changes. Pure: every transaction the plugin sends is
//! built here, and unit-tested to parse with the `nftables` crate.
//!
//! Every transaction starts with the whole skeleton: `add table`, `add chain`, `add set`/`add
//! map` are no-ops on what exists, `flush chain` + `add rule` rewrite the rules with the same
//! constant rules. So concurrent transactions agree on it, a table left by an older version is
//! upgraded by the first run (its last rule carries the skeleton's id, which an older version's
//! does not match), and the element changes that follow always find their sets.

use std::net::IpAddr;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::elements::{ContainerChange, Current, NameForwardChange, PortKey, Published, Underlay};
use super::TABLE;
use crate::host_resolvers::Upstreams;

/// The set of gateway ports (type ifname) of the non-internal networks.
pub const GATEWAYS: &str = "gateways";
/// (gateway . gateway) for every gateway: traffic routed within one network.
pub const SAME_GATEWAY: &str = "same_gateway";
/// The UDP ports GENEVE is filtered on.
pub const UNDERLAY_PORTS: &str = "underlay_ports";
/// (peer . UDP port) GENEVE is accepted from, per family.
pub const UNDERLAY_PEERS4: &str = "underlay_peers4";
pub const UNDERLAY_PEERS6: &str = "underlay_peers6";
/// (peer . UDP port) of encrypted networks' tunnels, per family: GENEVE to and from them is
/// dropped unless it went through IPsec.
pub const UNDERLAY_IPSEC4: &str = "underlay_ipsec4";
pub const UNDERLAY_IPSEC6: &str = "underlay_ipsec6";
/// The filter chain on the output hook (the `output` chain is NAT's).
pub const TUNNEL_OUT: &str = "tunnel_out";

/// The name server each open OVN network's gateway port sends DNS queries to, per family
/// (gateway port → upstream).
pub const DNS4: &str = "dns4";
pub const DNS6: &str = "dns6";

/// The DNS map of a family.
pub fn dns_map(ipv4: bool) -> &'static str {
    if ipv4 {
        DNS4
    } else {
        DNS6
    }
}

/// The port DNS is forwarded on (UDP and TCP).
pub const DNS_PORT: u16 = 53;

/// The name of a DNAT map: `dnat{4,6}[_host]_{addr,port}`.
pub fn dnat_map(ipv4: bool, host_ip: bool, addr: bool) -> String {
    format!(
        "dnat{}{}_{}",
        if ipv4 { "4" } else { "6" },
        if host_ip { "_host" } else { "" },
        if addr { "addr" } else { "port" }
    )
}

/// Every DNAT map name with what it is: (name, ipv4, keyed by host address, holds addresses).
pub fn dnat_maps() -> Vec<(String, bool, bool, bool)> {
    let mut maps = Vec::new();
    for ipv4 in [true, false] {
        for host_ip in [true, false] {
            for addr in [true, false] {
                maps.push((dnat_map(ipv4, host_ip, addr), ipv4, host_ip, addr));
            }
        }
    }
    maps
}

fn table() -> Value {
    json!({ "family": "inet", "name": TABLE })
}

fn chain(name: &str, kind: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {
        "family": "inet", "table": TABLE, "name": name,
        "type": kind, "hook": hook, "prio": prio, "policy": "accept"
    }}})
}

/// The plain sets and their types.
fn sets() -> [(&'static str, Value); 7] {
    [
        (GATEWAYS, json!("ifname")),
        (SAME_GATEWAY, json!(["ifname", "ifname"])),
        (UNDERLAY_PORTS, json!("inet_service")),
        (UNDERLAY_PEERS4, json!(["ipv4_addr", "inet_service"])),
        (UNDERLAY_PEERS6, json!(["ipv6_addr", "inet_service"])),
        (UNDERLAY_IPSEC4, json!(["ipv4_addr", "inet_service"])),
        (UNDERLAY_IPSEC6, json!(["ipv6_addr", "inet_service"])),
    ]
}

/// A set as nft JSON names it (with its type: the `nftables` crate wants it everywhere).
fn set_object(name: &str) -> Value {
    let kind = sets()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| k)
        .unwrap_or(Value::Null);
    json!({"family": "inet", "table": TABLE, "name": name, "type": kind})
}

/// A DNAT map as nft JSON names it, with its key and value types.
fn map_object(ipv4: bool, host_ip: bool, addr: bool) -> Value {
    let mut key = Vec::new();
    if host_ip {
        key.push(addr_type(ipv4));
    }
    key.extend(["inet_proto", "inet_service"]);
    let data = if addr {
        addr_type(ipv4)
    } else {
        "inet_service"
    };
    json!({
        "family": "inet", "table": TABLE, "name": dnat_map(ipv4, host_ip, addr),
        "type": key, "map": data
    })
}

fn dns_map_object(ipv4: bool) -> Value {
    json!({
        "family": "inet", "table": TABLE, "name": dns_map(ipv4),
        "type": "ifname", "map": addr_type(ipv4)
    })
}

fn rule(chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": "inet", "table": TABLE, "chain": chain, "expr": expr}}})
}

fn matches(left: Value, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn set_ref(name: &str) -> Value {
    Value::String(format!("@{name}"))
}

fn nfproto(ipv4: bool) -> Value {
    matches(
        meta("nfproto"),
        "==",
        json!(if ipv4 { "ipv4" } else { "ipv6" }),
    )
}

fn addr_type(ipv4: bool) -> &'static str {
    if ipv4 {
        "ipv4_addr"
    } else {
        "ipv6_addr"
    }
}

fn ip_proto(ipv4: bool) -> &'static str {
    if ipv4 {
        "ip"
    } else {
        "ip6"
    }
}

/// The DNS forwarding rule of one family, for prerouting: a query to this host on port 53 that
/// arrives on an open OVN network's gateway port (OVN answered the names it knows before it got
/// there) goes to the host's name server for that port, through the outbound masquerade. A port
/// without an element in the map matches nothing (the lookup fails): nothing else is opened.
fn dns_rule(ipv4: bool) -> Value {
    rule(
        "prerouting",
        vec![
            nfproto(ipv4),
            matches(meta("l4proto"), "==", json!({"set": ["udp", "tcp"]})),
            matches(payload("th", "dport"), "==", json!(DNS_PORT)),
            matches(
                json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                "==",
                json!("local"),
            ),
            json!({"dnat": {
                "family": ip_proto(ipv4),
                "addr": {"map": {"key": meta("iifname"), "data": set_ref(dns_map(ipv4))}},
            }}),
        ],
    )
}

/// The DNAT rules of one family, for the prerouting and output chains: traffic addressed to
/// this host (`fib daddr type local`: its addresses, 127.0.0.0/8 from the host itself, the
/// gateway addresses) on a published port goes to its container; the maps keyed by host
/// address come first, so `-p HOST_IP:...` wins over a plain `-p` of the same port.
fn dnat_rules(chain: &str, ipv4: bool) -> Vec<Value> {
    let mut rules = Vec::new();
    for host_ip in [true, false] {
        let mut key = Vec::new();
        if host_ip {
            key.push(payload(ip_proto(ipv4), "daddr"));
        }
        key.push(meta("l4proto"));
        key.push(payload("th", "dport"));
        let lookup = |addr: bool| {
            json!({"map": {
                "key": {"concat": key.clone()},
                "data": set_ref(&dnat_map(ipv4, host_ip, addr)),
            }})
        };
        rules.push(rule(
            chain,
            vec![
                nfproto(ipv4),
                matches(
                    json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                    "==",
                    json!("local"),
                ),
                json!({"dnat": {
                    "family": ip_proto(ipv4),
                    "addr": lookup(true),
                    "port": lookup(false),
                }}),
            ],
        ));
    }
    rules
}

/// The comment of the skeleton's last rule starts with this, followed by [`skeleton_id`]: a
/// listing that shows the id of this version's skeleton holds these very rules, so a `setup`
/// that changes no element needs no transaction at all (no `nft` run).
pub const SKELETON_STAMP: &str = "geneve-ovs skeleton ";

/// The skeleton: table, chains, sets and maps, and the constant rules; the last rule carries
/// the stamp ([`SKELETON_STAMP`] and [`skeleton_id`]).
pub fn skeleton() -> Vec<Value> {
    let mut cmds = unstamped_skeleton();
    let stamp = format!("{SKELETON_STAMP}{}", id_of(&cmds));
    if let Some(rule) = cmds
        .iter_mut()
        .rev()
        .find_map(|cmd| cmd.pointer_mut("/add/rule").and_then(Value::as_object_mut))
    {
        rule.insert("comment".to_string(), json!(stamp));
    }
    cmds
}

/// What identifies this version's skeleton: 16 hex digits of SHA-256 of its commands. Any change
/// to a chain, set, map or rule changes it, so the first `setup` after an upgrade rewrites the
/// table of the version before.
pub fn skeleton_id() -> String {
    id_of(&unstamped_skeleton())
}

fn id_of(cmds: &[Value]) -> String {
    let mut hasher = Sha256::new();
    for cmd in cmds {
        hasher.update(cmd.to_string().as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unstamped_skeleton() -> Vec<Value> {
    let mut cmds = vec![json!({"add": {"table": table()}})];
    let chains = [
        ("prerouting", "nat", "prerouting", -100),
        ("output", "nat", "output", -100),
        ("postrouting", "nat", "postrouting", 100),
        ("forward", "filter", "forward", 0),
        ("input", "filter", "input", -10),
        (TUNNEL_OUT, "filter", "output", 0),
    ];
    for (name, kind, hook, prio) in chains {
        cmds.push(chain(name, kind, hook, prio));
    }
    for (name, _) in sets() {
        cmds.push(json!({"add": {"set": set_object(name)}}));
    }
    for (_, ipv4, host_ip, addr) in dnat_maps() {
        cmds.push(json!({"add": {"map": map_object(ipv4, host_ip, addr)}}));
    }
    for ipv4 in [true, false] {
        cmds.push(json!({"add": {"map": dns_map_object(ipv4)}}));
    }
    for (name, ..) in chains {
        cmds.push(json!({"flush": {"chain": {"family": "inet", "table": TABLE, "name": name}}}));
    }

    for ipv4 in [true, false] {
        cmds.push(dns_rule(ipv4));
        cmds.extend(dnat_rules("prerouting", ipv4));
        cmds.extend(dnat_rules("output", ipv4));
    }
    let gateways = set_ref(GATEWAYS);
    // Outbound NAT: from a network out of anything but a network.
    cmds.push(rule(
        "postrouting",
        vec![
            matches(meta("iifname"), "==", gateways.clone()),
            matches(meta("oifname"), "!=", gateways.clone()),
            json!({"masquerade": null}),
        ],
    ));
    // Hairpin: a container reaching a published port of this host from the same network; the
    // answer must come back through the host, not straight from the target.
    cmds.push(rule(
        "postrouting",
        vec![
            matches(meta("iifname"), "==", gateways.clone()),
            matches(meta("oifname"), "==", gateways.clone()),
            matches(json!({"ct": {"key": "status"}}), "in", json!("dnat")),
            json!({"masquerade": null}),
        ],
    ));
    // The host itself through 127.0.0.1 (route_localnet is on for the gateway ports): the
    // container must see a source it can answer.
    cmds.push(rule(
        "postrouting",
        vec![
            nfproto(true),
            matches(
                payload("ip", "saddr"),
                "==",
                json!({"prefix": {"addr": "127.0.0.0", "len": 8}}),
            ),
            matches(meta("oifname"), "==", gateways.clone()),
            json!({"masquerade": null}),
        ],
    ));
    // Isolation: no routing through the host from one network into another.
    cmds.push(rule(
        "forward",
        vec![
            matches(meta("iifname"), "==", gateways.clone()),
            matches(meta("oifname"), "==", gateways.clone()),
            matches(
                json!({"concat": [meta("iifname"), meta("oifname")]}),
                "!=",
                set_ref(SAME_GATEWAY),
            ),
            json!({"drop": null}),
        ],
    ));
    // route_localnet lets 127.0.0.0/8 be routed on the gateway ports; a container must not
    // use that to reach the host's loopback services. (The answers to the host's own
    // connections through 127.0.0.1 arrive here too, un-NATed back to 127.0.0.1: they are
    // the reply direction and pass.)
    cmds.push(rule(
        "input",
        vec![
            nfproto(true),
            matches(meta("iifname"), "==", gateways),
            matches(
                payload("ip", "daddr"),
                "==",
                json!({"prefix": {"addr": "127.0.0.0", "len": 8}}),
            ),
            matches(json!({"ct": {"key": "direction"}}), "==", json!("original")),
            json!({"drop": null}),
        ],
    ));
    // GENEVE only from the peers.
    for (ipv4, peers) in [(true, UNDERLAY_PEERS4), (false, UNDERLAY_PEERS6)] {
        cmds.push(rule(
            "input",
            vec![
                nfproto(ipv4),
                matches(payload("udp", "dport"), "==", set_ref(UNDERLAY_PORTS)),
                matches(
                    json!({"concat": [payload(ip_proto(ipv4), "saddr"), payload("udp", "dport")]}),
                    "!=",
                    set_ref(peers),
                ),
                json!({"drop": null}),
            ],
        ));
    }
    cmds.extend(ipsec_guard_rules());
    cmds
}

/// No clear text to or from an encrypted network's peers, whatever the IKE daemon does.
///
/// Out: OVS's IPsec policies are traps (`auto=route`) that hold a packet back while there is
/// no security association, but they exist only while the IKE daemon runs; a GENEVE packet
/// towards an encrypted peer whose route carries no IPsec transform (`rt ipsec missing`:
/// no policy matched) is dropped here. The ESP packet that carries an encrypted one passes
/// this chain too, as protocol ESP, which these rules do not match.
///
/// In: the kernel hands a GENEVE packet to OVS's tunnel socket before any inbound IPsec
/// policy is checked, so a clear packet from an encrypted peer (its host not encrypting, a
/// forger using its address) would be accepted; it is dropped unless it came out of ESP
/// (`meta ipsec missing`: no security path).
fn ipsec_guard_rules() -> Vec<Value> {
    let mut rules = Vec::new();
    for (ipv4, set) in [(true, UNDERLAY_IPSEC4), (false, UNDERLAY_IPSEC6)] {
        let ip = ip_proto(ipv4);
        rules.push(rule(
            "input",
            vec![
                nfproto(ipv4),
                matches(
                    json!({"concat": [payload(ip, "saddr"), payload("udp", "dport")]}),
                    "==",
                    set_ref(set),
                ),
                matches(meta("ipsec"), "==", json!(false)),
                json!({"drop": null}),
            ],
        ));
        rules.push(rule(
            TUNNEL_OUT,
            vec![
                nfproto(ipv4),
                matches(
                    json!({"concat": [payload(ip, "daddr"), payload("udp", "dport")]}),
                    "==",
                    set_ref(set),
                ),
                matches(json!({"rt": {"key": "ipsec"}}), "==", json!(false)),
                json!({"drop": null}),
            ],
        ));
    }
    rules
}

/// Whether a command uses an expression the `nftables` crate's schema does not know yet
/// (`meta ipsec`, `rt ipsec`, which nft itself has had since 0.9): the IPsec guard's rules.
/// [`crate::firewall::apply`] checks everything else with the crate.
pub fn outside_crate_schema(cmd: &Value) -> bool {
    let text = cmd.to_string();
    text.contains(r#"{"rt":{"key":"ipsec"}}"#) || text.contains(r#"{"meta":{"key":"ipsec"}}"#)
}

fn element(verb: &str, set: &str, elem: Vec<Value>) -> Value {
    json!({ verb: {"element": {"family": "inet", "table": TABLE, "name": set, "elem": elem}}})
}

fn flush_set(name: &str) -> Value {
    json!({"flush": {"set": set_object(name)}})
}

fn key_value(key: &PortKey) -> Value {
    let mut parts = Vec::new();
    if let Some(ip) = key.host_ip {
        parts.push(json!(ip.to_string()));
    }
    parts.push(json!(key.protocol.name()));
    parts.push(json!(key.host_port));
    json!({ "concat": parts })
}

/// The network-level elements of non-internal networks' gateway ports (idempotent adds).
pub fn add_gateways<'a>(gateways: impl IntoIterator<Item = &'a String>) -> Vec<Value> {
    let names: Vec<&String> = gateways.into_iter().collect();
    if names.is_empty() {
        return Vec::new();
    }
    vec![
        element("add", GATEWAYS, names.iter().map(|g| json!(g)).collect()),
        element(
            "add",
            SAME_GATEWAY,
            names.iter().map(|g| json!({"concat": [g, g]})).collect(),
        ),
    ]
}

/// One gateway port's DNS forwarding change: deletes first, then adds.
pub fn name_forward_change(change: &NameForwardChange) -> Vec<Value> {
    let mut cmds: Vec<Value> = change
        .delete
        .iter()
        .map(|ipv4| element("delete", dns_map(*ipv4), vec![json!(change.gateway)]))
        .collect();
    cmds.extend(add_name_forwards([&change.gateway], &change.add));
    cmds
}

/// Elements sending each of `gateways`' queries to the upstream of its family in `upstreams`.
fn add_name_forwards<'a>(
    gateways: impl IntoIterator<Item = &'a String> + Clone,
    upstreams: &[IpAddr],
) -> Vec<Value> {
    let mut cmds = Vec::new();
    for upstream in upstreams {
        let elem: Vec<Value> = gateways
            .clone()
            .into_iter()
            .map(|g| json!([g, upstream.to_string()]))
            .collect();
        if !elem.is_empty() {
            cmds.push(element("add", dns_map(upstream.is_ipv4()), elem));
        }
    }
    cmds
}

/// One container's element changes: deletes first, then adds.
pub fn container_change(change: &ContainerChange) -> Vec<Value> {
    let mut cmds = Vec::new();
    for (key, current) in &change.delete {
        let host = key.host_ip.is_some();
        let Current { addr, port } = current;
        if addr.is_some() {
            cmds.push(element(
                "delete",
                &dnat_map(key.ipv4, host, true),
                vec![key_value(key)],
            ));
        }
        if port.is_some() {
            cmds.push(element(
                "delete",
                &dnat_map(key.ipv4, host, false),
                vec![key_value(key)],
            ));
        }
    }
    cmds.extend(add_published(&change.add));
    cmds
}

fn add_published(elements: &[Published]) -> Vec<Value> {
    let mut cmds = Vec::new();
    for (_, ipv4, host, addr) in dnat_maps() {
        let elem: Vec<Value> = elements
            .iter()
            .filter(|e| e.key.ipv4 == ipv4 && e.key.host_ip.is_some() == host)
            .map(|e| {
                let data = if addr {
                    json!(e.target.addr.to_string())
                } else {
                    json!(e.target.port)
                };
                json!([key_value(&e.key), data])
            })
            .collect();
        if !elem.is_empty() {
            cmds.push(element("add", &dnat_map(ipv4, host, addr), elem));
        }
    }
    cmds
}

/// Replaces the underlay filter's contents.
pub fn replace_underlay(underlay: &Underlay) -> Vec<Value> {
    let mut cmds = vec![
        flush_set(UNDERLAY_PORTS),
        flush_set(UNDERLAY_PEERS4),
        flush_set(UNDERLAY_PEERS6),
        flush_set(UNDERLAY_IPSEC4),
        flush_set(UNDERLAY_IPSEC6),
    ];
    if !underlay.ports.is_empty() {
        cmds.push(element(
            "add",
            UNDERLAY_PORTS,
            underlay.ports.iter().map(|p| json!(p)).collect(),
        ));
    }
    for (ipv4, name, peers) in [
        (true, UNDERLAY_PEERS4, &underlay.peers),
        (false, UNDERLAY_PEERS6, &underlay.peers),
        (true, UNDERLAY_IPSEC4, &underlay.encrypted),
        (false, UNDERLAY_IPSEC6, &underlay.encrypted),
    ] {
        let elem: Vec<Value> = peers
            .iter()
            .filter(|(ip, _)| ip.is_ipv4() == ipv4)
            .map(|(ip, port): &(IpAddr, u16)| json!({"concat": [ip.to_string(), port]}))
            .collect();
        if !elem.is_empty() {
            cmds.push(element("add", name, elem));
        }
    }
    cmds
}

/// Empties every set and map but the underlay's: the start of a full reconcile.
pub fn flush_all_but_underlay() -> Vec<Value> {
    let mut cmds = vec![flush_set(GATEWAYS), flush_set(SAME_GATEWAY)];
    for (_, ipv4, host_ip, addr) in dnat_maps() {
        cmds.push(json!({"flush": {"map": map_object(ipv4, host_ip, addr)}}));
    }
    for ipv4 in [true, false] {
        cmds.push(json!({"flush": {"map": dns_map_object(ipv4)}}));
    }
    cmds
}

/// The full reconcile's element part: everything `desired` holds, into emptied sets.
pub fn refill(desired: &super::elements::Desired) -> Vec<Value> {
    let mut cmds = flush_all_but_underlay();
    cmds.extend(add_gateways(&desired.gateways));
    cmds.extend(add_published(&desired.dnat));
    let Upstreams { v4, v6 } = desired.name_servers;
    let upstreams: Vec<IpAddr> = v4
        .map(IpAddr::V4)
        .into_iter()
        .chain(v6.map(IpAddr::V6))
        .collect();
    cmds.extend(add_name_forwards(&desired.ovn_gateways, &upstreams));
    cmds.extend(replace_underlay(&desired.underlay));
    cmds
}

/// Removes the table (adding it first makes the deletion safe when it does not exist).
pub fn remove_table() -> Vec<Value> {
    vec![
        json!({"add": {"table": table()}}),
        json!({"delete": {"table": table()}}),
    ]
}

/// Wraps commands into one nft JSON document (one transaction).
pub fn document(cmds: Vec<Value>) -> Value {
    json!({ "nftables": cmds })
}
