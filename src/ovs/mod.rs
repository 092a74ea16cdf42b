//! Open vSwitch operations: the network's bridge and tunnels, and container ports, each change
//! one OVSDB transaction.
//!
//! * [`schema`] knows the `external_ids` of the plugin's rows, written and read back as typed
//!   records;
//! * [`snapshot`] reads the database into plain rows, in the scope the caller needs (the
//!   configuration `setup` plans against, or vswitchd's run-time state for the operator
//!   commands);
//! * [`plan`] decides what must change (pure);
//! * [`txn`] turns changes into operations, commits them with the `next_cfg` handshake, waits
//!   for ovs-vswitchd and undoes them on failure;
//! * [`cleanup`] removes what `gc` found stale.
//!
//! The plugin only modifies or deletes rows whose `external_ids` name it as their owner.

pub mod cleanup;
pub mod plan;
pub mod schema;
pub mod snapshot;
pub mod txn;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::options::NetworkConfig;
use crate::ovsdb::{ops, value, Client, Until};
pub use schema::ContainerPort;
use schema::DB;
use snapshot::{Scope, Snapshot};
pub use txn::Applied;
use txn::{is_conflict, Txn};

/// How often a change is planned again when a concurrent plugin run changed the database
/// between our read and our write (both `create`s of one network, 20 parallel `setup`s...).
const ATTEMPTS: usize = 8;

/// How long one request to ovsdb-server may take, on top of the timeouts of its `wait`
/// operations. A healthy server answers in well under a millisecond, even with many plugin
/// runs at once; this bounds how long a stopped or wedged one can hold up podman.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to this host's Open vSwitch database.
pub struct Ovs {
    client: Client,
}

impl Ovs {
    /// Connects to the ovsdb-server at `socket` (see [`Client::default_socket`]) and checks
    /// that it answers and serves the Open_vSwitch database.
    ///
    /// A stopped (SIGSTOP) or wedged server still accepts connections, so only a request
    /// tells; asking one here, before anything is built, lets `setup` fail within
    /// [`REQUEST_TIMEOUT`] with nothing left behind.
    pub fn connect(socket: &Path) -> Result<Ovs> {
        let mut client = Client::connect(socket)?;
        client.set_timeout(REQUEST_TIMEOUT);
        let dbs = client.call("list_dbs", &[]).with_context(|| {
            format!(
                "ovsdb-server at unix:{} does not answer: is it stopped or hung?",
                socket.display()
            )
        })?;
        let serves_ovs = dbs
            .as_array()
            .is_some_and(|names| names.iter().any(|n| n.as_str() == Some(DB)));
        if !serves_ovs {
            bail!(
                "the OVSDB server at unix:{} has no {DB} database (it serves {dbs}): \
                 point OVS_RUNDIR at Open vSwitch's own ovsdb-server",
                socket.display()
            );
        }
        Ok(Ovs { client })
    }

    /// `Open_vSwitch.datapath_types`: what this ovs-vswitchd can run bridges on.
    pub fn datapath_types(&mut self) -> Result<Vec<String>> {
        let results = self.client.transact(
            DB,
            vec![ops::select(
                "Open_vSwitch",
                vec![],
                Some(&["datapath_types"]),
            )],
        )?;
        let rows = value::rows(&results[0])?;
        let Some(row) = rows.first() else {
            bail!("the Open_vSwitch table is empty: the database was never initialised (ovs-vsctl init)");
        };
        value::set_elements(value::column(row, "datapath_types")?)?
            .iter()
            .map(|v| value::string(v).map(str::to_string))
            .collect()
    }

    /// `Open_vSwitch.external_ids`: where ovn-controller reads its chassis name and remotes.
    pub fn local_external_ids(&mut self) -> Result<std::collections::BTreeMap<String, String>> {
        let results = self.client.transact(
            DB,
            vec![ops::select("Open_vSwitch", vec![], Some(&["external_ids"]))],
        )?;
        let rows = value::rows(&results[0])?;
        let Some(row) = rows.first() else {
            bail!("the Open_vSwitch table is empty: the database was never initialised (ovs-vsctl init)");
        };
        value::string_map(value::column(row, "external_ids")?)
    }

    /// Sets (`Some`) or removes (`None`) one key of `Open_vSwitch.external_ids`, leaving
    /// every other key (ovn-controller's settings among them) as it is.
    pub fn set_local_external_id(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        let mut mutations = vec![ops::mutation(
            "external_ids",
            "delete",
            value::set(vec![key.into()]),
        )];
        if let Some(v) = value {
            mutations.push(ops::mutation(
                "external_ids",
                "insert",
                value::map([(key, v)]),
            ));
        }
        self.client
            .transact(DB, vec![ops::mutate("Open_vSwitch", vec![], mutations)])
            .with_context(|| format!("writing external_ids:{key} of this host's Open vSwitch"))?;
        Ok(())
    }

    /// The `external_ids` of interface `name`, `None` when there is no such interface: where
    /// ovn-controller reports a port's flows installed on this host (`ovn-installed`).
    pub fn interface_external_ids(
        &mut self,
        name: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>> {
        let results = self.client.transact(
            DB,
            vec![ops::select(
                "Interface",
                vec![ops::cond("name", "==", name)],
                Some(&["external_ids"]),
            )],
        )?;
        match value::rows(&results[0])?.first() {
            None => Ok(None),
            Some(row) => value::string_map(value::column(row, "external_ids")?).map(Some),
        }
    }

    /// Adds a port owned by the plugin to a bridge someone else manages (OVN's integration
    /// bridge): `external_ids` go on the port and its interface, where ovn-controller reads
    /// `iface-id`. Waits for ovs-vswitchd like every other change; a leftover port of the same
    /// name (a crashed run) is replaced.
    pub fn add_port_to(
        &mut self,
        bridge: &str,
        name: &str,
        external_ids: &std::collections::BTreeMap<String, String>,
    ) -> Result<Applied> {
        self.remove_container_port(name)?;
        let mut txn = Txn::new();
        txn.push(ops::wait(
            "Bridge",
            vec![ops::cond("name", "==", bridge)],
            &["name"],
            Until::NotEqual,
            vec![],
            Some(0),
        ));
        txn.add_system_port(vec![ops::cond("name", "==", bridge)], name, external_ids)?;
        self.apply(txn)
            .with_context(|| format!("adding port {name} to OVS bridge {bridge}"))
    }

    /// Puts a network's gateway port on a bridge someone else manages (OVN's integration
    /// bridge, where ovn-controller binds it by its `iface-id`), unless the plugin's port of
    /// that name is already there; waits for ovs-vswitchd to make its device. A port of that
    /// name of another network is refused.
    pub fn ensure_gateway_on(&mut self, bridge: &str, gateway: &plan::Gateway) -> Result<()> {
        let network = schema::network_of(&gateway.external_ids).unwrap_or_default();
        for _ in 0..ATTEMPTS {
            let observed = self.snapshot(Scope::Config)?;
            if let Some(existing) = observed.owned_port(&gateway.name) {
                let theirs = schema::network_of(&existing.external_ids).unwrap_or_default();
                if theirs != network {
                    bail!(
                        "the gateway port {} of network {network:?} is taken by network \
                         {theirs:?} on this host (the same VNI): give one of them another \
                         --opt vni=",
                        gateway.name
                    );
                }
                return Ok(());
            }
            let Some(row) = observed.bridge(bridge) else {
                bail!("OVS bridge {bridge} is gone: is ovn-controller running?");
            };
            let mut txn = Txn::new();
            txn.add_change(&plan::Change::AddGateway {
                bridge: row.uuid.clone(),
                gateway: gateway.clone(),
            })?;
            match self.apply(txn) {
                Ok(_) => return Ok(()),
                // Another setup of the network added it first (the port name is unique).
                Err(err) if is_conflict(&err) || format!("{err:#}").contains("constraint") => {
                    continue
                }
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!(
                            "adding gateway port {} to OVS bridge {bridge}",
                            gateway.name
                        )
                    })
                }
            }
        }
        bail!(
            "could not add gateway port {}: the database kept changing underneath",
            gateway.name
        )
    }

    /// Makes the database hold the network's bridge and exactly its tunnels (`create`).
    pub fn ensure_network(&mut self, cfg: &NetworkConfig) -> Result<()> {
        self.reconcile(cfg, None).map(|_| ())
    }

    /// Adds a container's port to the network's bridge (`setup`).
    ///
    /// The common case, bridge and tunnels as `create` left them, costs one write transaction
    /// guarded by `wait` operations that check exactly that, plus one wait for ovs-vswitchd.
    /// When a guard fails (the database was wiped, a tunnel removed by hand), the network is
    /// reconciled in the same transaction that adds the port.
    pub fn add_container_port(
        &mut self,
        cfg: &NetworkConfig,
        port: &ContainerPort,
    ) -> Result<Applied> {
        let mut txn = Txn::new();
        for guard in network_guards(cfg) {
            txn.push(guard);
        }
        let bridge = vec![ops::cond("name", "==", cfg.bridge.as_str())];
        txn.add_system_port(bridge, &port.name, &port.external_ids(cfg))?;
        match self.apply(txn) {
            Ok(applied) => Ok(applied),
            Err(err) if is_conflict(&err) => {
                log::info!(
                    "network {} needs repair before adding {}: {err:#}",
                    cfg.name,
                    port.name
                );
                let mut applied = self.reconcile(cfg, Some(port))?;
                applied.repaired = true;
                Ok(applied)
            }
            Err(err) => Err(err),
        }
    }

    /// Removes a container's port (`teardown`). Returns whether there was one.
    pub fn remove_container_port(&mut self, name: &str) -> Result<bool> {
        for _ in 0..ATTEMPTS {
            let results = self.client.transact(
                DB,
                vec![ops::select(
                    "Port",
                    vec![ops::cond("name", "==", name), schema::owned_condition()],
                    Some(&["_uuid"]),
                )],
            )?;
            let Some(row) = value::rows(&results[0])?.first() else {
                return Ok(false);
            };
            let uuid = value::uuid_str(value::column(row, "_uuid")?)?.to_string();
            let mut txn = Txn::new();
            txn.push(ops::mutate(
                "Bridge",
                vec![ops::cond(
                    "ports",
                    "includes",
                    value::set(vec![value::uuid(&uuid)]),
                )],
                vec![ops::mutation(
                    "ports",
                    "delete",
                    value::set(vec![value::uuid(&uuid)]),
                )],
            ));
            // No wait for ovs-vswitchd: the port is gone from the database, which is what
            // counts, and vswitchd drops it whenever it runs.
            match txn.commit(&mut self.client) {
                Ok(_) => return Ok(true),
                Err(err) if is_conflict(&err) => continue,
                Err(err) => return Err(err),
            }
        }
        bail!("could not remove OVS port {name}: the database kept changing underneath")
    }

    /// Removes the gateway port `gateway` of bridge `bridge` if no container port is on the
    /// bridge: the undo of a failed `setup` that created the gateway with the network's first
    /// container here, so that the failure leaves nothing behind. Guarded by the bridges' ports
    /// as read, so a container attached meanwhile keeps it. No wait for ovs-vswitchd, as for a
    /// container's port.
    pub fn remove_idle_gateway(&mut self, bridge: &str, gateway: &str) -> Result<()> {
        for _ in 0..ATTEMPTS {
            let observed = self.snapshot(Scope::Config)?;
            let Some(row) = observed.bridge(bridge) else {
                return Ok(());
            };
            if observed
                .ports_of(row)
                .any(|p| p.has_role(schema::Role::Container))
            {
                return Ok(());
            }
            let ports: Vec<String> = observed
                .ports_of(row)
                .filter(|p| p.has_role(schema::Role::Gateway) && p.name == gateway)
                .map(|p| p.uuid.clone())
                .collect();
            if ports.is_empty() {
                return Ok(());
            }
            let mut txn = Txn::new();
            txn.push(guard_bridges(&observed));
            txn.add_change(&plan::Change::RemovePorts {
                bridge: row.uuid.clone(),
                ports,
            })?;
            match txn.commit(&mut self.client) {
                Ok(_) => return Ok(()),
                Err(err) if is_conflict(&err) => continue,
                Err(err) => return Err(err),
            }
        }
        bail!("could not remove OVS gateway port {gateway}: the database kept changing underneath")
    }

    /// Reads, plans and applies until the database converges (another plugin run may change
    /// it between our read and our write; OVSDB then refuses our transaction and we plan again).
    fn reconcile(&mut self, cfg: &NetworkConfig, port: Option<&ContainerPort>) -> Result<Applied> {
        let mut last_conflict = None;
        for _ in 0..ATTEMPTS {
            let observed = self.snapshot(Scope::Config)?;
            let changes = plan::plan(cfg, &observed, port.is_some())?;
            let mut txn = Txn::new();
            // Guard the plan with what it was made from, so a concurrent change is refused
            // rather than silently mixed with ours.
            txn.push(guard_bridges(&observed));
            for change in &changes {
                txn.add_change(change)?;
            }
            if let Some(port) = port {
                if let Some(existing) = observed.owned_port(&port.name) {
                    // A leftover of a crashed run: drop it so the port can be created again.
                    if let Some(bridge) = observed.bridge_of(existing) {
                        txn.add_change(&plan::Change::RemovePorts {
                            bridge: bridge.uuid.clone(),
                            ports: vec![existing.uuid.clone()],
                        })?;
                    }
                }
                let bridge = vec![ops::cond("name", "==", cfg.bridge.as_str())];
                txn.add_system_port(bridge, &port.name, &port.external_ids(cfg))?;
            } else if changes.is_empty() {
                return Ok(Applied::default());
            }
            match self.apply(txn) {
                Ok(applied) => return Ok(applied),
                Err(err) if is_conflict(&err) => last_conflict = Some(err),
                Err(err) => return Err(err),
            }
        }
        let err = last_conflict.map(|e| format!("{e:#}")).unwrap_or_default();
        bail!(
            "could not update OVS for network {}: the database kept changing underneath ({err})",
            cfg.name
        )
    }

    /// Commits, waits for ovs-vswitchd, and undoes the transaction if vswitchd fails it.
    fn apply(&mut self, txn: Txn) -> Result<Applied> {
        let committed = txn.commit(&mut self.client)?;
        committed.wait_applied(&mut self.client).inspect_err(|_| {
            committed.undo(&mut self.client);
        })
    }
}

/// `wait` operations that hold when the network's bridge and tunnels are as `cfg` wants them.
fn network_guards(cfg: &NetworkConfig) -> Vec<Value> {
    let bridge_ids = schema::bridge_external_ids(cfg);
    let tunnel_names: Vec<Value> = plan::desired_tunnels(cfg)
        .into_iter()
        .map(|t| serde_json::json!({ "name": t.name }))
        .collect();
    let bfd = value::map(
        plan::bfd_config(cfg.bfd)
            .into_iter()
            .collect::<Vec<(String, String)>>(),
    );
    // The options too: a tunnel that lost its key (or kept one the network no longer has)
    // is repaired by the next setup.
    let tunnel_bfd: Vec<Value> = plan::desired_tunnels(cfg)
        .into_iter()
        .map(|t| {
            let options = value::map(t.options().into_iter().collect::<Vec<(String, String)>>());
            serde_json::json!({ "name": t.name, "bfd": bfd, "options": options })
        })
        .collect();
    let tunnels_of_network = || vec![schema::owned_condition(), schema::tunnels_condition(cfg)];
    let mut guards = vec![
        ops::wait(
            "Bridge",
            vec![ops::cond("name", "==", cfg.bridge.as_str())],
            &["external_ids", "datapath_type", "fail_mode"],
            Until::Equal,
            vec![serde_json::json!({
                "external_ids": value::map(bridge_ids.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                "datapath_type": cfg.datapath.as_str(),
                "fail_mode": plan::FAIL_MODE,
            })],
            Some(0),
        ),
        ops::wait(
            "Port",
            tunnels_of_network(),
            &["name"],
            Until::Equal,
            tunnel_names,
            Some(0),
        ),
        // The tunnel interfaces carry the same external_ids as their ports.
        ops::wait(
            "Interface",
            tunnels_of_network(),
            &["name", "bfd", "options"],
            Until::Equal,
            tunnel_bfd,
            Some(0),
        ),
    ];
    if let Some(gateway) = plan::desired_gateway(cfg) {
        guards.push(ops::wait(
            "Port",
            vec![
                ops::cond("name", "==", gateway.name.as_str()),
                schema::owned_condition(),
            ],
            &["name"],
            Until::Equal,
            vec![serde_json::json!({ "name": gateway.name })],
            Some(0),
        ));
        guards.push(ops::wait(
            "Interface",
            vec![
                ops::cond("name", "==", gateway.name.as_str()),
                schema::owned_condition(),
            ],
            &["ofport_request"],
            Until::Equal,
            vec![serde_json::json!({ "ofport_request": crate::flows::GATEWAY_OFPORT })],
            Some(0),
        ));
    }
    guards
}

/// A `wait` that holds while the Bridge table still has the rows (names and ports) a plan was
/// made from.
fn guard_bridges(observed: &Snapshot) -> Value {
    let rows = observed
        .all_bridges()
        .map(|b| {
            let ports = b.ports.iter().map(|u| value::uuid(u)).collect();
            serde_json::json!({"name": b.name, "ports": value::set(ports)})
        })
        .collect();
    ops::wait(
        "Bridge",
        vec![],
        &["name", "ports"],
        Until::Equal,
        rows,
        Some(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_describe_the_converged_network() {
        let cfg = NetworkConfig {
            peers: vec!["10.99.0.2".parse().unwrap()],
            ..crate::options::sample_config()
        };
        let guards = network_guards(&cfg);
        assert_eq!(guards.len(), 3);
        assert_eq!(guards[0]["op"], "wait");
        assert_eq!(guards[0]["timeout"], 0);
        assert_eq!(guards[0]["rows"][0]["datapath_type"], "netdev");
        let name = plan::desired_tunnels(&cfg)[0].name.clone();
        assert_eq!(guards[1]["rows"], serde_json::json!([{ "name": name }]));
        assert_eq!(guards[2]["table"], "Interface");
        assert_eq!(guards[2]["rows"][0]["name"], name.as_str());
        assert_eq!(
            guards[2]["rows"][0]["bfd"],
            serde_json::json!([
                "map",
                [
                    ["bfd_local_dst_mac", "00:23:20:00:00:01"],
                    ["bfd_remote_dst_mac", "00:23:20:00:00:01"],
                    ["enable", "true"],
                    ["min_rx", "1000"],
                    ["min_tx", "1000"]
                ]
            ])
        );
    }
}
