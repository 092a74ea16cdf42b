//! `create` against real OVS: the rows it writes, reconcile, and every refusal leaving nothing.

mod common;

use anyhow::Result;
use common::podman::{self, create, error_of};
use common::{Host, Lab, Underlay};
use serde_json::Value;

const SUBNET: &str = "192.168.120.0/24";

fn peers(lab: &Lab) -> String {
    lab.hosts()
        .iter()
        .map(|h| h.underlay_ip().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn vsctl(host: &Host, args: &[&str]) -> String {
    host.vsctl(args)
        .unwrap_or_else(|e| panic!("ovs-vsctl {args:?}: {e:#}"))
}

/// `ovs-vsctl --format=json` output as (heading -> value) rows.
fn table(host: &Host, table: &str, columns: &str) -> Vec<serde_json::Map<String, Value>> {
    let text = vsctl(
        host,
        &[
            "--format=json",
            "--data=json",
            &format!("--columns={columns}"),
            "list",
            table,
        ],
    );
    let doc: Value = serde_json::from_str(&text).unwrap();
    let headings: Vec<String> = doc["headings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    doc["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            headings
                .iter()
                .cloned()
                .zip(row.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

fn map_get(ovs_map: &Value, key: &str) -> Option<String> {
    ovs_map[1]
        .as_array()?
        .iter()
        .find(|kv| kv[0] == key)
        .map(|kv| kv[1].as_str().unwrap().to_string())
}

fn bridges(host: &Host) -> Vec<String> {
    vsctl(host, &["list-br"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn create_builds_bridge_and_protected_tunnels() -> Result<()> {
    let lab = Lab::new(3, Underlay::V4)?;
    let h1 = lab.host(1);
    // Every host may run the identical command: its own address is skipped.
    let net = podman::network(
        "net1",
        SUBNET,
        Some(("192.168.120.1", "192.168.120.126")),
        &[("peers", &peers(&lab))],
    );
    let saved = create(h1, &net)?;

    let vni = geneve_ovs::naming::default_vni("net1");
    let bridge = format!("gnv{vni}");
    assert_eq!(saved["network_interface"], bridge.as_str());
    assert_eq!(saved["dns_enabled"], false);
    assert_eq!(saved["name"], "net1");
    assert_eq!(saved["id"], net["id"]);
    assert_eq!(saved["driver"], "geneve-ovs");
    assert_eq!(saved["subnets"], net["subnets"]);
    assert_eq!(saved["created"], net["created"]);
    let opts = &saved["options"];
    assert_eq!(opts["peers"], "10.99.0.2,10.99.0.3");
    assert_eq!(opts["vni"], vni.to_string().as_str());
    assert_eq!(opts["mtu"], "1450");
    assert_eq!(
        opts["datapath"], "netdev",
        "this lab's vswitchd offers only netdev"
    );
    assert_eq!(opts["dst_port"], "6081");

    assert!(bridges(h1).contains(&bridge));
    assert_eq!(
        vsctl(h1, &["get", "Bridge", &bridge, "datapath_type"]),
        "netdev"
    );
    assert_eq!(
        vsctl(
            h1,
            &["get", "Bridge", &bridge, "external_ids:geneve-ovs.owner"]
        ),
        "geneve-ovs"
    );
    assert_eq!(
        vsctl(
            h1,
            &["get", "Bridge", &bridge, "external_ids:geneve-ovs.network"]
        ),
        "net1"
    );

    let ports = vsctl(h1, &["list-ports", &bridge]);
    let tunnels: Vec<&str> = ports.lines().filter(|p| p.starts_with("gt")).collect();
    assert_eq!(tunnels.len(), 2, "{ports}");
    let mut remotes = Vec::new();
    for t in &tunnels {
        assert_eq!(vsctl(h1, &["get", "Interface", t, "type"]), "geneve");
        assert_eq!(
            vsctl(h1, &["get", "Interface", t, "options:key"]),
            format!("\"{vni}\"")
        );
        assert_eq!(vsctl(h1, &["get", "Port", t, "protected"]), "true");
        assert_eq!(
            vsctl(
                h1,
                &["get", "Port", t, "external_ids:geneve-ovs.network-id"]
            ),
            format!("\"{}\"", net["id"].as_str().unwrap())
        );
        let ofport: i64 = vsctl(h1, &["get", "Interface", t, "ofport"]).parse()?;
        assert!(ofport > 0, "tunnel {t} has ofport {ofport}");
        remotes.push(vsctl(h1, &["get", "Interface", t, "options:remote_ip"]));
    }
    remotes.sort();
    assert_eq!(remotes, vec!["\"10.99.0.2\"", "\"10.99.0.3\""]);
    Ok(())
}

#[test]
fn create_reconciles_when_run_again() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    let first = podman::network(
        "net1",
        SUBNET,
        None,
        &[("peers", "10.99.0.2,10.99.0.3"), ("vni", "5001")],
    );
    let saved = create(h1, &first)?;
    let bridge = saved["network_interface"].as_str().unwrap().to_string();
    assert_eq!(bridge, "gnv5001");
    let uuids_before = table(h1, "Port", "_uuid,name");

    // The same create again changes nothing.
    create(h1, &first)?;
    assert_eq!(table(h1, "Port", "_uuid,name"), uuids_before);

    // `podman network rm` + `create` with other peers (a new network id): tunnels follow.
    let mut second = podman::network(
        "net1",
        SUBNET,
        None,
        &[("peers", "10.99.0.3,10.99.0.4"), ("vni", "5001")],
    );
    second["id"] = Value::String(podman::id("second incarnation"));
    create(h1, &second)?;
    let remotes: Vec<String> = table(h1, "Interface", "name,options")
        .iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with("gt"))
        .map(|r| map_get(&r["options"], "remote_ip").unwrap())
        .collect();
    let mut remotes = remotes;
    remotes.sort();
    assert_eq!(remotes, vec!["10.99.0.3", "10.99.0.4"]);
    assert_eq!(
        vsctl(
            h1,
            &[
                "get",
                "Bridge",
                &bridge,
                "external_ids:geneve-ovs.network-id"
            ]
        ),
        format!("\"{}\"", second["id"].as_str().unwrap())
    );
    // The tunnel to the peer kept is the same row.
    let kept_name = geneve_ovs::naming::tunnel_port_name(5001, "10.99.0.3".parse()?, None, 6081);
    let kept = uuids_before
        .iter()
        .find(|r| r["name"] == kept_name.as_str());
    assert!(kept.is_some_and(|k| table(h1, "Port", "_uuid,name").contains(k)));

    // A new VNI moves the network to a new bridge; the old one goes.
    let third = podman::network(
        "net1",
        SUBNET,
        None,
        &[("peers", "10.99.0.3"), ("vni", "5002")],
    );
    create(h1, &third)?;
    let brs = bridges(h1);
    assert!(
        brs.contains(&"gnv5002".to_string()) && !brs.contains(&bridge),
        "{brs:?}"
    );
    Ok(())
}

#[test]
fn refusals_leave_ovs_untouched() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    create(
        h1,
        &podman::network("net1", SUBNET, None, &[("vni", "5001")]),
    )?;
    h1.vsctl(&[
        "add-br",
        "foreign",
        "--",
        "set",
        "Bridge",
        "foreign",
        "datapath_type=netdev",
    ])?;
    let before = vsctl(h1, &["show"]);

    let cases: Vec<(Value, &str)> = vec![
        (
            podman::network("net2", SUBNET, None, &[("vni", "5001")]),
            "VNI 5001 is already used on this host by geneve-ovs network \"net1\"",
        ),
        (
            podman::network("net2", SUBNET, None, &[("vni", "0")]),
            "invalid option vni=\"0\"",
        ),
        (
            podman::network("net2", SUBNET, None, &[("mtu", "9"), ("peers", "x")]),
            "invalid option",
        ),
        (
            podman::network("net2", SUBNET, None, &[("colour", "blue")]),
            "unknown option \"colour\"",
        ),
        (
            podman::network("net2", SUBNET, None, &[("peers", "10.99.0.2,10.99.0.2")]),
            "10.99.0.2 is listed twice",
        ),
        (
            podman::network("net2", SUBNET, None, &[("datapath", "system")]),
            "offers only: netdev",
        ),
        // No kernel IPsec on the userspace datapath: refused before anything else is asked.
        (
            podman::network(
                "net2",
                SUBNET,
                None,
                &[
                    ("encrypt", "ipsec"),
                    ("psk_file", "/etc/geneve-ovs/net2.psk"),
                ],
            ),
            "invalid option encrypt=\"ipsec\": needs Open vSwitch's kernel datapath \
             (datapath=system), and this network's is netdev: the userspace datapath",
        ),
        (
            podman::network(
                "net2",
                SUBNET,
                None,
                &[
                    ("encrypt", "ipsec"),
                    ("psk_file", "/etc/geneve-ovs/net2.psk"),
                    ("datapath", "netdev"),
                ],
            ),
            "userspace datapath sends its tunnel packets past the kernel's IPsec",
        ),
        (
            podman::network("net2", SUBNET, None, &[("psk_file", "/etc/net2.psk")]),
            "invalid option psk_file=\"/etc/net2.psk\": it is only used with encrypt=ipsec",
        ),
        // Certificates: refused on the userspace datapath too, and only all three, with
        // encrypt=ipsec, never beside a key file.
        (
            podman::network(
                "net2",
                SUBNET,
                None,
                &[
                    ("encrypt", "ipsec"),
                    ("cert", "/etc/geneve-ovs/host-cert.pem"),
                    ("key", "/etc/geneve-ovs/host-privkey.pem"),
                    ("ca", "/etc/geneve-ovs/cacert.pem"),
                    ("datapath", "netdev"),
                ],
            ),
            "userspace datapath sends its tunnel packets past the kernel's IPsec",
        ),
        (
            podman::network(
                "net2",
                SUBNET,
                None,
                &[("cert", "/etc/geneve-ovs/host-cert.pem")],
            ),
            "invalid option cert=\"/etc/geneve-ovs/host-cert.pem\": it is only used with \
             encrypt=ipsec",
        ),
        (
            podman::network(
                "net2",
                SUBNET,
                None,
                &[("local_ip", "10.99.0.77"), ("peers", "10.99.0.2")],
            ),
            "local_ip=\"10.99.0.77\"",
        ),
        (
            {
                let mut n = podman::network("net2", SUBNET, None, &[]);
                n["network_interface"] = "foreign".into();
                n
            },
            "not created by geneve-ovs",
        ),
        (
            {
                let mut n = podman::network("net2", SUBNET, None, &[]);
                n["network_interface"] = "gnv5001".into();
                n
            },
            "belongs to geneve-ovs network \"net1\"",
        ),
        (
            {
                let mut n = podman::network("net2", SUBNET, None, &[]);
                n["network_interface"] = "much-too-long-name".into();
                n
            },
            "--interface-name",
        ),
    ];
    for (net, want) in cases {
        let out = h1.plugin(&["create"], &net.to_string());
        let err = error_of(&out)?;
        assert!(
            err.contains(want),
            "{net}: {err:?} does not contain {want:?}"
        );
    }
    for garbage in ["", "not json", "{}", "[1,2]", "{\"name\":1}", "\u{0}\u{1}"] {
        let err = error_of(&h1.plugin(&["create"], garbage))?;
        assert!(err.contains("stdin"), "{garbage:?}: {err}");
    }
    let err = error_of(&h1.plugin(&["setup"], "{}"))?;
    assert!(err.contains("netns path"), "{err}");
    assert_eq!(vsctl(h1, &["show"]), before, "a refused create changed OVS");
    Ok(())
}

/// On a host whose ovs-vswitchd offers the kernel datapath but that lacks OVS IPsec (this
/// machine: no openvswitch-ipsec), `encrypt=ipsec` is refused naming the package, before any
/// row or firewall rule is made.
#[test]
fn encrypt_without_ovs_ipsec_names_the_package_and_leaves_nothing() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    h1.stop_vswitchd()?;
    h1.start_vswitchd_offering_system()?;
    let before = vsctl(h1, &["show"]);
    let net = podman::network(
        "enc",
        SUBNET,
        None,
        &[
            ("encrypt", "ipsec"),
            ("psk_file", "/etc/geneve-ovs/enc.psk"),
            ("peers", "10.99.0.2"),
        ],
    );
    let err = error_of(&h1.plugin(&["create"], &net.to_string()))?;
    assert!(
        err.contains("encrypt=ipsec needs") && err.contains("openvswitch-ipsec"),
        "{err}"
    );
    assert_eq!(vsctl(h1, &["show"]), before, "a refused create changed OVS");
    let tables = h1.exec_ok("nft", &["list", "tables"])?;
    assert!(!tables.contains("geneve_ovs"), "{tables}");
    Ok(())
}

#[test]
fn ovs_down_gives_a_clear_error_and_leaves_nothing() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    let net = podman::network(
        "net1",
        SUBNET,
        None,
        &[("peers", "10.99.0.2"), ("datapath", "netdev")],
    );

    h1.stop_vswitchd()?;
    let started = std::time::Instant::now();
    let err = error_of(&h1.plugin(&["create"], &net.to_string()))?;
    let took = started.elapsed();
    assert!(
        err.contains("ovs-vswitchd did not apply") && err.contains("db.sock"),
        "{err}"
    );
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    assert_eq!(
        bridges(h1),
        vec!["br-phy".to_string()],
        "the half-made bridge was not undone"
    );

    h1.stop_ovsdb()?;
    let err = error_of(&h1.plugin(&["create"], &net.to_string()))?;
    assert!(
        err.contains("cannot connect to the OVSDB server at unix:") && err.contains("db.sock"),
        "{err}"
    );
    Ok(())
}
