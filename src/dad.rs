//! Duplicate-address detection on the overlay, before a container's addresses are configured.
//!
//! The overlay is one layer-2 domain stretched over several hosts, but podman's IPAM runs on each
//! host on its own: two hosts can hand out the same address from the same subnet, and nothing on
//! the wire stops the second container from silently stealing the first one's traffic. This
//! module asks the link whether an address is already taken, the way hosts do it themselves:
//!
//! * IPv4: an ARP probe (RFC 5227 §2.1.1): a broadcast ARP request from sender address 0.0.0.0
//!   for the address. A holder answers with an ARP reply; any ARP packet *from* the address, or
//!   another host's probe *for* it, means it is taken (or about to be).
//! * IPv6: duplicate address detection (RFC 4862 §5.4): a Neighbor Solicitation from `::` to the
//!   address's solicited-node multicast group. A holder answers with a Neighbor Advertisement to
//!   all-nodes; an advertisement for the address, or another host's solicitation from `::` for it,
//!   means it is taken.
//!
//! Unlike the RFCs' schedules (three ARP probes spread over seconds, a DupAddrDetectTransmits
//! wait of a second) this sends one probe per address, all at once, and listens for a caller-chosen
//! time: this runs in `podman run`'s path, and the overlay is a virtual switch where a lost frame
//! is rare. One window of waiting covers all addresses of the container.
//!
//! The work is done with one AF_PACKET socket bound to the container's interface, created in the
//! calling thread's network namespace: call [`probe`] inside [`crate::netns::Netns::enter`]. The
//! frames are built and parsed here by hand; the parsing is pure and takes nothing on trust.
//!
//! Cost: without a conflict a probe takes its timeout plus a fraction of a millisecond (socket
//! setup and the sends). Closing a packet socket costs the kernel an RCU grace period (several
//! milliseconds), so the socket is closed on a short-lived thread after the call returns. No MLD
//! report is sent for the groups listened to: the overlay bridge floods multicast.

use std::fmt;
use std::mem::ManuallyDrop;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// An address that another station on the link already uses or is claiming at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The probed address.
    pub address: IpAddr,
    /// The hardware address of the other station: who to look for when resolving the clash.
    pub mac: [u8; 6],
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is already used by {}",
            self.address,
            MacDisplay(self.mac)
        )
    }
}

/// Probes for every address in `addresses` on interface `ifname` of the calling thread's network
/// namespace (the caller enters the container's namespace), with the interface up and attached to
/// the overlay but the addresses not yet configured on it.
///
/// `own_mac` is the interface's hardware address: probes are sent from it, and frames from it are
/// ours, never a conflict. The probes for all addresses go out at once, then the call listens
/// until `timeout` has passed since it was entered (a hard bound on the whole call; 100 ms is the
/// intended use) and returns the first conflict heard, as soon as it is heard. Without a conflict
/// the call necessarily takes the whole `timeout`: silence is the answer, and it takes waiting.
/// An empty `addresses` returns `None` at once.
///
/// An error means the probing itself failed (no such interface, interface down, not allowed to
/// open a packet socket, an address that cannot be probed); it says nothing about the addresses.
pub fn probe(
    ifname: &str,
    own_mac: [u8; 6],
    addresses: &[IpAddr],
    timeout: Duration,
) -> Result<Option<Conflict>> {
    let deadline = Instant::now()
        .checked_add(timeout)
        .with_context(|| format!("probe timeout {timeout:?} is out of range"))?;
    if addresses.is_empty() {
        return Ok(None);
    }
    for address in addresses {
        check_probe_target(*address)?;
    }
    check_ifname(ifname)?;

    let socket = PacketSocket::open(ifname)
        .with_context(|| format!("opening a packet socket on {ifname} for address probes"))?;
    probe_on(&socket, ifname, own_mac, addresses, deadline)
}

/// The probing proper, on an open socket, until `deadline`.
fn probe_on(
    socket: &PacketSocket,
    ifname: &str,
    own_mac: [u8; 6],
    addresses: &[IpAddr],
    deadline: Instant,
) -> Result<Option<Conflict>> {
    // Answers to a DAD probe go to all-nodes, and a rival prober's solicitation to the
    // solicited-node group, neither of which the interface need be listening to while the
    // address is unconfigured. Joining them at the link layer (no MLD) lets them past a
    // filtering NIC; the memberships end with the socket.
    let v6_groups = addresses.iter().filter_map(|address| match address {
        IpAddr::V6(v6) => Some(multicast_mac(&solicited_node(v6))),
        IpAddr::V4(_) => None,
    });
    let mut joined_all_nodes = false;
    for group in v6_groups {
        if !joined_all_nodes {
            socket.join(multicast_mac(&ALL_NODES))?;
            joined_all_nodes = true;
        }
        socket.join(group)?;
    }

    let send_all = || -> Result<()> {
        for address in addresses {
            let frame = probe_frame(own_mac, *address);
            socket
                .send(&frame, deadline)
                .with_context(|| format!("sending the probe for {address} on {ifname}"))?;
        }
        Ok(())
    };
    send_all()?;
    // A second round halfway through, as RFC 5227 repeats its probes: a frame lost on a busy
    // path (or dropped while a tunnel resolves its next hop) must not hide a conflict.
    let resend_at = Instant::now() + deadline.saturating_duration_since(Instant::now()) / 2;
    let mut resent = false;

    let mut buf = [0u8; RECV_BUF];
    loop {
        if !resent && Instant::now() >= resend_at {
            send_all()?;
            resent = true;
        }
        let wait_until = if resent { deadline } else { resend_at };
        let remaining = wait_until.saturating_duration_since(Instant::now());
        // A zero wait still looks once, so frames that arrived just before the deadline count.
        if socket.wait_readable(remaining)? {
            while let Some(received) = socket.recv(&mut buf)? {
                if !received.outgoing {
                    let frame = buf.get(..received.len).unwrap_or(&buf);
                    if let Some(conflict) = conflict_in(frame, own_mac, addresses) {
                        log::debug!("address probe on {ifname}: {conflict}");
                        return Ok(Some(conflict));
                    }
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
        if resent && Instant::now() >= deadline {
            return Ok(None);
        }
    }
}

/// Receive buffer size: every frame this module cares about is under 100 bytes; longer frames are
/// cut here and then ignored as truncated by the parser.
const RECV_BUF: usize = 2048;

/// The shortest Ethernet frame without its FCS; ARP probes are padded to it, as on the wire.
const MIN_FRAME: usize = 60;

const ETH_HEADER: usize = 14;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];

const ARP_LEN: usize = 28;
const ARP_HTYPE_ETHERNET: u16 = 1;
const ARP_OP_REQUEST: u16 = 1;
const ARP_OP_REPLY: u16 = 2;

const IPV6_HEADER: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
/// RFC 4861 §7.1: neighbor discovery packets carry hop limit 255, which proves they were not
/// forwarded by a router, and are discarded otherwise.
const ND_HOP_LIMIT: u8 = 255;
const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Type, code, checksum, flags/reserved and the target address: the fixed part of NS and NA.
const ND_MESSAGE: usize = 24;
const ND_OPTION_TARGET_LINK_LAYER: u8 = 2;
/// ff02::1, where a defender sends its advertisement (RFC 4862 §5.4.3).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Refuses addresses that no station can own on a link, so that a caller mistake is an error
/// instead of a probe that finds nothing.
fn check_probe_target(address: IpAddr) -> Result<()> {
    let unusable = match address {
        IpAddr::V4(v4) => {
            v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || v4.is_loopback()
        }
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast() || v6.is_loopback(),
    };
    if unusable {
        bail!("{address} is not a unicast address that can be probed for on a link");
    }
    Ok(())
}

/// Refuses interface names the kernel could not hold, before any socket is made.
fn check_ifname(ifname: &str) -> Result<()> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        bail!("invalid interface name {ifname:?}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Frames out

/// The probe frame for `address`: an ARP probe or a DAD neighbor solicitation.
fn probe_frame(own_mac: [u8; 6], address: IpAddr) -> Vec<u8> {
    match address {
        IpAddr::V4(v4) => arp_probe_frame(own_mac, v4).to_vec(),
        IpAddr::V6(v6) => dad_solicitation_frame(own_mac, v6).to_vec(),
    }
}

/// An RFC 5227 ARP probe: broadcast request, sender hardware address ours, sender protocol
/// address 0.0.0.0 (so that no one's ARP cache learns the address from it), target hardware
/// address zero, target protocol address the probed one.
fn arp_probe_frame(own_mac: [u8; 6], address: Ipv4Addr) -> [u8; MIN_FRAME] {
    let mut frame = [0u8; MIN_FRAME];
    frame[0..6].copy_from_slice(&BROADCAST_MAC);
    frame[6..12].copy_from_slice(&own_mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let arp = &mut frame[ETH_HEADER..ETH_HEADER + ARP_LEN];
    arp[0..2].copy_from_slice(&ARP_HTYPE_ETHERNET.to_be_bytes());
    arp[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    arp[4] = 6;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&ARP_OP_REQUEST.to_be_bytes());
    arp[8..14].copy_from_slice(&own_mac);
    // Sender protocol address (14..18) and target hardware address (18..24) stay zero.
    arp[24..28].copy_from_slice(&address.octets());
    frame
}

/// Length of the DAD solicitation frame: Ethernet, IPv6 and a bare neighbor solicitation.
const DAD_FRAME: usize = ETH_HEADER + IPV6_HEADER + ND_MESSAGE;

/// An RFC 4862 DAD probe: a neighbor solicitation for `address` from the unspecified address to
/// its solicited-node group, hop limit 255, and without a source link-layer address option (which
/// RFC 4861 §7.1.1 forbids when the source is unspecified).
fn dad_solicitation_frame(own_mac: [u8; 6], address: Ipv6Addr) -> [u8; DAD_FRAME] {
    let group = solicited_node(&address);
    let mut frame = [0u8; DAD_FRAME];
    frame[0..6].copy_from_slice(&multicast_mac(&group));
    frame[6..12].copy_from_slice(&own_mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());

    let ip = &mut frame[ETH_HEADER..ETH_HEADER + IPV6_HEADER];
    ip[0] = 0x60; // version 6, traffic class and flow label zero
    ip[4..6].copy_from_slice(&(ND_MESSAGE as u16).to_be_bytes());
    ip[6] = NEXT_HEADER_ICMPV6;
    ip[7] = ND_HOP_LIMIT;
    // Source (8..24) stays ::.
    ip[24..40].copy_from_slice(&group.octets());

    let icmp = &mut frame[ETH_HEADER + IPV6_HEADER..];
    icmp[0] = ICMPV6_NEIGHBOR_SOLICITATION;
    // Code, checksum and reserved stay zero until the checksum is known.
    icmp[8..24].copy_from_slice(&address.octets());
    let checksum = icmpv6_checksum(&Ipv6Addr::UNSPECIFIED, &group, icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// The solicited-node multicast group of `address` (RFC 4291 §2.7.1): ff02::1:ff00:0/104 with
/// the address's low 24 bits.
fn solicited_node(address: &Ipv6Addr) -> Ipv6Addr {
    let o = address.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address an IPv6 multicast group maps to (RFC 2464 §7): 33:33 and the low 32
/// bits of the group.
fn multicast_mac(group: &Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The ICMPv6 checksum (RFC 4443 §2.3) of `message`, whose checksum field must be zero, sent
/// from `src` to `dst`: the ones' complement of the ones' complement sum over the IPv6
/// pseudo-header (RFC 8200 §8.1) and the message.
fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum = ones_complement_sum(&src.octets());
    sum += ones_complement_sum(&dst.octets());
    // Upper-layer length as 32 bits; ND messages are far below 4 GiB.
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    sum += ones_complement_sum(&length.to_be_bytes());
    sum += ones_complement_sum(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    sum += ones_complement_sum(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The fold above leaves at most 16 bits.
    !(sum as u16)
}

/// Sum of `bytes` as big-endian 16-bit words, an odd last byte padded with zero, not yet folded.
fn ones_complement_sum(bytes: &[u8]) -> u64 {
    bytes
        .chunks(2)
        .map(|pair| match *pair {
            [hi, lo] => u64::from(u16::from_be_bytes([hi, lo])),
            [hi] => u64::from(hi) << 8,
            _ => 0,
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Frames in

/// What a received frame says about one address: that the station `mac` uses it or is probing
/// for it. Either way the address is not free for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    address: IpAddr,
    mac: [u8; 6],
}

/// The conflict `frame` (a received Ethernet frame, no VLAN tag) reveals for one of `addresses`,
/// if any. Frames from `own_mac` and claims naming `own_mac` are ours and never a conflict.
fn conflict_in(frame: &[u8], own_mac: [u8; 6], addresses: &[IpAddr]) -> Option<Conflict> {
    let source = frame.get(6..12)?;
    if source == own_mac {
        return None;
    }
    let claim = parse_claim(frame)?;
    if claim.mac == own_mac || !addresses.contains(&claim.address) {
        return None;
    }
    Some(Conflict {
        address: claim.address,
        mac: claim.mac,
    })
}

/// The claim an ARP or neighbor discovery frame makes, or `None` for any other frame, including
/// truncated or malformed ones and VLAN-tagged ones (the overlay ports are untagged).
fn parse_claim(frame: &[u8]) -> Option<Claim> {
    let source = mac_at(frame, 6)?;
    let ethertype = u16::from_be_bytes(array_at(frame, 12)?);
    let payload = frame.get(ETH_HEADER..)?;
    match ethertype {
        ETHERTYPE_ARP => parse_arp(payload),
        ETHERTYPE_IPV6 => parse_neighbor_discovery(payload, source),
        _ => None,
    }
}

/// An ARP packet claims its sender protocol address for its sender hardware address, whatever
/// its operation (reply, request, announcement). A probe (sender address 0.0.0.0) claims the
/// target address instead: RFC 5227 §2.1.1 treats a rival probe for the same address as a
/// conflict, since both hosts would otherwise take it.
fn parse_arp(arp: &[u8]) -> Option<Claim> {
    let htype = u16::from_be_bytes(array_at(arp, 0)?);
    let ptype = u16::from_be_bytes(array_at(arp, 2)?);
    let (hlen, plen) = (*arp.get(4)?, *arp.get(5)?);
    if htype != ARP_HTYPE_ETHERNET || ptype != ETHERTYPE_IPV4 || hlen != 6 || plen != 4 {
        return None;
    }
    let op = u16::from_be_bytes(array_at(arp, 6)?);
    let sender_mac = mac_at(arp, 8)?;
    let sender_ip = Ipv4Addr::from(array_at::<4>(arp, 14)?);
    let target_ip = Ipv4Addr::from(array_at::<4>(arp, 24)?);
    let address = match op {
        ARP_OP_REQUEST | ARP_OP_REPLY if !sender_ip.is_unspecified() => sender_ip,
        ARP_OP_REQUEST => target_ip,
        _ => return None,
    };
    Some(Claim {
        address: IpAddr::V4(address),
        mac: sender_mac,
    })
}

/// A neighbor advertisement claims its target address for the MAC in its target link-layer
/// address option, or for the frame's source without one. A DAD neighbor solicitation (source
/// `::`) claims its target for the frame's source: a rival prober. Other solicitations are only
/// questions. Packets failing RFC 4861 §7.1's checks a receiver can make without state (hop limit
/// 255, code 0, length, no zero-length option) are ignored, as the kernel would. The checksum is
/// not verified: a frame read from a packet socket may still await checksum offload, and a local
/// virtual link does not corrupt frames.
fn parse_neighbor_discovery(ip: &[u8], source: [u8; 6]) -> Option<Claim> {
    if ip.first()? >> 4 != 6 {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes(array_at(ip, 4)?));
    if *ip.get(6)? != NEXT_HEADER_ICMPV6 || *ip.get(7)? != ND_HOP_LIMIT {
        return None;
    }
    let ip_source = Ipv6Addr::from(array_at::<16>(ip, 8)?);
    // The payload length, not the frame, bounds the message: short frames carry padding.
    let icmp = ip.get(IPV6_HEADER..IPV6_HEADER.checked_add(payload_len)?)?;
    if icmp.len() < ND_MESSAGE || *icmp.get(1)? != 0 {
        return None;
    }
    let target = Ipv6Addr::from(array_at::<16>(icmp, 8)?);
    let options = parse_options(icmp.get(ND_MESSAGE..)?)?;
    match *icmp.first()? {
        ICMPV6_NEIGHBOR_ADVERTISEMENT => Some(Claim {
            address: IpAddr::V6(target),
            mac: options.target_link_layer.unwrap_or(source),
        }),
        ICMPV6_NEIGHBOR_SOLICITATION if ip_source.is_unspecified() => Some(Claim {
            address: IpAddr::V6(target),
            mac: source,
        }),
        _ => None,
    }
}

/// The neighbor discovery options this module reads.
#[derive(Debug, Default)]
struct NdOptions {
    target_link_layer: Option<[u8; 6]>,
}

/// Walks the options (type, length in units of 8 bytes, value); `None` when one is malformed,
/// which makes the whole packet invalid (RFC 4861 §7.1.1/§7.1.2: length zero must be discarded).
fn parse_options(mut rest: &[u8]) -> Option<NdOptions> {
    let mut options = NdOptions::default();
    while !rest.is_empty() {
        let kind = *rest.first()?;
        let len = usize::from(*rest.get(1)?) * 8;
        if len == 0 {
            return None;
        }
        let option = rest.get(..len)?;
        if kind == ND_OPTION_TARGET_LINK_LAYER {
            options.target_link_layer = Some(mac_at(option, 2)?);
        }
        rest = rest.get(len..)?;
    }
    Some(options)
}

/// `N` bytes of `bytes` from `offset`, or `None` when they are not all there.
fn array_at<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    bytes.get(offset..offset.checked_add(N)?)?.try_into().ok()
}

/// A hardware address at `offset`.
fn mac_at(bytes: &[u8], offset: usize) -> Option<[u8; 6]> {
    array_at(bytes, offset)
}

/// Formats a hardware address the usual way, for messages.
struct MacDisplay([u8; 6]);

impl fmt::Display for MacDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

// ---------------------------------------------------------------------------------------------
// The socket

/// A non-blocking AF_PACKET raw socket bound to one interface, seeing every frame on it in both
/// directions (we write the Ethernet header ourselves and read ARP and IPv6 alike).
struct PacketSocket {
    fd: ClosedAside,
    ifindex: libc::c_int,
}

/// One frame read from a [`PacketSocket`].
struct Received {
    /// Bytes stored in the buffer.
    len: usize,
    /// The frame is one this host sent (ETH_P_ALL sockets see those too), never a conflict.
    outgoing: bool,
}

impl PacketSocket {
    /// Opens the socket in the calling thread's namespace and binds it to `ifname`.
    ///
    /// The socket is created with protocol 0, which receives nothing, and only starts receiving
    /// at `bind`, for this interface alone: created with ETH_P_ALL it would queue frames from
    /// every interface until then.
    fn open(ifname: &str) -> Result<PacketSocket> {
        // SAFETY: plain socket(2) call with constant arguments; no pointers involved.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("socket(AF_PACKET, SOCK_RAW)");
        }
        // SAFETY: `fd` was just returned by socket(2), is valid, and nothing else owns it.
        let fd = ClosedAside(ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(fd) }));
        let ifindex = interface_index(&fd, ifname)?;

        // SAFETY: `sockaddr_ll` is a plain C struct of integers and a byte array, for which all
        // zero bytes is a valid value.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as libc::c_ushort;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        address.sll_ifindex = ifindex;
        // SAFETY: `address` is a fully initialised sockaddr_ll that outlives the call, and the
        // length passed is its exact size; bind(2) only reads it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                socklen_of::<libc::sockaddr_ll>(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("binding a packet socket to {ifname}"));
        }
        Ok(PacketSocket { fd, ifindex })
    }

    /// Makes the interface accept frames sent to the multicast hardware address `group`, for as
    /// long as this socket lives.
    fn join(&self, group: [u8; 6]) -> Result<()> {
        // SAFETY: `packet_mreq` is a plain C struct of integers and a byte array, for which all
        // zero bytes is a valid value.
        let mut request: libc::packet_mreq = unsafe { std::mem::zeroed() };
        request.mr_ifindex = self.ifindex;
        request.mr_type = libc::PACKET_MR_MULTICAST as libc::c_ushort;
        request.mr_alen = 6;
        request.mr_address[..6].copy_from_slice(&group);
        // SAFETY: `request` is a fully initialised packet_mreq that outlives the call, and the
        // length passed is its exact size; setsockopt(2) only reads it.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&request as *const libc::packet_mreq).cast::<libc::c_void>(),
                socklen_of::<libc::packet_mreq>(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("joining multicast group {}", MacDisplay(group)));
        }
        Ok(())
    }

    /// Sends one whole frame, waiting for room in the socket's buffer no later than `deadline`.
    fn send(&self, frame: &[u8], deadline: Instant) -> Result<()> {
        loop {
            // SAFETY: `frame` is a live slice and the length passed is its length; send(2) only
            // reads it. The socket is bound, so no destination address is needed.
            let sent = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast::<libc::c_void>(),
                    frame.len(),
                    0,
                )
            };
            if sent >= 0 {
                // A packet socket sends a frame whole or not at all.
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        bail!("no room to send before the probe deadline");
                    }
                    self.wait(libc::POLLOUT, remaining)?;
                }
                _ => return Err(err).context("send"),
            }
        }
    }

    /// Waits up to `timeout` for a frame to read; `true` when one may be there (or an error is
    /// pending, which the next [`PacketSocket::recv`] reports).
    fn wait_readable(&self, timeout: Duration) -> Result<bool> {
        self.wait(libc::POLLIN, timeout)
    }

    /// Waits up to `timeout` (zero: just looks) for `events`; `false` on timeout or a signal,
    /// after which the caller measures its remaining time again.
    fn wait(&self, events: libc::c_short, timeout: Duration) -> Result<bool> {
        let mut pollfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // ppoll rather than poll: nanoseconds, so the wait ends at the deadline and not at the
        // next whole millisecond after it.
        let wait = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            // Below 10^9, which fits a c_long of any width.
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `pollfd` and `wait` are initialised and outlive the call; one descriptor is
        // passed, matching the count; a null signal mask means "leave the mask alone".
        let rc = unsafe { libc::ppoll(&mut pollfd, 1, &wait, std::ptr::null()) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(err).context("ppoll on the packet socket");
        }
        Ok(rc > 0)
    }

    /// Reads one frame into `buf` (cut to its size), or `None` when nothing is queued.
    fn recv(&self, buf: &mut [u8]) -> Result<Option<Received>> {
        loop {
            // SAFETY: all zero bytes is a valid sockaddr_ll (plain integers and a byte array).
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = socklen_of::<libc::sockaddr_ll>();
            // SAFETY: `buf` is a live, exclusively borrowed buffer of the length passed, and
            // `from`/`from_len` describe a live sockaddr_ll of the size given; recvfrom(2) writes
            // within those bounds only.
            let len = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast::<libc::sockaddr>(),
                    &mut from_len,
                )
            };
            if let Ok(len) = usize::try_from(len) {
                return Ok(Some(Received {
                    len: len.min(buf.len()),
                    outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
                }));
            }
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(err).context("receiving from the packet socket"),
            }
        }
    }
}

/// An owned descriptor that is closed on a short-lived thread of its own when dropped.
///
/// Closing a packet socket waits for an RCU grace period in the kernel (`packet_release` calls
/// `synchronize_net`), measured at 4 to 15 ms: more than everything else a probe does apart from
/// its listening, and enough to break the timeout's bound. The caller has better things to do
/// meanwhile, like configuring the addresses it just found free (a process that exits right away
/// still waits for it). If no thread can be started, the descriptor is closed in place, slowly
/// but surely.
struct ClosedAside(ManuallyDrop<OwnedFd>);

impl AsRawFd for ClosedAside {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Drop for ClosedAside {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once, and the field is never used again after being taken here.
        let fd = unsafe { ManuallyDrop::take(&mut self.0) };
        let spawned = std::thread::Builder::new()
            .name("dad-close".to_string())
            .spawn(move || drop(fd));
        if let Err(err) = spawned {
            // The failed spawn dropped the closure, and with it closed the descriptor.
            log::debug!("closed the probe socket in place, no thread for it: {err}");
        }
    }
}

/// The index of `ifname` in the namespace of `socket` (the one the socket was created in, so the
/// name cannot resolve in another namespace than the one the socket sends in).
fn interface_index(socket: &impl AsRawFd, ifname: &str) -> Result<libc::c_int> {
    check_ifname(ifname)?;
    // SAFETY: `ifreq` is a plain C struct (byte array plus a union of integers, addresses and a
    // raw pointer) for which all-zero bytes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(ifname.as_bytes()) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: `request` is a fully initialised ifreq whose name is NUL-terminated within
    // IFNAMSIZ (checked above, the rest is zero); SIOCGIFINDEX reads the name and writes the
    // index into the union, within the struct.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFINDEX as _, &mut request) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("looking up interface {ifname}"));
    }
    // SAFETY: a successful SIOCGIFINDEX has written `ifru_ifindex`, an integer field.
    Ok(unsafe { request.ifr_ifru.ifru_ifindex })
}

/// The size of `T` as a socket address length (all the structs passed here are a few dozen
/// bytes).
fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
    const OTHER: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
    const THIRD: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0c];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// An ARP packet (no Ethernet header).
    fn arp(op: u16, sha: [u8; 6], spa: &str, tha: [u8; 6], tpa: &str) -> Vec<u8> {
        let spa: Ipv4Addr = spa.parse().unwrap();
        let tpa: Ipv4Addr = tpa.parse().unwrap();
        let mut packet = vec![0x00, 0x01, 0x08, 0x00, 6, 4];
        packet.extend_from_slice(&op.to_be_bytes());
        packet.extend_from_slice(&sha);
        packet.extend_from_slice(&spa.octets());
        packet.extend_from_slice(&tha);
        packet.extend_from_slice(&tpa.octets());
        packet
    }

    fn arp_frame(op: u16, sha: [u8; 6], spa: &str, tpa: &str) -> Vec<u8> {
        ethernet(BROADCAST_MAC, sha, 0x0806, &arp(op, sha, spa, [0; 6], tpa))
    }

    /// A neighbor discovery message (type 135 or 136) for `target` with `options` appended,
    /// checksum zero (this module does not verify it).
    fn nd_message(kind: u8, target: &str, options: &[u8]) -> Vec<u8> {
        let mut message = vec![kind, 0, 0, 0, 0x60, 0, 0, 0];
        message.extend_from_slice(&v6(target).octets());
        message.extend_from_slice(options);
        message
    }

    fn tlla(mac: [u8; 6]) -> Vec<u8> {
        let mut option = vec![2, 1];
        option.extend_from_slice(&mac);
        option
    }

    /// An Ethernet frame carrying `message` in an IPv6 packet with hop limit `hops`.
    fn ipv6_frame(src_mac: [u8; 6], src: &str, dst: &str, hops: u8, message: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x60, 0, 0, 0];
        packet.extend_from_slice(&(message.len() as u16).to_be_bytes());
        packet.extend_from_slice(&[58, hops]);
        packet.extend_from_slice(&v6(src).octets());
        packet.extend_from_slice(&v6(dst).octets());
        packet.extend_from_slice(message);
        ethernet([0x33, 0x33, 0, 0, 0, 1], src_mac, 0x86dd, &packet)
    }

    fn advertisement(src_mac: [u8; 6], target: &str, options: &[u8]) -> Vec<u8> {
        ipv6_frame(
            src_mac,
            target,
            "ff02::1",
            255,
            &nd_message(136, target, options),
        )
    }

    fn conflict(address: &str, mac: [u8; 6]) -> Option<Conflict> {
        Some(Conflict {
            address: ip(address),
            mac,
        })
    }

    #[test]
    fn arp_probe_is_a_padded_broadcast_request_from_zero() {
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, // us
            0x08, 0x06,                         // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet / IPv4
            0x00, 0x01,                         // request
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, // sender MAC: us
            0, 0, 0, 0,                         // sender IP: 0.0.0.0
            0, 0, 0, 0, 0, 0,                   // target MAC: unknown
            192, 168, 120, 5,                   // target IP: the probed address
        ];
        let frame = arp_probe_frame(OWN, "192.168.120.5".parse().unwrap());
        assert_eq!(frame.len(), 60);
        assert_eq!(frame[..42], expected);
        assert!(frame[42..].iter().all(|b| *b == 0));
    }

    #[test]
    fn dad_solicitation_follows_rfc_4862() {
        let frame = dad_solicitation_frame(OWN, v6("fd12:3456::abcd:ef01"));
        assert_eq!(frame.len(), 78);
        assert_eq!(frame[0..6], [0x33, 0x33, 0xff, 0xcd, 0xef, 0x01]);
        assert_eq!(frame[6..12], OWN);
        assert_eq!(frame[12..14], [0x86, 0xdd]);
        let ip = &frame[14..54];
        assert_eq!(ip[0..4], [0x60, 0, 0, 0]);
        assert_eq!(ip[4..6], [0, 24], "payload: a bare NS, no options");
        assert_eq!(ip[6], 58);
        assert_eq!(ip[7], 255);
        assert_eq!(ip[8..24], [0; 16], "source ::");
        assert_eq!(ip[24..40], v6("ff02::1:ffcd:ef01").octets());
        let icmp = &frame[54..];
        assert_eq!(icmp[0..2], [135, 0]);
        assert_eq!(icmp[4..8], [0; 4]);
        assert_eq!(icmp[8..24], v6("fd12:3456::abcd:ef01").octets());
        // A correct checksum makes the sum over pseudo-header and message all ones.
        let mut sum = ones_complement_sum(&[0; 16])
            + ones_complement_sum(&v6("ff02::1:ffcd:ef01").octets())
            + 24
            + 58
            + ones_complement_sum(icmp);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }

    #[test]
    fn checksum_matches_a_hand_computed_value() {
        // Pseudo-header ::1 -> ::2, length 4, next header 58: 1 + 2 + 4 + 58 = 0x41;
        // message 0x8000 0x0000 -> total 0x8041, complement 0x7fbe.
        let sum = icmpv6_checksum(&v6("::1"), &v6("::2"), &[0x80, 0, 0, 0]);
        assert_eq!(sum, 0x7fbe);
        // An odd trailing byte counts as the high half of a word.
        assert_eq!(ones_complement_sum(&[0x01]), 0x0100);
        assert_eq!(ones_complement_sum(&[0xff, 0xff, 0xff, 0xff]), 0x1fffe);
    }

    #[test]
    fn solicited_node_group_and_its_mac() {
        let group = solicited_node(&v6("fd12:3456::5"));
        assert_eq!(group, v6("ff02::1:ff00:5"));
        assert_eq!(multicast_mac(&group), [0x33, 0x33, 0xff, 0x00, 0x00, 0x05]);
        assert_eq!(multicast_mac(&ALL_NODES), [0x33, 0x33, 0, 0, 0, 1]);
    }

    #[test]
    fn arp_reply_from_the_holder_is_a_conflict() {
        let reply = ethernet(
            OWN,
            OTHER,
            0x0806,
            &arp(2, OTHER, "192.168.120.5", OWN, "0.0.0.0"),
        );
        let addresses = [ip("192.168.120.5")];
        assert_eq!(
            conflict_in(&reply, OWN, &addresses),
            conflict("192.168.120.5", OTHER)
        );
    }

    #[test]
    fn any_arp_from_the_address_is_a_conflict() {
        let addresses = [ip("192.168.120.5")];
        // Announcement: sender and target the address.
        let announcement = arp_frame(1, OTHER, "192.168.120.5", "192.168.120.5");
        assert_eq!(
            conflict_in(&announcement, OWN, &addresses),
            conflict("192.168.120.5", OTHER)
        );
        // An ordinary request from the address for someone else.
        let request = arp_frame(1, OTHER, "192.168.120.5", "192.168.120.1");
        assert_eq!(
            conflict_in(&request, OWN, &addresses),
            conflict("192.168.120.5", OTHER)
        );
    }

    #[test]
    fn a_rival_arp_probe_is_a_conflict() {
        let probe = arp_frame(1, OTHER, "0.0.0.0", "192.168.120.5");
        let addresses = [ip("10.99.0.1"), ip("192.168.120.5")];
        assert_eq!(
            conflict_in(&probe, OWN, &addresses),
            conflict("192.168.120.5", OTHER)
        );
    }

    #[test]
    fn the_arp_conflict_names_the_arp_sender() {
        // The ARP sender, not the Ethernet source, is who claims the address (a proxy or a
        // relaying switch may differ).
        let reply = ethernet(
            OWN,
            THIRD,
            0x0806,
            &arp(2, OTHER, "192.168.120.5", OWN, "0.0.0.0"),
        );
        assert_eq!(
            conflict_in(&reply, OWN, &[ip("192.168.120.5")]),
            conflict("192.168.120.5", OTHER)
        );
    }

    #[test]
    fn arp_that_only_asks_for_the_address_is_no_conflict() {
        let request = arp_frame(1, OTHER, "192.168.120.9", "192.168.120.5");
        assert_eq!(conflict_in(&request, OWN, &[ip("192.168.120.5")]), None);
    }

    #[test]
    fn arp_about_other_addresses_is_no_conflict() {
        let reply = arp_frame(2, OTHER, "192.168.120.6", "0.0.0.0");
        let probe = arp_frame(1, OTHER, "0.0.0.0", "192.168.120.6");
        for frame in [reply, probe] {
            assert_eq!(conflict_in(&frame, OWN, &[ip("192.168.120.5")]), None);
        }
    }

    #[test]
    fn our_own_frames_are_no_conflict() {
        let addresses = [ip("192.168.120.5"), ip("fd12:3456::5")];
        // Our own probes, as they would come back on an ETH_P_ALL socket.
        let arp_probe = arp_probe_frame(OWN, "192.168.120.5".parse().unwrap());
        assert_eq!(conflict_in(&arp_probe, OWN, &addresses), None);
        let ns = dad_solicitation_frame(OWN, v6("fd12:3456::5"));
        assert_eq!(conflict_in(&ns, OWN, &addresses), None);
        // Our announcement and advertisement, once the address is configured.
        let announcement = arp_frame(1, OWN, "192.168.120.5", "192.168.120.5");
        assert_eq!(conflict_in(&announcement, OWN, &addresses), None);
        let na = advertisement(OWN, "fd12:3456::5", &tlla(OWN));
        assert_eq!(conflict_in(&na, OWN, &addresses), None);
        // Relayed by another station but naming our MAC: still ours.
        let relayed = ethernet(
            BROADCAST_MAC,
            OTHER,
            0x0806,
            &arp(1, OWN, "192.168.120.5", [0; 6], "192.168.120.5"),
        );
        assert_eq!(conflict_in(&relayed, OWN, &addresses), None);
        let na = advertisement(OTHER, "fd12:3456::5", &tlla(OWN));
        assert_eq!(conflict_in(&na, OWN, &addresses), None);
    }

    #[test]
    fn truncated_frames_are_ignored() {
        let addresses = [ip("192.168.120.5"), ip("fd12:3456::5")];
        let reply = arp_frame(2, OTHER, "192.168.120.5", "0.0.0.0");
        assert!(conflict_in(&reply, OWN, &addresses).is_some());
        for len in 0..reply.len() {
            assert_eq!(conflict_in(&reply[..len], OWN, &addresses), None, "{len}");
        }
        let na = advertisement(OTHER, "fd12:3456::5", &tlla(THIRD));
        assert!(conflict_in(&na, OWN, &addresses).is_some());
        for len in 0..na.len() {
            assert_eq!(conflict_in(&na[..len], OWN, &addresses), None, "{len}");
        }
    }

    #[test]
    fn other_ethertypes_and_vlan_tags_are_ignored() {
        let addresses = [ip("192.168.120.5")];
        let packet = arp(2, OTHER, "192.168.120.5", OWN, "0.0.0.0");
        let as_ipv4 = ethernet(OWN, OTHER, 0x0800, &packet);
        assert_eq!(conflict_in(&as_ipv4, OWN, &addresses), None);
        let mut tagged_payload = vec![0x00, 0x05, 0x08, 0x06];
        tagged_payload.extend_from_slice(&packet);
        let tagged = ethernet(OWN, OTHER, 0x8100, &tagged_payload);
        assert_eq!(conflict_in(&tagged, OWN, &addresses), None);
    }

    #[test]
    fn arp_for_other_hardware_or_protocols_is_ignored() {
        let addresses = [ip("192.168.120.5")];
        let good = arp(2, OTHER, "192.168.120.5", OWN, "0.0.0.0");
        for (index, value) in [(1, 6), (3, 0x06), (4, 8), (5, 16), (7, 3)] {
            let mut packet = good.clone();
            packet[index] = value;
            let frame = ethernet(OWN, OTHER, 0x0806, &packet);
            assert_eq!(conflict_in(&frame, OWN, &addresses), None, "byte {index}");
        }
    }

    #[test]
    fn advertisement_names_the_target_link_layer_address() {
        let addresses = [ip("fd12:3456::5")];
        let na = advertisement(OTHER, "fd12:3456::5", &tlla(THIRD));
        assert_eq!(
            conflict_in(&na, OWN, &addresses),
            conflict("fd12:3456::5", THIRD)
        );
        // Without the option, the frame's source is the best answer there is.
        let bare = advertisement(OTHER, "fd12:3456::5", &[]);
        assert_eq!(
            conflict_in(&bare, OWN, &addresses),
            conflict("fd12:3456::5", OTHER)
        );
        // Unknown options are walked over.
        let mut options = vec![14, 1, 1, 2, 3, 4, 5, 6];
        options.extend_from_slice(&tlla(THIRD));
        let with_nonce = advertisement(OTHER, "fd12:3456::5", &options);
        assert_eq!(
            conflict_in(&with_nonce, OWN, &addresses),
            conflict("fd12:3456::5", THIRD)
        );
    }

    #[test]
    fn ethernet_padding_after_the_packet_is_ignored() {
        let mut na = advertisement(OTHER, "fd12:3456::5", &[]);
        na.extend_from_slice(&[0xff; 8]);
        assert_eq!(
            conflict_in(&na, OWN, &[ip("fd12:3456::5")]),
            conflict("fd12:3456::5", OTHER)
        );
        let mut reply = arp_frame(2, OTHER, "192.168.120.5", "0.0.0.0");
        reply.resize(60, 0);
        assert_eq!(
            conflict_in(&reply, OWN, &[ip("192.168.120.5")]),
            conflict("192.168.120.5", OTHER)
        );
    }

    #[test]
    fn advertisements_failing_rfc_4861_checks_are_ignored() {
        let addresses = [ip("fd12:3456::5")];
        let message = nd_message(136, "fd12:3456::5", &tlla(THIRD));
        let forwarded = ipv6_frame(OTHER, "fd12:3456::5", "ff02::1", 64, &message);
        assert_eq!(conflict_in(&forwarded, OWN, &addresses), None);

        let mut coded = message.clone();
        coded[1] = 1;
        let coded = ipv6_frame(OTHER, "fd12:3456::5", "ff02::1", 255, &coded);
        assert_eq!(conflict_in(&coded, OWN, &addresses), None);

        let zero_length = advertisement(OTHER, "fd12:3456::5", &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(conflict_in(&zero_length, OWN, &addresses), None);

        // An option running past the end of the message.
        let overrun = advertisement(OTHER, "fd12:3456::5", &[2, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(conflict_in(&overrun, OWN, &addresses), None);

        // Not ICMPv6 directly after the IPv6 header (here a hop-by-hop header).
        let mut hop_by_hop = advertisement(OTHER, "fd12:3456::5", &[]);
        hop_by_hop[14 + 6] = 0;
        assert_eq!(conflict_in(&hop_by_hop, OWN, &addresses), None);

        // Not IPv6 at all, under the IPv6 ethertype.
        let mut version4 = advertisement(OTHER, "fd12:3456::5", &[]);
        version4[14] = 0x45;
        assert_eq!(conflict_in(&version4, OWN, &addresses), None);
    }

    #[test]
    fn a_rival_dad_solicitation_is_a_conflict() {
        let addresses = [ip("fd12:3456::5")];
        let rival = dad_solicitation_frame(OTHER, v6("fd12:3456::5"));
        assert_eq!(
            conflict_in(&rival, OWN, &addresses),
            conflict("fd12:3456::5", OTHER)
        );
        // An address resolution question from a configured address is not.
        let question = ipv6_frame(
            OTHER,
            "fd12:3456::9",
            "ff02::1:ff00:5",
            255,
            &nd_message(135, "fd12:3456::5", &[1, 1, 2, 0, 0, 0, 0, 10]),
        );
        assert_eq!(conflict_in(&question, OWN, &addresses), None);
    }

    #[test]
    fn advertisements_for_other_targets_are_no_conflict() {
        let na = advertisement(OTHER, "fd12:3456::6", &tlla(OTHER));
        assert_eq!(conflict_in(&na, OWN, &[ip("fd12:3456::5")]), None);
        // The same numeric address in the other family is another address.
        let reply = arp_frame(2, OTHER, "192.168.120.5", "0.0.0.0");
        assert_eq!(
            conflict_in(&reply, OWN, &[ip("::ffff:192.168.120.5")]),
            None
        );
    }

    #[test]
    fn nothing_to_probe_returns_at_once_without_a_socket() {
        let started = Instant::now();
        let result = probe("", OWN, &[], Duration::from_secs(5)).unwrap();
        assert_eq!(result, None);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn bad_arguments_fail_before_any_socket() {
        let timeout = Duration::from_millis(10);
        for address in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "ff02::1",
            "::1",
        ] {
            let err = probe("eth0", OWN, &[ip(address)], timeout).unwrap_err();
            assert!(format!("{err:#}").contains(address), "{address}: {err:#}");
        }
        for name in ["", "a-name-that-is-too-long", "nul\0inside"] {
            assert!(probe(name, OWN, &[ip("192.168.120.5")], timeout).is_err());
        }
        assert!(probe("eth0", OWN, &[ip("192.168.120.5")], Duration::MAX).is_err());
    }

    #[test]
    fn conflict_reads_well() {
        let c = Conflict {
            address: ip("192.168.120.5"),
            mac: [0x02, 0xab, 0, 0, 0, 0x0a],
        };
        assert_eq!(
            c.to_string(),
            "192.168.120.5 is already used by 02:ab:00:00:00:0a"
        );
    }
}
