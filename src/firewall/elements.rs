//! What the plugin's nftables sets and maps hold, worked out without touching the host: the
//! published ports of a container (validated, so a mapping that cannot be rendered fails its
//! `setup` before anything is built), the changes that attach or detach a container given what
//! the table holds now, and everything the table must hold according to the OVS database (the
//! reconcile of `gc`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use anyhow::{bail, Result};

use crate::host_resolvers::Upstreams;
use crate::naming;
use crate::ovs::schema::{network_of, ContainerPortRecord, Role, TunnelRecord};
use crate::ovs::snapshot::{PortRow, Snapshot};
use crate::types::PortMapping;

/// A transport protocol podman can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The name nft uses (and prints in `nft -j`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// Reads a protocol as podman writes it or as `nft -j` prints it (a name, or an IP
    /// protocol number).
    pub fn parse(text: &str) -> Option<Protocol> {
        match text {
            "tcp" | "6" => Some(Protocol::Tcp),
            "udp" | "17" => Some(Protocol::Udp),
            "sctp" | "132" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// What a packet addressed to this host must match to be sent to a container: the key of one
/// element of the DNAT maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    /// `true` for IPv4, `false` for IPv6: which maps the element lives in.
    pub ipv4: bool,
    /// The host address of `-p HOST_IP:...`; `None` for every address of this host.
    pub host_ip: Option<IpAddr>,
    pub protocol: Protocol,
    pub host_port: u16,
}

impl fmt::Display for PortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}/{} ({})",
            self.host_port,
            self.protocol.name(),
            if self.ipv4 { "IPv4" } else { "IPv6" }
        )
    }
}

/// Where a published port goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub addr: IpAddr,
    pub port: u16,
}

/// One element of the DNAT maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Published {
    pub key: PortKey,
    pub target: Target,
}

/// How podman's mapping reads on its command line, for error messages.
pub fn describe(mapping: &PortMapping) -> String {
    let host_ip = match mapping.host_ip.as_deref() {
        None | Some("") => String::new(),
        Some(ip) if ip.contains(':') => format!("[{ip}]:"),
        Some(ip) => format!("{ip}:"),
    };
    let range = match mapping.range {
        Some(n) if n > 1 => format!(" (range {n})"),
        _ => String::new(),
    };
    format!(
        "-p {host_ip}{}:{}/{}{range}",
        mapping.host_port,
        mapping.container_port,
        mapping.protocol.as_deref().unwrap_or("tcp")
    )
}

/// The protocols of a mapping: podman may send `tcp,udp` as one mapping.
fn protocols(mapping: &PortMapping) -> Result<Vec<Protocol>> {
    let text = mapping.protocol.as_deref().unwrap_or("");
    let names: Vec<String> = text
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(vec![Protocol::Tcp]);
    }
    names
        .iter()
        .map(|name| {
            Protocol::parse(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "port mapping {}: unknown protocol {name:?} (tcp, udp or sctp)",
                    describe(mapping)
                )
            })
        })
        .collect()
}

/// Which container addresses a mapping's host address publishes to: `Some(true)` IPv4 only,
/// `Some(false)` IPv6 only, `None` both; and the address to match, if any.
fn host_address(mapping: &PortMapping) -> Result<(Option<bool>, Option<IpAddr>)> {
    let text = match mapping.host_ip.as_deref().map(str::trim) {
        None | Some("") => return Ok((None, None)),
        Some(text) => text,
    };
    let Ok(ip) = text.parse::<IpAddr>() else {
        bail!(
            "port mapping {}: host_ip {text:?} is not an IP address",
            describe(mapping)
        );
    };
    if ip.is_unspecified() {
        // 0.0.0.0 and :: mean every address of that family, as with podman's bridge.
        return Ok((Some(ip.is_ipv4()), None));
    }
    if ip.is_ipv6() && ip.is_loopback() {
        bail!(
            "port mapping {}: ::1 cannot be published: Linux never routes ::1 off the loopback \
             device (IPv6 has no route_localnet), so a DNAT to the container could not work; \
             publish on 127.0.0.1 or on an address of this host",
            describe(mapping)
        );
    }
    if ip.is_multicast() {
        bail!(
            "port mapping {}: host_ip {ip} is a multicast address",
            describe(mapping)
        );
    }
    Ok((Some(ip.is_ipv4()), Some(ip)))
}

/// The DNAT elements of a container with `addresses` and podman's `mappings`: one per
/// protocol, port of a range and address family. Fails, naming the mapping, on anything that
/// cannot be rendered: an unknown protocol, a bad host address, a host address of a family
/// the container has no address of, a port 0, a range beyond port 65535, or a host port
/// published twice.
pub fn published_ports(addresses: &[IpAddr], mappings: &[PortMapping]) -> Result<Vec<Published>> {
    let mut out: BTreeMap<PortKey, Target> = BTreeMap::new();
    for mapping in mappings {
        let what = describe(mapping);
        let protocols = protocols(mapping)?;
        let (family, host_ip) = host_address(mapping)?;
        if mapping.host_port == 0 || mapping.container_port == 0 {
            bail!("port mapping {what}: port 0 cannot be published");
        }
        let count = mapping.range.unwrap_or(1).max(1);
        let last = |start: u16| u32::from(start) + u32::from(count) - 1;
        if last(mapping.host_port) > 65535 || last(mapping.container_port) > 65535 {
            bail!("port mapping {what}: the range of {count} ports goes beyond port 65535");
        }
        let mut targets = Vec::new();
        for ipv4 in [true, false] {
            if family.is_some_and(|f| f != ipv4) {
                continue;
            }
            // One target per family: the container's first address of it.
            if let Some(addr) = addresses.iter().find(|a| a.is_ipv4() == ipv4) {
                targets.push((ipv4, *addr));
            }
        }
        if targets.is_empty() {
            match family {
                Some(ipv4) => bail!(
                    "port mapping {what}: host_ip is an {} address but the container has no {} \
                     address on this network",
                    if ipv4 { "IPv4" } else { "IPv6" },
                    if ipv4 { "IPv4" } else { "IPv6" },
                ),
                None => bail!("port mapping {what}: the container has no address to publish to"),
            }
        }
        for protocol in protocols {
            for offset in 0..count {
                for (ipv4, addr) in &targets {
                    let key = PortKey {
                        ipv4: *ipv4,
                        host_ip,
                        protocol,
                        host_port: mapping.host_port + offset,
                    };
                    let target = Target {
                        addr: *addr,
                        port: mapping.container_port + offset,
                    };
                    if out.insert(key, target).is_some() {
                        bail!("port mapping {what}: host port {key} is published twice");
                    }
                }
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(key, target)| Published { key, target })
        .collect())
}

/// One element as the DNAT maps hold it now. The address and the port of a key live in two
/// maps (nft 1.0.6's JSON input cannot declare a map with a concatenated value), always
/// changed together; either may be missing if someone edited the table by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
}

/// What the table holds now, as far as the per-container updates care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Whether the table exists at all.
    pub exists: bool,
    pub dnat: BTreeMap<PortKey, Current>,
    /// The name servers the DNS maps send each gateway port's queries to, keyed by
    /// (gateway port, IPv4?).
    pub dns: BTreeMap<(String, bool), IpAddr>,
    /// The id in the skeleton's stamp ([`super::render::SKELETON_STAMP`]), when a rule has it.
    pub skeleton: Option<String>,
    /// The gateway ports in the gateway set, and those in the same-gateway set ((g . g)).
    pub gateways: BTreeSet<String>,
    pub same_gateway: BTreeSet<String>,
}

impl Listing {
    /// Whether the table holds this version's skeleton and `gateway` in both gateway sets:
    /// then a container of that network whose own elements need no change needs no
    /// transaction.
    pub fn serves_gateway(&self, skeleton_id: &str, gateway: &str) -> bool {
        self.exists
            && self.skeleton.as_deref() == Some(skeleton_id)
            && self.gateways.contains(gateway)
            && self.same_gateway.contains(gateway)
    }
}

/// How one gateway port's DNS forwarding changes: the families whose element goes, then the
/// upstreams added (a changed upstream is both: nft's `add element` keeps an existing key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameForwardChange {
    pub gateway: String,
    /// IPv4? of each element deleted.
    pub delete: Vec<bool>,
    pub add: Vec<IpAddr>,
}

/// The change that makes `gateway`'s queries go to `upstreams`, given what the table holds.
pub fn forward_names(listing: &Listing, gateway: &str, upstreams: &Upstreams) -> NameForwardChange {
    let mut change = NameForwardChange {
        gateway: gateway.to_string(),
        ..NameForwardChange::default()
    };
    for ipv4 in [true, false] {
        let current = listing.dns.get(&(gateway.to_string(), ipv4)).copied();
        let wanted = upstreams.of_family(ipv4);
        if current == wanted {
            continue;
        }
        if current.is_some() {
            change.delete.push(ipv4);
        }
        change.add.extend(wanted);
    }
    change
}

impl NameForwardChange {
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.add.is_empty()
    }
}

/// A host port held by another container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortTaken {
    pub key: PortKey,
    /// The address the port goes to now: the other container's.
    pub holder: IpAddr,
}

impl fmt::Display for PortTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host port {} is already published to {} by another container",
            self.key, self.holder
        )
    }
}

impl std::error::Error for PortTaken {}

/// The element changes of one container: `delete` first, then `add`, in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerChange {
    /// Keys to delete, with the maps (address, port) they are present in.
    pub delete: Vec<(PortKey, Current)>,
    pub add: Vec<Published>,
}

impl ContainerChange {
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.add.is_empty()
    }
}

/// Every element whose target is one of `own`: a container's own elements, or those a dead
/// container with the same address left (a SIGKILL, a reboot without `gc`).
fn owned_by(listing: &Listing, own: &[IpAddr]) -> Vec<(PortKey, Current)> {
    listing
        .dnat
        .iter()
        .filter(|(_, current)| current.addr.is_some_and(|a| own.contains(&a)))
        .map(|(key, current)| (*key, *current))
        .collect()
}

/// What attaching a container with addresses `own` and elements `wanted` changes: whatever
/// targets its addresses goes, then its own elements come. A key that targets another address
/// is another container's port: refused.
pub fn attach(
    listing: &Listing,
    own: &[IpAddr],
    wanted: &[Published],
) -> std::result::Result<ContainerChange, PortTaken> {
    for element in wanted {
        if let Some(current) = listing.dnat.get(&element.key) {
            match current.addr {
                Some(addr) if !own.contains(&addr) => {
                    return Err(PortTaken {
                        key: element.key,
                        holder: addr,
                    })
                }
                _ => {}
            }
        }
    }
    let mut delete = owned_by(listing, own);
    // A half element (port without address) under a wanted key is replaced too.
    for element in wanted {
        if let Some(current) = listing.dnat.get(&element.key) {
            if current.addr.is_none() && !delete.iter().any(|(k, _)| *k == element.key) {
                delete.push((element.key, *current));
            }
        }
    }
    Ok(ContainerChange {
        delete,
        add: wanted.to_vec(),
    })
}

/// What detaching a container with addresses `own` changes: every element targeting them goes.
pub fn detach(listing: &Listing, own: &[IpAddr]) -> ContainerChange {
    ContainerChange {
        delete: owned_by(listing, own),
        add: Vec::new(),
    }
}

/// The underlay filter: GENEVE's UDP ports of the networks on the kernel datapath, and the
/// peers each is accepted from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Underlay {
    pub ports: BTreeSet<u16>,
    pub peers: BTreeSet<(IpAddr, u16)>,
    /// The peers (and ports) of encrypted networks' tunnels: only IPsec to and from them.
    pub encrypted: BTreeSet<(IpAddr, u16)>,
}

impl Underlay {
    /// From the tunnels of the plugin's kernel-datapath bridges (on the userspace datapath
    /// tunnel packets never reach the host's netfilter). A network without tunnels has no
    /// GENEVE socket open in the kernel, so it needs no entry.
    pub fn from_observed(observed: &Snapshot) -> Underlay {
        let mut underlay = Underlay::default();
        for bridge in observed.owned_bridges() {
            if !bridge.record().is_some_and(|r| r.on_kernel_datapath()) {
                continue;
            }
            for tunnel in observed
                .ports_of(bridge)
                .filter_map(|p| TunnelRecord::read(&p.external_ids))
            {
                if let (Some(peer), Some(port)) = (tunnel.peer, tunnel.dst_port) {
                    underlay.ports.insert(port);
                    underlay.peers.insert((peer, port));
                    if tunnel.encrypted {
                        underlay.encrypted.insert((peer, port));
                    }
                }
            }
        }
        underlay
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.peers.is_empty()
    }
}

/// Everything the table holds, from the OVS database: the full reconcile of `gc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// The gateway ports of the non-internal networks.
    pub gateways: BTreeSet<String>,
    pub dnat: Vec<Published>,
    pub underlay: Underlay,
    /// The gateway ports of open OVN networks: their DNS queries go to `name_servers`.
    pub ovn_gateways: BTreeSet<String>,
    /// This host's upstreams (filled by the caller: the database does not know them).
    pub name_servers: Upstreams,
    /// Whether any network of this host needs the table (non-internal, or on the kernel
    /// datapath); without one the table goes.
    pub needed: bool,
}

/// The addresses a container port row records.
pub fn row_addresses(row: &PortRow) -> Vec<IpAddr> {
    ContainerPortRecord::read(&row.external_ids)
        .map(|record| record.addresses)
        .unwrap_or_default()
}

/// Works out the whole table from the plugin's rows, publishing only the ports of container
/// ports for which `alive` holds. Rows whose mappings no longer validate, and keys a second
/// container claims, are left out with a warning (the first row, in database order, keeps a
/// contested key).
pub fn desired(observed: &Snapshot, alive: impl Fn(&PortRow) -> bool) -> Desired {
    let mut desired = Desired {
        underlay: Underlay::from_observed(observed),
        ..Desired::default()
    };
    let mut taken = BTreeSet::new();
    for (bridge, record) in observed
        .owned_bridges()
        .filter_map(|b| Some((b, b.record()?)))
    {
        desired.needed |= record.on_kernel_datapath() || !record.internal;
        if record.internal {
            continue;
        }
        let Some(vni) = record.vni else {
            log::warn!("bridge {} has no VNI in its external_ids", bridge.name);
            continue;
        };
        desired.gateways.insert(naming::gateway_port_name(vni));
        let rows = observed
            .ports_of(bridge)
            .filter(|p| p.has_role(Role::Container))
            .filter(|p| alive(p));
        publish(&mut desired, &mut taken, rows);
    }
    // OVN networks: their ports sit on OVN's integration bridge, which is not the plugin's;
    // a network that has this host's end of its gateway port there is non-internal.
    for bridge in observed.all_bridges().filter(|b| !b.is_owned()) {
        let gateways: Vec<&PortRow> = observed
            .ports_of(bridge)
            .filter(|p| p.has_role(Role::Gateway))
            .collect();
        if gateways.is_empty() {
            continue;
        }
        desired.needed = true;
        let open: BTreeSet<&str> = gateways
            .iter()
            .filter_map(|p| network_of(&p.external_ids))
            .collect();
        desired
            .gateways
            .extend(gateways.iter().map(|p| p.name.clone()));
        desired
            .ovn_gateways
            .extend(gateways.iter().map(|p| p.name.clone()));
        let rows = observed
            .ports_of(bridge)
            .filter(|p| p.has_role(Role::Container))
            .filter(|p| network_of(&p.external_ids).is_some_and(|n| open.contains(n)))
            .filter(|p| alive(p));
        publish(&mut desired, &mut taken, rows);
    }
    desired.needed |= !desired.underlay.is_empty();
    desired
}

/// Adds the published ports of the container port `rows` to `desired`, each key once
/// (`taken`: the keys already there).
fn publish<'a>(
    desired: &mut Desired,
    taken: &mut BTreeSet<PortKey>,
    rows: impl Iterator<Item = &'a PortRow>,
) {
    for row in rows {
        let Some(record) = ContainerPortRecord::read(&row.external_ids) else {
            continue;
        };
        let mappings: Vec<PortMapping> = match record.port_mappings {
            None => continue,
            Some(Ok(m)) => m,
            Some(Err(err)) => {
                log::warn!("port {}: unreadable port mappings: {err}", row.name);
                continue;
            }
        };
        match published_ports(&record.addresses, &mappings) {
            Ok(elements) => {
                for element in elements {
                    if taken.insert(element.key) {
                        desired.dnat.push(element);
                    } else {
                        log::warn!(
                            "port {}: host port {} is already published by another \
                             container; left out",
                            row.name,
                            element.key
                        );
                    }
                }
            }
            Err(err) => log::warn!("port {}: {err:#}", row.name),
        }
    }
}

#[cfg(test)]
mod tests;
