//! The round trip to each peer over the underlay, measured with one ICMP echo each, on a thread
//! of its own while `setup` builds the container's port: what [`super::window`] derives the
//! listening window from.
//!
//! Each peer gets [`ECHOES`] echoes one after the other, each timed from just before its send
//! to the kernel's receive timestamp of its reply, and the shortest counts: the underlay's own
//! round trip, without the wait for the peer's link-layer address (the first echo's) or for this
//! thread to be scheduled. A peer none of whose replies comes within [`MEASURE_FOR`] (down, or
//! dropping ICMP) counts as unmeasured. A reply counts only from the peer's address, with this
//! measurement's identifier and the outstanding echo's sequence number; a container cannot
//! send one (port security holds it to its own source address). Raw ICMP sockets need CAP_NET_RAW, which `setup` has (netavark runs it as root);
//! without it, or with no route to a peer, every peer it concerns counts as unmeasured.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// How long the thread waits for the replies. `setup` installs the port's flows meanwhile, which
/// takes longer than this on any host, so waiting for the thread costs nothing when the peers
/// answer; a peer that does not answer costs the constant window anyway.
pub const MEASURE_FOR: Duration = Duration::from_millis(20);

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
/// Type, code, checksum, identifier, sequence number.
const ECHO_HEADER: usize = 8;

/// A measurement under way: [`RoundTrips::finish`] gives its result.
pub struct RoundTrips {
    thread: Option<JoinHandle<Vec<Option<Duration>>>>,
    peers: usize,
}

impl RoundTrips {
    /// Sends one echo to each of `peers` and starts collecting the replies. Never fails: what
    /// cannot be measured is reported unmeasured by [`RoundTrips::finish`].
    pub fn start(peers: &[IpAddr]) -> RoundTrips {
        let owned = peers.to_vec();
        let thread = std::thread::Builder::new()
            .name("dad-rtt".to_string())
            .spawn(move || measure(&owned, MEASURE_FOR))
            .map_err(|err| log::debug!("no thread to measure the round trips: {err}"))
            .ok();
        RoundTrips {
            thread,
            peers: peers.len(),
        }
    }

    /// The round trip to each peer, in the order given to [`RoundTrips::start`] (`None`: not
    /// measured), waiting for the measurement to end (at most [`MEASURE_FOR`] after its start).
    pub fn finish(self) -> Vec<Option<Duration>> {
        let measured = self.thread.and_then(|thread| thread.join().ok());
        measured.unwrap_or_else(|| vec![None; self.peers])
    }
}

/// Echoes per peer, one after the other (the next sent when the last is answered); the
/// shortest round trip counts. The first echo may wait for the kernel to resolve the peer's
/// link-layer address, and any may wait behind other work on a busy host: the shortest is the
/// underlay's own.
const ECHOES: u16 = 3;

/// One peer's measurement in progress.
struct PeerState {
    address: IpAddr,
    /// Echoes sent so far; the last one is the one outstanding.
    sent: u16,
    /// When the outstanding echo left (the system clock, which the kernel's receive timestamps
    /// are read against).
    sent_at: Option<SystemTime>,
    answered: u16,
    shortest: Option<Duration>,
}

impl PeerState {
    fn done(&self) -> bool {
        self.sent_at.is_none() || self.answered >= ECHOES
    }
}

/// Sends the echoes and reads the replies for up to `wait`.
fn measure(peers: &[IpAddr], wait: Duration) -> Vec<Option<Duration>> {
    let started = Instant::now();
    let deadline = started + wait;
    let ident = identifier();
    let v4 = peers
        .iter()
        .any(IpAddr::is_ipv4)
        .then(|| open(false))
        .flatten();
    let v6 = peers
        .iter()
        .any(IpAddr::is_ipv6)
        .then(|| open(true))
        .flatten();
    let socket_for = |peer: &IpAddr| if peer.is_ipv4() { &v4 } else { &v6 };
    let mut states: Vec<PeerState> = peers
        .iter()
        .map(|&address| PeerState {
            address,
            sent: 0,
            sent_at: None,
            answered: 0,
            shortest: None,
        })
        .collect();
    let send = |state: &mut PeerState, index: usize| {
        state.sent_at = None;
        let Some(socket) = socket_for(&state.address) else {
            return;
        };
        let Some(seq) = sequence(index, state.sent) else {
            return;
        };
        let request = echo_request(state.address.is_ipv6(), ident, seq);
        let to = SockAddr::from(SocketAddr::new(state.address, 0));
        let at = SystemTime::now();
        match socket.send_to(&request, &to) {
            Ok(_) => {
                state.sent_at = Some(at);
                state.sent += 1;
            }
            Err(err) => log::debug!("echo to peer {}: {err}", state.address),
        }
    };
    for (index, state) in states.iter_mut().enumerate() {
        send(state, index);
    }
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
    while !states.iter().all(PeerState::done) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        if !wait_readable(&[&v4, &v6], remaining) {
            // Timed out (or a signal): the loop measures the time left again.
            continue;
        }
        for socket in [&v4, &v6].into_iter().flatten() {
            while let Ok((len, from)) = socket.recv_from(&mut buf) {
                let arrived = receive_time(socket);
                // SAFETY: recv_from initialised the first `len` bytes of `buf`.
                let bytes: Vec<u8> = buf[..len.min(buf.len())]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                let Some(from) = from.as_socket().map(|a| a.ip()) else {
                    continue;
                };
                let Some((index, echo)) = parse_echo_reply(&bytes, from.is_ipv6(), ident)
                    .and_then(|seq| peer_of(seq, states.len()))
                else {
                    continue;
                };
                let state = &mut states[index];
                // Only the outstanding echo's reply, from the peer it went to.
                let (Some(sent_at), true) = (state.sent_at, state.address == from) else {
                    continue;
                };
                if echo + 1 != state.sent {
                    continue;
                }
                let rtt = arrived.duration_since(sent_at).unwrap_or_default();
                state.shortest = Some(state.shortest.map_or(rtt, |s| s.min(rtt)));
                state.answered += 1;
                if state.answered < ECHOES {
                    send(state, index);
                } else {
                    state.sent_at = None;
                }
            }
        }
    }
    let result: Vec<Option<Duration>> = states.iter().map(|s| s.shortest).collect();
    log::debug!(
        "round trips to the peers {peers:?}: {result:?} (measured in {:?})",
        started.elapsed()
    );
    result
}

/// The sequence number of echo `echo` to peer number `index`: the peer in the high bits.
fn sequence(index: usize, echo: u16) -> Option<u16> {
    let index = u16::try_from(index).ok()?;
    index.checked_mul(ECHOES)?.checked_add(echo)
}

/// The peer number and echo number a sequence number stands for, among `peers` peers.
fn peer_of(seq: u16, peers: usize) -> Option<(usize, u16)> {
    let index = usize::from(seq / ECHOES);
    (index < peers).then_some((index, seq % ECHOES))
}

/// When the kernel received the packet just read from `socket` (SO_TIMESTAMPNS, read back with
/// SIOCGSTAMPNS): the thread may have been scheduled long after. Now, if the kernel says nothing.
fn receive_time(socket: &Socket) -> SystemTime {
    let mut stamp = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: SIOCGSTAMPNS writes one timespec to the pointer passed, which points to `stamp`,
    // alive and of that type.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCGSTAMPNS as _, &mut stamp) };
    let (Ok(secs), Ok(nanos)) = (u64::try_from(stamp.tv_sec), u32::try_from(stamp.tv_nsec)) else {
        return SystemTime::now();
    };
    if rc != 0 || secs == 0 {
        return SystemTime::now();
    }
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// `SIOCGSTAMPNS` of `<asm-generic/sockios.h>` (its 64-bit time value on 64-bit systems).
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;
/// `SO_TIMESTAMPNS` of `<asm-generic/socket.h>`.
const SO_TIMESTAMPNS: libc::c_int = 35;

/// A non-blocking raw ICMP (or ICMPv6) socket, `None` when it cannot be had.
fn open(v6: bool) -> Option<Socket> {
    let (domain, protocol) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol))
        .map_err(|err| log::debug!("raw ICMP socket (IPv6: {v6}): {err}"))
        .ok()?;
    socket.set_nonblocking(true).ok()?;
    let on: libc::c_int = 1;
    // SAFETY: the option value is one c_int, passed by pointer with its exact size; the kernel
    // only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::debug!(
            "no receive timestamps on the ICMP socket: {}",
            std::io::Error::last_os_error()
        );
    }
    Some(socket)
}

/// Waits up to `timeout` until one of `sockets` has something to read.
fn wait_readable(sockets: &[&Option<Socket>], timeout: Duration) -> bool {
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .filter_map(|s| s.as_ref())
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Rounded up, so that the wait does not end just before the deadline.
    let millis =
        libc::c_int::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fds` is a live array of initialised pollfd of the length passed; poll(2) writes
    // only their `revents`.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    rc > 0
}

/// An identifier for this process's echoes, told apart from other pings on the host.
fn identifier() -> u16 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (std::process::id() ^ nanos) as u16
}

/// An echo request (ICMP header, no payload). For ICMPv6 the kernel fills in the checksum (it
/// covers a pseudo-header only the kernel knows the source of).
fn echo_request(v6: bool, ident: u16, seq: u16) -> Vec<u8> {
    let kind = if v6 {
        ICMPV6_ECHO_REQUEST
    } else {
        ICMP_ECHO_REQUEST
    };
    let mut packet = vec![kind, 0, 0, 0];
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    if !v6 {
        let sum = internet_checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The sequence number of an echo reply with identifier `ident`, or `None` for anything else.
/// A raw IPv4 socket reads the IP header too; a raw ICMPv6 socket does not.
fn parse_echo_reply(bytes: &[u8], v6: bool, ident: u16) -> Option<u16> {
    let icmp = if v6 {
        bytes
    } else {
        let first = *bytes.first()?;
        if first >> 4 != 4 {
            return None;
        }
        bytes.get(usize::from(first & 0x0f) * 4..)?
    };
    let header = icmp.get(..ECHO_HEADER)?;
    let reply = if v6 {
        ICMPV6_ECHO_REPLY
    } else {
        ICMP_ECHO_REPLY
    };
    if header[0] != reply || header[1] != 0 || header[4..6] != ident.to_be_bytes() {
        return None;
    }
    Some(u16::from_be_bytes([header[6], header[7]]))
}

/// RFC 1071: the ones' complement of the ones' complement sum of the 16-bit words.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_request_carries_a_valid_checksum() {
        let request = echo_request(false, 0x1234, 7);
        assert_eq!(&request[..2], &[8, 0]);
        assert_eq!(&request[4..], &[0x12, 0x34, 0, 7]);
        // A packet with its checksum in place sums to zero.
        assert_eq!(internet_checksum(&request), 0);
        // RFC 1071's example words.
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn an_ipv6_request_leaves_the_checksum_to_the_kernel() {
        assert_eq!(echo_request(true, 1, 2), vec![128, 0, 0, 0, 0, 1, 0, 2]);
    }

    #[test]
    fn replies_are_matched_by_type_and_identifier() {
        let mut v4 = vec![0x45u8];
        v4.extend_from_slice(&[0; 19]);
        v4.extend_from_slice(&[0, 0, 0xaa, 0xbb, 0x12, 0x34, 0, 3]);
        assert_eq!(parse_echo_reply(&v4, false, 0x1234), Some(3));
        assert_eq!(parse_echo_reply(&v4, false, 0x1235), None);
        // A header with options (IHL 6) is skipped whole.
        let mut long = vec![0x46u8];
        long.extend_from_slice(&[0; 23]);
        long.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 1, 0]);
        assert_eq!(parse_echo_reply(&long, false, 0x1234), Some(256));
        // A request (our own, looped back) or a truncated packet is no reply.
        let mut request = v4.clone();
        request[20] = ICMP_ECHO_REQUEST;
        assert_eq!(parse_echo_reply(&request, false, 0x1234), None);
        assert_eq!(parse_echo_reply(&v4[..25], false, 0x1234), None);
        assert_eq!(parse_echo_reply(&[], false, 0x1234), None);

        let v6 = [129u8, 0, 0, 0, 0x12, 0x34, 0, 9];
        assert_eq!(parse_echo_reply(&v6, true, 0x1234), Some(9));
        assert_eq!(parse_echo_reply(&v6[..7], true, 0x1234), None);
        assert_eq!(
            parse_echo_reply(&[128, 0, 0, 0, 0x12, 0x34, 0, 9], true, 0x1234),
            None
        );
    }

    #[test]
    fn sequence_numbers_name_the_peer_and_the_echo() {
        for index in [0usize, 1, 7, 300] {
            for echo in 0..ECHOES {
                let seq = sequence(index, echo).unwrap();
                assert_eq!(peer_of(seq, 301), Some((index, echo)));
            }
        }
        assert_eq!(peer_of(sequence(5, 0).unwrap(), 5), None, "no sixth peer");
        assert_eq!(sequence(usize::from(u16::MAX), 0), None);
        assert_eq!(sequence(70_000, 0), None);
    }

    #[test]
    fn a_measurement_without_peers_is_empty_and_immediate() {
        let started = Instant::now();
        assert_eq!(
            RoundTrips::start(&[]).finish(),
            Vec::<Option<Duration>>::new()
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
