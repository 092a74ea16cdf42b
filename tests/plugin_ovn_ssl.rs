//! OVN mode over `ssl:` remotes against real OVN: the northbound database listens on SSL only,
//! with a CA made by `ovs-pki` that signed its certificate and every host's, each host's key,
//! certificate and CA recorded in its Open vSwitch SSL table (`ovs-vsctl set-ssl`), where the
//! plugin takes them from.

mod common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::ovn::{container_ip, network_at, pki_init, pki_sign, OvnLab, NB_SSL_REMOTE};
use common::podman::{create, error_of, teardown};
use common::{wait, Host};
use serde_json::Value;

/// `create`'s error on `host`, requiring that it failed.
fn create_error(host: &Host, net: &Value) -> Result<String> {
    let err = error_of(&host.plugin(&["create"], &net.to_string()))?;
    eprintln!("[ovn-ssl] create on {} refused: {err}", host.name());
    Ok(err)
}

#[test]
fn create_and_setup_across_two_hosts_over_ssl() -> Result<()> {
    let ovn = OvnLab::with_ssl_nb(2, 2)?;
    assert_eq!(ovn.nb_remote(), NB_SSL_REMOTE);
    let saved = ovn.create_on_hosts(2, &ovn.network("net1"))?;
    let containers = ovn.start_containers(&saved)?;
    containers[0]
        .0
        .wait_ping(&container_ip(2), Duration::from_secs(15))?;
    containers[1]
        .0
        .wait_ping(&container_ip(1), Duration::from_secs(15))?;
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
    let tcp = network_at("net1", &NB_SSL_REMOTE.replace("ssl:", "tcp:"));
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
    let net = ovn.network("net1");
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
    ensure!(ovn.switches()?.is_empty(), "{:?}", ovn.switches()?);

    // A certificate the database's CA did not sign: the server refuses the client.
    let (stray_key, stray_cert) = pki_sign(&other, &ovn.lab().dir().join("other-certs"), "h2")?;
    h2.vsctl(&["set-ssl", &stray_key, &stray_cert, &ovn.ca_cert()])?;
    let err = create_error(h2, &net)?;
    for says in [NB_SSL_REMOTE, "certificate", "ovs-vsctl"] {
        ensure!(err.contains(says), "{says:?} not in: {err}");
    }
    ensure!(ovn.switches()?.is_empty(), "{:?}", ovn.switches()?);

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
    ensure!(ovn.switches()?.is_empty(), "{:?}", ovn.switches()?);

    // Once the operator records the right files, the same command works.
    h2.vsctl(&["set-ssl", &key, &cert, &ovn.ca_cert()])?;
    create(h2, &net)?;
    ensure!(
        ovn.switches()? == ["geneve-ovs.net1"],
        "{:?}",
        ovn.switches()?
    );
    Ok(())
}
