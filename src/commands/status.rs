//! `geneve-ovs status [--json] [--network-config-dir DIR] [NETWORK]`: every geneve-ovs network
//! of this host, its tunnels (BFD state, OVS errors, counters) and its containers.
//!
//! Read-only: one OVSDB read, netlink, `/proc` and one `ovs-ofctl dump-flows` per bridge with
//! containers. Exit code 0 when ovs-vswitchd runs, no tunnel is down and every container port
//! has its flows, [`DEGRADED`] otherwise (the report is printed either way).

use std::collections::BTreeMap;

use anyhow::Result;

use super::{connect_ovs, ovs_rundir, Reply};
use crate::cli::StatusArgs;
use crate::ipsec::{self, EspState};
use crate::netconf;
use crate::ofctl::Ofctl;
use crate::operate::status::StatusReport;
use crate::operate::{host, status};
use crate::ovs::snapshot::Scope;

/// The exit code when a tunnel is down, a container port lacks its flows, or ovs-vswitchd is
/// not running.
pub const DEGRADED: u8 = crate::cli::EXIT_DEGRADED;

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

/// The kernel's ESP security associations (`ip xfrm state`), or why they could not be read.
fn esp_states() -> Result<Vec<EspState>, String> {
    let output = std::process::Command::new("ip")
        .args(["xfrm", "state"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip xfrm state` (iproute2): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`ip xfrm state` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(ipsec::parse_xfrm_state(&String::from_utf8_lossy(
        &output.stdout,
    )))
}

pub fn run(args: &StatusArgs) -> Result<Reply> {
    let mut ovs = connect_ovs()?;
    let inventory = ovs.snapshot(Scope::Runtime)?;
    let host = host::gather(&ovs_rundir(), &inventory.netns_paths(), &[])?;
    let dir = netconf::dir_from(args.dir.network_config_dir.as_deref());
    let saved = match netconf::load(&dir) {
        Ok(saved) => Some(saved),
        Err(err) => {
            log::warn!("{err:#}: podman's view of the networks is left out");
            None
        }
    };
    let mut report = status::build(&inventory, &host, saved.as_ref(), args.network.as_deref())?;
    if report.vswitchd.running {
        report.check_flows(&flow_tables(&report));
    }
    if report.has_encrypted_tunnels() {
        let software = ipsec::check_software(std::path::Path::new("/"), &ovs_rundir())
            .map_err(|err| format!("{err:#}"));
        report.check_encryption(&esp_states(), &software);
    }
    let text = if args.json {
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
