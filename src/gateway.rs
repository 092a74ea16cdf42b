//! The host side of a network's gateway port: its addresses, its link state, and IP
//! forwarding, so that containers of a non-internal network reach beyond the overlay through
//! their own host.
//!
//! The port itself (an OVS internal port with the network's gateway MAC) is created by
//! [`crate::ovs`]; ovs-vswitchd makes the network device, and this module configures it.

use anyhow::{Context, Result};
use ipnet::IpNet;

use crate::netlink::{is_exists_error, Netlink};

/// Puts `addresses` on the gateway port `name` (keeping any already there) and brings it up,
/// then enables forwarding for the families in use and `route_localnet` on the port, as
/// podman's bridge driver does.
pub fn configure(name: &str, addresses: &[IpNet]) -> Result<()> {
    let netlink = Netlink::open()?;
    let link = netlink.link_by_name(name)?.with_context(|| {
        format!("the gateway port {name} has no network device (is ovs-vswitchd running?)")
    })?;
    for address in addresses {
        match netlink.add_address(link.index, *address) {
            Ok(()) => {}
            Err(err) if is_exists_error(&err) => {}
            Err(err) => {
                return Err(err.context(format!("adding gateway address {address} to {name}")))
            }
        }
    }
    netlink.set_up(link.index)?;
    if addresses.iter().any(|a| a.addr().is_ipv4()) {
        enable("/proc/sys/net/ipv4/ip_forward")?;
        // The host reaching published ports through 127.0.0.1: after the DNAT the packet
        // leaves through this port with source 127.0.0.1, which the kernel drops as martian
        // unless the port routes the loopback net (the firewall masquerades it, and drops a
        // container's packets to 127.0.0.0/8). IPv6 has no such setting: ::1 is never routed.
        enable(&format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"))?;
    }
    if addresses.iter().any(|a| a.addr().is_ipv6()) {
        enable("/proc/sys/net/ipv6/conf/all/forwarding")?;
    }
    Ok(())
}

fn enable(path: &str) -> Result<()> {
    let current = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    if current.trim() != "1" {
        std::fs::write(path, "1").with_context(|| format!("writing 1 to {path}"))?;
    }
    Ok(())
}
