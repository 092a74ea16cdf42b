//! TX checksum offload control through the legacy `SIOCETHTOOL` ioctl.
//!
//! OVS's userspace datapath reads veths through AF_PACKET and never fills in checksums the kernel
//! left for "hardware" to compute. The end of the veth that is not in OVS (the container end) must
//! therefore compute its own TX checksums, or TCP silently fails while ping works. Turning the
//! offload off is one ioctl; this module is that ioctl and nothing else.
//!
//! The ioctl resolves the interface name in the network namespace of the socket it is issued on,
//! and the socket is created here in the calling thread's namespace: call these functions inside
//! [`crate::netns::Netns::enter`] to reach a container's interface.

use std::ffi::c_char;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};

/// `ETHTOOL_GTXCSUM` from `<linux/ethtool.h>`: read the TX checksum offload state.
const ETHTOOL_GTXCSUM: u32 = 0x0000_0016;
/// `ETHTOOL_STXCSUM` from `<linux/ethtool.h>`: set the TX checksum offload state.
const ETHTOOL_STXCSUM: u32 = 0x0000_0017;

/// `struct ethtool_value` from `<linux/ethtool.h>`: the payload of the simple get/set commands.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Turns TX checksum offload off on `ifname` (what `ethtool -K IFNAME tx off` does).
///
/// The kernel also drops the offloads that depend on it (TSO and friends), as it must.
pub fn disable_tx_checksum(ifname: &str) -> Result<()> {
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    ethtool_ioctl(ifname, &mut value)
        .with_context(|| format!("turning TX checksum offload off on {ifname}"))
}

/// Turns TX checksum offload back on for `ifname` (`ethtool -K IFNAME tx on`); the offloads that
/// depend on it and are still requested (TSO and friends) come back with it.
pub fn enable_tx_checksum(ifname: &str) -> Result<()> {
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 1,
    };
    ethtool_ioctl(ifname, &mut value)
        .with_context(|| format!("turning TX checksum offload on on {ifname}"))
}

/// Tells whether TX checksum offload is on for `ifname`, so that tests and diagnostics can check
/// what [`disable_tx_checksum`] did.
pub fn tx_checksum_enabled(ifname: &str) -> Result<bool> {
    let mut value = EthtoolValue {
        cmd: ETHTOOL_GTXCSUM,
        data: 0,
    };
    ethtool_ioctl(ifname, &mut value)
        .with_context(|| format!("reading TX checksum offload state of {ifname}"))?;
    Ok(value.data != 0)
}

/// Issues `SIOCETHTOOL` for `ifname` with `value` as the command buffer; the kernel writes its
/// answer back into `value`.
fn ethtool_ioctl(ifname: &str, value: &mut EthtoolValue) -> Result<()> {
    let mut request = ifreq_for(ifname)?;
    request.ifr_ifru.ifru_data = (value as *mut EthtoolValue).cast::<c_char>();

    let socket = control_socket()?;
    // SAFETY: `request` is a fully initialised `ifreq` whose name is NUL-terminated within
    // IFNAMSIZ, and whose data pointer refers to `value`, a live, exclusively borrowed
    // `ethtool_value` that outlives the call; SIOCETHTOOL reads the `cmd` field to learn the size
    // of the buffer (8 bytes for the GTXCSUM/STXCSUM commands) and writes at most that much.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL as _, &mut request) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("SIOCETHTOOL");
    }
    Ok(())
}

/// A datagram socket to carry the ioctl. AF_UNIX rather than AF_INET: it exists even where IPv4
/// is disabled, and any socket reaches the device ioctls of its namespace.
fn control_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments; no pointers involved.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("creating a socket for SIOCETHTOOL");
    }
    // SAFETY: `fd` was just returned by socket(2), is valid, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Builds a zeroed `ifreq` carrying `ifname`, refusing names the kernel could not hold.
fn ifreq_for(ifname: &str) -> Result<libc::ifreq> {
    crate::naming::check_ifname(ifname)?;
    let bytes = ifname.as_bytes();
    // SAFETY: `ifreq` is a plain C struct (byte array plus a union of integers, addresses and a
    // raw pointer) for which all-zero bytes is a valid value: an empty name, a null data pointer.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = *byte as c_char;
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_names_the_kernel_cannot_hold() {
        assert!(ifreq_for("").is_err());
        assert!(ifreq_for("a-name-that-is-too-long").is_err());
        assert!(ifreq_for("nul\0inside").is_err());
        let ok = ifreq_for("eth0").unwrap();
        assert_eq!(ok.ifr_name[3], b'0' as c_char);
        assert_eq!(ok.ifr_name[4], 0);
    }
}
