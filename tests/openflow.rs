//! The plugin's own OpenFlow client against a real ovs-vswitchd: a bundle sent in-process
//! leaves exactly the table `ovs-ofctl --bundle add-flows` leaves for the same changes (flow
//! for flow, as `ovs-ofctl dump-flows` shows them), a delete by cookie takes exactly that
//! cookie's flows, a port not yet on the switch is waited for, and a bridge that refuses a flow
//! says which flow and bridge, with nothing of the bundle applied.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use common::cmd::Cmd;
use common::{Host, Lab, Underlay};
use geneve_ovs::flows::{self, FlowChange, PortIdentity};
use geneve_ovs::ofctl::Ofctl;
use geneve_ovs::openflow::Switch;

const BRIDGE: &str = "gnvof";
const VNI: u32 = 77;
const PORT_A: &str = "gvofaaaaaaaaaaa";
const PORT_B: &str = "gvofbbbbbbbbbbb";

/// A secure netdev bridge with two internal ports, as the plugin's bridges are.
fn bridge(host: &Host) -> Result<()> {
    host.vsctl(&[
        "add-br",
        BRIDGE,
        "--",
        "set",
        "bridge",
        BRIDGE,
        "datapath_type=netdev",
        "fail_mode=secure",
    ])?;
    for port in [PORT_A, PORT_B] {
        host.vsctl(&[
            "add-port",
            BRIDGE,
            port,
            "--",
            "set",
            "interface",
            port,
            "type=internal",
        ])?;
    }
    Ok(())
}

fn identity(port: &str, last: u8) -> PortIdentity {
    let addresses: Vec<IpAddr> = vec![
        format!("192.168.120.{last}").parse().unwrap(),
        format!("fd99::{last}").parse().unwrap(),
    ];
    PortIdentity {
        port: port.to_string(),
        mac: [0x02, 0, 0, 0, 0, last],
        addresses,
        gateway_mac: geneve_ovs::naming::gateway_mac(VNI),
    }
}

/// What `setup` installs for port A (enforced) plus port B with port security off.
fn changes() -> Vec<FlowChange> {
    let mut changes = flows::replace_cookie(flows::base_cookie(VNI), &flows::base_flows(VNI));
    changes.extend(flows::replace_cookie(
        flows::port_cookie(PORT_A),
        &flows::port_flows(&identity(PORT_A, 5), true),
    ));
    changes.extend(flows::replace_cookie(
        flows::port_cookie(PORT_B),
        &flows::port_flows(&identity(PORT_B, 6), false),
    ));
    changes
}

fn ofctl(host: &Host, args: &[&str]) -> Result<String> {
    let target = format!("unix:{}/{BRIDGE}.mgmt", host.ovs_rundir().display());
    Cmd::new("ovs-ofctl")
        .arg("--timeout=10")
        .args(args)
        .arg(target)
        .timeout(Duration::from_secs(20))
        .run()
}

/// The table as sorted `dump-flows --no-stats` lines (no counters, no durations).
fn table(host: &Host) -> Result<Vec<String>> {
    let dump = ofctl(host, &["--no-stats", "dump-flows"])?;
    let mut lines: Vec<String> = dump
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cookie="))
        .map(str::to_string)
        .collect();
    lines.sort();
    Ok(lines)
}

fn cookie_text(cookie: u64) -> String {
    format!("cookie={cookie:#x},")
}

#[test]
fn in_process_bundle_leaves_the_table_ovs_ofctl_leaves() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let host = lab.host(1);
    bridge(host)?;
    let changes = changes();

    Ofctl::new(host.ovs_rundir()).apply(BRIDGE, &changes)?;
    let by_ofctl = table(host)?;
    ofctl(host, &["del-flows"])?;
    ensure!(table(host)?.is_empty(), "del-flows left flows");

    Switch::new(host.ovs_rundir()).apply(BRIDGE, &changes)?;
    let in_process = table(host)?;
    let expected = changes
        .iter()
        .filter(|c| matches!(c, FlowChange::Add(_)))
        .count();
    ensure!(
        in_process.len() == expected,
        "{} flows in the table, {expected} sent:\n{}",
        in_process.len(),
        in_process.join("\n")
    );
    assert_eq!(
        in_process, by_ofctl,
        "in-process table differs from ovs-ofctl's"
    );

    // Applying the same bundle again replaces, never duplicates.
    Switch::new(host.ovs_rundir()).apply(BRIDGE, &changes)?;
    assert_eq!(table(host)?, by_ofctl);

    // Teardown: port A's cookie goes, everything else stays.
    Switch::new(host.ovs_rundir()).apply(
        BRIDGE,
        &[FlowChange::DeleteCookie(flows::port_cookie(PORT_A))],
    )?;
    let after = table(host)?;
    let a = cookie_text(flows::port_cookie(PORT_A));
    ensure!(
        !after.iter().any(|l| l.starts_with(&a)),
        "flows of port A left: {after:?}"
    );
    let kept: Vec<String> = by_ofctl
        .iter()
        .filter(|l| !l.starts_with(&a))
        .cloned()
        .collect();
    assert_eq!(after, kept);
    ensure!(after
        .iter()
        .any(|l| l.starts_with(&cookie_text(flows::port_cookie(PORT_B)))));
    Ok(())
}

#[test]
fn a_port_not_yet_on_the_switch_is_waited_for_and_a_missing_one_named() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let host = lab.host(1);
    bridge(host)?;
    let late = "gvoflatelatelat";
    let flows = flows::port_flows(&identity(late, 9), true);
    // The port is added only after the bundle has been asked for: the client must wait for
    // ovs-vswitchd to have it, not fail and not guess a number.
    std::thread::scope(|scope| -> Result<()> {
        let adder = scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            host.vsctl(&[
                "add-port",
                BRIDGE,
                late,
                "--",
                "set",
                "interface",
                late,
                "type=internal",
            ])
        });
        let applied = Switch::new(host.ovs_rundir()).apply(
            BRIDGE,
            &flows::replace_cookie(flows::port_cookie(late), &flows),
        );
        adder.join().expect("the thread adding the port")?;
        applied
    })?;
    let ofport = host
        .vsctl(&["get", "interface", late, "ofport"])?
        .trim()
        .to_string();
    let rows = table(host)?;
    let cookie = cookie_text(flows::port_cookie(late));
    let mine: Vec<&String> = rows.iter().filter(|l| l.starts_with(&cookie)).collect();
    ensure!(mine.len() == flows.len(), "{mine:?}");
    for row in mine {
        let on_port = [format!("in_port={ofport}"), format!("in_port={late}")]
            .iter()
            .any(|m| row.contains(&format!("{m},")) || row.contains(&format!("{m} ")));
        ensure!(on_port, "flow not on port {late} ({ofport}): {row}");
    }

    let started = Instant::now();
    let absent = "gvofabsentabsen";
    let err = Switch::new(host.ovs_rundir())
        .apply(
            BRIDGE,
            &flows::replace_cookie(
                flows::port_cookie(absent),
                &flows::port_flows(&identity(absent, 10), false),
            ),
        )
        .expect_err("a port that does not exist");
    let text = format!("{err:#}");
    ensure!(
        text.contains(BRIDGE) && text.contains(absent),
        "error names neither bridge nor port: {text}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(15),
        "the wait is not bounded: {:?}",
        started.elapsed()
    );
    ensure!(
        !table(host)?
            .iter()
            .any(|l| l.starts_with(&cookie_text(flows::port_cookie(absent)))),
        "flows of the absent port installed"
    );
    Ok(())
}

/// A number the caller knows (OVSDB's `Interface.ofport`, read once vswitchd applied the port)
/// is used as it is: the switch is not asked for its port list, so a bundle for a port the
/// switch does not have (yet) goes in at once, on that number, instead of waiting for it.
#[test]
fn a_port_number_the_caller_knows_is_not_asked_for() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let host = lab.host(1);
    bridge(host)?;
    let unseen = "gvofunseenunsee";
    let flows = flows::port_flows(&identity(unseen, 11), true);
    let known = std::collections::BTreeMap::from([(unseen.to_string(), 4242)]);
    let started = Instant::now();
    Switch::new(host.ovs_rundir()).knowing_ports(&known).apply(
        BRIDGE,
        &flows::replace_cookie(flows::port_cookie(unseen), &flows),
    )?;
    let took = started.elapsed();
    ensure!(
        took < geneve_ovs::openflow::client::PORT_WAIT,
        "the client waited for a port whose number it was given ({took:?})"
    );
    let cookie = cookie_text(flows::port_cookie(unseen));
    let mine: Vec<String> = table(host)?
        .into_iter()
        .filter(|l| l.starts_with(&cookie))
        .collect();
    ensure!(mine.len() == flows.len(), "{mine:?}");
    for row in &mine {
        ensure!(
            row.contains("in_port=4242,") || row.contains("in_port=4242 "),
            "flow not on the given number 4242: {row}"
        );
    }
    Ok(())
}

#[test]
fn a_refused_flow_is_named_and_nothing_of_the_bundle_applied() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let host = lab.host(1);
    bridge(host)?;
    let switch = Switch::new(host.ovs_rundir());
    switch.apply(
        BRIDGE,
        &flows::replace_cookie(flows::base_cookie(VNI), &flows::base_flows(VNI)),
    )?;
    let before = table(host)?;
    // Table 0 holds 10 flows at most and refuses more: port A's enforced flows do not fit.
    host.vsctl(&[
        "--",
        "--id=@limit",
        "create",
        "Flow_Table",
        "flow_limit=10",
        "overflow_policy=refuse",
        "--",
        "set",
        "bridge",
        BRIDGE,
        "flow_tables:0=@limit",
    ])?;
    let err = switch
        .apply(BRIDGE, &changes())
        .expect_err("a table too small for the bundle");
    let text = format!("{err:#}");
    ensure!(
        text.contains(BRIDGE) && text.contains("TABLE_FULL") && text.contains("add cookie="),
        "the error does not name the bridge, the flow and the reason: {text}"
    );
    assert_eq!(table(host)?, before, "a refused bundle changed the table");
    Ok(())
}

#[test]
fn a_bridge_that_does_not_exist_is_a_clear_error() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let host = lab.host(1);
    let err = Switch::new(host.ovs_rundir())
        .apply("gnvnone", &[FlowChange::DeleteCookie(1)])
        .expect_err("no such bridge");
    let text = format!("{err:#}");
    ensure!(
        text.contains("gnvnone") && text.contains("ovs-vsctl br-exists"),
        "{text}"
    );
    Ok(())
}
