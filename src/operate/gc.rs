//! `gc`: what to remove, decided from the database, the live host and podman's saved networks.
//! Pure; the command applies the plan.
//!
//! The rules, each limited to what the plugin owns (rows with `geneve-ovs.owner=geneve-ovs`,
//! links named `gv` + 13 hex digits):
//!
//! 1. A **container port** is stale when the network namespace it was set up for is gone, or
//!    when its host veth is gone (a reboot, a crash between the two halves of `teardown`).
//!    Such a port can never carry traffic again: `setup` makes a new one. When its namespace
//!    is gone but its veth is not, the veth goes too (unless its peer sits in a namespace a
//!    running container holds, see 2).
//! 2. A **host veth** (a `veth` named like ours) is leaked when no Interface row of OVS has its
//!    name (owned or not) and its peer is not in a container's namespace: either in the host's
//!    own namespace, or in one that is mounted in none of the namespace directories
//!    (`/run/netns`, where rootful podman mounts the namespace of every running container,
//!    and the directories of the namespaces ports were set up for). A veth whose peer is in a
//!    mounted namespace belongs to a running container, so it is left alone and reported;
//!    that container's `teardown` removes it. `gc` holds the host lock exclusively, so a veth
//!    that `setup` made a moment ago and has not yet added to OVS is never taken for a leak.
//! 3. This host's end of an **OVN network's gateway port** is stale when no container of its
//!    network is left on this host once the stale container ports are gone: `setup` adds it
//!    with the network's first container here and `teardown` removes it with the last one. The
//!    mesh's own gateway port stays while its network exists (`teardown` keeps it too) and
//!    goes with the bridge (rule 4).
//! 4. A **bridge** (with its tunnels) is stale when no geneve-ovs network of its name is in
//!    podman's network directory. It is kept when the directory cannot be read, when a file
//!    there that cannot be parsed may be that network, when it still has container ports that
//!    are not stale, or when it holds ports the plugin did not create. A network of the same
//!    name with another id (removed and created again) keeps the bridge: the next `create` or
//!    `setup` of that network takes the bridge over.
//!
//! 5. An **OVN network's logical switch** goes when podman on this host no longer has the
//!    network (this host recorded that it joined it, [`crate::ovn::record`]), the switch is
//!    still the plugin's and has the identity recorded (a switch of that name with other
//!    subnets, `--internal` or MTU is another network's and is never touched), and no chassis
//!    has a port on it (a `localport` belongs to the switch). That last part is decided
//!    against the northbound database when `gc` runs ([`crate::ovn::plan::switch_removal`]);
//!    this plan only names the candidates. A host that still has the network defined makes
//!    the switch again at its next `setup`.
//!
//! Removing anything of a non-internal network changes what the plugin's nftables table must
//! hold (it is rendered from the database); [`Step::firewall`] says so, and the command then
//! renders the table again.

use std::collections::BTreeMap;

use serde::Serialize;

use super::host::{HostView, PeerPlace};
use super::status::stale_reason;
use crate::netconf::{SavedNetwork, SavedNetworks};
use crate::ovn::plan::switch_name;
use crate::ovn::record::JoinedNetwork;
use crate::ovs::schema::{keys, network_of, owned_value, Role};
use crate::ovs::snapshot::{BridgeRow, PortRow, Snapshot};

/// Whether a bridge's network has rules in the firewall table (non-internal). Bridges made
/// before networks could be non-internal carry no flag: they are internal.
fn has_firewall_rules(bridge: &BridgeRow) -> bool {
    bridge.record().is_some_and(|r| !r.internal)
}

/// One thing removed (or to be removed, or kept), as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcItem {
    /// `port`, `veth`, `bridge`, `switch` (an OVN network's logical switch) or `record`
    /// (this host's record of an OVN network it joined).
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub reason: String,
}

/// How one removal is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Drop an owned port from an owned bridge.
    RemovePort { bridge: String, port: String },
    /// Drop an owned port from a bridge someone else manages (this host's end of an OVN
    /// network's gateway port, on OVN's integration bridge).
    RemoveForeignPort { bridge: String, port: String },
    /// Delete a host link (the veth pair goes with it).
    DeleteVeth,
    /// Drop an owned bridge, provided it still holds exactly `ports`.
    RemoveBridge { uuid: String, ports: Vec<String> },
    /// Drop an owned port of an OVN network from OVN's integration bridge, and its logical
    /// port `logical_port` (on the switch of `network`) from the northbound database at
    /// `remotes` (the `ovn` option's value).
    RemoveOvnPort {
        bridge: String,
        port: String,
        network: String,
        logical_port: String,
        remotes: String,
    },
    /// Remove the logical switch of OVN network `network` (which podman no longer has) from
    /// the northbound database at `remotes`, provided it is still the network of `identity`
    /// and no chassis has a port on it; then forget this host's record `record_key`.
    RemoveOvnSwitch {
        network: String,
        remotes: String,
        identity: BTreeMap<String, String>,
        record_key: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub item: GcItem,
    pub action: Action,
    /// The removal belongs to a non-internal network: the firewall table must follow.
    pub firewall: bool,
}

/// What `gc` removes, in order (ports, then veths, then bridges), and what it leaves alone
/// although it looked stale, with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    pub steps: Vec<Step>,
    pub kept: Vec<GcItem>,
}

/// Works out the plan. `saved` is podman's network directory, or why it could not be read.
///
/// The rules run in the order of the module's list: each later one sees what the earlier ones
/// remove (the ports that go, the veths already dealt with).
pub fn plan(inventory: &Snapshot, host: &HostView, saved: Result<&SavedNetworks, &str>) -> GcPlan {
    let mut plan = GcPlan::default();
    let mut removed_ports: Vec<String> = Vec::new();
    let veths_done = stale_container_ports(inventory, host, &mut plan, &mut removed_ports);
    leaked_veths(inventory, host, &veths_done, &mut plan);
    idle_ovn_gateways(inventory, &mut plan, &mut removed_ports);
    removed_networks(inventory, saved, &removed_ports, &mut plan);
    plan
}

/// Rule 1: stale container ports, and their veths. Returns the veths it judged.
fn stale_container_ports(
    inventory: &Snapshot,
    host: &HostView,
    plan: &mut GcPlan,
    removed_ports: &mut Vec<String>,
) -> Vec<String> {
    let mut veths_done: Vec<String> = Vec::new();
    for (port, record) in inventory
        .ports
        .iter()
        .filter_map(|p| Some((p, p.container()?)))
    {
        let Some(reason) = stale_reason(port, host) else {
            continue;
        };
        let network = record.network;
        let container_id = record.container_id;
        let item = |kind, reason: String| GcItem {
            kind,
            name: port.name.clone(),
            network: network.clone(),
            container_id: container_id.clone(),
            reason,
        };
        // gc removes only from the plugin's own bridges.
        match inventory.bridge_of(port).filter(|b| b.is_owned()) {
            Some(bridge) => {
                plan.steps.push(Step {
                    item: item("port", reason.clone()),
                    action: Action::RemovePort {
                        bridge: bridge.uuid.clone(),
                        port: port.uuid.clone(),
                    },
                    firewall: has_firewall_rules(bridge),
                });
                removed_ports.push(port.uuid.clone());
            }
            None => match ovn_port(inventory, port, network.as_deref()) {
                Some(action) => {
                    plan.steps.push(Step {
                        item: item("port", reason.clone()),
                        action,
                        firewall: network
                            .as_deref()
                            .is_some_and(|n| ovn_gateways(inventory, port, n).next().is_some()),
                    });
                    removed_ports.push(port.uuid.clone());
                }
                None => plan.kept.push(item(
                    "port",
                    format!("{reason}, but it is not on a bridge geneve-ovs created"),
                )),
            },
        }
        if host.has_link(&port.name) {
            veths_done.push(port.name.clone());
            match host.peers.get(&port.name) {
                Some(PeerPlace::Mounted(path)) => plan.kept.push(item(
                    "veth",
                    format!(
                        "its port is stale, but its peer is in {}, the namespace of a \
                         running container",
                        path.display()
                    ),
                )),
                _ => plan.steps.push(Step {
                    item: item("veth", format!("the veth of a stale port: {reason}")),
                    action: Action::DeleteVeth,
                    firewall: false,
                }),
            }
        }
    }

    veths_done
}

/// How a stale container port of an OVN network goes (rule 1 on OVN's integration bridge):
/// with its logical port, when the port says which one and where.
fn ovn_port(inventory: &Snapshot, port: &PortRow, network: Option<&str>) -> Option<Action> {
    let bridge = inventory.bridge_of(port)?;
    let ids = &port.external_ids;
    Some(Action::RemoveOvnPort {
        bridge: bridge.uuid.clone(),
        port: port.uuid.clone(),
        network: network?.to_string(),
        logical_port: ids.get(keys::IFACE_ID)?.clone(),
        remotes: owned_value(ids, keys::OVN_NB)?.to_string(),
    })
}

/// Rule 2: leaked host veths (none of `veths_done`, which rule 1 judged already).
fn leaked_veths(inventory: &Snapshot, host: &HostView, veths_done: &[String], plan: &mut GcPlan) {
    for (name, place) in &host.peers {
        if veths_done.contains(name) || inventory.has_interface(name) {
            continue;
        }
        let item = |reason: String| GcItem {
            kind: "veth",
            name: name.clone(),
            network: None,
            container_id: None,
            reason,
        };
        match place {
            PeerPlace::Mounted(path) => plan.kept.push(item(format!(
                "no OVS port, but its peer is in {}, the namespace of a running container \
                 (its teardown removes it)",
                path.display()
            ))),
            PeerPlace::HostNamespace => plan.steps.push(Step {
                item: item("no OVS port, and its peer is in the host's namespace".into()),
                action: Action::DeleteVeth,
                firewall: false,
            }),
            PeerPlace::Unmounted => plan.steps.push(Step {
                item: item("no OVS port, and its peer is in no container's namespace".into()),
                action: Action::DeleteVeth,
                firewall: false,
            }),
        }
    }
}

/// The plugin's gateway ports of OVN network `network` on the (foreign) bridge of `port`:
/// this host's end of a non-internal OVN network's gateway.
fn ovn_gateways<'a>(
    inventory: &'a Snapshot,
    port: &PortRow,
    network: &'a str,
) -> impl Iterator<Item = &'a PortRow> + 'a {
    inventory
        .bridge_of(port)
        .filter(|b| !b.is_owned())
        .into_iter()
        .flat_map(move |bridge| inventory.ports_of(bridge))
        .filter(|p| p.has_role(Role::Gateway))
        .filter(move |p| network_of(&p.external_ids) == Some(network))
}

/// Rule 3, on OVN's integration bridge: this host's end of an OVN network's gateway port once
/// no container of that network is left there.
fn idle_ovn_gateways(inventory: &Snapshot, plan: &mut GcPlan, removed_ports: &mut Vec<String>) {
    for bridge in inventory.all_bridges().filter(|b| !b.is_owned()) {
        for gateway in inventory
            .ports_of(bridge)
            .filter(|p| p.has_role(Role::Gateway))
        {
            let Some(network) = network_of(&gateway.external_ids) else {
                continue;
            };
            let live = inventory
                .ports_of(bridge)
                .filter(|p| p.has_role(Role::Container))
                .filter(|p| network_of(&p.external_ids) == Some(network))
                .any(|p| !removed_ports.contains(&p.uuid));
            if live {
                continue;
            }
            plan.steps.push(Step {
                item: GcItem {
                    kind: "port",
                    name: gateway.name.clone(),
                    network: Some(network.to_string()),
                    container_id: None,
                    reason: format!(
                        "this host's end of the gateway port of OVN network {network:?}, which \
                         has no container left on this host"
                    ),
                },
                action: Action::RemoveForeignPort {
                    bridge: bridge.uuid.clone(),
                    port: gateway.uuid.clone(),
                },
                firewall: true,
            });
            removed_ports.push(gateway.uuid.clone());
        }
    }
}

/// What podman's network directory says of one network, for rules 4 and 5.
enum InPodman<'a> {
    /// Whether podman still has the network cannot be told (the directory cannot be read, or
    /// a file in it that may be the network cannot): everything of it is kept, for this reason.
    Unknown(String),
    /// podman has the network, as this file says.
    Defined(&'a SavedNetwork),
    /// podman no longer has the network: none of the directory's files is it.
    Removed(&'a SavedNetworks),
}

/// Looks network `network` up in `saved` (podman's network directory, or why it could not
/// be read). A network is only ever judged removed from a directory that was read whole, so
/// that nothing of a network podman may still have goes.
fn in_podman<'a>(saved: Result<&'a SavedNetworks, &str>, network: &str) -> InPodman<'a> {
    let saved = match saved {
        Ok(saved) => saved,
        Err(why) => {
            return InPodman::Unknown(format!(
                "cannot tell whether network {network:?} still exists: {why}"
            ))
        }
    };
    if let Some(config) = saved.named(network) {
        return InPodman::Defined(config);
    }
    if saved.maybe_unreadable(network) {
        return InPodman::Unknown(format!(
            "podman's file for network {network:?} in {} cannot be read",
            saved.dir.display()
        ));
    }
    InPodman::Removed(saved)
}

/// Rule 4: bridges of networks podman no longer has.
fn removed_networks(
    inventory: &Snapshot,
    saved: Result<&SavedNetworks, &str>,
    removed_ports: &[String],
    plan: &mut GcPlan,
) {
    for bridge in inventory.owned_bridges() {
        let network = bridge.network().unwrap_or_default().to_string();
        let item = |reason: String| GcItem {
            kind: "bridge",
            name: bridge.name.clone(),
            network: Some(network.clone()),
            container_id: None,
            reason,
        };
        let saved = match in_podman(saved, &network) {
            InPodman::Unknown(why) => {
                plan.kept.push(item(why));
                continue;
            }
            InPodman::Defined(config) => {
                if bridge.record().and_then(|r| r.network_id) != Some(config.id.clone()) {
                    plan.kept.push(item(format!(
                        "podman's network {network:?} ({}) has another id than the bridge: the \
                         next create or setup of it takes the bridge over",
                        config.file.display()
                    )));
                }
                continue;
            }
            InPodman::Removed(saved) => saved,
        };
        let live: Vec<&str> = inventory
            .ports_of(bridge)
            .filter(|p| p.has_role(Role::Container))
            .filter(|p| !removed_ports.contains(&p.uuid))
            .map(|p| p.name.as_str())
            .collect();
        if !live.is_empty() {
            plan.kept.push(item(format!(
                "network {network:?} is gone from {}, but containers are still attached \
                 ({})",
                saved.dir.display(),
                live.join(", ")
            )));
            continue;
        }
        let foreign = bridge
            .ports
            .iter()
            .filter(|u| !inventory.ports.iter().any(|p| &p.uuid == *u))
            .count();
        if foreign > 0 {
            plan.kept.push(item(format!(
                "network {network:?} is gone from {}, but the bridge holds {foreign} port(s) \
                 geneve-ovs did not create",
                saved.dir.display(),
            )));
            continue;
        }
        plan.steps.push(Step {
            item: item(format!(
                "no geneve-ovs network {network:?} in {}",
                saved.dir.display()
            )),
            action: Action::RemoveBridge {
                uuid: bridge.uuid.clone(),
                ports: bridge
                    .ports
                    .iter()
                    .filter(|u| !removed_ports.contains(u))
                    .cloned()
                    .collect(),
            },
            firewall: has_firewall_rules(bridge),
        });
    }
}

/// Rule 5: the candidates among the OVN networks this host joined (`joined`, and the keys of
/// records that cannot be read, `unreadable`): those podman no longer has.
pub fn removed_ovn_networks(
    joined: &[JoinedNetwork],
    unreadable: &[(String, String)],
    saved: Result<&SavedNetworks, &str>,
) -> GcPlan {
    let mut plan = GcPlan::default();
    for (key, why) in unreadable {
        plan.kept.push(GcItem {
            kind: "record",
            name: key.clone(),
            network: None,
            container_id: None,
            reason: format!(
                "this host's record of an OVN network cannot be read ({why}): remove it with \
                 ovs-vsctl remove open . external_ids {key}"
            ),
        });
    }
    for record in joined {
        let network = &record.network;
        let item = |reason: String| GcItem {
            kind: "switch",
            name: switch_name(network),
            network: Some(network.clone()),
            container_id: None,
            reason,
        };
        let saved = match in_podman(saved, network) {
            InPodman::Unknown(why) => {
                plan.kept.push(item(why));
                continue;
            }
            InPodman::Defined(_) => continue,
            InPodman::Removed(saved) => saved,
        };
        plan.steps.push(Step {
            item: item(format!(
                "no geneve-ovs network {network:?} in {} and no chassis has a port on it",
                saved.dir.display()
            )),
            action: Action::RemoveOvnSwitch {
                network: network.clone(),
                remotes: record.remotes.clone(),
                identity: record.identity.clone(),
                record_key: record.key(),
            },
            firewall: false,
        });
    }
    plan
}

#[cfg(test)]
mod tests;
