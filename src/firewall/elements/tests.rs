use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::ovs::schema::{keys, OWNER};
use crate::ovs::snapshot::BridgeRow;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mapping(host_ip: &str, host: u16, container: u16, proto: &str, range: u16) -> PortMapping {
    PortMapping {
        container_port: container,
        host_ip: Some(host_ip.into()),
        host_port: host,
        protocol: Some(proto.into()),
        range: Some(range),
    }
}

fn key(ipv4: bool, host_ip: Option<&str>, protocol: Protocol, port: u16) -> PortKey {
    PortKey {
        ipv4,
        host_ip: host_ip.map(ip),
        protocol,
        host_port: port,
    }
}

#[test]
fn a_plain_mapping_publishes_each_family_protocol_and_port_of_the_range() {
    let own = [ip("192.168.120.5"), ip("fd12::5")];
    let got = published_ports(&own, &[mapping("", 8080, 80, "tcp,udp", 3)]).unwrap();
    // 2 families x 2 protocols x 3 ports.
    assert_eq!(got.len(), 12);
    assert!(got.contains(&Published {
        key: key(true, None, Protocol::Udp, 8082),
        target: Target {
            addr: own[0],
            port: 82
        },
    }));
    assert!(got.contains(&Published {
        key: key(false, None, Protocol::Tcp, 8080),
        target: Target {
            addr: own[1],
            port: 80
        },
    }));
}

#[test]
fn host_ip_restricts_the_family_and_keys_the_address() {
    let own = [ip("192.168.120.5"), ip("fd12::5")];
    let got = published_ports(&own, &[mapping("10.99.0.1", 8080, 80, "tcp", 1)]).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].key,
        key(true, Some("10.99.0.1"), Protocol::Tcp, 8080)
    );
    // 0.0.0.0 and :: mean every address of their family, with no address to match.
    let any4 = published_ports(&own, &[mapping("0.0.0.0", 8080, 80, "tcp", 1)]).unwrap();
    assert_eq!(any4.len(), 1);
    assert_eq!(any4[0].key, key(true, None, Protocol::Tcp, 8080));
    let any6 = published_ports(&own, &[mapping("::", 8080, 80, "tcp", 1)]).unwrap();
    assert_eq!(any6[0].key, key(false, None, Protocol::Tcp, 8080));
    // 127.0.0.1 is a host address like any other.
    let local = published_ports(&own, &[mapping("127.0.0.1", 8080, 80, "tcp", 1)]).unwrap();
    assert_eq!(local[0].key.host_ip, Some(ip("127.0.0.1")));
    // Podman's protocol names in any case, with spaces.
    assert_eq!(
        published_ports(&own, &[mapping("", 53, 53, " UDP ", 1)]).unwrap()[0]
            .key
            .protocol,
        Protocol::Udp
    );
}

#[test]
fn mappings_that_cannot_be_rendered_are_refused_naming_them() {
    let v4 = [ip("192.168.120.5")];
    let cases: Vec<(PortMapping, &[IpAddr], &str)> = vec![
        (
            mapping("", 8080, 80, "icmp", 1),
            &v4,
            "unknown protocol \"icmp\"",
        ),
        (
            mapping("10.99.0.x", 8080, 80, "tcp", 1),
            &v4,
            "not an IP address",
        ),
        (
            mapping("fd99::1", 8080, 80, "tcp", 1),
            &v4,
            "host_ip is an IPv6 address but the container has no IPv6",
        ),
        (
            mapping("::1", 8080, 80, "tcp", 1),
            &v4,
            "::1 cannot be published",
        ),
        (mapping("224.0.0.1", 8080, 80, "tcp", 1), &v4, "multicast"),
        (mapping("", 65535, 80, "tcp", 2), &v4, "beyond port 65535"),
        (mapping("", 8080, 65535, "udp", 2), &v4, "beyond port 65535"),
        (mapping("", 0, 80, "tcp", 1), &v4, "port 0"),
        (
            mapping("", 8080, 80, "tcp", 1),
            &[],
            "no address to publish to",
        ),
    ];
    for (m, own, expected) in cases {
        let err = published_ports(own, std::slice::from_ref(&m))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{m:?}: {err}");
        assert!(
            err.contains(&describe(&m)),
            "{m:?}: {err} does not name the mapping"
        );
    }
    let twice = published_ports(
        &v4,
        &[
            mapping("", 8080, 80, "tcp", 1),
            mapping("", 8079, 90, "tcp", 2),
        ],
    )
    .unwrap_err();
    assert!(twice.to_string().contains("published twice"), "{twice}");
    assert_eq!(
        describe(&mapping("fd99::1", 8080, 80, "udp", 3)),
        "-p [fd99::1]:8080:80/udp (range 3)"
    );
}

fn listing(entries: &[(PortKey, &str)]) -> Listing {
    Listing {
        exists: true,
        dns: BTreeMap::new(),
        skeleton: None,
        gateways: BTreeSet::new(),
        same_gateway: BTreeSet::new(),
        dnat: entries
            .iter()
            .map(|(k, a)| {
                (
                    *k,
                    Current {
                        addr: Some(ip(a)),
                        port: Some(80),
                    },
                )
            })
            .collect(),
    }
}

#[test]
fn attaching_replaces_what_a_dead_owner_of_the_address_left() {
    let dead_port = key(true, None, Protocol::Tcp, 9999);
    let other = key(true, None, Protocol::Udp, 53);
    let now = listing(&[(dead_port, "192.168.120.5"), (other, "192.168.120.6")]);
    let own = [ip("192.168.120.5")];
    let wanted = published_ports(&own, &[mapping("", 8080, 80, "tcp", 1)]).unwrap();
    let change = attach(&now, &own, &wanted).unwrap();
    // The dead container's 9999 goes, the other container's 53 stays, ours comes.
    assert_eq!(change.delete.len(), 1);
    assert_eq!(change.delete[0].0, dead_port);
    assert_eq!(change.add, wanted);
    // Asking for nothing still removes the leftover.
    let bare = attach(&now, &own, &[]).unwrap();
    assert_eq!(bare.delete.len(), 1);
    assert!(bare.add.is_empty());
}

#[test]
fn a_port_another_container_holds_is_refused() {
    let port = key(true, None, Protocol::Tcp, 8080);
    let now = listing(&[(port, "192.168.120.6")]);
    let own = [ip("192.168.120.5")];
    let wanted = published_ports(&own, &[mapping("", 8080, 80, "tcp", 1)]).unwrap();
    let err = attach(&now, &own, &wanted).unwrap_err();
    assert_eq!(err.holder, ip("192.168.120.6"));
    assert!(err.to_string().contains("8080/tcp"), "{err}");
    // The same container again (a retried setup) is no conflict.
    let mine = listing(&[(port, "192.168.120.5")]);
    let again = attach(&mine, &own, &wanted).unwrap();
    assert_eq!(again.delete.len(), 1);
    assert_eq!(again.add, wanted);
}

#[test]
fn detaching_removes_every_element_of_the_addresses() {
    let a = key(true, None, Protocol::Tcp, 8080);
    let b = key(false, Some("fd99::1"), Protocol::Tcp, 8080);
    let c = key(true, None, Protocol::Tcp, 9090);
    let now = Listing {
        exists: true,
        dns: BTreeMap::new(),
        skeleton: None,
        gateways: BTreeSet::new(),
        same_gateway: BTreeSet::new(),
        dnat: BTreeMap::from([
            (
                a,
                Current {
                    addr: Some(ip("192.168.120.5")),
                    port: Some(80),
                },
            ),
            (
                b,
                Current {
                    addr: Some(ip("fd12::5")),
                    port: Some(80),
                },
            ),
            (
                c,
                Current {
                    addr: Some(ip("192.168.120.6")),
                    port: Some(90),
                },
            ),
        ]),
    };
    let change = detach(&now, &[ip("192.168.120.5"), ip("fd12::5")]);
    let keys: std::collections::BTreeSet<PortKey> = change.delete.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, std::collections::BTreeSet::from([a, b]));
    assert!(detach(&Listing::default(), &[ip("192.168.120.5")]).is_empty());
}

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
        ..PortRow::default()
    }
}

fn observed() -> Snapshot {
    let web = r#"[{"container_port":80,"host_ip":"","host_port":8080,"protocol":"tcp","range":1}]"#;
    let dup = r#"[{"container_port":81,"host_ip":"","host_port":8080,"protocol":"tcp","range":1}]"#;
    Snapshot {
        bridges: vec![
            BridgeRow {
                uuid: "b1".into(),
                name: "gnv1".into(),
                external_ids: ids(&[
                    (keys::DATAPATH, "system"),
                    (keys::INTERNAL, "false"),
                    (keys::VNI, "1"),
                ]),
                datapath_type: "system".into(),
                fail_mode: None,
                ports: vec!["t1".into(), "c1".into(), "c2".into(), "c3".into()],
            },
            BridgeRow {
                uuid: "b2".into(),
                name: "gnv2".into(),
                external_ids: ids(&[
                    (keys::DATAPATH, "netdev"),
                    (keys::INTERNAL, "true"),
                    (keys::VNI, "2"),
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
            port(
                "c1",
                "gvlive",
                keys::ROLE_CONTAINER,
                &[
                    (keys::ADDRESSES, "192.168.120.5,fd12::5"),
                    (keys::PORT_MAPPINGS, web),
                ],
            ),
            port(
                "c2",
                "gvdead",
                keys::ROLE_CONTAINER,
                &[
                    (keys::ADDRESSES, "192.168.120.6"),
                    (
                        keys::PORT_MAPPINGS,
                        r#"[{"container_port":22,"host_port":2222}]"#,
                    ),
                ],
            ),
            port(
                "c3",
                "gvdup",
                keys::ROLE_CONTAINER,
                &[
                    (keys::ADDRESSES, "192.168.120.7"),
                    (keys::PORT_MAPPINGS, dup),
                ],
            ),
        ],
        interfaces: Vec::new(),
        ..Snapshot::default()
    }
}

#[test]
fn the_reconcile_publishes_only_live_containers_of_non_internal_networks() {
    let desired = desired(&observed(), |row| row.name != "gvdead");
    assert!(desired.needed);
    assert_eq!(desired.gateways.iter().collect::<Vec<_>>(), vec!["gw1"]);
    // gvlive's 8080 in both families; gvdead is not alive; gvdup's 8080 is taken.
    assert_eq!(desired.dnat.len(), 2, "{:?}", desired.dnat);
    assert!(desired
        .dnat
        .iter()
        .all(|e| e.target.addr == ip("192.168.120.5") || e.target.addr == ip("fd12::5")));
    // Only the kernel-datapath network's tunnel is in the underlay filter.
    assert_eq!(
        desired.underlay.ports.iter().collect::<Vec<_>>(),
        vec![&6081]
    );
    assert_eq!(
        desired.underlay.peers.iter().collect::<Vec<_>>(),
        vec![&(ip("10.99.0.2"), 6081)]
    );
}

#[test]
fn a_host_with_only_internal_userspace_networks_needs_no_table() {
    let mut o = observed();
    o.bridges.remove(0);
    let d = desired(&o, |_| true);
    assert!(!d.needed);
    assert!(d.gateways.is_empty() && d.dnat.is_empty() && d.underlay.is_empty());
    // An internal network on the kernel datapath needs its underlay filter.
    o.bridges[0]
        .external_ids
        .insert(keys::DATAPATH.into(), "system".into());
    let d = desired(&o, |_| true);
    assert!(d.needed);
    assert!(d.gateways.is_empty());
    assert_eq!(d.underlay.peers.len(), 1);
}

#[test]
fn the_reconcile_keeps_what_open_ovn_networks_publish_on_the_integration_bridge() {
    let web = r#"[{"container_port":80,"host_ip":"","host_port":9090,"protocol":"tcp","range":1}]"#;
    let mut o = observed();
    o.bridges.push(BridgeRow {
        uuid: "b4".into(),
        name: "br-int".into(),
        external_ids: BTreeMap::new(),
        datapath_type: "netdev".into(),
        fail_mode: None,
        ports: vec!["g4".into(), "c4".into(), "c5".into()],
    });
    let open = [(keys::NETWORK, "open")];
    o.ports.push(port("g4", "gw4", keys::ROLE_GATEWAY, &open));
    o.ports.push(port(
        "c4",
        "gvopen",
        keys::ROLE_CONTAINER,
        &[
            (keys::NETWORK, "open"),
            (keys::ADDRESSES, "192.168.121.5"),
            (keys::PORT_MAPPINGS, web),
        ],
    ));
    // A container of an internal OVN network (no gateway port here) publishes nothing.
    o.ports.push(port(
        "c5",
        "gvclosed",
        keys::ROLE_CONTAINER,
        &[
            (keys::NETWORK, "closed"),
            (keys::ADDRESSES, "192.168.122.5"),
            (keys::PORT_MAPPINGS, web),
        ],
    ));
    let d = desired(&o, |_| true);
    assert_eq!(d.gateways.iter().collect::<Vec<_>>(), vec!["gw1", "gw4"]);
    let targets: Vec<IpAddr> = d.dnat.iter().map(|e| e.target.addr).collect();
    assert!(targets.contains(&ip("192.168.121.5")), "{targets:?}");
    assert!(!targets.contains(&ip("192.168.122.5")), "{targets:?}");
    // Without the open network's gateway port, nothing of it stays.
    o.ports.retain(|p| p.uuid != "g4");
    let d = desired(&o, |_| true);
    assert!(!d.gateways.contains("gw4"));
    assert!(!d.dnat.iter().any(|e| e.target.addr == ip("192.168.121.5")));
}
