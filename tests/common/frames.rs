//! Hand-made Ethernet frames, sent and captured with raw `AF_PACKET` sockets inside a
//! container's namespace: what a container with NET_RAW can put on the wire, and what another
//! container's interface receives, byte for byte.
//!
//! Checksums are left zero: neither OVS nor the capture looks at them, and a frame is
//! recognised by comparing all of its bytes.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use geneve_ovs::netns::Netns;

pub const BROADCAST: [u8; 6] = [0xff; 6];
/// The all-nodes group ff02::1 at the Ethernet layer.
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ARP message (op 1 request, 2 reply) broadcast from `src_mac`.
pub fn arp(src_mac: [u8; 6], op: u16, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0, 1, 0x08, 0, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&src_mac);
    p.extend_from_slice(&sender.octets());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&target.octets());
    ethernet(BROADCAST, src_mac, 0x0806, &p)
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let len = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

fn udp(src_port: u16, dst_port: u16, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src_port.to_be_bytes());
    p.extend_from_slice(&dst_port.to_be_bytes());
    p.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(data);
    p
}

/// An IPv4 UDP datagram in a frame from `src_mac` to `dst_mac`.
#[allow(clippy::too_many_arguments)]
pub fn udp4(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    data: &[u8],
) -> Vec<u8> {
    let ip = ipv4(src, dst, 17, &udp(src_port, dst_port, data));
    ethernet(dst_mac, src_mac, 0x0800, &ip)
}

/// The same datagram with an 802.1Q tag (VLAN `vid`) in front of the IPv4 header.
pub fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

fn ipv6(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    hop: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(next);
    p.push(hop);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    ethernet(dst_mac, src_mac, 0x86dd, &p)
}

/// An unsolicited neighbour advertisement (override set) for `target` at `src_mac`, to all
/// nodes.
pub fn neighbour_advertisement(src_mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&src_mac);
    ipv6(src_mac, ALL_NODES_MAC, src, ALL_NODES, 58, 255, &icmp)
}

/// A router advertisement (default router, lifetime 1800 s) with a source link-layer option.
pub fn router_advertisement(src_mac: [u8; 6], src: Ipv6Addr) -> Vec<u8> {
    let mut icmp = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&src_mac);
    ipv6(src_mac, ALL_NODES_MAC, src, ALL_NODES, 58, 255, &icmp)
}

/// An IPv6 UDP datagram to all nodes.
pub fn udp6(src_mac: [u8; 6], src: Ipv6Addr, src_port: u16, dst_port: u16, data: &[u8]) -> Vec<u8> {
    ipv6(
        src_mac,
        ALL_NODES_MAC,
        src,
        ALL_NODES,
        17,
        64,
        &udp(src_port, dst_port, data),
    )
}

/// A DHCPv4 offer (op 2, BOOTREPLY) from a server at `server` to the broadcast address.
pub fn dhcp_offer(src_mac: [u8; 6], server: Ipv4Addr, offered: Ipv4Addr) -> Vec<u8> {
    let mut bootp = vec![2, 1, 6, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x80, 0];
    bootp.extend_from_slice(&[0; 4]);
    bootp.extend_from_slice(&offered.octets());
    bootp.extend_from_slice(&server.octets());
    bootp.extend_from_slice(&[0; 4]);
    bootp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    bootp.extend_from_slice(&[0; 10 + 64 + 128]);
    bootp.extend_from_slice(&[99, 130, 83, 99, 53, 1, 2, 54, 4]);
    bootp.extend_from_slice(&server.octets());
    bootp.push(255);
    udp4(
        BROADCAST,
        src_mac,
        server,
        Ipv4Addr::BROADCAST,
        67,
        68,
        &bootp,
    )
}

fn packet_socket(ifname: &str) -> Result<(std::os::fd::OwnedFd, libc::sockaddr_ll)> {
    use std::os::fd::FromRawFd;
    let name = std::ffi::CString::new(ifname)?;
    // SAFETY: plain libc calls on a descriptor we own; the sockaddr is fully initialised.
    unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        if index == 0 {
            bail!("no interface {ifname}: {}", std::io::Error::last_os_error());
        }
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        );
        if fd < 0 {
            bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
        }
        let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = index as i32;
        addr.sll_halen = 6;
        Ok((fd, addr))
    }
}

/// Sends `frames` as they are on `ifname` of the namespace at `netns`.
pub fn send(netns: &Path, ifname: &str, frames: &[Vec<u8>]) -> Result<()> {
    use std::os::fd::AsRawFd;
    Netns::open(netns)?.enter(|| {
        let (fd, addr) = packet_socket(ifname)?;
        for frame in frames {
            // SAFETY: the buffer and the address outlive the call.
            let sent = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    std::ptr::addr_of!(addr).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if sent < 0 {
                bail!(
                    "sending a frame on {ifname}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(())
    })
}

/// Captures every frame `ifname` of the namespace at `netns` receives during `window`, in a
/// thread; join it for the frames. The socket is open when this returns.
pub fn capture(
    netns: &Path,
    ifname: &str,
    window: Duration,
) -> Result<JoinHandle<Result<Vec<Vec<u8>>>>> {
    use std::os::fd::AsRawFd;
    let netns = netns.to_path_buf();
    let ifname = ifname.to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        Netns::open(&netns)?.enter(|| {
            let opened = packet_socket(&ifname);
            let _ = ready_tx.send(opened.is_ok());
            let (fd, addr) = opened?;
            // SAFETY: binding to a fully initialised sockaddr_ll; timeouts on our descriptor.
            unsafe {
                if libc::bind(
                    fd.as_raw_fd(),
                    std::ptr::addr_of!(addr).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                ) != 0
                {
                    bail!("bind on {ifname}: {}", std::io::Error::last_os_error());
                }
                let tv = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 50_000,
                };
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    std::ptr::addr_of!(tv).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                );
            }
            let deadline = Instant::now() + window;
            let mut frames = Vec::new();
            let mut buf = vec![0u8; 65536];
            while Instant::now() < deadline {
                // SAFETY: receiving into a buffer we own, of the length given.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 {
                    frames.push(buf[..n as usize].to_vec());
                }
            }
            Ok(frames)
        })
    });
    let opened = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .context("the capture thread did not start")?;
    if !opened {
        return match handle.join() {
            Ok(Err(e)) => Err(e),
            _ => bail!("the capture socket could not be opened"),
        };
    }
    Ok(handle)
}
