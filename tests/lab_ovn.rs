//! Self-test of the OVN lab (`lab.sh up N --ovn`, `contrib/lab/ovn.sh`) without the plugin:
//! what the OVN-mode tests rely on, proved with OVN's own tools and hand-made ports (a network
//! namespace per host, a veth on `br-int` with `iface-id`, a Logical_Switch_Port in NB):
//! * 3 hosts: both Raft clusters have 3 members and a leader, every host's chassis is in SB;
//! * a host added later (`lab.sh add-host`, only ovn-controller) gets tunnels to the others and
//!   its port talks to theirs, with nothing run on them;
//! * the NB and SB leader's host crashed: the others elect a leader, ports of the others keep
//!   talking; booted, the host's members rejoin as followers;
//! * `--ovn-ssl`: the databases answer a client with the host's certificate and refuse one
//!   without; ovn-controller connects over SSL;
//! * `down` leaves nothing.

mod podman_lab;

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use podman_lab::ovn::{OvnDb, SSL_FILES};
use podman_lab::{ok, wait, Host, PodmanLab};

const SETTLE: Duration = Duration::from_secs(20);
const ELECTION: Duration = Duration::from_secs(30);
const SWITCH: &str = "selftest";

/// A hand-made port of the logical switch on host `h`: network namespace `c` in the host with
/// the veth end `eth0` (address 192.168.213.<h>), its peer on br-int bound to port `p<h>`.
fn hand_made_port(h: &Host) -> Result<()> {
    let i = h.index();
    let port = format!("p{i}");
    let mac = format!("02:00:00:00:00:{i:02x}");
    let ip = format!("192.168.213.{i}");
    h.nbctl(&[
        "lsp-add",
        SWITCH,
        &port,
        "--",
        "lsp-set-addresses",
        &port,
        &format!("{mac} {ip}"),
    ])?;
    h.exec_ok(&[
        "sh",
        "-euc",
        r#"ip netns add c
        ip link add vh type veth peer name eth0 netns c
        ip -n c link set eth0 address "$1"
        ip -n c addr add "$2/24" dev eth0
        ip -n c link set lo up
        ip -n c link set eth0 up
        ip netns exec c ethtool -K eth0 tx off >/dev/null
        ip link set vh up
        ovs-vsctl add-port br-int vh -- set Interface vh "external_ids:iface-id=$3""#,
        "sh",
        &mac,
        &ip,
        &port,
    ])?;
    Ok(())
}

fn port_pings(from: &Host, to: usize) -> bool {
    ok(&from.exec(&[
        "ip",
        "netns",
        "exec",
        "c",
        "ping",
        "-c1",
        "-W1",
        &format!("192.168.213.{to}"),
    ]))
}

fn wait_port_pings(from: &Host, to: usize) -> Result<()> {
    wait::until(
        &format!("port of h{} to reach the port of h{to}", from.index()),
        SETTLE,
        || Ok(port_pings(from, to)),
    )
}

/// The Raft role of host h's member of NB.
fn nb_role(h: &Host) -> Result<String> {
    let text = h.exec_ok(&[
        "ovs-appctl",
        "-t",
        "/run/ovn/ovnnb_db.ctl",
        "cluster/status",
        "OVN_Northbound",
    ])?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("Role: "))
        .unwrap_or_default()
        .to_string())
}

fn chassis_names(h: &Host) -> Result<Vec<String>> {
    let mut names: Vec<String> = h
        .sbctl(&["--bare", "--columns=name", "list", "Chassis"])?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(names)
}

#[test]
fn ovn_lab_clusters_joining_host_and_leader_loss() -> Result<()> {
    let lab = PodmanLab::up_ovn("lab-ovn", 3)?;
    let env = lab.ovn_env()?;
    ensure!(env.central == 3 && !env.ssl, "unexpected OVN env {env:?}");
    ensure!(
        env.nb == "tcp:10.99.0.1:6641,tcp:10.99.0.2:6641,tcp:10.99.0.3:6641",
        "NB remotes {}",
        env.nb
    );
    for db in [OvnDb::Northbound, OvnDb::Southbound] {
        lab.ovn_leader(db, ELECTION)?;
    }
    let roles: Vec<String> = lab.hosts().iter().map(nb_role).collect::<Result<_>>()?;
    ensure!(
        roles.iter().filter(|r| *r == "leader").count() == 1
            && roles.iter().filter(|r| *r == "follower").count() == 2,
        "NB roles {roles:?}"
    );
    ensure!(
        chassis_names(&lab.host(1))? == ["lab-h1", "lab-h2", "lab-h3"],
        "chassis {:?}",
        chassis_names(&lab.host(1))?
    );

    lab.host(1).nbctl(&["ls-add", SWITCH])?;
    for h in lab.hosts() {
        hand_made_port(&h)?;
    }
    wait_port_pings(&lab.host(1), 3)?;

    // The joining host: only ovn-controller, nothing done on hosts 1-3.
    let four = lab.add_host()?;
    let h4 = lab.host(four);
    ensure!(
        chassis_names(&h4)? == ["lab-h1", "lab-h2", "lab-h3", "lab-h4"],
        "chassis after add-host {:?}",
        chassis_names(&h4)?
    );
    ensure!(
        !h4.exec_ok(&["ovs-appctl", "-t", "/run/ovn/ovnnb_db.ctl", "version"])
            .is_ok_and(|v| !v.is_empty()),
        "host 4 runs an NB member; it should run only ovn-controller"
    );
    let joined = Instant::now();
    hand_made_port(&h4)?;
    for other in 1..=3 {
        wait_port_pings(&h4, other)?;
        wait_port_pings(&lab.host(other), four)?;
    }
    eprintln!(
        "[lab-ovn] joining host's port reached all others {:.1?} after it was made",
        joined.elapsed()
    );

    // The leader's host goes away: a new leader among the two others, ports keep talking.
    let leader = lab.ovn_leader(OvnDb::Northbound, ELECTION)?;
    let sb_leader = lab.ovn_leader(OvnDb::Southbound, ELECTION)?;
    eprintln!("[lab-ovn] NB leader on host {leader}, SB leader on host {sb_leader}");
    let crashed = Instant::now();
    lab.host(leader).crash()?;
    let new_leader = lab.ovn_leader(OvnDb::Northbound, ELECTION)?;
    eprintln!(
        "[lab-ovn] NB leader host {new_leader} {:.1?} after host {leader} crashed",
        crashed.elapsed()
    );
    ensure!(
        new_leader != leader,
        "host {leader} still leads after its crash"
    );
    let survivors: Vec<usize> = (1..=3).filter(|i| *i != leader).collect();
    // A write goes through the new leader.
    lab.host(survivors[0]).nbctl(&["ls-add", "after-crash"])?;
    wait_port_pings(&lab.host(survivors[0]), survivors[1])?;
    wait_port_pings(&h4, survivors[0])?;

    lab.host(leader).boot()?;
    wait::until(
        &format!("host {leader}'s NB member to rejoin as follower"),
        ELECTION,
        || Ok(nb_role(&lab.host(leader)).unwrap_or_default() == "follower"),
    )?;
    ensure!(
        lab.host(leader)
            .nbctl(&["ls-list"])?
            .contains("after-crash"),
        "host {leader}'s member did not catch up with the write made while it was down"
    );
    lab.down_and_check()
}

#[test]
fn ovn_lab_over_ssl() -> Result<()> {
    let lab = PodmanLab::up_ovn_ssl("lab-ovn-ssl", 2)?;
    let env = lab.ovn_env()?;
    ensure!(
        env.ssl && env.nb == "ssl:10.99.0.1:6641,ssl:10.99.0.2:6641",
        "unexpected OVN env {env:?}"
    );
    let h2 = lab.host(2);
    h2.nbctl(&["ls-add", SWITCH])?;
    ensure!(
        h2.nbctl(&["ls-list"])?.contains(SWITCH),
        "switch not listed"
    );
    // Without a certificate the same client is refused.
    let plain = h2.exec(&[
        "ovn-nbctl",
        "--timeout=5",
        &format!("--db={}", env.nb),
        "ls-list",
    ]);
    ensure!(
        !ok(&plain),
        "NB answered a client without a certificate over {}",
        env.nb
    );
    let ssl_table = h2.exec_ok(&["ovs-vsctl", "get-ssl"])?;
    for file in SSL_FILES {
        ensure!(
            ssl_table.contains(file),
            "SSL table lacks {file}:\n{ssl_table}"
        );
    }
    for h in lab.hosts() {
        let status = h.exec_ok(&[
            "ovn-appctl",
            "-t",
            "/run/ovn/ovn-controller.ctl",
            "connection-status",
        ])?;
        ensure!(
            status == "connected",
            "h{} ovn-controller: {status}",
            h.index()
        );
    }
    for h in lab.hosts() {
        hand_made_port(&h)?;
    }
    wait_port_pings(&lab.host(1), 2)?;
    lab.down_and_check()
}
