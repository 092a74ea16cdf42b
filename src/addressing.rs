//! Addresses without coordination: a network's default subnets, and this host's share of them.
//!
//! Each host runs its own `podman network create`, and podman allocates container addresses
//! per host from the subnet's `lease_range`. For the same command on every host to give
//! disjoint ranges, everything here is a pure function of what every host knows alike: the
//! network name and the list of hosts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use sha2::{Digest, Sha256};

/// The pool default IPv4 subnets come from: 10.100.0.0/14, 1024 subnets of /24. It lies
/// outside podman's own defaults (10.88.0.0/16 for `podman`, 10.89.0.0/16 and up for new
/// networks) and docker's (172.17.0.0/16 and up).
pub const DEFAULT_POOL_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 100, 0, 0), 14);

/// The prefix length of a default IPv4 subnet.
pub const DEFAULT_PREFIX_V4: u8 = 24;

fn digest(label: &str, name: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(label.as_bytes());
    hasher.update([0]);
    hasher.update(name.as_bytes());
    hasher.finalize().into()
}

/// The default IPv4 subnet of a network: the /24 number
/// `u16::from_be_bytes(SHA-256("geneve-ovs subnet\0" + name)[0..2]) mod 1024` of
/// [`DEFAULT_POOL_V4`].
pub fn default_subnet_v4(network_name: &str) -> IpNet {
    let d = digest("geneve-ovs subnet", network_name);
    let slot = u32::from(u16::from_be_bytes([d[0], d[1]])) % 1024;
    let base = u32::from(DEFAULT_POOL_V4.network()) + (slot << 8);
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base), DEFAULT_PREFIX_V4).unwrap_or(DEFAULT_POOL_V4))
}

/// The default IPv6 subnet of a network: a /64 of the ULA range (RFC 4193), `fd` followed by
/// 56 bits of SHA-256("geneve-ovs ula\0" + name) as global and subnet id.
pub fn default_subnet_v6(network_name: &str) -> IpNet {
    let d = digest("geneve-ovs ula", network_name);
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..8].copy_from_slice(&d[0..7]);
    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(octets), 64).unwrap_or_default())
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// The addresses of `subnet` a host may lease from, as numbers: without the network address,
/// the IPv4 broadcast address, and the gateway when it sits at an edge (the usual first
/// address; elsewhere it counts as used by whichever slice holds it).
fn usable_range(subnet: IpNet, gateway: Option<IpAddr>) -> Result<(u128, u128)> {
    let network = to_u128(subnet.network());
    let last = to_u128(subnet.broadcast());
    // Usable: network+1 ..= broadcast-1 for IPv4; network+1 ..= last for IPv6.
    let first = network + 1;
    let end = if subnet.addr().is_ipv4() {
        last.saturating_sub(1)
    } else {
        last
    };
    if end < first {
        bail!("subnet {subnet} has no usable addresses");
    }
    let (first, end) = match gateway.map(to_u128) {
        Some(gw) if gw == first => (first + 1, end),
        Some(gw) if gw == end => (first, end - 1),
        _ => (first, end),
    };
    Ok((first, end))
}

/// The slot of `host` among `capacity` slots: its underlay address, as a number, modulo
/// `capacity`. A pure function of the address alone, so that every host works out every other
/// host's slot without asking, and a host joining later does not move anyone else's.
pub fn slot_of(host: IpAddr, capacity: u32) -> u32 {
    (to_u128(host) % u128::from(capacity.max(1))) as u32
}

/// Refuses `hosts` when two of them take the same slot of `capacity` (their address ranges
/// would be the same), or there are more hosts than slots.
pub fn check_slots(hosts: &[IpAddr], capacity: u32) -> Result<()> {
    let mut sorted = hosts.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() > capacity as usize {
        bail!(
            "invalid option hosts={capacity}: the network lists {} hosts ({})",
            sorted.len(),
            sorted
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (i, a) in sorted.iter().enumerate() {
        if let Some(b) = sorted[i + 1..]
            .iter()
            .find(|b| slot_of(**b, capacity) == slot_of(*a, capacity))
        {
            bail!(
                "hosts {a} and {b} would lease from the same addresses: both take slot {} of \
                 hosts={capacity} (a host's slot is its underlay address mod hosts); choose \
                 another hosts value for the network, or give one of them its own --ip-range",
                slot_of(*a, capacity)
            );
        }
    }
    Ok(())
}

/// A host's slice of a subnet under a fixed capacity (option `hosts`): the usable addresses cut
/// into `capacity` equal contiguous slices, of which `host` takes number [`slot_of`]. Unlike
/// [`host_slice`], no slice depends on which other hosts exist, so hosts can come and go.
///
/// Returns the first and last address of the slice.
pub fn slot_slice(
    subnet: IpNet,
    gateway: Option<IpAddr>,
    capacity: u32,
    host: IpAddr,
) -> Result<(IpAddr, IpAddr)> {
    if capacity == 0 {
        bail!("a capacity of 0 hosts has no slices");
    }
    let (first, end) = usable_range(subnet, gateway)?;
    let usable = end - first + 1;
    let size = usable / u128::from(capacity);
    if size == 0 {
        bail!(
            "subnet {subnet} has {usable} usable addresses, too few for hosts={capacity}: use a \
             larger --subnet or a smaller hosts"
        );
    }
    let start = first + size * u128::from(slot_of(host, capacity));
    Ok((
        from_u128(subnet.addr(), start),
        from_u128(subnet.addr(), start + size - 1),
    ))
}

/// Whether two address ranges (first and last address, inclusive) share an address.
pub fn ranges_overlap(a: (IpAddr, IpAddr), b: (IpAddr, IpAddr)) -> bool {
    a.0.is_ipv4() == b.0.is_ipv4() && to_u128(a.0) <= to_u128(b.1) && to_u128(b.0) <= to_u128(a.1)
}

/// This host's slice of a subnet: the usable addresses (without the network address, the IPv4
/// broadcast address and the gateway) cut into `hosts.len()` equal contiguous slices, in the
/// order of the hosts' underlay addresses; `me` gets the slice of its position. Addresses left
/// over by the division are not used.
///
/// Returns the first and last address of the slice.
pub fn host_slice(
    subnet: IpNet,
    gateway: Option<IpAddr>,
    hosts: &[IpAddr],
    me: IpAddr,
) -> Result<(IpAddr, IpAddr)> {
    let mut sorted = hosts.to_vec();
    sorted.sort();
    sorted.dedup();
    let Some(position) = sorted.iter().position(|h| *h == me) else {
        bail!("this host's address {me} is not among the overlay's hosts");
    };
    let (first, end) = usable_range(subnet, gateway)?;
    let usable = end - first + 1;
    let count = sorted.len() as u128;
    let size = usable / count;
    if size == 0 {
        bail!(
            "subnet {subnet} has {usable} usable addresses, too few for {count} hosts: \
             use a larger --subnet or give each host its own --ip-range"
        );
    }
    let start = first + size * position as u128;
    let stop = start + size - 1;
    Ok((
        from_u128(subnet.addr(), start),
        from_u128(subnet.addr(), stop),
    ))
}

/// Whether two subnets share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn default_subnets_are_deterministic_and_in_their_pools() {
        assert_eq!(default_subnet_v4("net1"), default_subnet_v4("net1"));
        for i in 0..500 {
            let name = format!("n{i}");
            let v4 = default_subnet_v4(&name);
            assert_eq!(v4.prefix_len(), 24);
            assert!(IpNet::V4(DEFAULT_POOL_V4).contains(&v4), "{v4}");
            assert!(!overlaps(&v4, &net("10.88.0.0/16")) && !overlaps(&v4, &net("10.89.0.0/16")));
            let v6 = default_subnet_v6(&name);
            assert_eq!(v6.prefix_len(), 64);
            assert!(net("fd00::/8").contains(&v6), "{v6}");
        }
        assert_ne!(default_subnet_v6("a"), default_subnet_v6("b"));
    }

    #[test]
    fn two_hosts_split_a_slash_24() {
        let hosts = [ip("10.99.0.2"), ip("10.99.0.1")];
        let s = net("192.168.120.0/24");
        // Usable .1-.254, no gateway: 254 addresses, 127 each.
        assert_eq!(
            host_slice(s, None, &hosts, ip("10.99.0.1")).unwrap(),
            (ip("192.168.120.1"), ip("192.168.120.127"))
        );
        assert_eq!(
            host_slice(s, None, &hosts, ip("10.99.0.2")).unwrap(),
            (ip("192.168.120.128"), ip("192.168.120.254"))
        );
        // With the gateway at .1: .2-.254, 253 addresses, 126 each, one left over.
        let gw = Some(ip("192.168.120.1"));
        assert_eq!(
            host_slice(s, gw, &hosts, ip("10.99.0.1")).unwrap(),
            (ip("192.168.120.2"), ip("192.168.120.127"))
        );
        assert_eq!(
            host_slice(s, gw, &hosts, ip("10.99.0.2")).unwrap(),
            (ip("192.168.120.128"), ip("192.168.120.253"))
        );
    }

    #[test]
    fn slices_are_disjoint_and_the_same_from_every_host() {
        let hosts: Vec<IpAddr> = (1..=7).map(|i| ip(&format!("10.99.0.{i}"))).collect();
        let s = net("10.5.0.0/22");
        let gw = Some(ip("10.5.0.1"));
        let mut slices: Vec<(IpAddr, IpAddr)> = hosts
            .iter()
            .map(|h| host_slice(s, gw, &hosts, *h).unwrap())
            .collect();
        // Any order of the list gives the same answer.
        let mut reversed = hosts.clone();
        reversed.reverse();
        for (h, slice) in hosts.iter().zip(&slices) {
            assert_eq!(host_slice(s, gw, &reversed, *h).unwrap(), *slice);
        }
        slices.sort();
        for pair in slices.windows(2) {
            assert!(to_u128(pair[0].1) < to_u128(pair[1].0), "{pair:?}");
        }
        for (a, b) in &slices {
            assert!(s.contains(a) && s.contains(b));
            assert_ne!(*a, ip("10.5.0.1"));
        }
    }

    #[test]
    fn ipv6_subnets_split_too() {
        let hosts = [ip("fd99::1"), ip("fd99::2"), ip("fd99::3")];
        let s = net("fd12:3456::/64");
        let (a, b) = host_slice(s, Some(ip("fd12:3456::1")), &hosts, ip("fd99::2")).unwrap();
        assert!(s.contains(&a) && s.contains(&b) && to_u128(a) < to_u128(b));
        assert!(to_u128(a) > to_u128(ip("fd12:3456::1")));
    }

    #[test]
    fn small_subnets_and_strangers_are_errors() {
        let hosts = [ip("10.99.0.1"), ip("10.99.0.2"), ip("10.99.0.3")];
        let e = host_slice(
            net("10.0.0.0/30"),
            Some(ip("10.0.0.1")),
            &hosts,
            ip("10.99.0.1"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("too few"), "{e}");
        let e = host_slice(net("10.0.0.0/24"), None, &hosts, ip("10.99.0.9")).unwrap_err();
        assert!(e.to_string().contains("not among"), "{e}");
    }

    #[test]
    fn slots_follow_the_address_and_ignore_the_other_hosts() {
        let s = net("192.168.120.0/24");
        let gw_ip = ip("192.168.120.1");
        let gw = Some(gw_ip);
        // .2-.254: 253 addresses, 31 per slot of 8, the last 5 unused.
        assert_eq!(slot_of(ip("10.99.0.1"), 8), 1);
        assert_eq!(
            slot_slice(s, gw, 8, ip("10.99.0.1")).unwrap(),
            (ip("192.168.120.33"), ip("192.168.120.63"))
        );
        assert_eq!(
            slot_slice(s, gw, 8, ip("10.99.0.8")).unwrap(),
            (ip("192.168.120.2"), ip("192.168.120.32"))
        );
        // Consecutive underlay addresses never share a slot, whoever else exists.
        let slices: Vec<_> = (1..=8)
            .map(|i| slot_slice(s, gw, 8, ip(&format!("10.99.0.{i}"))).unwrap())
            .collect();
        for (i, a) in slices.iter().enumerate() {
            for b in &slices[i + 1..] {
                assert!(!ranges_overlap(*a, *b), "{a:?} {b:?}");
            }
            assert!(!ranges_overlap(*a, (gw_ip, gw_ip)));
        }
        // Addresses `capacity` apart collide: the caller refuses them.
        assert_eq!(slot_of(ip("10.99.0.9"), 8), slot_of(ip("10.99.0.1"), 8));
        assert!(slot_slice(net("10.0.0.0/29"), None, 8, ip("10.99.0.1")).is_err());
        assert!(ranges_overlap(
            (ip("10.0.0.5"), ip("10.0.0.9")),
            (ip("10.0.0.9"), ip("10.0.0.20"))
        ));
        assert!(!ranges_overlap(
            (ip("10.0.0.5"), ip("10.0.0.8")),
            (ip("10.0.0.9"), ip("10.0.0.20"))
        ));
    }

    #[test]
    fn overlap() {
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(overlaps(&net("10.1.0.0/16"), &net("10.0.0.0/8")));
        assert!(!overlaps(&net("10.1.0.0/16"), &net("10.2.0.0/16")));
    }
}
