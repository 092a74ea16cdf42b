//! The OVN northbound rows the plugin reads and writes, typed: `Logical_Switch`,
//! `Logical_Switch_Port`, `DNS` and `ACL`, and the `external_ids` keys that mark them as the
//! plugin's (the same owner key as on the plugin's Open vSwitch rows, [`crate::ovs::schema`]).
//!
//! Decoders return errors instead of panicking: the rows come from a server shared by every
//! host of the network.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::ovs::schema::{keys, OWNER};
use crate::ovsdb::value;

/// The northbound database's name.
pub const DB: &str = "OVN_Northbound";

/// Roles of the plugin's northbound rows ([`keys::ROLE`]).
pub const ROLE_SWITCH: &str = "ovn-switch";
pub const ROLE_PORT: &str = "ovn-port";
pub const ROLE_DNS: &str = "ovn-dns";
pub const ROLE_ACL: &str = "ovn-acl";
pub const ROLE_GATEWAY: &str = "ovn-gateway";

/// The `type` of a logical switch port present on every chassis and never reached through a
/// tunnel: what the network's gateway port is.
pub const LOCALPORT: &str = "localport";

/// Identity keys of a network's switch: what every host joining it must agree on.
pub mod ids {
    /// The network's subnets, comma-separated.
    pub const SUBNETS: &str = "geneve-ovs.subnets";
    /// `true` for `--internal` networks.
    pub const INTERNAL: &str = "geneve-ovs.internal";
    /// The container interfaces' MTU.
    pub const MTU: &str = "geneve-ovs.mtu";
    /// The chassis (OVS `system-id`) a container port was set up on.
    pub const CHASSIS: &str = "geneve-ovs.chassis";
}

/// A `Logical_Switch` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchRow {
    pub uuid: String,
    pub name: String,
    pub external_ids: BTreeMap<String, String>,
    pub ports: Vec<String>,
    pub dns_records: Vec<String>,
    pub acls: Vec<String>,
}

/// The columns [`SwitchRow::read`] needs.
pub const SWITCH_COLUMNS: &[&str] = &[
    "_uuid",
    "name",
    "external_ids",
    "ports",
    "dns_records",
    "acls",
];

impl SwitchRow {
    pub fn read(row: &Value) -> Result<SwitchRow> {
        Ok(SwitchRow {
            uuid: uuid_of(row)?,
            name: string_of(row, "name")?,
            external_ids: value::string_map(value::column(row, "external_ids")?)?,
            ports: uuids(row, "ports")?,
            dns_records: uuids(row, "dns_records")?,
            acls: uuids(row, "acls")?,
        })
    }

    pub fn is_owned(&self) -> bool {
        is_owned(&self.external_ids)
    }
}

/// A `Logical_Switch_Port` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchPortRow {
    pub uuid: String,
    pub name: String,
    /// `""` for a VIF (a container), `localport`, `router`...
    pub kind: String,
    /// "MAC IP..." strings, or `unknown`, `router`, `dynamic`.
    pub addresses: Vec<String>,
    /// `None` until northd has seen it bound (or on a server that never set it).
    pub up: Option<bool>,
    pub external_ids: BTreeMap<String, String>,
}

/// The columns [`SwitchPortRow::read`] needs.
pub const PORT_COLUMNS: &[&str] = &["_uuid", "name", "type", "addresses", "up", "external_ids"];

impl SwitchPortRow {
    pub fn read(row: &Value) -> Result<SwitchPortRow> {
        let up = match value::optional(value::column(row, "up")?)? {
            Some(v) => Some(
                v.as_bool()
                    .with_context(|| format!("up is not a boolean: {v}"))?,
            ),
            None => None,
        };
        Ok(SwitchPortRow {
            uuid: uuid_of(row)?,
            name: string_of(row, "name")?,
            kind: string_of(row, "type")?,
            addresses: strings(row, "addresses")?,
            up,
            external_ids: value::string_map(value::column(row, "external_ids")?)?,
        })
    }

    /// One of the plugin's value in `external_ids`, `None` on someone else's port.
    pub fn owned(&self, key: &str) -> Option<&str> {
        crate::ovs::schema::owned_value(&self.external_ids, key)
    }
}

/// A `DNS` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRow {
    pub uuid: String,
    pub records: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

pub const DNS_COLUMNS: &[&str] = &["_uuid", "records", "external_ids"];

impl DnsRow {
    pub fn read(row: &Value) -> Result<DnsRow> {
        Ok(DnsRow {
            uuid: uuid_of(row)?,
            records: value::string_map(value::column(row, "records")?)?,
            external_ids: value::string_map(value::column(row, "external_ids")?)?,
        })
    }
}

/// Whether a row's `external_ids` name the plugin as its owner.
pub fn is_owned(external_ids: &BTreeMap<String, String>) -> bool {
    external_ids.get(keys::OWNER).map(String::as_str) == Some(OWNER)
}

fn uuid_of(row: &Value) -> Result<String> {
    Ok(value::uuid_str(value::column(row, "_uuid")?)?.to_string())
}

fn string_of(row: &Value, column: &str) -> Result<String> {
    Ok(value::string(value::column(row, column)?)?.to_string())
}

fn strings(row: &Value, column: &str) -> Result<Vec<String>> {
    value::set_elements(value::column(row, column)?)?
        .iter()
        .map(|v| value::string(v).map(str::to_string))
        .collect()
}

fn uuids(row: &Value, column: &str) -> Result<Vec<String>> {
    value::set_elements(value::column(row, column)?)?
        .iter()
        .map(|v| value::uuid_str(v).map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_decode_as_the_server_sends_them() {
        let switch = SwitchRow::read(&json!({
            "_uuid": ["uuid", "s1"], "name": "n",
            "external_ids": ["map", [["geneve-ovs.owner", "geneve-ovs"]]],
            "ports": ["uuid", "p1"], "dns_records": ["set", []],
            "acls": ["set", [["uuid", "a1"], ["uuid", "a2"]]],
        }))
        .unwrap();
        assert!(switch.is_owned());
        assert_eq!(switch.ports, ["p1"]);
        assert_eq!(switch.acls, ["a1", "a2"]);
        let port = SwitchPortRow::read(&json!({
            "_uuid": ["uuid", "p1"], "name": "c-eth0", "type": "",
            "addresses": "0a:58:c0:a8:78:05 192.168.120.5", "up": ["set", []],
            "external_ids": ["map", []],
        }))
        .unwrap();
        assert_eq!(port.addresses, ["0a:58:c0:a8:78:05 192.168.120.5"]);
        assert_eq!(port.up, None);
        assert_eq!(port.owned(keys::CONTAINER_NAME), None);
        let up = SwitchPortRow::read(&json!({
            "_uuid": ["uuid", "p1"], "name": "c-eth0", "type": "", "addresses": ["set", []],
            "up": true, "external_ids": ["map", []],
        }))
        .unwrap();
        assert_eq!(up.up, Some(true));
        // Garbage is an error, not a panic.
        assert!(SwitchPortRow::read(&json!({"_uuid": 3})).is_err());
        assert!(SwitchPortRow::read(&json!({
            "_uuid": ["uuid", "p1"], "name": "x", "type": "", "addresses": ["set", []],
            "up": "yes", "external_ids": ["map", []],
        }))
        .is_err());
    }
}
