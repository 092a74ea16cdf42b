//! Closing the probe's packet socket without waiting for the kernel's grace period.
//!
//! The last close of an AF_PACKET socket waits for an RCU grace period (`packet_release` calls
//! `synchronize_net`): 8 to 28 ms on the 2-core machines this is measured on, about as long as
//! the whole probe window. A thread of its own does not take it off `setup`'s path, because the
//! process is not reaped (and netavark not answered) until every thread has left, that one too.
//!
//! So the last reference is given to the kernel instead: the descriptor is registered as a fixed
//! file of a one-entry io_uring (nothing is ever submitted to it), then both are closed. The
//! kernel tears a closed ring down on a work queue of its own, and drops its files there, so the
//! socket is released shortly afterwards without anybody waiting for it, whether or not this
//! process still runs. Until then it is a socket bound to the container's interface that nobody
//! reads: its receive queue is capped by its buffer size, and an interface deleted meanwhile
//! unbinds it, as it does any packet socket bound to it.
//!
//! Where io_uring is refused (`kernel.io_uring_disabled`, an old kernel) the caller gets the
//! descriptor back and closes it the slow way. Under a seccomp filter io_uring is not even
//! tried: a filter may kill the process for the call instead of refusing it (systemd's
//! `SystemCallFilter=` does unless told otherwise), and a container start is no place to find
//! out.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `IORING_REGISTER_FILES` of `<linux/io_uring.h>`.
const IORING_REGISTER_FILES: libc::c_uint = 2;

/// The size of `struct io_uring_params` (stable since io_uring's first kernel, 5.1). The
/// kernel reads it whole, wants its reserved fields zero, and writes the ring's layout back.
const IO_URING_PARAMS_SIZE: usize = 120;

/// Hands `fd` to the kernel to be closed after this call returns, without waiting for it.
/// Gives the descriptor back, still open, when the kernel does not take it.
pub(super) fn hand_to_kernel(fd: OwnedFd) -> Result<(), (OwnedFd, std::io::Error)> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if seccomp_mode(&status) != Some(0) {
        let why = "the process may run under a seccomp filter (Seccomp in /proc/self/status)";
        return Err((fd, std::io::Error::other(why)));
    }
    let ring = match new_ring() {
        Ok(ring) => ring,
        Err(err) => return Err((fd, err)),
    };
    let fds = [fd.as_raw_fd()];
    // SAFETY: `ring` is a live io_uring descriptor, `fds` an array of one valid descriptor that
    // outlives the call, and the count passed is its length; the kernel only reads the array.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring.as_raw_fd(),
            IORING_REGISTER_FILES,
            fds.as_ptr(),
            1 as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err((fd, std::io::Error::last_os_error()));
    }
    // The ring now holds its own reference to the socket: these closes are not the last one,
    // and return at once.
    drop(fd);
    drop(ring);
    Ok(())
}

/// The `Seccomp:` field of a `/proc/<pid>/status` text: 0 none, 1 strict, 2 filter; `None`
/// when the field is missing or unreadable.
fn seccomp_mode(status: &str) -> Option<u8> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Seccomp:"))
        .and_then(|value| value.trim().parse().ok())
}

/// A new io_uring with one entry, never to be submitted to.
fn new_ring() -> std::io::Result<OwnedFd> {
    // u32s: the struct's fields are all 32-bit or 64-bit with 32-bit alignment in between; the
    // kernel copies it as bytes.
    let mut params = [0u32; IO_URING_PARAMS_SIZE / 4];
    // SAFETY: `params` is a zeroed buffer of the size of `struct io_uring_params` that outlives
    // the call; the kernel reads and writes within it only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            1 as libc::c_uint,
            params.as_mut_ptr(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(rc)
        .map_err(|_| std::io::Error::other(format!("io_uring_setup returned {rc}")))?;
    // SAFETY: `fd` was just returned by io_uring_setup(2), is valid, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The inode numbers of the packet sockets of this network namespace.
    fn packet_socket_inodes() -> Vec<String> {
        let table = std::fs::read_to_string("/proc/net/packet").expect("reading /proc/net/packet");
        let mut lines = table.lines();
        let header: Vec<&str> = lines
            .next()
            .expect("a header line")
            .split_whitespace()
            .collect();
        let column = header
            .iter()
            .position(|name| *name == "Inode")
            .expect("an Inode column");
        lines
            .filter_map(|line| line.split_whitespace().nth(column).map(str::to_string))
            .collect()
    }

    #[test]
    fn the_seccomp_mode_is_read_from_the_status_text() {
        let status = "Name:\tgeneve-ovs\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        assert_eq!(seccomp_mode(status), Some(2));
        assert_eq!(seccomp_mode("Seccomp:\t0\n"), Some(0));
        assert_eq!(seccomp_mode("Name:\tx\n"), None);
        assert_eq!(seccomp_mode("Seccomp:\tmany\n"), None);
        assert_eq!(seccomp_mode(""), None);
    }

    /// Needs CAP_NET_RAW for the packet socket: run as root, as the suite is. Where the kernel
    /// allows io_uring (`kernel.io_uring_disabled` is 0) the hand-over must work.
    #[test]
    fn a_handed_socket_is_closed_here_and_released_by_the_kernel() {
        // SAFETY: plain socket(2) call with constant arguments.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(
            raw >= 0,
            "socket(AF_PACKET): {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: just returned by socket(2), owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let target = std::fs::read_link(format!("/proc/self/fd/{raw}")).expect("the socket's link");
        let inode = target
            .to_string_lossy()
            .trim_start_matches("socket:[")
            .trim_end_matches(']')
            .to_string();
        assert!(
            packet_socket_inodes().contains(&inode),
            "{inode} not in /proc/net/packet"
        );

        let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .map(|text| text.trim() != "0")
            .unwrap_or(false)
            || seccomp_mode(&std::fs::read_to_string("/proc/self/status").unwrap()) != Some(0);
        match hand_to_kernel(fd) {
            Ok(()) => {
                let still_here = std::fs::read_link(format!("/proc/self/fd/{raw}"))
                    .is_ok_and(|now| now == target);
                assert!(!still_here, "the descriptor is still open in this process");
                let deadline = Instant::now() + Duration::from_secs(5);
                while packet_socket_inodes().contains(&inode) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                assert!(
                    !packet_socket_inodes().contains(&inode),
                    "the kernel did not release the handed socket within 5 s"
                );
            }
            Err((fd, err)) => {
                assert!(
                    disabled,
                    "io_uring is allowed here, yet the hand-over failed: {err}"
                );
                // Refused: the caller has it back, open.
                assert_eq!(
                    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok(),
                    Some(target)
                );
            }
        }
    }
}
