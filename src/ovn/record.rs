//! The OVN networks this host joined, recorded in its own Open vSwitch database
//! (`Open_vSwitch.external_ids`, one key per network): podman forgets a removed network
//! without telling the plugin, and an OVN network leaves nothing else on the host once its
//! last container is gone, so this record is how `gc` later knows which northbound database
//! to ask and which switch was this network's.
//!
//! The record holds the network's identity (subnets, `--internal`, MTU) as its switch carries
//! it: a switch of the same name with another identity is another network (removed and
//! created again elsewhere), which `gc` must never touch.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::plan;
use crate::options::NetworkConfig;

/// The prefix of the record keys; the network's name follows.
pub const KEY_PREFIX: &str = "geneve-ovs.ovn-network.";

/// One OVN network this host joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedNetwork {
    /// Podman's network name.
    #[serde(skip)]
    pub network: String,
    /// The `ovn` option's value: the northbound database's remotes, comma-separated.
    pub remotes: String,
    /// The switch's identity keys and values ([`plan::switch_identity`]).
    pub identity: BTreeMap<String, String>,
}

impl JoinedNetwork {
    /// The record of the network `cfg` describes.
    pub fn of(cfg: &NetworkConfig) -> JoinedNetwork {
        let remotes: Vec<String> = cfg.ovn.iter().map(ToString::to_string).collect();
        JoinedNetwork {
            network: cfg.name.clone(),
            remotes: remotes.join(","),
            identity: plan::switch_identity(cfg),
        }
    }

    /// Its key in `Open_vSwitch.external_ids`.
    pub fn key(&self) -> String {
        key(&self.network)
    }

    /// Its value there (JSON).
    pub fn value(&self) -> String {
        // A struct of strings and a map of strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The key of network `name`'s record.
pub fn key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

/// The records among `external_ids`, and the keys of records that cannot be read, with why
/// (written by hand or by another version: reported, never acted on).
pub fn read_all(
    external_ids: &BTreeMap<String, String>,
) -> (Vec<JoinedNetwork>, Vec<(String, String)>) {
    let mut joined = Vec::new();
    let mut unreadable = Vec::new();
    for (key, value) in external_ids {
        let Some(network) = key.strip_prefix(KEY_PREFIX) else {
            continue;
        };
        match parse(network, value) {
            Ok(record) => joined.push(record),
            Err(err) => unreadable.push((key.clone(), format!("{err:#}"))),
        }
    }
    (joined, unreadable)
}

fn parse(network: &str, value: &str) -> Result<JoinedNetwork> {
    anyhow::ensure!(!network.is_empty(), "the key names no network");
    let mut record: JoinedNetwork = serde_json::from_str(value)
        .with_context(|| format!("not a geneve-ovs record of an OVN network: {value:?}"))?;
    anyhow::ensure!(
        !record.remotes.trim().is_empty(),
        "the record names no northbound database"
    );
    record.network = network.to_string();
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::sample_config;

    #[test]
    fn a_record_reads_back_as_written() {
        let cfg = NetworkConfig {
            ovn: vec![crate::ovsdb::Remote::parse("10.99.0.250", 6641).unwrap()],
            ..sample_config()
        };
        let record = JoinedNetwork::of(&cfg);
        let ids: BTreeMap<String, String> = [
            (record.key(), record.value()),
            ("system-id".to_string(), "h1".to_string()),
        ]
        .into_iter()
        .collect();
        let (joined, unreadable) = read_all(&ids);
        assert_eq!(joined, vec![record.clone()]);
        assert!(unreadable.is_empty());
        assert_eq!(record.network, cfg.name);
        assert_eq!(record.remotes, "tcp:10.99.0.250:6641");
        assert_eq!(record.identity, plan::switch_identity(&cfg));
    }

    #[test]
    fn a_garbled_record_is_reported_not_used() {
        let ids: BTreeMap<String, String> = [
            (key("net1"), "{not json".to_string()),
            (key("net2"), r#"{"remotes":" ","identity":{}}"#.to_string()),
            (
                KEY_PREFIX.to_string(),
                r#"{"remotes":"tcp:10.99.0.250:6641","identity":{}}"#.to_string(),
            ),
        ]
        .into_iter()
        .collect();
        let (joined, unreadable) = read_all(&ids);
        assert!(joined.is_empty(), "{joined:?}");
        assert_eq!(unreadable.len(), 3, "{unreadable:?}");
        assert!(unreadable[0].1.contains("no network"), "{unreadable:?}");
    }
}
