//! Port security applied: which flows ([`crate::flows`]) each bridge and container port gets,
//! worked out from what the plugin keeps in OVS, and installed in-process with
//! [`crate::openflow`] (`setup`, `teardown`) or with [`crate::ofctl`] (`create`, `gc`).
//!
//! * `setup` installs its bridge's base flows (the same for every run: idempotent) and its own
//!   port's, in one bundle, after the port is on the bridge and before the duplicate-address
//!   probe (a probe dropped by a closed port would let DAD pass silently);
//! * `teardown` deletes its port's flows (its cookie) before the port goes;
//! * `gc` (at boot, and after every ovs-vswitchd restart through
//!   `contrib/systemd/geneve-ovs-flows.service`) replaces each owned bridge's table whole, from
//!   the OVS rows alone;
//! * `status` compares each bridge's table (one dump per bridge) with its container ports.

use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::flows::{self, Flow, FlowChange, PortIdentity};
use crate::naming;
use crate::ofctl::Ofctl;
use crate::openflow::Switch;
use crate::options::NetworkConfig;
use crate::ovs::snapshot::{BridgeRow, Snapshot};
use crate::ovs::ContainerPort;

/// How long `gc` keeps trying to restore a bridge's table while ovs-vswitchd, just restarted,
/// has not yet created the bridge or its ports.
pub const RESTORE_WAIT: Duration = Duration::from_secs(10);

/// The bundle `setup` installs for `port`: the bridge's base flows and the port's own.
pub fn setup_changes(cfg: &NetworkConfig, port: &ContainerPort) -> Result<Vec<FlowChange>> {
    let mac = naming::parse_mac(&port.mac).with_context(|| {
        format!(
            "container port {} has no valid MAC {:?}",
            port.name, port.mac
        )
    })?;
    let identity = PortIdentity {
        port: port.name.clone(),
        mac,
        addresses: port.addresses.clone(),
        gateway_mac: naming::gateway_mac(cfg.vni),
    };
    let mut changes = create_changes(cfg);
    changes.extend(flows::replace_cookie(
        flows::port_cookie(&port.name),
        &flows::port_flows(&identity, cfg.port_security),
    ));
    Ok(changes)
}

/// The bundle `create` installs: the bridge's base flows alone, so that the peers' frames are
/// switched from the moment the network exists (the bridge is `fail_mode=secure`). Container
/// ports keep their own cookies' flows.
pub fn create_changes(cfg: &NetworkConfig) -> Vec<FlowChange> {
    flows::replace_cookie(flows::base_cookie(cfg.vni), &flows::base_flows(cfg.vni))
}

/// Installs the base flows of `cfg`'s bridge and `port`'s flows (`setup`).
pub fn install(switch: &Switch, cfg: &NetworkConfig, port: &ContainerPort) -> Result<()> {
    switch
        .apply(&cfg.bridge, &setup_changes(cfg, port)?)
        .with_context(|| {
            format!(
                "cannot install the port-security flows of port {} on OVS bridge {}",
                port.name, cfg.bridge
            )
        })
}

/// Bundle changes that (re)install the flows of every container port of `bridge` the database
/// has, each under its own cookie, and the base flows. For a `setup` that had to repair the
/// network on the way: a bridge made `fail_mode=secure` just now (an upgrade from a version
/// without port security) has lost the table of the containers already running on it. Unlike
/// [`restore_all`], it replaces cookie by cookie, so the flows of a concurrent `setup` that is
/// not in `inventory` yet survive.
pub fn repair_changes(inventory: &Snapshot, bridge: &str) -> Result<Vec<FlowChange>> {
    let Some(row) = inventory.owned_bridges().find(|b| b.name == bridge) else {
        anyhow::bail!("OVS bridge {bridge} is missing");
    };
    let table = bridge_table(inventory, row)?;
    let mut cookies: Vec<u64> = table.iter().map(|f| f.cookie).collect();
    cookies.dedup();
    let mut changes = Vec::new();
    for cookie in cookies {
        let flows: Vec<Flow> = table
            .iter()
            .filter(|f| f.cookie == cookie)
            .cloned()
            .collect();
        changes.extend(flows::replace_cookie(cookie, &flows));
    }
    Ok(changes)
}

/// Deletes the flows of container port `port` on `bridge` (`teardown`).
pub fn remove(switch: &Switch, bridge: &str, port: &str) -> Result<()> {
    switch
        .apply(
            bridge,
            &[FlowChange::DeleteCookie(flows::port_cookie(port))],
        )
        .with_context(|| format!("cannot delete the flows of port {port} on OVS bridge {bridge}"))
}

/// Whether the network of `bridge` has port security on (bridges of older versions, without
/// the key, get the default: on).
fn enforced(bridge: &BridgeRow) -> bool {
    bridge.record().is_none_or(|r| r.port_security)
}

/// The whole table of one owned bridge, from the database: base flows, and the flows of every
/// container port ovs-vswitchd has (a port without a valid MAC in its row stays closed).
pub fn bridge_table(inventory: &Snapshot, bridge: &BridgeRow) -> Result<Vec<Flow>> {
    let vni: u32 = bridge.record().and_then(|r| r.vni).with_context(|| {
        format!(
            "OVS bridge {} has no valid VNI in its external_ids",
            bridge.name
        )
    })?;
    let mut table = flows::base_flows(vni);
    for (port, record) in inventory
        .ports_of(bridge)
        .filter_map(|p| Some((p, p.container()?)))
    {
        let in_switch = inventory
            .interface_of(port)
            .and_then(|i| i.ofport)
            .is_some_and(|ofport| ofport > 0);
        if !in_switch {
            continue;
        }
        let Some(mac) = record.mac.as_deref().and_then(naming::parse_mac) else {
            log::warn!(
                "container port {} has no valid MAC in its external_ids: it stays closed",
                port.name,
            );
            continue;
        };
        let identity = PortIdentity {
            port: port.name.clone(),
            mac,
            addresses: record.addresses,
            gateway_mac: naming::gateway_mac(vni),
        };
        table.extend(flows::port_flows(&identity, enforced(bridge)));
    }
    Ok(table)
}

/// Replaces the table of every owned bridge by what the database says it must be, re-reading
/// the database and trying again for up to [`RESTORE_WAIT`] while ovs-vswitchd is still
/// building bridges or ports after a restart. Returns each bridge's outcome.
///
/// A bridge whose datapath type this ovs-vswitchd does not offer (`datapath_types`, e.g.
/// `system` without the `openvswitch` kernel module) is never built, so it forwards nothing and
/// has no table to restore: it is left out, and [`unbuildable_bridges`] names it.
pub fn restore_all(
    ofctl: &Ofctl,
    offered: &[String],
    mut read: impl FnMut() -> Result<Snapshot>,
) -> Result<BTreeMap<String, Result<usize, String>>> {
    let deadline = Instant::now() + RESTORE_WAIT;
    let mut outcome: BTreeMap<String, Result<usize, String>> = BTreeMap::new();
    loop {
        let inventory = read()?;
        let mut pending = false;
        for bridge in inventory
            .owned_bridges()
            .filter(|b| is_offered(&b.datapath_type, offered))
        {
            if matches!(outcome.get(&bridge.name), Some(Ok(_))) {
                continue;
            }
            let done = bridge_table(&inventory, bridge)
                .and_then(|table| {
                    ofctl
                        .replace_all(&bridge.name, &table)
                        .map(|()| table.len())
                })
                .map_err(|e| format!("{e:#}"));
            pending |= done.is_err();
            outcome.insert(bridge.name.clone(), done);
        }
        if !pending || Instant::now() >= deadline {
            return Ok(outcome);
        }
        sleep(Duration::from_millis(50));
    }
}

/// Whether ovs-vswitchd offers the datapath type a bridge asks for (empty means `system`).
/// An empty list is not known yet (a daemon that has just started writes it a moment later):
/// then every bridge is tried, as the restore must never skip a bridge that may be built.
fn is_offered(datapath_type: &str, offered: &[String]) -> bool {
    if offered.is_empty() {
        return true;
    }
    let wanted = if datapath_type.is_empty() {
        "system"
    } else {
        datapath_type
    };
    offered.iter().any(|t| t == wanted)
}

/// The owned bridges ovs-vswitchd cannot build, with their datapath type.
pub fn unbuildable_bridges(inventory: &Snapshot, offered: &[String]) -> Vec<(String, String)> {
    inventory
        .owned_bridges()
        .filter(|b| !is_offered(&b.datapath_type, offered))
        .map(|b| (b.name.clone(), b.datapath_type.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operate::fixture::Fix;
    use crate::ovs::schema::keys;

    #[test]
    fn a_datapath_vswitchd_does_not_offer_has_no_table_to_restore() {
        let offered = vec!["netdev".to_string()];
        assert!(is_offered("netdev", &offered));
        assert!(!is_offered("system", &offered));
        assert!(!is_offered("", &offered), "empty is the kernel datapath");
        assert!(is_offered("", &["system".to_string()]));
        assert!(is_offered("system", &[]), "not known yet: try it");
    }

    #[test]
    fn repair_replaces_each_cookie_of_the_bridge() {
        let mut fx = Fix::new();
        fx.network("blue", "gnv5", 5, &[]).container(
            "gnv5",
            "gvaaaaaaaaaaaaa",
            "/run/netns/a",
            true,
            true,
        );
        let changes = repair_changes(&fx.inv, "gnv5").unwrap();
        let deletes: Vec<&FlowChange> = changes
            .iter()
            .filter(|c| matches!(c, FlowChange::DeleteCookie(_)))
            .collect();
        assert_eq!(
            deletes,
            vec![
                &FlowChange::DeleteCookie(flows::base_cookie(5)),
                &FlowChange::DeleteCookie(flows::port_cookie("gvaaaaaaaaaaaaa")),
            ]
        );
        assert!(repair_changes(&fx.inv, "gnv6").is_err());
    }

    #[test]
    fn bridge_table_has_base_and_live_container_ports_only() {
        let mut fx = Fix::new();
        fx.network("blue", "gnv5", 5, &[])
            .container("gnv5", "gvaaaaaaaaaaaaa", "/run/netns/a", true, true)
            .container("gnv5", "gvbbbbbbbbbbbbb", "/run/netns/b", true, false);
        let bridge = &fx.inv.bridges[0];
        let table = bridge_table(&fx.inv, bridge).unwrap();
        let count = |cookie| table.iter().filter(|f| f.cookie == cookie).count();
        assert_eq!(count(flows::base_cookie(5)), flows::base_flows(5).len());
        assert!(count(flows::port_cookie("gvaaaaaaaaaaaaa")) > 10);
        // A port ovs-vswitchd could not add (ofport -1) gets nothing: ovs-ofctl could not
        // name it, and it carries no traffic anyway.
        assert_eq!(count(flows::port_cookie("gvbbbbbbbbbbbbb")), 0);
        // Port security off on the network: one open flow per port.
        fx.inv.bridges[0]
            .external_ids
            .insert(keys::PORT_SECURITY.into(), "false".into());
        let bridge = &fx.inv.bridges[0];
        let table = bridge_table(&fx.inv, bridge).unwrap();
        assert_eq!(
            table
                .iter()
                .filter(|f| f.cookie == flows::port_cookie("gvaaaaaaaaaaaaa"))
                .count(),
            1
        );
    }
}
