//! Port security with real podman (5.4, netavark 1.14) on two simulated hosts (`contrib/lab/`):
//! a container run with `--cap-add NET_ADMIN,NET_RAW` takes another container's address and
//! announces it with gratuitous ARP (busybox `arping -U`). On a network with the default
//! options the victim on the other host keeps resolving that address to its owner; on a network
//! with `port_security=false` the same commands move it to the impostor (so the check can fail).

mod podman_lab;

use std::time::Duration;

use anyhow::{ensure, Result};
use podman_lab::{Container, PodmanLab};

/// How long a first packet may take (ARP, MAC learning, a fresh veth).
const SETTLE: Duration = Duration::from_secs(15);

/// The victim's neighbour entry for `ip`: the MAC it resolves it to, if any.
fn neighbour_mac(victim: &Container, ip: &str) -> Result<Option<String>> {
    let out = victim.exec_ok(&["ip", "neigh", "show", ip])?;
    Ok(out
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_ascii_lowercase))
}

/// On network `net`: the owner of an address and the impostor on host 1, the victim on host 2.
/// Returns (the MAC the victim resolves the owner's address to afterwards, owner's MAC,
/// impostor's MAC).
fn impersonation(
    lab: &PodmanLab,
    net: &str,
    subnet: &str,
    extra: &[&str],
) -> Result<(String, String, String)> {
    let prefix = subnet.trim_end_matches(".0/24");
    for (h, range) in lab.hosts().into_iter().zip([
        format!("{prefix}.1-{prefix}.126"),
        format!("{prefix}.129-{prefix}.254"),
    ]) {
        let peers = format!("peers={}", h.other_peers());
        let mut flags = vec![
            "--internal",
            "--subnet",
            subnet,
            "--ip-range",
            range.as_str(),
            "--opt",
            peers.as_str(),
        ];
        flags.extend_from_slice(extra);
        h.create_network(net, &flags)?;
    }
    let (h1, h2) = (lab.host(1), lab.host(2));
    let owner = h1.run_sleeper(&format!("{net}-owner"), net)?;
    let impostor = h1.run_detached(
        &format!("{net}-impostor"),
        &["--net", net, "--cap-add", "NET_ADMIN,NET_RAW"],
        &["sleep", "3600"],
    )?;
    let victim = h2.run_sleeper(&format!("{net}-victim"), net)?;
    let owner_ip = owner.ip(net)?;
    victim.wait_ping(&owner_ip, SETTLE)?;
    victim.wait_ping(&impostor.ip(net)?, SETTLE)?;
    let (owner_mac, impostor_mac) = (owner.mac()?, impostor.mac()?);
    ensure!(
        neighbour_mac(&victim, &owner_ip)?.as_deref() == Some(owner_mac.as_str()),
        "the victim does not resolve {owner_ip} to its owner before the attack"
    );

    impostor.exec_ok(&[
        "ip",
        "addr",
        "add",
        &format!("{owner_ip}/24"),
        "dev",
        "eth0",
    ])?;
    // Rounds of gratuitous requests and replies, the victim's table read after each: a
    // victim that takes the impostor's MAC at any point is caught (and the control network's
    // victim, which must take it, gets several chances past the neighbour table's locktime).
    let mut after = String::new();
    for _ in 0..ATTACK_ROUNDS {
        for mode in ["-U", "-A"] {
            impostor.exec_ok(&[
                "arping", mode, "-c", "2", "-I", "eth0", "-s", &owner_ip, &owner_ip,
            ])?;
        }
        std::thread::sleep(Duration::from_millis(500));
        after = neighbour_mac(&victim, &owner_ip)?.unwrap_or_default();
        if after == impostor_mac {
            break;
        }
    }
    Ok((after, owner_mac, impostor_mac))
}

/// How many rounds of gratuitous ARP the impostor sends.
const ATTACK_ROUNDS: usize = 4;

#[test]
fn a_container_with_net_admin_cannot_take_another_containers_address() -> Result<()> {
    let lab = PodmanLab::up("spoof", 2)?;
    let (after, owner, impostor) = impersonation(&lab, "guarded", "192.168.120.0/24", &[])?;
    ensure!(
        after == owner,
        "on a default network the victim now resolves the address to {after} (owner {owner}, \
         impostor {impostor})"
    );
    let (after, owner, impostor) = impersonation(
        &lab,
        "open",
        "192.168.121.0/24",
        &["--opt", "port_security=false"],
    )?;
    ensure!(
        after == impostor,
        "with port_security=false the gratuitous ARP should have reached the victim: it \
         resolves the address to {after} (owner {owner}, impostor {impostor})"
    );
    lab.down_and_check()
}
