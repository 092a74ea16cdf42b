//! A small blocking rtnetlink client: the link, address and route operations the plugin needs.
//!
//! The plugin is a short-lived synchronous program, while `rtnetlink` is async. [`Netlink`] hides
//! that: it owns a current-thread tokio runtime (no threads are spawned, so a socket opened inside
//! a namespace stays usable from the calling thread) and one rtnetlink connection, and every
//! method blocks until the kernel has answered.
//!
//! A netlink socket belongs to the network namespace its creating thread was in, forever. That is
//! what [`Netlink::open_in`] relies on: open the socket inside a container's namespace once, then
//! talk to that namespace from anywhere.
//!
//! Kernel refusals surface as [`std::io::Error`]s carrying the errno, so callers can tell "already
//! exists" or "no such device" apart with [`errno`] and [`is_exists_error`].

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use anyhow::{anyhow, Context, Result};
use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteMetric};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use tokio::runtime::Runtime;

use crate::netns::Netns;

mod links;
pub use links::LinkSummary;

/// What the plugin needs to know about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Kernel interface index, the key for address and route requests.
    pub index: u32,
    /// Hardware address; `None` for interfaces without a 6-byte one (lo has all zeros, tunnels
    /// may have none). The StatusBlock needs the container end's real MAC.
    pub mac: Option<[u8; 6]>,
    /// Current MTU.
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
}

/// How to create a container's veth pair in one request.
#[derive(Debug)]
pub struct VethSpec<'a> {
    /// Name of the end that stays in the current namespace (becomes an OVS port).
    pub host_name: &'a str,
    /// Name of the end created directly inside `container_ns` (`eth0`, ...).
    pub container_name: &'a str,
    /// Namespace of the container end.
    pub container_ns: &'a Netns,
    /// MTU of both ends.
    pub mtu: u32,
    /// MAC of the container end; the kernel picks a random one when `None`.
    pub container_mac: Option<[u8; 6]>,
}

/// A route with a next hop, as the container needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination prefix; host bits are ignored.
    pub destination: IpNet,
    /// Next hop. An IPv6 gateway for an IPv4 destination is sent as RTA_VIA.
    pub gateway: IpAddr,
    /// Route priority (metric); the kernel default when `None`.
    pub metric: Option<u32>,
    /// Output interface index.
    pub oif: u32,
}

/// The main routing table (RT_TABLE_MAIN).
const RT_TABLE_MAIN: u8 = 254;

/// What the kernel says about the route towards an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteFacts {
    /// The route's MTU metric, else its output interface's MTU.
    pub mtu: u32,
    /// The preferred source address, when the route has one.
    pub source: Option<IpAddr>,
}

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// A blocking rtnetlink connection bound to one network namespace.
#[derive(Debug)]
pub struct Netlink {
    // Field order matters for drop: the handle goes first, then the runtime, which drops the
    // connection task and closes the socket.
    handle: Handle,
    runtime: Runtime,
}

impl Netlink {
    /// Opens a connection in the calling thread's current network namespace.
    ///
    /// Must not be called from inside an async runtime: the methods block on their own runtime.
    pub fn open() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("creating the netlink runtime")?;
        let (connection, handle, _unsolicited) = {
            // The socket registers with the runtime's reactor when it is created.
            let _context = runtime.enter();
            rtnetlink::new_connection().context("opening a rtnetlink socket")?
        };
        runtime.spawn(connection);
        Ok(Netlink { handle, runtime })
    }

    /// Opens a connection whose socket lives inside `ns`, usable afterwards from any namespace.
    pub fn open_in(ns: &Netns) -> Result<Self> {
        ns.enter(Netlink::open)
            .with_context(|| format!("opening netlink in {}", ns.path().display()))
    }

    /// Every address configured on any interface of this namespace, so that callers can tell a
    /// local underlay address from a remote one.
    pub fn local_addresses(&self) -> Result<Vec<IpAddr>> {
        self.runtime.block_on(async {
            let messages: Vec<_> = self
                .handle
                .address()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(kernel_error)
                .context("dumping addresses")?;
            Ok(messages
                .iter()
                .filter_map(|message| {
                    // IFA_LOCAL is the local side on point-to-point links; elsewhere only
                    // IFA_ADDRESS is present and it is the local address.
                    let local = message.attributes.iter().find_map(|attr| match attr {
                        AddressAttribute::Local(ip) => Some(*ip),
                        _ => None,
                    });
                    local.or_else(|| {
                        message.attributes.iter().find_map(|attr| match attr {
                            AddressAttribute::Address(ip) => Some(*ip),
                            _ => None,
                        })
                    })
                })
                .collect())
        })
    }

    /// Asks the kernel which route reaches `dst` (what `ip route get` shows) and returns its
    /// MTU (the route's `mtu` metric if set, else the output interface's MTU) and its preferred
    /// source address; `None` when there is no route.
    pub fn route_to(&self, dst: IpAddr) -> Result<Option<RouteFacts>> {
        let mut request = RouteMessage::default();
        let (family, full_prefix) = match dst {
            IpAddr::V4(_) => (AddressFamily::Inet, 32),
            IpAddr::V6(_) => (AddressFamily::Inet6, 128),
        };
        request.header.address_family = family;
        request.header.destination_prefix_length = full_prefix;
        request
            .attributes
            .push(RouteAttribute::Destination(dst.into()));

        let route = self.runtime.block_on(async {
            let mut answers = self.handle.route().get(request).execute();
            match answers.try_next().await {
                Ok(route) => Ok(route),
                Err(err) => {
                    let err = kernel_error(err);
                    match errno(&err) {
                        Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => Ok(None),
                        _ => Err(err),
                    }
                }
            }
        });
        let route = match route.with_context(|| format!("looking up the route to {dst}"))? {
            Some(route) => route,
            None => return Ok(None),
        };

        let source = route.attributes.iter().find_map(|attr| match attr {
            RouteAttribute::PrefSource(addr) => route_ip(addr),
            _ => None,
        });
        let metric_mtu = route.attributes.iter().find_map(|attr| match attr {
            RouteAttribute::Metrics(metrics) => metrics.iter().find_map(|metric| match metric {
                RouteMetric::Mtu(mtu) if *mtu != 0 => Some(*mtu),
                _ => None,
            }),
            _ => None,
        });
        let mtu = match metric_mtu {
            Some(mtu) => mtu,
            None => {
                let oif = route
                    .attributes
                    .iter()
                    .find_map(|attr| match attr {
                        RouteAttribute::Oif(index) => Some(*index),
                        _ => None,
                    })
                    .ok_or_else(|| anyhow!("the route to {dst} has no output interface"))?;
                self.link_by_index(oif)?
                    .ok_or_else(|| {
                        anyhow!("output interface {oif} of the route to {dst} vanished")
                    })?
                    .mtu
            }
        };
        Ok(Some(RouteFacts { mtu, source }))
    }

    /// The destinations of every route of the main table (IPv4 and IPv6), default routes
    /// excluded: what a new subnet must not overlap.
    pub fn route_destinations(&self) -> Result<Vec<IpNet>> {
        let mut destinations = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            // No destination: a dump of the family's routes.
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            let routes: Vec<RouteMessage> = self.runtime.block_on(async {
                self.handle
                    .route()
                    .get(request)
                    .execute()
                    .try_collect()
                    .await
                    .map_err(kernel_error)
                    .context("dumping routes")
            })?;
            for route in routes {
                if route.header.table != RT_TABLE_MAIN
                    || route.header.destination_prefix_length == 0
                {
                    continue;
                }
                let dst = route.attributes.iter().find_map(|attr| match attr {
                    RouteAttribute::Destination(addr) => route_ip(addr),
                    _ => None,
                });
                if let Some(dst) = dst {
                    if let Ok(net) = IpNet::new(dst, route.header.destination_prefix_length) {
                        destinations.push(net.trunc());
                    }
                }
            }
        }
        Ok(destinations)
    }

    /// Looks an interface up by name; `None` when there is no such interface.
    pub fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>> {
        let request = self.handle.link().get().match_name(name);
        self.runtime
            .block_on(first_link(request.execute()))
            .with_context(|| format!("looking up interface {name}"))
    }

    /// Looks an interface up by index; `None` when there is no such interface.
    pub fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>> {
        let request = self.handle.link().get().match_index(index);
        self.runtime
            .block_on(first_link(request.execute()))
            .with_context(|| format!("looking up interface index {index}"))
    }

    /// Creates a veth pair in one RTM_NEWLINK: the host end here, already up, and the peer
    /// directly inside `spec.container_ns` with its final name, MTU and MAC. Creating the peer in
    /// place (instead of creating it here and moving it) means the container never sees a
    /// temporary name and the host never holds a second interface that could clash.
    ///
    /// The host end is created up because it carries no addresses and only becomes an OVS port;
    /// that saves a request. It is created promiscuous too, as Open vSwitch makes every port's
    /// device when it adds it: then adding it changes no flag, and removing it restores none.
    /// Each such flag change would be one more link change in the host's namespace, and on every
    /// link change there ovs-vswitchd looks up each interface of its bridges again
    /// (docs/benchmarks.md, "What one link change costs ovs-vswitchd"): work that grows with the
    /// number of containers. When a name is taken the error satisfies [`is_exists_error`].
    pub fn create_veth(&self, spec: &VethSpec<'_>) -> Result<()> {
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.container_name)
            .mtu(spec.mtu)
            .setns_by_fd(spec.container_ns.as_raw_fd());
        if let Some(mac) = spec.container_mac {
            peer = peer.address(mac.to_vec());
        }
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host_name)
            .mtu(spec.mtu)
            .up()
            .promiscuous(true)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        let request = self.handle.link().add(message);
        self.runtime
            .block_on(request.execute())
            .map_err(kernel_error)
            .with_context(|| {
                format!(
                    "creating veth pair {} (host) / {} (in {})",
                    spec.host_name,
                    spec.container_name,
                    spec.container_ns.path().display()
                )
            })
    }

    /// Deletes the interface `name` (for a veth, both ends go). Returns `false` when there was
    /// nothing to delete, which teardown treats as success.
    pub fn delete_link(&self, name: &str) -> Result<bool> {
        let request = self
            .handle
            .link()
            .del_with_message(LinkUnspec::new_with_name(name).build());
        match self
            .runtime
            .block_on(request.execute())
            .map_err(kernel_error)
        {
            Ok(()) => Ok(true),
            Err(err) if errno(&err) == Some(libc::ENODEV) => Ok(false),
            Err(err) => Err(err).with_context(|| format!("deleting interface {name}")),
        }
    }

    /// Sets the interface with this index administratively up.
    pub fn set_up(&self, index: u32) -> Result<()> {
        self.set_link(LinkUnspec::new_with_index(index).up().build())
            .with_context(|| format!("setting interface index {index} up"))
    }

    /// Sets the interface `index` administratively down.
    pub fn set_down(&self, index: u32) -> Result<()> {
        self.set_link(LinkUnspec::new_with_index(index).down().build())
            .with_context(|| format!("setting interface index {index} down"))
    }

    /// Sets the interface with this name administratively up; saves a lookup for interfaces whose
    /// index is not known yet (`lo` of a fresh namespace).
    pub fn set_up_by_name(&self, name: &str) -> Result<()> {
        self.set_link(LinkUnspec::new_with_name(name).up().build())
            .with_context(|| format!("setting interface {name} up"))
    }

    /// Adds `address` (with its prefix length) to the interface `index`. IPv6 addresses are
    /// added with IFA_F_NODAD: they were assigned by IPAM, and waiting for duplicate address
    /// detection would only delay the container's first packets.
    pub fn add_address(&self, index: u32, address: IpNet) -> Result<()> {
        let mut request = self
            .handle
            .address()
            .add(index, address.addr(), address.prefix_len());
        if address.addr().is_ipv6() {
            request.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        self.runtime
            .block_on(request.execute())
            .map_err(kernel_error)
            .with_context(|| format!("adding address {address} to interface index {index}"))
    }

    /// Adds a route through a gateway in the main table.
    pub fn add_route(&self, route: &RouteSpec) -> Result<()> {
        let destination = route.destination.trunc();
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(destination.addr(), destination.prefix_len())
            .and_then(|builder| builder.gateway(route.gateway))
            .with_context(|| format!("building the route to {destination} via {}", route.gateway))?
            .output_interface(route.oif);
        if let Some(metric) = route.metric {
            builder = builder.priority(metric);
        }
        let request = self.handle.route().add(builder.build());
        self.runtime
            .block_on(request.execute())
            .map_err(kernel_error)
            .with_context(|| {
                format!(
                    "adding route to {destination} via {} on interface index {}",
                    route.gateway, route.oif
                )
            })
    }

    fn set_link(&self, message: LinkMessage) -> Result<()> {
        let request = self.handle.link().set(message);
        self.runtime
            .block_on(request.execute())
            .map_err(kernel_error)
    }
}

/// The errno of the kernel refusal somewhere in `err`'s chain, if any.
pub fn errno(err: &anyhow::Error) -> Option<i32> {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error)
}

/// Whether `err` is the kernel saying a name (or address, or route) already exists. Attach uses
/// it to recognise a stale host end left by a crashed run.
pub fn is_exists_error(err: &anyhow::Error) -> bool {
    errno(err) == Some(libc::EEXIST)
}

/// Turns an rtnetlink error into an anyhow error, unwrapping kernel refusals into
/// [`std::io::Error`] so that the errno is both readable ("File exists") and testable.
fn kernel_error(err: rtnetlink::Error) -> anyhow::Error {
    match err {
        rtnetlink::Error::NetlinkError(message) => message.to_io().into(),
        other => other.into(),
    }
}

/// Reads the single answer of a link lookup; "no such device" is `None`.
async fn first_link(
    mut answers: impl futures::Stream<Item = Result<LinkMessage, rtnetlink::Error>> + Unpin,
) -> Result<Option<LinkInfo>> {
    match answers.try_next().await {
        Ok(Some(message)) => Ok(Some(link_info(&message))),
        Ok(None) => Ok(None),
        Err(err) => {
            let err = kernel_error(err);
            if errno(&err) == Some(libc::ENODEV) {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

fn link_info(message: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: message.header.index,
        mac: None,
        mtu: 0,
        up: message.header.flags.contains(LinkFlags::Up),
    };
    for attr in &message.attributes {
        match attr {
            LinkAttribute::Address(bytes) => info.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            LinkAttribute::Mtu(mtu) => info.mtu = *mtu,
            _ => {}
        }
    }
    info
}
