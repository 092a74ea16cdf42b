//! Port security: the OpenFlow table of a network's bridge, as typed flow specs rendered to
//! `ovs-ofctl` text. Pure; [`crate::ofctl`] installs what this module renders.
//!
//! The overlay joins every host's containers into one broadcast domain, so one container that
//! lies about who it is (a gratuitous ARP for another's address, a router advertisement, a
//! DHCP offer, the gateway's MAC) lies to every host. Table 0 of each bridge therefore says:
//!
//! * [base flows](base_flows), one set per bridge under [`base_cookie`]: frames from the
//!   network's tunnels (`tun_id` is the VNI: no other port has tunnel metadata) and from the
//!   gateway port are switched normally; everything else is dropped. A container port without
//!   flows of its own is closed, never open.
//! * [port flows](port_flows), one set per container port under its own [`port_cookie`], so
//!   that `setup` and `teardown` replace or delete exactly theirs and concurrent runs never
//!   overwrite each other: the container may send from its own MAC only, ARP and IP only from
//!   its own addresses (IPv6 also from the link-local address the kernel derives from the MAC,
//!   EUI-64), neighbour discovery only about its own addresses, and the unspecified source only
//!   for what a client needs before it has an address (ARP probes, DAD neighbour
//!   solicitations, MLD reports, router solicitations, DHCP discovery). Router advertisements,
//!   redirects, DHCP(v4/v6) server and relay messages, frames to BFD's MAC, VLAN-tagged frames
//!   and every other ethertype are dropped.
//!
//! The bridges are `fail_mode=secure`, so when ovs-vswitchd restarts (and loses the table) it
//! drops everything until the table is back, instead of switching unprotected.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sha2::{Digest, Sha256};

use crate::naming;

/// The destination MAC of BFD control packets inside the tunnels (OVS's own default, set
/// explicitly on both ends, see [`crate::ovs::plan::bfd_config`]). A container may not send
/// to it: the peer's tunnel would take the frame for BFD.
pub const BFD_DST_MAC: [u8; 6] = [0x00, 0x23, 0x20, 0x00, 0x00, 0x01];

/// The OpenFlow port number of every gateway port (`Interface.ofport_request`), so that the
/// base flows name it without asking ovs-vswitchd, and are the same whether the gateway exists
/// yet or not: concurrent `setup`s and `teardown`s all install identical base flows. The
/// highest number OpenFlow allows for a physical port: OVS hands out numbers from 1 upwards,
/// so a container port never gets it.
pub const GATEWAY_OFPORT: u16 = 65279;

/// Priorities of table 0, highest first. Base flows and port flows never overlap (port flows
/// all match their own `in_port`), so only the order inside each set matters.
mod priority {
    /// What a container may never send, even from its own addresses.
    pub const FORBIDDEN: u16 = 300;
    /// Neighbour discovery about the container's own addresses.
    pub const OWN_NEIGHBOUR: u16 = 260;
    /// Every other neighbour solicitation or advertisement.
    pub const OTHER_NEIGHBOUR: u16 = 250;
    /// ARP and IP from the container's own addresses.
    pub const OWN_TRAFFIC: u16 = 200;
    /// Whatever else the port sends: dropped (switched with port security off).
    pub const PORT_DEFAULT: u16 = 100;
    /// Frames from the tunnels and the gateway port.
    pub const TRUSTED: u16 = 100;
    /// Everything else on the bridge.
    pub const BRIDGE_DEFAULT: u16 = 0;
}

/// What a flow does with the frames it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// OVS's ordinary MAC-learning switch (with `protected` ports honoured).
    Normal,
    Drop,
}

/// The protocol a flow matches on (OVS's shorthand for `dl_type` and `nw_proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Arp,
    Ip,
    Ipv6,
    Udp,
    Udp6,
    Icmp,
    Icmp6,
}

impl Proto {
    fn as_str(self) -> &'static str {
        match self {
            Proto::Arp => "arp",
            Proto::Ip => "ip",
            Proto::Ipv6 => "ipv6",
            Proto::Udp => "udp",
            Proto::Udp6 => "udp6",
            Proto::Icmp => "icmp",
            Proto::Icmp6 => "icmp6",
        }
    }
}

/// One match field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Proto(Proto),
    /// An OVS port, by name (ovs-ofctl resolves it against the running switch).
    InPort(String),
    /// The tunnel key frames arrived with.
    TunId(u32),
    /// No 802.1Q/802.1ad tag at all (`vlan_tci=0`: tag present bit clear, VID 0).
    Untagged,
    DlSrc([u8; 6]),
    DlDst([u8; 6]),
    ArpOp(u16),
    ArpSpa(Ipv4Addr),
    ArpSha([u8; 6]),
    NwSrc(Ipv4Addr),
    Ipv6Src(Ipv6Addr),
    TpSrc(u16),
    TpDst(u16),
    IcmpType(u8),
    Icmpv6Type(u8),
    Icmpv6Code(u8),
    NdTarget(Ipv6Addr),
    /// Source link-layer address option of a neighbour solicitation (all zero: absent).
    NdSll([u8; 6]),
    /// Target link-layer address option of a neighbour advertisement (all zero: absent).
    NdTll([u8; 6]),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mac = naming::format_mac;
        match self {
            Field::Proto(p) => f.write_str(p.as_str()),
            Field::InPort(name) => write!(f, "in_port={name}"),
            Field::TunId(id) => write!(f, "tun_id={id}"),
            Field::Untagged => f.write_str("vlan_tci=0"),
            Field::DlSrc(m) => write!(f, "dl_src={}", mac(m)),
            Field::DlDst(m) => write!(f, "dl_dst={}", mac(m)),
            Field::ArpOp(op) => write!(f, "arp_op={op}"),
            Field::ArpSpa(ip) => write!(f, "arp_spa={ip}"),
            Field::ArpSha(m) => write!(f, "arp_sha={}", mac(m)),
            Field::NwSrc(ip) => write!(f, "nw_src={ip}"),
            Field::Ipv6Src(ip) => write!(f, "ipv6_src={ip}"),
            Field::TpSrc(port) => write!(f, "tp_src={port}"),
            Field::TpDst(port) => write!(f, "tp_dst={port}"),
            Field::IcmpType(t) => write!(f, "icmp_type={t}"),
            Field::Icmpv6Type(t) => write!(f, "icmpv6_type={t}"),
            Field::Icmpv6Code(c) => write!(f, "icmpv6_code={c}"),
            Field::NdTarget(ip) => write!(f, "nd_target={ip}"),
            Field::NdSll(m) => write!(f, "nd_sll={}", mac(m)),
            Field::NdTll(m) => write!(f, "nd_tll={}", mac(m)),
        }
    }
}

/// One OpenFlow flow of table 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub cookie: u64,
    pub priority: u16,
    pub fields: Vec<Field>,
    pub action: Action,
}

impl fmt::Display for Flow {
    /// The flow in `ovs-ofctl add-flow` syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cookie={:#x},priority={}", self.cookie, self.priority)?;
        for field in &self.fields {
            write!(f, ",{field}")?;
        }
        let action = match self.action {
            Action::Normal => "NORMAL",
            Action::Drop => "drop",
        };
        write!(f, ",actions={action}")
    }
}

/// The cookie of a bridge's base flows: a tag in the high bits and the VNI, so that it is
/// readable in `ovs-ofctl dump-flows` and never equal to a [`port_cookie`] (whose top bit is
/// set).
pub fn base_cookie(vni: u32) -> u64 {
    0x6776_0000_0000_0000 | u64::from(vni)
}

/// The cookie of one container port's flows: the top bit set and 63 bits of
/// SHA-256(port name). Port names are unique per host, so `teardown` and a later `setup`
/// find exactly these flows again from the name alone.
pub fn port_cookie(port: &str) -> u64 {
    let digest = Sha256::digest(format!("geneve-ovs port flows\0{port}").as_bytes());
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(word) | (1 << 63)
}

/// The base flows of a network's bridge: tunnels and the gateway port (whenever it exists, at
/// [`GATEWAY_OFPORT`]) are switched; everything else is dropped. A function of the VNI alone.
pub fn base_flows(vni: u32) -> Vec<Flow> {
    let cookie = base_cookie(vni);
    vec![
        Flow {
            cookie,
            priority: priority::BRIDGE_DEFAULT,
            fields: vec![],
            action: Action::Drop,
        },
        Flow {
            cookie,
            priority: priority::TRUSTED,
            fields: vec![Field::TunId(vni)],
            action: Action::Normal,
        },
        Flow {
            cookie,
            priority: priority::TRUSTED,
            fields: vec![Field::InPort(GATEWAY_OFPORT.to_string())],
            action: Action::Normal,
        },
    ]
}

/// Who a container port's container is: what its flows allow it to send as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortIdentity {
    /// The OVS port (the host end of the veth).
    pub port: String,
    /// The MAC of the container's interface.
    pub mac: [u8; 6],
    /// The container's addresses on the network.
    pub addresses: Vec<IpAddr>,
    /// The network's gateway MAC, never a valid source.
    pub gateway_mac: [u8; 6],
}

/// The IPv6 link-local address the kernel gives an interface with this MAC by default
/// (`addr_gen_mode` 0, EUI-64, RFC 4291 appendix A): fe80::/64 with the MAC split by ff:fe and
/// the universal/local bit flipped.
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let eui = [
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    let mut octets = [0u8; 16];
    octets[0] = 0xfe;
    octets[1] = 0x80;
    octets[8..].copy_from_slice(&eui);
    Ipv6Addr::from(octets)
}

/// The flows of one container port. With `enforce` off (`port_security=false`), one flow that
/// switches whatever the port sends.
pub fn port_flows(identity: &PortIdentity, enforce: bool) -> Vec<Flow> {
    let cookie = port_cookie(&identity.port);
    let in_port = Field::InPort(identity.port.clone());
    let flow = |priority: u16, fields: Vec<Field>, action: Action| {
        let mut all = vec![in_port.clone()];
        all.extend(fields);
        Flow {
            cookie,
            priority,
            fields: all,
            action,
        }
    };
    if !enforce {
        return vec![flow(priority::PORT_DEFAULT, vec![], Action::Normal)];
    }

    let mac = identity.mac;
    let zero_mac = [0u8; 6];
    let v4: Vec<Ipv4Addr> = identity
        .addresses
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    let mut v6: Vec<Ipv6Addr> = vec![link_local(mac)];
    v6.extend(identity.addresses.iter().filter_map(|ip| match ip {
        IpAddr::V6(v6) => Some(*v6),
        IpAddr::V4(_) => None,
    }));
    v6.dedup();

    // Allowed frames are untagged and come from the container's own MAC.
    let own = |proto: Proto, more: Vec<Field>| {
        let mut fields = vec![Field::Proto(proto), Field::Untagged, Field::DlSrc(mac)];
        fields.extend(more);
        fields
    };
    let mut flows = vec![
        flow(
            priority::FORBIDDEN,
            vec![Field::DlDst(BFD_DST_MAC)],
            Action::Drop,
        ),
        flow(
            priority::FORBIDDEN,
            vec![Field::DlSrc(identity.gateway_mac)],
            Action::Drop,
        ),
        // DHCP server and relay messages (from port 67), DHCPv6 ones (from port 547).
        flow(
            priority::FORBIDDEN,
            vec![Field::Proto(Proto::Udp), Field::TpSrc(67)],
            Action::Drop,
        ),
        flow(
            priority::FORBIDDEN,
            vec![Field::Proto(Proto::Udp6), Field::TpSrc(547)],
            Action::Drop,
        ),
        // ICMP redirect, router advertisement, ICMPv6 redirect.
        flow(
            priority::FORBIDDEN,
            vec![Field::Proto(Proto::Icmp), Field::IcmpType(5)],
            Action::Drop,
        ),
        flow(
            priority::FORBIDDEN,
            vec![Field::Proto(Proto::Icmp6), Field::Icmpv6Type(134)],
            Action::Drop,
        ),
        flow(
            priority::FORBIDDEN,
            vec![Field::Proto(Proto::Icmp6), Field::Icmpv6Type(137)],
            Action::Drop,
        ),
    ];

    // Neighbour discovery: solicitations from an own address (any target, the link-layer
    // option, if any, the own MAC), DAD solicitations from :: for an own address, and
    // advertisements only for an own address.
    for &source in &v6 {
        for sll in [mac, zero_mac] {
            flows.push(flow(
                priority::OWN_NEIGHBOUR,
                own(
                    Proto::Icmp6,
                    vec![
                        Field::Ipv6Src(source),
                        Field::Icmpv6Type(135),
                        Field::Icmpv6Code(0),
                        Field::NdSll(sll),
                    ],
                ),
                Action::Normal,
            ));
        }
        for &target in &v6 {
            for tll in [mac, zero_mac] {
                flows.push(flow(
                    priority::OWN_NEIGHBOUR,
                    own(
                        Proto::Icmp6,
                        vec![
                            Field::Ipv6Src(source),
                            Field::Icmpv6Type(136),
                            Field::Icmpv6Code(0),
                            Field::NdTarget(target),
                            Field::NdTll(tll),
                        ],
                    ),
                    Action::Normal,
                ));
            }
        }
    }
    for &target in &v6 {
        flows.push(flow(
            priority::OWN_NEIGHBOUR,
            own(
                Proto::Icmp6,
                vec![
                    Field::Ipv6Src(Ipv6Addr::UNSPECIFIED),
                    Field::Icmpv6Type(135),
                    Field::Icmpv6Code(0),
                    Field::NdTarget(target),
                    Field::NdSll(zero_mac),
                ],
            ),
            Action::Normal,
        ));
    }
    // Before it has an address: router solicitations and MLD reports (v1 131, v2 143).
    for kind in [133, 131, 143] {
        flows.push(flow(
            priority::OWN_NEIGHBOUR,
            own(
                Proto::Icmp6,
                vec![
                    Field::Ipv6Src(Ipv6Addr::UNSPECIFIED),
                    Field::Icmpv6Type(kind),
                ],
            ),
            Action::Normal,
        ));
    }
    for kind in [135, 136] {
        flows.push(flow(
            priority::OTHER_NEIGHBOUR,
            vec![Field::Proto(Proto::Icmp6), Field::Icmpv6Type(kind)],
            Action::Drop,
        ));
    }

    // ARP and IP from the own addresses; the ARP probe (RFC 5227) and the DHCP client before
    // it has one.
    for &address in &v4 {
        flows.push(flow(
            priority::OWN_TRAFFIC,
            own(Proto::Arp, vec![Field::ArpSpa(address), Field::ArpSha(mac)]),
            Action::Normal,
        ));
        flows.push(flow(
            priority::OWN_TRAFFIC,
            own(Proto::Ip, vec![Field::NwSrc(address)]),
            Action::Normal,
        ));
    }
    flows.push(flow(
        priority::OWN_TRAFFIC,
        own(
            Proto::Arp,
            vec![
                Field::ArpOp(1),
                Field::ArpSpa(Ipv4Addr::UNSPECIFIED),
                Field::ArpSha(mac),
            ],
        ),
        Action::Normal,
    ));
    flows.push(flow(
        priority::OWN_TRAFFIC,
        own(
            Proto::Udp,
            vec![
                Field::NwSrc(Ipv4Addr::UNSPECIFIED),
                Field::TpSrc(68),
                Field::TpDst(67),
            ],
        ),
        Action::Normal,
    ));
    for &address in &v6 {
        flows.push(flow(
            priority::OWN_TRAFFIC,
            own(Proto::Ipv6, vec![Field::Ipv6Src(address)]),
            Action::Normal,
        ));
    }
    flows.push(flow(priority::PORT_DEFAULT, vec![], Action::Drop));
    flows
}

/// One change to a bridge's table. A list of them is applied as one atomic bundle, in order,
/// by [`crate::openflow`] (in-process) or [`crate::ofctl`] (as `ovs-ofctl add-flows` lines,
/// which is what [`fmt::Display`] renders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowChange {
    /// Deletes every flow of every table whose cookie is exactly this one.
    DeleteCookie(u64),
    Add(Flow),
}

impl fmt::Display for FlowChange {
    /// The change as an `ovs-ofctl add-flows` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowChange::DeleteCookie(cookie) => write!(f, "delete cookie={cookie:#x}/-1"),
            FlowChange::Add(flow) => write!(f, "add {flow}"),
        }
    }
}

/// The changes that replace every flow under `cookie` by `flows`: in one bundle, the port is
/// never half-configured.
pub fn replace_cookie(cookie: u64, flows: &[Flow]) -> Vec<FlowChange> {
    let mut changes = vec![FlowChange::DeleteCookie(cookie)];
    changes.extend(flows.iter().cloned().map(FlowChange::Add));
    changes
}

/// The flows as one `ovs-ofctl` flow file (one flow a line).
pub fn flow_file(flows: &[Flow]) -> String {
    let mut text = String::new();
    for flow in flows {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{flow}");
    }
    text
}

/// Why a static MAC (`podman run --network net:mac=...`) cannot be a container's, if it
/// cannot: a multicast or all-zero address is no station's, and the gateway's would let the
/// container answer for the gateway.
pub fn static_mac_refusal(mac: [u8; 6], gateway_mac: Option<[u8; 6]>) -> Option<&'static str> {
    if mac == [0; 6] {
        Some("the all-zero address is no interface's")
    } else if mac[0] & 1 == 1 {
        Some("it is a multicast (or broadcast) address")
    } else if Some(mac) == gateway_mac {
        Some("it is the network's gateway MAC")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    const GW: [u8; 6] = [0x02, 0x67, 0x77, 0x00, 0x13, 0x89];

    fn identity(addresses: &[&str]) -> PortIdentity {
        PortIdentity {
            port: "gv0123456789abc".into(),
            mac: MAC,
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            gateway_mac: GW,
        }
    }

    fn rendered(flows: &[Flow]) -> Vec<String> {
        flows.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn link_local_is_eui64_of_the_mac() {
        assert_eq!(
            link_local(MAC),
            "fe80::11:22ff:fe33:4455".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            link_local([0x1a, 0x1f, 0x43, 0x95, 0xcf, 0xa6]),
            "fe80::181f:43ff:fe95:cfa6".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn base_flows_trust_tunnels_and_gateway_and_drop_the_rest() {
        let flows = rendered(&base_flows(5001));
        assert_eq!(
            flows,
            vec![
                "cookie=0x6776000000001389,priority=0,actions=drop",
                "cookie=0x6776000000001389,priority=100,tun_id=5001,actions=NORMAL",
                "cookie=0x6776000000001389,priority=100,in_port=65279,actions=NORMAL",
            ]
        );
    }

    #[test]
    fn cookies_are_per_port_and_apart_from_base() {
        let a = port_cookie("gv0123456789abc");
        assert_eq!(a, port_cookie("gv0123456789abc"));
        assert_ne!(a, port_cookie("gv0123456789abd"));
        assert_eq!(a >> 63, 1);
        assert_eq!(base_cookie(16_777_215) >> 63, 0);
    }

    #[test]
    fn port_security_off_is_one_open_flow() {
        let flows = port_flows(&identity(&["192.168.120.5"]), false);
        assert_eq!(
            rendered(&flows),
            vec![format!(
                "cookie={:#x},priority=100,in_port=gv0123456789abc,actions=NORMAL",
                port_cookie("gv0123456789abc")
            )]
        );
    }

    #[test]
    fn own_addresses_are_allowed_others_are_not() {
        let flows = rendered(&port_flows(
            &identity(&["192.168.120.5", "fd12:3456::5"]),
            true,
        ));
        let has = |needle: &str| flows.iter().any(|f| f.contains(needle));
        // Every allow is untagged and from the own MAC; the port ends in a drop.
        for f in flows.iter().filter(|f| f.ends_with("NORMAL")) {
            assert!(
                f.contains(",vlan_tci=0,dl_src=02:11:22:33:44:55"),
                "allow without MAC/VLAN check: {f}"
            );
        }
        assert!(flows
            .last()
            .unwrap()
            .ends_with("priority=100,in_port=gv0123456789abc,actions=drop"));
        assert!(has("arp,vlan_tci=0,dl_src=02:11:22:33:44:55,arp_spa=192.168.120.5,arp_sha=02:11:22:33:44:55,actions=NORMAL"));
        assert!(has(
            "ip,vlan_tci=0,dl_src=02:11:22:33:44:55,nw_src=192.168.120.5,actions=NORMAL"
        ));
        assert!(has(
            "ipv6,vlan_tci=0,dl_src=02:11:22:33:44:55,ipv6_src=fd12:3456::5,actions=NORMAL"
        ));
        assert!(has("ipv6,vlan_tci=0,dl_src=02:11:22:33:44:55,ipv6_src=fe80::11:22ff:fe33:4455,actions=NORMAL"));
        // Advertisements only for an own target; DAD only for an own target.
        assert!(has("icmpv6_type=136,icmpv6_code=0,nd_target=fd12:3456::5,nd_tll=02:11:22:33:44:55,actions=NORMAL"));
        assert!(has("ipv6_src=::,icmpv6_type=135,icmpv6_code=0,nd_target=fd12:3456::5,nd_sll=00:00:00:00:00:00,actions=NORMAL"));
        assert!(has(
            "priority=250,in_port=gv0123456789abc,icmp6,icmpv6_type=136,actions=drop"
        ));
        // The forbidden ones come first.
        for forbidden in [
            "dl_dst=00:23:20:00:00:01,actions=drop",
            "dl_src=02:67:77:00:13:89,actions=drop",
            "udp,tp_src=67,actions=drop",
            "udp6,tp_src=547,actions=drop",
            "icmp6,icmpv6_type=134,actions=drop",
            "icmp6,icmpv6_type=137,actions=drop",
            "icmp,icmp_type=5,actions=drop",
        ] {
            assert!(
                has(&format!("priority=300,in_port=gv0123456789abc,{forbidden}")),
                "{forbidden} missing"
            );
        }
        // No other address shows up anywhere.
        assert!(!has("192.168.120.6") && !has("fd12:3456::6"));
        // No allow for an arbitrary source: every NORMAL names a source address or ::/0.0.0.0.
        for f in flows.iter().filter(|f| f.ends_with("NORMAL")) {
            assert!(
                f.contains("nw_src=") || f.contains("ipv6_src=") || f.contains("arp_spa="),
                "allow without source check: {f}"
            );
        }
    }

    #[test]
    fn ipv4_only_ports_still_get_their_link_local() {
        let flows = rendered(&port_flows(&identity(&["192.168.120.5"]), true));
        assert!(flows.iter().any(|f| f.contains(
            "ipv6,vlan_tci=0,dl_src=02:11:22:33:44:55,ipv6_src=fe80::11:22ff:fe33:4455"
        )));
        assert!(!flows.iter().any(|f| f.contains("fd12")));
    }

    #[test]
    fn replace_is_delete_then_add_under_one_cookie() {
        let flows = base_flows(7);
        let changes = replace_cookie(base_cookie(7), &flows);
        assert_eq!(changes[0], FlowChange::DeleteCookie(0x6776_0000_0000_0007));
        assert_eq!(
            changes[0].to_string(),
            "delete cookie=0x6776000000000007/-1"
        );
        assert_eq!(changes[1], FlowChange::Add(flows[0].clone()));
        assert_eq!(changes[1].to_string(), format!("add {}", flows[0]));
        assert_eq!(changes.len(), 4);
        assert_eq!(flow_file(&flows).lines().count(), 3);
    }

    #[test]
    fn static_macs_that_no_container_may_have() {
        assert!(static_mac_refusal([0; 6], Some(GW))
            .unwrap()
            .contains("all-zero"));
        assert!(static_mac_refusal([0x01, 0, 0x5e, 0, 0, 1], Some(GW))
            .unwrap()
            .contains("multicast"));
        assert!(static_mac_refusal([0xff; 6], None)
            .unwrap()
            .contains("multicast"));
        assert!(static_mac_refusal(GW, Some(GW))
            .unwrap()
            .contains("gateway"));
        assert_eq!(static_mac_refusal(MAC, Some(GW)), None);
        assert_eq!(static_mac_refusal(GW, None), None);
    }
}
