//! The nftables state of non-internal networks, with the plugin binary on simulated hosts:
//! published ports take only traffic addressed to their host, the host reaches them through
//! 127.0.0.1 and its own address, hairpin works, concurrent setups lose nothing, a dead
//! container's ports never serve a newcomer with its address, a taken port and a mapping that
//! cannot be rendered are refused by name.

mod common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::background::Background;
use common::cmd::Cmd;
use common::operate::spawn_plugin;
use common::podman::{self, create, error_of, ok_json, setup, teardown};
use common::{Container, Host, Lab, Underlay};
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_secs(15);
const SUBNET: &str = "192.168.120.0/24";

fn open_network(name: &str, peers: &str) -> Value {
    let mut net = podman::network(name, SUBNET, None, &[("peers", peers)]);
    net["internal"] = false.into();
    net
}

/// Gives the lab's underlay switch the address 10.99.0.254: a client outside the hosts.
fn make_outside(lab: &Lab) -> Result<()> {
    Cmd::in_netns(
        &lab.switch_netns(),
        "ip",
        &["addr", "add", "10.99.0.254/24", "dev", "br0"],
    )
    .run()?;
    Ok(())
}

fn with_ports(mut exec: Value, ports: Value) -> Value {
    exec["port_mappings"] = ports;
    exec
}

fn tcp(host_port: u16, container_port: u16) -> Value {
    json!({"container_port": container_port, "host_ip": "", "host_port": host_port,
           "protocol": "tcp", "range": 1})
}

/// A web server in namespace `netns` on `port` whose /id answers `body`; stopped on drop.
fn web_server(lab: &Lab, netns: &str, port: u16, body: &str) -> Result<Background> {
    let dir = lab.dir().join(format!("www-{netns}-{port}"));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("id"), body)?;
    let log = lab.dir().join(format!("httpd-{netns}-{port}.log"));
    Background::start(
        netns,
        "busybox",
        &[
            "httpd",
            "-f",
            "-p",
            &port.to_string(),
            "-h",
            dir.to_str().context("www dir")?,
        ],
        &log,
    )
}

/// What `wget http://target/id` gets from namespace `netns` (None when it fails).
fn fetch(netns: &str, target: &str) -> Option<String> {
    let out = Cmd::in_netns(
        netns,
        "busybox",
        // (Debian's busybox wget crashes with -T: the command's timeout bounds it.)
        &["wget", "-q", "-O", "-", &format!("http://{target}/id")],
    )
    .timeout(Duration::from_secs(4))
    .output()
    .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Waits until `target` answers from `netns`, and returns the answer.
fn fetch_eventually(netns: &str, target: &str) -> Result<String> {
    let mut body = None;
    common::wait::until(&format!("{target} to answer from {netns}"), SETTLE, || {
        body = fetch(netns, target);
        Ok(body.is_some())
    })?;
    body.context("no answer")
}

fn nft_table(host: &Host) -> String {
    let out = host.exec("nft", &["list", "table", "inet", "geneve_ovs"]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The elements of the plugin's DNAT maps on `host`, as `nft -j` lists them.
fn dnat_elements(host: &Host) -> Result<Vec<Value>> {
    let out = host.exec("nft", &["-j", "list", "table", "inet", "geneve_ovs"]);
    if !out.status.success() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("map"))
        .filter(|m| m["name"].as_str().is_some_and(|n| n.starts_with("dnat")))
        .flat_map(|m| m["elem"].as_array().cloned().unwrap_or_default())
        .collect())
}

#[test]
fn published_ports_take_only_traffic_addressed_to_their_host() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    make_outside(&lab)?;
    let peers = "10.99.0.1,10.99.0.2";
    let net = create(lab.host(1), &open_network("web", peers))?;
    create(lab.host(2), &open_network("web", peers))?;
    let h1 = lab.host(1);
    let srv = h1.container("srv")?;
    let client = h1.container("client")?;
    setup(
        h1,
        &srv,
        &with_ports(
            podman::exec(&net, "srv", &["192.168.120.10"], None),
            json!([tcp(8080, 80)]),
        ),
    )?;
    setup(
        h1,
        &client,
        &podman::exec(&net, "client", &["192.168.120.11"], None),
    )?;
    let _srv_httpd = web_server(&lab, srv.name(), 80, "srv")?;
    // "The outside": host 2's own address, a server of its own on the published port.
    let _outside_httpd = web_server(&lab, lab.host(2).name(), 8080, "outside")?;

    // From outside, the published port reaches the container.
    assert_eq!(
        fetch_eventually(&lab.switch_netns(), "10.99.0.1:8080")?,
        "srv"
    );
    // A container's connection to an outside address on that port reaches the outside.
    assert_eq!(
        fetch_eventually(client.name(), "10.99.0.2:8080")?,
        "outside",
        "a connection to another host was taken by the published container"
    );
    // The host itself, through 127.0.0.1 and through its own address.
    assert_eq!(fetch_eventually(h1.name(), "127.0.0.1:8080")?, "srv");
    assert_eq!(fetch_eventually(h1.name(), "10.99.0.1:8080")?, "srv");
    // Hairpin: a container of the same network through the host's address and its gateway.
    assert_eq!(fetch_eventually(client.name(), "10.99.0.1:8080")?, "srv");
    assert_eq!(
        fetch_eventually(client.name(), "192.168.120.1:8080")?,
        "srv"
    );
    // A container cannot reach the host's loopback services through route_localnet.
    let _loopback_only = web_server(&lab, h1.name(), 9999, "host loopback")?;
    assert_eq!(
        fetch_eventually(h1.name(), "127.0.0.1:9999")?,
        "host loopback"
    );
    let sneaky = client.exec(
        "ip",
        &["route", "add", "127.0.0.0/8", "via", "192.168.120.1"],
    );
    ensure!(
        sneaky.status.success(),
        "{}",
        String::from_utf8_lossy(&sneaky.stderr)
    );
    assert_eq!(fetch(client.name(), "127.0.0.1:9999"), None);
    Ok(())
}

#[test]
fn ten_parallel_setups_publish_every_port_and_teardowns_leave_no_element() -> Result<()> {
    const N: usize = 10;
    let lab = Lab::new(1, Underlay::V4)?;
    make_outside(&lab)?;
    let h1 = lab.host(1);
    let net = create(h1, &open_network("web", ""))?;
    let containers: Vec<Container> = (0..N)
        .map(|i| h1.container(&format!("p{i}")))
        .collect::<Result<_>>()?;
    let jobs: Arc<Vec<(String, String)>> = Arc::new(
        containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let ip = format!("192.168.120.{}", i + 10);
                let exec = with_ports(
                    podman::exec(&net, &format!("p{i}"), &[&ip], None),
                    json!([tcp(8000 + i as u16, 80)]),
                );
                (c.netns_path().display().to_string(), exec.to_string())
            })
            .collect(),
    );
    let ns = h1.netns_path();
    let rundir = h1.ovs_rundir().to_path_buf();
    let run = |command: &'static str| -> Vec<std::process::Output> {
        let barrier = Arc::new(std::sync::Barrier::new(N));
        let threads: Vec<_> = (0..N)
            .map(|i| {
                let (jobs, ns, rundir, barrier) =
                    (jobs.clone(), ns.clone(), rundir.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let (netns, input) = &jobs[i];
                    barrier.wait();
                    Cmd::new("ip")
                        .args(["netns", "exec"])
                        .arg(ns.file_name().unwrap_or_default())
                        .arg(common::host::PLUGIN_BIN)
                        .args([command, netns.as_str()])
                        .env_clear()
                        .env("OVS_RUNDIR", &rundir)
                        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                        .stdin(input.as_bytes())
                        .output_lossy()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("worker thread"))
            .collect()
    };
    for (i, out) in run("setup").iter().enumerate() {
        ok_json(out).with_context(|| format!("setup {i}"))?;
    }
    let servers: Vec<Background> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| web_server(&lab, c.name(), 80, &format!("p{i}")))
        .collect::<Result<_>>()?;
    assert_eq!(dnat_elements(h1)?.len(), 2 * N, "{}", nft_table(h1));
    for i in 0..N {
        let target = format!("10.99.0.1:{}", 8000 + i);
        assert_eq!(
            fetch_eventually(&lab.switch_netns(), &target)?,
            format!("p{i}"),
            "{}",
            nft_table(h1)
        );
    }
    drop(servers);
    for (i, out) in run("teardown").iter().enumerate() {
        ensure!(
            out.status.success(),
            "teardown {i}: {}",
            common::cmd::describe(out)
        );
    }
    let left = dnat_elements(h1)?;
    assert!(left.is_empty(), "{left:?}\n{}", nft_table(h1));
    let table = nft_table(h1);
    assert!(!table.contains("192.168.120."), "{table}");
    Ok(())
}

#[test]
fn a_killed_setups_ports_never_serve_a_container_reusing_its_address() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    make_outside(&lab)?;
    let h1 = lab.host(1);
    let net = create(h1, &open_network("web", ""))?;
    let victim = h1.container("victim")?;
    let exec = with_ports(
        podman::exec(&net, "victim", &["192.168.120.50"], None),
        json!([tcp(9090, 80)]),
    );
    let mut child = spawn_plugin(
        h1,
        &["setup", &victim.netns_path().display().to_string()],
        &exec.to_string(),
    )?;
    // SIGKILL as soon as its port is published (or right after it finished).
    common::wait::until("the victim's port in the table", SETTLE, || {
        Ok(nft_table(h1).contains("9090") || child.try_wait()?.is_some())
    })?;
    let _ = child.kill();
    child.wait()?;
    ensure!(
        nft_table(h1).contains("9090"),
        "the setup never published its port: {}",
        nft_table(h1)
    );
    // No teardown ran; the container is gone. A new one gets its address and asks for 8080.
    drop(victim);
    let fresh = h1.container("fresh")?;
    setup(
        h1,
        &fresh,
        &with_ports(
            podman::exec(&net, "fresh", &["192.168.120.50"], None),
            json!([tcp(8080, 80)]),
        ),
    )?;
    let table = nft_table(h1);
    assert!(
        !table.contains("9090"),
        "the dead container's port serves the new one: {table}"
    );
    assert!(table.contains("8080"), "{table}");
    let _httpd = web_server(&lab, fresh.name(), 80, "fresh")?;
    assert_eq!(
        fetch_eventually(&lab.switch_netns(), "10.99.0.1:8080")?,
        "fresh"
    );
    assert_eq!(fetch(&lab.switch_netns(), "10.99.0.1:9090"), None);
    // And a container without -p on that address publishes nothing at all.
    teardown(
        h1,
        &fresh.netns_path().display().to_string(),
        &podman::exec(&net, "fresh", &["192.168.120.50"], None),
    )?;
    assert!(dnat_elements(h1)?.is_empty(), "{}", nft_table(h1));
    Ok(())
}

#[test]
fn a_taken_port_and_a_mapping_that_cannot_be_rendered_are_refused_by_name() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    make_outside(&lab)?;
    let h1 = lab.host(1);
    let net = create(h1, &open_network("web", ""))?;
    let first = h1.container("first")?;
    setup(
        h1,
        &first,
        &with_ports(
            podman::exec(&net, "first", &["192.168.120.10"], None),
            json!([tcp(8080, 80)]),
        ),
    )?;
    let ports_before = h1.container_ports()?;
    let second = h1.container("second")?;
    let netns = second.netns_path().display().to_string();
    let out = h1.plugin(
        &["setup", &netns],
        &with_ports(
            podman::exec(&net, "second", &["192.168.120.11"], None),
            json!([tcp(8080, 8080)]),
        )
        .to_string(),
    );
    let err = error_of(&out)?;
    assert!(
        err.contains("8080/tcp") && err.contains("container first"),
        "{err}"
    );
    assert_eq!(
        h1.container_ports()?,
        ports_before,
        "the refused port stayed"
    );

    let bad = json!([{"container_port": 80, "host_ip": "", "host_port": 8081,
                       "protocol": "icmp", "range": 1}]);
    let out = h1.plugin(
        &["setup", &netns],
        &with_ports(podman::exec(&net, "second", &["192.168.120.11"], None), bad).to_string(),
    );
    let err = error_of(&out)?;
    assert!(
        err.contains("-p 8081:80/icmp") && err.contains("unknown protocol"),
        "{err}"
    );
    assert_eq!(h1.container_ports()?, ports_before);
    let links = second.ip_json(&["link", "show"])?;
    assert_eq!(links.as_array().map(Vec::len), Some(1), "{links}");
    // The first container's port and the network's NAT are untouched.
    let _httpd = web_server(&lab, first.name(), 80, "first")?;
    assert_eq!(
        fetch_eventually(&lab.switch_netns(), "10.99.0.1:8080")?,
        "first"
    );
    Ok(())
}

/// The table's rules with their handles, as `nft -a` lists them: a rule rewritten by a
/// transaction gets a new handle.
fn rules_with_handles(host: &Host) -> Vec<String> {
    let out = host.exec("nft", &["-a", "list", "table", "inet", "geneve_ovs"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("# handle") && !l.starts_with("chain") && !l.starts_with("set"))
        .filter(|l| !l.starts_with("map") && !l.starts_with("table"))
        .map(str::to_string)
        .collect()
}

/// A network's next container without `-p` finds the table as this version writes it and
/// needs nothing in it: `setup` sends no transaction (the rules keep their handles) and the
/// container still gets out. A table whose stamped rule is gone (a table of an older version,
/// or edited by hand) is written again whole by the next `setup`, and a container with `-p`
/// still gets its element.
#[test]
fn a_setup_with_nothing_to_change_in_the_table_sends_no_transaction() -> Result<()> {
    let lab = Lab::new(1, Underlay::V4)?;
    make_outside(&lab)?;
    let h1 = lab.host(1);
    let net = create(h1, &open_network("web", "10.99.0.2"))?;
    let first = h1.container("first")?;
    setup(
        h1,
        &first,
        &podman::exec(&net, "first", &["192.168.120.10"], None),
    )?;
    let written = rules_with_handles(h1);
    ensure!(
        written.iter().any(|r| r.contains("geneve-ovs skeleton ")),
        "no stamped rule: {written:#?}"
    );

    let second = h1.container("second")?;
    setup(
        h1,
        &second,
        &podman::exec(&net, "second", &["192.168.120.11"], None),
    )?;
    assert_eq!(
        rules_with_handles(h1),
        written,
        "the second setup rewrote the rules"
    );
    second.wait_ping("10.99.0.254", SETTLE)?;

    // The stamped rule goes (as in a table an older version wrote): the next setup writes the
    // whole skeleton again.
    let stamped = written
        .iter()
        .find(|r| r.contains("geneve-ovs skeleton "))
        .context("stamped rule")?;
    let handle = stamped.rsplit("# handle ").next().context("handle")?.trim();
    let chain = nft_table(h1)
        .lines()
        .scan(String::new(), |chain, line| {
            if let Some(name) = line.trim().strip_prefix("chain ") {
                *chain = name.trim_end_matches(" {").to_string();
            }
            Some((chain.clone(), line.to_string()))
        })
        .find(|(_, line)| line.contains("geneve-ovs skeleton "))
        .map(|(chain, _)| chain)
        .context("chain of the stamped rule")?;
    h1.exec_ok(
        "nft",
        &[
            "delete",
            "rule",
            "inet",
            "geneve_ovs",
            &chain,
            "handle",
            handle,
        ],
    )?;
    let third = h1.container("third")?;
    setup(
        h1,
        &third,
        &podman::exec(&net, "third", &["192.168.120.12"], None),
    )?;
    let rewritten = rules_with_handles(h1);
    ensure!(
        rewritten.iter().any(|r| r.contains("geneve-ovs skeleton ")),
        "the stamp was not written again: {rewritten:#?}"
    );
    ensure!(rewritten.len() == written.len(), "{rewritten:#?}");
    ensure!(rewritten != written, "the rules were not rewritten");
    let fourth = h1.container("fourth")?;
    setup(
        h1,
        &fourth,
        &with_ports(
            podman::exec(&net, "fourth", &["192.168.120.13"], None),
            json!([tcp(8080, 80)]),
        ),
    )?;
    ensure!(
        dnat_elements(h1)?
            .iter()
            .any(|e| e.to_string().contains("8080")),
        "no element for -p 8080"
    );
    Ok(())
}
