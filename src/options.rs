//! The network options (`podman network create --opt k=v`): the one place that knows them.
//!
//! Two steps, so that the rules stay testable without a host:
//!
//! 1. [`parse`] checks the syntax and bounds of what the user wrote. It is pure.
//! 2. [`resolve`] checks the network as a whole and fills in every default. The defaults that
//!    depend on this host (its addresses, the MTU towards the peers, the datapaths of its
//!    ovs-vswitchd) are asked of a [`HostFacts`], and only when an option does not already say.
//!
//! `create` writes the resolved values back with [`NetworkConfig::to_options`], so that
//! `podman network inspect` shows what is in force and `setup` reads them back without having
//! to ask the host again. The JSON Schema in `plugin-schema/` describes the same table,
//! [`OPTIONS`]; a test keeps the two in agreement.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use log::warn;

use crate::addressing;
pub use crate::dad::window::Window as DadWindow;
use crate::ipsec::{self, Encryption, HostPki, Psk};
use crate::naming;
use crate::ovsdb::Remote;
use crate::types::{LeaseRange, Network, Subnet};

/// GENEVE's IANA port.
pub const DEFAULT_DST_PORT: u16 = 6081;
/// The OVN northbound database's TCP port when `ovn` gives a bare address.
pub const OVN_NB_PORT: u16 = 6641;
/// OVN's integration bridge, which ovn-controller creates and programs: container ports of an
/// OVN network go there.
pub const OVN_BRIDGE: &str = "br-int";
/// The address slices of an OVN network without `hosts`: no host lists the others, so each
/// takes slot (its underlay address mod this) of a fixed cut, as with `hosts`.
pub const OVN_DEFAULT_HOSTS: u32 = 8;
/// Encapsulation overhead over an IPv4 underlay: outer IPv4 (20) + UDP (8) + GENEVE (8) +
/// inner Ethernet (14), with no GENEVE options.
pub const OVERHEAD_IPV4: u32 = 50;
/// Encapsulation overhead over an IPv6 underlay (outer header 40 instead of 20).
pub const OVERHEAD_IPV6: u32 = 70;
/// What OVN adds to that: every packet it tunnels carries one GENEVE option (class 0x0102, the
/// logical ingress and egress port keys), a 4-byte option header and 4 bytes of data. Without
/// it in the MTU, full-size frames of an OVN network are dropped while small ones pass.
pub const OVN_GENEVE_OPTION_BYTES: u32 = 8;
/// The underlay MTU assumed when there is no peer to look a route up for.
pub const FALLBACK_UNDERLAY_MTU: u32 = 1500;
/// The smallest MTU IPv4 allows (RFC 791).
pub const MIN_MTU: u32 = 68;
/// The smallest MTU IPv6 allows (RFC 8200): the floor when the network has an IPv6 subnet.
pub const MIN_MTU_IPV6: u32 = 1280;
/// The largest MTU a veth accepts.
pub const MAX_MTU: u32 = 65535;

/// What kind of value an option takes; the bounds are the parser's and the schema's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A decimal integer in `min..=max`.
    Integer { min: u64, max: u64 },
    /// `auto`, or a decimal integer in `min..=max`.
    IntegerOrAuto { min: u64, max: u64 },
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// One IP address.
    Address,
    /// Comma-separated IP addresses, possibly none.
    AddressList,
    /// `true` or `false`, spelled exactly so.
    Bool,
    /// An absolute file path.
    Path,
    /// Comma-separated OVSDB remotes: IP addresses, `tcp:IP:PORT`, `ssl:IP:PORT`, `unix:PATH`.
    RemoteList,
}

/// How an option's default comes about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionDefault {
    /// A fixed value.
    Value(&'static str),
    /// Worked out when the network is created; the text says how.
    Derived(&'static str),
    /// No default: the option is unset unless given.
    None,
}

/// One network option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub default: OptionDefault,
    pub help: &'static str,
}

/// Every option the plugin accepts. Anything else is refused, naming these.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "peers",
        kind: Kind::AddressList,
        default: OptionDefault::Value(""),
        help: "underlay IPv4/IPv6 addresses of the other hosts, comma-separated; \
               addresses of this host are skipped",
    },
    OptionSpec {
        name: "ovn",
        kind: Kind::RemoteList,
        default: OptionDefault::None,
        help: "the OVN northbound database instead of peers: comma-separated IP addresses (TCP \
               port 6641) or tcp:IP:PORT, ssl:IP:PORT, unix:PATH remotes, several for a Raft \
               cluster; hosts then join the network alone, through OVN",
    },
    OptionSpec {
        name: "vni",
        kind: Kind::Integer {
            min: 1,
            max: naming::MAX_VNI as u64,
        },
        default: OptionDefault::Derived(
            "1 + (first 4 bytes of SHA-256(network name)) mod 16777215",
        ),
        help: "GENEVE virtual network identifier; must be the same on every host",
    },
    OptionSpec {
        name: "mtu",
        kind: Kind::Integer {
            min: MIN_MTU as u64,
            max: MAX_MTU as u64,
        },
        default: OptionDefault::Derived(
            "MTU of the underlay route towards the peers minus 50 (IPv4 underlay) \
             or 70 (IPv6 underlay), and 40 more with encrypt=ipsec; 1500 minus that without \
             peers",
        ),
        help: "MTU of the container interfaces; at least 1280 with an IPv6 subnet",
    },
    OptionSpec {
        name: "datapath",
        kind: Kind::Enum(&["system", "netdev"]),
        default: OptionDefault::Derived("system when ovs-vswitchd offers it, else netdev"),
        help: "Open vSwitch datapath of the bridge: system (kernel) or netdev (userspace)",
    },
    OptionSpec {
        name: "dst_port",
        kind: Kind::Integer { min: 1, max: 65535 },
        default: OptionDefault::Value("6081"),
        help: "UDP port of the GENEVE tunnels; must be the same on every host",
    },
    OptionSpec {
        name: "local_ip",
        kind: Kind::Address,
        default: OptionDefault::None,
        help: "underlay source address of the tunnels (an address of this host)",
    },
    OptionSpec {
        name: "bfd",
        kind: Kind::Bool,
        default: OptionDefault::Value("true"),
        help: "BFD liveness detection on every tunnel (reported by `geneve-ovs status`); \
               should be the same on every host",
    },
    OptionSpec {
        name: "dad",
        kind: Kind::Bool,
        default: OptionDefault::Value("true"),
        help: "probe the overlay for each container address before setup configures it (ARP \
               probe, IPv6 DAD) and refuse an address another host already uses",
    },
    OptionSpec {
        name: "dad_timeout_ms",
        kind: Kind::IntegerOrAuto {
            min: 1,
            max: MAX_DAD_TIMEOUT_MS,
        },
        default: OptionDefault::Value("auto"),
        help: "how long setup listens for an answer to the address probes, in milliseconds; \
               auto: derived from the round trip to the peers, measured by each setup",
    },
    OptionSpec {
        name: "port_security",
        kind: Kind::Bool,
        default: OptionDefault::Value("true"),
        help: "OpenFlow rules on every container port: a container sends only from its own MAC \
               and addresses, and never as a router, DHCP server or the gateway",
    },
    OptionSpec {
        name: "hosts",
        kind: Kind::Integer {
            min: 1,
            max: MAX_HOSTS as u64,
        },
        default: OptionDefault::None,
        help: "the most hosts the overlay will ever have; must be the same on every host. Each \
               subnet is cut into this many equal slices and each host leases from slice number \
               (its underlay address mod hosts), so hosts can join later (geneve-ovs peers add) \
               without overlapping anyone; two hosts on the same slot are refused. Unset: the \
               subnet is shared among exactly the hosts listed at create, with no room to add one",
    },
    OptionSpec {
        name: "encrypt",
        kind: Kind::Enum(&["none", "ipsec"]),
        default: OptionDefault::Value("none"),
        help: "encryption of the tunnels between hosts: none, or ipsec (Open vSwitch's IPsec, \
               ESP in transport mode; needs the kernel datapath, openvswitch-ipsec and an IKE \
               daemon, and psk_file, or cert, key and ca); must be the same on every host",
    },
    OptionSpec {
        name: "psk_file",
        kind: Kind::Path,
        default: OptionDefault::None,
        help: "with encrypt=ipsec: a root-only file (mode 0600) holding the pre-shared key on one \
               line, the same key on every host; only the path is saved",
    },
    OptionSpec {
        name: "cert",
        kind: Kind::Path,
        default: OptionDefault::None,
        help: "with encrypt=ipsec, instead of psk_file: this host's certificate (PEM), signed by \
               the CA of option ca, its CN and an IP subjectAltName this host's underlay address; \
               one certificate for all encrypted networks of the host (OVS keeps it host-wide)",
    },
    OptionSpec {
        name: "key",
        kind: Kind::Path,
        default: OptionDefault::None,
        help: "with cert: the private key of this host's certificate (PEM, unencrypted), a \
               root-only file (mode 0600); only the path is saved",
    },
    OptionSpec {
        name: "ca",
        kind: Kind::Path,
        default: OptionDefault::None,
        help: "with cert: the certificate (PEM) of the CA that signs every host's certificate; \
               a peer is accepted when its certificate is signed by it and names the peer's \
               address as CN",
    },
];

/// The largest `hosts` capacity: beyond it the slices of a default /24 are long empty.
pub const MAX_HOSTS: u32 = 4096;

/// The longest wait for answers to address probes: it is paid on every `podman run`. The default
/// (`auto`) is derived from the round trips to the peers ([`crate::dad::window`]).
pub const MAX_DAD_TIMEOUT_MS: u64 = crate::dad::window::MAX_WINDOW.as_millis() as u64;

/// The Open vSwitch datapath a bridge uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datapath {
    /// The kernel module (production hosts).
    System,
    /// The userspace datapath (hosts without the module, and the test lab).
    Netdev,
}

impl Datapath {
    /// The value of `Bridge.datapath_type` and of the `datapath` option.
    pub fn as_str(self) -> &'static str {
        match self {
            Datapath::System => "system",
            Datapath::Netdev => "netdev",
        }
    }
}

impl fmt::Display for Datapath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The options as the user wrote them, each checked on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedOptions {
    pub peers: Vec<IpAddr>,
    pub vni: Option<u32>,
    pub mtu: Option<u32>,
    pub datapath: Option<Datapath>,
    pub dst_port: u16,
    pub local_ip: Option<IpAddr>,
    pub bfd: bool,
    pub dad: bool,
    /// `None`: `auto`, the window derived from the measured round trips.
    pub dad_timeout_ms: Option<u64>,
    pub port_security: bool,
    /// `hosts`: the fixed number of address slices, `None` for a split among the listed hosts.
    pub hosts: Option<u32>,
    /// `encrypt=ipsec`.
    pub encrypt_ipsec: bool,
    pub psk_file: Option<PathBuf>,
    /// `ovn`: the northbound database's remotes, empty for the static mesh.
    pub ovn: Vec<Remote>,
    /// `cert`, `key`, `ca`: the certificate files, instead of `psk_file`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

fn invalid(name: &str, value: &str, why: impl fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("invalid option {name}={value:?}: {why}")
}

fn spec(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.name == name)
}

fn valid_names() -> String {
    OPTIONS
        .iter()
        .map(|o| o.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_integer(spec: &OptionSpec, value: &str) -> Result<u64> {
    let (min, max, auto) = match spec.kind {
        Kind::Integer { min, max } => (min, max, ""),
        Kind::IntegerOrAuto { min, max } => (min, max, "auto or "),
        _ => bail!("option {} is not an integer option", spec.name),
    };
    let out_of_range = || {
        invalid(
            spec.name,
            value,
            format!("must be {auto}an integer from {min} to {max}"),
        )
    };
    // Digits only: u64::from_str would accept a leading '+'.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(out_of_range());
    }
    let n = u64::from_str(value).map_err(|_| out_of_range())?;
    if n < min || n > max {
        return Err(out_of_range());
    }
    Ok(n)
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(name, value, "must be true or false")),
    }
}

/// Checks an underlay address: peers and local_ip must be unicast addresses a tunnel can use.
fn parse_underlay_address(name: &str, whole: &str, item: &str) -> Result<IpAddr> {
    let ip = IpAddr::from_str(item).map_err(|_| {
        invalid(
            name,
            whole,
            format!("{item:?} is not an IPv4 or IPv6 address"),
        )
    })?;
    let why = if ip.is_unspecified() {
        Some("is the unspecified address")
    } else if ip.is_multicast() {
        Some("is a multicast address")
    } else if ip == IpAddr::from([255, 255, 255, 255]) {
        Some("is the broadcast address")
    } else if matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80) {
        Some("is an IPv6 link-local address, which a tunnel cannot use without a zone")
    } else {
        None
    };
    match why {
        Some(why) => Err(invalid(name, whole, format!("{ip} {why}"))),
        None => Ok(ip),
    }
}

/// An absolute path without control characters (it is written into OVS and shown back).
fn parse_path(name: &str, value: &str) -> Result<PathBuf> {
    if !value.starts_with('/') {
        return Err(invalid(name, value, "must be an absolute path"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(name, value, "must not contain control characters"));
    }
    Ok(PathBuf::from(value))
}

fn parse_peers(value: &str) -> Result<Vec<IpAddr>> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut peers: Vec<IpAddr> = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(invalid(
                "peers",
                value,
                "empty entry in the comma-separated list",
            ));
        }
        let ip = parse_underlay_address("peers", value, item)?;
        if peers.contains(&ip) {
            return Err(invalid("peers", value, format!("{ip} is listed twice")));
        }
        peers.push(ip);
    }
    Ok(peers)
}

/// Parses the `--opt` map. Each option is checked on its own; unknown options are refused.
pub fn parse(options: &BTreeMap<String, String>) -> Result<RequestedOptions> {
    let mut req = RequestedOptions {
        peers: Vec::new(),
        vni: None,
        mtu: None,
        datapath: None,
        dst_port: DEFAULT_DST_PORT,
        local_ip: None,
        bfd: true,
        dad: true,
        dad_timeout_ms: None,
        port_security: true,
        hosts: None,
        encrypt_ipsec: false,
        psk_file: None,
        ovn: Vec::new(),
        cert: None,
        key: None,
        ca: None,
    };
    for (name, value) in options {
        let Some(spec) = spec(name) else {
            bail!("unknown option {name:?} (valid options: {})", valid_names());
        };
        match spec.name {
            "peers" => req.peers = parse_peers(value)?,
            "vni" => req.vni = Some(parse_integer(spec, value)? as u32),
            "mtu" => req.mtu = Some(parse_integer(spec, value)? as u32),
            "dst_port" => req.dst_port = parse_integer(spec, value)? as u16,
            "datapath" => {
                req.datapath = Some(match value.as_str() {
                    "system" => Datapath::System,
                    "netdev" => Datapath::Netdev,
                    _ => return Err(invalid(name, value, "must be system or netdev")),
                })
            }
            "local_ip" => req.local_ip = Some(parse_underlay_address(name, value, value.trim())?),
            "bfd" => req.bfd = parse_bool(name, value)?,
            "dad" => req.dad = parse_bool(name, value)?,
            "dad_timeout_ms" => {
                req.dad_timeout_ms = match value.as_str() {
                    "auto" => None,
                    _ => Some(parse_integer(spec, value)?),
                }
            }
            "port_security" => req.port_security = parse_bool(name, value)?,
            "hosts" => req.hosts = Some(parse_integer(spec, value)? as u32),
            "encrypt" => {
                req.encrypt_ipsec = match value.as_str() {
                    "none" => false,
                    "ipsec" => true,
                    _ => return Err(invalid(name, value, "must be none or ipsec")),
                }
            }
            "psk_file" => req.psk_file = Some(parse_path(name, value)?),
            "ovn" => req.ovn = parse_ovn(value)?,
            "cert" => req.cert = Some(parse_path(name, value)?),
            "key" => req.key = Some(parse_path(name, value)?),
            "ca" => req.ca = Some(parse_path(name, value)?),
            other => bail!("option {other} is listed but not handled"),
        }
    }
    if !req.ovn.is_empty() && !req.peers.is_empty() {
        bail!(
            "options ovn and peers exclude each other (ovn={:?}, peers={:?}): with ovn, hosts \
             join the network through the OVN databases and list no other host; drop peers",
            options.get("ovn").map_or("", String::as_str),
            options.get("peers").map_or("", String::as_str)
        );
    }
    if !req.ovn.is_empty() && req.encrypt_ipsec {
        bail!(
            "option encrypt=ipsec is for the static mesh's tunnels and does not apply with ovn={:?}: \
             OVN encrypts its own tunnels (`ovn-nbctl set nb_global . ipsec=true`, with \
             certificates on every chassis); drop encrypt",
            options.get("ovn").map_or("", String::as_str)
        );
    }
    Ok(req)
}

/// The OVN northbound database's remotes: at least one, none twice.
fn parse_ovn(value: &str) -> Result<Vec<Remote>> {
    let mut remotes: Vec<Remote> = Vec::new();
    for item in value.split(',') {
        if item.trim().is_empty() {
            return Err(invalid(
                "ovn",
                value,
                "empty entry: give the northbound database as IP addresses (TCP port 6641) or \
                 tcp:IP:PORT, ssl:IP:PORT, unix:PATH remotes, comma-separated",
            ));
        }
        let remote = Remote::parse(item, OVN_NB_PORT).map_err(|why| invalid("ovn", value, why))?;
        if remotes.contains(&remote) {
            return Err(invalid("ovn", value, format!("{remote} is listed twice")));
        }
        remotes.push(remote);
    }
    Ok(remotes)
}

/// The route this host would use towards a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnderlayRoute {
    /// The route's MTU (its metric, else the output interface's).
    pub mtu: u32,
    /// The source address the host would use.
    pub source: Option<IpAddr>,
}

/// What the defaults depend on, asked of the host only when an option does not already say.
pub trait HostFacts {
    /// Every address configured on this host (its current network namespace).
    fn local_addresses(&mut self) -> Result<Vec<IpAddr>>;
    /// The route towards `peer`, `None` when there is none.
    fn underlay_route(&mut self, peer: IpAddr) -> Result<Option<UnderlayRoute>>;
    /// The destinations of this host's routes (default routes excluded).
    fn route_destinations(&mut self) -> Result<Vec<IpNet>>;
    /// `Open_vSwitch.datapath_types` of this host's ovs-vswitchd.
    fn datapath_types(&mut self) -> Result<Vec<String>>;
    /// The pre-shared key in `path`, checked to be readable by root only ([`ipsec::read_psk`]).
    fn read_psk(&mut self, path: &Path) -> Result<Psk>;
    /// That the certificate options' files are readable PEM and the key root-only
    /// ([`ipsec::check_pki_files`]).
    fn check_pki_files(&mut self, pki: &HostPki) -> Result<()>;
    /// Whether this host runs OVS IPsec ([`ipsec::check_software`]).
    fn check_ipsec_software(&mut self) -> Result<()>;
}

/// Where [`resolve`] is called from, which decides how much it may trust the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `create`: the user's options; every rule is checked and local peers are dropped.
    Create,
    /// `setup`/`teardown`: options that `create` resolved and podman saved.
    Saved,
}

/// Everything the plugin needs to build the network on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    pub name: String,
    pub id: String,
    pub vni: u32,
    pub bridge: String,
    /// The other hosts: `peers` without this host's own addresses.
    pub peers: Vec<IpAddr>,
    pub mtu: u32,
    pub datapath: Datapath,
    pub dst_port: u16,
    pub local_ip: Option<IpAddr>,
    /// Whether the tunnels run BFD (`Interface.bfd:enable`).
    pub bfd: bool,
    /// How long `setup` listens for answers to its address probes; `None`: no probes.
    pub dad: Option<DadWindow>,
    /// Whether container ports get their anti-spoofing flows ([`crate::flows`]); without it
    /// they are plain switch ports.
    pub port_security: bool,
    /// `--internal`: no gateway, no NAT, no port mappings.
    pub internal: bool,
    /// The `hosts` capacity the network's address slices were cut for, when it was given.
    pub hosts: Option<u32>,
    /// The network's subnets (the same on every host).
    pub subnets: Vec<IpNet>,
    /// The subnets' gateway addresses, with their prefixes; empty for internal mesh networks.
    /// On an OVN network, internal or not, the addresses of its switch's gateway port, which
    /// the containers ask for names.
    pub gateways: Vec<IpNet>,
    /// What the tunnels are protected with (`encrypt`, `psk_file` or `cert`, `key`, `ca`).
    pub encryption: Encryption,
    /// `ovn`: the OVN northbound database's remotes; empty for the static mesh.
    pub ovn: Vec<Remote>,
}

impl NetworkConfig {
    /// The resolved options, written back into the network by `create`.
    pub fn to_options(&self) -> BTreeMap<String, String> {
        let mut options = BTreeMap::new();
        let peers: Vec<String> = self.peers.iter().map(IpAddr::to_string).collect();
        options.insert("peers".to_string(), peers.join(","));
        options.insert("vni".to_string(), self.vni.to_string());
        options.insert("mtu".to_string(), self.mtu.to_string());
        options.insert("datapath".to_string(), self.datapath.to_string());
        options.insert("dst_port".to_string(), self.dst_port.to_string());
        if let Some(ip) = self.local_ip {
            options.insert("local_ip".to_string(), ip.to_string());
        }
        options.insert("bfd".to_string(), self.bfd.to_string());
        options.insert("dad".to_string(), self.dad.is_some().to_string());
        let timeout = match self.dad {
            Some(DadWindow::Fixed(window)) => window.as_millis().to_string(),
            Some(DadWindow::Measured) | None => "auto".to_string(),
        };
        options.insert("dad_timeout_ms".to_string(), timeout);
        options.insert("port_security".to_string(), self.port_security.to_string());
        if let Some(hosts) = self.hosts {
            options.insert("hosts".to_string(), hosts.to_string());
        }
        match &self.encryption {
            Encryption::None => {
                options.insert("encrypt".to_string(), "none".to_string());
            }
            Encryption::IpsecPsk { psk_file, .. } => {
                // The path only: `podman network inspect` never shows the key.
                options.insert("encrypt".to_string(), "ipsec".to_string());
                options.insert("psk_file".to_string(), psk_file.display().to_string());
            }
            Encryption::IpsecCert(pki) => {
                options.insert("encrypt".to_string(), "ipsec".to_string());
                for (name, path) in [
                    ("cert", &pki.certificate),
                    ("key", &pki.private_key),
                    ("ca", &pki.ca_cert),
                ] {
                    options.insert(name.to_string(), path.display().to_string());
                }
            }
        }
        if !self.ovn.is_empty() {
            options.remove("peers");
            let remotes: Vec<String> = self.ovn.iter().map(Remote::to_string).collect();
            options.insert("ovn".to_string(), remotes.join(","));
        }
        options
    }
}

fn overhead(peer: IpAddr) -> u32 {
    if peer.is_ipv4() {
        OVERHEAD_IPV4
    } else {
        OVERHEAD_IPV6
    }
}

/// The largest MTU of this network's containers that the underlay carries to every peer
/// without fragmenting: [`underlay_allowance`], less OVN's GENEVE option on an OVN network.
fn overlay_allowance(
    req: &RequestedOptions,
    peers: &[IpAddr],
    facts: &mut dyn HostFacts,
) -> Result<u32> {
    let allowance = underlay_allowance(peers, req.local_ip, req.encrypt_ipsec, facts)?;
    Ok(if req.ovn.is_empty() {
        allowance
    } else {
        allowance.saturating_sub(OVN_GENEVE_OPTION_BYTES)
    })
}

/// The largest overlay MTU the underlay carries to every peer without fragmenting.
fn underlay_allowance(
    peers: &[IpAddr],
    local_ip: Option<IpAddr>,
    encrypted: bool,
    facts: &mut dyn HostFacts,
) -> Result<u32> {
    let esp = if encrypted { ipsec::ESP_OVERHEAD } else { 0 };
    if peers.is_empty() {
        let overhead = local_ip.map_or(OVERHEAD_IPV4, overhead);
        return Ok(FALLBACK_UNDERLAY_MTU - overhead - esp);
    }
    let mut allowance = u32::MAX;
    for &peer in peers {
        let underlay = match facts.underlay_route(peer)? {
            Some(route) => route.mtu,
            None => {
                warn!(
                    "no route to peer {peer}: assuming an underlay MTU of {FALLBACK_UNDERLAY_MTU}"
                );
                FALLBACK_UNDERLAY_MTU
            }
        };
        allowance = allowance.min(underlay.saturating_sub(overhead(peer) + esp));
    }
    Ok(allowance)
}

/// Checks the network as a whole and works out every option's value on this host.
///
/// At [`Stage::Create`] the user's options are first held against the network and this host
/// ([`check_at_create`]); the defaults ([`with_defaults`]) are the same at every stage, so that
/// `setup` reads back exactly what `create` wrote.
pub fn resolve(
    network: &Network,
    stage: Stage,
    facts: &mut dyn HostFacts,
) -> Result<NetworkConfig> {
    let req = parse(&network.options())?;
    let peers = match stage {
        Stage::Create => check_at_create(network, &req, facts)?,
        Stage::Saved => req.peers.clone(),
    };
    with_defaults(network, &req, peers, facts)
}

/// The rules only `create` can check, against the user's options and this host: the network as
/// a whole, `local_ip` being this host's, an explicit datapath being offered and an explicit MTU
/// fitting the underlay (a warning). Returns the peers without this host's own addresses (the
/// same `peers` is given on every host, listing all of them).
///
/// Saved options passed these checks at `create` and are not checked again: the host's
/// addresses and routes may have changed since, and a running network must stay usable.
fn check_at_create(
    network: &Network,
    req: &RequestedOptions,
    facts: &mut dyn HostFacts,
) -> Result<Vec<IpAddr>> {
    check_network(network)?;

    let mut peers = req.peers.clone();
    if !peers.is_empty() {
        let local = facts.local_addresses()?;
        peers.retain(|p| !local.contains(p));
        if let Some(ip) = req.local_ip {
            if !local.contains(&ip) {
                return Err(invalid(
                    "local_ip",
                    &ip.to_string(),
                    "is not an address of this host",
                ));
            }
        }
    }

    if req.encrypt_ipsec {
        // The datapath first: on the userspace one no software makes encryption possible.
        let datapath = match req.datapath {
            Some(dp) => dp,
            None => default_datapath(facts)?,
        };
        if datapath != Datapath::System {
            return Err(ipsec_needs_kernel_datapath(datapath));
        }
        facts.check_ipsec_software()?;
    }

    if let Some(mtu) = req.mtu {
        let allowance = overlay_allowance(req, &peers, facts)?;
        if mtu > allowance {
            warn!(
                "mtu={mtu} is larger than the underlay carries ({allowance}): \
                 larger packets will be dropped or fragmented"
            );
        }
    }

    if let Some(dp) = req.datapath {
        let offered = facts.datapath_types()?;
        if !offered.iter().any(|t| t == dp.as_str()) {
            return Err(invalid(
                "datapath",
                dp.as_str(),
                format!("this ovs-vswitchd offers only: {}", offered.join(", ")),
            ));
        }
    }
    Ok(peers)
}

/// Every option's value, at every stage: what the options say, checked where the network's
/// shape decides (the MTU's minimum, `local_ip`'s family, the bridge name), and a default for
/// what they leave out, asked of `facts` only then.
fn with_defaults(
    network: &Network,
    req: &RequestedOptions,
    peers: Vec<IpAddr>,
    facts: &mut dyn HostFacts,
) -> Result<NetworkConfig> {
    if let Some(local_ip) = req.local_ip {
        if let Some(peer) = peers.iter().find(|p| p.is_ipv4() != local_ip.is_ipv4()) {
            return Err(invalid(
                "local_ip",
                &local_ip.to_string(),
                format!("peer {peer} is of the other IP family"),
            ));
        }
    }

    let vni = req
        .vni
        .unwrap_or_else(|| naming::default_vni(&network.name));

    let has_ipv6_subnet = network.subnets().iter().any(|s| s.subnet.addr().is_ipv6());
    let min_mtu = if has_ipv6_subnet {
        MIN_MTU_IPV6
    } else {
        MIN_MTU
    };
    let mtu = match req.mtu {
        Some(mtu) if mtu < min_mtu => {
            return Err(invalid(
                "mtu",
                &mtu.to_string(),
                format!("a network with an IPv6 subnet needs an MTU of at least {min_mtu}"),
            ));
        }
        Some(mtu) => mtu,
        None => {
            let allowance = overlay_allowance(req, &peers, facts)?;
            if allowance < min_mtu {
                bail!(
                    "the underlay towards the peers allows an MTU of only {allowance}, \
                     below the minimum of {min_mtu}: set option mtu"
                );
            }
            allowance
        }
    };

    let datapath = match req.datapath {
        Some(dp) => dp,
        None => default_datapath(facts)?,
    };

    let credentials = ipsec::Credentials {
        psk_file: req.psk_file.as_deref(),
        cert: req.cert.as_deref(),
        key: req.key.as_deref(),
        ca: req.ca.as_deref(),
    };
    let encryption = match ipsec::from_options(req.encrypt_ipsec, credentials, req.dst_port)? {
        ipsec::Requested::None => Encryption::None,
        ipsec::Requested::IpsecPsk { psk_file } => {
            if datapath != Datapath::System {
                return Err(ipsec_needs_kernel_datapath(datapath));
            }
            let psk = facts.read_psk(&psk_file)?;
            Encryption::IpsecPsk { psk_file, psk }
        }
        ipsec::Requested::IpsecCert(pki) => {
            if datapath != Datapath::System {
                return Err(ipsec_needs_kernel_datapath(datapath));
            }
            facts.check_pki_files(&pki)?;
            Encryption::IpsecCert(pki)
        }
    };

    let bridge = match &network.network_interface {
        // OVN's integration bridge, whatever podman saved.
        _ if !req.ovn.is_empty() => OVN_BRIDGE.to_string(),
        Some(name) if !name.is_empty() => {
            if !naming::is_valid_ifname(name) {
                bail!(
                    "invalid interface name {name:?} (--interface-name): an OVS bridge name must \
                     be 1 to {} characters without '/', ':' or spaces",
                    naming::MAX_IFNAME_LEN
                );
            }
            name.clone()
        }
        _ => naming::default_bridge_name(vni),
    };

    let subnets: Vec<IpNet> = network.subnets().iter().map(|s| s.subnet).collect();
    // An internal OVN network keeps its gateway addresses too: they are its switch's
    // gateway port, the containers' DNS server (not a route out).
    let gateways = if network.internal && req.ovn.is_empty() {
        Vec::new()
    } else {
        network
            .subnets()
            .iter()
            .filter_map(|s| s.gateway.map(|gw| IpNet::new(gw, s.subnet.prefix_len())))
            .collect::<Result<Vec<_>, _>>()
            .context("a subnet's gateway with the subnet's prefix")?
    };

    Ok(NetworkConfig {
        name: network.name.clone(),
        id: network.id.clone(),
        vni,
        bridge,
        peers,
        mtu,
        datapath,
        dst_port: req.dst_port,
        local_ip: req.local_ip,
        bfd: req.bfd,
        // OVN knows every port's addresses: setup asks it instead of listening for answers.
        dad: (req.dad && req.ovn.is_empty()).then(|| match req.dad_timeout_ms {
            Some(ms) => DadWindow::Fixed(Duration::from_millis(ms)),
            None => DadWindow::Measured,
        }),
        port_security: req.port_security,
        internal: network.internal,
        hosts: req.hosts,
        subnets,
        gateways,
        encryption,
        ovn: req.ovn.clone(),
    })
}

/// The datapath without option `datapath`: the kernel's when ovs-vswitchd offers it.
fn default_datapath(facts: &mut dyn HostFacts) -> Result<Datapath> {
    let offered = facts.datapath_types()?;
    if offered.iter().any(|t| t == "system") {
        Ok(Datapath::System)
    } else if offered.iter().any(|t| t == "netdev") {
        Ok(Datapath::Netdev)
    } else {
        bail!(
            "this ovs-vswitchd offers neither the system nor the netdev datapath \
             (datapath_types: {:?})",
            offered
        );
    }
}

fn ipsec_needs_kernel_datapath(datapath: Datapath) -> anyhow::Error {
    invalid(
        "encrypt",
        "ipsec",
        format!(
            "needs Open vSwitch's kernel datapath (datapath=system), and this network's is \
             {datapath}: the userspace datapath sends its tunnel packets past the kernel's \
             IPsec, so they would leave in clear"
        ),
    )
}

/// Completes the network `create` receives from podman, so that the identical command on
/// every host gives the same subnets and disjoint address ranges: default subnets when there
/// are none, a gateway per subnet of a non-internal network, and this host's share of each
/// subnet as its `lease_range` when none was given (`--ip-range` always wins).
pub fn complete_network(network: &mut Network, facts: &mut dyn HostFacts) -> Result<()> {
    let req = parse(&network.options())?;
    add_default_subnets(network, facts)?;
    fill_gateways(network, !req.ovn.is_empty())?;
    split_lease_ranges(network, &req, facts)
}

/// Adds the default IPv4 subnet (and IPv6 one with `--ipv6`) derived from the network name
/// (see [`addressing`]), refusing one that overlaps a route of this host.
fn add_default_subnets(network: &mut Network, facts: &mut dyn HostFacts) -> Result<()> {
    let has_v4 = network.subnets().iter().any(|s| s.subnet.addr().is_ipv4());
    let has_v6 = network.subnets().iter().any(|s| s.subnet.addr().is_ipv6());
    let mut added = Vec::new();
    if !has_v4 && !has_v6 {
        added.push(addressing::default_subnet_v4(&network.name));
    }
    if network.ipv6_enabled && !has_v6 {
        added.push(addressing::default_subnet_v6(&network.name));
    }
    if added.is_empty() {
        return Ok(());
    }
    let routes = facts.route_destinations()?;
    for subnet in added {
        if let Some(route) = routes.iter().find(|r| addressing::overlaps(r, &subnet)) {
            bail!(
                "network {:?}: its default subnet {subnet} overlaps the route to {route} on \
                 this host: pass --subnet",
                network.name
            );
        }
        network.subnets.get_or_insert_with(Vec::new).push(Subnet {
            subnet,
            gateway: None,
            lease_range: None,
            extra: Default::default(),
        });
    }
    Ok(())
}

/// Gives each subnet without a `lease_range` this host's slice of it: with option `hosts`, the
/// slot its address picks ([`addressing::slot_slice`], refusing two hosts on one slot); without,
/// its share among this host and its peers, ordered by address ([`addressing::host_slice`]).
fn split_lease_ranges(
    network: &mut Network,
    req: &RequestedOptions,
    facts: &mut dyn HostFacts,
) -> Result<()> {
    if network.subnets().iter().all(|s| s.lease_range.is_some()) {
        return Ok(());
    }
    if !req.ovn.is_empty() {
        return ovn_lease_ranges(network, req, facts);
    }
    if req.peers.is_empty() && req.hosts.is_none() {
        // Alone (so far), and for good: podman allocates from the whole subnet.
        return Ok(());
    }
    let local = facts.local_addresses()?;
    let remote: Vec<IpAddr> = req
        .peers
        .iter()
        .copied()
        .filter(|p| !local.contains(p))
        .collect();
    let listed_me = req
        .peers
        .iter()
        .copied()
        .find(|p| local.contains(p))
        .or(req.local_ip);
    let me = match (listed_me, remote.first()) {
        (Some(me), _) => me,
        (None, Some(&first_remote)) => facts
            .underlay_route(first_remote)?
            .and_then(|r| r.source)
            .with_context(|| {
            format!(
                "cannot tell this host's underlay address towards {first_remote} to pick its \
                     share of the subnet: list this host in peers, or set local_ip, or --ip-range"
            )
        })?,
        (None, None) if req.hosts.is_some() => bail!(
            "option hosts needs this host's underlay address to pick its slice of the subnet: \
             list this host in peers, or set local_ip, or --ip-range"
        ),
        (None, None) => return Ok(()),
    };
    let mut hosts = remote;
    hosts.push(me);
    if let Some(capacity) = req.hosts {
        addressing::check_slots(&hosts, capacity)?;
    }
    cut_lease_ranges(network, req.hosts, &hosts, me)
}

/// An OVN network's lease ranges: no host knows the others, so every host takes the slot its
/// own underlay address picks among `hosts` (default [`OVN_DEFAULT_HOSTS`]) slices. Its
/// address is `local_ip`, else the source of its route towards the first TCP/SSL remote.
fn ovn_lease_ranges(
    network: &mut Network,
    req: &RequestedOptions,
    facts: &mut dyn HostFacts,
) -> Result<()> {
    let me = match req.local_ip {
        Some(ip) => ip,
        None => {
            let server = req.ovn.iter().find_map(|r| match r {
                Remote::Tcp(a) | Remote::Ssl(a) => Some(a.ip()),
                Remote::Unix(_) => None,
            });
            let source = match server {
                Some(server) => facts.underlay_route(server)?.and_then(|r| r.source),
                None => None,
            };
            source.context(
                "cannot tell this host's underlay address to pick its slice of the subnet \
                 (no route towards a tcp:/ssl: OVN remote): set local_ip to this host's \
                 ovn-encap-ip, or --ip-range",
            )?
        }
    };
    let capacity = req.hosts.unwrap_or(OVN_DEFAULT_HOSTS);
    cut_lease_ranges(network, Some(capacity), &[me], me)
}

/// Writes this host's (`me`) slice of every subnet without a lease range: slot `me mod
/// capacity` with a capacity, else its share among `hosts`.
fn cut_lease_ranges(
    network: &mut Network,
    capacity: Option<u32>,
    hosts: &[IpAddr],
    me: IpAddr,
) -> Result<()> {
    for subnet in network.subnets.iter_mut().flatten() {
        if subnet.lease_range.is_some() {
            continue;
        }
        let slice = match capacity {
            Some(capacity) => addressing::slot_slice(subnet.subnet, subnet.gateway, capacity, me)
                .with_context(|| {
                    format!(
                        "cutting subnet {} into hosts={capacity} slices",
                        subnet.subnet
                    )
                }),
            None => addressing::host_slice(subnet.subnet, subnet.gateway, hosts, me).with_context(
                || {
                    format!(
                        "splitting subnet {} among {} hosts",
                        subnet.subnet,
                        hosts.len()
                    )
                },
            ),
        };
        let (start, end) = slice?;
        subnet.lease_range = Some(LeaseRange {
            start_ip: Some(start),
            end_ip: Some(end),
        });
    }
    Ok(())
}

/// Gives every subnet of a non-internal network a gateway (its first address) when it has
/// none, as podman would after `create` returns, so that the gateway is known and saved from
/// the start and is the same address on every host. An OVN network (`ovn`) gets one even when
/// internal: its switch answers names there, and podman's IPAM and the hosts' address slices
/// must leave that address to it.
fn fill_gateways(network: &mut Network, ovn: bool) -> Result<()> {
    if network.internal && !ovn {
        return Ok(());
    }
    for subnet in network.subnets.iter_mut().flatten() {
        if let Some(gateway) = subnet.gateway {
            if !subnet.subnet.contains(&gateway) {
                bail!(
                    "gateway {gateway} (--gateway) is outside subnet {}",
                    subnet.subnet
                );
            }
            continue;
        }
        let first = match subnet.subnet {
            IpNet::V4(net) if net.prefix_len() <= 30 => {
                Some(IpAddr::V4((u32::from(net.network()) + 1).into()))
            }
            IpNet::V6(net) if net.prefix_len() <= 126 => {
                Some(IpAddr::V6((u128::from(net.network()) + 1).into()))
            }
            _ => None,
        };
        let Some(first) = first else {
            bail!(
                "subnet {} (--subnet) has no room for a gateway: use a larger subnet or --internal",
                subnet.subnet
            );
        };
        subnet.gateway = Some(first);
    }
    Ok(())
}

/// The rules on the network itself (not its options) that `create` enforces.
fn check_network(network: &Network) -> Result<()> {
    if network.subnets().is_empty() {
        bail!(
            "network {:?}: geneve-ovs needs --subnet: the same subnet on every host, with a \
             disjoint --ip-range per host",
            network.name
        );
    }
    if let Some(driver) = network.ipam_options.as_ref().and_then(|o| o.get("driver")) {
        if driver != "host-local" && driver != "none" {
            bail!(
                "network {:?}: ipam driver {driver:?} (--ipam-driver) is not supported by \
                 geneve-ovs; use host-local (the default) or none",
                network.name
            );
        }
    }
    Ok(())
}

/// A resolved internal network `net1` (VNI 5001, bridge `gnv5001`, netdev, no peers) for other
/// modules' tests to start from.
#[cfg(test)]
pub(crate) fn sample_config() -> NetworkConfig {
    NetworkConfig {
        name: "net1".into(),
        id: "id1".into(),
        vni: 5001,
        bridge: "gnv5001".into(),
        peers: vec![],
        mtu: 1450,
        datapath: Datapath::Netdev,
        dst_port: DEFAULT_DST_PORT,
        local_ip: None,
        bfd: true,
        dad: Some(DadWindow::Measured),
        port_security: true,
        internal: true,
        hosts: None,
        subnets: vec![IpNet::new_assert(IpAddr::from([192, 168, 120, 0]), 24)],
        gateways: vec![],
        encryption: Encryption::None,
        ovn: vec![],
    }
}

#[cfg(test)]
mod tests;
