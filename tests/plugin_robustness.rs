//! The plugin under abuse: killed at random points of `setup` and `teardown`, and run 20 times
//! at once on one network without podman's lock. Afterwards the host must hold exactly what
//! the surviving containers need, and the network must still work.

mod common;

use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use common::operate::{gc_items, gc_json, gv_links, network_dir, spawn_plugin};
use common::podman::{self, create, ok_json, setup, teardown};
use common::{Container, Lab, Underlay};
use serde_json::Value;

const SUBNET: &str = "192.168.120.0/24";

/// A small deterministic generator (xorshift64*), seeded from the clock and printed, so that
/// a failing run can be replayed by setting GENEVE_OVS_TEST_SEED.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("GENEVE_OVS_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        println!("seed {seed} (set GENEVE_OVS_TEST_SEED to replay)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn sigkill_at_random_points_then_teardown_and_gc_converge() -> Result<()> {
    const ITERATIONS: usize = 200;
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    let dir = network_dir(&lab, 1)?;
    let net = create(h1, &podman::network("net1", SUBNET, None, &[]))?;
    common::operate::save_network(&dir, &net)?;
    // A bystander that must survive everything.
    let peer = h1.container("peer")?;
    let peer_exec = podman::exec(&net, "peer", &["192.168.120.2"], None);
    setup(h1, &peer, &peer_exec)?;
    let peer_port = h1.container_ports()?;

    let victim = h1.container("victim")?;
    let netns = victim.netns_path().display().to_string();
    let exec = podman::exec(&net, "victim", &["192.168.120.1"], None).to_string();
    let mut rng = Rng::new();
    let started = Instant::now();
    let (mut killed, mut finished) = (0, 0);
    for i in 0..ITERATIONS {
        let command = if i % 2 == 0 { "setup" } else { "teardown" };
        let mut child = spawn_plugin(h1, &[command, &netns], &exec)?;
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        if child.try_wait()?.is_none() {
            child.kill()?;
            killed += 1;
        } else {
            finished += 1;
        }
        child.wait()?;
    }
    println!(
        "{ITERATIONS} runs in {:?}: {killed} killed half-way, {finished} had finished",
        started.elapsed()
    );

    // What podman does after a failed setup: teardown. It must clean up whatever state the
    // last kill left.
    teardown(
        h1,
        &netns,
        &podman::exec(&net, "victim", &["192.168.120.1"], None),
    )?;
    assert_eq!(h1.container_ports()?, peer_port, "a port leaked");
    assert_eq!(gv_links(h1)?, peer_port, "a veth leaked");
    let inside = victim.ip_json(&["link", "show"])?;
    assert_eq!(inside.as_array().map(Vec::len), Some(1), "{inside}");
    let gc = gc_json(h1, &dir, &[])?;
    assert!(gc_items(&gc, "removed").is_empty(), "{gc:#}");

    // The network still works, for the bystander and for a fresh setup.
    setup(
        h1,
        &victim,
        &podman::exec(&net, "victim", &["192.168.120.1"], None),
    )?;
    victim.wait_ping("192.168.120.2", Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn sigkill_leftovers_without_teardown_are_found_by_gc() -> Result<()> {
    // podman's own teardown after a failed setup may be killed too, and the container's
    // namespace then removed: only gc can find what is left.
    const ITERATIONS: usize = 30;
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    let dir = network_dir(&lab, 1)?;
    let net = create(h1, &podman::network("net1", SUBNET, None, &[]))?;
    common::operate::save_network(&dir, &net)?;
    let peer = h1.container("peer")?;
    setup(
        h1,
        &peer,
        &podman::exec(&net, "peer", &["192.168.120.2"], None),
    )?;
    let peer_port = h1.container_ports()?;

    let mut rng = Rng::new();
    let started = Instant::now();
    for i in 0..ITERATIONS {
        let c = h1.container(&format!("v{i}"))?;
        let netns = c.netns_path().display().to_string();
        let exec = podman::exec(&net, &format!("v{i}"), &["192.168.120.10"], None).to_string();
        let mut child = spawn_plugin(h1, &["setup", &netns], &exec)?;
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        let _ = child.kill();
        child.wait()?;
        // The container is gone (namespace deleted), no teardown ran.
        drop(c);
    }
    let leftovers = h1.container_ports()?.len() - peer_port.len();
    let gc = gc_json(h1, &dir, &[])?;
    println!(
        "{ITERATIONS} killed setups in {:?} left {leftovers} port(s); gc removed {:?}",
        started.elapsed(),
        gc_items(&gc, "removed")
    );
    assert_eq!(h1.container_ports()?, peer_port);
    assert_eq!(gv_links(h1)?, peer_port);
    assert!(gc_items(&gc, "failed").is_empty(), "{gc:#}");
    let c = h1.container("fresh")?;
    setup(
        h1,
        &c,
        &podman::exec(&net, "fresh", &["192.168.120.1"], None),
    )?;
    c.wait_ping("192.168.120.2", Duration::from_secs(10))?;
    Ok(())
}

/// Runs `work` for every item on its own thread at the same moment; results in order.
fn all_at_once<T: Send + 'static>(
    n: usize,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let work = Arc::new(work);
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (work, barrier) = (work.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                work(i)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("worker thread"))
        .collect()
}

#[test]
fn twenty_parallel_setups_and_teardowns_on_one_network() -> Result<()> {
    const N: usize = 20;
    let lab = Lab::new(1, Underlay::V4)?;
    let h1 = lab.host(1);
    let net = create(h1, &podman::network("net1", SUBNET, None, &[]))?;
    let containers: Vec<Container> = (0..N)
        .map(|i| h1.container(&format!("p{i}")))
        .collect::<Result<_>>()?;
    let execs: Vec<Value> = (0..N)
        .map(|i| {
            let ip = format!("192.168.120.{}", i + 1);
            podman::exec(&net, &format!("p{i}"), &[&ip], None)
        })
        .collect();
    let jobs: Arc<Vec<(String, String)>> = Arc::new(
        containers
            .iter()
            .zip(&execs)
            .map(|(c, e)| (c.netns_path().display().to_string(), e.to_string()))
            .collect(),
    );
    // Each thread needs the host; the lab is not Sync-shareable across 'static threads, so
    // the plugin is spawned directly with the host's parameters.
    let ns = h1.netns_path();
    let rundir = h1.ovs_rundir().to_path_buf();
    let run = move |command: &'static str| {
        let (jobs, ns, rundir) = (jobs.clone(), ns.clone(), rundir.clone());
        move |i: usize| -> (Duration, Output) {
            let (netns, input) = &jobs[i];
            let started = Instant::now();
            let out = common::cmd::Cmd::new("ip")
                .args(["netns", "exec"])
                .arg(ns.file_name().unwrap_or_default())
                .arg(common::host::PLUGIN_BIN)
                .args([command, netns.as_str()])
                .env_clear()
                .env("OVS_RUNDIR", &rundir)
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(input.as_bytes())
                .output_lossy();
            (started.elapsed(), out)
        }
    };

    let started = Instant::now();
    let setups = all_at_once(N, run("setup"));
    let wall = started.elapsed();
    for (i, (_, out)) in setups.iter().enumerate() {
        ok_json(out).map_err(|e| e.context(format!("setup {i}")))?;
    }
    let slowest = setups.iter().map(|(d, _)| *d).max().unwrap_or_default();
    println!("{N} parallel setups: all done in {wall:?}, slowest {slowest:?}");
    let ports = h1.container_ports()?;
    assert_eq!(ports.len(), N, "{ports:?}");
    for port in &ports {
        h1.require_port_ok(port)?;
    }
    containers[0].wait_ping("192.168.120.20", Duration::from_secs(10))?;
    containers[19].wait_ping("192.168.120.1", Duration::from_secs(10))?;

    let started = Instant::now();
    let teardowns = all_at_once(N, run("teardown"));
    let wall = started.elapsed();
    for (i, (_, out)) in teardowns.iter().enumerate() {
        ensure!(
            out.status.success() && out.stdout.is_empty(),
            "teardown {i}: {}",
            common::cmd::describe(out)
        );
    }
    println!("{N} parallel teardowns: all done in {wall:?}");
    assert!(h1.container_ports()?.is_empty());
    assert!(gv_links(h1)?.is_empty());
    Ok(())
}
