use std::path::PathBuf;

use super::*;
use crate::operate::fixture::Fix;

const NS: &str = "/run/netns/netns-1";

fn kinds(plan: &GcPlan) -> Vec<(&str, &str)> {
    plan.steps
        .iter()
        .map(|s| (s.item.kind, s.item.name.as_str()))
        .collect()
}

#[test]
fn a_healthy_host_needs_nothing() {
    let mut f = Fix::new();
    f.network("net1", "gnv5", 5, &["10.99.0.2"])
        .tunnel("gnv5", "10.99.0.2", Some("up"), None)
        .container("gnv5", "gv0000000000001", NS, true, true);
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    assert_eq!(p, GcPlan::default());
}

#[test]
fn ports_whose_netns_or_veth_is_gone() {
    let mut f = Fix::new();
    f.network("net1", "gnv5", 5, &[])
        .container("gnv5", "gv0000000000001", NS, true, true)
        // Reboot: the namespace and the veth are gone.
        .container("gnv5", "gv0000000000002", "/run/netns/gone", false, false)
        // A crashed teardown: the namespace is gone, the veth is not (its peer namespace is
        // held by a process but unmounted).
        .container("gnv5", "gv0000000000003", "/run/netns/gone3", false, true)
        // The veth is gone, the namespace is not.
        .container("gnv5", "gv0000000000004", NS, true, false);
    f.host
        .peers
        .insert("gv0000000000003".into(), PeerPlace::Unmounted);
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    assert_eq!(
        kinds(&p),
        [
            ("port", "gv0000000000002"),
            ("port", "gv0000000000003"),
            ("veth", "gv0000000000003"),
            ("port", "gv0000000000004"),
        ]
    );
    assert!(p.steps[0].item.reason.contains("/run/netns/gone"));
    assert!(p.steps[3].item.reason.contains("veth"));
    assert_eq!(
        p.steps[0].item.container_id.as_deref(),
        Some("gv0000000000002-container-id-0123456789")
    );
    let Action::RemovePort { bridge, port } = &p.steps[0].action else {
        panic!()
    };
    assert_eq!(bridge, &f.inv.bridges[0].uuid);
    assert_eq!(port, &f.inv.ports[1].uuid);
    assert!(p.kept.is_empty());
}

#[test]
fn the_veth_of_a_stale_port_stays_when_a_running_container_holds_its_peer() {
    let mut f = Fix::new();
    f.network("net1", "gnv5", 5, &[]).container(
        "gnv5",
        "gv0000000000003",
        "/run/netns/gone3",
        false,
        true,
    );
    // The fixture says its peer is in the (now unmounted) path; make it a mounted one.
    f.host.peers.insert(
        "gv0000000000003".into(),
        PeerPlace::Mounted(PathBuf::from("/run/netns/other")),
    );
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    assert_eq!(kinds(&p), [("port", "gv0000000000003")]);
    assert_eq!(p.kept[0].kind, "veth");
    assert!(p.kept[0].reason.contains("/run/netns/other"));
}

#[test]
fn leaked_veths_only_when_no_container_holds_them() {
    let mut f = Fix::new();
    f.network("net1", "gnv5", 5, &[])
        .container("gnv5", "gv0000000000001", NS, true, true)
        .link("gv00000000000a1", Some(PeerPlace::HostNamespace))
        .link("gv00000000000a2", Some(PeerPlace::Unmounted))
        .link(
            "gv00000000000a3",
            Some(PeerPlace::Mounted(PathBuf::from("/run/netns/c3"))),
        )
        // Not ours by name: never looked at.
        .link("gvx", Some(PeerPlace::HostNamespace))
        .link("veth1234", Some(PeerPlace::Unmounted))
        .link("eth0", None);
    // Named like ours but OVS has an interface of that name: left alone.
    f.link("gv00000000000a4", Some(PeerPlace::Unmounted));
    f.inv.interfaces.push(crate::ovs::snapshot::InterfaceRow {
        name: "gv00000000000a4".into(),
        ..Default::default()
    });
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    assert_eq!(
        kinds(&p),
        [("veth", "gv00000000000a1"), ("veth", "gv00000000000a2")]
    );
    assert_eq!(p.kept.len(), 1);
    assert_eq!(p.kept[0].name, "gv00000000000a3");
}

#[test]
fn bridges_of_removed_networks() {
    let mut f = Fix::new();
    f.network("net1", "gnv5", 5, &["10.99.0.2"])
        .tunnel("gnv5", "10.99.0.2", Some("up"), None)
        .network("old", "gnv6", 6, &["10.99.0.2"])
        .tunnel("gnv6", "10.99.0.2", Some("up"), None)
        // Its containers were stopped by a crash: stale ports, removed first.
        .container("gnv6", "gv0000000000002", "/run/netns/gone", false, false)
        .forget("old");
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    assert_eq!(kinds(&p), [("port", "gv0000000000002"), ("bridge", "gnv6")]);
    let Action::RemoveBridge { uuid, ports } = &p.steps[1].action else {
        panic!()
    };
    assert_eq!(uuid, &f.inv.bridges[1].uuid);
    // The bridge must hold its tunnel and nothing else once the stale port is gone.
    assert_eq!(ports.len(), 1);
    assert!(p.steps[1]
        .item
        .reason
        .contains("no geneve-ovs network \"old\""));
}

#[test]
fn bridges_kept_when_in_doubt() {
    let mut f = Fix::new();
    f.network("live", "gnv1", 1, &[])
        .container("gnv1", "gv0000000000001", NS, true, true)
        .forget("live")
        .network("foreign", "gnv2", 2, &[])
        .foreign_port("gnv2", "eth9")
        .forget("foreign")
        .network("recreated", "gnv3", 3, &[])
        .network("unreadable", "gnv4", 4, &[])
        .forget("unreadable");
    f.saved.networks[0].id = "another-id".into();
    f.saved.unreadable.push((
        PathBuf::from("/etc/containers/networks/unreadable.json"),
        "not JSON".into(),
    ));
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    let reasons: Vec<(&str, &str)> = p
        .kept
        .iter()
        .map(|k| (k.name.as_str(), k.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons[0].1.contains("containers are still attached"));
    assert!(reasons[1].1.contains("did not create"));
    assert!(reasons[2].1.contains("another id"));
    assert!(reasons[3].1.contains("cannot be read"));

    let p = plan(&f.inv, &f.host, Err("no such directory"));
    assert!(p.steps.is_empty());
    assert_eq!(p.kept.len(), 4);
    assert!(p.kept[0].reason.contains("no such directory"));
}

#[test]
fn a_gateway_stays_with_its_network_when_its_last_container_is_stale() {
    let mut f = Fix::new();
    f.network("out1", "gnv5", 5, &[])
        .gateway("gnv5", "gw5")
        .container("gnv5", "gv0000000000001", NS, true, true)
        .container("gnv5", "gv0000000000002", "/run/netns/gone", false, false)
        .network("out2", "gnv6", 6, &[])
        .gateway("gnv6", "gw6")
        .container("gnv6", "gv0000000000003", "/run/netns/gone", false, false)
        .network("internal", "gnv7", 7, &[])
        .container("gnv7", "gv0000000000004", "/run/netns/gone", false, false);
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    // out2 has no container left, but the network exists: its gateway port stays, as after
    // a teardown of its last container.
    assert_eq!(
        kinds(&p),
        [
            ("port", "gv0000000000002"),
            ("port", "gv0000000000003"),
            ("port", "gv0000000000004"),
        ]
    );
    let firewall: Vec<bool> = p.steps.iter().map(|s| s.firewall).collect();
    assert_eq!(firewall, [true, true, false]);
}

#[test]
fn a_removed_network_takes_its_gateway_and_bridge() {
    let mut f = Fix::new();
    f.network("out", "gnv5", 5, &[])
        .gateway("gnv5", "gw5")
        .container("gnv5", "gv0000000000002", "/run/netns/gone", false, false)
        .forget("out");
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    assert_eq!(kinds(&p), [("port", "gv0000000000002"), ("bridge", "gnv5")]);
    let Action::RemoveBridge { ports, .. } = &p.steps[1].action else {
        panic!()
    };
    // The gateway port goes with the bridge.
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert!(p.steps.iter().all(|s| s.firewall));
}

#[test]
fn a_bridge_geneve_ovs_did_not_create_is_left_alone() {
    let mut f = Fix::new();
    f.network("net1", "gnv5", 5, &[])
        .foreign_bridge("br-ext")
        .forget("net1");
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    assert_eq!(kinds(&p), [("bridge", "gnv5")]);
    assert!(p.kept.iter().all(|k| k.name != "br-ext"), "{:?}", p.kept);
}

#[test]
fn a_stale_port_of_an_ovn_network_goes_with_its_logical_port() {
    let mut f = Fix::new();
    f.network("net1", "gnv5", 5, &[])
        .container("gnv5", "gv0000000000001", "/run/netns/gone", false, false)
        .container("gnv5", "gv0000000000002", "/run/netns/gone2", false, false)
        .foreign_bridge("br-int");
    // Both ports sit on OVN's integration bridge; only the first says its logical port and
    // where the northbound database is.
    let moved: Vec<String> = f.inv.bridges[0].ports.drain(..).collect();
    f.inv.bridges[1].ports.extend(moved);
    let first = &mut f.inv.ports[0].external_ids;
    first.insert(keys::IFACE_ID.into(), "cid-eth0".into());
    first.insert(keys::OVN_NB.into(), "tcp:10.99.0.250:6641".into());
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    let Some(Step {
        action:
            Action::RemoveOvnPort {
                bridge,
                port,
                network,
                logical_port,
                remotes,
            },
        ..
    }) = p.steps.first()
    else {
        panic!("{p:?}")
    };
    assert_eq!(bridge, &f.inv.bridges[1].uuid);
    assert_eq!(port, &f.inv.ports[0].uuid);
    assert_eq!(
        (network.as_str(), logical_port.as_str(), remotes.as_str()),
        ("net1", "cid-eth0", "tcp:10.99.0.250:6641")
    );
    // The other is not the plugin's to take from a bridge it did not create.
    assert_eq!(p.steps.len(), 1, "{p:?}");
    assert!(p.kept[0]
        .reason
        .contains("not on a bridge geneve-ovs created"));
}

#[test]
fn the_switch_of_an_ovn_network_podman_forgot_is_a_candidate() {
    let mut f = Fix::new();
    f.network("kept", "gnv5", 5, &[]);
    let record = |network: &str| JoinedNetwork {
        network: network.into(),
        remotes: "tcp:10.99.0.250:6641".into(),
        identity: [(
            "geneve-ovs.subnets".to_string(),
            "192.168.120.0/24".to_string(),
        )]
        .into_iter()
        .collect(),
    };
    let joined = [record("kept"), record("gone")];
    let unreadable = [(
        "geneve-ovs.ovn-network.bad".to_string(),
        "not JSON".to_string(),
    )];
    let p = removed_ovn_networks(&joined, &unreadable, Ok(&f.saved));
    assert_eq!(kinds(&p), [("switch", "geneve-ovs.gone")]);
    assert_eq!(
        p.steps[0].action,
        Action::RemoveOvnSwitch {
            network: "gone".into(),
            remotes: "tcp:10.99.0.250:6641".into(),
            identity: record("gone").identity,
            record_key: "geneve-ovs.ovn-network.gone".into(),
        }
    );
    assert_eq!(p.kept.len(), 1, "{p:?}");
    assert!(
        p.kept[0].reason.contains("ovs-vsctl remove open ."),
        "{p:?}"
    );
    // Nothing goes while podman's directory cannot be read, or the network's file cannot.
    let p = removed_ovn_networks(&joined, &[], Err("permission denied"));
    assert!(p.steps.is_empty(), "{p:?}");
    assert_eq!(p.kept.len(), 2, "{p:?}");
    f.saved.unreadable.push((
        PathBuf::from("/etc/containers/networks/gone.json"),
        "bad".into(),
    ));
    let p = removed_ovn_networks(&joined, &[], Ok(&f.saved));
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(p.kept[0].reason.contains("cannot be read"), "{p:?}");
}

#[test]
fn an_ovn_gateway_port_goes_once_no_container_of_its_network_is_left_here() {
    let ovn_host = |container_alive: bool| {
        let mut f = Fix::new();
        f.network("net1", "gnv5", 5, &[])
            .gateway("gnv5", "gw5")
            .container("gnv5", "gv0000000000001", NS, container_alive, true)
            .foreign_bridge("br-int");
        // An OVN network's ports sit on OVN's integration bridge.
        let moved: Vec<String> = f.inv.bridges[0].ports.drain(..).collect();
        f.inv.bridges[1].ports.extend(moved);
        if let Some(container) = f.inv.ports.iter_mut().find(|p| p.name.starts_with("gv")) {
            let ids = &mut container.external_ids;
            ids.insert(keys::IFACE_ID.into(), "cid-eth0".into());
            ids.insert(keys::OVN_NB.into(), "tcp:10.99.0.250:6641".into());
        }
        f
    };
    let f = ovn_host(true);
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    assert!(
        !kinds(&p).contains(&("port", "gw5")),
        "a live container keeps the gateway: {p:?}"
    );
    let f = ovn_host(false);
    let p = plan(&f.inv, &f.host, Ok(&f.saved));
    let step = p
        .steps
        .iter()
        .find(|s| s.item.name == "gw5")
        .unwrap_or_else(|| panic!("{p:?}"));
    let gateway = f.inv.ports.iter().find(|p| p.name == "gw5").unwrap();
    assert_eq!(
        step.action,
        Action::RemoveForeignPort {
            bridge: f.inv.bridges[1].uuid.clone(),
            port: gateway.uuid.clone(),
        }
    );
    assert!(step.firewall);
}
