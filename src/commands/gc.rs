//! `geneve-ovs gc [--dry-run] [--json] [--network-config-dir DIR] [--netns-dir DIR]`: remove
//! what the plugin owns and nothing else, once it can no longer serve: ports of containers
//! whose namespace or veth is gone, leaked veths, bridges of networks podman removed.
//!
//! The rules are in [`crate::operate::gc`]. Holds the host lock exclusively, so no `setup` or
//! `teardown` is half-way while it looks.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use super::flags;
use super::{connect_ovs, lock_host, ovs_rundir, sync_firewall, Reply};
use crate::lock::Mode;
use crate::netconf;
use crate::netlink::Netlink;
use crate::operate::gc::{self, Action, GcItem};
use crate::operate::host;

pub const USAGE: &str =
    "usage: geneve-ovs gc [--dry-run] [--json] [--network-config-dir DIR] [--netns-dir DIR]...

Removes what geneve-ovs created and can no longer serve: OVS ports of containers whose network
namespace or veth is gone, host veths (gv...) that no OVS port uses and no running container
holds, gateway ports of networks without containers, and the bridges and tunnels of networks
that are no longer in podman's network directory; then the nftables rules follow. Never touches an OVS row without external_ids:geneve-ovs.owner=geneve-ovs, nor a
link not named gv + 13 hex digits. Exit code 0 on success, 1 if anything could not be removed.

  --dry-run                  list what would be removed, remove nothing
  --json                     print the result as JSON (see docs/operations.md)
  --network-config-dir DIR   podman's network directory (default $GENEVE_OVS_NETWORK_CONFIG_DIR,
                             else /etc/containers/networks)
  --netns-dir DIR            another directory where running containers' namespaces are
                             mounted, besides /run/netns (may be repeated)";

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
}

pub fn run(args: &[&str]) -> Result<Reply> {
    let flags = flags::parse(
        args,
        &["--json", "--dry-run", "--network-config-dir", "--netns-dir"],
        0,
    )?;
    if flags.help {
        return Ok(Reply::text(USAGE.to_string()));
    }
    let _lock = lock_host(Mode::Exclusive)?;
    let mut ovs = connect_ovs()?;
    let inventory = ovs.inventory()?;
    // More directories only ever keep more veths: the default is always among them.
    let mut netns_dirs = vec![PathBuf::from(host::DEFAULT_NETNS_DIR)];
    netns_dirs.extend(flags.netns_dirs.iter().cloned());
    let host = host::gather(&ovs_rundir(), &inventory.netns_paths(), &netns_dirs)?;
    let dir = netconf::dir_from(flags.network_config_dir.as_deref());
    let saved = netconf::load(&dir).map_err(|e| format!("{e:#}"));
    let plan = gc::plan(&inventory, &host, saved.as_ref().map_err(String::as_str));

    let mut report = GcReport {
        version: VERSION,
        dry_run: flags.dry_run,
        removed: Vec::new(),
        kept: plan.kept,
        failed: Vec::new(),
    };
    let netlink = if plan.steps.iter().any(|s| s.action == Action::DeleteVeth) {
        Some(Netlink::open()?)
    } else {
        None
    };
    for step in plan.steps {
        let done = if flags.dry_run {
            Ok(())
        } else {
            match (&step.action, &netlink) {
                (Action::RemovePort { bridge, port }, _) => {
                    ovs.remove_owned_port(bridge, port, &step.item.name)
                }
                (Action::RemoveBridge { uuid, ports }, _) => {
                    ovs.remove_owned_bridge(uuid, &step.item.name, ports)
                }
                (Action::DeleteVeth, Some(netlink)) => {
                    netlink.delete_link(&step.item.name).map(|_| ())
                }
                (Action::DeleteVeth, None) => Err(anyhow::anyhow!("no netlink socket")),
            }
        };
        match done {
            Ok(()) => {
                report.removed.push(step.item);
            }
            Err(err) => report.failed.push(Failure {
                item: step.item,
                error: format!("{err:#}"),
            }),
        }
    }
    // The nftables table is rendered from the database: render it again without what went,
    // and in any case after a boot, which leaves the kernel without it (this is the boot
    // unit: until it runs, the underlay filter that lets GENEVE in only from peers is gone).
    if !flags.dry_run {
        if let Err(err) = sync_firewall(&mut ovs) {
            report.failed.push(Failure {
                item: GcItem {
                    kind: "firewall",
                    name: format!("inet {}", crate::firewall::TABLE),
                    network: None,
                    container_id: None,
                    reason: "the table must follow the database".to_string(),
                },
                error: format!("{err:#}"),
            });
        }
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
    lines.extend(
        report
            .failed
            .iter()
            .map(|f| format!("FAILED to remove {}: {}", describe(&f.item), f.error)),
    );
    lines.extend(report.kept.iter().map(|i| format!("kept {}", describe(i))));
    if report.removed.is_empty() && report.failed.is_empty() {
        lines.push("nothing to remove".to_string());
    }
    lines.join("\n")
}
