//! What the plugin wants in the OVN northbound database for a network and its containers,
//! decided from the configuration and the rows read (pure, so every rule is unit-tested):
//! the switch's name and identity, what makes an existing switch a conflict, a container
//! port's name, addresses and `external_ids`, who already holds an address, the DNS records
//! of a container, and the switch's ACLs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::schema::{
    ids, is_owned, DnsRow, SwitchPortRow, SwitchRow, LOCALPORT, ROLE_ACL, ROLE_GATEWAY, ROLE_PORT,
    ROLE_SWITCH,
};
use anyhow::Context;

use crate::naming;
use crate::options::NetworkConfig;
use crate::ovs::plan::Gateway;
use crate::ovs::schema::{common_ids, gateway_external_ids, keys, ContainerPort};

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

/// The network's gateway port: a `localport` of its switch holding the subnets' gateway
/// addresses, so that every chassis has it and none reaches it through a tunnel. Containers
/// resolve its addresses by ARP/ND (OVN answers for the port's addresses on the switch), which
/// is what lets OVN answer the DNS queries they send there; on a host with containers of a
/// non-internal network it is bound to the host's gateway device, the way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPort {
    /// The logical port's name ([`gateway_port_name`]), also the `iface-id` that binds it.
    pub name: String,
    /// "MAC IP...": its `addresses`.
    pub addresses: String,
    pub external_ids: BTreeMap<String, String>,
}

/// The gateway port's logical name: one per network, the same on every host.
pub fn gateway_port_name(network: &str) -> String {
    format!("geneve-ovs.{network}.gateway")
}

/// The gateway port `cfg` wants, `None` when the network has no gateway address (an internal
/// network created before OVN networks kept one). Its MAC is the mesh's gateway MAC.
pub fn gateway_port(cfg: &NetworkConfig) -> Option<GatewayPort> {
    if cfg.gateways.is_empty() {
        return None;
    }
    let mut words = vec![naming::format_mac(&naming::gateway_mac(cfg.vni))];
    words.extend(cfg.gateways.iter().map(|g| g.addr().to_string()));
    let mut external_ids = common_ids(cfg, ROLE_GATEWAY);
    external_ids.remove(keys::NETWORK_ID);
    Some(GatewayPort {
        name: gateway_port_name(&cfg.name),
        addresses: words.join(" "),
        external_ids,
    })
}

/// Why an existing port named as the network's gateway port is not one, `None` when it is:
/// another kind of port, or one the plugin did not make.
pub fn gateway_port_conflict(existing: &SwitchPortRow) -> Option<String> {
    if existing.kind == LOCALPORT && existing.owned(keys::ROLE) == Some(ROLE_GATEWAY) {
        return None;
    }
    Some(format!(
        "logical switch port {} exists in OVN but is not geneve-ovs's gateway port (type {:?}): \
         remove it (ovn-nbctl lsp-del {}) and run podman network create again",
        existing.name, existing.kind, existing.name
    ))
}

/// This host's end of the gateway port `row` (the network's, as NB has it): an OVS internal
/// port with the logical port's MAC, bound to it by `iface-id`, which `setup` gives the
/// gateway addresses and the firewall's NAT and published ports, as the mesh's gateway port.
/// Its name is the mesh's ([`naming::gateway_port_name`]), which the firewall's sets know.
pub fn local_gateway(cfg: &NetworkConfig, row: &SwitchPortRow) -> anyhow::Result<Gateway> {
    let mac = port_mac(row).and_then(naming::parse_mac).with_context(|| {
        format!(
            "the gateway port {} in OVN has no MAC in its addresses {:?}: remove it \
             (ovn-nbctl lsp-del {}) and run podman network create again",
            row.name, row.addresses, row.name
        )
    })?;
    let mut external_ids = gateway_external_ids(cfg);
    external_ids.insert(keys::IFACE_ID.to_string(), row.name.clone());
    let remotes: Vec<String> = cfg.ovn.iter().map(ToString::to_string).collect();
    external_ids.insert(keys::OVN_NB.to_string(), remotes.join(","));
    Ok(Gateway {
        name: naming::gateway_port_name(cfg.vni),
        mac,
        mtu: cfg.mtu,
        external_ids,
    })
}

/// The MAC of a port's first `addresses` entry ("MAC IP..."), as written.
pub fn port_mac(port: &SwitchPortRow) -> Option<&str> {
    port.addresses
        .iter()
        .find_map(|entry| entry.split_whitespace().next())
        .filter(|word| naming::parse_mac(word).is_some())
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

/// The options of the network's DNS row: `ovn-owned`, so that OVN answers a query for one of
/// its names in a type the name has no address of (AAAA for a container without IPv6) at
/// once, instead of passing it on to an address where nothing answers, which every lookup
/// through the C library (A and AAAA together) would wait out.
pub fn dns_options() -> BTreeMap<String, String> {
    [("ovn-owned".to_string(), "true".to_string())].into()
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

/// The identity every joining host must share (subnets, `--internal`, MTU), as the switch's
/// `external_ids` carry it: what `gc` compares to tell this network's switch from another
/// network's of the same name.
pub fn switch_identity(cfg: &NetworkConfig) -> BTreeMap<String, String> {
    identity(cfg)
}

/// What `gc` does with the switch of a network this host no longer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchRemoval {
    /// There is no switch of that name (another host removed it already).
    Absent,
    /// Remove it, with the plugin's DNS rows `dns` attached to it. Its ports (a `localport`
    /// at most) and ACLs are not root rows: the database drops them with the switch.
    Remove { dns: Vec<String> },
    /// Leave it for now: a chassis still has a port on it (the reason names them).
    InUse(String),
    /// Never touch it: it is not this network's switch (not the plugin's, or another
    /// network's of the same name); the reason says which.
    NotOurs(String),
}

/// Whether the switch of a removed network goes: only the plugin's own switch, only while it
/// still has the identity this host recorded (`identity`; otherwise it is another network of
/// the same name), and only when no chassis has a port on it. A `localport` belongs to the
/// switch itself (it is on every chassis), so it does not keep the switch. `dns` are the
/// DNS rows the switch's `dns_records` point at.
pub fn switch_removal(
    switch: Option<&SwitchRow>,
    ports: &[SwitchPortRow],
    dns: &[DnsRow],
    identity: &BTreeMap<String, String>,
) -> SwitchRemoval {
    let Some(switch) = switch else {
        return SwitchRemoval::Absent;
    };
    if !switch.is_owned() {
        return SwitchRemoval::NotOurs(format!(
            "logical switch {} was not made by geneve-ovs",
            switch.name
        ));
    }
    let differences = identity_differences(switch, identity);
    if !differences.is_empty() {
        return SwitchRemoval::NotOurs(format!(
            "logical switch {} is another network of the same name now ({}): left to that \
             network's hosts",
            switch.name,
            differences.join("; ")
        ));
    }
    let in_use: Vec<String> = ports
        .iter()
        .filter(|p| switch.ports.contains(&p.uuid) && p.kind != "localport")
        .map(|p| {
            let chassis = p.owned(ids::CHASSIS).unwrap_or("an unknown chassis");
            match p.owned(keys::CONTAINER_NAME) {
                Some(container) => format!("container {container} on {chassis}"),
                None => format!("port {} on {chassis}", p.name),
            }
        })
        .collect();
    if !in_use.is_empty() {
        return SwitchRemoval::InUse(format!(
            "logical switch {} still has ports in use: {}",
            switch.name,
            in_use.join(", ")
        ));
    }
    SwitchRemoval::Remove {
        dns: dns
            .iter()
            .filter(|d| switch.dns_records.contains(&d.uuid) && is_owned(&d.external_ids))
            .map(|d| d.uuid.clone())
            .collect(),
    }
}

/// How `switch`'s identity differs from `identity` (as this host recorded it), one
/// "KEY is THEIRS there, OURS here" per key.
pub fn identity_differences(
    switch: &SwitchRow,
    identity: &BTreeMap<String, String>,
) -> Vec<String> {
    identity
        .iter()
        .filter_map(|(key, recorded)| {
            let theirs = switch
                .external_ids
                .get(key)
                .map_or("(unset)", String::as_str);
            (theirs != recorded).then(|| {
                let what = key.trim_start_matches("geneve-ovs.");
                format!("{what} is {theirs} there, {recorded} here")
            })
        })
        .collect()
}

/// The chassis a network spans: those its containers' ports are pinned to, sorted. A
/// `localport` is on every chassis and pins nothing.
pub fn spanned_chassis(ports: &[SwitchPortRow]) -> Vec<String> {
    let chassis: std::collections::BTreeSet<String> = ports
        .iter()
        .filter(|p| p.kind != "localport")
        .filter_map(|p| p.owned(ids::CHASSIS).map(str::to_string))
        .collect();
    chassis.into_iter().collect()
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
    fn the_gateway_port_holds_every_gateway_address_with_the_gateway_mac() {
        let cfg = NetworkConfig {
            gateways: vec![
                "192.168.120.1/24".parse().unwrap(),
                "fd12::1/64".parse().unwrap(),
            ],
            ..sample_config()
        };
        let gateway = gateway_port(&cfg).unwrap();
        assert_eq!(gateway.name, "geneve-ovs.net1.gateway");
        assert_eq!(gateway.addresses, "02:67:77:00:13:89 192.168.120.1 fd12::1");
        assert_eq!(gateway.external_ids[keys::ROLE], ROLE_GATEWAY);
        assert!(
            gateway_port(&sample_config()).is_none(),
            "no gateway address"
        );

        let mut row = SwitchPortRow {
            uuid: "g".into(),
            name: gateway.name.clone(),
            kind: LOCALPORT.into(),
            addresses: vec![gateway.addresses.clone()],
            up: None,
            external_ids: gateway.external_ids.clone(),
        };
        assert_eq!(gateway_port_conflict(&row), None);
        assert_eq!(port_mac(&row), Some("02:67:77:00:13:89"));
        let local = local_gateway(&cfg, &row).unwrap();
        assert_eq!(local.name, "gw5001");
        assert_eq!(local.mac, naming::gateway_mac(5001));
        assert_eq!(
            local.external_ids[keys::IFACE_ID],
            "geneve-ovs.net1.gateway"
        );
        assert_eq!(local.external_ids[keys::ROLE], keys::ROLE_GATEWAY);
        let mut no_mac = row.clone();
        no_mac.addresses = vec!["192.168.120.1".into()];
        let why = format!("{:#}", local_gateway(&cfg, &no_mac).unwrap_err());
        assert!(why.contains("no MAC"), "{why}");
        row.kind = String::new();
        let why = gateway_port_conflict(&row).unwrap();
        assert!(why.contains("lsp-del geneve-ovs.net1.gateway"), "{why}");
        row.kind = LOCALPORT.into();
        row.external_ids.clear();
        assert!(gateway_port_conflict(&row).is_some());
        // A container cannot take a gateway address: it is bound to the gateway port.
        let taken = address_taken(&[row], "abc-eth0", &["192.168.120.1".parse().unwrap()]).unwrap();
        assert_eq!(taken.port, "geneve-ovs.net1.gateway");
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

    fn dns_row(uuid: &str, owned: bool) -> DnsRow {
        let mut external_ids = BTreeMap::new();
        if owned {
            external_ids.insert(
                keys::OWNER.to_string(),
                crate::ovs::schema::OWNER.to_string(),
            );
        }
        DnsRow {
            uuid: uuid.into(),
            records: BTreeMap::new(),
            external_ids,
        }
    }

    fn lsp(uuid: &str, kind: &str, chassis: Option<&str>) -> SwitchPortRow {
        let cfg = sample_config();
        SwitchPortRow {
            uuid: uuid.into(),
            name: format!("{uuid}-eth0"),
            kind: kind.into(),
            addresses: vec![],
            up: Some(true),
            external_ids: match chassis {
                Some(chassis) => port_external_ids(&cfg, &port(), chassis),
                None => BTreeMap::new(),
            },
        }
    }

    #[test]
    fn a_removed_networks_switch_goes_only_when_no_chassis_has_a_port() {
        let cfg = sample_config();
        let identity = switch_identity(&cfg);
        let mut sw = switch(&cfg);
        sw.dns_records = vec!["d1".into(), "d2".into()];
        let dns = [
            dns_row("d1", true),
            dns_row("d2", false),
            dns_row("d3", true),
        ];
        assert_eq!(
            switch_removal(None, &[], &dns, &identity),
            SwitchRemoval::Absent
        );
        // Empty, or with only the switch's own localport: it goes, with the plugin's DNS row
        // of this switch (not another's, not a foreign one).
        sw.ports = vec!["gw".into()];
        let gateway = lsp("gw", "localport", None);
        assert_eq!(
            switch_removal(Some(&sw), std::slice::from_ref(&gateway), &dns, &identity),
            SwitchRemoval::Remove {
                dns: vec!["d1".into()]
            }
        );
        // A container port of another chassis keeps it, naming container and chassis.
        sw.ports.push("p2".into());
        let ports = [gateway, lsp("p2", "", Some("chassis-2"))];
        match switch_removal(Some(&sw), &ports, &dns, &identity) {
            SwitchRemoval::InUse(why) => {
                assert!(why.contains("container c1 on chassis-2"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_networks_switch_of_the_name_or_a_foreign_one_is_never_removed() {
        let cfg = sample_config();
        let identity = switch_identity(&cfg);
        let other = NetworkConfig {
            subnets: vec!["10.1.0.0/24".parse().unwrap()],
            ..sample_config()
        };
        match switch_removal(Some(&switch(&other)), &[], &[], &identity) {
            SwitchRemoval::NotOurs(why) => assert!(
                why.contains("another network") && why.contains("subnets is 10.1.0.0/24 there"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        let mut foreign = switch(&cfg);
        foreign.external_ids.clear();
        match switch_removal(Some(&foreign), &[], &[], &identity) {
            SwitchRemoval::NotOurs(why) => {
                assert!(why.contains("not made by geneve-ovs"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_network_spans_the_chassis_its_ports_are_pinned_to() {
        let ports = [
            lsp("p1", "", Some("chassis-2")),
            lsp("p2", "", Some("chassis-1")),
            lsp("p3", "", Some("chassis-2")),
            lsp("gw", "localport", None),
        ];
        assert_eq!(spanned_chassis(&ports), ["chassis-1", "chassis-2"]);
    }
}
