use super::*;
use crate::operate::fixture::Fix;

const NS: &str = "/run/netns/netns-1";

fn healthy() -> Fix {
    let mut f = Fix::new();
    f.network("net1", "gnv5", 5, &["10.99.0.2", "10.99.0.3"])
        .tunnel("gnv5", "10.99.0.2", Some("up"), None)
        .tunnel("gnv5", "10.99.0.3", Some("up"), None)
        .container("gnv5", "gv0000000000001", NS, true, true);
    f
}

#[test]
fn a_healthy_network() {
    let f = healthy();
    let r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    assert!(r.healthy());
    let net = &r.networks[0];
    assert_eq!(net.name, "net1");
    assert_eq!(net.bridge.as_deref(), Some("gnv5"));
    assert_eq!(net.vni, Some(5));
    assert_eq!(net.mtu, Some(1450));
    assert_eq!(net.podman_config, "found");
    assert_eq!(net.tunnels.len(), 2);
    assert_eq!(net.tunnels[0].state, "up");
    assert_eq!(net.tunnels[0].rx_packets, Some(10));
    let c = &net.containers[0];
    assert_eq!(c.state, "ok");
    assert_eq!(c.name.as_deref(), Some("ctr-gv0000000000001"));
    assert_eq!(c.mac.as_deref(), Some("0a:58:c0:a8:78:05"));
    let text = render(&r);
    assert!(text.contains("ovs-vswitchd: running (pid 42)"), "{text}");
    assert!(text.contains("2 tunnel(s), none down"), "{text}");
    assert!(text.contains("ctr-gv0000000000001"), "{text}");
}

#[test]
fn down_disabled_missing_and_broken_tunnels() {
    let mut f = Fix::new();
    f.network(
        "net1",
        "gnv5",
        5,
        &[
            "10.99.0.2",
            "10.99.0.3",
            "10.99.0.4",
            "10.99.0.5",
            "10.99.0.6",
        ],
    )
    .tunnel("gnv5", "10.99.0.2", Some("down"), None)
    .tunnel("gnv5", "10.99.0.3", None, None)
    .tunnel(
        "gnv5",
        "10.99.0.4",
        Some("up"),
        Some("could not set up tunnel"),
    )
    .tunnel("gnv5", "10.99.0.5", Some(""), None);
    let r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    let t = &r.networks[0].tunnels;
    let by_peer = |p: &str| t.iter().find(|x| x.peer == p).unwrap();
    assert_eq!(
        (
            by_peer("10.99.0.2").state,
            by_peer("10.99.0.2").bfd.as_str()
        ),
        ("down", "down")
    );
    assert_eq!(
        (
            by_peer("10.99.0.3").state,
            by_peer("10.99.0.3").bfd.as_str()
        ),
        ("unknown", "disabled")
    );
    assert_eq!(by_peer("10.99.0.4").state, "down");
    assert_eq!(
        by_peer("10.99.0.4").error.as_deref(),
        Some("could not set up tunnel")
    );
    assert_eq!(
        (
            by_peer("10.99.0.5").state,
            by_peer("10.99.0.5").bfd.as_str()
        ),
        ("down", "pending")
    );
    let missing = by_peer("10.99.0.6");
    assert_eq!((missing.state, missing.port.as_deref()), ("down", None));
    assert_eq!(r.tunnels_down, 4);
    assert!(!r.healthy());
    assert!(render(&r).contains("4 of 5 tunnel(s) DOWN"));
}

#[test]
fn vswitchd_down_makes_every_tunnel_down_whatever_ovsdb_remembers() {
    let mut f = healthy();
    f.host.vswitchd = Some(Vswitchd::NotRunning {
        why: "no pidfile".into(),
    });
    let r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    assert!(!r.vswitchd.running);
    assert_eq!(r.tunnels_down, 2);
    assert_eq!(r.networks[0].tunnels[0].bfd, "unknown");
    assert!(render(&r).contains("NOT RUNNING (no pidfile)"));
}

#[test]
fn stale_and_broken_containers() {
    let mut f = healthy();
    f.container("gnv5", "gv0000000000002", "/run/netns/gone", false, false)
        .container("gnv5", "gv0000000000003", NS, true, false);
    let r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    let c = &r.networks[0].containers;
    let by_port = |p: &str| c.iter().find(|x| x.port == p).unwrap();
    assert_eq!(by_port("gv0000000000002").state, "stale");
    assert!(by_port("gv0000000000002")
        .problem
        .as_ref()
        .unwrap()
        .contains("/run/netns/gone"));
    assert_eq!(by_port("gv0000000000003").state, "stale");
    assert!(by_port("gv0000000000003")
        .problem
        .as_ref()
        .unwrap()
        .contains("veth"));
    // Containers do not make the exit code fail: tunnels do.
    assert!(r.healthy());
    assert!(render(&r).contains("2 stale container port(s)"));
}

#[test]
fn networks_podman_forgot_or_ovs_lost() {
    let mut f = healthy();
    f.network("old", "gnv6", 6, &[]).forget("old");
    f.saved.networks.push(crate::netconf::SavedNetwork {
        name: "lost".into(),
        id: "net-lost".into(),
        network_interface: Some("gnv7".into()),
        options: [
            ("peers".to_string(), "10.99.0.9".to_string()),
            ("vni".to_string(), "7".to_string()),
        ]
        .into_iter()
        .collect(),
        file: "/etc/containers/networks/lost.json".into(),
    });
    let r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    let names: Vec<&str> = r.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["lost", "net1", "old"]);
    assert_eq!(r.networks[2].podman_config, "missing");
    let lost = &r.networks[0];
    assert!(!lost.bridge_present);
    assert_eq!(lost.vni, Some(7));
    assert_eq!(lost.tunnels[0].state, "down");
    assert!(render(&r).contains("gnv7 (MISSING in OVS)"));

    let unknown = build(&f.inv, &f.host, None, None).unwrap();
    assert!(unknown
        .networks
        .iter()
        .all(|n| n.podman_config == "unknown"));
}

#[test]
fn one_network_by_name_or_bridge() {
    let mut f = healthy();
    f.network("net2", "gnv9", 9, &[]);
    let r = build(&f.inv, &f.host, Some(&f.saved), Some("net2")).unwrap();
    assert_eq!(r.networks.len(), 1);
    let r = build(&f.inv, &f.host, Some(&f.saved), Some("gnv5")).unwrap();
    assert_eq!(r.networks[0].name, "net1");
    let e = build(&f.inv, &f.host, Some(&f.saved), Some("nope")).unwrap_err();
    assert!(e.to_string().contains("no geneve-ovs network \"nope\""));
}

#[test]
fn json_shape() {
    let f = healthy();
    let r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["vswitchd"]["running"], true);
    assert_eq!(v["networks"][0]["tunnels"][0]["state"], "up");
    assert_eq!(v["networks"][0]["containers"][0]["interface"], "eth0");
    assert_eq!(v["tunnels_down"], 0);
}

#[test]
fn empty_host() {
    let f = Fix::new();
    let r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    assert!(r.networks.is_empty());
    assert!(render(&r).contains("no geneve-ovs networks on this host"));
}

#[test]
fn missing_port_security_flows_are_reported_and_unhealthy() {
    let f = healthy();
    let mut r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    assert_eq!(r.networks[0].containers[0].flows, "unknown");
    let base = crate::flows::base_cookie(5);
    let port = crate::flows::port_cookie("gv0000000000001");

    let mut tables = BTreeMap::new();
    tables.insert(
        "gnv5".to_string(),
        Ok(BTreeMap::from([(base, 3), (port, 20)])),
    );
    r.check_flows(&tables);
    assert_eq!(r.networks[0].containers[0].flows, "present");
    assert_eq!(r.flows_missing, 0);
    assert!(r.healthy());

    // The port's own flows gone, or only the base flows gone: missing either way.
    for counts in [BTreeMap::from([(base, 3)]), BTreeMap::from([(port, 20)])] {
        tables.insert("gnv5".to_string(), Ok(counts));
        r.check_flows(&tables);
        assert_eq!(r.networks[0].containers[0].flows, "missing");
        assert_eq!(r.flows_missing, 1);
        assert!(!r.healthy());
        let text = render(&r);
        assert!(
            text.contains("1 container port(s) WITHOUT their port-security flows"),
            "{text}"
        );
    }

    // A table that could not be read says nothing either way.
    tables.insert("gnv5".to_string(), Err("no socket".to_string()));
    r.check_flows(&tables);
    assert_eq!(r.networks[0].containers[0].flows, "unknown");
    assert!(r.healthy());
}

#[test]
fn a_bridge_geneve_ovs_did_not_create_is_not_a_network() {
    let mut f = healthy();
    f.foreign_bridge("br-ext");
    let r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    assert!(r.healthy());
    let names: Vec<_> = r.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["net1"]);
}

/// `healthy()` with both tunnels of an encrypted network; the one to 10.99.0.3 lost its key.
fn encrypted() -> Fix {
    let mut f = healthy();
    for port in f.inv.ports.iter_mut().filter(|p| p.name.starts_with("gt")) {
        port.external_ids.insert(
            crate::ovs::schema::keys::ENCRYPT.to_string(),
            "ipsec".into(),
        );
    }
    for iface in f.inv.interfaces.iter_mut().filter(|i| i.name == "gt109902") {
        iface
            .options
            .insert("psk".into(), "0123456789abcdef".into());
    }
    f
}

fn esp(src: &str, dst: &str) -> EspState {
    EspState {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        spi: 7,
    }
}

#[test]
fn encrypted_tunnels_need_their_security_associations() {
    let f = encrypted();
    let mut r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    assert!(r.has_encrypted_tunnels());
    // Both ways for 10.99.0.2, one way only for 10.99.0.3.
    let states = vec![
        esp("10.99.0.1", "10.99.0.2"),
        esp("10.99.0.2", "10.99.0.1"),
        esp("10.99.0.1", "10.99.0.3"),
    ];
    r.check_encryption(&Ok(states), &Ok(()));
    let t = &r.networks[0].tunnels;
    assert_eq!(t[0].peer, "10.99.0.2");
    assert_eq!(
        (t[0].state, t[0].ipsec.as_deref()),
        ("up", Some("established"))
    );
    assert_eq!(t[1].state, "down");
    assert_eq!(t[1].ipsec.as_deref(), Some("one-way"));
    let error = t[1].error.as_deref().unwrap_or_default();
    assert!(error.contains("options:psk"), "{error}");
    assert_eq!(r.tunnels_down, 1);
    assert!(!r.healthy());
    let text = render(&r);
    assert!(
        text.contains("ipsec established") && text.contains("ipsec one-way"),
        "{text}"
    );

    // No SA at all, or the kernel's state unreadable: down, saying why.
    let mut r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    r.check_encryption(&Ok(vec![]), &Ok(()));
    let error = r.networks[0].tunnels[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("no security association with 10.99.0.2"),
        "{error}"
    );
    assert_eq!(r.tunnels_down, 2);
    // Without the IKE daemon on this host, the error says that is why.
    let mut r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    r.check_encryption(
        &Ok(vec![]),
        &Err("encrypt=ipsec needs the IKE daemon running".into()),
    );
    let error = r.networks[0].tunnels[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("IPsec: no security association with 10.99.0.2")
            && error.contains("this host cannot make one: encrypt=ipsec needs the IKE daemon"),
        "{error}"
    );
    assert_eq!(r.tunnels_down, 2);
    let mut r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    r.check_encryption(&Err("ip: not found".into()), &Ok(()));
    assert_eq!(r.networks[0].tunnels[0].ipsec.as_deref(), Some("unknown"));
    assert_eq!(r.tunnels_down, 2);

    // A clear network's tunnels are left alone.
    let f = healthy();
    let mut r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
    assert!(!r.has_encrypted_tunnels());
    r.check_encryption(&Ok(vec![]), &Ok(()));
    assert!(r.healthy());
    assert_eq!(r.networks[0].tunnels[0].ipsec, None);
}

mod ovn {
    use super::*;
    use crate::operate::status::ovn_view::NorthboundRead;
    use crate::ovn::host::Chassis;
    use crate::ovn::northbound::Member;
    use crate::ovn::schema::{ids, SwitchPortRow, SwitchRow};
    use crate::ovs::schema::{keys, OWNER};

    const PORT: &str = "gv0000000000001";
    const LOGICAL: &str = "gv0000000000001-container-id-0123456789-eth0";

    fn fix() -> Fix {
        let mut f = Fix::new();
        f.ovn_network("onet").ovn_container("onet", PORT, NS);
        f
    }

    fn lsp(name: &str, up: Option<bool>, chassis: &str) -> SwitchPortRow {
        SwitchPortRow {
            uuid: format!("u-{name}"),
            name: name.into(),
            kind: String::new(),
            addresses: vec![],
            up,
            external_ids: [
                (keys::OWNER.to_string(), OWNER.to_string()),
                (ids::CHASSIS.to_string(), chassis.to_string()),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn host_view(controller: Result<&str, &str>, bound_to: Option<&str>) -> OvnHostView {
        OvnHostView {
            chassis: Ok(Chassis {
                name: "chassis-1".into(),
                bridge: "br-int".into(),
            }),
            controller: controller.map(str::to_string).map_err(str::to_string),
            bindings: Ok([(LOGICAL.to_string(), bound_to.map(str::to_string))]
                .into_iter()
                .collect()),
        }
    }

    fn nb_view(ports: Vec<SwitchPortRow>) -> OvnNetworkView {
        let switch = SwitchRow {
            uuid: "s".into(),
            name: "geneve-ovs.onet".into(),
            external_ids: BTreeMap::new(),
            ports: ports.iter().map(|p| p.uuid.clone()).collect(),
            dns_records: vec![],
            acls: vec![],
        };
        OvnNetworkView {
            members: vec![
                Member {
                    remote: "tcp:10.99.0.1:6641".into(),
                    role: "follower",
                    error: None,
                },
                Member {
                    remote: "tcp:10.99.0.2:6641".into(),
                    role: "leader",
                    error: None,
                },
            ],
            northbound: Ok(NorthboundRead {
                remote: "tcp:10.99.0.2:6641".into(),
                switch: Some(switch),
                ports,
                conflict: None,
            }),
        }
    }

    fn healthy_ports() -> Vec<SwitchPortRow> {
        vec![
            lsp(LOGICAL, Some(true), "chassis-1"),
            lsp("other-eth0", Some(true), "chassis-2"),
        ]
    }

    fn report(host: &OvnHostView, view: OvnNetworkView) -> StatusReport {
        let f = fix();
        let mut r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
        r.apply_ovn(host, &[("onet".to_string(), view)].into_iter().collect());
        r
    }

    #[test]
    fn a_healthy_ovn_host_shows_chassis_binding_up_and_the_leader() {
        let r = report(
            &host_view(Ok("connected"), Some("chassis-1")),
            nb_view(healthy_ports()),
        );
        assert!(r.healthy(), "{r:?}");
        let net = &r.networks[0];
        let ovn = net.ovn.as_ref().unwrap();
        assert_eq!(ovn.switch_state, "present");
        assert_eq!(ovn.leader.as_deref(), Some("tcp:10.99.0.2:6641"));
        assert_eq!(ovn.chassis, ["chassis-1", "chassis-2"]);
        assert!(net.tunnels.is_empty());
        let c = &net.containers[0];
        assert_eq!(c.flows, "ovn");
        let port = c.ovn.as_ref().unwrap();
        assert_eq!(
            (port.logical_port.as_str(), port.up, port.binding),
            (LOGICAL, Some(true), "here")
        );
        let text = render(&r);
        for says in [
            "ovn-controller (chassis chassis-1): connected to the southbound database",
            "northbound: tcp:10.99.0.2:6641 (leader)",
            "switch geneve-ovs.onet (present), chassis: chassis-1, chassis-2",
            "here (chassis-1)",
        ] {
            assert!(text.contains(says), "{says}:\n{text}");
        }
        assert!(!text.contains("MISSING"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ovn"]["southbound"], "connected");
        assert_eq!(
            json["networks"][0]["containers"][0]["ovn"]["binding"],
            "here"
        );
    }

    #[test]
    fn a_disconnected_controller_is_a_problem_named_with_why() {
        for (controller, says) in [
            (Ok("not connected"), "NOT CONNECTED (not connected)"),
            (
                Err("ovn-controller does not answer"),
                "NOT CONNECTED (unknown): ovn-controller does not answer",
            ),
        ] {
            let r = report(
                &host_view(controller, Some("chassis-1")),
                nb_view(healthy_ports()),
            );
            assert!(!r.healthy());
            let text = render(&r);
            assert!(text.contains(says), "{says}:\n{text}");
            assert!(text.contains("this host is NOT CONNECTED to OVN"), "{text}");
        }
    }

    #[test]
    fn an_unreachable_northbound_database_is_a_problem() {
        let view = OvnNetworkView {
            members: vec![Member {
                remote: "tcp:10.99.0.250:6641".into(),
                role: "unreachable",
                error: Some("connection refused".into()),
            }],
            northbound: Err("cannot reach the OVN northbound database".into()),
        };
        let r = report(&host_view(Ok("connected"), Some("chassis-1")), view);
        assert!(!r.healthy());
        let ovn = r.networks[0].ovn.as_ref().unwrap();
        assert_eq!(ovn.switch_state, "unknown");
        assert_eq!(ovn.leader, None);
        let text = render(&r);
        assert!(text.contains("northbound: NOT REACHABLE"), "{text}");
        assert!(
            text.contains("PROBLEM: cannot reach the OVN northbound database"),
            "{text}"
        );
    }

    #[test]
    fn a_port_down_elsewhere_or_missing_is_a_problem() {
        let down = vec![lsp(LOGICAL, Some(false), "chassis-1")];
        let r = report(&host_view(Ok("connected"), None), nb_view(down));
        assert!(!r.healthy());
        let port = r.networks[0].containers[0].ovn.clone().unwrap();
        assert_eq!(port.binding, "unbound");
        assert!(port
            .problem
            .unwrap()
            .contains("not report its logical port up"));

        let r = report(
            &host_view(Ok("connected"), Some("chassis-2")),
            nb_view(healthy_ports()),
        );
        assert!(!r.healthy());
        let port = r.networks[0].containers[0].ovn.clone().unwrap();
        assert_eq!(port.binding, "elsewhere");
        assert!(port.problem.unwrap().contains("bound to chassis chassis-2"));

        let r = report(
            &host_view(Ok("connected"), Some("chassis-1")),
            nb_view(vec![lsp("other-eth0", Some(true), "chassis-2")]),
        );
        assert!(!r.healthy());
        let port = r.networks[0].containers[0].ovn.clone().unwrap();
        assert_eq!(port.binding, "missing");
    }

    #[test]
    fn a_missing_switch_without_containers_is_no_problem_and_mesh_reports_keep_their_shape() {
        let mut f = Fix::new();
        f.ovn_network("onet");
        let mut r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
        let mut view = nb_view(vec![]);
        if let Ok(read) = &mut view.northbound {
            read.switch = None;
        }
        r.apply_ovn(
            &host_view(Ok("connected"), None),
            &[("onet".to_string(), view)].into_iter().collect(),
        );
        assert!(r.healthy(), "{r:?}");
        assert_eq!(r.networks[0].ovn.as_ref().unwrap().switch_state, "missing");

        let f = healthy();
        let mut r = build(&f.inv, &f.host, Some(&f.saved), None).unwrap();
        r.apply_ovn(&host_view(Err("not running"), None), &BTreeMap::new());
        assert!(r.healthy());
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("ovn").is_none(), "{json}");
        assert!(json["networks"][0].get("ovn").is_none(), "{json}");
    }
}
