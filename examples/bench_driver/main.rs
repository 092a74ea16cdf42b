//! Benchmark driver for geneve-ovs, run inside a lab host by `contrib/bench/bench.sh`.
//!
//! It drives the plugin binary directly with the JSON podman sends and times each plugin process
//! alone (spawn to exit, and its peak RSS from `wait4`), printing one sample per line; and it
//! turns a run's samples into the results table and the plot data (`report`).
//!
//! ```text
//! bench_driver cycle PLUGIN NETWORK.json RUNS LABEL [FIRST_REP]   setup+teardown pairs
//! bench_driver fill PLUGIN NETWORK.json COUNT [SERIES] COUNT containers on one network
//! bench_driver create-peers PLUGIN RUNS FIRST_PEER N,N,...   create with N peers
//! bench_driver networks PLUGIN COUNT PEER [K=V...]     COUNT networks, one container each
//! bench_driver ovs-ports NETWORK.json COUNT           ovs-vsctl add-port alone, for reference
//! bench_driver flows COUNT                            port flows by ovs-ofctl and in-process
//! bench_driver report SAMPLES.tsv META.tsv OUTDIR     results.md and plot data
//! ```
//!
//! NETWORK.json is a network as podman saved it (`/etc/containers/networks/NAME.json`).

mod host;
mod loops;
mod plugin;
mod report;
mod requests;
mod stats;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use loops::Samples;
use plugin::Plugin;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench_driver: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut samples = Samples::new(std::io::stdout().lock());
    match args.as_slice() {
        ["cycle", plugin, network, runs, label, rest @ ..] if rest.len() <= 1 => loops::cycle(
            &plugin_at(plugin),
            &read_network(network)?,
            number(runs)?,
            label,
            rest.first().map_or(Ok(0), |r| number(r))?,
            &mut samples,
        ),
        ["fill", plugin, network, count, rest @ ..] if rest.len() <= 1 => loops::fill(
            &plugin_at(plugin),
            &read_network(network)?,
            number(count)?,
            rest.first().copied().unwrap_or("scale"),
            &mut samples,
        ),
        ["create-peers", plugin, runs, first, sizes] => {
            let sizes = sizes
                .split(',')
                .map(|s| s.parse().with_context(|| format!("peer count {s:?}")))
                .collect::<Result<Vec<u32>>>()?;
            loops::create_peers(
                &plugin_at(plugin),
                &sizes,
                address(first)?,
                number(runs)?,
                &mut samples,
            )
        }
        ["ovs-ports", network, count] => {
            let network = read_network(network)?;
            let datapath = network["options"]["datapath"]
                .as_str()
                .context("the network has no datapath option")?;
            loops::ovs_ports(datapath, number(count)?, &mut samples)
        }
        ["flows", count] => loops::flows(number(count)?, &mut samples),
        ["networks", plugin, count, peer, options @ ..] => loops::networks(
            &plugin_at(plugin),
            number(count)?,
            address(peer)?,
            &options
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .with_context(|| format!("option {kv:?} is not KEY=VALUE"))
                })
                .collect::<Result<Vec<_>>>()?,
            &mut samples,
        ),
        ["report", samples_tsv, meta_tsv, dir] => {
            let data = report::Data::load(Path::new(samples_tsv), Path::new(meta_tsv))?;
            report::write(&data, Path::new(dir))
        }
        _ => bail!("unknown command or arguments {args:?}; see the doc comment of main.rs"),
    }
}

fn plugin_at(path: &str) -> Plugin {
    Plugin {
        path: PathBuf::from(path),
    }
}

fn read_network(path: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))
}

fn number(text: &str) -> Result<usize> {
    text.parse()
        .with_context(|| format!("not a count: {text:?}"))
}

fn address(text: &str) -> Result<Ipv4Addr> {
    text.parse()
        .with_context(|| format!("not an IPv4 address: {text:?}"))
}
