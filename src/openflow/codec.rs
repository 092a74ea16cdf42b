//! The OpenFlow 1.4 messages the plugin exchanges with a bridge, as bytes: pure encoding and
//! decoding, no I/O ([`super::client`] does the talking).
//!
//! Only what port security needs: HELLO (with a version bitmap that offers 1.4 alone, bundles
//! are 1.4's), FLOW_MOD (add one [`Flow`] to table 0, or delete a cookie from every table),
//! BUNDLE_CONTROL and BUNDLE_ADD_MESSAGE (atomic and ordered, so a port's flows are replaced
//! whole or not at all), the PORT_DESC multipart request (OpenFlow port numbers by name),
//! ECHO replies and ERROR messages. Matches are OXM (`OFPXMC_OPENFLOW_BASIC`); fields are
//! written in ascending field number, which puts every prerequisite (`eth_type` before IP
//! fields, `ip_proto` before ports and ICMP, the ICMPv6 type before ND fields) before the
//! fields that need it, and the prerequisites themselves are checked here, so a flow the
//! switch would refuse for a missing one is refused before anything is sent.

use std::fmt;

use anyhow::{bail, ensure, Result};

use crate::flows::{Action, Field, Flow, FlowChange, Proto};

/// OpenFlow 1.4's `ofp_header.version`.
pub const VERSION: u8 = 0x05;

/// Length of `ofp_header`.
pub const HEADER_LEN: usize = 8;

/// `ofp_type` values used here.
pub mod kind {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const FLOW_MOD: u8 = 14;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BUNDLE_CONTROL: u8 = 33;
    pub const BUNDLE_ADD_MESSAGE: u8 = 34;
}

/// `ofp_bundle_ctrl_type` values.
pub mod bundle {
    pub const OPEN_REQUEST: u16 = 0;
    pub const OPEN_REPLY: u16 = 1;
    pub const COMMIT_REQUEST: u16 = 4;
    pub const COMMIT_REPLY: u16 = 5;
    /// `OFPBF_ATOMIC | OFPBF_ORDERED`: all or nothing, in the order given (a delete before
    /// the adds that replace what it deleted).
    pub const FLAGS: u16 = 0x0001 | 0x0002;
}

/// `OFPMP_PORT_DESC`.
const MULTIPART_PORT_DESC: u16 = 13;
/// `OFPMPF_REPLY_MORE`: more replies of the same request follow.
const MULTIPART_REPLY_MORE: u16 = 0x0001;

/// `OFPFC_ADD` and `OFPFC_DELETE`.
const FLOW_MOD_ADD: u8 = 0;
const FLOW_MOD_DELETE: u8 = 3;
/// `OFPTT_ALL`: every table (a cookie's flows are deleted wherever they are).
const TABLE_ALL: u8 = 0xff;
/// `OFP_NO_BUFFER`, `OFPP_ANY`, `OFPG_ANY`: no buffered packet, no out-port or group filter.
const NO_BUFFER: u32 = 0xffff_ffff;
const PORT_ANY: u32 = 0xffff_ffff;
const GROUP_ANY: u32 = 0xffff_ffff;
/// `OFPP_NORMAL`: the switch's ordinary L2 processing.
const PORT_NORMAL: u32 = 0xffff_fffa;
/// `OFPIT_APPLY_ACTIONS`, `OFPAT_OUTPUT`.
const INSTRUCTION_APPLY_ACTIONS: u16 = 4;
const ACTION_OUTPUT: u16 = 0;
/// `OFPMT_OXM`.
const MATCH_OXM: u16 = 1;
/// `OFPHET_VERSIONBITMAP`.
const HELLO_VERSION_BITMAP: u16 = 1;

/// `OFPXMC_OPENFLOW_BASIC` field numbers (`oxm_ofb_match_fields`).
mod oxm {
    pub const IN_PORT: u8 = 0;
    pub const ETH_DST: u8 = 3;
    pub const ETH_SRC: u8 = 4;
    pub const ETH_TYPE: u8 = 5;
    pub const VLAN_VID: u8 = 6;
    pub const IP_PROTO: u8 = 10;
    pub const IPV4_SRC: u8 = 11;
    pub const UDP_SRC: u8 = 15;
    pub const UDP_DST: u8 = 16;
    pub const ICMPV4_TYPE: u8 = 19;
    pub const ARP_OP: u8 = 21;
    pub const ARP_SPA: u8 = 22;
    pub const ARP_SHA: u8 = 24;
    pub const IPV6_SRC: u8 = 26;
    pub const ICMPV6_TYPE: u8 = 29;
    pub const ICMPV6_CODE: u8 = 30;
    pub const IPV6_ND_TARGET: u8 = 31;
    pub const IPV6_ND_SLL: u8 = 32;
    pub const IPV6_ND_TLL: u8 = 33;
    pub const TUNNEL_ID: u8 = 38;
}

const ETH_TYPE_IPV4: u16 = 0x0800;
const ETH_TYPE_ARP: u16 = 0x0806;
const ETH_TYPE_IPV6: u16 = 0x86dd;
const IP_PROTO_ICMP: u8 = 1;
const IP_PROTO_UDP: u8 = 17;
const IP_PROTO_ICMPV6: u8 = 58;
const ND_SOLICITATION: u8 = 135;
const ND_ADVERTISEMENT: u8 = 136;

/// A decoded `ofp_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub kind: u8,
    /// The whole message's length, header included.
    pub length: u16,
    pub xid: u32,
}

impl Header {
    /// Reads the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        ensure!(
            bytes.len() >= HEADER_LEN,
            "an OpenFlow message of {} bytes is shorter than its header",
            bytes.len()
        );
        let header = Header {
            version: bytes[0],
            kind: bytes[1],
            length: be16(bytes, 2),
            xid: be32(bytes, 4),
        };
        ensure!(
            usize::from(header.length) >= HEADER_LEN,
            "an OpenFlow header announces {} bytes, less than itself",
            header.length
        );
        Ok(header)
    }
}

/// Starts a message: the header with its length still zero ([`finish`] sets it).
fn start(kind: u8, xid: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&xid.to_be_bytes());
    out
}

/// Writes the message's length into its header.
fn finish(mut message: Vec<u8>) -> Result<Vec<u8>> {
    let Ok(length) = u16::try_from(message.len()) else {
        bail!(
            "an OpenFlow message of {} bytes exceeds the protocol's 65535",
            message.len()
        );
    };
    message[2..4].copy_from_slice(&length.to_be_bytes());
    Ok(message)
}

/// HELLO offering OpenFlow 1.4 alone (a version bitmap with bit 5 set): the version the
/// switch answers with is then 1.4 or a failure, never a silent downgrade.
pub fn hello(xid: u32) -> Vec<u8> {
    let mut out = start(kind::HELLO, xid);
    out.extend_from_slice(&HELLO_VERSION_BITMAP.to_be_bytes());
    out.extend_from_slice(&8u16.to_be_bytes());
    out.extend_from_slice(&(1u32 << VERSION).to_be_bytes());
    out[2..4].copy_from_slice(&16u16.to_be_bytes());
    out
}

/// Whether the switch's HELLO (`message`, header included) accepts OpenFlow 1.4: its version
/// bitmap has bit 5, or, without a bitmap, its header's version is 1.4 or later.
pub fn hello_accepts_1_4(message: &[u8]) -> Result<bool> {
    let header = Header::parse(message)?;
    let end = usize::from(header.length).min(message.len());
    let mut at = HEADER_LEN;
    while at + 4 <= end {
        let element = be16(message, at);
        let length = usize::from(be16(message, at + 2));
        ensure!(
            length >= 4 && at + length <= end,
            "the switch's HELLO has an element of bad length {length}"
        );
        if element == HELLO_VERSION_BITMAP && length >= 8 {
            return Ok(be32(message, at + 4) & (1 << VERSION) != 0);
        }
        // Elements are padded to 8 bytes.
        at += length.div_ceil(8) * 8;
    }
    Ok(header.version >= VERSION)
}

/// ECHO_REPLY to an ECHO_REQUEST (`request`, header included): same xid, same data.
pub fn echo_reply(request: &[u8]) -> Result<Vec<u8>> {
    let header = Header::parse(request)?;
    let mut out = start(kind::ECHO_REPLY, header.xid);
    out.extend_from_slice(&request[HEADER_LEN..usize::from(header.length).min(request.len())]);
    finish(out)
}

/// BUNDLE_CONTROL of `control` type (open or commit) for bundle `id`.
pub fn bundle_control(xid: u32, id: u32, control: u16) -> Vec<u8> {
    let mut out = start(kind::BUNDLE_CONTROL, xid);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&control.to_be_bytes());
    out.extend_from_slice(&bundle::FLAGS.to_be_bytes());
    out[2..4].copy_from_slice(&16u16.to_be_bytes());
    out
}

/// A decoded BUNDLE_CONTROL (a reply to ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleControl {
    pub id: u32,
    pub control: u16,
}

/// Reads a BUNDLE_CONTROL message (header included).
pub fn parse_bundle_control(message: &[u8]) -> Result<BundleControl> {
    ensure!(
        message.len() >= 16,
        "a BUNDLE_CONTROL of {} bytes is shorter than 16",
        message.len()
    );
    Ok(BundleControl {
        id: be32(message, 8),
        control: be16(message, 12),
    })
}

/// BUNDLE_ADD_MESSAGE putting `inner` (a whole message, header included) into bundle `id`.
/// The outer xid is the inner one: the switch reports a failing inner message with it.
pub fn bundle_add(id: u32, inner: &[u8]) -> Result<Vec<u8>> {
    let header = Header::parse(inner)?;
    let mut out = start(kind::BUNDLE_ADD_MESSAGE, header.xid);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&bundle::FLAGS.to_be_bytes());
    out.extend_from_slice(inner);
    finish(out)
}

/// FLOW_MOD for one change: [`FlowChange::Add`] adds the flow to table 0;
/// [`FlowChange::DeleteCookie`] deletes every flow of every table with exactly that cookie.
/// `port_number` gives the OpenFlow number of a port named in `in_port` (a name that is a
/// number is that number).
pub fn flow_mod(
    xid: u32,
    change: &FlowChange,
    port_number: &dyn Fn(&str) -> Option<u32>,
) -> Result<Vec<u8>> {
    let mut out = start(kind::FLOW_MOD, xid);
    let (cookie, cookie_mask, table, command, priority) = match change {
        FlowChange::DeleteCookie(cookie) => (*cookie, u64::MAX, TABLE_ALL, FLOW_MOD_DELETE, 0),
        FlowChange::Add(flow) => (flow.cookie, 0, 0, FLOW_MOD_ADD, flow.priority),
    };
    out.extend_from_slice(&cookie.to_be_bytes());
    out.extend_from_slice(&cookie_mask.to_be_bytes());
    out.push(table);
    out.push(command);
    out.extend_from_slice(&0u16.to_be_bytes()); // idle_timeout: never
    out.extend_from_slice(&0u16.to_be_bytes()); // hard_timeout: never
    out.extend_from_slice(&priority.to_be_bytes());
    out.extend_from_slice(&NO_BUFFER.to_be_bytes());
    out.extend_from_slice(&PORT_ANY.to_be_bytes());
    out.extend_from_slice(&GROUP_ANY.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes()); // flags
    out.extend_from_slice(&0u16.to_be_bytes()); // importance
    match change {
        FlowChange::DeleteCookie(_) => put_match(&mut out, &[]),
        FlowChange::Add(flow) => {
            let fields = MatchFields::of(flow, port_number)?;
            put_match(&mut out, &fields.oxm());
            if flow.action == Action::Normal {
                put_output_normal(&mut out);
            }
        }
    }
    finish(out)
}

/// `ofp_match` of OXM type holding `oxm`, padded to 8 bytes (padding not counted).
fn put_match(out: &mut Vec<u8>, oxm: &[u8]) {
    out.extend_from_slice(&MATCH_OXM.to_be_bytes());
    // At most 20 fields of at most 20 bytes: far below u16.
    out.extend_from_slice(&((4 + oxm.len()) as u16).to_be_bytes());
    out.extend_from_slice(oxm);
    let padding = (8 - (4 + oxm.len()) % 8) % 8;
    out.extend(std::iter::repeat_n(0, padding));
}

/// APPLY_ACTIONS with one OUTPUT to `OFPP_NORMAL` (a drop flow has no instructions at all).
fn put_output_normal(out: &mut Vec<u8>) {
    out.extend_from_slice(&INSTRUCTION_APPLY_ACTIONS.to_be_bytes());
    out.extend_from_slice(&24u16.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&ACTION_OUTPUT.to_be_bytes());
    out.extend_from_slice(&16u16.to_be_bytes());
    out.extend_from_slice(&PORT_NORMAL.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes()); // max_len: only for the controller
    out.extend_from_slice(&[0; 6]);
}

/// The values a flow matches on, one slot per OXM field, from its [`Field`]s.
#[derive(Debug, Default)]
struct MatchFields {
    in_port: Option<u32>,
    eth_dst: Option<[u8; 6]>,
    eth_src: Option<[u8; 6]>,
    eth_type: Option<u16>,
    /// `vlan_vid` 0 without `OFPVID_PRESENT`: no tag. OVS stores it as `vlan_tci=0` with the
    /// VID and CFI bits matched; the PCP needs a tag, so it is not matched.
    untagged: bool,
    ip_proto: Option<u8>,
    ipv4_src: Option<[u8; 4]>,
    udp_src: Option<u16>,
    udp_dst: Option<u16>,
    icmpv4_type: Option<u8>,
    arp_op: Option<u16>,
    arp_spa: Option<[u8; 4]>,
    arp_sha: Option<[u8; 6]>,
    ipv6_src: Option<[u8; 16]>,
    icmpv6_type: Option<u8>,
    icmpv6_code: Option<u8>,
    nd_target: Option<[u8; 16]>,
    nd_sll: Option<[u8; 6]>,
    nd_tll: Option<[u8; 6]>,
    tunnel_id: Option<u64>,
}

/// Sets a slot once; a second value for the same field is a contradiction in the flow.
fn set<T: PartialEq + fmt::Debug>(slot: &mut Option<T>, value: T, flow: &Flow) -> Result<()> {
    match slot {
        Some(old) if *old != value => {
            bail!("flow `{flow}` matches one field on both {old:?} and {value:?}")
        }
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

impl MatchFields {
    fn of(flow: &Flow, port_number: &dyn Fn(&str) -> Option<u32>) -> Result<MatchFields> {
        let mut m = MatchFields::default();
        for field in &flow.fields {
            match field {
                Field::Proto(proto) => {
                    let (eth_type, ip_proto) = match proto {
                        Proto::Arp => (ETH_TYPE_ARP, None),
                        Proto::Ip => (ETH_TYPE_IPV4, None),
                        Proto::Ipv6 => (ETH_TYPE_IPV6, None),
                        Proto::Udp => (ETH_TYPE_IPV4, Some(IP_PROTO_UDP)),
                        Proto::Udp6 => (ETH_TYPE_IPV6, Some(IP_PROTO_UDP)),
                        Proto::Icmp => (ETH_TYPE_IPV4, Some(IP_PROTO_ICMP)),
                        Proto::Icmp6 => (ETH_TYPE_IPV6, Some(IP_PROTO_ICMPV6)),
                    };
                    set(&mut m.eth_type, eth_type, flow)?;
                    if let Some(ip_proto) = ip_proto {
                        set(&mut m.ip_proto, ip_proto, flow)?;
                    }
                }
                Field::InPort(name) => {
                    let number = name
                        .parse::<u32>()
                        .ok()
                        .or_else(|| port_number(name))
                        .ok_or_else(|| {
                            anyhow::anyhow!("flow `{flow}`: the switch has no port {name}")
                        })?;
                    set(&mut m.in_port, number, flow)?;
                }
                Field::TunId(id) => set(&mut m.tunnel_id, u64::from(*id), flow)?,
                Field::Untagged => m.untagged = true,
                Field::DlSrc(mac) => set(&mut m.eth_src, *mac, flow)?,
                Field::DlDst(mac) => set(&mut m.eth_dst, *mac, flow)?,
                Field::ArpOp(op) => set(&mut m.arp_op, *op, flow)?,
                Field::ArpSpa(ip) => set(&mut m.arp_spa, ip.octets(), flow)?,
                Field::ArpSha(mac) => set(&mut m.arp_sha, *mac, flow)?,
                Field::NwSrc(ip) => set(&mut m.ipv4_src, ip.octets(), flow)?,
                Field::Ipv6Src(ip) => set(&mut m.ipv6_src, ip.octets(), flow)?,
                Field::TpSrc(port) => set(&mut m.udp_src, *port, flow)?,
                Field::TpDst(port) => set(&mut m.udp_dst, *port, flow)?,
                Field::IcmpType(t) => set(&mut m.icmpv4_type, *t, flow)?,
                Field::Icmpv6Type(t) => set(&mut m.icmpv6_type, *t, flow)?,
                Field::Icmpv6Code(c) => set(&mut m.icmpv6_code, *c, flow)?,
                Field::NdTarget(ip) => set(&mut m.nd_target, ip.octets(), flow)?,
                Field::NdSll(mac) => set(&mut m.nd_sll, *mac, flow)?,
                Field::NdTll(mac) => set(&mut m.nd_tll, *mac, flow)?,
            }
        }
        m.check_prerequisites(flow)?;
        Ok(m)
    }

    /// OpenFlow's prerequisites (spec table "Header match fields"), for the fields used.
    fn check_prerequisites(&self, flow: &Flow) -> Result<()> {
        let needs = |present: bool, what: &str, wanted: &str| -> Result<()> {
            ensure!(
                !present,
                "flow `{flow}` matches {what} without {wanted}, which OpenFlow requires"
            );
            Ok(())
        };
        let eth = self.eth_type;
        let ipv4 = eth == Some(ETH_TYPE_IPV4);
        let ipv6 = eth == Some(ETH_TYPE_IPV6);
        needs(
            self.ip_proto.is_some() && !ipv4 && !ipv6,
            "ip_proto",
            "IPv4 or IPv6",
        )?;
        needs(self.ipv4_src.is_some() && !ipv4, "nw_src", "ip")?;
        needs(self.ipv6_src.is_some() && !ipv6, "ipv6_src", "ipv6")?;
        let arp = self.arp_op.is_some() || self.arp_spa.is_some() || self.arp_sha.is_some();
        needs(arp && eth != Some(ETH_TYPE_ARP), "ARP fields", "arp")?;
        let udp = self.udp_src.is_some() || self.udp_dst.is_some();
        needs(
            udp && self.ip_proto != Some(IP_PROTO_UDP),
            "tp_src/tp_dst",
            "udp",
        )?;
        needs(
            self.icmpv4_type.is_some() && !(ipv4 && self.ip_proto == Some(IP_PROTO_ICMP)),
            "icmp_type",
            "icmp",
        )?;
        let icmpv6 = ipv6 && self.ip_proto == Some(IP_PROTO_ICMPV6);
        needs(
            (self.icmpv6_type.is_some() || self.icmpv6_code.is_some()) && !icmpv6,
            "icmpv6_type/code",
            "icmp6",
        )?;
        let nd = self.icmpv6_type;
        needs(
            self.nd_target.is_some() && !matches!(nd, Some(ND_SOLICITATION | ND_ADVERTISEMENT)),
            "nd_target",
            "icmpv6_type 135 or 136",
        )?;
        needs(
            self.nd_sll.is_some() && nd != Some(ND_SOLICITATION),
            "nd_sll",
            "icmpv6_type 135",
        )?;
        needs(
            self.nd_tll.is_some() && nd != Some(ND_ADVERTISEMENT),
            "nd_tll",
            "icmpv6_type 136",
        )?;
        Ok(())
    }

    /// The OXM TLVs, in ascending field number (prerequisites first).
    fn oxm(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |field: u8, value: &[u8]| {
            out.extend_from_slice(&0x8000u16.to_be_bytes());
            out.push(field << 1);
            // Values are at most 16 bytes.
            out.push(value.len() as u8);
            out.extend_from_slice(value);
        };
        if let Some(v) = self.in_port {
            put(oxm::IN_PORT, &v.to_be_bytes());
        }
        if let Some(v) = self.eth_dst {
            put(oxm::ETH_DST, &v);
        }
        if let Some(v) = self.eth_src {
            put(oxm::ETH_SRC, &v);
        }
        if let Some(v) = self.eth_type {
            put(oxm::ETH_TYPE, &v.to_be_bytes());
        }
        if self.untagged {
            put(oxm::VLAN_VID, &0u16.to_be_bytes());
        }
        if let Some(v) = self.ip_proto {
            put(oxm::IP_PROTO, &[v]);
        }
        if let Some(v) = self.ipv4_src {
            put(oxm::IPV4_SRC, &v);
        }
        if let Some(v) = self.udp_src {
            put(oxm::UDP_SRC, &v.to_be_bytes());
        }
        if let Some(v) = self.udp_dst {
            put(oxm::UDP_DST, &v.to_be_bytes());
        }
        if let Some(v) = self.icmpv4_type {
            put(oxm::ICMPV4_TYPE, &[v]);
        }
        if let Some(v) = self.arp_op {
            put(oxm::ARP_OP, &v.to_be_bytes());
        }
        if let Some(v) = self.arp_spa {
            put(oxm::ARP_SPA, &v);
        }
        if let Some(v) = self.arp_sha {
            put(oxm::ARP_SHA, &v);
        }
        if let Some(v) = self.ipv6_src {
            put(oxm::IPV6_SRC, &v);
        }
        if let Some(v) = self.icmpv6_type {
            put(oxm::ICMPV6_TYPE, &[v]);
        }
        if let Some(v) = self.icmpv6_code {
            put(oxm::ICMPV6_CODE, &[v]);
        }
        if let Some(v) = self.nd_target {
            put(oxm::IPV6_ND_TARGET, &v);
        }
        if let Some(v) = self.nd_sll {
            put(oxm::IPV6_ND_SLL, &v);
        }
        if let Some(v) = self.nd_tll {
            put(oxm::IPV6_ND_TLL, &v);
        }
        if let Some(v) = self.tunnel_id {
            put(oxm::TUNNEL_ID, &v.to_be_bytes());
        }
        out
    }
}

/// MULTIPART_REQUEST for the descriptions of all ports (`OFPMP_PORT_DESC`).
pub fn port_desc_request(xid: u32) -> Vec<u8> {
    let mut out = start(kind::MULTIPART_REQUEST, xid);
    out.extend_from_slice(&MULTIPART_PORT_DESC.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out[2..4].copy_from_slice(&16u16.to_be_bytes());
    out
}

/// One part of the PORT_DESC reply: the ports it lists (name, OpenFlow number) and whether
/// more parts follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortDescPart {
    pub ports: Vec<(String, u32)>,
    pub more: bool,
}

/// Reads one MULTIPART_REPLY of type PORT_DESC (header included): `ofp_port`s of OpenFlow
/// 1.4, each with its own length (properties follow its 40 fixed bytes).
pub fn parse_port_desc_reply(message: &[u8]) -> Result<PortDescPart> {
    let header = Header::parse(message)?;
    let end = usize::from(header.length).min(message.len());
    ensure!(
        end >= 16,
        "a MULTIPART_REPLY of {end} bytes is shorter than 16"
    );
    let kind = be16(message, 8);
    ensure!(
        kind == MULTIPART_PORT_DESC,
        "a multipart reply of type {kind} answered the port description request"
    );
    let more = be16(message, 10) & MULTIPART_REPLY_MORE != 0;
    let mut ports = Vec::new();
    let mut at = 16;
    while at < end {
        ensure!(
            at + 40 <= end,
            "a port description is cut short ({} bytes left)",
            end - at
        );
        let number = be32(message, at);
        let length = usize::from(be16(message, at + 4));
        ensure!(
            length >= 40 && at + length <= end,
            "a port description has a bad length {length}"
        );
        let name = &message[at + 16..at + 32];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        ports.push((String::from_utf8_lossy(name).into_owned(), number));
        at += length;
    }
    Ok(PortDescPart { ports, more })
}

/// An ERROR message from the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchError {
    /// `ofp_error_type`.
    pub kind: u16,
    pub code: u16,
}

/// Reads an ERROR message (header included).
pub fn parse_error(message: &[u8]) -> Result<SwitchError> {
    ensure!(
        message.len() >= 12,
        "an ERROR message of {} bytes is shorter than 12",
        message.len()
    );
    Ok(SwitchError {
        kind: be16(message, 8),
        code: be16(message, 10),
    })
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            0 => "HELLO_FAILED",
            1 => "BAD_REQUEST",
            2 => "BAD_ACTION",
            3 => "BAD_INSTRUCTION",
            4 => "BAD_MATCH",
            5 => "FLOW_MOD_FAILED",
            17 => "BUNDLE_FAILED",
            _ => "error",
        };
        let code = match (self.kind, self.code) {
            (4, 6) => Some("BAD_FIELD"),
            (4, 7) => Some("BAD_VALUE"),
            (4, 9) => Some("BAD_PREREQ"),
            (5, 0) => Some("UNKNOWN"),
            (5, 1) => Some("TABLE_FULL"),
            (5, 3) => Some("OVERLAP"),
            (5, 4) => Some("EPERM"),
            _ => None,
        };
        write!(f, "{kind} (type {})", self.kind)?;
        match code {
            Some(name) => write!(f, ", {name} (code {})", self.code),
            None => write!(f, ", code {}", self.code),
        }
    }
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests;
