use super::*;
use crate::types::Subnet;
use ipnet::IpNet;

/// Host facts given by the test, counting how often each is asked.
struct FakeHost {
    local: Vec<IpAddr>,
    mtu: BTreeMap<IpAddr, u32>,
    datapaths: Vec<String>,
    routes: Vec<IpNet>,
    asked: usize,
    /// The key files that exist, with their text; `None`: the IPsec software is missing.
    keys: Option<BTreeMap<PathBuf, String>>,
}

impl FakeHost {
    fn new() -> Self {
        FakeHost {
            local: vec!["10.99.0.1".parse().unwrap(), "fd99::1".parse().unwrap()],
            mtu: [
                ("10.99.0.2".parse().unwrap(), 1500),
                ("10.99.0.3".parse().unwrap(), 9000),
                ("fd99::2".parse().unwrap(), 1500),
            ]
            .into_iter()
            .collect(),
            datapaths: vec!["netdev".into(), "system".into()],
            routes: vec!["10.99.0.0/24".parse().unwrap()],
            asked: 0,
            keys: Some(
                [
                    (
                        "/etc/geneve-ovs/net1.psk".into(),
                        "0123456789abcdef0123\n".into(),
                    ),
                    (CERT_FILE.into(), PEM_CERT.into()),
                    (KEY_FILE.into(), PEM_KEY.into()),
                    (CA_FILE.into(), PEM_CERT.into()),
                ]
                .into_iter()
                .collect(),
            ),
        }
    }
}

impl HostFacts for FakeHost {
    fn local_addresses(&mut self) -> Result<Vec<IpAddr>> {
        self.asked += 1;
        Ok(self.local.clone())
    }
    fn underlay_route(&mut self, peer: IpAddr) -> Result<Option<UnderlayRoute>> {
        self.asked += 1;
        let source = if peer.is_ipv4() {
            self.local[0]
        } else {
            self.local[1]
        };
        Ok(self.mtu.get(&peer).map(|&mtu| UnderlayRoute {
            mtu,
            source: Some(source),
        }))
    }
    fn route_destinations(&mut self) -> Result<Vec<IpNet>> {
        self.asked += 1;
        Ok(self.routes.clone())
    }
    fn datapath_types(&mut self) -> Result<Vec<String>> {
        self.asked += 1;
        Ok(self.datapaths.clone())
    }
    fn read_psk(&mut self, path: &Path) -> Result<Psk> {
        self.asked += 1;
        match self.keys.as_ref().and_then(|k| k.get(path)) {
            Some(text) => ipsec::check_key_text(path, text),
            None => bail!(
                "cannot read the key file {} (option psk_file)",
                path.display()
            ),
        }
    }
    fn check_pki_files(&mut self, pki: &HostPki) -> Result<()> {
        self.asked += 1;
        let files = [
            ("cert", &pki.certificate, ipsec::PemKind::Certificate),
            ("key", &pki.private_key, ipsec::PemKind::PrivateKey),
            ("ca", &pki.ca_cert, ipsec::PemKind::Certificate),
        ];
        for (option, path, kind) in files {
            match self.keys.as_ref().and_then(|k| k.get(path.as_path())) {
                Some(text) => ipsec::check_pem_text(option, path, text, kind)?,
                None => bail!("cannot read the file {} (option {option})", path.display()),
            }
        }
        Ok(())
    }
    fn check_ipsec_software(&mut self) -> Result<()> {
        self.asked += 1;
        match self.keys {
            Some(_) => Ok(()),
            None => bail!("encrypt=ipsec needs OVS IPsec: install the package openvswitch-ipsec"),
        }
    }
}

fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn network(pairs: &[(&str, &str)]) -> Network {
    serde_json::from_value(serde_json::json!({
        "name": "net1",
        "id": "2bfb02a84e40f8d1fdaf291c93cb2597f337b867afc9b49d521617fa4834e062",
        "driver": "geneve-ovs",
        "internal": true,
        "dns_enabled": true,
        "ipv6_enabled": false,
        "subnets": [{"subnet": "192.168.120.0/24"}],
        "options": opts(pairs),
    }))
    .unwrap()
}

fn err(pairs: &[(&str, &str)]) -> String {
    format!("{:#}", parse(&opts(pairs)).unwrap_err())
}

#[test]
fn defaults_when_nothing_is_given() {
    let req = parse(&BTreeMap::new()).unwrap();
    assert_eq!(
        req,
        RequestedOptions {
            peers: vec![],
            vni: None,
            mtu: None,
            datapath: None,
            dst_port: 6081,
            local_ip: None,
            bfd: true,
            dad: true,
            dad_timeout_ms: None,
            port_security: true,
            hosts: None,
            encrypt_ipsec: false,
            psk_file: None,
            ovn: vec![],
            cert: None,
            key: None,
            ca: None,
        }
    );
}

#[test]
fn every_option_parses() {
    let req = parse(&opts(&[
        ("peers", "10.99.0.2, fd99::2"),
        ("vni", "16777215"),
        ("mtu", "1400"),
        ("datapath", "netdev"),
        ("dst_port", "6082"),
        ("local_ip", "10.99.0.1"),
        ("bfd", "false"),
        ("dad", "false"),
        ("dad_timeout_ms", "1000"),
        ("port_security", "false"),
    ]))
    .unwrap();
    assert_eq!(
        req.peers,
        vec![
            "10.99.0.2".parse::<IpAddr>().unwrap(),
            "fd99::2".parse().unwrap()
        ]
    );
    assert_eq!(req.vni, Some(16_777_215));
    assert_eq!(req.mtu, Some(1400));
    assert_eq!(req.datapath, Some(Datapath::Netdev));
    assert_eq!(req.dst_port, 6082);
    assert_eq!(req.local_ip, Some("10.99.0.1".parse().unwrap()));
    assert!(!req.bfd);
    assert!(!req.dad);
    assert_eq!(req.dad_timeout_ms, Some(1000));
    assert!(!req.port_security);
}

#[test]
fn bad_values_name_option_and_value() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("vni", "0")],
            r#"invalid option vni="0": must be an integer from 1 to 16777215"#,
        ),
        (&[("vni", "16777216")], r#"vni="16777216""#),
        (&[("vni", "-1")], r#"vni="-1""#),
        (&[("vni", "+5")], r#"vni="+5""#),
        (&[("vni", "")], r#"vni="""#),
        (&[("vni", "99999999999999999999999")], "from 1 to 16777215"),
        (
            &[("mtu", "67")],
            r#"invalid option mtu="67": must be an integer from 68 to 65535"#,
        ),
        (&[("mtu", "65536")], r#"mtu="65536""#),
        (&[("mtu", "1400.5")], r#"mtu="1400.5""#),
        (
            &[("dst_port", "0")],
            r#"invalid option dst_port="0": must be an integer from 1 to 65535"#,
        ),
        (&[("dst_port", "65536")], r#"dst_port="65536""#),
        (
            &[("datapath", "kernel")],
            r#"invalid option datapath="kernel": must be system or netdev"#,
        ),
        (
            &[("peers", "10.99.0.2,banana")],
            r#"invalid option peers="10.99.0.2,banana": "banana" is not an IPv4 or IPv6 address"#,
        ),
        (
            &[("peers", "10.99.0.2,10.99.0.2")],
            "10.99.0.2 is listed twice",
        ),
        (
            &[("peers", "fd99::2, fd99:0::2")],
            "fd99::2 is listed twice",
        ),
        (&[("peers", "10.99.0.2,,10.99.0.3")], "empty entry"),
        (&[("peers", "0.0.0.0")], "unspecified"),
        (&[("peers", "224.0.0.1")], "multicast"),
        (&[("peers", "255.255.255.255")], "broadcast"),
        (&[("peers", "fe80::1")], "link-local"),
        (
            &[("peers", "10.99.0.2/24")],
            r#""10.99.0.2/24" is not an IPv4 or IPv6 address"#,
        ),
        (&[("local_ip", "nope")], r#"invalid option local_ip="nope""#),
        (
            &[("bfd", "yes")],
            r#"invalid option bfd="yes": must be true or false"#,
        ),
        (&[("bfd", "True")], r#"bfd="True""#),
        (&[("bfd", "")], r#"bfd="""#),
        (
            &[("dad", "off")],
            r#"invalid option dad="off": must be true or false"#,
        ),
        (
            &[("dad_timeout_ms", "0")],
            r#"invalid option dad_timeout_ms="0": must be auto or an integer from 1 to 1000"#,
        ),
        (&[("dad_timeout_ms", "1001")], r#"dad_timeout_ms="1001""#),
        (&[("dad_timeout_ms", "Auto")], r#"dad_timeout_ms="Auto""#),
        (
            &[("bogus", "1")],
            r#"unknown option "bogus" (valid options: peers, ovn, vni, mtu, datapath, dst_port, local_ip, bfd, dad, dad_timeout_ms, port_security, hosts, encrypt, psk_file, cert, key, ca)"#,
        ),
    ];
    for (pairs, want) in cases {
        let got = err(pairs);
        assert!(
            got.contains(want),
            "{pairs:?}: {got:?} does not contain {want:?}"
        );
    }
}

#[test]
fn empty_peers_are_allowed() {
    assert!(parse(&opts(&[("peers", "")])).unwrap().peers.is_empty());
    assert!(parse(&opts(&[("peers", "  ")])).unwrap().peers.is_empty());
}

#[test]
fn create_skips_local_peers_and_derives_defaults() {
    let mut host = FakeHost::new();
    let net = network(&[("peers", "10.99.0.1,10.99.0.2,10.99.0.3")]);
    let cfg = resolve(&net, Stage::Create, &mut host).unwrap();
    assert_eq!(
        cfg.peers,
        vec![
            "10.99.0.2".parse::<IpAddr>().unwrap(),
            "10.99.0.3".parse().unwrap()
        ]
    );
    assert_eq!(cfg.vni, naming::default_vni("net1"));
    assert_eq!(cfg.bridge, format!("gnv{}", cfg.vni));
    // The smallest of 1500 and 9000, minus the IPv4 overhead.
    assert_eq!(cfg.mtu, 1450);
    assert_eq!(cfg.datapath, Datapath::System);
    assert_eq!(cfg.dst_port, 6081);
}

#[test]
fn mtu_arithmetic() {
    let mut host = FakeHost::new();
    let v6 = resolve(&network(&[("peers", "fd99::2")]), Stage::Create, &mut host).unwrap();
    assert_eq!(v6.mtu, 1430);
    let jumbo = resolve(
        &network(&[("peers", "10.99.0.3")]),
        Stage::Create,
        &mut host,
    )
    .unwrap();
    assert_eq!(jumbo.mtu, 8950);
    let mixed = resolve(
        &network(&[("peers", "10.99.0.3,fd99::2")]),
        Stage::Create,
        &mut host,
    )
    .unwrap();
    assert_eq!(mixed.mtu, 1430);
    let alone = resolve(&network(&[]), Stage::Create, &mut host).unwrap();
    assert_eq!(alone.mtu, 1450);
    // No route to a peer: assume 1500.
    let unrouted = resolve(
        &network(&[("peers", "10.99.0.9")]),
        Stage::Create,
        &mut host,
    )
    .unwrap();
    assert_eq!(unrouted.mtu, 1450);
}

#[test]
fn explicit_mtu_above_underlay_is_accepted() {
    let mut host = FakeHost::new();
    let cfg = resolve(
        &network(&[("peers", "10.99.0.2"), ("mtu", "9000")]),
        Stage::Create,
        &mut host,
    )
    .unwrap();
    assert_eq!(cfg.mtu, 9000);
}

#[test]
fn ipv6_subnet_needs_mtu_1280() {
    let mut net = network(&[("mtu", "1279")]);
    net.ipv6_enabled = true;
    net.subnets = Some(vec![Subnet {
        subnet: "fd12:3456::/64".parse().unwrap(),
        gateway: None,
        lease_range: None,
        extra: Default::default(),
    }]);
    let e = format!(
        "{:#}",
        resolve(&net, Stage::Create, &mut FakeHost::new()).unwrap_err()
    );
    assert!(
        e.contains(r#"invalid option mtu="1279""#) && e.contains("1280"),
        "{e}"
    );
    net.options = Some(opts(&[("mtu", "1280")]));
    assert_eq!(
        resolve(&net, Stage::Create, &mut FakeHost::new())
            .unwrap()
            .mtu,
        1280
    );
}

#[test]
fn datapath_default_and_check() {
    let mut host = FakeHost::new();
    host.datapaths = vec!["netdev".into()];
    let cfg = resolve(&network(&[]), Stage::Create, &mut host).unwrap();
    assert_eq!(cfg.datapath, Datapath::Netdev);
    let e = format!(
        "{:#}",
        resolve(
            &network(&[("datapath", "system")]),
            Stage::Create,
            &mut host
        )
        .unwrap_err()
    );
    assert!(
        e.contains(r#"datapath="system""#) && e.contains("offers only: netdev"),
        "{e}"
    );
}

#[test]
fn local_ip_rules() {
    let mut host = FakeHost::new();
    let e = format!(
        "{:#}",
        resolve(
            &network(&[("peers", "10.99.0.2"), ("local_ip", "10.99.0.7")]),
            Stage::Create,
            &mut host
        )
        .unwrap_err()
    );
    assert!(
        e.contains(r#"local_ip="10.99.0.7""#) && e.contains("not an address of this host"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        resolve(
            &network(&[("peers", "fd99::2"), ("local_ip", "10.99.0.1")]),
            Stage::Create,
            &mut host
        )
        .unwrap_err()
    );
    assert!(e.contains("other IP family"), "{e}");
    let cfg = resolve(
        &network(&[("peers", "10.99.0.2"), ("local_ip", "10.99.0.1")]),
        Stage::Create,
        &mut host,
    )
    .unwrap();
    assert_eq!(cfg.local_ip, Some("10.99.0.1".parse().unwrap()));
}

#[test]
fn network_rules() {
    let mut host = FakeHost::new();
    let mut net = network(&[]);
    net.subnets = None;
    let e = format!("{:#}", resolve(&net, Stage::Create, &mut host).unwrap_err());
    assert!(e.contains("--subnet"), "{e}");
    let mut net = network(&[]);
    net.ipam_options = Some(opts(&[("driver", "dhcp")]));
    let e = format!("{:#}", resolve(&net, Stage::Create, &mut host).unwrap_err());
    assert!(e.contains("dhcp") && e.contains("--ipam-driver"), "{e}");
}

#[test]
fn interface_name_becomes_bridge_name() {
    let mut host = FakeHost::new();
    let mut net = network(&[]);
    net.network_interface = Some("ovs_net1".into());
    assert_eq!(
        resolve(&net, Stage::Create, &mut host).unwrap().bridge,
        "ovs_net1"
    );
    for bad in ["this-is-too-long0", "a/b", "a b", ".."] {
        net.network_interface = Some(bad.into());
        let e = format!("{:#}", resolve(&net, Stage::Create, &mut host).unwrap_err());
        assert!(e.contains(bad) && e.contains("--interface-name"), "{e}");
    }
}

#[test]
fn saved_options_need_no_host_facts() {
    let mut host = FakeHost::new();
    let cfg = resolve(
        &network(&[("peers", "10.99.0.2")]),
        Stage::Create,
        &mut host,
    )
    .unwrap();
    let mut saved = network(&[]);
    saved.options = Some(cfg.to_options());
    let mut untouched = FakeHost::new();
    let again = resolve(&saved, Stage::Saved, &mut untouched).unwrap();
    assert_eq!(again, cfg);
    assert_eq!(
        untouched.asked, 0,
        "setup must not ask the host what create already resolved"
    );
}

#[test]
fn resolved_options_are_written_back() {
    let mut host = FakeHost::new();
    let cfg = resolve(
        &network(&[
            ("peers", "10.99.0.1,10.99.0.2"),
            ("vni", "42"),
            ("local_ip", "10.99.0.1"),
        ]),
        Stage::Create,
        &mut host,
    )
    .unwrap();
    assert_eq!(
        cfg.to_options(),
        opts(&[
            ("peers", "10.99.0.2"),
            ("vni", "42"),
            ("mtu", "1450"),
            ("datapath", "system"),
            ("dst_port", "6081"),
            ("encrypt", "none"),
            ("local_ip", "10.99.0.1"),
            ("bfd", "true"),
            ("dad", "true"),
            ("dad_timeout_ms", "auto"),
            ("port_security", "true"),
        ])
    );
}

#[test]
fn dad_off_and_timeouts_resolve() {
    let cfg = resolve(
        &network(&[("dad", "false")]),
        Stage::Create,
        &mut FakeHost::new(),
    )
    .unwrap();
    assert_eq!(cfg.dad, None);
    assert_eq!(cfg.to_options()["dad"], "false");
    let cfg = resolve(
        &network(&[("dad_timeout_ms", "7")]),
        Stage::Create,
        &mut FakeHost::new(),
    )
    .unwrap();
    assert_eq!(
        cfg.dad,
        Some(DadWindow::Fixed(std::time::Duration::from_millis(7)))
    );
    // Given, it is written back as given: the saved network keeps its constant window.
    assert_eq!(cfg.to_options()["dad_timeout_ms"], "7");
    // The default is the measured window, saved as `auto` so that later setups measure too.
    for given in [&[][..], &[("dad_timeout_ms", "auto")][..]] {
        let cfg = resolve(&network(given), Stage::Create, &mut FakeHost::new()).unwrap();
        assert_eq!(cfg.dad, Some(DadWindow::Measured));
        assert_eq!(cfg.to_options()["dad_timeout_ms"], "auto");
    }
}

#[test]
fn non_internal_networks_get_a_gateway_per_subnet() {
    let mut net = network(&[]);
    net.internal = false;
    net.subnets = Some(vec![
        Subnet {
            subnet: "192.168.120.0/24".parse().unwrap(),
            gateway: None,
            lease_range: None,
            extra: Default::default(),
        },
        Subnet {
            subnet: "fd12:3456::/64".parse().unwrap(),
            gateway: Some("fd12:3456::fe".parse().unwrap()),
            lease_range: None,
            extra: Default::default(),
        },
    ]);
    fill_gateways(&mut net, false).unwrap();
    assert_eq!(
        net.subnets()[0].gateway,
        Some("192.168.120.1".parse().unwrap())
    );
    assert_eq!(
        net.subnets()[1].gateway,
        Some("fd12:3456::fe".parse().unwrap())
    );
    let cfg = resolve(&net, Stage::Create, &mut FakeHost::new()).unwrap();
    assert!(!cfg.internal);
    assert_eq!(
        cfg.gateways,
        vec![
            "192.168.120.1/24".parse::<IpNet>().unwrap(),
            "fd12:3456::fe/64".parse().unwrap()
        ]
    );
}

#[test]
fn internal_networks_have_no_gateway() {
    let mut net = network(&[]);
    fill_gateways(&mut net, false).unwrap();
    assert_eq!(net.subnets()[0].gateway, None);
    assert!(resolve(&net, Stage::Create, &mut FakeHost::new())
        .unwrap()
        .gateways
        .is_empty());
}

#[test]
fn an_internal_ovn_network_keeps_a_gateway_for_its_dns_server() {
    let mut net = network(&[("ovn", "tcp:10.99.0.250:6641")]);
    fill_gateways(&mut net, true).unwrap();
    assert_eq!(
        net.subnets()[0].gateway,
        Some("192.168.120.1".parse().unwrap())
    );
    let cfg = resolve(&net, Stage::Saved, &mut FakeHost::new()).unwrap();
    assert!(cfg.internal);
    assert_eq!(
        cfg.gateways,
        vec!["192.168.120.1/24".parse::<IpNet>().unwrap()]
    );
}

#[test]
fn gateway_rules() {
    let mut net = network(&[]);
    net.internal = false;
    net.subnets.as_mut().unwrap()[0].gateway = Some("10.0.0.1".parse().unwrap());
    let e = fill_gateways(&mut net, false).unwrap_err().to_string();
    assert!(e.contains("10.0.0.1") && e.contains("--gateway"), "{e}");
    net.subnets.as_mut().unwrap()[0] = Subnet {
        subnet: "192.168.120.7/32".parse().unwrap(),
        gateway: None,
        lease_range: None,
        extra: Default::default(),
    };
    let e = fill_gateways(&mut net, false).unwrap_err().to_string();
    assert!(e.contains("no room for a gateway"), "{e}");
}

/// The network as podman sends it for the user's exact command: no subnet, no range.
fn bare(name: &str, peers: &str) -> Network {
    serde_json::from_value(serde_json::json!({
        "name": name, "id": "x", "driver": "geneve-ovs",
        "internal": false, "dns_enabled": true, "ipv6_enabled": false,
        "options": {"peers": peers},
    }))
    .unwrap()
}

/// The host `me` of an overlay: its own address is 10.99.0.<me>.
fn host(me: u8) -> FakeHost {
    let mut h = FakeHost::new();
    h.local = vec![
        format!("10.99.0.{me}").parse().unwrap(),
        format!("fd99::{me}").parse().unwrap(),
    ];
    for i in 1..=4u8 {
        h.mtu.insert(format!("10.99.0.{i}").parse().unwrap(), 1500);
    }
    h
}

#[test]
fn default_subnet_and_gateway_for_the_bare_command() {
    let mut net = bare("net1", "10.99.0.2");
    complete_network(&mut net, &mut host(1)).unwrap();
    let subnets = net.subnets();
    assert_eq!(subnets.len(), 1);
    assert_eq!(subnets[0].subnet, addressing::default_subnet_v4("net1"));
    let gw = subnets[0].gateway.unwrap();
    assert_eq!(gw, subnets[0].subnet.hosts().next().unwrap());
}

#[test]
fn ipv6_gets_a_default_ula_subnet_too() {
    let mut net = bare("net6", "");
    net.ipv6_enabled = true;
    complete_network(&mut net, &mut host(1)).unwrap();
    let kinds: Vec<bool> = net
        .subnets()
        .iter()
        .map(|s| s.subnet.addr().is_ipv6())
        .collect();
    assert_eq!(kinds, vec![false, true]);
    assert_eq!(
        net.subnets()[1].subnet,
        addressing::default_subnet_v6("net6")
    );
}

#[test]
fn default_subnet_overlapping_a_route_says_pass_subnet() {
    let mut h = host(1);
    h.routes.push("10.100.0.0/14".parse().unwrap());
    let e = format!(
        "{:#}",
        complete_network(&mut bare("net1", ""), &mut h).unwrap_err()
    );
    assert!(e.contains("--subnet") && e.contains("overlaps"), "{e}");
}

#[test]
fn symmetric_commands_give_disjoint_ranges() {
    // The user's exact command mirrored: each host lists the other(s), or all hosts.
    for peers_of in [
        |me: u8| {
            (1..=3u8)
                .filter(|i| *i != me)
                .map(|i| format!("10.99.0.{i}"))
                .collect::<Vec<_>>()
                .join(",")
        },
        |_me: u8| "10.99.0.1,10.99.0.2,10.99.0.3".to_string(),
    ] {
        let mut ranges = Vec::new();
        for me in 1..=3u8 {
            let mut net = bare("net1", &peers_of(me));
            complete_network(&mut net, &mut host(me)).unwrap();
            let lr = net.subnets()[0].lease_range.clone().unwrap();
            ranges.push((
                lr.start_ip.unwrap(),
                lr.end_ip.unwrap(),
                net.subnets()[0].gateway.unwrap(),
            ));
        }
        ranges.sort();
        for w in ranges.windows(2) {
            assert!(w[0].1 < w[1].0, "{ranges:?}");
        }
        for (start, end, gw) in &ranges {
            assert!(!(start..=end).contains(&gw), "{ranges:?}");
        }
    }
}

#[test]
fn explicit_ranges_win_and_lonely_hosts_take_the_whole_subnet() {
    let mut net = network(&[("peers", "10.99.0.2")]);
    net.subnets.as_mut().unwrap()[0].lease_range = Some(LeaseRange {
        start_ip: Some("192.168.120.200".parse().unwrap()),
        end_ip: None,
    });
    let before = net.subnets.clone();
    complete_network(&mut net, &mut host(1)).unwrap();
    assert_eq!(net.subnets, before);
    let mut alone = network(&[]);
    complete_network(&mut alone, &mut host(1)).unwrap();
    assert!(alone.subnets()[0].lease_range.is_none());
}

#[test]
fn with_hosts_a_later_host_joins_without_overlap() {
    // Two hosts first, a third later, all with hosts=4: the first two keep their ranges and the
    // third's is disjoint from both (without hosts, the third would split among three and
    // overlap).
    let range = |me: u8, peers: &str| {
        let mut net = bare("net1", peers);
        net.options
            .get_or_insert_with(Default::default)
            .insert("hosts".into(), "4".into());
        complete_network(&mut net, &mut host(me)).unwrap();
        let lr = net.subnets()[0].lease_range.clone().unwrap();
        (lr.start_ip.unwrap(), lr.end_ip.unwrap())
    };
    let first = range(1, "10.99.0.2");
    let second = range(2, "10.99.0.1");
    let third = range(3, "10.99.0.1,10.99.0.2");
    for (a, b) in [(first, second), (first, third), (second, third)] {
        assert!(!addressing::ranges_overlap(a, b), "{a:?} {b:?}");
    }
    // The first host's range is the same whether or not the third is listed.
    assert_eq!(range(1, "10.99.0.2,10.99.0.3"), first);
}

#[test]
fn with_hosts_colliding_slots_and_an_unknown_self_are_refused() {
    let mut net = bare("net1", "10.99.0.1,10.99.0.5");
    net.options
        .get_or_insert_with(Default::default)
        .insert("hosts".into(), "4".into());
    let e = format!(
        "{:#}",
        complete_network(&mut net, &mut host(1)).unwrap_err()
    );
    assert!(
        e.contains("10.99.0.1") && e.contains("10.99.0.5") && e.contains("slot"),
        "{e}"
    );
    // Alone with hosts: this host must still take only its slot, so it must know its address.
    let mut alone = bare("net1", "");
    alone
        .options
        .get_or_insert_with(Default::default)
        .insert("hosts".into(), "4".into());
    let e = format!(
        "{:#}",
        complete_network(&mut alone, &mut host(1)).unwrap_err()
    );
    assert!(e.contains("local_ip"), "{e}");
    let mut alone = bare("net1", "");
    let options = alone.options.get_or_insert_with(Default::default);
    options.insert("hosts".into(), "4".into());
    options.insert("local_ip".into(), "10.99.0.1".into());
    complete_network(&mut alone, &mut host(1)).unwrap();
    assert!(alone.subnets()[0].lease_range.is_some());
}

const PSK_FILE: &str = "/etc/geneve-ovs/net1.psk";

#[test]
fn ipsec_reads_the_key_and_saves_only_its_path() {
    let net = network(&[
        ("peers", "10.99.0.2"),
        ("encrypt", "ipsec"),
        ("psk_file", PSK_FILE),
    ]);
    let mut host = FakeHost::new();
    let cfg = resolve(&net, Stage::Create, &mut host).unwrap();
    assert_eq!(cfg.datapath, Datapath::System);
    assert_eq!(
        cfg.encryption.psk().map(Psk::expose),
        Some("0123456789abcdef0123")
    );
    // ESP's overhead comes off the MTU: 1500 - 50 - 40.
    assert_eq!(cfg.mtu, 1410);
    let saved = cfg.to_options();
    assert_eq!(saved["encrypt"], "ipsec");
    assert_eq!(saved["psk_file"], PSK_FILE);
    assert!(
        !saved.values().any(|v| v.contains("0123456789abcdef")),
        "{saved:?}"
    );
    // Read back as setup does: the same key, the same MTU.
    let mut again = net.clone();
    again.options = Some(saved);
    assert_eq!(
        resolve(&again, Stage::Saved, &mut FakeHost::new()).unwrap(),
        cfg
    );
    // A clear network says so.
    let clear = resolve(
        &network(&[("peers", "10.99.0.2")]),
        Stage::Create,
        &mut host,
    )
    .unwrap();
    assert_eq!(clear.to_options()["encrypt"], "none");
    assert_eq!(clear.mtu, 1450);
}

#[test]
fn ipsec_is_refused_on_the_userspace_datapath() {
    let mut host = FakeHost::new();
    let explicit = network(&[
        ("encrypt", "ipsec"),
        ("psk_file", PSK_FILE),
        ("datapath", "netdev"),
    ]);
    let err = format!(
        "{:#}",
        resolve(&explicit, Stage::Create, &mut host).unwrap_err()
    );
    assert!(
        err.contains("encrypt") && err.contains("userspace datapath") && err.contains("netdev"),
        "{err}"
    );
    // Also when netdev is all this ovs-vswitchd offers (the default would be netdev).
    host.datapaths = vec!["netdev".into()];
    let default = network(&[("encrypt", "ipsec"), ("psk_file", PSK_FILE)]);
    let err = format!(
        "{:#}",
        resolve(&default, Stage::Create, &mut host).unwrap_err()
    );
    assert!(err.contains("kernel datapath"), "{err}");
}

#[test]
fn ipsec_needs_its_software_a_readable_key_and_port_6081() {
    let mut host = FakeHost::new();
    host.keys = None;
    let net = network(&[("encrypt", "ipsec"), ("psk_file", PSK_FILE)]);
    let err = format!("{:#}", resolve(&net, Stage::Create, &mut host).unwrap_err());
    assert!(err.contains("openvswitch-ipsec"), "{err}");

    let mut host = FakeHost::new();
    let other = network(&[("encrypt", "ipsec"), ("psk_file", "/etc/other.psk")]);
    let err = format!(
        "{:#}",
        resolve(&other, Stage::Create, &mut host).unwrap_err()
    );
    assert!(err.contains("/etc/other.psk"), "{err}");

    for (pairs, needle) in [
        (vec![("encrypt", "ipsec")], "psk_file=PATH"),
        (vec![("psk_file", PSK_FILE)], "only used with encrypt=ipsec"),
        (
            vec![
                ("encrypt", "ipsec"),
                ("psk_file", PSK_FILE),
                ("dst_port", "6082"),
            ],
            "dst_port=6082",
        ),
    ] {
        let err = format!(
            "{:#}",
            resolve(&network(&pairs), Stage::Create, &mut FakeHost::new()).unwrap_err()
        );
        assert!(err.contains(needle), "{pairs:?}: {err}");
    }
    assert!(err_of(&[("encrypt", "wireguard")]).contains("encrypt=\"wireguard\""));
    assert!(err_of(&[("psk_file", "relative.psk")]).contains("absolute path"));
}

fn err_of(pairs: &[(&str, &str)]) -> String {
    err(pairs)
}

#[test]
fn ovn_takes_addresses_and_remotes() {
    let req = parse(&opts(&[(
        "ovn",
        "10.99.0.250, tcp:[fd99::250]:6643,ssl:10.99.0.251:6641,unix:/run/ovn/nb.sock",
    )]))
    .unwrap();
    let remotes: Vec<String> = req.ovn.iter().map(ToString::to_string).collect();
    assert_eq!(
        remotes,
        [
            "tcp:10.99.0.250:6641",
            "tcp:[fd99::250]:6643",
            "ssl:10.99.0.251:6641",
            "unix:/run/ovn/nb.sock"
        ]
    );
}

#[test]
fn bad_ovn_values_name_the_option_and_the_value() {
    for (value, says) in [
        ("", "empty entry"),
        ("10.99.0.1,", "empty entry"),
        ("nb.example", "neither an IP address"),
        ("tcp:10.99.0.1", "is not IP:PORT"),
        ("tcp:fd99::1:6641", "in brackets"),
        ("unix:nb.sock", "absolute socket path"),
        ("ptcp:6641", "listening"),
        ("10.99.0.1,tcp:10.99.0.1:6641", "listed twice"),
    ] {
        let text = err(&[("ovn", value)]);
        assert!(
            text.contains(&format!("invalid option ovn={value:?}")) && text.contains(says),
            "{value:?}: {text}"
        );
    }
}

#[test]
fn ovn_and_peers_exclude_each_other() {
    let text = err(&[("ovn", "10.99.0.250"), ("peers", "10.99.0.2")]);
    assert!(
        text.contains("options ovn and peers exclude each other")
            && text.contains("ovn=\"10.99.0.250\"")
            && text.contains("peers=\"10.99.0.2\""),
        "{text}"
    );
    // An empty peers (what create writes back for a mesh without peers) is no conflict.
    assert!(parse(&opts(&[("ovn", "10.99.0.250"), ("peers", "")])).is_ok());
}

#[test]
fn an_ovn_network_resolves_onto_the_integration_bridge_without_dad() {
    let net = network(&[("ovn", "10.99.0.250,10.99.0.251"), ("vni", "77")]);
    let cfg = resolve(&net, Stage::Create, &mut FakeHost::new()).unwrap();
    assert_eq!(cfg.bridge, OVN_BRIDGE);
    assert_eq!(cfg.dad, None);
    assert!(cfg.peers.is_empty());
    // OVN's GENEVE option (8 bytes) on top of the mesh's 50 over an IPv4 underlay.
    assert_eq!(cfg.mtu, 1442);
    let options = cfg.to_options();
    assert_eq!(
        options.get("ovn").map(String::as_str),
        Some("tcp:10.99.0.250:6641,tcp:10.99.0.251:6641")
    );
    assert!(!options.contains_key("peers"), "{options:?}");
    // What create writes back resolves to the same configuration.
    let mut saved = net.clone();
    saved.options = Some(options);
    assert_eq!(
        resolve(&saved, Stage::Saved, &mut FakeHost::new()).unwrap(),
        cfg
    );
}

#[test]
fn ovn_hosts_take_disjoint_slices_by_their_own_address() {
    // Each host knows only the OVN remote; its slot comes from its own source address.
    let range = |me: u8| {
        let mut net = bare("net1", "");
        let options = net.options.get_or_insert_with(Default::default);
        options.remove("peers");
        options.insert("ovn".into(), "10.99.0.250".into());
        let mut facts = host(me);
        facts.mtu.insert("10.99.0.250".parse().unwrap(), 1500);
        complete_network(&mut net, &mut facts).unwrap();
        let lr = net.subnets()[0].lease_range.clone().unwrap();
        (lr.start_ip.unwrap(), lr.end_ip.unwrap())
    };
    let ranges: Vec<_> = (1..=4).map(range).collect();
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            assert!(!addressing::ranges_overlap(*a, *b), "{a:?} {b:?}");
        }
    }
    // Without a route towards a tcp: remote, nor local_ip, the host cannot tell its slot.
    let mut net = bare("net1", "");
    let options = net.options.get_or_insert_with(Default::default);
    options.remove("peers");
    options.insert("ovn".into(), "unix:/run/nb.sock".into());
    let text = format!(
        "{:#}",
        complete_network(&mut net, &mut host(1)).unwrap_err()
    );
    assert!(text.contains("set local_ip"), "{text}");
}

#[test]
fn ipsec_is_refused_with_ovn() {
    let net = network(&[
        ("ovn", "10.99.0.1"),
        ("encrypt", "ipsec"),
        ("psk_file", PSK_FILE),
    ]);
    let err = format!(
        "{:#}",
        resolve(&net, Stage::Create, &mut FakeHost::new()).unwrap_err()
    );
    assert!(
        err.contains("encrypt=ipsec") && err.contains("ovn=\"10.99.0.1\""),
        "{err}"
    );
}

const CERT_FILE: &str = "/etc/geneve-ovs/host-cert.pem";
const KEY_FILE: &str = "/etc/geneve-ovs/host-privkey.pem";
const CA_FILE: &str = "/etc/geneve-ovs/cacert.pem";
const PEM_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const PEM_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

fn cert_options() -> Vec<(&'static str, &'static str)> {
    vec![
        ("peers", "10.99.0.2"),
        ("encrypt", "ipsec"),
        ("cert", CERT_FILE),
        ("key", KEY_FILE),
        ("ca", CA_FILE),
    ]
}

#[test]
fn ipsec_with_certificates_checks_the_files_and_saves_their_paths() {
    let net = network(&cert_options());
    let cfg = resolve(&net, Stage::Create, &mut FakeHost::new()).unwrap();
    assert_eq!(
        cfg.encryption.host_pki(),
        Some(&HostPki {
            certificate: CERT_FILE.into(),
            private_key: KEY_FILE.into(),
            ca_cert: CA_FILE.into(),
        })
    );
    assert!(cfg.encryption.is_encrypted() && cfg.encryption.psk().is_none());
    assert_eq!(cfg.mtu, 1410);
    let saved = cfg.to_options();
    assert_eq!(
        (
            saved["encrypt"].as_str(),
            saved["cert"].as_str(),
            saved["key"].as_str(),
            saved["ca"].as_str()
        ),
        ("ipsec", CERT_FILE, KEY_FILE, CA_FILE)
    );
    assert!(!saved.contains_key("psk_file"), "{saved:?}");
    let mut again = net.clone();
    again.options = Some(saved);
    assert_eq!(
        resolve(&again, Stage::Saved, &mut FakeHost::new()).unwrap(),
        cfg
    );
}

#[test]
fn ipsec_certificate_options_are_refused_alone_mixed_or_with_bad_files() {
    let with = |extra: &[(&'static str, &'static str)], drop: &[&str]| {
        let mut pairs: Vec<_> = cert_options()
            .into_iter()
            .filter(|(k, _)| !drop.contains(k))
            .collect();
        pairs.extend_from_slice(extra);
        network(&pairs)
    };
    for (net, needles) in [
        // All three together.
        (with(&[], &["ca"]), vec!["cert=", "missing: ca"]),
        (
            with(&[], &["cert", "key"]),
            vec!["ca=", "missing: cert, key"],
        ),
        // Not with a pre-shared key.
        (
            with(&[("psk_file", PSK_FILE)], &[]),
            vec!["psk_file=", "alternatives"],
        ),
        // Only with encrypt=ipsec.
        (
            with(&[], &["encrypt"]),
            vec!["cert=", "only used with encrypt=ipsec"],
        ),
        // On the kernel datapath only.
        (
            with(&[("datapath", "netdev")], &[]),
            vec!["userspace datapath"],
        ),
    ] {
        let err = format!(
            "{:#}",
            resolve(&net, Stage::Create, &mut FakeHost::new()).unwrap_err()
        );
        for needle in needles {
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
    // Files: missing, not PEM, the wrong kind; each error names the option and the file.
    for (path, text, option, needle) in [
        (CERT_FILE, None, "cert", "cannot read"),
        (CA_FILE, Some("hello"), "ca", "not PEM"),
        (CERT_FILE, Some(PEM_KEY), "cert", "no certificate"),
        (KEY_FILE, Some(PEM_CERT), "key", "no private key"),
        (
            KEY_FILE,
            Some("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            "key",
            "encrypted",
        ),
    ] {
        let mut host = FakeHost::new();
        let keys = host.keys.as_mut().unwrap();
        match text {
            Some(text) => keys.insert(path.into(), text.into()),
            None => keys.remove(Path::new(path)),
        };
        let err = format!(
            "{:#}",
            resolve(&network(&cert_options()), Stage::Create, &mut host).unwrap_err()
        );
        assert!(
            err.contains(needle) && err.contains(path) && err.contains(&format!("option {option}")),
            "{path}: {err}"
        );
    }
    assert!(err_of(&[("key", "host.pem")]).contains("absolute path"));
}
