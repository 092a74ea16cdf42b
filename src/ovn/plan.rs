//! What the plugin wants in the OVN northbound database for a network and its containers,
//! decided from the configuration and the rows read (pure, so every rule is unit-tested):
//! the switch's name and identity, what makes an existing switch a conflict, a container
//! port's name, addresses and `external_ids`, who already holds an address, the DNS records
//! of a container, and the switch's ACLs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::schema::{ids, SwitchPortRow, SwitchRow, ROLE_ACL, ROLE_PORT, ROLE_SWITCH};
use crate::options::NetworkConfig;
use crate::ovs::schema::{common_ids, keys, ContainerPort};

/// The logical switch of network `name`: the same on every host, so the first host creates it
/// and the others find it.
pub fn switch_name(network: &str) -> String {
    format!("geneve-ovs.{network}")
}

/// The switch's `external_ids`: owner, role, network, and the identity every joining host
/// must share (subnets, internal, MTU). The network id is podman's, random per host, so it is
/// left out.
pub fn switch_external_ids(cfg: &NetworkConfig) -> BTreeMap<String, String> {
    let mut out = common_ids(cfg, ROLE_SWITCH);
    out.remove(keys::NETWORK_ID);
    out.extend(identity(cfg));
    out
}

fn identity(cfg: &NetworkConfig) -> BTreeMap<String, String> {
    let subnets: Vec<String> = cfg.subnets.iter().map(IpNet::to_string).collect();
    [
        (ids::SUBNETS, subnets.join(",")),
        (ids::INTERNAL, cfg.internal.to_string()),
        (ids::MTU, cfg.mtu.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Why an existing switch of the network's name is not this network's, `None` when it is:
/// not made by the plugin, or made with other subnets, `--internal` or MTU.
pub fn switch_conflict(existing: &SwitchRow, cfg: &NetworkConfig) -> Option<String> {
    if !existing.is_owned() {
        return Some(format!(
            "logical switch {} exists in OVN but was not made by geneve-ovs: rename the network, \
             or remove that switch (ovn-nbctl ls-del {})",
            existing.name, existing.name
        ));
    }
    let differences: Vec<String> = identity(cfg)
        .into_iter()
        .filter_map(|(key, wanted)| {
            let theirs = existing
                .external_ids
                .get(&key)
                .map_or("(unset)", String::as_str);
            (theirs != wanted).then(|| {
                let what = key.trim_start_matches("geneve-ovs.");
                format!("{what} is {theirs} there, {wanted} here")
            })
        })
        .collect();
    if differences.is_empty() {
        return None;
    }
    Some(format!(
        "network {} already exists in OVN (logical switch {}) with other settings: {}; create it \
         here with the same --subnet, --internal and mtu as on the other hosts",
        cfg.name,
        existing.name,
        differences.join("; ")
    ))
}

/// A container port's logical port name, unique across hosts: podman's container id is, and
/// one container has one interface name per network.
pub fn port_name(container_id: &str, interface: &str) -> String {
    format!("{container_id}-{interface}")
}

/// The `addresses` and `port_security` entry of a container: "MAC IP IP...".
pub fn port_addresses(port: &ContainerPort) -> String {
    let mut words = vec![port.mac.to_ascii_lowercase()];
    words.extend(port.addresses.iter().map(IpAddr::to_string));
    words.join(" ")
}

/// The logical port's `external_ids`: owner, network, container and chassis, so that another
/// host's refusal can name them and `gc` finds this chassis's ports.
pub fn port_external_ids(
    cfg: &NetworkConfig,
    port: &ContainerPort,
    chassis: &str,
) -> BTreeMap<String, String> {
    let mut out = common_ids(cfg, ROLE_PORT);
    out.insert(keys::CONTAINER_ID.to_string(), port.container_id.clone());
    out.insert(
        keys::CONTAINER_NAME.to_string(),
        port.container_name.clone(),
    );
    out.insert(keys::INTERFACE.to_string(), port.interface.clone());
    out.insert(ids::CHASSIS.to_string(), chassis.to_string());
    out
}

/// An address already bound to another port of the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressTaken {
    pub address: IpAddr,
    pub port: String,
    pub container: Option<String>,
    pub chassis: Option<String>,
}

impl fmt::Display for AddressTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address {} is already bound to ", self.address)?;
        match &self.container {
            Some(container) => write!(f, "container {container} (OVN port {})", self.port)?,
            None => write!(f, "OVN port {}", self.port)?,
        }
        match &self.chassis {
            Some(chassis) => write!(f, " on chassis {chassis}"),
            None => Ok(()),
        }
    }
}

/// The first of `addresses` that a port of `ports` other than `own` already has.
pub fn address_taken(
    ports: &[SwitchPortRow],
    own: &str,
    addresses: &[IpAddr],
) -> Option<AddressTaken> {
    for port in ports.iter().filter(|p| p.name != own) {
        let bound: Vec<IpAddr> = port
            .addresses
            .iter()
            .flat_map(|entry| entry.split_whitespace())
            .filter_map(|word| word.parse().ok())
            .collect();
        if let Some(&address) = addresses.iter().find(|a| bound.contains(a)) {
            return Some(AddressTaken {
                address,
                port: port.name.clone(),
                container: port.owned(keys::CONTAINER_NAME).map(str::to_string),
                chassis: port.owned(ids::CHASSIS).map(str::to_string),
            });
        }
    }
    None
}

/// The DNS records of a container: each of its names (podman's container name and aliases) as
/// `NAME` and `NAME.NETWORK`, lowercase (OVN matches queries case-insensitively against
/// lowercase records), each to all its addresses. Names that are not DNS labels are skipped.
pub fn dns_records(
    names: &[String],
    network: &str,
    addresses: &[IpAddr],
) -> BTreeMap<String, String> {
    let value: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    let value = value.join(" ");
    let network = network.to_ascii_lowercase();
    let mut out = BTreeMap::new();
    if addresses.is_empty() {
        return out;
    }
    for name in names {
        let name = name.to_ascii_lowercase();
        if !is_dns_name(&name) {
            log::debug!("no DNS record for {name:?}: not a DNS name");
            continue;
        }
        out.insert(name.clone(), value.clone());
        if is_dns_name(&network) {
            out.insert(format!("{name}.{network}"), value.clone());
        }
    }
    out
}

/// Letters, digits, `-`, `_` and dots between non-empty labels of at most 63 bytes.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// One ACL of the network's switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub priority: u16,
    pub direction: &'static str,
    pub matches: String,
    pub action: &'static str,
    pub external_ids: BTreeMap<String, String>,
}

/// What containers must never send, beyond what `port_security` (source MAC and addresses)
/// stops: ICMP redirects and DHCP/DHCPv6 server replies. Dropped as they leave the container's
/// port, whichever address they come from (an EUI-64 link-local passes `port_security`).
/// Router advertisements are not here: OVN lets neighbour discovery (RAs included) through
/// ahead of every ACL, so an ACL for them would never match; the containers of an OVN network
/// ignore them instead ([`crate::container_link::ContainerLinkSpec`]).
pub fn switch_acls(cfg: &NetworkConfig) -> Vec<Acl> {
    let mut external_ids = common_ids(cfg, ROLE_ACL);
    external_ids.remove(keys::NETWORK_ID);
    [
        "icmp6.type == 137",
        "icmp4.type == 5",
        "udp.src == 67 && udp.dst == 68",
        "udp.src == 547 && udp.dst == 546",
    ]
    .into_iter()
    .map(|matches| Acl {
        priority: 32000,
        direction: "from-lport",
        matches: matches.to_string(),
        action: "drop",
        external_ids: external_ids.clone(),
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::sample_config;

    fn port() -> ContainerPort {
        ContainerPort {
            name: "veth".into(),
            container_id: "abc".into(),
            container_name: "c1".into(),
            interface: "eth0".into(),
            mac: "0A:58:C0:A8:78:05".into(),
            netns: "/run/netns/x".into(),
            addresses: vec!["192.168.120.5".parse().unwrap(), "fd12::5".parse().unwrap()],
            port_mappings: vec![],
            aliases: vec![],
        }
    }

    fn switch(cfg: &NetworkConfig) -> SwitchRow {
        SwitchRow {
            uuid: "s".into(),
            name: switch_name(&cfg.name),
            external_ids: switch_external_ids(cfg),
            ports: vec![],
            dns_records: vec![],
            acls: vec![],
        }
    }

    #[test]
    fn the_same_network_is_no_conflict_whatever_its_id() {
        let cfg = sample_config();
        let other_host = NetworkConfig {
            id: "another podman id".into(),
            ..sample_config()
        };
        assert_eq!(switch_conflict(&switch(&other_host), &cfg), None);
    }

    #[test]
    fn a_conflicting_switch_names_each_difference() {
        let cfg = sample_config();
        let theirs = NetworkConfig {
            subnets: vec!["10.1.0.0/24".parse().unwrap()],
            mtu: 1400,
            ..sample_config()
        };
        let why = switch_conflict(&switch(&theirs), &cfg).unwrap();
        assert!(
            why.contains("subnets is 10.1.0.0/24 there, 192.168.120.0/24 here"),
            "{why}"
        );
        assert!(why.contains("mtu is 1400 there, 1450 here"), "{why}");
        assert!(!why.contains("internal is"), "{why}");
        let mut foreign = switch(&cfg);
        foreign.external_ids.clear();
        let why = switch_conflict(&foreign, &cfg).unwrap();
        assert!(
            why.contains("not made by geneve-ovs") && why.contains("ls-del"),
            "{why}"
        );
    }

    #[test]
    fn port_entries() {
        assert_eq!(
            port_addresses(&port()),
            "0a:58:c0:a8:78:05 192.168.120.5 fd12::5"
        );
        assert_eq!(port_name("abc", "eth0"), "abc-eth0");
        let ids = port_external_ids(&sample_config(), &port(), "chassis-1");
        assert_eq!(ids[ids::CHASSIS], "chassis-1");
        assert_eq!(ids[keys::CONTAINER_NAME], "c1");
    }

    #[test]
    fn a_taken_address_names_container_and_chassis() {
        let cfg = sample_config();
        let other = SwitchPortRow {
            uuid: "p2".into(),
            name: "def-eth0".into(),
            kind: String::new(),
            addresses: vec!["0a:58:c0:a8:78:09 192.168.120.9 fd12::5".into()],
            up: Some(true),
            external_ids: port_external_ids(
                &cfg,
                &ContainerPort {
                    container_name: "db".into(),
                    ..port()
                },
                "h2",
            ),
        };
        let mine = port();
        let taken =
            address_taken(std::slice::from_ref(&other), "abc-eth0", &mine.addresses).unwrap();
        assert_eq!(
            taken.to_string(),
            "address fd12::5 is already bound to container db (OVN port def-eth0) on chassis h2"
        );
        // Its own port (a setup run again) is no conflict, nor are other addresses.
        assert_eq!(
            address_taken(std::slice::from_ref(&other), "def-eth0", &mine.addresses),
            None
        );
        let free = ["192.168.120.6".parse().unwrap()];
        assert_eq!(address_taken(&[other], "abc-eth0", &free), None);
    }

    #[test]
    fn dns_records_for_names_and_aliases() {
        let addresses: Vec<IpAddr> = vec!["192.168.120.5".parse().unwrap()];
        let names = vec![
            "DB".to_string(),
            "cache".to_string(),
            "bad name".to_string(),
        ];
        let records = dns_records(&names, "Net1", &addresses);
        let keys: Vec<&str> = records.keys().map(String::as_str).collect();
        assert_eq!(keys, ["cache", "cache.net1", "db", "db.net1"]);
        assert_eq!(records["db.net1"], "192.168.120.5");
        assert!(dns_records(&names, "net1", &[]).is_empty());
    }

    #[test]
    fn acls_drop_redirects_and_dhcp_server_traffic_from_containers() {
        let acls = switch_acls(&sample_config());
        assert!(acls
            .iter()
            .all(|a| a.action == "drop" && a.direction == "from-lport"));
        let matches: Vec<&str> = acls.iter().map(|a| a.matches.as_str()).collect();
        assert!(matches.contains(&"icmp6.type == 137"));
        assert!(matches.contains(&"udp.src == 67 && udp.dst == 68"));
    }
}
