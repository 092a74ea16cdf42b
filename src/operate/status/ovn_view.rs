//! `status` of OVN networks: per network the northbound connection (which member answered,
//! which is the Raft leader), the switch and the chassis it spans; per container of this host
//! its logical port, whether OVN reports it `up` and which chassis it is bound to; and for
//! the host whether its ovn-controller is connected to the southbound database. Pure: the
//! command reads ([`OvnHostView`], [`OvnNetworkView`]) and this decides what is wrong.
//!
//! This host is "not connected" (`status` exits [`crate::cli::EXIT_DEGRADED`]) when its
//! ovn-controller is not connected to the southbound database, when no member of a network's
//! northbound database answers, or when a container's port is missing, not up or bound to
//! another chassis. A switch that is missing while this host has no container on it is no
//! problem: `gc` of the last host to leave removed it, and the next `setup` makes it again.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ContainerStatus, StatusReport};
use crate::ovn::host::Chassis;
use crate::ovn::northbound::Member;
use crate::ovn::plan;
use crate::ovn::schema::{SwitchPortRow, SwitchRow};

/// What was read about this host as a chassis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvnHostView {
    /// This host's chassis, or why it is not ready ([`crate::ovn::host::chassis`]).
    pub chassis: Result<Chassis, String>,
    /// What `ovn-appctl -t ovn-controller connection-status` answered (`connected`, `not
    /// connected`), or why it could not be asked (ovn-controller not running...).
    pub controller: Result<String, String>,
    /// Logical port → the chassis the southbound database binds it to (`None`: unbound), or
    /// why the southbound database could not be read.
    pub bindings: Result<BTreeMap<String, Option<String>>, String>,
}

/// What was read from one network's northbound database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvnNetworkView {
    /// Each remote of the `ovn` option, as it answered.
    pub members: Vec<Member>,
    /// The member used, the switch of the network's name and its ports; or why none answered.
    pub northbound: Result<NorthboundRead, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NorthboundRead {
    pub remote: String,
    pub switch: Option<SwitchRow>,
    pub ports: Vec<SwitchPortRow>,
    /// Why the switch is not this network's ([`plan::switch_conflict`]), if it is not.
    pub conflict: Option<String>,
}

/// This host as a chassis, in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OvnHostStatus {
    /// This host's `system-id`.
    pub chassis: Option<String>,
    /// `connected`, `not connected` (ovn-controller's own word) or `unknown` (not asked:
    /// ovn-controller does not run or does not answer; `detail` says why).
    pub southbound: String,
    pub detail: Option<String>,
    /// Why the port bindings could not be read from the southbound database, if so.
    pub bindings_error: Option<String>,
    /// How many things of the OVN networks are wrong (see the module's doc): 0 when healthy.
    pub problems: usize,
}

/// One OVN network, in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OvnNetworkStatus {
    /// The logical switch's name.
    pub switch: String,
    /// `present`, `missing` (the next `setup` makes it), `conflict` (another network's:
    /// `problem` says how) or `unknown` (the northbound database did not answer).
    pub switch_state: &'static str,
    /// The northbound member the plugin uses (the leader when one answers).
    pub northbound: Option<String>,
    /// The member that reports itself the cluster's leader, if one answered.
    pub leader: Option<String>,
    pub members: Vec<Member>,
    /// The chassis the network's container ports are pinned to.
    pub chassis: Vec<String>,
    pub problem: Option<String>,
}

/// One container port of an OVN network, in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OvnPortStatus {
    pub logical_port: String,
    /// The northbound `up` (`None`: not reported yet, or the port is missing).
    pub up: Option<bool>,
    /// `here` (bound to this chassis), `elsewhere`, `unbound`, `missing` (no logical port in
    /// the northbound database) or `unknown` (not read).
    pub binding: &'static str,
    /// The chassis it is bound to.
    pub bound_to: Option<String>,
    pub problem: Option<String>,
}

impl OvnNetworkStatus {
    /// Before anything is read.
    pub fn unread(network: &str) -> OvnNetworkStatus {
        OvnNetworkStatus {
            switch: plan::switch_name(network),
            switch_state: "unknown",
            northbound: None,
            leader: None,
            members: Vec::new(),
            chassis: Vec::new(),
            problem: None,
        }
    }
}

impl StatusReport {
    /// Fills in the OVN networks from what was read: `views` by network name. Does nothing
    /// when the report has no OVN network.
    pub fn apply_ovn(&mut self, host: &OvnHostView, views: &BTreeMap<String, OvnNetworkView>) {
        if !self.networks.iter().any(|n| n.ovn.is_some()) {
            return;
        }
        let chassis = host.chassis.as_ref().ok().map(|c| c.name.clone());
        let mut problems = 0;
        let (southbound, mut detail) = match &host.controller {
            Ok(state) => (state.trim().to_string(), None),
            Err(why) => ("unknown".to_string(), Some(why.clone())),
        };
        if southbound != "connected" {
            problems += 1;
            detail.get_or_insert_with(|| {
                "ovn-controller is not connected to the southbound database (check \
                 external_ids:ovn-remote and that the southbound ovsdb-server runs)"
                    .to_string()
            });
        }
        if let Err(why) = &host.chassis {
            problems += 1;
            detail = Some(match detail {
                Some(d) => format!("{d}; {why}"),
                None => why.clone(),
            });
        }
        for net in &mut self.networks {
            let Some(status) = &mut net.ovn else {
                continue;
            };
            let view = views.get(&net.name);
            problems += fill_network(status, &mut net.containers, view, host, chassis.as_deref());
        }
        self.ovn = Some(OvnHostStatus {
            chassis,
            southbound,
            detail,
            bindings_error: host.bindings.as_ref().err().cloned(),
            problems,
        });
    }
}

/// Fills in one network and its containers; returns how many problems it has.
fn fill_network(
    status: &mut OvnNetworkStatus,
    containers: &mut [ContainerStatus],
    view: Option<&OvnNetworkView>,
    host: &OvnHostView,
    chassis: Option<&str>,
) -> usize {
    let mut problems = 0;
    let read = match view {
        None => Err("not read".to_string()),
        Some(view) => {
            status.members = view.members.clone();
            status.leader = view
                .members
                .iter()
                .find(|m| m.role == "leader")
                .map(|m| m.remote.clone());
            view.northbound.as_ref().map_err(Clone::clone)
        }
    };
    let read = match read {
        Ok(read) => read,
        Err(why) => {
            status.problem = Some(why);
            for c in containers.iter_mut() {
                c.ovn = Some(port_status(c, None, host, chassis, false));
            }
            return 1;
        }
    };
    status.northbound = Some(read.remote.clone());
    status.chassis = plan::spanned_chassis(&read.ports);
    status.switch_state = match (&read.switch, &read.conflict) {
        (None, _) => "missing",
        (Some(_), Some(_)) => "conflict",
        (Some(_), None) => "present",
    };
    if let Some(why) = &read.conflict {
        status.problem = Some(why.clone());
        problems += 1;
    }
    for c in containers.iter_mut() {
        let port = c.ovn_logical_port().and_then(|name| {
            read.ports
                .iter()
                .find(|p| p.name == name && read.switch.is_some())
        });
        let ovn = port_status(c, port, host, chassis, true);
        problems += usize::from(ovn.problem.is_some());
        c.ovn = Some(ovn);
    }
    problems
}

/// The OVN side of one container port: `port` is its logical port as read (`nb_read`: the
/// northbound database answered at all).
fn port_status(
    container: &ContainerStatus,
    port: Option<&SwitchPortRow>,
    host: &OvnHostView,
    chassis: Option<&str>,
    nb_read: bool,
) -> OvnPortStatus {
    let logical_port = container.ovn_logical_port().unwrap_or_default();
    let bound_to = host
        .bindings
        .as_ref()
        .ok()
        .and_then(|b| b.get(&logical_port).cloned());
    let binding = match (&host.bindings, &bound_to) {
        (Err(_), _) => "unknown",
        (Ok(_), None) => "unbound",
        (Ok(_), Some(None)) => "unbound",
        (Ok(_), Some(Some(c))) if Some(c.as_str()) == chassis => "here",
        (Ok(_), Some(Some(_))) => "elsewhere",
    };
    let bound_to = bound_to.flatten();
    let up = port.and_then(|p| p.up);
    let problem = if !nb_read {
        None
    } else if port.is_none() {
        Some(format!(
            "no logical port {logical_port} in the northbound database: the container is cut \
             off (podman restart it, or `geneve-ovs gc` once it is gone)"
        ))
    } else if binding == "elsewhere" {
        Some(format!(
            "its logical port is bound to chassis {}, not to this one",
            bound_to.as_deref().unwrap_or("?")
        ))
    } else if up != Some(true) {
        Some(format!(
            "OVN does not report its logical port up (binding: {binding}): check \
             ovn-controller on this host and ovn-northd"
        ))
    } else {
        None
    };
    OvnPortStatus {
        logical_port,
        up,
        binding: if port.is_none() && nb_read {
            "missing"
        } else {
            binding
        },
        bound_to,
        problem,
    }
}

impl ContainerStatus {
    /// The logical port of a container of an OVN network ([`plan::port_name`]).
    pub fn ovn_logical_port(&self) -> Option<String> {
        Some(plan::port_name(
            self.id.as_deref()?,
            self.interface.as_deref()?,
        ))
    }
}

/// The OVN lines of a network in the human-readable report.
pub fn render_network(status: &OvnNetworkStatus) -> Vec<String> {
    let mut out = Vec::new();
    let nb = match (&status.northbound, &status.leader) {
        (Some(remote), Some(leader)) if remote == leader => format!("{remote} (leader)"),
        (Some(remote), Some(leader)) => format!("{remote} (leader: {leader})"),
        (Some(remote), None) => format!("{remote} (no member reports itself leader)"),
        (None, _) => "NOT REACHABLE".to_string(),
    };
    out.push(format!("  northbound: {nb}"));
    let unreachable: Vec<String> = status
        .members
        .iter()
        .filter(|m| m.role == "unreachable")
        .map(|m| m.remote.clone())
        .collect();
    if !unreachable.is_empty() && status.members.len() > 1 {
        out.push(format!(
            "  members not answering: {}",
            unreachable.join(", ")
        ));
    }
    out.push(format!(
        "  switch {} ({}), chassis: {}",
        status.switch,
        status.switch_state,
        if status.chassis.is_empty() {
            "none".to_string()
        } else {
            status.chassis.join(", ")
        }
    ));
    if let Some(problem) = &status.problem {
        out.push(format!("  PROBLEM: {problem}"));
    }
    out
}

/// The host's OVN line in the human-readable report.
pub fn render_host(status: &OvnHostStatus) -> Vec<String> {
    let chassis = status.chassis.as_deref().unwrap_or("-");
    let mut out = vec![if status.southbound == "connected" {
        format!("ovn-controller (chassis {chassis}): connected to the southbound database")
    } else {
        format!(
            "ovn-controller (chassis {chassis}): NOT CONNECTED ({}): {}",
            status.southbound,
            status.detail.as_deref().unwrap_or("")
        )
    }];
    if let Some(why) = &status.bindings_error {
        out.push(format!("  port bindings not read: {why}"));
    }
    out
}
