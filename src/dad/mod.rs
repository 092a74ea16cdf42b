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
//! How long to listen is [`window`]'s business: by default a window derived from the round trip
//! to the peers, which [`round_trip`] measures while `setup` builds the port ([`PendingWindow`]).
//!
//! Cost: without a conflict a probe takes its timeout plus a fraction of a millisecond (socket
//! setup and the sends). Closing a packet socket costs the kernel an RCU grace period (8 to
//! 28 ms here), so the socket is handed to the kernel to close ([`release`]). No MLD
//! report is sent for the groups listened to: the overlay bridge floods multicast.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::naming::{check_ifname, format_mac};

mod frames;
mod parsing;
mod release;
pub mod round_trip;
mod socket;
pub mod window;

use frames::{multicast_mac, probe_frame, solicited_node};
use parsing::conflict_in;
use socket::PacketSocket;

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
            format_mac(&self.mac)
        )
    }
}

/// The listening window of one `setup`, worked out while the container's port is being built:
/// started before the port exists, finished just before the probe.
pub struct PendingWindow {
    window: window::Window,
    round_trips: Option<round_trip::RoundTrips>,
}

impl PendingWindow {
    /// Starts measuring the round trips to `peers` when the window is to be derived from them.
    /// Call it in the host's network namespace, where the underlay is.
    pub fn start(window: window::Window, peers: &[IpAddr]) -> PendingWindow {
        let round_trips =
            (window == window::Window::Measured).then(|| round_trip::RoundTrips::start(peers));
        PendingWindow {
            window,
            round_trips,
        }
    }

    /// The window to listen for: the operator's constant, or the one derived from the
    /// measurement (waiting for it to end, at most [`round_trip::MEASURE_FOR`] after its start).
    pub fn finish(self) -> Duration {
        match (self.window, self.round_trips) {
            (window::Window::Fixed(window), _) => window,
            (window::Window::Measured, round_trips) => {
                let measured = round_trips.map(|r| r.finish()).unwrap_or_default();
                let window = window::measured_window(&measured);
                log::debug!("address probes listen {window:?} (round trips {measured:?})");
                window
            }
        }
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

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{ip, OWN};
    use super::*;

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
