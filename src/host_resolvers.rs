//! The host's resolvers, as an open OVN network's containers reach them: OVN answers the names
//! of the network's containers at the gateway address itself; every other query to the gateway
//! address on port 53 passes through to this host's gateway port, where the plugin's nftables
//! table sends it on to one of the name servers of `/etc/resolv.conf` ([`crate::firewall`]).
//!
//! A loopback name server (`127.0.0.53` of systemd-resolved, a local dnsmasq) is never a target:
//! a DNAT to it would make a service of the host's loopback reachable from containers, which the
//! table's guard forbids. Such a host gets a warning naming what to change, and its containers'
//! other names go unanswered, as before.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where the host's name servers are read from.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The name servers the gateway address forwards to, one per family (nftables' DNAT takes one
/// address; the first usable line of `resolv.conf` is the one its own resolver tries first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Upstreams {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Upstreams {
    /// The upstream of `ipv4`'s family.
    pub fn of_family(&self, ipv4: bool) -> Option<IpAddr> {
        if ipv4 {
            self.v4.map(IpAddr::V4)
        } else {
            self.v6.map(IpAddr::V6)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

/// The `nameserver` addresses of a `resolv.conf`, in order. Lines that do not parse (comments,
/// other options, an IPv6 address with a zone) are skipped.
pub fn name_servers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => addr.parse().ok(),
                _ => None,
            }
        })
        .collect()
}

/// Whether a container may be sent to `addr`: not the host's loopback, not a link-local or
/// unspecified address (which mean nothing once routed out of the gateway port).
fn reachable_from_containers(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.is_loopback() || a.is_unspecified() || a.is_link_local()),
        IpAddr::V6(a) => {
            !(a.is_loopback() || a.is_unspecified() || a.segments()[0] & 0xffc0 == 0xfe80)
        }
    }
}

/// The first usable name server of each family, and the loopback ones passed over.
pub fn choose(servers: &[IpAddr]) -> (Upstreams, Vec<IpAddr>) {
    let mut chosen = Upstreams::default();
    let mut passed_over = Vec::new();
    for addr in servers {
        if !reachable_from_containers(addr) {
            passed_over.push(*addr);
            continue;
        }
        match addr {
            IpAddr::V4(a) => {
                chosen.v4.get_or_insert(*a);
            }
            IpAddr::V6(a) => {
                chosen.v6.get_or_insert(*a);
            }
        }
    }
    (chosen, passed_over)
}

/// This host's upstreams, read from [`RESOLV_CONF`]; none (with a warning that says what to
/// change) when it cannot be read or lists only loopback name servers.
pub fn read() -> Upstreams {
    let text = match std::fs::read_to_string(RESOLV_CONF) {
        Ok(text) => text,
        Err(err) => {
            log::warn!(
                "cannot read {RESOLV_CONF} ({err}): containers of open OVN networks resolve \
                 only the names OVN knows"
            );
            return Upstreams::default();
        }
    };
    let (chosen, passed_over) = choose(&name_servers(&text));
    if chosen.is_empty() {
        log::warn!(
            "{RESOLV_CONF} lists no name server containers may be sent to (loopback ones \
             skipped: {passed_over:?}): containers of open OVN networks resolve only the names \
             OVN knows; list the upstream servers there (with systemd-resolved, link it to \
             /run/systemd/resolve/resolv.conf)"
        );
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameserver_lines_in_order_and_skips_the_rest() {
        let text = "# generated\nsearch example.org\nnameserver 10.99.0.254\n\
                    nameserver fd99::53\nnameserver fe80::1%eth0\noptions edns0\n\
                    nameserver\nnameserver 10.99.0.253\n";
        let servers = name_servers(text);
        assert_eq!(
            servers,
            ["10.99.0.254", "fd99::53", "10.99.0.253"].map(|s| s.parse::<IpAddr>().unwrap())
        );
    }

    #[test]
    fn loopback_name_servers_are_never_chosen() {
        let servers = name_servers("nameserver 127.0.0.53\nnameserver ::1\n");
        let (chosen, passed_over) = choose(&servers);
        assert!(chosen.is_empty(), "{chosen:?}");
        assert_eq!(passed_over.len(), 2);
        let servers = name_servers(
            "nameserver 127.0.0.53\nnameserver 169.254.1.1\nnameserver 10.99.0.254\n\
             nameserver 10.99.0.253\nnameserver fd99::53\n",
        );
        let (chosen, _) = choose(&servers);
        assert_eq!(chosen.v4, Some(Ipv4Addr::new(10, 99, 0, 254)));
        assert_eq!(chosen.v6, Some("fd99::53".parse().unwrap()));
        assert_eq!(chosen.of_family(true), Some("10.99.0.254".parse().unwrap()));
    }
}
