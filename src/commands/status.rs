//! `geneve-ovs status [--json] [--network-config-dir DIR] [NETWORK]`: every geneve-ovs network
//! of this host, its tunnels (BFD state, OVS errors, counters) and its containers.
//!
//! Read-only: one OVSDB read, netlink, `/proc` and one `ovs-ofctl dump-flows` per bridge with
//! containers. Exit code 0 when ovs-vswitchd runs, no tunnel is down and every container port
//! has its flows, [`DEGRADED`] otherwise (the report is printed either way).

use std::collections::BTreeMap;

use anyhow::Result;

use super::flags;
use super::{connect_ovs, ovs_rundir, Reply};
use crate::netconf;
use crate::ofctl::Ofctl;
use crate::operate::status::StatusReport;
use crate::operate::{host, status};

/// The exit code when a tunnel is down, a container port lacks its flows, or ovs-vswitchd is
/// not running.
pub const DEGRADED: u8 = 2;

pub const USAGE: &str = "usage: geneve-ovs status [--json] [--network-config-dir DIR] [NETWORK]

Shows every geneve-ovs network of this host (or only NETWORK, by network or bridge name):
its bridge, VNI, MTU and datapath, every peer with the tunnel's state (BFD, OVS errors) and
counters, and every attached container with whether its port-security flows are in the
bridge's OpenFlow table. Exit code 0 when all is up, 2 when ovs-vswitchd is not running, a
tunnel is down or a container port lacks its flows, 1 on errors.

  --json                     print the report as JSON (see docs/operations.md)
  --network-config-dir DIR   podman's network directory (default $GENEVE_OVS_NETWORK_CONFIG_DIR,
                             else /etc/containers/networks)";

/// One `ovs-ofctl dump-flows` per bridge that has containers: the flow count per cookie.
fn flow_tables(report: &StatusReport) -> BTreeMap<String, Result<BTreeMap<u64, usize>, String>> {
    let ofctl = Ofctl::new(&ovs_rundir());
    report
        .networks
        .iter()
        .filter(|n| n.bridge_present && !n.containers.is_empty())
        .filter_map(|n| n.bridge.clone())
        .map(|bridge| {
            let table = ofctl.cookies(&bridge).map_err(|e| format!("{e:#}"));
            if let Err(err) = &table {
                log::warn!("{err}");
            }
            (bridge, table)
        })
        .collect()
}

pub fn run(args: &[&str]) -> Result<Reply> {
    let flags = flags::parse(args, &["--json", "--network-config-dir"], 1)?;
    if flags.help {
        return Ok(Reply::text(USAGE.to_string()));
    }
    let mut ovs = connect_ovs()?;
    let inventory = ovs.inventory()?;
    let host = host::gather(&ovs_rundir(), &inventory.netns_paths(), &[])?;
    let dir = netconf::dir_from(flags.network_config_dir.as_deref());
    let saved = match netconf::load(&dir) {
        Ok(saved) => Some(saved),
        Err(err) => {
            log::warn!("{err:#}: podman's view of the networks is left out");
            None
        }
    };
    let mut report = status::build(
        &inventory,
        &host,
        saved.as_ref(),
        flags.positional.first().map(String::as_str),
    )?;
    if report.vswitchd.running {
        report.check_flows(&flow_tables(&report));
    }
    let text = if flags.json {
        serde_json::to_string_pretty(&report)?
    } else {
        status::render(&report)
    };
    let code = if report.healthy() { 0 } else { DEGRADED };
    Ok(Reply {
        stdout: Some(text),
        code,
    })
}
