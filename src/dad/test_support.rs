//! Addresses and frame builders shared by the unit tests of the probe, the frames and the parser.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Conflict, BROADCAST_MAC};

pub(super) const OWN: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
pub(super) const OTHER: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub(super) const THIRD: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0c];

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub(super) fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An ARP packet (no Ethernet header).
pub(super) fn arp(op: u16, sha: [u8; 6], spa: &str, tha: [u8; 6], tpa: &str) -> Vec<u8> {
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

pub(super) fn arp_frame(op: u16, sha: [u8; 6], spa: &str, tpa: &str) -> Vec<u8> {
    ethernet(BROADCAST_MAC, sha, 0x0806, &arp(op, sha, spa, [0; 6], tpa))
}

/// A neighbor discovery message (type 135 or 136) for `target` with `options` appended,
/// checksum zero (this module does not verify it).
pub(super) fn nd_message(kind: u8, target: &str, options: &[u8]) -> Vec<u8> {
    let mut message = vec![kind, 0, 0, 0, 0x60, 0, 0, 0];
    message.extend_from_slice(&v6(target).octets());
    message.extend_from_slice(options);
    message
}

pub(super) fn tlla(mac: [u8; 6]) -> Vec<u8> {
    let mut option = vec![2, 1];
    option.extend_from_slice(&mac);
    option
}

/// An Ethernet frame carrying `message` in an IPv6 packet with hop limit `hops`.
pub(super) fn ipv6_frame(
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    hops: u8,
    message: &[u8],
) -> Vec<u8> {
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&(message.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[58, hops]);
    packet.extend_from_slice(&v6(src).octets());
    packet.extend_from_slice(&v6(dst).octets());
    packet.extend_from_slice(message);
    ethernet([0x33, 0x33, 0, 0, 0, 1], src_mac, 0x86dd, &packet)
}

pub(super) fn advertisement(src_mac: [u8; 6], target: &str, options: &[u8]) -> Vec<u8> {
    ipv6_frame(
        src_mac,
        target,
        "ff02::1",
        255,
        &nd_message(136, target, options),
    )
}

pub(super) fn conflict(address: &str, mac: [u8; 6]) -> Option<Conflict> {
    Some(Conflict {
        address: ip(address),
        mac,
    })
}
