//! `geneve-ovs peers NETWORK list|add ADDR...|remove ADDR...`: change which hosts a running
//! network reaches, on this host.
//!
//! [`crate::membership`] decides (and refuses an add whose address range would overlap); this
//! applies, in the order that keeps a failure recoverable: podman's saved network first
//! (atomically: [`netconf::set_option`]), because every later `setup` reconciles the tunnels
//! to it, then the tunnels themselves, then the underlay filter. Running the same command again
//! finishes whatever a failure left undone. Holds the host lock exclusively, so no `setup`,
//! `teardown` or `gc` is half-way while the network changes.

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{connect_ovs, lock_host, refresh_underlay, LiveHost, Reply};
use crate::cli::{PeersAction, PeersArgs};
use crate::lock::Mode;
use crate::membership::{self, Change};
use crate::netconf;
use crate::options::{self, Datapath, HostFacts, Stage};
use crate::types::Network;

#[derive(Debug, Serialize)]
struct Host {
    /// `null` for this host.
    address: Option<String>,
    /// Its address range in each subnet, where known.
    ranges: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ListReport {
    network: String,
    peers: Vec<String>,
    hosts: Vec<Host>,
}

#[derive(Debug, Serialize)]
struct ChangeReport {
    network: String,
    peers: Vec<String>,
    added: Vec<String>,
    removed: Vec<String>,
    unchanged: Vec<String>,
}

fn strings(hosts: &[std::net::IpAddr]) -> Vec<String> {
    hosts.iter().map(ToString::to_string).collect()
}

pub fn run(args: &PeersArgs) -> Result<Reply> {
    let change = match &args.action {
        PeersAction::List => None,
        PeersAction::Add { addresses } => {
            Some(Change::Add(membership::parse_addresses(addresses)?))
        }
        PeersAction::Remove { addresses } => {
            Some(Change::Remove(membership::parse_addresses(addresses)?))
        }
    };
    let dir = netconf::dir_from(args.network_config_dir.as_deref());
    let Some(change) = change else {
        let (network, _) = load(&dir, &args.network)?;
        return list(&network, args.json);
    };
    // Locked before reading, so that two changes of one network cannot both start from the
    // same file and each drop the other's host.
    let _lock = lock_host(Mode::Exclusive)?;
    let (mut network, file) = load(&dir, &args.network)?;
    refuse_ovn(&network)?;
    // Connected before anything changes: OVS being down leaves the saved network as it was.
    let mut ovs = connect_ovs()?;
    let local = LiveHost::new(&mut ovs).local_addresses()?;
    let plan = membership::plan(&network, &change, &local)?;

    if !plan.changed.is_empty() {
        netconf::set_option(&file, "peers", &plan.peers_option())?;
    }
    network
        .options
        .get_or_insert_with(Default::default)
        .insert("peers".to_string(), plan.peers_option());
    let cfg = options::resolve(&network, Stage::Saved, &mut LiveHost::new(&mut ovs))?;
    ovs.ensure_network(&cfg).with_context(|| {
        format!(
            "podman's saved network {} now lists peers {:?}, but the tunnels of bridge {} could \
             not be changed to match: run the command again once Open vSwitch is healthy (the \
             next container start on this network also reconciles them)",
            file.display(),
            plan.peers_option(),
            cfg.bridge
        )
    })?;
    if cfg.datapath == Datapath::System {
        // As in `create`: defence in depth, not a condition for the tunnels to work.
        if let Err(err) = refresh_underlay(&mut ovs) {
            log::warn!("GENEVE underlay filter not refreshed: {err:#}");
        }
    }

    let (added, removed) = match change {
        Change::Add(_) => (strings(&plan.changed), Vec::new()),
        Change::Remove(_) => (Vec::new(), strings(&plan.changed)),
    };
    let report = ChangeReport {
        network: network.name.clone(),
        peers: strings(&plan.peers),
        added,
        removed,
        unchanged: strings(&plan.unchanged),
    };
    let text = if args.json {
        serde_json::to_string_pretty(&report)?
    } else {
        let mut lines = Vec::new();
        lines.extend(report.added.iter().map(|h| format!("added {h}")));
        lines.extend(report.removed.iter().map(|h| format!("removed {h}")));
        lines.extend(
            report
                .unchanged
                .iter()
                .map(|h| format!("{h} is already a peer")),
        );
        lines.push(format!(
            "network {}: peers {}",
            report.network,
            if report.peers.is_empty() {
                "(none)".to_string()
            } else {
                report.peers.join(",")
            }
        ));
        lines.join("\n")
    };
    Ok(Reply::text(text))
}

/// The saved network `name` of `dir`, and its file.
fn load(dir: &std::path::Path, name: &str) -> Result<(Network, std::path::PathBuf)> {
    let saved = netconf::load(dir)?;
    let Some(entry) = saved.named(name) else {
        bail!(
            "no geneve-ovs network {name:?} in {} ('podman network ls' lists the networks; \
             --network-config-dir names another directory)",
            dir.display()
        );
    };
    let text = std::fs::read_to_string(&entry.file)
        .with_context(|| format!("cannot read {}", entry.file.display()))?;
    let network: Network = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a network podman saved", entry.file.display()))?;
    Ok((network, entry.file.clone()))
}

/// An OVN network has no peers to change: its hosts join through the OVN databases.
fn refuse_ovn(network: &Network) -> Result<()> {
    let req = options::parse(&network.options())?;
    if !req.ovn.is_empty() {
        anyhow::bail!(
            "network {} uses OVN (option ovn): it has no peers to list or change, because each \
             host joins it alone through the OVN databases (podman network create with the same \
             --opt ovn=... on the new host); see `geneve-ovs status` for the chassis it spans",
            network.name
        );
    }
    Ok(())
}

fn list(network: &Network, json: bool) -> Result<Reply> {
    refuse_ovn(network)?;
    let req = options::parse(&network.options())?;
    let hosts: Vec<Host> = membership::ranges(network)?
        .into_iter()
        .map(|(address, ranges)| Host {
            address: address.map(|a| a.to_string()),
            ranges,
        })
        .collect();
    let report = ListReport {
        network: network.name.clone(),
        peers: strings(&req.peers),
        hosts,
    };
    if json {
        return Ok(Reply::text(serde_json::to_string_pretty(&report)?));
    }
    let mut lines = vec![format!(
        "network {} ({})",
        report.network,
        match req.hosts {
            Some(n) => format!("room for {n} hosts: a host's range is its slot, address mod {n}"),
            None => "its subnets are shared among the hosts it was created with".to_string(),
        }
    )];
    lines.push(format!("{:<40} RANGES", "HOST"));
    for host in &report.hosts {
        let name = host
            .address
            .clone()
            .unwrap_or_else(|| "(this host)".to_string());
        let ranges = if host.ranges.is_empty() {
            "(known to that host)".to_string()
        } else {
            host.ranges.join(" ")
        };
        lines.push(format!("{name:<40} {ranges}"));
    }
    Ok(Reply::text(lines.join("\n")))
}
