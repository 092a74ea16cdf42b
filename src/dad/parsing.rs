//! Frames in: what a received frame claims about an address. Pure, and takes nothing on trust.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    Conflict, ARP_HTYPE_ETHERNET, ARP_OP_REPLY, ARP_OP_REQUEST, ETHERTYPE_ARP, ETHERTYPE_IPV4,
    ETHERTYPE_IPV6, ETH_HEADER, ICMPV6_NEIGHBOR_ADVERTISEMENT, ICMPV6_NEIGHBOR_SOLICITATION,
    IPV6_HEADER, ND_HOP_LIMIT, ND_MESSAGE, ND_OPTION_TARGET_LINK_LAYER, NEXT_HEADER_ICMPV6,
};

/// What a received frame says about one address: that the station `mac` uses it or is probing
/// for it. Either way the address is not free for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    address: IpAddr,
    mac: [u8; 6],
}

/// The conflict `frame` (a received Ethernet frame, no VLAN tag) reveals for one of `addresses`,
/// if any. Frames from `own_mac` and claims naming `own_mac` are ours and never a conflict.
pub(super) fn conflict_in(
    frame: &[u8],
    own_mac: [u8; 6],
    addresses: &[IpAddr],
) -> Option<Conflict> {
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

#[cfg(test)]
mod tests {
    use super::super::frames::{arp_probe_frame, dad_solicitation_frame};
    use super::super::test_support::*;
    use super::super::BROADCAST_MAC;
    use super::*;

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
}
