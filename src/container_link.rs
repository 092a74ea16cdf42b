//! The container's network interface: a veth pair from the host into the container namespace,
//! configured the way netavark's bridge driver configures it, so users get what they expect.
//!
//! [`attach`] is all-or-nothing: once the veth exists, any later failure deletes it again before
//! the error is returned, so a failed setup leaves neither a host end nor a container interface
//! behind. It is [`create`] (the pair, up, without addresses) then [`PendingLink::configure`]
//! (addresses and routes); `setup` calls the two itself, to attach the host end to OVS and probe
//! the overlay for the addresses in between. [`detach`] is idempotent.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use ipnet::IpNet;

use crate::dad;
use crate::ethtool;
use crate::naming::check_ifname;
use crate::netlink::{is_exists_error, Netlink, RouteSpec, VethSpec};
use crate::netns::Netns;

/// A route the container gets through its interface (the interface is implied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRoute {
    /// Destination prefix.
    pub destination: IpNet,
    /// Next hop; must be reachable through one of the container's addresses.
    pub gateway: IpAddr,
    /// Route priority; the kernel default when `None`.
    pub metric: Option<u32>,
}

/// Everything [`attach`] needs to build one container interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLinkSpec {
    /// Name of the host end; derived from the container and network ids, so a leftover with this
    /// name can only be ours.
    pub host_name: String,
    /// Name of the interface inside the container (`eth0`, ...).
    pub interface_name: String,
    /// MTU of both ends.
    pub mtu: u32,
    /// Static MAC for the container interface; random when `None`.
    pub mac: Option<[u8; 6]>,
    /// Container addresses with the subnet's prefix length.
    pub addresses: Vec<IpNet>,
    /// Extra routes of the network.
    pub routes: Vec<ContainerRoute>,
    /// Gateways to install default routes through. A family can only have one default route
    /// with a given metric, so the first gateway of each family is used and later ones of the
    /// same family are skipped.
    pub default_gateways: Vec<IpAddr>,
    /// Turn TX checksum offload off on the container end; required when the host end is read by
    /// OVS's userspace datapath.
    pub disable_tx_checksum: bool,
    /// Make the interface ignore router advertisements whatever its addresses: on an OVN
    /// network, whose switches let every RA through (OVN allows neighbour discovery ahead of
    /// any ACL), this is what keeps a container from being anybody's router. A container
    /// without CAP_NET_ADMIN cannot turn it back on.
    pub ignore_router_advertisements: bool,
}

/// What the caller needs to know about an attached interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachedLink {
    /// The container interface's actual MAC, for the StatusBlock.
    pub mac: [u8; 6],
    /// Interface index of the host end, in the calling namespace.
    pub host_index: u32,
}

/// Creates and configures the container interface described by `spec` inside the network
/// namespace at `netns_path`, with the host end in the calling thread's namespace, up: [`create`]
/// then [`PendingLink::configure`], deleting the veth again if the second step fails.
pub fn attach(netns_path: &Path, spec: &ContainerLinkSpec) -> Result<AttachedLink> {
    let link = create(netns_path, spec)?;
    match link.configure(spec) {
        Ok(()) => Ok(link.attached()),
        Err(err) => {
            if let Err(cleanup) = detach(&spec.host_name) {
                log::error!(
                    "could not remove the half-built veth {}: {cleanup:#}",
                    spec.host_name
                );
            }
            Err(err)
        }
    }
}

/// A container interface that exists, down and without addresses or routes yet: the moment to
/// attach the host end to the switch and to probe the overlay for the addresses.
#[derive(Debug)]
pub struct PendingLink {
    netns: Netns,
    name: String,
    index: u32,
    mac: [u8; 6],
    host_index: u32,
}

/// Creates the veth pair for `spec`: the host end (named `spec.host_name`, in the calling
/// thread's namespace, up, kept out of the host's IP stack) and the container end born inside
/// the namespace at `netns_path` with its name, MAC and MTU, still down, with `lo` up and the
/// sysctls podman's bridge driver sets. Any failure deletes the veth again.
///
/// A host end of the same name that already exists is a leftover of a crashed run (the name is
/// ours): it is deleted and the creation retried once.
///
/// Cost, since setup latency matters: two netlink sockets (host and container), one `setns`
/// round trip per step, and one request per action; about 1 ms with [`PendingLink::configure`],
/// dominated by the veth creation.
pub fn create(netns_path: &Path, spec: &ContainerLinkSpec) -> Result<PendingLink> {
    check_ifname(&spec.host_name).context("host end of the veth")?;
    check_ifname(&spec.interface_name).context("container interface")?;
    let netns = Netns::open(netns_path)?;
    let host = Netlink::open()?;

    create_veth(&host, &netns, spec)?;
    match prepare(&host, netns, spec) {
        Ok(link) => Ok(link),
        Err(err) => {
            match host.delete_link(&spec.host_name) {
                Ok(_) => {}
                Err(cleanup) => log::error!(
                    "could not remove the half-built veth {}: {cleanup:#}",
                    spec.host_name
                ),
            }
            Err(err)
        }
    }
}

impl PendingLink {
    /// The container interface's actual MAC.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// What the caller keeps of the interface.
    pub fn attached(&self) -> AttachedLink {
        AttachedLink {
            mac: self.mac,
            host_index: self.host_index,
        }
    }

    /// Probes the overlay for `addresses` before they are configured (see [`dad::probe`]): the
    /// interface goes up for the probe, from inside the container's namespace, and down again.
    pub fn probe(&self, addresses: &[IpAddr], timeout: Duration) -> Result<Option<dad::Conflict>> {
        self.netns.enter(|| {
            let netlink = Netlink::open()?;
            netlink.set_up(self.index)?;
            let found = dad::probe(&self.name, self.mac, addresses, timeout);
            netlink.set_down(self.index)?;
            found
        })
    }

    /// Turns the container end's TX checksum offload back on (and with it TSO), for a host end
    /// whose reader completes checksums itself (see [`ContainerLinkSpec::disable_tx_checksum`]).
    pub fn enable_tx_checksum(&self, spec: &ContainerLinkSpec) -> Result<()> {
        self.netns
            .enter(|| ethtool::enable_tx_checksum(&spec.interface_name))
    }

    /// Adds the addresses, the routes and the default routes of `spec`. On failure the caller
    /// deletes the veth ([`detach`]).
    pub fn configure(&self, spec: &ContainerLinkSpec) -> Result<()> {
        self.netns
            .enter(|| configure_inside(self.index, spec))
            .with_context(|| {
                format!(
                    "configuring {} in network namespace {}",
                    spec.interface_name,
                    self.netns.path().display()
                )
            })
    }
}

/// Deletes the host end `host_name`, which takes the container end with it. Returns `false` when
/// it was already gone (container namespace destroyed, earlier teardown), which is not an error.
pub fn detach(host_name: &str) -> Result<bool> {
    Netlink::open()?.delete_link(host_name)
}

/// Creates the veth pair, replacing a stale host end once.
fn create_veth(host: &Netlink, netns: &Netns, spec: &ContainerLinkSpec) -> Result<()> {
    let veth = VethSpec {
        host_name: &spec.host_name,
        container_name: &spec.interface_name,
        container_ns: netns,
        mtu: spec.mtu,
        container_mac: spec.mac,
    };
    let err = match host.create_veth(&veth) {
        Ok(()) => return Ok(()),
        Err(err) if is_exists_error(&err) => err,
        Err(err) => return Err(err),
    };
    if !host.delete_link(&spec.host_name)? {
        // The host name was free, so the taken name is the container's.
        return Err(container_name_taken(err, netns, spec));
    }
    log::info!("replaced stale interface {}", spec.host_name);
    match host.create_veth(&veth) {
        // The host name is free now, so again the container's name is the one taken.
        Err(err) if is_exists_error(&err) => Err(container_name_taken(err, netns, spec)),
        other => other,
    }
}

/// Says which name clashed, since the kernel's "File exists" does not.
fn container_name_taken(
    err: anyhow::Error,
    netns: &Netns,
    spec: &ContainerLinkSpec,
) -> anyhow::Error {
    err.context(format!(
        "interface {} already exists in {}",
        spec.interface_name,
        netns.path().display()
    ))
}

/// Everything after the veth exists and before addresses: host end lookup and isolation, then
/// the container side up.
fn prepare(host: &Netlink, netns: Netns, spec: &ContainerLinkSpec) -> Result<PendingLink> {
    let host_index = host
        .link_by_name(&spec.host_name)?
        .ok_or_else(|| anyhow!("host end {} vanished after creation", spec.host_name))?
        .index;
    isolate_host_end(&spec.host_name)?;
    let (index, mac) = netns.enter(|| prepare_inside(spec)).with_context(|| {
        format!(
            "preparing {} in network namespace {}",
            spec.interface_name,
            netns.path().display()
        )
    })?;
    Ok(PendingLink {
        netns,
        name: spec.interface_name.clone(),
        index,
        mac,
        host_index,
    })
}

/// Keeps the host's own IP stack off the host end: it is a switch port, nothing more.
///
/// On the kernel datapath OVS takes every frame before the IP stack sees it. On the userspace
/// datapath OVS only copies frames off the device (AF_PACKET) and the kernel still handles
/// them: without this, the host would answer a container's ARP request for the gateway from
/// the veth (any local address, any interface, by default), and the container would then
/// route through the veth, around the gateway port and the firewall rules keyed on it.
fn isolate_host_end(name: &str) -> Result<()> {
    // 8: do not answer ARP for any local address on this interface.
    write_sysctl(&format!("net/ipv4/conf/{name}/arp_ignore"), "8")?;
    // No link-local address, no neighbour discovery, no IPv6 at all (unless the host has no
    // IPv6, and so nothing to turn off).
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        write_sysctl(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1")?;
    }
    Ok(())
}

/// Prepares the container side before it gets addresses; runs with the thread inside the
/// container's namespace, so the netlink socket, the `/proc/sys/net` files and the ethtool
/// socket all belong to it. Returns the interface's index and MAC.
fn prepare_inside(spec: &ContainerLinkSpec) -> Result<(u32, [u8; 6])> {
    let ifname = spec.interface_name.as_str();
    let netlink = Netlink::open()?;
    let link = netlink
        .link_by_name(ifname)?
        .ok_or_else(|| anyhow!("interface {ifname} is missing after creation"))?;
    let mac = link
        .mac
        .ok_or_else(|| anyhow!("interface {ifname} has no Ethernet address"))?;

    netlink.set_up_by_name("lo")?;
    // When the interface comes up with its addresses, announce them (gratuitous ARP,
    // unsolicited neighbour advertisement): a restarted container has a new MAC for its old
    // address, and peers must not keep the stale one.
    write_sysctl(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1")?;
    // DAD must already be off when IPv6 comes up: the addresses are checked across the
    // overlay by the plugin itself, before they are configured.
    if spec
        .addresses
        .iter()
        .any(|address| address.addr().is_ipv6())
    {
        write_sysctl(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0")?;
        write_sysctl(&format!("net/ipv6/conf/{ifname}/autoconf"), "0")?;
        write_sysctl(&format!("net/ipv6/conf/{ifname}/ndisc_notify"), "1")?;
        if spec.ignore_router_advertisements {
            write_sysctl(&format!("net/ipv6/conf/{ifname}/accept_ra"), "0")?;
        }
    } else if Path::new(&format!("/proc/sys/net/ipv6/conf/{ifname}")).exists() {
        // An IPv4-only network has no router to advertise anything: a router advertisement
        // can only come from an impostor, so the interface takes none.
        write_sysctl(&format!("net/ipv6/conf/{ifname}/accept_ra"), "0")?;
        // Nor any IPv6 at all, as its user expects of an IPv4-only network: without this the
        // interface comes up with a link-local address, and its start-up (MLD reports, router
        // solicitations, DAD) is multicast that the overlay floods to every port of every host,
        // a cost that grows with the number of containers (docs/benchmarks.md, setup growth).
        write_sysctl(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "1")?;
    }
    if spec.disable_tx_checksum {
        ethtool::disable_tx_checksum(ifname)?;
    }
    Ok((link.index, mac))
}

/// Adds the addresses, brings the interface up (which announces them) and adds the routes,
/// inside the container's namespace.
fn configure_inside(index: u32, spec: &ContainerLinkSpec) -> Result<()> {
    let netlink = Netlink::open()?;
    for address in &spec.addresses {
        netlink.add_address(index, *address)?;
    }
    netlink.set_up(index)?;
    for route in &spec.routes {
        netlink.add_route(&RouteSpec {
            destination: route.destination,
            gateway: route.gateway,
            metric: route.metric,
            oif: index,
        })?;
    }
    for gateway in first_gateway_per_family(&spec.default_gateways) {
        netlink.add_route(&RouteSpec {
            destination: default_destination(gateway),
            gateway,
            metric: None,
            oif: index,
        })?;
    }
    Ok(())
}

/// The first IPv4 and the first IPv6 gateway, in that order.
fn first_gateway_per_family(gateways: &[IpAddr]) -> impl Iterator<Item = IpAddr> {
    let v4 = gateways.iter().copied().find(IpAddr::is_ipv4);
    let v6 = gateways.iter().copied().find(IpAddr::is_ipv6);
    v4.into_iter().chain(v6)
}

/// `0.0.0.0/0` or `::/0`, matching the gateway's family.
fn default_destination(gateway: IpAddr) -> IpNet {
    match gateway {
        IpAddr::V4(_) => IpNet::new_assert(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => IpNet::new_assert(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// Writes a sysctl of the calling thread's network namespace (`/proc/sys/net/...` resolves the
/// namespace of the thread that opens the file).
fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{key}");
    fs::write(&path, value).with_context(|| format!("setting {path} to {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        for good in ["eth0", "veth-0123456789", "a"] {
            assert!(check_ifname(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a:b", "veth-0123456789a"] {
            assert!(check_ifname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_default_gateway_per_family() {
        let gateways: Vec<IpAddr> = ["10.0.0.1", "fd00::1", "10.0.1.1", "fd01::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let chosen: Vec<IpAddr> = first_gateway_per_family(&gateways).collect();
        assert_eq!(chosen, vec![gateways[0], gateways[1]]);
        assert_eq!(default_destination(gateways[0]).to_string(), "0.0.0.0/0");
        assert_eq!(default_destination(gateways[1]).to_string(), "::/0");
    }
}
