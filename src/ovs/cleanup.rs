//! Removing stale rows for `gc`, each removal one transaction that re-checks, on the server,
//! that the row is still the plugin's and still as `gc` saw it. A row that changed in between
//! (a `setup` or `create` got there first) is left alone and reported.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::schema::owned_condition;
use super::schema::DB;
use super::Ovs;
use crate::ovsdb::{ops, value, TransactError, Until};

fn by_uuid(uuid: &str) -> Value {
    ops::cond("_uuid", "==", value::uuid(uuid))
}

/// Rewords a failed guard: the row changed after `gc` read it.
fn explain(err: anyhow::Error, what: &str) -> anyhow::Error {
    let changed = err
        .downcast_ref::<TransactError>()
        .is_some_and(|t| t.op == "wait" && t.is(crate::ovsdb::TIMED_OUT));
    if changed {
        anyhow::anyhow!("{what} changed since gc read it: left alone")
    } else {
        err
    }
}

impl Ovs {
    /// Drops the owned port `port` from the owned bridge `bridge` (both UUIDs).
    pub fn remove_owned_port(&mut self, bridge: &str, port: &str, name: &str) -> Result<()> {
        self.remove_port_checked(vec![by_uuid(bridge), owned_condition()], port, name)
    }

    /// Drops the owned port `port` from bridge `bridge` (both UUIDs), a bridge someone else
    /// manages (OVN's integration bridge): only the port must be the plugin's.
    pub fn remove_owned_port_from_foreign_bridge(
        &mut self,
        bridge: &str,
        port: &str,
        name: &str,
    ) -> Result<()> {
        self.remove_port_checked(vec![by_uuid(bridge)], port, name)
    }

    fn remove_port_checked(
        &mut self,
        bridge_where: Vec<Value>,
        port: &str,
        name: &str,
    ) -> Result<()> {
        let ops = vec![
            ops::wait(
                "Port",
                vec![by_uuid(port), owned_condition()],
                &["name"],
                Until::Equal,
                vec![json!({ "name": name })],
                Some(0),
            ),
            ops::mutate(
                "Bridge",
                bridge_where,
                vec![ops::mutation(
                    "ports",
                    "delete",
                    value::set(vec![value::uuid(port)]),
                )],
            ),
        ];
        let results = self
            .client
            .transact(DB, ops)
            .map_err(|e| explain(e, &format!("port {name}")))?;
        if results.get(1).map(value::count).transpose()? != Some(1) {
            bail!("port {name}: its bridge is gone or not geneve-ovs's");
        }
        Ok(())
    }

    /// Drops the owned bridge `uuid` (named `name`), provided it holds exactly `ports`; its
    /// ports and interfaces go with it.
    pub fn remove_owned_bridge(&mut self, uuid: &str, name: &str, ports: &[String]) -> Result<()> {
        let ports = value::set(ports.iter().map(|u| value::uuid(u)).collect());
        let ops = vec![
            ops::wait(
                "Bridge",
                vec![by_uuid(uuid), owned_condition()],
                &["name", "ports"],
                Until::Equal,
                vec![json!({ "name": name, "ports": ports })],
                Some(0),
            ),
            ops::mutate(
                "Open_vSwitch",
                vec![],
                vec![ops::mutation(
                    "bridges",
                    "delete",
                    value::set(vec![value::uuid(uuid)]),
                )],
            ),
        ];
        self.client
            .transact(DB, ops)
            .map_err(|e| explain(e, &format!("bridge {name}")))?;
        Ok(())
    }
}
