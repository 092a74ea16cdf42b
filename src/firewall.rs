//! The plugin's nftables table, `inet geneve_ovs`: outbound NAT and isolation for non-internal
//! networks, port mappings of their containers, and the underlay filter that accepts GENEVE
//! only from the configured peers.
//!
//! The whole table is a pure function of the OVS database ([`Rules::from_observed`]): bridges
//! say which networks exist, with their subnets and datapath; gateway ports say which networks
//! have containers here; container ports carry their addresses and port mappings; tunnels carry
//! their peer and UDP port. Every change re-renders the table and replaces it in one nft
//! transaction, so the rules can never drift from what OVS holds, a crash between two steps
//! leaves nothing to undo, and `gc` or the next `setup` after a reboot rebuilds it exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use anyhow::{Context, Result};
use ipnet::IpNet;
use serde_json::{json, Value};

use crate::naming::keys;
use crate::ovs::state::Observed;
use crate::types::PortMapping;

/// The plugin's own nftables table (family `inet`).
pub const TABLE: &str = "geneve_ovs";

/// A non-internal network with containers on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    /// The gateway port: traffic from the subnet that leaves through anything else is NAT'ed.
    pub gateway_port: String,
    pub subnets: Vec<IpNet>,
    /// Each container address with the port mappings of its container.
    pub mappings: Vec<(IpAddr, PortMapping)>,
}

/// Everything the table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub networks: Vec<NetworkRules>,
    /// UDP port -> the peers GENEVE is accepted from, for networks on the kernel datapath
    /// (on the userspace datapath tunnel packets never reach the host's netfilter).
    pub underlay: BTreeMap<u16, BTreeSet<IpAddr>>,
}

impl Rules {
    /// Works the rules out from the plugin's rows in OVS.
    pub fn from_observed(observed: &Observed) -> Rules {
        let mut rules = Rules::default();
        for bridge in observed.bridges.iter().filter(|b| b.is_owned()) {
            let ids = &bridge.external_ids;
            let ports: Vec<_> = observed.ports_of(bridge).collect();
            if ids.get(keys::DATAPATH).map(String::as_str) == Some("system") {
                for tunnel in ports.iter().filter(|p| p.role() == Some(keys::ROLE_TUNNEL)) {
                    let peer = tunnel
                        .external_ids
                        .get(keys::PEER)
                        .and_then(|p| p.parse().ok());
                    let port = tunnel
                        .external_ids
                        .get(keys::DST_PORT)
                        .and_then(|p| p.parse().ok());
                    if let (Some(peer), Some(port)) = (peer, port) {
                        rules.underlay.entry(port).or_default().insert(peer);
                    }
                }
            }
            let Some(gateway) = ports.iter().find(|p| p.role() == Some(keys::ROLE_GATEWAY)) else {
                continue;
            };
            let subnets = ids
                .get(keys::SUBNETS)
                .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
                .unwrap_or_default();
            let mut mappings = Vec::new();
            for container in ports
                .iter()
                .filter(|p| p.role() == Some(keys::ROLE_CONTAINER))
            {
                let ids = &container.external_ids;
                let addresses: Vec<IpAddr> = ids
                    .get(keys::ADDRESSES)
                    .map(|s| s.split(',').filter_map(|a| a.parse().ok()).collect())
                    .unwrap_or_default();
                let ports: Vec<PortMapping> = ids
                    .get(keys::PORT_MAPPINGS)
                    .and_then(|j| serde_json::from_str(j).ok())
                    .unwrap_or_default();
                for address in &addresses {
                    for mapping in &ports {
                        mappings.push((*address, mapping.clone()));
                    }
                }
            }
            rules.networks.push(NetworkRules {
                gateway_port: gateway.name.clone(),
                subnets,
                mappings,
            });
        }
        rules
    }

    /// Whether the table would be empty (it is then removed altogether).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.underlay.is_empty()
    }
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

fn ip_proto(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

fn prefix(net: &IpNet) -> Value {
    json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
}

/// The protocols of a mapping: podman may send `tcp,udp` as one mapping.
fn protocols(mapping: &PortMapping) -> Vec<String> {
    let text = mapping.protocol.as_deref().unwrap_or("tcp");
    text.split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The nft JSON commands that replace the table with `rules` in one transaction.
pub fn render(rules: &Rules) -> Value {
    // Adding then deleting makes the deletion safe when the table does not exist yet.
    let mut cmds = vec![
        json!({"add": {"table": table()}}),
        json!({"delete": {"table": table()}}),
    ];
    if rules.is_empty() {
        return json!({ "nftables": cmds });
    }
    cmds.push(json!({"add": {"table": table()}}));
    cmds.push(chain("prerouting", "nat", "prerouting", -100));
    cmds.push(chain("output", "nat", "output", -100));
    cmds.push(chain("postrouting", "nat", "postrouting", 100));
    cmds.push(chain("forward", "filter", "forward", 0));
    cmds.push(chain("input", "filter", "input", -10));

    for net in &rules.networks {
        let gw = Value::String(net.gateway_port.clone());
        for subnet in &net.subnets {
            let family = ip_proto(subnet.addr());
            // Outbound NAT: from the subnet, out of anything but the network itself.
            cmds.push(rule(
                "postrouting",
                vec![
                    matches(payload(family, "saddr"), "==", prefix(subnet)),
                    matches(meta("oifname"), "!=", gw.clone()),
                    json!({"masquerade": null}),
                ],
            ));
            // A container reaching a port mapping of this host from the same network: the
            // answer must come back through the host, not straight from the target.
            cmds.push(rule(
                "postrouting",
                vec![
                    matches(payload(family, "saddr"), "==", prefix(subnet)),
                    matches(meta("oifname"), "==", gw.clone()),
                    matches(json!({"ct": {"key": "status"}}), "in", json!("dnat")),
                    json!({"masquerade": null}),
                ],
            ));
        }
        // Isolation: no routing through the host into another geneve-ovs network.
        for other in rules
            .networks
            .iter()
            .filter(|o| o.gateway_port != net.gateway_port)
        {
            cmds.push(rule(
                "forward",
                vec![
                    matches(meta("iifname"), "==", gw.clone()),
                    matches(meta("oifname"), "==", json!(other.gateway_port)),
                    json!({"drop": null}),
                ],
            ));
        }
        for (address, mapping) in &net.mappings {
            cmds.extend(port_mapping_rules(*address, mapping));
        }
    }

    for (port, peers) in &rules.underlay {
        for (nfproto, family) in [("ipv4", "ip"), ("ipv6", "ip6")] {
            let allowed: Vec<Value> = peers
                .iter()
                .filter(|p| ip_proto(**p) == family)
                .map(|p| json!(p.to_string()))
                .collect();
            let mut expr = vec![
                matches(meta("nfproto"), "==", json!(nfproto)),
                matches(payload("udp", "dport"), "==", json!(port)),
            ];
            if !allowed.is_empty() {
                expr.push(matches(
                    payload(family, "saddr"),
                    "!=",
                    json!({ "set": allowed }),
                ));
            }
            expr.push(json!({"drop": null}));
            cmds.push(rule("input", expr));
        }
    }
    json!({ "nftables": cmds })
}

/// The DNAT rules of one mapping towards one container address: from outside (prerouting) and
/// from the host itself (output, to a local address).
fn port_mapping_rules(address: IpAddr, mapping: &PortMapping) -> Vec<Value> {
    let family = ip_proto(address);
    let host_ip: Option<IpAddr> = mapping
        .host_ip
        .as_deref()
        .filter(|h| !h.is_empty())
        .and_then(|h| h.parse().ok());
    if host_ip.is_some_and(|h| h.is_ipv4() != address.is_ipv4() && !h.is_unspecified()) {
        return Vec::new();
    }
    let count = mapping.range.unwrap_or(1).max(1);
    let mut rules = Vec::new();
    for protocol in protocols(mapping) {
        for offset in 0..count {
            let (Some(host_port), Some(container_port)) = (
                mapping.host_port.checked_add(offset),
                mapping.container_port.checked_add(offset),
            ) else {
                continue;
            };
            let mut common = vec![matches(
                meta("nfproto"),
                "==",
                json!(if address.is_ipv4() { "ipv4" } else { "ipv6" }),
            )];
            if let Some(h) = host_ip.filter(|h| !h.is_unspecified()) {
                common.push(matches(
                    payload(family, "daddr"),
                    "==",
                    json!(h.to_string()),
                ));
            }
            common.push(matches(payload(&protocol, "dport"), "==", json!(host_port)));
            let dnat = json!({"dnat": {"family": family, "addr": address.to_string(), "port": container_port}});
            let mut pre = common.clone();
            pre.push(dnat.clone());
            rules.push(rule("prerouting", pre));
            let mut out = common;
            out.push(matches(
                json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                "==",
                json!("local"),
            ));
            out.push(dnat);
            rules.push(rule("output", out));
        }
    }
    rules
}

/// Replaces the table with `rules` (removes it when there is nothing to hold).
pub fn apply(rules: &Rules) -> Result<()> {
    let payload = render(rules);
    let parsed: nftables::schema::Nftables =
        serde_json::from_value(payload).context("the rendered nftables ruleset does not parse")?;
    nftables::helper::apply_ruleset(&parsed).map_err(|err| {
        anyhow::anyhow!(
            "cannot update the nftables table inet {TABLE} (is the nftables package installed, \
             with `nft` in PATH?): {err}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::OWNER;
    use crate::ovs::state::{BridgeRow, PortRow};

    fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.insert(keys::OWNER.into(), OWNER.into());
        m
    }

    fn port(uuid: &str, name: &str, role: &str, extra: &[(&str, &str)]) -> PortRow {
        let mut external_ids = ids(extra);
        external_ids.insert(keys::ROLE.into(), role.into());
        PortRow {
            uuid: uuid.into(),
            name: name.into(),
            external_ids,
            protected: false,
        }
    }

    fn observed() -> Observed {
        let mapping =
            r#"[{"container_port":80,"host_ip":"","host_port":8080,"protocol":"tcp","range":1}]"#;
        Observed {
            bridges: vec![
                BridgeRow {
                    uuid: "b1".into(),
                    name: "gnv1".into(),
                    external_ids: ids(&[
                        (keys::DATAPATH, "system"),
                        (keys::SUBNETS, "192.168.120.0/24,fd12::/64"),
                    ]),
                    datapath_type: "system".into(),
                    fail_mode: None,
                    ports: vec!["t1".into(), "g1".into(), "c1".into()],
                },
                BridgeRow {
                    uuid: "b2".into(),
                    name: "gnv2".into(),
                    external_ids: ids(&[
                        (keys::DATAPATH, "netdev"),
                        (keys::SUBNETS, "10.5.0.0/24"),
                    ]),
                    datapath_type: "netdev".into(),
                    fail_mode: None,
                    ports: vec!["t2".into()],
                },
                BridgeRow {
                    uuid: "b3".into(),
                    name: "foreign".into(),
                    external_ids: BTreeMap::new(),
                    datapath_type: "system".into(),
                    fail_mode: None,
                    ports: vec![],
                },
            ],
            ports: vec![
                port(
                    "t1",
                    "gt1",
                    keys::ROLE_TUNNEL,
                    &[(keys::PEER, "10.99.0.2"), (keys::DST_PORT, "6081")],
                ),
                port(
                    "t2",
                    "gt2",
                    keys::ROLE_TUNNEL,
                    &[(keys::PEER, "10.99.0.3"), (keys::DST_PORT, "6081")],
                ),
                port("g1", "gw1", keys::ROLE_GATEWAY, &[]),
                port(
                    "c1",
                    "gvaaa",
                    keys::ROLE_CONTAINER,
                    &[
                        (keys::ADDRESSES, "192.168.120.5,fd12::5"),
                        (keys::PORT_MAPPINGS, mapping),
                    ],
                ),
            ],
            interfaces: Vec::new(),
        }
    }

    #[test]
    fn rules_come_from_the_database() {
        let rules = Rules::from_observed(&observed());
        assert_eq!(
            rules.networks.len(),
            1,
            "only networks with a gateway port get NAT"
        );
        let net = &rules.networks[0];
        assert_eq!(net.gateway_port, "gw1");
        assert_eq!(net.subnets.len(), 2);
        assert_eq!(net.mappings.len(), 2, "one per container address");
        // Only the kernel-datapath network's tunnel is filtered.
        assert_eq!(
            rules.underlay[&6081]
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
            vec!["10.99.0.2"]
        );
    }

    #[test]
    fn rendering_parses_as_nftables_and_replaces_the_table() {
        let value = render(&Rules::from_observed(&observed()));
        let text = value.to_string();
        let parsed: nftables::schema::Nftables = serde_json::from_value(value.clone()).unwrap();
        assert!(!parsed.objects.is_empty());
        let cmds = value["nftables"].as_array().unwrap();
        assert_eq!(
            cmds[0],
            json!({"add": {"table": {"family": "inet", "name": TABLE}}})
        );
        assert_eq!(
            cmds[1],
            json!({"delete": {"table": {"family": "inet", "name": TABLE}}})
        );
        assert!(
            text.contains(r#""dnat":{"addr":"192.168.120.5","family":"ip","port":80}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""dnat":{"addr":"fd12::5","family":"ip6","port":80}"#),
            "{text}"
        );
        assert!(text.contains(r#""masquerade":null"#));
        assert!(text.contains(r#""set":["10.99.0.2"]"#), "{text}");
    }

    #[test]
    fn empty_rules_just_remove_the_table() {
        let value = render(&Rules::default());
        assert_eq!(value["nftables"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn ranges_protocols_and_host_ip() {
        let mapping = PortMapping {
            container_port: 80,
            host_ip: Some("10.99.0.1".into()),
            host_port: 8080,
            protocol: Some("tcp,udp".into()),
            range: Some(3),
        };
        let rules = port_mapping_rules("192.168.120.5".parse().unwrap(), &mapping);
        // 2 protocols x 3 ports x (prerouting + output).
        assert_eq!(rules.len(), 12);
        let text = serde_json::to_string(&rules).unwrap();
        assert!(
            text.contains(r#""right":8082"#) && text.contains(r#""port":82"#),
            "{text}"
        );
        assert!(text.contains(r#""right":"10.99.0.1""#));
        // A host address of the other family does not apply to this container address.
        assert!(port_mapping_rules("fd12::5".parse().unwrap(), &mapping).is_empty());
    }
}
