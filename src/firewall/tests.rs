//! The rendered transactions parse as nft JSON (the `nftables` crate's schema).

use serde_json::{json, Value};

use super::elements::{self, Current, Desired, Listing, PortKey, Protocol, Published, Target};
use super::render;

/// Parses with the crate everything it knows (as `firewall::apply` checks), and returns the
/// whole document's text.
fn parses(cmds: Vec<Value>) -> String {
    let checkable: Vec<Value> = cmds
        .iter()
        .filter(|c| !render::outside_crate_schema(c))
        .cloned()
        .collect();
    let document = render::document(checkable);
    let parsed: nftables::schema::Nftables = serde_json::from_value(document.clone())
        .unwrap_or_else(|e| panic!("does not parse: {e}\n{document:#}"));
    assert!(!parsed.objects.is_empty());
    render::document(cmds).to_string()
}

#[test]
fn encrypted_peers_get_only_ipsec_both_ways() {
    let rules: Vec<Value> = render::skeleton()
        .into_iter()
        .filter(render::outside_crate_schema)
        .collect();
    // In and out, per family; nothing else escapes the crate's check.
    assert_eq!(rules.len(), 4, "{rules:#?}");
    let text = Value::Array(rules).to_string();
    // Exactly as nft 1.1 lists `udp dport ... rt ipsec missing drop` and `meta ipsec missing`.
    assert!(
        text.contains(r#"{"match":{"left":{"rt":{"key":"ipsec"}},"op":"==","right":false}}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"{"match":{"left":{"meta":{"key":"ipsec"}},"op":"==","right":false}}"#),
        "{text}"
    );
    for set in ["@underlay_ipsec4", "@underlay_ipsec6"] {
        assert!(text.contains(set), "{text}");
    }
    assert!(text.contains(r#""chain":"tunnel_out""#), "{text}");

    let mut underlay = elements::Underlay::default();
    let peer: std::net::IpAddr = "10.99.0.2".parse().unwrap();
    underlay.ports.insert(6081);
    underlay.peers.insert((peer, 6081));
    underlay.peers.insert(("10.99.0.3".parse().unwrap(), 6082));
    underlay.encrypted.insert((peer, 6081));
    let text = parses(render::replace_underlay(&underlay));
    assert!(
        text.contains(
            r#"{"add":{"element":{"elem":[{"concat":["10.99.0.2",6081]}],"family":"inet","name":"underlay_ipsec4""#
        ),
        "{text}"
    );
    assert!(!text
        .contains(r#"{"concat":["10.99.0.3",6082]}],"family":"inet","name":"underlay_ipsec4""#));
}

fn element(host_ip: Option<&str>, port: u16, addr: &str, to: u16) -> Published {
    let addr: std::net::IpAddr = addr.parse().unwrap();
    Published {
        key: PortKey {
            ipv4: addr.is_ipv4(),
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            protocol: Protocol::Tcp,
            host_port: port,
        },
        target: Target { addr, port: to },
    }
}

#[test]
fn skeleton_is_constant_and_only_references_sets() {
    let text = parses(render::skeleton());
    assert_eq!(render::skeleton(), render::skeleton());
    // Rules name no address, port or interface of their own: only sets and maps.
    for needle in [
        "@gateways",
        "@same_gateway",
        "@dnat4_addr",
        "@dnat6_host_port",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }
    assert!(!text.contains("192.168."), "{text}");
    assert!(
        text.contains(r#""fib":{"flags":["daddr"],"result":"type"}"#),
        "{text}"
    );
    assert!(text.contains(r#""flush":{"chain""#), "{text}");
    // No command deletes the table: elements of other runs survive.
    assert!(!text.contains(r#""delete":{"table""#), "{text}");
}

#[test]
fn a_container_change_renders_deletes_before_adds() {
    let key = element(None, 8080, "192.168.120.5", 80).key;
    let change = elements::ContainerChange {
        delete: vec![(
            key,
            Current {
                addr: Some("192.168.120.5".parse().unwrap()),
                port: Some(80),
            },
        )],
        add: vec![
            element(None, 8080, "192.168.120.5", 80),
            element(Some("10.99.0.1"), 9090, "192.168.120.5", 90),
            element(None, 8080, "fd12::5", 80),
        ],
    };
    let cmds = render::container_change(&change);
    let text = parses(cmds.clone());
    assert!(cmds[0].get("delete").is_some() && cmds[1].get("delete").is_some());
    assert!(cmds[2..].iter().all(|c| c.get("add").is_some()));
    assert!(
        text.contains(r#"[{"concat":["tcp",8080]},"192.168.120.5"]"#),
        "{text}"
    );
    assert!(text.contains(r#"[{"concat":["tcp",8080]},80]"#), "{text}");
    assert!(
        text.contains(r#"[{"concat":["10.99.0.1","tcp",9090]},"192.168.120.5"]"#),
        "{text}"
    );
    assert!(text.contains(r#""name":"dnat6_addr""#), "{text}");
}

#[test]
fn the_reconcile_empties_and_refills_everything() {
    let mut desired = Desired {
        needed: true,
        ..Desired::default()
    };
    desired.gateways.insert("gw7".into());
    desired.dnat.push(element(None, 8080, "192.168.120.5", 80));
    desired.underlay.ports.insert(6081);
    desired
        .underlay
        .peers
        .insert(("10.99.0.2".parse().unwrap(), 6081));
    desired
        .underlay
        .peers
        .insert(("fd99::2".parse().unwrap(), 6081));
    let mut cmds = render::skeleton();
    cmds.extend(render::refill(&desired));
    let text = parses(cmds);
    for map in render::dnat_maps() {
        assert!(
            text.contains(r#"{"flush":{"map":{"family":"inet","map":"#)
                && text.contains(&format!(r#""name":"{}""#, map.0)),
            "{} not flushed: {text}",
            map.0
        );
    }
    assert!(text.contains(r#"{"concat":["gw7","gw7"]}"#), "{text}");
    assert!(text.contains(r#"{"concat":["10.99.0.2",6081]}"#), "{text}");
    assert!(text.contains(r#"{"concat":["fd99::2",6081]}"#), "{text}");
}

#[test]
fn listing_reads_what_the_plugin_writes() {
    // As `nft -j list table inet geneve_ovs` prints it (nft 1.0.6).
    let listed = json!({"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "geneve_ovs", "handle": 1}},
        {"map": {"family": "inet", "name": "dnat4_addr", "table": "geneve_ovs",
                 "type": ["inet_proto", "inet_service"], "map": "ipv4_addr",
                 "elem": [[{"concat": ["tcp", 8080]}, "192.168.120.10"],
                          [{"concat": ["udp", 53]}, "192.168.120.11"]]}},
        {"map": {"family": "inet", "name": "dnat4_port", "table": "geneve_ovs",
                 "type": ["inet_proto", "inet_service"], "map": "inet_service",
                 "elem": [[{"concat": ["tcp", 8080]}, 80]]}},
        {"map": {"family": "inet", "name": "dnat6_host_addr", "table": "geneve_ovs",
                 "type": ["ipv6_addr", "inet_proto", "inet_service"], "map": "ipv6_addr",
                 "elem": [[{"concat": ["fd99::1", "sctp", 9]}, "fd12::5"]]}},
        {"map": {"family": "inet", "name": "unrelated", "table": "geneve_ovs",
                 "elem": [[{"concat": ["tcp", 1]}, "10.0.0.1"]]}},
        {"set": {"family": "inet", "name": "gateways", "table": "geneve_ovs", "elem": ["gw1"]}}
    ]});
    let listing = super::listing::parse(&listed);
    assert!(listing.exists);
    assert_eq!(listing.dnat.len(), 3, "{listing:?}");
    let tcp = PortKey {
        ipv4: true,
        host_ip: None,
        protocol: Protocol::Tcp,
        host_port: 8080,
    };
    assert_eq!(
        listing.dnat[&tcp],
        Current {
            addr: Some("192.168.120.10".parse().unwrap()),
            port: Some(80)
        }
    );
    let udp = PortKey {
        protocol: Protocol::Udp,
        host_port: 53,
        ..tcp
    };
    assert_eq!(listing.dnat[&udp].port, None);
    let sctp = PortKey {
        ipv4: false,
        host_ip: Some("fd99::1".parse().unwrap()),
        protocol: Protocol::Sctp,
        host_port: 9,
    };
    assert_eq!(listing.dnat[&sctp].addr, Some("fd12::5".parse().unwrap()));
}

#[test]
fn removing_the_table_is_safe_when_it_does_not_exist() {
    let cmds = render::remove_table();
    assert_eq!(cmds.len(), 2);
    parses(cmds);
    let _ = Listing::default();
}

#[test]
fn dns_forwarding_sends_only_port_53_of_a_listed_gateway_port_to_its_name_server() {
    let skeleton = Value::Array(render::skeleton()).to_string();
    for (map, family) in [("@dns4", "ip"), ("@dns6", "ip6")] {
        let rule = format!(
            r#"{{"dnat":{{"addr":{{"map":{{"data":"{map}","key":{{"meta":{{"key":"iifname"}}}}}}}},"family":"{family}"}}}}"#
        );
        assert!(skeleton.contains(&rule), "{rule} in {skeleton}");
    }
    assert!(
        skeleton.contains(r#"{"match":{"left":{"payload":{"field":"dport","protocol":"th"}},"op":"==","right":53}}"#),
        "{skeleton}"
    );
    assert!(
        skeleton.contains(r#""right":{"set":["udp","tcp"]}"#),
        "{skeleton}"
    );

    let upstreams = crate::host_resolvers::Upstreams {
        v4: Some("10.99.0.254".parse().unwrap()),
        v6: None,
    };
    let mut listing = Listing::default();
    let change = elements::forward_names(&listing, "gw7", &upstreams);
    assert!(change.delete.is_empty(), "{change:?}");
    assert_eq!(
        change.add,
        ["10.99.0.254".parse::<std::net::IpAddr>().unwrap()]
    );
    let text = parses(render::name_forward_change(&change));
    assert!(
        text.contains(
            r#"{"add":{"element":{"elem":[["gw7","10.99.0.254"]],"family":"inet","name":"dns4""#
        ),
        "{text}"
    );
    // What the table holds already is not sent again; a changed resolver replaces the element,
    // one gone is deleted.
    listing
        .dns
        .insert(("gw7".to_string(), true), "10.99.0.254".parse().unwrap());
    assert_eq!(
        elements::forward_names(&listing, "gw7", &upstreams),
        elements::NameForwardChange {
            gateway: "gw7".to_string(),
            ..Default::default()
        }
    );
    let moved = crate::host_resolvers::Upstreams {
        v4: Some("10.99.0.253".parse().unwrap()),
        v6: None,
    };
    let change = elements::forward_names(&listing, "gw7", &moved);
    assert_eq!(change.delete, [true]);
    assert_eq!(
        change.add,
        ["10.99.0.253".parse::<std::net::IpAddr>().unwrap()]
    );
    let text = parses(render::name_forward_change(&change));
    let delete = text.find(r#"{"delete":{"element""#).expect("a delete");
    let add = text.find(r#"{"add":{"element""#).expect("an add");
    assert!(delete < add, "{text}");
    let gone = elements::forward_names(&listing, "gw7", &Default::default());
    assert_eq!((gone.delete, gone.add), (vec![true], vec![]));
}

#[test]
fn the_dns_maps_are_read_back_from_the_listing_and_refilled_by_the_reconcile() {
    let listed = json!({"nftables": [
        {"map": {"family": "inet", "table": "geneve_ovs", "name": "dns4", "type": "ifname",
            "map": "ipv4_addr", "elem": [["gw7", "10.99.0.254"], ["gw8", "nonsense"]]}},
        {"map": {"family": "inet", "table": "geneve_ovs", "name": "dns6", "type": "ifname",
            "map": "ipv6_addr", "elem": [["gw7", "fd99::53"]]}}
    ]});
    let listing = super::listing::parse(&listed);
    assert_eq!(listing.dns.len(), 2, "{listing:?}");
    assert_eq!(
        listing.dns[&("gw7".to_string(), false)],
        "fd99::53".parse::<std::net::IpAddr>().unwrap()
    );
    let mut desired = Desired {
        needed: true,
        ..Desired::default()
    };
    desired.gateways.insert("gw7".to_string());
    desired.ovn_gateways.insert("gw7".to_string());
    desired.name_servers.v6 = Some("fd99::53".parse().unwrap());
    let text = parses(render::refill(&desired));
    assert!(
        text.contains(r#"{"flush":{"map":{"family":"inet","map":"ipv4_addr","name":"dns4""#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"{"add":{"element":{"elem":[["gw7","fd99::53"]],"family":"inet","name":"dns6""#
        ),
        "{text}"
    );
}

/// The skeleton carries its id once, on a rule, and the listing reads it back with the gateway
/// sets: what lets a `setup` with nothing to change skip the transaction.
#[test]
fn the_skeleton_is_stamped_and_the_stamp_and_gateways_are_read_back() {
    let cmds = render::skeleton();
    let id = render::skeleton_id();
    assert_eq!(id.len(), 16);
    let stamps: Vec<&Value> = cmds
        .iter()
        .filter_map(|c| c.pointer("/add/rule/comment"))
        .collect();
    assert_eq!(stamps, [&json!(format!("{}{id}", render::SKELETON_STAMP))]);
    parses(cmds);

    let listed = json!({"nftables": [
        {"table": {"family": "inet", "name": "geneve_ovs", "handle": 1}},
        {"rule": {"family": "inet", "table": "geneve_ovs", "chain": "postrouting", "handle": 4,
                  "expr": [{"masquerade": null}]}},
        {"rule": {"family": "inet", "table": "geneve_ovs", "chain": "tunnel_out", "handle": 9,
                  "comment": format!("{}{id}", render::SKELETON_STAMP),
                  "expr": [{"drop": null}]}},
        {"set": {"family": "inet", "name": "gateways", "table": "geneve_ovs",
                 "elem": ["gw1", "gw2"]}},
        {"set": {"family": "inet", "name": "same_gateway", "table": "geneve_ovs",
                 "elem": [{"concat": ["gw1", "gw1"]}, {"concat": ["gw1", "gw2"]}]}}
    ]});
    let listing = super::listing::parse(&listed);
    assert_eq!(listing.skeleton.as_deref(), Some(id.as_str()));
    assert!(listing.serves_gateway(&id, "gw1"));
    // gw2 is not in the same-gateway set: not served.
    assert!(!listing.serves_gateway(&id, "gw2"));
    assert!(!listing.serves_gateway("0123456789abcdef", "gw1"));
}

/// A listing with this version's skeleton and the network's gateway: a container with nothing
/// of its own to change sends nothing; anything else sends the whole skeleton and the change.
#[test]
fn an_attach_with_nothing_to_change_sends_nothing() {
    let id = render::skeleton_id();
    let own: Vec<std::net::IpAddr> = vec!["192.168.120.10".parse().unwrap()];
    let served = Listing {
        exists: true,
        skeleton: Some(id.clone()),
        gateways: ["gw5".to_string()].into(),
        same_gateway: ["gw5".to_string()].into(),
        ..Listing::default()
    };
    let attach = |listing: &Listing, gateway: &str, wanted: &[Published]| {
        super::attach_commands(listing, &id, gateway, &own, wanted, None, None).unwrap()
    };
    assert!(attach(&served, "gw5", &[]).is_empty());

    let full = |cmds: Vec<Value>| {
        let text = parses(cmds);
        assert!(text.contains(render::SKELETON_STAMP), "{text}");
        assert!(text.contains(r#""gateways""#), "{text}");
        text
    };
    // Another network's gateway, an older skeleton, no table: the whole transaction.
    full(attach(&served, "gw6", &[]));
    let older = Listing {
        skeleton: Some("0123456789abcdef".to_string()),
        ..served.clone()
    };
    full(attach(&older, "gw5", &[]));
    full(attach(&Listing::default(), "gw5", &[]));
    // A published port of its own.
    let published = elements::published_ports(
        &own,
        &[crate::types::PortMapping {
            host_ip: None,
            container_port: 80,
            host_port: 8080,
            range: None,
            protocol: Some("tcp".to_string()),
        }],
    )
    .unwrap();
    let text = full(attach(&served, "gw5", &published));
    assert!(text.contains("8080"), "{text}");
    // A leftover of a dead container with the same address: it goes.
    let mut stale = served.clone();
    stale.dnat.insert(
        PortKey {
            ipv4: true,
            host_ip: None,
            protocol: Protocol::Tcp,
            host_port: 9090,
        },
        Current {
            addr: Some(own[0]),
            port: Some(90),
        },
    );
    let text = full(attach(&stale, "gw5", &[]));
    assert!(text.contains("9090"), "{text}");
}
