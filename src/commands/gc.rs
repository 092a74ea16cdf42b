//! `geneve-ovs gc [--dry-run] [--json] [--network-config-dir DIR] [--netns-dir DIR]`: remove
//! what the plugin owns and nothing else, once it can no longer serve: ports of containers
//! whose namespace or veth is gone, leaked veths, bridges of networks podman removed.
//!
//! The rules are in [`crate::operate::gc`]. Holds the host lock exclusively, so no `setup` or
//! `teardown` is half-way while it looks.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{connect_ovs, lock_firewall, lock_host, ovs_rundir, Reply};
use crate::cli::GcArgs;
use crate::control;
use crate::firewall;
use crate::lock::Mode;
use crate::netconf;
use crate::netlink::Netlink;
use crate::ofctl::Ofctl;
use crate::operate::gc::{self, Action, GcItem, Step};
use crate::operate::host::{self, Vswitchd};
use crate::options;
use crate::ovn::northbound::Northbound;
use crate::ovn::plan::SwitchRemoval;
use crate::ovn::record;
use crate::ovs::snapshot::Scope;
use crate::ovs::Ovs;
use crate::ovsdb::Remote;
use crate::port_security;

/// The version of the JSON document.
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize)]
struct Failure {
    #[serde(flatten)]
    item: GcItem,
    error: String,
}

#[derive(Debug, Serialize)]
struct GcReport {
    version: u32,
    dry_run: bool,
    removed: Vec<GcItem>,
    kept: Vec<GcItem>,
    failed: Vec<Failure>,
    /// The bridges whose OpenFlow table (port security) was restored from the database.
    flows_restored: Vec<String>,
}

pub fn run(flags: &GcArgs) -> Result<Reply> {
    // clap refuses --dry-run with --flows-only: --flows-only changes nothing but the flows.
    let _lock = lock_host(Mode::Exclusive)?;
    let mut ovs = connect_ovs()?;
    let inventory = ovs.snapshot(Scope::Runtime)?;
    // More directories only ever keep more veths: the default is always among them.
    let mut netns_dirs = vec![PathBuf::from(host::DEFAULT_NETNS_DIR)];
    netns_dirs.extend(flags.netns_dir.iter().cloned());
    let host = host::gather(&ovs_rundir(), &inventory.netns_paths(), &netns_dirs)?;
    let dir = netconf::dir_from(flags.dir.network_config_dir.as_deref());
    let saved = netconf::load(&dir).map_err(|e| format!("{e:#}"));
    let mut plan = gc::plan(&inventory, &host, saved.as_ref().map_err(String::as_str));
    let (joined, unreadable) = record::read_all(&ovs.local_external_ids()?);
    let ovn_switches =
        gc::removed_ovn_networks(&joined, &unreadable, saved.as_ref().map_err(String::as_str));
    plan.steps.extend(ovn_switches.steps);
    plan.kept.extend(ovn_switches.kept);
    if flags.flows_only {
        // Right after an ovs-vswitchd restart: remove nothing (a `create` may be between
        // building its bridge and podman saving the network), only put the flows back.
        plan.steps.clear();
        plan.kept.clear();
    }

    let mut report = GcReport {
        version: VERSION,
        dry_run: flags.dry_run,
        removed: Vec::new(),
        kept: plan.kept,
        failed: Vec::new(),
        flows_restored: Vec::new(),
    };
    let vswitchd_running = matches!(host.vswitchd, Some(Vswitchd::Running { .. }));
    let netlink = if plan.steps.iter().any(|s| s.action == Action::DeleteVeth) {
        Some(Netlink::open()?)
    } else {
        None
    };
    // The container ports gc judged stale publish nothing, even if their removal failed.
    let stale: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::RemovePort { .. } => Some(s.item.name.clone()),
            _ => None,
        })
        .collect();
    // The switches last: the ports of this chassis that go are gone from them by then.
    let (switch_steps, steps): (Vec<Step>, Vec<Step>) = plan
        .steps
        .into_iter()
        .partition(|s| matches!(s.action, Action::RemoveOvnSwitch { .. }));
    for step in steps {
        let done = if flags.dry_run {
            Ok(())
        } else {
            match (&step.action, &netlink) {
                (Action::RemovePort { bridge, port }, _) => {
                    ovs.remove_owned_port(bridge, port, &step.item.name)
                }
                (Action::RemoveForeignPort { bridge, port }, _) => {
                    ovs.remove_owned_port_from_foreign_bridge(bridge, port, &step.item.name)
                }
                (
                    Action::RemoveOvnPort {
                        bridge,
                        port,
                        network,
                        logical_port,
                        remotes,
                    },
                    _,
                ) => ovs
                    .remove_owned_port_from_foreign_bridge(bridge, port, &step.item.name)
                    .and_then(|()| remove_logical_port(remotes, network, logical_port)),
                (Action::RemoveBridge { uuid, ports }, _) => {
                    match inventory.owned_bridges().find(|b| &b.uuid == uuid) {
                        Some(bridge) => control::for_bridge(bridge).remove_switch(
                            &mut ovs,
                            uuid,
                            &step.item.name,
                            ports,
                        ),
                        None => Err(anyhow::anyhow!(
                            "bridge {} is not in the inventory",
                            step.item.name
                        )),
                    }
                }
                (Action::DeleteVeth, Some(netlink)) => {
                    netlink.delete_link(&step.item.name).map(|_| ())
                }
                (Action::DeleteVeth, None) => Err(anyhow::anyhow!("no netlink socket")),
                (Action::RemoveOvnSwitch { .. }, _) => Ok(()),
            }
        };
        match done {
            Ok(()) => report.removed.push(step.item),
            Err(err) => report.failed.push(Failure {
                item: step.item,
                error: format!("{err:#}"),
            }),
        }
    }
    for step in switch_steps {
        remove_ovn_switch(&mut ovs, step, flags.dry_run, &mut report);
    }
    // The full reconcile of the nftables table, from what OVS holds after the removals.
    if !flags.dry_run {
        if let Err(err) = reconcile_firewall(&mut ovs, &stale) {
            report.failed.push(Failure {
                item: GcItem {
                    kind: "firewall",
                    name: format!("inet {}", firewall::TABLE),
                    network: None,
                    container_id: None,
                    reason: "the table must hold exactly what the live containers and the \
                             networks need"
                        .to_string(),
                },
                error: format!("{err:#}"),
            });
        }
    }
    // Whatever remains gets its flows back: after a reboot or an ovs-vswitchd restart the
    // tables are empty and the (fail_mode=secure) bridges drop everything until then.
    if !flags.dry_run && vswitchd_running {
        restore_flows(&mut ovs, &mut report);
    } else if !flags.dry_run {
        log::warn!("ovs-vswitchd is not running: no OpenFlow tables to restore");
    }
    let code = if report.failed.is_empty() { 0 } else { 1 };
    let text = if flags.json {
        serde_json::to_string_pretty(&report)?
    } else {
        render(&report)
    };
    Ok(Reply {
        stdout: Some(text),
        code,
    })
}

/// Removes the logical port of a stale OVN container port from the northbound database at
/// `remotes` (as the `ovn` option spelled them).
fn remove_logical_port(remotes: &str, network: &str, logical_port: &str) -> Result<()> {
    let remotes = parse_remotes(remotes).context("the port's OVN remotes")?;
    Northbound::connect(&remotes)?.remove_port(network, logical_port)?;
    Ok(())
}

/// Rule 5: removes an OVN network's switch if the northbound database says nothing keeps it
/// now, and forgets this host's record of the network once the switch is gone or is not
/// this network's. A switch in use stays, and so does the record: a later `gc` tries again.
fn remove_ovn_switch(ovs: &mut Ovs, step: Step, dry_run: bool, report: &mut GcReport) {
    let Action::RemoveOvnSwitch {
        network,
        remotes,
        identity,
        record_key,
    } = &step.action
    else {
        return;
    };
    let decided = parse_remotes(remotes).and_then(|remotes| {
        Northbound::connect(&remotes)?.remove_unused_switch(network, identity, dry_run)
    });
    let forget = match decided {
        Ok(SwitchRemoval::Remove { .. }) => {
            report.removed.push(step.item.clone());
            true
        }
        Ok(SwitchRemoval::Absent) => true,
        Ok(SwitchRemoval::InUse(why)) => {
            report.kept.push(GcItem {
                reason: why,
                ..step.item.clone()
            });
            false
        }
        Ok(SwitchRemoval::NotOurs(why)) => {
            report.kept.push(GcItem {
                reason: format!("{why}; this host forgets network {network:?}"),
                ..step.item.clone()
            });
            true
        }
        Err(err) => {
            report.failed.push(Failure {
                item: step.item.clone(),
                error: format!("{err:#}"),
            });
            false
        }
    };
    if !forget || dry_run {
        return;
    }
    let item = GcItem {
        kind: "record",
        name: record_key.clone(),
        network: Some(network.clone()),
        container_id: None,
        reason: format!(
            "this host's record of OVN network {network:?}, which podman no longer has"
        ),
    };
    match ovs.set_local_external_id(record_key, None) {
        Ok(()) => report.removed.push(item),
        Err(err) => report.failed.push(Failure {
            item,
            error: format!("{err:#}"),
        }),
    }
}

/// The northbound remotes as the `ovn` option spelled them.
fn parse_remotes(remotes: &str) -> Result<Vec<Remote>> {
    remotes
        .split(',')
        .map(|r| Remote::parse(r, options::OVN_NB_PORT))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|why| anyhow::anyhow!("the OVN remotes {remotes:?}: {why}"))
}

/// Replaces every owned bridge's OpenFlow table with what its rows say (port security).
fn restore_flows(ovs: &mut Ovs, report: &mut GcReport) {
    let ofctl = Ofctl::new(&ovs_rundir());
    let failure = |name: String, error: String| Failure {
        item: GcItem {
            kind: "flows",
            name,
            network: None,
            container_id: None,
            reason: "the bridge's OpenFlow table (port security) must be restored".to_string(),
        },
        error,
    };
    let offered = match ovs.datapath_types() {
        Ok(offered) => offered,
        Err(err) => {
            report.failed.push(failure(
                "(all bridges)".to_string(),
                format!("cannot read the datapath types ovs-vswitchd offers: {err:#}"),
            ));
            return;
        }
    };
    if let Ok(inventory) = ovs.snapshot(Scope::Runtime) {
        for (bridge, datapath) in port_security::unbuildable_bridges(&inventory, &offered) {
            report.kept.push(GcItem {
                kind: "flows",
                name: bridge,
                network: None,
                container_id: None,
                reason: format!(
                    "ovs-vswitchd offers no {} datapath, so it has not built this bridge and \
                     there is no OpenFlow table to restore (load the openvswitch kernel module \
                     and restart ovs-vswitchd)",
                    if datapath.is_empty() {
                        "system"
                    } else {
                        &datapath
                    }
                ),
            });
        }
    }
    match port_security::restore_all(&ofctl, &offered, || ovs.snapshot(Scope::Runtime)) {
        Ok(outcome) => {
            for (bridge, result) in outcome {
                match result {
                    Ok(_) => report.flows_restored.push(bridge),
                    Err(error) => report.failed.push(failure(bridge, error)),
                }
            }
        }
        Err(err) => report
            .failed
            .push(failure("(all bridges)".to_string(), format!("{err:#}"))),
    }
}

fn describe(item: &GcItem) -> String {
    let mut what = format!("{} {}", item.kind, item.name);
    match (&item.network, &item.container_id) {
        (Some(network), Some(id)) => what.push_str(&format!(
            " (container {} on network {network})",
            id.chars().take(12).collect::<String>()
        )),
        (Some(network), None) => what.push_str(&format!(" (network {network})")),
        _ => {}
    }
    format!("{what}: {}", item.reason)
}

fn render(report: &GcReport) -> String {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut lines: Vec<String> = report
        .removed
        .iter()
        .map(|i| format!("{verb} {}", describe(i)))
        .collect();
    lines.extend(report.failed.iter().map(|f| match f.item.kind {
        "flows" => format!("FAILED to restore {}: {}", describe(&f.item), f.error),
        _ => format!("FAILED to remove {}: {}", describe(&f.item), f.error),
    }));
    lines.extend(report.kept.iter().map(|i| format!("kept {}", describe(i))));
    if report.removed.is_empty() && report.failed.is_empty() {
        lines.push("nothing to remove".to_string());
    }
    lines.join("\n")
}

/// Empties the table's sets and maps and fills them from OVS: the gateway ports of the
/// non-internal networks, the published ports of every container port gc did not judge stale,
/// the underlay filter. The table goes when no network needs it.
fn reconcile_firewall(ovs: &mut crate::ovs::Ovs, stale: &[String]) -> Result<()> {
    let _lock = lock_firewall()?;
    let observed = ovs.snapshot(Scope::Config)?;
    let mut desired = firewall::elements::desired(&observed, |row| !stale.contains(&row.name));
    if !desired.ovn_gateways.is_empty() {
        desired.name_servers = crate::host_resolvers::read();
    }
    firewall::reconcile(&desired)
}
