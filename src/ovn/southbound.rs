//! What `status` reads from OVN's southbound database: which chassis each of this host's
//! logical ports is bound to (`Port_Binding.chassis`). Read-only; the southbound remotes are
//! those ovn-controller uses (`Open_vSwitch.external_ids:ovn-remote`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::ovsdb::{ops, value, Client, Remote};

/// The southbound database's name.
pub const DB: &str = "OVN_Southbound";
/// The port of a southbound remote given without one.
pub const SB_PORT: u16 = 6642;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A `Port_Binding` row, as far as `status` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBindingRow {
    pub logical_port: String,
    /// The `Chassis` row's UUID the port is bound to, `None` while unbound.
    pub chassis: Option<String>,
}

impl PortBindingRow {
    pub fn read(row: &Value) -> Result<PortBindingRow> {
        let chassis = match value::optional(value::column(row, "chassis")?)? {
            Some(uuid) => Some(value::uuid_str(&uuid)?.to_string()),
            None => None,
        };
        Ok(PortBindingRow {
            logical_port: value::string(value::column(row, "logical_port")?)?.to_string(),
            chassis,
        })
    }
}

/// A `Chassis` row's UUID and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChassisRow {
    pub uuid: String,
    pub name: String,
}

impl ChassisRow {
    pub fn read(row: &Value) -> Result<ChassisRow> {
        Ok(ChassisRow {
            uuid: value::uuid_str(value::column(row, "_uuid")?)?.to_string(),
            name: value::string(value::column(row, "name")?)?.to_string(),
        })
    }
}

/// The southbound remotes in `ovn-remote`'s syntax (comma-separated OVSDB remotes).
pub fn parse_remotes(ovn_remote: &str) -> Result<Vec<Remote>> {
    let remotes = ovn_remote
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| Remote::parse(r, SB_PORT))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|why| anyhow::anyhow!("external_ids:ovn-remote={ovn_remote:?}: {why}"))?;
    if remotes.is_empty() {
        bail!("external_ids:ovn-remote is empty");
    }
    Ok(remotes)
}

/// For each of `ports` that the southbound database has, the name of the chassis it is bound
/// to (`None`: unbound). A port missing from the map has no binding yet (ovn-northd has not
/// made it). Any member of a cluster answers: a follower's view is at most a moment old.
pub fn bindings(remotes: &[Remote], ports: &[String]) -> Result<BTreeMap<String, Option<String>>> {
    let mut why = Vec::new();
    let mut client = None;
    for remote in remotes {
        match Client::connect_remote(remote, CONNECT_TIMEOUT) {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(err) => why.push(format!("{remote}: {err:#}")),
        }
    }
    let Some(mut client) = client else {
        bail!(
            "cannot reach the OVN southbound database: {}",
            why.join("; ")
        );
    };
    client.set_timeout(REQUEST_TIMEOUT);
    let mut requests = vec![ops::select("Chassis", vec![], Some(&["_uuid", "name"]))];
    requests.extend(ports.iter().map(|port| {
        ops::select(
            "Port_Binding",
            vec![ops::cond("logical_port", "==", port.as_str())],
            Some(&["logical_port", "chassis"]),
        )
    }));
    let results = client
        .transact(DB, requests)
        .with_context(|| format!("reading port bindings from {}", client.remote()))?;
    let Some((chassis_result, binding_results)) = results.split_first() else {
        bail!("the southbound database answered no results");
    };
    let chassis: BTreeMap<String, String> = value::rows(chassis_result)?
        .iter()
        .map(|row| ChassisRow::read(row).map(|c| (c.uuid, c.name)))
        .collect::<Result<_>>()?;
    let mut out = BTreeMap::new();
    for result in binding_results {
        for row in value::rows(result)? {
            let binding = PortBindingRow::read(row)?;
            let name = binding
                .chassis
                .map(|uuid| chassis.get(&uuid).cloned().unwrap_or(uuid));
            out.insert(binding.logical_port, name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_decode_bound_and_unbound() {
        let bound = PortBindingRow::read(&json!({
            "logical_port": "abc-eth0", "chassis": ["uuid", "c1"],
        }))
        .unwrap();
        assert_eq!(bound.chassis.as_deref(), Some("c1"));
        let unbound = PortBindingRow::read(&json!({
            "logical_port": "abc-eth0", "chassis": ["set", []],
        }))
        .unwrap();
        assert_eq!(unbound.chassis, None);
        assert!(PortBindingRow::read(&json!({"logical_port": 3, "chassis": ["set", []]})).is_err());
        let chassis = ChassisRow::read(&json!({"_uuid": ["uuid", "c1"], "name": "h1"})).unwrap();
        assert_eq!(chassis.name, "h1");
    }

    #[test]
    fn remotes_as_ovn_controller_takes_them() {
        let remotes = parse_remotes("tcp:10.99.0.1:6642, 10.99.0.2").unwrap();
        assert_eq!(remotes.len(), 2);
        assert_eq!(remotes[1].to_string(), "tcp:10.99.0.2:6642");
        assert!(parse_remotes(" ").is_err());
        assert!(format!("{:#}", parse_remotes("bogus:x").unwrap_err()).contains("ovn-remote"));
    }
}
