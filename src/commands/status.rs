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
use crate::operate::status::ovn_view::NorthboundRead;
use crate::operate::status::{OvnHostView, OvnNetworkView, StatusReport};
use crate::operate::{host, status};
use crate::options;
use crate::ovn::host as ovn_host;
use crate::ovn::northbound::{self, Northbound};
use crate::ovn::{plan, record, southbound};
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
        .filter(|n| n.ovn.is_none() && n.bridge_present && !n.containers.is_empty())
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

/// How long `ovn-appctl` may take to answer for ovn-controller.
const APPCTL_TIMEOUT_SECS: u32 = 5;

/// What this host's ovn-controller says of its southbound connection (`ovn-appctl -t
/// ovn-controller connection-status`, found through `$OVN_RUNDIR` as ovn-appctl finds it).
/// Asked of ovn-controller rather than by connecting to the southbound database: what
/// matters is whether this host's controller is connected, which a connection of the
/// plugin's own would not tell (it succeeds with ovn-controller stopped).
fn controller_connection() -> Result<String, String> {
    let output = std::process::Command::new("ovn-appctl")
        .args([
            format!("--timeout={APPCTL_TIMEOUT_SECS}"),
            "-t".to_string(),
            "ovn-controller".to_string(),
            "connection-status".to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ovn-appctl (package ovn-common): {e}"))?;
    if !output.status.success() {
        // ovn-appctl's last line says why; the lines before are its log's warnings.
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "ovn-controller does not answer (is it running? systemctl status ovn-controller): \
             {}",
            stderr.trim().lines().last().unwrap_or("no reason given")
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Reads what `status` shows of the OVN networks: this host's chassis and controller, the
/// bindings of its logical ports, and per network its northbound database.
fn ovn_views(
    ovs: &mut crate::ovs::Ovs,
    report: &StatusReport,
    saved: Option<&netconf::SavedNetworks>,
) -> (OvnHostView, BTreeMap<String, OvnNetworkView>) {
    let external_ids = ovs.local_external_ids().map_err(|e| format!("{e:#}"));
    let chassis = external_ids.clone().and_then(|ids| {
        let inventory = ovs.snapshot(Scope::Config).map_err(|e| format!("{e:#}"))?;
        ovn_host::chassis(&ids, |bridge| inventory.bridge(bridge).is_some())
            .map_err(|e| format!("{e:#}"))
    });
    let logical_ports: Vec<String> = report
        .networks
        .iter()
        .filter(|n| n.ovn.is_some())
        .flat_map(|n| &n.containers)
        .filter_map(|c| c.ovn_logical_port())
        .collect();
    let joined: BTreeMap<String, record::JoinedNetwork> = external_ids
        .as_ref()
        .map(|ids| record::read_all(ids).0)
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.network.clone(), r))
        .collect();
    let bindings = external_ids.and_then(|ids| {
        let remote = ids
            .get("ovn-remote")
            .ok_or_else(|| "external_ids:ovn-remote is not set".to_string())?;
        southbound::parse_remotes(remote)
            .and_then(|remotes| southbound::bindings(&remotes, &logical_ports))
            .map_err(|e| format!("{e:#}"))
    });
    let host_view = OvnHostView {
        chassis,
        controller: controller_connection(),
        bindings,
    };
    let mut views = BTreeMap::new();
    for net in report.networks.iter().filter(|n| n.ovn.is_some()) {
        let Some(config) = saved.and_then(|s| s.named(&net.name)) else {
            continue;
        };
        views.insert(
            net.name.clone(),
            network_view(config, joined.get(&net.name)),
        );
    }
    (host_view, views)
}

/// One OVN network's northbound database, as `status` shows it.
/// `joined` is this host's record of the network, whose identity tells its switch from
/// another network's of the same name.
fn network_view(
    saved: &netconf::SavedNetwork,
    joined: Option<&record::JoinedNetwork>,
) -> OvnNetworkView {
    let cfg = match options::parse(&saved.options) {
        Ok(cfg) => cfg,
        Err(err) => {
            return OvnNetworkView {
                members: Vec::new(),
                northbound: Err(format!("the network's options: {err:#}")),
            }
        }
    };
    let members = northbound::probe(&cfg.ovn);
    let read = || -> anyhow::Result<NorthboundRead> {
        let mut nb = Northbound::connect(&cfg.ovn)?;
        let switch = nb.find_switch(&plan::switch_name(&saved.name))?;
        let ports = match &switch {
            Some(switch) => nb.ports_of(switch)?,
            None => Vec::new(),
        };
        let conflict = switch.as_ref().and_then(|switch| {
            if !switch.is_owned() {
                return Some(format!(
                    "logical switch {} was not made by geneve-ovs",
                    switch.name
                ));
            }
            let differences = plan::identity_differences(switch, &joined?.identity);
            (!differences.is_empty()).then(|| {
                format!(
                    "logical switch {} is another network's now: {}",
                    switch.name,
                    differences.join("; ")
                )
            })
        });
        Ok(NorthboundRead {
            remote: nb.remote().to_string(),
            conflict,
            switch,
            ports,
        })
    };
    OvnNetworkView {
        members,
        northbound: read().map_err(|e| format!("{e:#}")),
    }
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
    if report.networks.iter().any(|n| n.ovn.is_some()) {
        let (host_view, views) = ovn_views(&mut ovs, &report, saved.as_ref());
        report.apply_ovn(&host_view, &views);
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
