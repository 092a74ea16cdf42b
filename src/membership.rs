//! Live membership of a network (`geneve-ovs peers`): which hosts it reaches, and the rule that
//! keeps every host's address range its own as hosts come and go. Pure: the command reads the
//! saved network, this decides, and [`crate::commands`] applies.
//!
//! The rule: a host's share of each subnet must never depend on which other hosts exist, or a
//! host joining later would compute a share that overlaps the ranges the first hosts already
//! lease from. So a network that is to grow is created with option `hosts=N`: each subnet is cut
//! into N slices and every host takes the slice its underlay address picks
//! ([`addressing::slot_slice`]), which any host can work out for any other. Adding a host is then
//! refused exactly when its slice would overlap this host's range or another peer's. A network
//! created without `hosts` has its subnet shared out among the hosts it was created with
//! ([`addressing::host_slice`]): there is no free range for another host, so an add is refused
//! (removing a host is always safe: its range simply goes unused).

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{bail, Result};

use crate::addressing;
use crate::options;
use crate::types::Network;

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add(Vec<IpAddr>),
    Remove(Vec<IpAddr>),
}

/// What a change does to the network's `peers` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The new value of `peers`, in the order the network had them, added hosts last.
    pub peers: Vec<IpAddr>,
    /// Hosts that were added or removed.
    pub changed: Vec<IpAddr>,
    /// Hosts asked for that were already so (an add of a peer): nothing to do for them.
    pub unchanged: Vec<IpAddr>,
}

impl Plan {
    /// The `peers` option's value.
    pub fn peers_option(&self) -> String {
        self.peers
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Parses the operator's host addresses with the rules of the `peers` option (unicast, usable
/// by a tunnel, each once).
pub fn parse_addresses(args: &[String]) -> Result<Vec<IpAddr>> {
    let mut out: Vec<IpAddr> = Vec::new();
    for arg in args {
        let one = BTreeMap::from([("peers".to_string(), arg.trim().to_string())]);
        let parsed = options::parse(&one)
            .map_err(|err| anyhow::anyhow!("invalid host address {arg:?}: {err:#}"))?;
        for ip in parsed.peers {
            if out.contains(&ip) {
                bail!("host address {ip} is given twice");
            }
            out.push(ip);
        }
    }
    if out.is_empty() {
        bail!("no host address given");
    }
    Ok(out)
}

/// Works out the new `peers` of `network` (as podman saved it) for `change`; `local` are this
/// host's own addresses, which are never peers. An add is checked against the address rule
/// (see the module's documentation) and refused, saying why, when a range would overlap.
pub fn plan(network: &Network, change: &Change, local: &[IpAddr]) -> Result<Plan> {
    let req = options::parse(&network.options())?;
    let mut peers = req.peers.clone();
    let mut changed = Vec::new();
    let mut unchanged = Vec::new();
    match change {
        Change::Add(hosts) => {
            for &host in hosts {
                if local.contains(&host) {
                    bail!("{host} is an address of this host, not another host of the overlay");
                }
                if let Some(peer) = peers.iter().find(|p| p.is_ipv4() != host.is_ipv4()) {
                    bail!(
                        "{host} is of another IP family than peer {peer}: the tunnels of one \
                         network share one underlay family"
                    );
                }
                if peers.contains(&host) {
                    unchanged.push(host);
                } else {
                    peers.push(host);
                    changed.push(host);
                }
            }
            if !changed.is_empty() {
                check_ranges(network, req.hosts, &peers, &changed)?;
            }
        }
        Change::Remove(hosts) => {
            for host in hosts {
                if !peers.contains(host) {
                    let listed = if peers.is_empty() {
                        "it has none".to_string()
                    } else {
                        format!("they are {}", join(&peers))
                    };
                    bail!(
                        "{host} is not a peer of network {:?} ({listed}): nothing removed",
                        network.name
                    );
                }
            }
            peers.retain(|p| !hosts.contains(p));
            changed = hosts.clone();
        }
    }
    Ok(Plan {
        peers,
        changed,
        unchanged,
    })
}

fn join(hosts: &[IpAddr]) -> String {
    hosts
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The address rule for the hosts in `added`, now among `peers` (see the module's
/// documentation).
fn check_ranges(
    network: &Network,
    capacity: Option<u32>,
    peers: &[IpAddr],
    added: &[IpAddr],
) -> Result<()> {
    let Some(capacity) = capacity else {
        bail!(
            "network {:?} was created without option hosts, so its subnets are shared out among \
             exactly the hosts it was created with and there is no address range left for {}: \
             the new host's containers would take addresses this host's already use. Create a \
             network that is to grow with --opt hosts=N on every host (see \
             geneve-ovs-options(5)); nothing was changed",
            network.name,
            join(added)
        );
    };
    addressing::check_slots(peers, capacity)?;
    for subnet in network.subnets() {
        let Some(own) = subnet
            .lease_range
            .as_ref()
            .and_then(|r| Some((r.start_ip?, r.end_ip?)))
        else {
            bail!(
                "this host leases from the whole of subnet {} (it has no --ip-range), so any \
                 other host's containers would overlap its own: nothing was changed",
                subnet.subnet
            );
        };
        for &host in added {
            let theirs = addressing::slot_slice(subnet.subnet, subnet.gateway, capacity, host)?;
            if addressing::ranges_overlap(own, theirs) {
                bail!(
                    "host {host} would lease {}-{} of subnet {} (slot {} of hosts={capacity}), \
                     which overlaps this host's range {}-{}: nothing was changed",
                    theirs.0,
                    theirs.1,
                    subnet.subnet,
                    addressing::slot_of(host, capacity),
                    own.0,
                    own.1
                );
            }
        }
    }
    Ok(())
}

/// Each host's range of each subnet as the address rule gives it, for `peers list`: this host's
/// from its saved lease range, the peers' from their slot (`None` without option `hosts`, when
/// only the peers themselves know theirs).
pub fn ranges(network: &Network) -> Result<Vec<(Option<IpAddr>, Vec<String>)>> {
    let req = options::parse(&network.options())?;
    let mut out = Vec::new();
    let own: Vec<String> = network
        .subnets()
        .iter()
        .map(|s| match s.lease_range.as_ref() {
            Some(r) => format!(
                "{}-{}",
                r.start_ip.map_or("?".to_string(), |a| a.to_string()),
                r.end_ip.map_or("?".to_string(), |a| a.to_string())
            ),
            None => format!("{} (all of it)", s.subnet),
        })
        .collect();
    out.push((None, own));
    for &peer in &req.peers {
        let theirs = match req.hosts {
            Some(capacity) => network
                .subnets()
                .iter()
                .map(|s| {
                    addressing::slot_slice(s.subnet, s.gateway, capacity, peer)
                        .map(|(a, b)| format!("{a}-{b}"))
                })
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        out.push((Some(peer), theirs));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LeaseRange, Subnet};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// net1 as host 10.99.0.1 saved it: subnet 192.168.120.0/24, gateway .1, with `options`
    /// and this host's slot of `hosts` as its lease range.
    fn network(peers: &str, hosts: Option<u32>) -> Network {
        let mut options = BTreeMap::from([("peers".to_string(), peers.to_string())]);
        let subnet = "192.168.120.0/24".parse().unwrap();
        let gateway = Some(ip("192.168.120.1"));
        let me = ip("10.99.0.1");
        let (start, end) = match hosts {
            Some(n) => {
                options.insert("hosts".to_string(), n.to_string());
                addressing::slot_slice(subnet, gateway, n, me).unwrap()
            }
            None => {
                let mut all: Vec<IpAddr> = peers.split(',').map(ip).collect();
                all.push(me);
                addressing::host_slice(subnet, gateway, &all, me).unwrap()
            }
        };
        Network {
            name: "net1".into(),
            id: "id1".into(),
            driver: "geneve-ovs".into(),
            network_interface: Some("gnv5001".into()),
            created: None,
            subnets: Some(vec![Subnet {
                subnet,
                gateway,
                lease_range: Some(LeaseRange {
                    start_ip: Some(start),
                    end_ip: Some(end),
                }),
                extra: Default::default(),
            }]),
            routes: None,
            ipv6_enabled: false,
            internal: false,
            dns_enabled: false,
            network_dns_servers: None,
            labels: None,
            options: Some(options),
            ipam_options: None,
            extra: Default::default(),
        }
    }

    const LOCAL: &[IpAddr] = &[IpAddr::V4(std::net::Ipv4Addr::new(10, 99, 0, 1))];

    #[test]
    fn a_host_joins_a_network_with_room() {
        let net = network("10.99.0.2", Some(8));
        let p = plan(&net, &Change::Add(vec![ip("10.99.0.3")]), LOCAL).unwrap();
        assert_eq!(p.peers, [ip("10.99.0.2"), ip("10.99.0.3")]);
        assert_eq!(p.changed, [ip("10.99.0.3")]);
        assert_eq!(p.peers_option(), "10.99.0.2,10.99.0.3");
        // Again: nothing to do.
        let again = network("10.99.0.2,10.99.0.3", Some(8));
        let p = plan(&again, &Change::Add(vec![ip("10.99.0.3")]), LOCAL).unwrap();
        assert!(p.changed.is_empty());
        assert_eq!(p.unchanged, [ip("10.99.0.3")]);
    }

    #[test]
    fn an_add_that_would_overlap_is_refused_saying_why() {
        // 10.99.0.9 takes slot 1 of 8, like this host (10.99.0.1).
        let net = network("10.99.0.2", Some(8));
        let err = plan(&net, &Change::Add(vec![ip("10.99.0.9")]), LOCAL).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("this host's range") && text.contains("slot 1"),
            "{text}"
        );
        // ... or a peer's slot.
        let err = plan(&net, &Change::Add(vec![ip("10.99.0.10")]), LOCAL).unwrap_err();
        assert!(format!("{err:#}").contains("10.99.0.2"), "{err:#}");
        // More hosts than slots.
        let small = network("10.99.0.2", Some(2));
        let err = plan(&small, &Change::Add(vec![ip("10.99.0.3")]), LOCAL).unwrap_err();
        assert!(format!("{err:#}").contains("hosts=2"), "{err:#}");
        // Without hosts, the subnet is all shared out.
        let closed = network("10.99.0.2", None);
        let err = plan(&closed, &Change::Add(vec![ip("10.99.0.3")]), LOCAL).unwrap_err();
        assert!(
            format!("{err:#}").contains("without option hosts"),
            "{err:#}"
        );
        // The whole subnet leased by this host.
        let mut alone = network("10.99.0.2", Some(8));
        alone.subnets.as_mut().unwrap()[0].lease_range = None;
        let err = plan(&alone, &Change::Add(vec![ip("10.99.0.3")]), LOCAL).unwrap_err();
        assert!(format!("{err:#}").contains("whole of subnet"), "{err:#}");
    }

    #[test]
    fn removing_is_always_safe_but_must_name_a_peer() {
        let closed = network("10.99.0.2,10.99.0.3", None);
        let p = plan(&closed, &Change::Remove(vec![ip("10.99.0.2")]), LOCAL).unwrap();
        assert_eq!(p.peers, [ip("10.99.0.3")]);
        let err = plan(&closed, &Change::Remove(vec![ip("10.99.0.7")]), LOCAL).unwrap_err();
        assert!(format!("{err:#}").contains("not a peer"), "{err:#}");
    }

    #[test]
    fn own_and_foreign_addresses_are_refused() {
        let net = network("10.99.0.2", Some(8));
        assert!(plan(&net, &Change::Add(vec![ip("10.99.0.1")]), LOCAL).is_err());
        assert!(plan(&net, &Change::Add(vec![ip("fd99::3")]), LOCAL).is_err());
        assert!(parse_addresses(&["224.0.0.1".to_string()]).is_err());
        assert!(parse_addresses(&["10.99.0.3".into(), "10.99.0.3".into()]).is_err());
        assert!(parse_addresses(&["nope".to_string()])
            .unwrap_err()
            .to_string()
            .contains("\"nope\""));
        assert_eq!(
            parse_addresses(&["10.99.0.3".to_string()]).unwrap(),
            [ip("10.99.0.3")]
        );
    }

    #[test]
    fn slots_of_the_listed_hosts_must_differ() {
        addressing::check_slots(&[ip("10.99.0.1"), ip("10.99.0.2")], 4).unwrap();
        let err = addressing::check_slots(&[ip("10.99.0.1"), ip("10.99.0.5")], 4).unwrap_err();
        assert!(err.to_string().contains("same addresses"), "{err}");
    }
}
