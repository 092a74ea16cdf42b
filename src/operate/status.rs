//! `status`: every geneve-ovs network of this host with its tunnels and containers, from the
//! database, the live host and podman's saved networks. Pure; [`render`] makes the table.
//!
//! The JSON form (`--json`) is [`StatusReport`] serialised; its fields are documented in
//! `docs/operations.md` and only ever added to (`version` changes otherwise).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use serde::Serialize;

use super::host::{HostView, Vswitchd};
use crate::control::{self, TunnelStatus};
use crate::flows;
use crate::ipsec::{self, EspState, PeerSecurity};
use crate::netconf::{SavedNetwork, SavedNetworks};
use crate::ovs::schema::{ContainerPortRecord, Role};
use crate::ovs::snapshot::{BridgeRow, InterfaceRow, PortRow, Snapshot};
pub use ovn_view::{OvnHostStatus, OvnHostView, OvnNetworkStatus, OvnNetworkView, OvnPortStatus};

pub mod ovn_view;

/// The version of the JSON document.
pub const VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    pub version: u32,
    pub vswitchd: VswitchdStatus,
    pub networks: Vec<NetworkStatus>,
    /// How many of the listed tunnels are down.
    pub tunnels_down: usize,
    /// How many container ports lack their flows (port security) in the bridge's table.
    pub flows_missing: usize,
    /// This host as an OVN chassis, when it has OVN networks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ovn: Option<OvnHostStatus>,
}

impl StatusReport {
    /// Whether everything that can be up is: ovs-vswitchd runs, no tunnel is down and every
    /// container port has its flows.
    pub fn healthy(&self) -> bool {
        self.vswitchd.running
            && self.tunnels_down == 0
            && self.flows_missing == 0
            && self.ovn.as_ref().is_none_or(|o| o.problems == 0)
    }

    /// Fills in each encrypted tunnel's `ipsec` from the kernel's ESP security associations
    /// (`states`, or why they could not be read). An encrypted tunnel without them both ways
    /// carries nothing (the firewall drops clear GENEVE to and from its peer): it is down.
    /// `software` is whether this host runs OVS IPsec ([`ipsec::check_software`]): when it does
    /// not, that is the reason a tunnel has no security association, and its error says so.
    pub fn check_encryption(
        &mut self,
        states: &Result<Vec<EspState>, String>,
        software: &Result<(), String>,
    ) {
        for tunnel in self.networks.iter_mut().flat_map(|n| &mut n.tunnels) {
            if !tunnel.encrypted {
                continue;
            }
            let security = match (states, tunnel.peer.parse()) {
                (Ok(states), Ok(peer)) => ipsec::peer_security(states, peer),
                (Err(why), _) => {
                    tunnel.ipsec = Some("unknown".to_string());
                    tunnel.state = "down";
                    tunnel.error.get_or_insert_with(|| {
                        format!("cannot tell whether the tunnel is encrypted: {why}")
                    });
                    continue;
                }
                (_, Err(_)) => PeerSecurity::NoSecurityAssociation,
            };
            tunnel.ipsec = Some(security.as_str().to_string());
            if security != PeerSecurity::Established {
                tunnel.state = "down";
                let how = if security == PeerSecurity::OneWay {
                    "only a one-way"
                } else {
                    "no"
                };
                tunnel.error.get_or_insert_with(|| match software {
                    Err(why) => format!(
                        "IPsec: {how} security association with {} (nothing crosses in \
                         clear), and this host cannot make one: {why}",
                        tunnel.peer
                    ),
                    Ok(()) => format!(
                        "IPsec: {how} security association with {} (nothing crosses in clear): \
                         check that the peer runs encrypt=ipsec with the same key, and \
                         ovs-monitor-ipsec and the IKE daemon on both hosts",
                        tunnel.peer
                    ),
                });
            }
        }
        self.tunnels_down = self
            .networks
            .iter()
            .flat_map(|n| &n.tunnels)
            .filter(|t| t.state == "down")
            .count();
    }

    /// Whether any tunnel of the report is encrypted.
    pub fn has_encrypted_tunnels(&self) -> bool {
        self.networks
            .iter()
            .flat_map(|n| &n.tunnels)
            .any(|t| t.encrypted)
    }

    /// Fills in each container's `flows` from its bridge's table (`tables`: the flow count
    /// per cookie of each bridge, or why it could not be read). A port's protection is
    /// present when both its own flows and the bridge's base flows are in the table.
    pub fn check_flows(&mut self, tables: &BTreeMap<String, Result<BTreeMap<u64, usize>, String>>) {
        for net in self.networks.iter_mut().filter(|n| n.ovn.is_none()) {
            let Some(table) = net.bridge.as_ref().and_then(|b| tables.get(b)) else {
                continue;
            };
            let base = net.vni.map(flows::base_cookie);
            for container in &mut net.containers {
                container.flows = match table {
                    Err(_) => "unknown",
                    Ok(counts) => {
                        let has = |cookie: u64| counts.get(&cookie).is_some_and(|n| *n > 0);
                        if base.is_some_and(has) && has(flows::port_cookie(&container.port)) {
                            "present"
                        } else {
                            "missing"
                        }
                    }
                };
            }
        }
        self.flows_missing = self
            .networks
            .iter()
            .flat_map(|n| &n.containers)
            .filter(|c| c.flows == "missing")
            .count();
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VswitchdStatus {
    pub running: bool,
    pub pid: Option<i32>,
    /// Why it is taken for not running.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkStatus {
    pub name: String,
    pub id: Option<String>,
    pub bridge: Option<String>,
    /// Whether the bridge exists in OVS (`false`: podman knows the network, OVS does not have
    /// it; the next `setup` on it rebuilds it).
    pub bridge_present: bool,
    pub vni: Option<u32>,
    pub mtu: Option<u32>,
    pub datapath: Option<String>,
    /// `found`, `missing` (podman no longer has the network: `gc` removes it), `id-mismatch`
    /// (podman's network of that name has another id) or `unknown` (the directory could not
    /// be read).
    pub podman_config: &'static str,
    pub tunnels: Vec<TunnelStatus>,
    pub containers: Vec<ContainerStatus>,
    /// The OVN side of an OVN network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ovn: Option<OvnNetworkStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerStatus {
    pub name: Option<String>,
    pub id: Option<String>,
    pub interface: Option<String>,
    pub mac: Option<String>,
    /// The OVS port, which is also the host end of the container's veth.
    pub port: String,
    pub netns: Option<String>,
    /// `ok`, `stale` (netns or veth gone: `gc` removes the port) or `error` (OVS reports one).
    pub state: &'static str,
    pub problem: Option<String>,
    /// The port's flows (port security) in the bridge's OpenFlow table: `present`, `missing`
    /// (the port is closed: `geneve-ovs gc` restores them), `unknown` (not checked) or `ovn`
    /// (OVN's: ovn-controller programs port security on its integration bridge).
    pub flows: &'static str,
    /// The OVN side of a container of an OVN network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ovn: Option<OvnPortStatus>,
}

/// Builds the report; `only` limits it to one network (by network or bridge name).
pub fn build(
    inventory: &Snapshot,
    host: &HostView,
    saved: Option<&SavedNetworks>,
    only: Option<&str>,
) -> Result<StatusReport> {
    let running = host.vswitchd.as_ref().is_some_and(Vswitchd::is_running);
    let vswitchd = match &host.vswitchd {
        Some(Vswitchd::Running { pid }) => VswitchdStatus {
            running: true,
            pid: Some(*pid),
            detail: None,
        },
        Some(Vswitchd::NotRunning { why }) => VswitchdStatus {
            running: false,
            pid: None,
            detail: Some(why.clone()),
        },
        None => VswitchdStatus {
            running: false,
            pid: None,
            detail: Some("not checked".to_string()),
        },
    };

    let mut networks: Vec<NetworkStatus> = inventory
        .owned_bridges()
        .map(|b| network_of_bridge(inventory, host, saved, b, running))
        .collect();
    if let Some(saved) = saved {
        let present: BTreeSet<String> = networks.iter().map(|n| n.name.clone()).collect();
        networks.extend(
            saved
                .networks
                .iter()
                .filter(|n| !present.contains(&n.name))
                .map(|saved| network_without_bridge(inventory, host, saved)),
        );
    }
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(only) = only {
        networks.retain(|n| n.name == only || n.bridge.as_deref() == Some(only));
        if networks.is_empty() {
            bail!("no geneve-ovs network {only:?} on this host");
        }
    }
    let tunnels_down = networks
        .iter()
        .flat_map(|n| &n.tunnels)
        .filter(|t| t.state == "down")
        .count();
    Ok(StatusReport {
        version: VERSION,
        vswitchd,
        networks,
        tunnels_down,
        flows_missing: 0,
        ovn: None,
    })
}

fn parse_option<T: std::str::FromStr>(saved: Option<&SavedNetwork>, key: &str) -> Option<T> {
    saved?.options.get(key)?.parse().ok()
}

fn saved_peers(saved: Option<&SavedNetwork>) -> Vec<String> {
    saved
        .and_then(|n| n.options.get("peers"))
        .map(|p| {
            p.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn network_of_bridge(
    inventory: &Snapshot,
    host: &HostView,
    saved: Option<&SavedNetworks>,
    bridge: &BridgeRow,
    running: bool,
) -> NetworkStatus {
    let name = bridge.network().unwrap_or(bridge.name.as_str()).to_string();
    let record = bridge.record();
    let id = record.as_ref().and_then(|r| r.network_id.clone());
    let config = saved.and_then(|s| s.named(&name));
    let podman_config = match (saved, config) {
        (None, _) => "unknown",
        (Some(_), None) => "missing",
        (Some(_), Some(c)) if Some(&c.id) == id.as_ref() => "found",
        (Some(_), Some(_)) => "id-mismatch",
    };

    let tunnels =
        control::for_bridge(bridge).health(inventory, Some(bridge), saved_peers(config), running);

    let container_ports: Vec<&PortRow> = inventory
        .ports_of(bridge)
        .filter(|p| p.has_role(Role::Container))
        .collect();
    let mut containers: Vec<ContainerStatus> = container_ports
        .iter()
        .map(|p| container_status(p, inventory.interface_of(p), host))
        .collect();
    containers.sort_by(|a, b| (&a.name, &a.port).cmp(&(&b.name, &b.port)));

    let mtu = parse_option(config, "mtu").or_else(|| {
        container_ports
            .iter()
            .filter_map(|p| inventory.interface_of(p)?.mtu)
            .find_map(|m| u32::try_from(m).ok())
    });
    NetworkStatus {
        name,
        id,
        bridge: Some(bridge.name.clone()),
        bridge_present: true,
        vni: record.and_then(|r| r.vni),
        mtu,
        datapath: Some(bridge.datapath_type.clone()),
        podman_config,
        tunnels,
        containers,
        ovn: None,
    }
}

fn network_without_bridge(
    inventory: &Snapshot,
    host: &HostView,
    saved: &SavedNetwork,
) -> NetworkStatus {
    if saved
        .options
        .get("ovn")
        .is_some_and(|v| !v.trim().is_empty())
    {
        return network_on_ovn(inventory, host, saved);
    }
    let vni: Option<u32> = parse_option(Some(saved), "vni");
    NetworkStatus {
        name: saved.name.clone(),
        id: Some(saved.id.clone()),
        bridge: saved
            .network_interface
            .clone()
            .or_else(|| vni.map(crate::naming::default_bridge_name)),
        bridge_present: false,
        vni,
        mtu: parse_option(Some(saved), "mtu"),
        datapath: saved.options.get("datapath").cloned(),
        podman_config: "found",
        tunnels: control::for_saved(saved).health(
            &Snapshot::default(),
            None,
            saved_peers(Some(saved)),
            false,
        ),
        containers: Vec::new(),
        ovn: None,
    }
}

/// An OVN network: no bridge of its own; its containers' ports are the plugin's ports of
/// this network on OVN's integration bridge. [`StatusReport::apply_ovn`] adds what OVN says.
fn network_on_ovn(inventory: &Snapshot, host: &HostView, saved: &SavedNetwork) -> NetworkStatus {
    let ports: Vec<&PortRow> = inventory
        .ports
        .iter()
        .filter(|p| p.has_role(Role::Container))
        .filter(|p| inventory.bridge_of(p).is_some_and(|b| !b.is_owned()))
        .filter(|p| p.container().and_then(|c| c.network).as_deref() == Some(saved.name.as_str()))
        .collect();
    let mut containers: Vec<ContainerStatus> = ports
        .iter()
        .map(|p| ContainerStatus {
            flows: "ovn",
            ..container_status(p, inventory.interface_of(p), host)
        })
        .collect();
    containers.sort_by(|a, b| (&a.name, &a.port).cmp(&(&b.name, &b.port)));
    let bridge = ports
        .first()
        .and_then(|p| inventory.bridge_of(p))
        .map(|b| b.name.clone());
    NetworkStatus {
        name: saved.name.clone(),
        id: Some(saved.id.clone()),
        bridge_present: bridge.is_some(),
        bridge,
        vni: None,
        mtu: parse_option(Some(saved), "mtu"),
        datapath: None,
        podman_config: "found",
        tunnels: Vec::new(),
        containers,
        ovn: Some(OvnNetworkStatus::unread(&saved.name)),
    }
}

/// Whether a container port can never work again (its namespace or its veth is gone), and
/// why. `gc` removes exactly these.
pub fn stale_reason(port: &PortRow, host: &HostView) -> Option<String> {
    if let Some(netns) = port.container().and_then(|c| c.netns) {
        if !host.netns_alive(&netns) {
            return Some(format!("its network namespace {netns} is gone"));
        }
    }
    if !host.has_link(&port.name) {
        return Some(format!("its veth {} is gone", port.name));
    }
    None
}

fn container_status(
    port: &PortRow,
    iface: Option<&InterfaceRow>,
    host: &HostView,
) -> ContainerStatus {
    let (state, problem) = match stale_reason(port, host) {
        Some(why) => ("stale", Some(why)),
        None => match iface.and_then(InterfaceRow::problem) {
            Some(error) => ("error", Some(error)),
            None => ("ok", None),
        },
    };
    let record = ContainerPortRecord::read(&port.external_ids);
    let record = record.as_ref();
    ContainerStatus {
        name: record.and_then(|r| r.container_name.clone()),
        id: record.and_then(|r| r.container_id.clone()),
        interface: record.and_then(|r| r.interface.clone()),
        mac: record.and_then(|r| r.mac.clone()),
        port: port.name.clone(),
        netns: record.and_then(|r| r.netns.clone()),
        state,
        problem,
        flows: "unknown",
        ovn: None,
    }
}

/// Lays out rows under headers, columns two spaces apart, indented by two.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::from(" ");
        for (cell, w) in cells.iter().zip(&widths) {
            out.push(' ');
            out.push_str(cell);
            out.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 1));
        }
        out.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

fn or_dash<T: ToString>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "-".to_string(), ToString::to_string)
}

fn short_id(id: &Option<String>) -> String {
    id.as_ref()
        .map_or_else(|| "-".to_string(), |i| i.chars().take(12).collect())
}

/// An OVN network's lines: no tunnels of the plugin's (ovn-controller's), the switch and the
/// northbound connection, and per container its binding and `up`.
fn render_ovn_network(net: &NetworkStatus, ovn: &OvnNetworkStatus, out: &mut Vec<String>) {
    out.push(format!(
        "network {} (id {}): OVN, bridge {}, MTU {}, podman config {}",
        net.name,
        short_id(&net.id),
        or_dash(&net.bridge),
        or_dash(&net.mtu),
        net.podman_config,
    ));
    out.extend(ovn_view::render_network(ovn));
    if net.containers.is_empty() {
        out.push("  no containers".to_string());
        return;
    }
    let rows: Vec<Vec<String>> = net
        .containers
        .iter()
        .map(|c| {
            let port = c.ovn.as_ref();
            let problem = c
                .problem
                .clone()
                .or_else(|| port.and_then(|p| p.problem.clone()))
                .unwrap_or_default();
            vec![
                or_dash(&c.name),
                short_id(&c.id),
                or_dash(&c.interface),
                c.port.clone(),
                c.state.to_string(),
                port.map_or_else(|| "-".to_string(), |p| short_logical_port(&p.logical_port)),
                match port.and_then(|p| p.up) {
                    Some(true) => "yes".to_string(),
                    Some(false) => "no".to_string(),
                    None => "-".to_string(),
                },
                port.map_or_else(
                    || "-".to_string(),
                    |p| match &p.bound_to {
                        Some(chassis) => format!("{} ({chassis})", p.binding),
                        None => p.binding.to_string(),
                    },
                ),
                problem,
            ]
        })
        .collect();
    out.push(table(
        &[
            "CONTAINER",
            "ID",
            "INTERFACE",
            "PORT",
            "STATE",
            "LOGICAL PORT",
            "UP",
            "BINDING",
            "PROBLEM",
        ],
        &rows,
    ));
}

/// A logical port's name in the table: podman's container id is 64 hex digits, so only its
/// first 12 (as in the ID column) and the interface (`--json` has the whole name).
fn short_logical_port(name: &str) -> String {
    match name.split_once('-') {
        Some((id, interface)) if id.len() > 12 => {
            format!("{}…-{interface}", id.chars().take(12).collect::<String>())
        }
        _ => name.to_string(),
    }
}

/// The human-readable form of the report.
pub fn render(report: &StatusReport) -> String {
    let mut out = Vec::new();
    out.push(match (&report.vswitchd.pid, &report.vswitchd.detail) {
        (Some(pid), _) if report.vswitchd.running => format!("ovs-vswitchd: running (pid {pid})"),
        (_, detail) => format!(
            "ovs-vswitchd: NOT RUNNING ({}): no traffic flows and every tunnel counts as down",
            detail.as_deref().unwrap_or("unknown")
        ),
    });
    if let Some(ovn) = &report.ovn {
        out.extend(ovn_view::render_host(ovn));
    }
    for net in &report.networks {
        out.push(String::new());
        if let Some(ovn) = &net.ovn {
            render_ovn_network(net, ovn, &mut out);
            continue;
        }
        let bridge = match (&net.bridge, net.bridge_present) {
            (Some(b), true) => b.clone(),
            (Some(b), false) => format!("{b} (MISSING in OVS)"),
            (None, _) => "-".to_string(),
        };
        out.push(format!(
            "network {} (id {}): bridge {bridge}, VNI {}, MTU {}, datapath {}, podman config {}",
            net.name,
            short_id(&net.id),
            or_dash(&net.vni),
            or_dash(&net.mtu),
            or_dash(&net.datapath),
            net.podman_config,
        ));
        if net.tunnels.is_empty() {
            out.push("  no peers".to_string());
        } else {
            let rows: Vec<Vec<String>> = net
                .tunnels
                .iter()
                .map(|t| {
                    let mut problem = t.error.clone().unwrap_or_default();
                    if let Some(d) = &t.bfd_diagnostic {
                        if problem.is_empty() {
                            problem = format!("BFD: {d}");
                        }
                    }
                    let ipsec = match (&t.ipsec, t.encrypted) {
                        (Some(state), _) => format!("ipsec {state}"),
                        (None, true) => "ipsec".to_string(),
                        (None, false) => "none".to_string(),
                    };
                    vec![
                        t.peer.clone(),
                        t.state.to_string(),
                        t.bfd.clone(),
                        ipsec,
                        or_dash(&t.rx_packets),
                        or_dash(&t.tx_packets),
                        or_dash(&t.rx_bytes),
                        or_dash(&t.tx_bytes),
                        or_dash(&t.port),
                        problem,
                    ]
                })
                .collect();
            out.push(table(
                &[
                    "PEER",
                    "STATE",
                    "BFD",
                    "ENCRYPTION",
                    "RX PKTS",
                    "TX PKTS",
                    "RX BYTES",
                    "TX BYTES",
                    "PORT",
                    "ERROR",
                ],
                &rows,
            ));
        }
        if net.containers.is_empty() {
            out.push("  no containers".to_string());
        } else {
            let rows: Vec<Vec<String>> = net
                .containers
                .iter()
                .map(|c| {
                    vec![
                        or_dash(&c.name),
                        short_id(&c.id),
                        or_dash(&c.interface),
                        or_dash(&c.mac),
                        c.port.clone(),
                        c.state.to_string(),
                        c.flows.to_string(),
                        c.problem.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            out.push(table(
                &[
                    "CONTAINER",
                    "ID",
                    "INTERFACE",
                    "MAC",
                    "PORT",
                    "STATE",
                    "FLOWS",
                    "PROBLEM",
                ],
                &rows,
            ));
        }
    }
    out.push(String::new());
    let total: usize = report.networks.iter().map(|n| n.tunnels.len()).sum();
    let stale = report
        .networks
        .iter()
        .flat_map(|n| &n.containers)
        .filter(|c| c.state == "stale")
        .count();
    let mesh_networks = report.networks.iter().any(|n| n.ovn.is_none());
    out.push(if report.networks.is_empty() {
        "no geneve-ovs networks on this host".to_string()
    } else if !mesh_networks {
        // OVN's tunnels are ovn-controller's: none of the plugin's to count.
        format!("{} OVN network(s)", report.networks.len())
    } else if report.tunnels_down == 0 {
        format!("{total} tunnel(s), none down")
    } else {
        format!("{} of {total} tunnel(s) DOWN", report.tunnels_down)
    });
    if stale > 0 {
        out.push(format!(
            "{stale} stale container port(s): `geneve-ovs gc` removes them"
        ));
    }
    if let Some(ovn) = report.ovn.as_ref().filter(|o| o.problems > 0) {
        out.push(format!(
            "this host is NOT CONNECTED to OVN: {} problem(s) above",
            ovn.problems
        ));
    }
    if report.flows_missing > 0 {
        out.push(format!(
            "{} container port(s) WITHOUT their port-security flows (they are cut off): \
             `geneve-ovs gc` restores them",
            report.flows_missing
        ));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests;
