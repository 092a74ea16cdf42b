//! Operating the overlay against real OVS: BFD liveness on the tunnels, `status`, `gc`, and
//! recovery from an ovs-vswitchd restart, a hung ovsdb-server and a host reboot.
//!
//! The measured times are printed (run with `--nocapture` to see them); the assertions only
//! bound them generously, so that a loaded machine does not fail the tests.

mod common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::operate::{
    forget_network, gc_items, gc_json, gv_links, network_dir, now_epoch, operator, restore_flows,
    save_network, status_json, PingLog,
};
use common::podman::{self, create, error_of, setup};
use common::{Container, Host, Lab, Underlay};
use serde_json::Value;

const SUBNET: &str = "192.168.120.0/24";

fn peers(lab: &Lab) -> String {
    lab.hosts()
        .iter()
        .map(|h| h.underlay_ip().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates `name` on every host with the same options, saves it in each host's podman
/// directory, and returns what each host saved.
fn create_everywhere(lab: &Lab, name: &str, extra: &[(&str, &str)]) -> Result<Vec<Value>> {
    let peers = peers(lab);
    let mut options = vec![("peers", peers.as_str())];
    options.extend_from_slice(extra);
    let mut saved = Vec::new();
    for (i, h) in lab.hosts().iter().enumerate() {
        let net = create(h, &podman::network(name, SUBNET, None, &options))?;
        save_network(&network_dir(lab, i + 1)?, &net)?;
        saved.push(net);
    }
    Ok(saved)
}

/// The BFD state OVS reports for the (only) tunnel of `host`, "" when it has none yet.
fn bfd_state(host: &Host) -> Result<String> {
    let name = host.vsctl(&[
        "--bare",
        "--columns=name",
        "find",
        "Interface",
        "external_ids:geneve-ovs.role=tunnel",
    ])?;
    let state = host.vsctl(&[
        "--if-exists",
        "get",
        "Interface",
        name.trim(),
        "bfd_status:state",
    ]);
    Ok(state.unwrap_or_default().trim_matches('"').to_string())
}

/// Polls until `probe` holds; returns how long it took.
fn time_until(
    what: &str,
    limit: Duration,
    probe: impl FnMut() -> Result<bool>,
) -> Result<Duration> {
    let started = Instant::now();
    common::wait::until(what, limit, probe)?;
    Ok(started.elapsed())
}

/// Polls single pings until one is answered; returns how long that took.
fn time_until_ping(from: &Container, ip: &str, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    from.wait_ping(ip, limit)?;
    Ok(started.elapsed())
}

/// `status --json` once it exits 0 and the tunnel's counters show traffic: ovs-vswitchd
/// writes `Interface.statistics` every 5 s only.
fn counted_status(host: &Host, dir: &std::path::Path) -> Result<Value> {
    common::wait::until_some("status with counters", Duration::from_secs(15), || {
        let (code, report) = status_json(host, dir)?;
        let t = tunnel_of(&report);
        let counted =
            t["rx_packets"].as_u64().unwrap_or(0) > 0 && t["tx_packets"].as_u64().unwrap_or(0) > 0;
        Ok((code == 0 && counted).then_some(report))
    })
}

fn tunnel_of(report: &Value) -> &Value {
    &report["networks"][0]["tunnels"][0]
}

#[test]
fn bfd_comes_up_goes_down_with_the_peer_and_shows_in_status() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let nets = create_everywhere(&lab, "net1", &[])?;
    assert_eq!(nets[0]["options"]["bfd"], "true");
    let (h1, h2) = (lab.host(1), lab.host(2));
    let dir1 = network_dir(&lab, 1)?;
    let dir2 = network_dir(&lab, 2)?;

    let up = time_until("BFD up on both hosts", Duration::from_secs(20), || {
        Ok(bfd_state(h1)? == "up" && bfd_state(h2)? == "up")
    })?;
    println!("BFD up on both hosts {up:?} after create");
    let bfd = h1.vsctl(&[
        "--bare",
        "--columns=bfd",
        "find",
        "Interface",
        "type=geneve",
    ])?;
    assert!(
        bfd.contains("enable=true") && bfd.contains("min_rx=1000"),
        "{bfd}"
    );

    let report = counted_status(h1, &dir1)?;
    let t = tunnel_of(&report);
    assert_eq!(
        (t["state"].as_str(), t["bfd"].as_str()),
        (Some("up"), Some("up"))
    );
    assert_eq!(t["peer"], "10.99.0.2");

    // The peer's switch dies: BFD notices within its detection time (3 s) plus polling.
    h2.stop_vswitchd()?;
    let down = time_until("BFD down on host 1", Duration::from_secs(15), || {
        Ok(bfd_state(h1)? == "down")
    })?;
    println!("BFD down {down:?} after the peer's ovs-vswitchd stopped");
    ensure!(
        down < Duration::from_secs(10),
        "BFD took {down:?} to go down"
    );
    let (code, report) = status_json(h1, &dir1)?;
    assert_eq!(code, 2, "a tunnel is down: {report:#}");
    assert_eq!(tunnel_of(&report)["state"], "down");
    assert_eq!(
        tunnel_of(&report)["bfd_diagnostic"],
        "Control Detection Time Expired"
    );
    assert_eq!(report["tunnels_down"], 1);
    // On the host whose vswitchd is gone, the database still holds the last BFD state
    // (OVS 3.1 leaves "up"): status must not believe it.
    let (code, report) = status_json(h2, &dir2)?;
    assert_eq!(code, 2);
    assert_eq!(report["vswitchd"]["running"], false);
    assert_eq!(tunnel_of(&report)["state"], "down");
    assert_eq!(tunnel_of(&report)["bfd"], "unknown");
    let (_, text) = operator(h2, &dir2, &["status"]);
    assert!(text.contains("ovs-vswitchd: NOT RUNNING"), "{text}");

    h2.start_vswitchd()?;
    let back = time_until("BFD up again", Duration::from_secs(20), || {
        Ok(bfd_state(h1)? == "up" && bfd_state(h2)? == "up")
    })?;
    println!("BFD up again {back:?} after the peer's ovs-vswitchd started");
    assert_eq!(status_json(h1, &dir1)?.0, 0);
    Ok(())
}

#[test]
fn bfd_can_be_turned_off_and_on_again() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let nets = create_everywhere(&lab, "net1", &[("bfd", "false")])?;
    assert_eq!(nets[0]["options"]["bfd"], "false");
    let h1 = lab.host(1);
    let bfd = h1.vsctl(&[
        "--bare",
        "--columns=bfd",
        "find",
        "Interface",
        "type=geneve",
    ])?;
    assert_eq!(bfd, "", "no BFD configured");
    let (code, report) = status_json(h1, &network_dir(&lab, 1)?)?;
    assert_eq!(code, 0, "a tunnel without BFD is not down: {report:#}");
    assert_eq!(tunnel_of(&report)["bfd"], "disabled");
    assert_eq!(tunnel_of(&report)["state"], "unknown");

    // A network saved before the bfd option existed has no "bfd" key: BFD is on. setup's
    // fast path notices the tunnels differ and reconciles them.
    let mut older = nets[0].clone();
    older["options"]
        .as_object_mut()
        .expect("options")
        .remove("bfd");
    let c1 = h1.container("c1")?;
    setup(
        h1,
        &c1,
        &podman::exec(&older, "c1", &["192.168.120.1"], None),
    )?;
    let bfd = h1.vsctl(&[
        "--bare",
        "--columns=bfd",
        "find",
        "Interface",
        "type=geneve",
    ])?;
    assert!(bfd.contains("enable=true"), "{bfd}");

    // And `create` again with BFD on reconciles the other host.
    create(
        lab.host(2),
        &podman::network("net1", SUBNET, None, &[("peers", &peers(&lab))]),
    )?;
    time_until(
        "BFD up after turning it on",
        Duration::from_secs(20),
        || Ok(bfd_state(lab.host(1))? == "up" && bfd_state(lab.host(2))? == "up"),
    )?;
    Ok(())
}

#[test]
fn status_lists_networks_tunnels_and_containers() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let nets = create_everywhere(&lab, "net1", &[])?;
    let h1 = lab.host(1);
    let dir = network_dir(&lab, 1)?;
    let c1 = h1.container("c1")?;
    let exec1 = podman::exec(
        &nets[0],
        "c1",
        &["192.168.120.1"],
        Some("0a:58:c0:a8:78:01"),
    );
    setup(h1, &c1, &exec1)?;
    let c2 = lab.host(2).container("c2")?;
    setup(
        lab.host(2),
        &c2,
        &podman::exec(&nets[1], "c2", &["192.168.120.2"], None),
    )?;
    c1.wait_ping("192.168.120.2", Duration::from_secs(15))?;
    time_until("BFD up", Duration::from_secs(20), || {
        Ok(bfd_state(h1)? == "up")
    })?;

    let report = counted_status(h1, &dir)?;
    assert_eq!(report["version"], 1);
    let net = &report["networks"][0];
    assert_eq!(net["name"], "net1");
    assert_eq!(net["id"], nets[0]["id"]);
    assert_eq!(net["bridge"], nets[0]["network_interface"]);
    assert_eq!(
        net["vni"].to_string(),
        nets[0]["options"]["vni"].as_str().unwrap()
    );
    assert_eq!(net["mtu"], 1450);
    assert_eq!(net["datapath"], "netdev");
    assert_eq!(net["podman_config"], "found");
    let c = &net["containers"][0];
    assert_eq!(c["name"], "c1");
    assert_eq!(c["id"], exec1["container_id"]);
    assert_eq!(c["interface"], "eth0");
    assert_eq!(c["mac"], "0a:58:c0:a8:78:01");
    assert_eq!(c["state"], "ok");
    assert_eq!(c["netns"], c1.netns_path().display().to_string());

    let (code, text) = operator(h1, &dir, &["status"]);
    assert_eq!(code, 0);
    println!("{text}");
    for want in [
        "network net1",
        "PEER",
        "10.99.0.2",
        "c1",
        "0a:58:c0:a8:78:01",
        "none down",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    let (code, _) = operator(h1, &dir, &["status", "net1"]);
    assert_eq!(code, 0);
    let out = h1.plugin(
        &[
            "status",
            "--json",
            "nope",
            "--network-config-dir",
            &dir.display().to_string(),
        ],
        "",
    );
    assert!(error_of(&out)?.contains("no geneve-ovs network \"nope\""));
    // Without --json the same error is a sentence on stderr for the person at the terminal.
    let out = h1.plugin(
        &[
            "status",
            "nope",
            "--network-config-dir",
            &dir.display().to_string(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("geneve-ovs: error: no geneve-ovs network \"nope\""),
        "{stderr}"
    );

    // The container's veth vanishes behind the plugin's back: its port is stale.
    let port = c["port"].as_str().unwrap().to_string();
    h1.exec_ok("ip", &["link", "del", &port])?;
    let (_, report) = status_json(h1, &dir)?;
    let c = &report["networks"][0]["containers"][0];
    assert_eq!(c["state"], "stale", "{c}");
    assert!(c["problem"].as_str().unwrap().contains("veth"), "{c}");
    Ok(())
}

#[test]
fn gc_removes_what_is_stale_and_nothing_else() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    let dir = network_dir(&lab, 1)?;
    let net1 = create(h1, &podman::network("net1", SUBNET, None, &[]))?;
    let old = create(h1, &podman::network("old", "192.168.121.0/24", None, &[]))?;
    save_network(&dir, &net1)?;
    save_network(&dir, &old)?;

    // Two live containers, one whose namespace is gone, one whose veth is gone, one on the
    // network about to be removed.
    let live: Vec<Container> = vec![h1.container("live1")?, h1.container("live2")?];
    for (i, c) in live.iter().enumerate() {
        let ip = format!("192.168.120.{}", i + 1);
        setup(h1, c, &podman::exec(&net1, c.name(), &[&ip], None))?;
    }
    let gone_ns = h1.container("gonens")?;
    setup(
        h1,
        &gone_ns,
        &podman::exec(&net1, "gonens", &["192.168.120.3"], None),
    )?;
    let gone_veth = h1.container("goneveth")?;
    let exec4 = podman::exec(&net1, "goneveth", &["192.168.120.4"], None);
    setup(h1, &gone_veth, &exec4)?;
    let on_old = h1.container("onold")?;
    setup(
        h1,
        &on_old,
        &podman::exec(&old, "onold", &["192.168.121.5"], None),
    )?;
    let ports_before = h1.container_ports()?;
    assert_eq!(ports_before.len(), 5);

    let port_of = |exec: &Value, net: &Value| {
        geneve_ovs::naming::host_veth_name(
            net["id"].as_str().unwrap(),
            exec["container_id"].as_str().unwrap(),
        )
    };
    let gone_ns_port = port_of(&podman::exec(&net1, "gonens", &[], None), &net1);
    let gone_veth_port = port_of(&exec4, &net1);
    let on_old_port = port_of(&podman::exec(&old, "onold", &[], None), &old);
    drop(gone_ns);
    h1.exec_ok("ip", &["link", "del", &gone_veth_port])?;
    // podman network rm old, after its container stopped without a teardown (a crash).
    drop(on_old);
    forget_network(&dir, "old")?;

    // A leaked veth (both ends on the host), a veth with no port whose peer a running
    // container holds, and things that are not ours.
    h1.exec_ok(
        "ip",
        &[
            "link",
            "add",
            "gv0dead0000000a",
            "type",
            "veth",
            "peer",
            "name",
            "gvtestpeer",
        ],
    )?;
    let holder = h1.container("holder")?;
    let holder_ns = holder.name().to_string();
    h1.exec_ok(
        "ip",
        &[
            "link",
            "add",
            "gv0beef0000000b",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &holder_ns,
        ],
    )?;
    h1.exec_ok(
        "ip",
        &[
            "link",
            "add",
            "vethnotours",
            "type",
            "veth",
            "peer",
            "name",
            "vethnotours2",
        ],
    )?;
    let old_bridge = old["network_interface"].as_str().unwrap().to_string();
    let net1_bridge = net1["network_interface"].as_str().unwrap().to_string();
    h1.vsctl(&[
        "add-br",
        "br-foreign",
        "--",
        "set",
        "Bridge",
        "br-foreign",
        "datapath_type=netdev",
    ])?;

    // Dry run: lists, changes nothing.
    let dry = gc_json(h1, &dir, &["--dry-run"])?;
    assert_eq!(dry["dry_run"], true);
    let mut planned = gc_items(&dry, "removed");
    planned.sort();
    let mut want = vec![
        ("port".to_string(), gone_ns_port.clone()),
        ("port".to_string(), gone_veth_port.clone()),
        ("port".to_string(), on_old_port.clone()),
        ("veth".to_string(), "gv0dead0000000a".to_string()),
        ("bridge".to_string(), old_bridge.clone()),
    ];
    want.sort();
    assert_eq!(planned, want, "{dry:#}");
    assert_eq!(
        gc_items(&dry, "kept"),
        [("veth".to_string(), "gv0beef0000000b".to_string())],
        "{dry:#}"
    );
    assert_eq!(h1.container_ports()?, ports_before);
    assert!(gv_links(h1)?.contains(&"gv0dead0000000a".to_string()));
    let (_, text) = operator(h1, &dir, &["gc", "--dry-run"]);
    println!("gc --dry-run:\n{text}");
    assert!(text.contains("would remove bridge"), "{text}");

    let done = gc_json(h1, &dir, &[])?;
    let mut removed = gc_items(&done, "removed");
    removed.sort();
    assert_eq!(removed, want, "{done:#}");
    assert!(gc_items(&done, "failed").is_empty());

    // What stays: the live containers, the held veth, everything not ours.
    let mut live_ports: Vec<String> = live
        .iter()
        .map(|c| port_of(&podman::exec(&net1, c.name(), &[], None), &net1))
        .collect();
    live_ports.sort();
    assert_eq!(h1.container_ports()?, live_ports);
    let mut links = live_ports.clone();
    links.push("gv0beef0000000b".to_string());
    links.sort();
    assert_eq!(gv_links(h1)?, links);
    let bridges = h1.vsctl(&["list-br"])?;
    assert!(
        bridges.contains("br-foreign") && bridges.contains("br-phy"),
        "{bridges}"
    );
    assert!(
        bridges.contains(&net1_bridge) && !bridges.contains(&old_bridge),
        "{bridges}"
    );
    h1.exec_ok("ip", &["link", "show", "vethnotours"])?;
    live[0].wait_ping("192.168.120.2", Duration::from_secs(10))?;

    // Converged: a second run finds nothing.
    let (code, text) = operator(h1, &dir, &["gc"]);
    assert_eq!(code, 0);
    assert!(text.contains("nothing to remove"), "{text}");

    // The podman directory missing: bridges are not judged, the rest still is.
    let missing = lab.dir().join("no-such-dir");
    let kept = gc_json(h1, &missing, &[])?;
    assert!(gc_items(&kept, "removed").is_empty(), "{kept:#}");
    assert!(gc_items(&kept, "kept").contains(&("bridge".to_string(), net1_bridge)));
    Ok(())
}

/// How long traffic stopped around `outage` (which takes the daemon away and back), and how
/// long after the daemon was back the first reply came.
fn measure_outage(
    ping: &PingLog,
    outage: impl FnOnce() -> Result<()>,
) -> Result<(Duration, Duration)> {
    std::thread::sleep(Duration::from_millis(500));
    let before = now_epoch();
    outage()?;
    let back_up = now_epoch();
    let first = ping.first_reply_after(back_up, Duration::from_secs(30))?;
    let last = ping.last_reply_before(before)?.unwrap_or(before);
    Ok((
        Duration::from_secs_f64((first - last).max(0.0)),
        Duration::from_secs_f64((first - back_up).max(0.0)),
    ))
}

#[test]
fn vswitchd_restart_and_crash_heal_once_the_flows_are_restored() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let nets = create_everywhere(&lab, "net1", &[])?;
    let c1 = lab.host(1).container("c1")?;
    let c2 = lab.host(2).container("c2")?;
    setup(
        lab.host(1),
        &c1,
        &podman::exec(&nets[0], "c1", &["192.168.120.1"], None),
    )?;
    setup(
        lab.host(2),
        &c2,
        &podman::exec(&nets[1], "c2", &["192.168.120.2"], None),
    )?;
    c1.wait_ping("192.168.120.2", Duration::from_secs(15))?;
    let h1 = lab.host(1);
    let ping = PingLog::start(c1.name(), "192.168.120.2", lab.dir().join("ping.log"))?;

    // A clean restart (systemctl restart openvswitch-switch). The flows are lost with the
    // daemon; after each start the restore runs as contrib/systemd/geneve-ovs-flows.service
    // runs it; the times below count from the end of the restore.
    let (gap, after_start) = measure_outage(&ping, || {
        h1.stop_vswitchd()?;
        h1.start_vswitchd()?;
        restore_flows(h1).map(|_| ())
    })?;
    println!(
        "vswitchd restart: traffic back {after_start:?} after the daemon was up and its flows restored (gap {gap:?})"
    );
    ensure!(
        after_start < Duration::from_secs(10),
        "took {after_start:?}"
    );

    // A crash (SIGKILL), then a start.
    let (gap, after_start) = measure_outage(&ping, || {
        let pid = h1.daemon_pid("ovs-vswitchd").context("vswitchd pid")?;
        common::process::signal(pid, libc::SIGKILL)?;
        common::wait::until("vswitchd to die", Duration::from_secs(5), || {
            Ok(!common::process::alive(pid))
        })?;
        h1.start_vswitchd()?;
        restore_flows(h1).map(|_| ())
    })?;
    println!("vswitchd crash: traffic back {after_start:?} after the daemon was up and its flows restored (gap {gap:?})");
    ensure!(
        after_start < Duration::from_secs(10),
        "took {after_start:?}"
    );

    // The peer's vswitchd restarting is the same outage seen from the other side.
    let (gap, after_start) = measure_outage(&ping, || {
        lab.host(2).stop_vswitchd()?;
        lab.host(2).start_vswitchd()?;
        restore_flows(lab.host(2)).map(|_| ())
    })?;
    println!(
        "peer vswitchd restart: traffic back {after_start:?} after the daemon was up and its flows restored (gap {gap:?})"
    );
    ensure!(
        after_start < Duration::from_secs(10),
        "took {after_start:?}"
    );

    let bfd = time_until("BFD up", Duration::from_secs(20), || {
        Ok(bfd_state(h1)? == "up")
    })?;
    println!("BFD up {bfd:?} after traffic was back");
    assert_eq!(status_json(h1, &network_dir(&lab, 1)?)?.0, 0);
    Ok(())
}

#[test]
fn setup_fails_fast_and_clean_when_ovsdb_server_hangs() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    let net = create(h1, &podman::network("net1", SUBNET, None, &[]))?;
    let c = h1.container("c1")?;
    let netns = c.netns_path().display().to_string();
    let exec = podman::exec(&net, "c1", &["192.168.120.9"], None).to_string();
    let pid = h1.daemon_pid("ovsdb-server").context("ovsdb-server pid")?;

    // Stopped, not dead: it accepts connections and never answers.
    common::process::signal(pid, libc::SIGSTOP)?;
    let started = Instant::now();
    let out = h1.plugin(&["setup", &netns], &exec);
    let took = started.elapsed();
    common::process::signal(pid, libc::SIGCONT)?;
    let err = error_of(&out)?;
    println!("setup with a stopped ovsdb-server failed after {took:?}: {err}");
    assert!(
        err.contains("does not answer") && err.contains("db.sock"),
        "{err}"
    );
    ensure!(took < Duration::from_secs(7), "setup took {took:?}");
    assert!(gv_links(h1)?.is_empty(), "a veth was left behind");
    assert!(h1.container_ports()?.is_empty());

    // Dead: refused at once.
    h1.stop_ovsdb()?;
    let started = Instant::now();
    let err = error_of(&h1.plugin(&["setup", &netns], &exec))?;
    println!(
        "setup with ovsdb-server killed failed after {:?}",
        started.elapsed()
    );
    assert!(err.contains("cannot connect to the OVSDB server"), "{err}");
    assert!(gv_links(h1)?.is_empty());
    Ok(())
}

/// A host reboot: OVS stops, every veth disappears, OVS starts again with its database, then
/// (as `podman start` would) every container is set up again with the same JSON.
fn reboot(host: &Host) -> Result<()> {
    host.stop_vswitchd()?;
    host.stop_ovsdb()?;
    for link in common::operate::gv_links(host)? {
        host.exec_ok("ip", &["link", "del", &link])?;
    }
    host.start_ovsdb()?;
    host.start_vswitchd()
}

#[test]
fn reboot_then_podman_start_restores_connectivity() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let nets = create_everywhere(&lab, "net1", &[])?;
    let c1 = lab.host(1).container("c1")?;
    let c2 = lab.host(2).container("c2")?;
    let e1 = podman::exec(&nets[0], "c1", &["192.168.120.1"], None);
    let e2 = podman::exec(&nets[1], "c2", &["192.168.120.2"], None);
    setup(lab.host(1), &c1, &e1)?;
    setup(lab.host(2), &c2, &e2)?;
    c1.wait_ping("192.168.120.2", Duration::from_secs(15))?;

    let started = Instant::now();
    reboot(lab.host(1))?;
    reboot(lab.host(2))?;
    // Host 1 runs the boot-time gc (the systemd unit) first; host 2 does not, and setup
    // replaces the stale port by itself.
    let dir1 = network_dir(&lab, 1)?;
    let cleaned = gc_json(lab.host(1), &dir1, &[])?;
    assert_eq!(gc_items(&cleaned, "removed").len(), 1, "{cleaned:#}");
    assert_eq!(
        lab.host(2).container_ports()?.len(),
        1,
        "stale port still there"
    );
    let restarted = Instant::now();
    setup(lab.host(1), &c1, &e1)?;
    setup(lab.host(2), &c2, &e2)?;
    let back = time_until_ping(&c1, "192.168.120.2", Duration::from_secs(30))?;
    println!(
        "reboot: traffic back {back:?} after the containers were set up again ({:?} for the \
         whole reboot)",
        started.elapsed()
    );
    c2.wait_ping("192.168.120.1", Duration::from_secs(10))?;
    println!(
        "reboot: setups took {:?}",
        restarted.elapsed().saturating_sub(back)
    );
    for i in 1..=2 {
        assert_eq!(lab.host(i).container_ports()?.len(), 1);
        assert_eq!(gv_links(lab.host(i))?.len(), 1);
    }
    time_until("BFD up after the reboot", Duration::from_secs(20), || {
        Ok(bfd_state(lab.host(1))? == "up")
    })?;
    assert_eq!(status_json(lab.host(1), &dir1)?.0, 0);
    Ok(())
}

#[test]
fn gc_of_a_non_internal_network_takes_gateway_and_firewall_rules_along() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    let dir = network_dir(&lab, 1)?;
    let mut open = podman::network("web", SUBNET, None, &[]);
    open["internal"] = false.into();
    let net = create(h1, &open)?;
    save_network(&dir, &net)?;
    let vni = net["options"]["vni"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let gateway = format!("gw{vni}");
    let nft = || -> Result<String> {
        let out = h1.exec("nft", &["list", "table", "inet", "geneve_ovs"]);
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };

    let c = h1.container("c1")?;
    let mut exec = podman::exec(&net, "c1", &["192.168.120.10"], None);
    exec["port_mappings"] = serde_json::json!([{"container_port": 80, "host_ip": "",
        "host_port": 8080, "protocol": "tcp", "range": 1}]);
    setup(h1, &c, &exec)?;
    let bridge = net["network_interface"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(h1.vsctl(&["list-ports", &bridge])?.contains(&gateway));
    let table = nft()?;
    assert!(
        table.contains("masquerade") && table.contains(&format!("\"{gateway}\"")),
        "{table}"
    );
    assert!(
        table.contains("tcp . 8080 : 192.168.120.10"),
        "no DNAT element for -p 8080:80: {table}"
    );

    // The container goes without a teardown (a crash): gc takes its port and the container's
    // published port. The network's own parts (its gateway port, and the gateway in the NAT
    // and isolation sets) stay while the network exists, as after a teardown of its last
    // container: the next container's setup must not race the last one's teardown over them.
    drop(c);
    let done = gc_json(h1, &dir, &[])?;
    // The kernel destroys a deleted namespace's veths a moment later, in the background: gc
    // may still find the container's host veth and remove it too. That one is not counted.
    let removed: Vec<(String, String)> = gc_items(&done, "removed")
        .into_iter()
        .filter(|(kind, _)| kind != "veth")
        .collect();
    assert_eq!(removed.len(), 1, "{done:#}");
    assert!(
        !removed.contains(&("port".to_string(), gateway.clone())),
        "{done:#}"
    );
    assert!(h1.vsctl(&["list-ports", &bridge])?.contains(&gateway));
    let table = nft()?;
    assert!(
        !table.contains("8080") && !table.contains("192.168.120.10"),
        "the crashed container's published port survived gc: {table}"
    );

    // podman network rm: the bridge goes too.
    forget_network(&dir, "web")?;
    let done = gc_json(h1, &dir, &[])?;
    assert_eq!(
        gc_items(&done, "removed"),
        [("bridge".to_string(), bridge.clone())],
        "{done:#}"
    );
    assert!(!h1.vsctl(&["list-br"])?.contains(&bridge));
    // With no network left that needs it, the table goes, NAT rules and all.
    let tables = h1.exec_ok("nft", &["list", "tables"])?;
    assert!(!tables.contains("geneve_ovs"), "{tables}\n{}", nft()?);
    Ok(())
}
