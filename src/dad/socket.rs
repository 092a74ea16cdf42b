//! The socket: one non-blocking AF_PACKET socket bound to the probed interface.

use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::naming::{check_ifname, format_mac};

/// A non-blocking AF_PACKET raw socket bound to one interface, seeing every frame on it in both
/// directions (we write the Ethernet header ourselves and read ARP and IPv6 alike).
pub(super) struct PacketSocket {
    fd: ClosedAside,
    ifindex: libc::c_int,
}

/// One frame read from a [`PacketSocket`].
pub(super) struct Received {
    /// Bytes stored in the buffer.
    pub(super) len: usize,
    /// The frame is one this host sent (ETH_P_ALL sockets see those too), never a conflict.
    pub(super) outgoing: bool,
}

impl PacketSocket {
    /// Opens the socket in the calling thread's namespace and binds it to `ifname`.
    ///
    /// The socket is created with protocol 0, which receives nothing, and only starts receiving
    /// at `bind`, for this interface alone: created with ETH_P_ALL it would queue frames from
    /// every interface until then.
    pub(super) fn open(ifname: &str) -> Result<PacketSocket> {
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
    pub(super) fn join(&self, group: [u8; 6]) -> Result<()> {
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
                .with_context(|| format!("joining multicast group {}", format_mac(&group)));
        }
        Ok(())
    }

    /// Sends one whole frame, waiting for room in the socket's buffer no later than `deadline`.
    pub(super) fn send(&self, frame: &[u8], deadline: Instant) -> Result<()> {
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
    pub(super) fn wait_readable(&self, timeout: Duration) -> Result<bool> {
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
    pub(super) fn recv(&self, buf: &mut [u8]) -> Result<Option<Received>> {
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

/// An owned descriptor that is closed without waiting for the kernel when dropped.
///
/// Closing a packet socket waits for an RCU grace period in the kernel (`packet_release` calls
/// `synchronize_net`), measured at 8 to 28 ms: as much as the listening window, and more than
/// everything else a probe does. The last reference is handed to the kernel
/// ([`super::release`]), which drops it on a work queue of its own. Where the kernel does not
/// take it, the descriptor is closed on a short-lived thread, beside the configuring of the
/// addresses just found free (the process still waits for that thread before it exits); and if
/// no thread can be started, in place, slowly but surely.
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
        let fd = match super::release::hand_to_kernel(fd) {
            Ok(()) => return,
            Err((fd, err)) => {
                log::debug!("closing the probe socket on a thread (no io_uring: {err})");
                fd
            }
        };
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
