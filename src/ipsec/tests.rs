use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_key_is_never_printed() {
    let psk = check_key_text(Path::new("/k"), "correct horse battery staple\n").unwrap();
    assert_eq!(psk.expose(), "correct horse battery staple");
    let shown = format!(
        "{:?} {:?}",
        psk,
        Encryption::IpsecPsk {
            psk_file: "/k".into(),
            psk: psk.clone()
        }
    );
    assert!(!shown.contains("horse"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
}

fn psk(file: &Path) -> Credentials<'_> {
    Credentials {
        psk_file: Some(file),
        ..Credentials::default()
    }
}

#[test]
fn encryption_options_are_checked_together() {
    let file = Path::new("/etc/geneve-ovs/net1.psk");
    assert_eq!(
        from_options(false, Credentials::default(), 6081).unwrap(),
        Requested::None
    );
    assert_eq!(
        from_options(true, psk(file), 6081).unwrap(),
        Requested::IpsecPsk {
            psk_file: file.into()
        }
    );
    let err = from_options(true, Credentials::default(), 6081)
        .unwrap_err()
        .to_string();
    assert!(err.contains("encrypt") && err.contains("psk_file"), "{err}");
    let err = from_options(false, psk(file), 6081)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("psk_file") && err.contains(file.to_str().unwrap()),
        "{err}"
    );
    let err = from_options(true, psk(file), 7000).unwrap_err().to_string();
    assert!(err.contains("dst_port") && err.contains("7000"), "{err}");
}

#[test]
fn key_files_others_can_read_are_refused() {
    let p = Path::new("/etc/k");
    assert!(check_key_file_metadata("psk_file", p, true, 0, 0o100600, 0).is_ok());
    assert!(check_key_file_metadata("psk_file", p, true, 0, 0o100400, 0).is_ok());
    for (mode, what) in [(0o100644, "0644"), (0o100640, "0640"), (0o100606, "0606")] {
        let err = check_key_file_metadata("psk_file", p, true, 0, mode, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/k") && err.contains(what), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
    }
    let err = check_key_file_metadata("psk_file", p, true, 1000, 0o100600, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("uid 1000"), "{err}");
    assert!(check_key_file_metadata("psk_file", p, false, 0, 0o040700, 0).is_err());
}

#[test]
fn key_text_is_one_printable_line() {
    let p = Path::new("/k");
    assert!(check_key_text(p, "0123456789abcdef").is_ok());
    assert!(check_key_text(p, "0123456789abcdef\r\n").is_ok());
    for bad in [
        "",
        "\n",
        "short",
        "0123456789abcdef\nsecond line",
        "0123456789\"abcdef",
        "0123456789abcdef\u{7f}",
    ] {
        let err = check_key_text(p, bad).unwrap_err().to_string();
        assert!(err.contains("/k"), "{bad:?}: {err}");
        assert!(!err.contains("0123456789"), "the key leaks: {err}");
    }
    assert!(check_key_text(p, &"x".repeat(MAX_PSK_LEN + 1)).is_err());
}

#[test]
fn read_psk_checks_the_file_first() {
    let dir = std::env::temp_dir().join(format!("geneve-ovs-psk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("net.psk");
    std::fs::write(&file, "0123456789abcdef0123\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = read_psk(&file).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_psk(&file).unwrap().expose(), "0123456789abcdef0123");
    let missing = dir.join("missing.psk");
    let err = format!("{:#}", read_psk(&missing).unwrap_err());
    assert!(
        err.contains("missing.psk") && err.contains("psk_file"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_software_names_the_package() {
    let dir = std::env::temp_dir().join(format!("geneve-ovs-ipsec-root-{}", std::process::id()));
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let err = check_software(&dir, &run).unwrap_err().to_string();
    assert!(err.contains("openvswitch-ipsec"), "{err}");
    let script = dir.join(MONITOR_SCRIPT);
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(&script, "").unwrap();
    let err = check_software(&dir, &run).unwrap_err().to_string();
    assert!(err.contains("strongswan-starter"), "{err}");
    let ike = dir.join(IKE_COMMAND);
    std::fs::create_dir_all(ike.parent().unwrap()).unwrap();
    std::fs::write(&ike, "").unwrap();
    let err = check_software(&dir, &run).unwrap_err().to_string();
    assert!(
        err.contains("ovs-monitor-ipsec") && err.contains("pid"),
        "{err}"
    );
    // A pidfile of a process that is gone is no monitor.
    std::fs::write(run.join(MONITOR_PIDFILE), "999999999\n").unwrap();
    assert!(check_software(&dir, &run).is_err());
    std::fs::write(
        run.join(MONITOR_PIDFILE),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    // The monitor alone is not enough: the IKE daemon must run too.
    let err = check_software(&dir, &run).unwrap_err().to_string();
    assert!(
        err.contains("IKE daemon running")
            && err.contains("charon")
            && err.contains("/var/run/charon.pid")
            && err.contains("pluto"),
        "{err}"
    );
    let charon = dir.join(IKE_DAEMON_PIDFILES[0].0);
    std::fs::create_dir_all(charon.parent().unwrap()).unwrap();
    std::fs::write(&charon, "999999999\n").unwrap();
    assert!(check_software(&dir, &run).is_err());
    std::fs::write(&charon, format!("{}\n", std::process::id())).unwrap();
    check_software(&dir, &run).unwrap();
    // Libreswan's pluto does as well.
    std::fs::remove_file(&charon).unwrap();
    let pluto = dir.join(IKE_DAEMON_PIDFILES[1].0);
    std::fs::create_dir_all(pluto.parent().unwrap()).unwrap();
    std::fs::write(&pluto, format!("{}\n", std::process::id())).unwrap();
    check_software(&dir, &run).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

const XFRM_STATE: &str = "\
src 10.99.0.1 dst 10.99.0.2
\tproto esp spi 0xc662efd8 reqid 2 mode transport
\treplay-window 0 
\taead rfc4106(gcm(aes)) 0x0011223344 128
\tanti-replay context: seq 0x0, oseq 0x11, bitmap 0x00000000
\tsel src 10.99.0.1/32 dst 10.99.0.2/32 proto udp dport 6081 
src 10.99.0.3 dst 10.99.0.1
\tproto esp spi 0x00000000 reqid 4 mode transport
\treplay-window 0 
\tsel src 10.99.0.3/32 dst 10.99.0.1/32 proto udp sport 35628 dport 6081 
src 10.99.0.2 dst 10.99.0.1
\tproto esp spi 0xcca4ca37 reqid 1 mode transport
\tsel src 10.99.0.2/32 dst 10.99.0.1/32 proto udp dport 6081 
src 10.99.0.1 dst 10.99.0.4
\tproto esp spi 0x0000abcd reqid 6 mode transport
";

#[test]
fn security_associations_are_read_per_peer() {
    let states = parse_xfrm_state(XFRM_STATE);
    assert_eq!(states.len(), 3, "{states:?}");
    assert_eq!(states[0].spi, 0xc662efd8);
    assert_eq!(
        peer_security(&states, ip("10.99.0.2")),
        PeerSecurity::Established
    );
    // A larval state (SPI 0, the kernel waiting for IKE) is no association.
    assert_eq!(
        peer_security(&states, ip("10.99.0.3")),
        PeerSecurity::NoSecurityAssociation
    );
    assert_eq!(
        peer_security(&states, ip("10.99.0.4")),
        PeerSecurity::OneWay
    );
    assert_eq!(
        peer_security(&states, ip("10.99.0.9")),
        PeerSecurity::NoSecurityAssociation
    );
    assert!(parse_xfrm_state("").is_empty());
}

#[test]
fn certificate_options_come_all_three_and_never_with_a_key_file() {
    let (cert, key, ca) = (
        Path::new("/etc/c.pem"),
        Path::new("/etc/k.pem"),
        Path::new("/etc/ca.pem"),
    );
    let all = Credentials {
        psk_file: None,
        cert: Some(cert),
        key: Some(key),
        ca: Some(ca),
    };
    assert_eq!(
        from_options(true, all, 6081).unwrap(),
        Requested::IpsecCert(HostPki {
            certificate: cert.into(),
            private_key: key.into(),
            ca_cert: ca.into(),
        })
    );
    let no_ca = Credentials { ca: None, ..all };
    let err = from_options(true, no_ca, 6081).unwrap_err().to_string();
    assert!(
        err.contains("cert=\"/etc/c.pem\"") && err.contains("missing: ca"),
        "{err}"
    );
    let only_ca = Credentials {
        cert: None,
        key: None,
        ..all
    };
    let err = from_options(true, only_ca, 6081).unwrap_err().to_string();
    assert!(err.contains("missing: cert, key"), "{err}");
    let both = Credentials {
        psk_file: Some(Path::new("/etc/k.psk")),
        ..all
    };
    let err = from_options(true, both, 6081).unwrap_err().to_string();
    assert!(
        err.contains("psk_file") && err.contains("alternatives"),
        "{err}"
    );
    let err = from_options(
        false,
        Credentials {
            psk_file: None,
            ..all
        },
        6081,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("cert=") && err.contains("encrypt=ipsec"),
        "{err}"
    );
}

#[test]
fn pem_files_hold_what_their_option_needs() {
    let p = Path::new("/etc/x.pem");
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let rsa = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n";
    assert!(check_pem_text("cert", p, cert, PemKind::Certificate).is_ok());
    assert!(check_pem_text("key", p, rsa, PemKind::PrivateKey).is_ok());
    for (text, kind, needle) in [
        ("MIIB", PemKind::Certificate, "not PEM"),
        (rsa, PemKind::Certificate, "no certificate"),
        (cert, PemKind::PrivateKey, "no private key"),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n",
            PemKind::PrivateKey,
            "encrypted",
        ),
    ] {
        let err = check_pem_text("opt", p, text, kind)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(needle) && err.contains("/etc/x.pem") && err.contains("option opt"),
            "{err}"
        );
        assert!(!err.contains("MII"), "the file's content in {err}");
    }
}

#[test]
fn pki_files_are_read_and_the_key_must_be_root_only() {
    let dir = std::env::temp_dir().join(format!("geneve-ovs-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let pem_cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let pem_key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
    let pki = HostPki {
        certificate: write("cert.pem", pem_cert, 0o644),
        private_key: write("key.pem", pem_key, 0o600),
        ca_cert: write("ca.pem", pem_cert, 0o644),
    };
    check_pki_files(&pki).unwrap();
    std::fs::set_permissions(&pki.private_key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = check_pki_files(&pki).unwrap_err().to_string();
    assert!(
        err.contains("option key") && err.contains("chmod 600"),
        "{err}"
    );
    let missing = HostPki {
        ca_cert: dir.join("nope.pem"),
        ..pki.clone()
    };
    let err = format!("{:#}", check_pki_files(&missing).unwrap_err());
    assert!(
        err.contains("option ca") && err.contains("nope.pem"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_set_of_certificate_files_per_host() {
    let pki = HostPki {
        certificate: "/etc/c.pem".into(),
        private_key: "/etc/k.pem".into(),
        ca_cert: "/etc/ca.pem".into(),
    };
    assert!(check_host_pki(&pki, &[None, None, None]).unwrap());
    let same = [Some("/etc/c.pem"), Some("/etc/k.pem"), Some("/etc/ca.pem")];
    assert!(!check_host_pki(&pki, &same).unwrap());
    for other in [
        [
            Some("/etc/other.pem"),
            Some("/etc/k.pem"),
            Some("/etc/ca.pem"),
        ],
        [Some("/etc/c.pem"), Some("/etc/k.pem"), None],
    ] {
        let err = check_host_pki(&pki, &other).unwrap_err().to_string();
        assert!(
            err.contains("other_config") && err.contains("same"),
            "{err}"
        );
    }
}
