//! OVN mode over `ssl:` remotes against real OVN: the northbound database listens on SSL only,
//! with a CA made by `ovs-pki` that signed its certificate and every host's, each host's key,
//! certificate and CA recorded in its Open vSwitch SSL table (`ovs-vsctl set-ssl`), where the
//! plugin takes them from.

mod common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::ovn::{pki_init, pki_sign, OvnLab, NB_SSL_REMOTE};
use common::podman::{self, create, error_of, setup, teardown};
use common::{wait, Container, Host};
use serde_json::Value;

const SUBNET: &str = "192.168.120.0/24";

fn network(remote: &str) -> Value {
    podman::network("net1", SUBNET, None, &[("ovn", remote)])
}

fn ip(i: usize) -> String {
    format!("192.168.120.{}", 10 + i)
}

/// Sets up container `label` on `host` with address `address`.
fn start(host: &Host, net: &Value, label: &str, address: &str) -> Result<(Container, Value)> {
    let c = host.container(label)?;
    let exec = podman::exec(net, label, &[address], None);
    setup(host, &c, &exec).with_context(|| format!("setup of {label} on {}", host.name()))?;
    Ok((c, exec))
}

/// `create`'s error on `host`, requiring that it failed.
fn create_error(host: &Host, net: &Value) -> Result<String> {
    let err = error_of(&host.plugin(&["create"], &net.to_string()))?;
    eprintln!("[ovn-ssl] create on {} refused: {err}", host.name());
    Ok(err)
}

/// The names of the northbound database's logical switches.
fn switches(ovn: &OvnLab) -> Result<Vec<String>> {
    Ok(ovn
        .nbctl(&["--bare", "--columns=name", "list", "Logical_Switch"])?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

#[test]
fn create_and_setup_across_two_hosts_over_ssl() -> Result<()> {
    let ovn = OvnLab::with_ssl_nb(2, 2)?;
    assert_eq!(ovn.nb_remote(), NB_SSL_REMOTE);
    let net = network(NB_SSL_REMOTE);
    let mut containers = Vec::new();
    for i in 1..=2 {
        let saved = create(ovn.host(i), &net)?;
        assert_eq!(saved["options"]["ovn"], NB_SSL_REMOTE, "{saved}");
        containers.push(start(ovn.host(i), &saved, &format!("c{i}"), &ip(i))?);
    }
    containers[0].0.wait_ping(&ip(2), Duration::from_secs(15))?;
    containers[1].0.wait_ping(&ip(1), Duration::from_secs(15))?;
    wait::until(
        "both logical ports up in NB",
        Duration::from_secs(15),
        || {
            // The containers' ports (the switch's gateway port is a localport, never up).
            let up = ovn.nbctl(&[
                "--bare",
                "--columns=up",
                "find",
                "Logical_Switch_Port",
                "type=\"\"",
            ])?;
            Ok(up.split_whitespace().collect::<Vec<_>>() == ["true", "true"])
        },
    )?;

    // Teardown speaks SSL too: c2's logical port goes.
    let (c2, exec2) = &containers[1];
    let netns = c2.netns_path();
    teardown(ovn.host(2), netns.to_str().context("netns")?, exec2)?;
    let ports = ovn.nbctl(&["lsp-list", "geneve-ovs.net1"])?;
    let containers_left = ports.lines().filter(|l| !l.ends_with(".gateway)")).count();
    assert_eq!(containers_left, 1, "{ports}");

    // The database really is SSL only: its address over TCP is refused.
    let tcp = network(&NB_SSL_REMOTE.replace("ssl:", "tcp:"));
    let err = create_error(ovn.host(1), &tcp)?;
    assert!(
        err.contains("cannot reach the OVN northbound database"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_wrong_ca_a_missing_file_or_no_ssl_row_is_refused_naming_remote_file_and_fix() -> Result<()> {
    let ovn = OvnLab::with_ssl_nb(2, 2)?;
    let net = network(NB_SSL_REMOTE);
    let h2 = ovn.host(2);
    let (key, cert) = ovn.sign("second-host2")?;

    // A CA that did not sign the database's certificate: the client refuses the server.
    let other = ovn.lab().dir().join("other-pki");
    pki_init(&other)?;
    let other_ca = other.join("switchca/cacert.pem").display().to_string();
    h2.vsctl(&["set-ssl", &key, &cert, &other_ca])?;
    let err = create_error(h2, &net)?;
    for says in [
        NB_SSL_REMOTE,
        "does not verify against the CA certificate",
        other_ca.as_str(),
        "ovs-vsctl set-ssl",
    ] {
        ensure!(err.contains(says), "{says:?} not in: {err}");
    }
    // Nothing was written.
    ensure!(switches(&ovn)?.is_empty(), "{:?}", switches(&ovn)?);

    // A certificate the database's CA did not sign: the server refuses the client.
    let (stray_key, stray_cert) = pki_sign(&other, &ovn.lab().dir().join("other-certs"), "h2")?;
    h2.vsctl(&["set-ssl", &stray_key, &stray_cert, &ovn.ca_cert()])?;
    let err = create_error(h2, &net)?;
    for says in [NB_SSL_REMOTE, "certificate", "ovs-vsctl"] {
        ensure!(err.contains(says), "{says:?} not in: {err}");
    }
    ensure!(switches(&ovn)?.is_empty(), "{:?}", switches(&ovn)?);

    // A file that is not there.
    let missing = "/nonexistent-geneve-ovs-test/key.pem";
    h2.vsctl(&["set-ssl", missing, &cert, &ovn.ca_cert()])?;
    let err = create_error(h2, &net)?;
    for says in [
        NB_SSL_REMOTE,
        "cannot read the private key",
        missing,
        "ovs-vsctl set-ssl",
    ] {
        ensure!(err.contains(says), "{says:?} not in: {err}");
    }

    // No SSL configuration at all.
    h2.vsctl(&["del-ssl"])?;
    let err = create_error(h2, &net)?;
    for says in [NB_SSL_REMOTE, "no SSL configuration", "ovs-vsctl set-ssl"] {
        ensure!(err.contains(says), "{says:?} not in: {err}");
    }
    ensure!(switches(&ovn)?.is_empty(), "{:?}", switches(&ovn)?);

    // Once the operator records the right files, the same command works.
    h2.vsctl(&["set-ssl", &key, &cert, &ovn.ca_cert()])?;
    create(h2, &net)?;
    ensure!(
        switches(&ovn)? == ["geneve-ovs.net1"],
        "{:?}",
        switches(&ovn)?
    );
    Ok(())
}
