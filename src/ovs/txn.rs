//! Write transactions: turning [`Change`]s into OVSDB operations, committing them with the
//! `next_cfg` handshake, waiting for ovs-vswitchd to apply them, and undoing them on failure.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use super::plan::{Change, Gateway, Tunnel};
use crate::ovsdb::{ops, value, Client, TransactError, Until};

use super::schema::DB;

/// How long ovs-vswitchd gets to apply a change before the plugin gives up and undoes it.
pub const APPLY_TIMEOUT_MS: u64 = 5000;

/// Where an inserted row is referenced from, so that dropping the reference removes it
/// (OVS garbage-collects unreferenced Bridge, Port and Interface rows).
#[derive(Debug, Clone)]
struct Undo {
    /// Index of the `insert` operation whose result holds the new row's UUID.
    op_index: usize,
    table: &'static str,
    where_: Vec<Value>,
    column: &'static str,
}

/// A write transaction being built.
#[derive(Debug, Default)]
pub struct Txn {
    ops: Vec<Value>,
    new_interfaces: Vec<String>,
    undo: Vec<Undo>,
    names: usize,
}

/// What a committed transaction left to check and, on failure, to undo.
#[derive(Debug)]
pub struct Committed {
    next_cfg: i64,
    new_interfaces: Vec<String>,
    undo: Vec<(Undo, String)>,
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    value::map(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn by_uuid(uuid: &str) -> Vec<Value> {
    vec![ops::cond("_uuid", "==", value::uuid(uuid))]
}

impl Txn {
    pub fn new() -> Self {
        Txn::default()
    }

    /// Whether the transaction would change anything.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends an operation as it is (a guard, a read).
    pub fn push(&mut self, op: Value) {
        self.ops.push(op);
    }

    fn uuid_name(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}{}", self.names)
    }

    fn insert(&mut self, table: &str, prefix: &str, row: Value) -> Result<(usize, String)> {
        let name = self.uuid_name(prefix);
        self.ops.push(ops::insert(table, Some(&name), row)?);
        Ok((self.ops.len() - 1, name))
    }

    /// Inserts an Interface and a Port of the same name; returns the Port's index and name.
    fn insert_port(
        &mut self,
        name: &str,
        interface: Value,
        port_extra: &[(&str, Value)],
        external_ids: &BTreeMap<String, String>,
    ) -> Result<(usize, String)> {
        let (_, iface) = self.insert("Interface", "iface", interface)?;
        let mut port = json!({
            "name": name,
            "interfaces": value::named_uuid(&iface)?,
            "external_ids": string_map(external_ids),
        });
        for (k, v) in port_extra {
            port[*k] = v.clone();
        }
        self.new_interfaces.push(name.to_string());
        self.insert("Port", "port", port)
    }

    /// References newly inserted rows (their insert's index and uuid-name) from `column` of the
    /// rows of `table` matching `where_`, and remembers how to drop the references again.
    fn reference(
        &mut self,
        table: &'static str,
        where_: Vec<Value>,
        column: &'static str,
        rows: &[(usize, String)],
    ) -> Result<()> {
        let uuids = rows
            .iter()
            .map(|(_, name)| value::named_uuid(name))
            .collect::<Result<Vec<_>>>()?;
        self.ops.push(ops::mutate(
            table,
            where_.clone(),
            vec![ops::mutation(column, "insert", value::set(uuids))],
        ));
        for (index, _) in rows {
            self.undo.push(Undo {
                op_index: *index,
                table,
                where_: where_.clone(),
                column,
            });
        }
        Ok(())
    }

    fn insert_tunnel(&mut self, tunnel: &Tunnel) -> Result<(usize, String)> {
        let interface = json!({
            "name": tunnel.name,
            "type": "geneve",
            "options": string_map(&tunnel.options()),
            "bfd": string_map(&tunnel.bfd_config()),
            "external_ids": string_map(&tunnel.external_ids),
        });
        self.insert_port(
            &tunnel.name,
            interface,
            &[("protected", Value::Bool(true))],
            &tunnel.external_ids,
        )
    }

    fn insert_gateway(&mut self, gateway: &Gateway) -> Result<(usize, String)> {
        let interface = json!({
            "name": gateway.name,
            "type": "internal",
            "mac": crate::naming::format_mac(&gateway.mac),
            "mtu_request": gateway.mtu,
            "ofport_request": crate::flows::GATEWAY_OFPORT,
            "external_ids": string_map(&gateway.external_ids),
        });
        self.insert_port(
            &gateway.name,
            interface,
            &[("protected", Value::Bool(true))],
            &gateway.external_ids,
        )
    }

    /// Adds a port for an existing network device (a container's host veth) to the bridge
    /// matched by `bridge_where`.
    pub fn add_system_port(
        &mut self,
        bridge_where: Vec<Value>,
        name: &str,
        external_ids: &BTreeMap<String, String>,
    ) -> Result<()> {
        let interface = json!({"name": name, "external_ids": string_map(external_ids)});
        let port = self.insert_port(name, interface, &[], external_ids)?;
        self.reference("Bridge", bridge_where, "ports", &[port])?;
        Ok(())
    }

    /// Adds the operations of one planned change.
    pub fn add_change(&mut self, change: &Change) -> Result<()> {
        match change {
            Change::CreateBridge {
                name,
                datapath,
                external_ids,
                tunnels,
                gateway,
            } => {
                // The bridge's own internal port, as `ovs-vsctl add-br` makes it.
                let internal = json!({"name": name, "type": "internal"});
                let (_, local) = self.insert_port(name, internal, &[], external_ids)?;
                let mut ports = vec![value::named_uuid(&local)?];
                for tunnel in tunnels {
                    let (_, port) = self.insert_tunnel(tunnel)?;
                    ports.push(value::named_uuid(&port)?);
                }
                if let Some(gateway) = gateway {
                    let (_, port) = self.insert_gateway(gateway)?;
                    ports.push(value::named_uuid(&port)?);
                }
                let bridge = json!({
                    "name": name,
                    "datapath_type": datapath.as_str(),
                    "fail_mode": super::plan::FAIL_MODE,
                    "ports": value::set(ports),
                    "external_ids": string_map(external_ids),
                });
                let bridge = self.insert("Bridge", "bridge", bridge)?;
                self.reference("Open_vSwitch", vec![], "bridges", &[bridge])?;
            }
            Change::UpdateBridge {
                uuid,
                external_ids,
                datapath,
            } => {
                self.ops.push(ops::update(
                    "Bridge",
                    by_uuid(uuid),
                    json!({
                        "external_ids": string_map(external_ids),
                        "datapath_type": datapath.as_str(),
                        "fail_mode": super::plan::FAIL_MODE,
                    }),
                ));
            }
            Change::AddTunnels { bridge, tunnels } => {
                let ports = tunnels
                    .iter()
                    .map(|t| self.insert_tunnel(t))
                    .collect::<Result<Vec<_>>>()?;
                self.reference("Bridge", by_uuid(bridge), "ports", &ports)?;
            }
            Change::AddGateway { bridge, gateway } => {
                let port = self.insert_gateway(gateway)?;
                self.reference("Bridge", by_uuid(bridge), "ports", &[port])?;
            }
            Change::RemovePorts { bridge, ports } => {
                let uuids = ports.iter().map(|u| value::uuid(u)).collect();
                self.ops.push(ops::mutate(
                    "Bridge",
                    by_uuid(bridge),
                    vec![ops::mutation("ports", "delete", value::set(uuids))],
                ));
            }
            Change::ProtectPorts { ports } => {
                for port in ports {
                    self.ops.push(ops::update(
                        "Port",
                        by_uuid(port),
                        json!({"protected": true}),
                    ));
                }
            }
            Change::PinGateway { interface } => {
                self.ops.push(ops::update(
                    "Interface",
                    by_uuid(interface),
                    json!({"ofport_request": crate::flows::GATEWAY_OFPORT}),
                ));
            }
            Change::UpdateTunnel {
                port,
                interface,
                options,
                external_ids,
            } => {
                self.ops.push(ops::update(
                    "Interface",
                    by_uuid(interface),
                    json!({"options": string_map(options), "external_ids": string_map(external_ids)}),
                ));
                self.ops.push(ops::update(
                    "Port",
                    by_uuid(port),
                    json!({"external_ids": string_map(external_ids)}),
                ));
            }
            Change::SetBfd { interfaces, bfd } => {
                for interface in interfaces {
                    self.ops.push(ops::update(
                        "Interface",
                        by_uuid(interface),
                        json!({"bfd": string_map(bfd)}),
                    ));
                }
            }
            Change::SetHostPki { pki } => {
                // A map mutation's insert keeps existing keys: delete them first.
                let entries = pki.other_config();
                let keys = entries.iter().map(|(k, _)| json!(k)).collect();
                self.ops.push(ops::mutate(
                    "Open_vSwitch",
                    vec![],
                    vec![
                        ops::mutation("other_config", "delete", value::set(keys)),
                        ops::mutation("other_config", "insert", value::map(entries)),
                    ],
                ));
            }
            Change::RemoveBridge { uuid } => {
                self.ops.push(ops::mutate(
                    "Open_vSwitch",
                    vec![],
                    vec![ops::mutation(
                        "bridges",
                        "delete",
                        value::set(vec![value::uuid(uuid)]),
                    )],
                ));
            }
        }
        Ok(())
    }

    /// Sends the transaction with a `next_cfg` increment, so that [`Committed::wait_applied`]
    /// can tell when ovs-vswitchd has caught up with it.
    pub fn commit(mut self, client: &mut Client) -> Result<Committed> {
        self.ops.push(ops::mutate(
            "Open_vSwitch",
            vec![],
            vec![ops::mutation("next_cfg", "+=", 1)],
        ));
        self.ops
            .push(ops::select("Open_vSwitch", vec![], Some(&["next_cfg"])));
        let results = client.transact(DB, self.ops)?;
        let next_cfg = results
            .last()
            .map(value::rows)
            .transpose()?
            .and_then(|rows| rows.first())
            .map(|row| value::column(row, "next_cfg").and_then(value::integer))
            .transpose()?
            .context("OVSDB did not return Open_vSwitch.next_cfg: is the database initialised?")?;
        let undo = self
            .undo
            .into_iter()
            .map(|u| {
                let uuid = results
                    .get(u.op_index)
                    .context("missing insert result")
                    .and_then(value::inserted_uuid)?
                    .to_string();
                Ok((u, uuid))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Committed {
            next_cfg,
            new_interfaces: self.new_interfaces,
            undo,
        })
    }
}

/// What ovs-vswitchd reported, once it applied a transaction, for the interfaces the
/// transaction created: their `Interface.status` and OpenFlow port numbers, read in the same
/// round trip as the wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    statuses: BTreeMap<String, BTreeMap<String, String>>,
    ofports: BTreeMap<String, u32>,
    /// The network had to be repaired (reconciled) on the way: its bridge was not as the
    /// configuration says (rebuilt, made by an older version...), so what else depends on the
    /// bridge (its OpenFlow table) must be checked as a whole.
    pub repaired: bool,
}

impl Applied {
    /// The OpenFlow port numbers ovs-vswitchd gave the interfaces (`Interface.ofport`), by
    /// name; an interface whose number was not written yet is absent. They are what the
    /// OpenFlow switch uses, so the port's flows need not ask the switch for them again.
    pub fn ofports(&self) -> &BTreeMap<String, u32> {
        &self.ofports
    }

    /// Whether the transaction created interface `name`.
    pub fn created(&self, name: &str) -> bool {
        self.statuses.contains_key(name)
    }

    /// Whether ovs-vswitchd reads and writes interface `name` with offload metadata, completing
    /// checksums and segmenting itself. On the userspace datapath that is the case only with
    /// `userspace-tso-enable`; then the container end may keep its own offloads.
    pub fn completes_checksums(&self, name: &str) -> bool {
        let on = |key: &str| {
            self.statuses
                .get(name)
                .and_then(|status| status.get(key))
                .is_some_and(|v| v == "true")
        };
        on("tx_tcp_csum_offload") && on("tx_tcp_seg_offload")
    }
}

impl Committed {
    /// Waits until ovs-vswitchd has applied the transaction, then checks that every interface
    /// it created works (`ofport` -1 means vswitchd could not add it; `error` says why) and
    /// returns what it reports about them.
    pub fn wait_applied(&self, client: &mut Client) -> Result<Applied> {
        let mut ops = vec![ops::wait(
            "Open_vSwitch",
            vec![ops::cond("cur_cfg", ">=", self.next_cfg)],
            &["cur_cfg"],
            Until::NotEqual,
            vec![],
            Some(APPLY_TIMEOUT_MS),
        )];
        for name in &self.new_interfaces {
            ops.push(ops::select(
                "Interface",
                vec![ops::cond("name", "==", name.as_str())],
                Some(&["name", "ofport", "error", "status"]),
            ));
        }
        let results = client.transact(DB, ops).map_err(|err| {
            let timed_out = err
                .downcast_ref::<TransactError>()
                .is_some_and(|t| t.is(crate::ovsdb::TIMED_OUT));
            if timed_out {
                anyhow!(
                    "ovs-vswitchd did not apply the change within {} s (OVSDB at {}): \
                     is ovs-vswitchd running? Start it (e.g. `systemctl start openvswitch-switch`)",
                    APPLY_TIMEOUT_MS / 1000,
                    client.remote()
                )
            } else {
                err
            }
        })?;
        let mut failures = Vec::new();
        let mut applied = Applied::default();
        for (name, result) in self.new_interfaces.iter().zip(&results[1..]) {
            for row in value::rows(result)? {
                let status = value::string_map(value::column(row, "status")?)?;
                applied.statuses.insert(name.clone(), status);
                let ofport = value::optional(value::column(row, "ofport")?)?
                    .map(|v| value::integer(&v))
                    .transpose()?;
                let error = value::optional(value::column(row, "error")?)?
                    .map(|v| value::string(&v).map(str::to_string))
                    .transpose()?;
                if let Some(number) = ofport.and_then(openflow_port_number) {
                    applied.ofports.insert(name.clone(), number);
                }
                if ofport == Some(-1) || error.is_some() {
                    failures.push(format!(
                        "{name}: {}",
                        error.unwrap_or_else(|| "ofport is -1".to_string())
                    ));
                }
            }
        }
        if !failures.is_empty() {
            bail!("Open vSwitch could not add {}", failures.join("; "));
        }
        Ok(applied)
    }

    /// Removes every row the transaction inserted (best effort: it runs after another error,
    /// which is the one worth reporting).
    pub fn undo(&self, client: &mut Client) {
        if self.undo.is_empty() {
            return;
        }
        let mut ops: Vec<Value> = self
            .undo
            .iter()
            .map(|(u, uuid)| {
                ops::mutate(
                    u.table,
                    u.where_.clone(),
                    vec![ops::mutation(
                        u.column,
                        "delete",
                        value::set(vec![value::uuid(uuid)]),
                    )],
                )
            })
            .collect();
        ops.push(ops::mutate(
            "Open_vSwitch",
            vec![],
            vec![ops::mutation("next_cfg", "+=", 1)],
        ));
        if let Err(err) = client.transact(DB, ops) {
            log::warn!("could not undo a failed OVS change: {err:#}");
        }
    }
}

/// `Interface.ofport` as an OpenFlow physical port number: 1 up to 0xfeff (0xff00 and above
/// are OpenFlow's reserved ports; 0 and -1 are no port).
fn openflow_port_number(ofport: i64) -> Option<u32> {
    u32::try_from(ofport)
        .ok()
        .filter(|number| (1..0xff00).contains(number))
}

/// Whether an error is a transaction the server refused because another writer changed the
/// same rows first (a duplicate name, a guard that no longer holds): worth planning again.
pub fn is_conflict(err: &anyhow::Error) -> bool {
    err.downcast_ref::<TransactError>().is_some_and(|t| {
        (t.at_commit
            && (t.is(crate::ovsdb::CONSTRAINT_VIOLATION)
                || t.is(crate::ovsdb::REFERENTIAL_INTEGRITY_VIOLATION)))
            || (t.op == "wait" && t.is(crate::ovsdb::TIMED_OUT))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(status: &[(&str, &str)]) -> Applied {
        let status = status
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Applied {
            statuses: BTreeMap::from([("gvx".to_string(), status)]),
            ofports: BTreeMap::new(),
            repaired: false,
        }
    }

    #[test]
    fn only_physical_openflow_port_numbers_are_kept() {
        assert_eq!(openflow_port_number(1), Some(1));
        assert_eq!(openflow_port_number(0xfeff), Some(0xfeff));
        for no_port in [-1, 0, 0xff00, 0xfffe, i64::MAX, i64::MIN] {
            assert_eq!(openflow_port_number(no_port), None, "{no_port}");
        }
    }

    #[test]
    fn offloads_are_kept_only_when_ovs_completes_both() {
        let both = applied(&[
            ("tx_tcp_csum_offload", "true"),
            ("tx_tcp_seg_offload", "true"),
        ]);
        assert!(both.completes_checksums("gvx"));
        assert!(!both.completes_checksums("gvother"));
        let csum_only = applied(&[
            ("tx_tcp_csum_offload", "true"),
            ("tx_tcp_seg_offload", "false"),
        ]);
        assert!(!csum_only.completes_checksums("gvx"));
        assert!(!applied(&[]).completes_checksums("gvx"));
    }
}
