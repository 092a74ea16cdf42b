//! `geneve-ovs status [--json] [--network-config-dir DIR] [NETWORK]`: every geneve-ovs network
//! of this host, its tunnels (BFD state, OVS errors, counters) and its containers.
//!
//! Read-only: one OVSDB read, netlink and `/proc`. Exit code 0 when ovs-vswitchd runs and no
//! tunnel is down, [`DEGRADED`] otherwise (the report is printed either way).

use anyhow::Result;

use super::flags;
use super::{connect_ovs, ovs_rundir, Reply};
use crate::netconf;
use crate::operate::{host, status};

/// The exit code when a tunnel is down or ovs-vswitchd is not running.
pub const DEGRADED: u8 = 2;

pub const USAGE: &str = "usage: geneve-ovs status [--json] [--network-config-dir DIR] [NETWORK]

Shows every geneve-ovs network of this host (or only NETWORK, by network or bridge name):
its bridge, VNI, MTU and datapath, every peer with the tunnel's state (BFD, OVS errors) and
counters, and every attached container. Exit code 0 when all is up, 2 when ovs-vswitchd is
not running or a tunnel is down, 1 on errors.

  --json                     print the report as JSON (see docs/operations.md)
  --network-config-dir DIR   podman's network directory (default $GENEVE_OVS_NETWORK_CONFIG_DIR,
                             else /etc/containers/networks)";

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
    let report = status::build(
        &inventory,
        &host,
        saved.as_ref(),
        flags.positional.first().map(String::as_str),
    )?;
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
