//! Frames out: the ARP probe and the DAD neighbor solicitation, built by hand.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    ARP_HTYPE_ETHERNET, ARP_LEN, ARP_OP_REQUEST, BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4,
    ETHERTYPE_IPV6, ETH_HEADER, ICMPV6_NEIGHBOR_SOLICITATION, IPV6_HEADER, MIN_FRAME, ND_HOP_LIMIT,
    ND_MESSAGE, NEXT_HEADER_ICMPV6,
};

/// The probe frame for `address`: an ARP probe or a DAD neighbor solicitation.
pub(super) fn probe_frame(own_mac: [u8; 6], address: IpAddr) -> Vec<u8> {
    match address {
        IpAddr::V4(v4) => arp_probe_frame(own_mac, v4).to_vec(),
        IpAddr::V6(v6) => dad_solicitation_frame(own_mac, v6).to_vec(),
    }
}

/// An RFC 5227 ARP probe: broadcast request, sender hardware address ours, sender protocol
/// address 0.0.0.0 (so that no one's ARP cache learns the address from it), target hardware
/// address zero, target protocol address the probed one.
pub(super) fn arp_probe_frame(own_mac: [u8; 6], address: Ipv4Addr) -> [u8; MIN_FRAME] {
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
pub(super) fn dad_solicitation_frame(own_mac: [u8; 6], address: Ipv6Addr) -> [u8; DAD_FRAME] {
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
pub(super) fn solicited_node(address: &Ipv6Addr) -> Ipv6Addr {
    let o = address.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address an IPv6 multicast group maps to (RFC 2464 §7): 33:33 and the low 32
/// bits of the group.
pub(super) fn multicast_mac(group: &Ipv6Addr) -> [u8; 6] {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{v6, OWN};
    use super::super::ALL_NODES;
    use super::*;

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
}
