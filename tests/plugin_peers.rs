//! `geneve-ovs peers`: hosts join and leave a running overlay, against real OVS in the netns
//! lab. Two hosts run containers; a third joins (`peers add` on the first two, `create` on the
//! third) and its container reaches theirs without either stopping; an add whose address range
//! would overlap is refused and changes nothing; a removed host's tunnel goes and stays gone
//! across later container starts; podman's saved file keeps every other field.

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::operate::{network_dir, operator, save_network};
use common::podman::{self, create, setup};
use common::{Host, Lab, Underlay};
use serde_json::Value;

const SUBNET: &str = "192.168.120.0/24";
const PING: Duration = Duration::from_secs(20);

/// The network file podman keeps for `name` in `dir`.
fn saved(dir: &Path, name: &str) -> Result<Value> {
    let file = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
    Ok(serde_json::from_str(&text)?)
}

/// The remote_ip of every tunnel of `host`, sorted.
fn tunnel_remotes(host: &Host) -> Result<Vec<String>> {
    let out = host.vsctl(&[
        "--bare",
        "--columns=options",
        "find",
        "Interface",
        "external_ids:geneve-ovs.role=tunnel",
    ])?;
    let mut remotes: Vec<String> = out
        .split(|c: char| c == ',' || c == '{' || c == '}' || c.is_whitespace())
        .filter_map(|kv| kv.trim().strip_prefix("remote_ip="))
        .map(|v| v.trim_matches('"').to_string())
        .collect();
    remotes.sort();
    Ok(remotes)
}

/// The first address of this host's lease range in the saved network.
fn first_lease(network: &Value) -> Result<String> {
    network["subnets"][0]["lease_range"]["start_ip"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no lease range in {network}"))
}

fn lease(network: &Value) -> Result<(u32, u32)> {
    let get = |k: &str| -> Result<u32> {
        let ip: std::net::Ipv4Addr = network["subnets"][0]["lease_range"][k]
            .as_str()
            .with_context(|| format!("no {k}"))?
            .parse()?;
        Ok(u32::from(ip))
    };
    Ok((get("start_ip")?, get("end_ip")?))
}

/// `peers` on `host`, with the host's network directory; exit code and stdout.
fn peers(lab: &Lab, i: usize, args: &[&str]) -> Result<(i32, String)> {
    let dir = network_dir(lab, i)?;
    let mut all = vec!["peers"];
    all.extend_from_slice(args);
    Ok(operator(lab.host(i), &dir, &all))
}

#[test]
fn a_host_joins_and_leaves_a_running_overlay() -> Result<()> {
    let lab = Lab::new(3, Underlay::V4)?;
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    let ip = |h: &Host| h.underlay_ip().to_string();
    let first_two = format!("{},{}", ip(h1), ip(h2));
    let opts = [("peers", first_two.as_str()), ("hosts", "4")];

    // Two hosts, a container on each.
    let mut nets = Vec::new();
    for i in 1..=2 {
        let net = create(lab.host(i), &podman::network("net1", SUBNET, None, &opts))?;
        save_network(&network_dir(&lab, i)?, &net)?;
        nets.push(net);
    }
    let c1 = h1.container("c1")?;
    let c1_ip = first_lease(&nets[0])?;
    setup(h1, &c1, &podman::exec(&nets[0], "c1", &[&c1_ip], None))?;
    let c2 = h2.container("c2")?;
    let c2_ip = first_lease(&nets[1])?;
    setup(h2, &c2, &podman::exec(&nets[1], "c2", &[&c2_ip], None))?;
    c1.wait_ping(&c2_ip, PING)?;
    let before = saved(&network_dir(&lab, 1)?, "net1")?;

    // An address whose slot is this host's (10.99.0.5 mod 4 = 10.99.0.1 mod 4) is refused,
    // saying why, and nothing changes.
    let (code, out) = peers(&lab, 1, &["net1", "add", "10.99.0.5"])?;
    ensure!(code == 1, "overlapping add exited {code}: {out}");
    let (code, out) = peers(&lab, 1, &["net1", "--json", "add", "10.99.0.5"])?;
    ensure!(code == 1, "{out}");
    let err: Value = serde_json::from_str(&out)?;
    let err = err["error"].as_str().unwrap_or_default();
    ensure!(err.contains("overlaps this host's range"), "{err}");
    ensure!(
        saved(&network_dir(&lab, 1)?, "net1")? == before,
        "refused add changed the file"
    );
    ensure!(
        tunnel_remotes(h1)? == [ip(h2)],
        "refused add changed the tunnels"
    );

    // The third host joins: added on the running hosts, created on the new one.
    for i in 1..=2 {
        let (code, out) = peers(&lab, i, &["net1", "add", &ip(h3)])?;
        ensure!(code == 0, "peers add on h{i} exited {code}: {out}");
        ensure!(out.contains(&format!("added {}", ip(h3))), "{out}");
    }
    let (code, out) = peers(&lab, 1, &["net1", "add", &ip(h3)])?;
    ensure!(code == 0 && out.contains("already a peer"), "{code} {out}");
    ensure!(
        tunnel_remotes(h1)? == [ip(h2), ip(h3)],
        "{:?}",
        tunnel_remotes(h1)?
    );
    let after = saved(&network_dir(&lab, 1)?, "net1")?;
    let mut want = before.clone();
    want["options"]["peers"] = Value::String(format!("{},{}", ip(h2), ip(h3)));
    ensure!(
        after == want,
        "saved network changed beyond peers:\n{before}\n{after}"
    );
    let all = format!("{},{},{}", ip(h1), ip(h2), ip(h3));
    let net3 = create(
        h3,
        &podman::network("net1", SUBNET, None, &[("peers", &all), ("hosts", "4")]),
    )?;
    save_network(&network_dir(&lab, 3)?, &net3)?;
    let ranges = [lease(&nets[0])?, lease(&nets[1])?, lease(&net3)?];
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            ensure!(a.1 < b.0 || b.1 < a.0, "ranges overlap: {ranges:?}");
        }
    }
    let c3 = h3.container("c3")?;
    let c3_ip = first_lease(&net3)?;
    setup(h3, &c3, &podman::exec(&net3, "c3", &[&c3_ip], None))?;
    c3.wait_ping(&c1_ip, PING)?;
    c3.wait_ping(&c2_ip, PING)?;
    ensure!(c1.ping(&c2_ip), "c1 lost c2 while the third host joined");

    let (code, out) = peers(&lab, 1, &["net1", "list", "--json"])?;
    ensure!(code == 0, "{out}");
    let listed: Value = serde_json::from_str(&out)?;
    ensure!(
        listed["peers"] == serde_json::json!([ip(h2), ip(h3)]),
        "{listed}"
    );

    // The third host leaves h1's view: its tunnel goes, and a later container start, which
    // reads the saved network as podman passes it, does not bring it back.
    let (code, out) = peers(&lab, 1, &["net1", "remove", &ip(h3)])?;
    ensure!(code == 0, "peers remove exited {code}: {out}");
    ensure!(tunnel_remotes(h1)? == [ip(h2)], "{:?}", tunnel_remotes(h1)?);
    let (code, out) = peers(&lab, 1, &["net1", "remove", &ip(h3)])?;
    ensure!(code == 1, "removing a non-peer exited {code}: {out}");
    let now = saved(&network_dir(&lab, 1)?, "net1")?;
    ensure!(
        now == before,
        "after add and remove the file differs:\n{before}\n{now}"
    );
    let c4 = h1.container("c4")?;
    let (start, _) = lease(&now)?;
    let c4_ip = std::net::Ipv4Addr::from(start + 1).to_string();
    setup(h1, &c4, &podman::exec(&now, "c4", &[&c4_ip], None))?;
    ensure!(
        tunnel_remotes(h1)? == [ip(h2)],
        "setup brought back a removed peer"
    );
    c4.wait_ping(&c2_ip, PING)?;
    ensure!(c1.ping(&c2_ip), "c1 lost c2");
    Ok(())
}

#[test]
fn a_network_without_hosts_refuses_to_grow() -> Result<()> {
    let lab = Lab::new(2, Underlay::V4)?;
    let (h1, h2) = (lab.host(1), lab.host(2));
    let both = format!("{},{}", h1.underlay_ip(), h2.underlay_ip());
    let net = create(
        h1,
        &podman::network("net1", SUBNET, None, &[("peers", both.as_str())]),
    )?;
    let dir = network_dir(&lab, 1)?;
    save_network(&dir, &net)?;
    let before = saved(&dir, "net1")?;
    let (code, out) = peers(&lab, 1, &["net1", "--json", "add", "10.99.0.3"])?;
    ensure!(code == 1, "{out}");
    ensure!(out.contains("without option hosts"), "{out}");
    ensure!(saved(&dir, "net1")? == before);
    ensure!(tunnel_remotes(h1)? == [h2.underlay_ip().to_string()]);
    // Removing is always safe.
    let (code, out) = peers(&lab, 1, &["net1", "remove", &h2.underlay_ip().to_string()])?;
    ensure!(code == 0, "{out}");
    ensure!(tunnel_remotes(h1)?.is_empty(), "{:?}", tunnel_remotes(h1)?);
    ensure!(saved(&dir, "net1")?["options"]["peers"] == "");
    Ok(())
}
