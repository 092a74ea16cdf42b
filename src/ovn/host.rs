//! What this host needs before a network can use OVN, read from the local Open vSwitch
//! database: ovn-controller's settings in `Open_vSwitch.external_ids` and its integration
//! bridge. A missing one is named with the command that sets it.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use crate::options::OVN_BRIDGE;

/// This host as an OVN chassis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chassis {
    /// `system-id`: the chassis name ovn-controller registers in the southbound database.
    pub name: String,
    /// `ovn-bridge` (default `br-int`): where container ports go.
    pub bridge: String,
}

/// The chassis this host is, from `Open_vSwitch.external_ids`, provided every setting
/// ovn-controller needs is there and the integration bridge exists (`bridge_exists` says
/// whether a bridge of that name does). Every missing item is named, with its fix.
pub fn chassis(
    external_ids: &BTreeMap<String, String>,
    bridge_exists: impl Fn(&str) -> bool,
) -> Result<Chassis> {
    let get = |key: &str| {
        external_ids
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let mut missing = Vec::new();
    if get("system-id").is_none() {
        missing.push(
            "external_ids:system-id (this host's unique chassis name): \
             ovs-vsctl set open . external_ids:system-id=$(hostname)"
                .to_string(),
        );
    }
    if get("ovn-remote").is_none() {
        missing.push(
            "external_ids:ovn-remote (the southbound database): \
             ovs-vsctl set open . external_ids:ovn-remote=tcp:SB_IP:6642"
                .to_string(),
        );
    }
    match get("ovn-encap-type") {
        Some(types) if types.split(',').any(|t| t.trim() == "geneve") => {}
        other => missing.push(format!(
            "external_ids:ovn-encap-type=geneve (it is {}): \
             ovs-vsctl set open . external_ids:ovn-encap-type=geneve",
            other.unwrap_or("unset")
        )),
    }
    if get("ovn-encap-ip").is_none() {
        missing.push(
            "external_ids:ovn-encap-ip (this host's tunnel address): \
             ovs-vsctl set open . external_ids:ovn-encap-ip=UNDERLAY_IP"
                .to_string(),
        );
    }
    let bridge = get("ovn-bridge").unwrap_or(OVN_BRIDGE).to_string();
    if missing.is_empty() && !bridge_exists(&bridge) {
        missing.push(format!(
            "the integration bridge {bridge}, which ovn-controller creates: start it \
             (systemctl start ovn-controller, package ovn-host) and check its log"
        ));
    }
    if !missing.is_empty() {
        bail!(
            "this host is not ready for an OVN network: missing {}",
            missing.join("; ")
        );
    }
    Ok(Chassis {
        name: get("system-id").unwrap_or_default().to_string(),
        bridge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_ready_host_is_its_chassis() {
        let ready = ids(&[
            ("system-id", "h1"),
            ("ovn-remote", "tcp:10.99.0.250:6642"),
            ("ovn-encap-type", "geneve"),
            ("ovn-encap-ip", "10.99.0.1"),
        ]);
        let chassis = chassis(&ready, |b| b == "br-int").unwrap();
        assert_eq!(
            chassis,
            Chassis {
                name: "h1".into(),
                bridge: "br-int".into()
            }
        );
    }

    #[test]
    fn every_missing_item_is_named_with_its_fix() {
        let text = format!(
            "{:#}",
            chassis(&ids(&[("ovn-encap-type", "vxlan")]), |_| true).unwrap_err()
        );
        for says in [
            "external_ids:system-id",
            "external_ids:ovn-remote",
            "ovn-encap-type=geneve (it is vxlan)",
            "external_ids:ovn-encap-ip",
            "ovs-vsctl set open .",
        ] {
            assert!(text.contains(says), "{says}: {text}");
        }
        let no_bridge = ids(&[
            ("system-id", "h1"),
            ("ovn-remote", "tcp:10.99.0.250:6642"),
            ("ovn-encap-type", "geneve"),
            ("ovn-encap-ip", "10.99.0.1"),
            ("ovn-bridge", "br-ovn"),
        ]);
        let text = format!("{:#}", chassis(&no_bridge, |b| b == "br-int").unwrap_err());
        assert!(
            text.contains("integration bridge br-ovn") && text.contains("ovn-controller"),
            "{text}"
        );
    }
}
