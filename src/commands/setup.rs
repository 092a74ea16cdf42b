//! `geneve-ovs setup <netns>`: attach a container to the network.
//!
//! Creates a veth pair whose container end is born inside the container's netns, configured
//! as podman's own bridge driver would (name, MAC, MTU, addresses, routes), and adds the host
//! end to the network's OVS bridge. Any failure undoes what this call created.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ipnet::IpNet;

use super::attachment::Attachment;
use super::{connect_ovs, lock_firewall, ovs_rundir, parse_input, refresh_underlay, LiveHost};
use crate::container_link::{self, ContainerLinkSpec, ContainerRoute};
use crate::control;
use crate::firewall::{self, PortTaken, Published};
use crate::flows;
use crate::gateway;
use crate::naming;
use crate::ofctl::Ofctl;
use crate::options::{self, Datapath, NetworkConfig, Stage};
use crate::ovs::schema::ContainerPortRecord;
use crate::ovs::snapshot::Scope;
use crate::ovs::{ContainerPort, Ovs};
use crate::port_security;
use crate::types::{NetAddress, NetInterface, Network, NetworkPluginExec, StatusBlock};

pub fn run(netns: &Path, input: &str) -> Result<String> {
    let exec: NetworkPluginExec = parse_input(input, "setup request")?;
    let network = &exec.network;
    let interface_name = exec.network_options.interface_name.clone();

    // Everything that can be checked without touching the host comes first.
    let mac = match exec.network_options.static_mac.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            naming::parse_mac(text)
                .with_context(|| format!("invalid static MAC address {text:?} (mac=)"))?,
        ),
    };
    check_static_mac(mac, None)?;
    let static_ips = exec.network_options.static_ips.clone().unwrap_or_default();
    let addresses = container_addresses(network, &static_ips)?;
    // A port mapping that cannot be rendered fails here, before anything exists. Internal
    // networks publish nothing (no gateway, no NAT).
    let port_mappings = exec.port_mappings.clone().unwrap_or_default();
    let published = if network.internal {
        Vec::new()
    } else {
        firewall::published_ports(&static_ips, &port_mappings)
            .with_context(|| format!("container {}", exec.container_name))?
    };

    // Connect before building anything, so that OVS being down leaves nothing behind.
    let mut ovs = connect_ovs()?;
    let cfg = options::resolve(network, Stage::Saved, &mut LiveHost::new(&mut ovs))?;
    check_static_mac(mac, Some(naming::gateway_mac(cfg.vni)))?;

    // From the veth's birth to its OVS port, keep `gc` from taking it for a leak.
    let _lock = super::lock_host_shared()?;

    let gateways = default_gateways(network, &addresses);
    let spec = ContainerLinkSpec {
        host_name: naming::host_veth_name(&network.id, &exec.container_id),
        interface_name: interface_name.clone(),
        mtu: cfg.mtu,
        mac,
        addresses: addresses.clone(),
        routes: network
            .routes()
            .iter()
            .map(|r| ContainerRoute {
                destination: r.destination,
                gateway: r.gateway,
                metric: r.metric,
            })
            .collect(),
        default_gateways: gateways,
        // The userspace datapath reads the host end through AF_PACKET and does not complete
        // partial checksums: without this, ping works and TCP does not.
        disable_tx_checksum: cfg.datapath == Datapath::Netdev,
    };
    let plane = control::for_network(network);
    let link = container_link::create(netns, &spec)?;
    let port = ContainerPort {
        name: spec.host_name.clone(),
        container_id: exec.container_id.clone(),
        container_name: exec.container_name.clone(),
        interface: interface_name.clone(),
        mac: naming::format_mac(&link.mac()),
        netns: netns.display().to_string(),
        addresses: static_ips,
        port_mappings,
    };
    let mut attachment = Attachment::new(ovs, network, plane, &spec.host_name);
    let applied = attachment.attach_port(&cfg, &port).with_context(|| {
        format!(
            "cannot add container {} to OVS bridge {}",
            exec.container_name, cfg.bridge
        )
    })?;
    if spec.disable_tx_checksum && applied.completes_checksums(&port.name) {
        keep_offloads(&link, &spec);
    }
    // The port's flows before anything is sent from it: the bridge drops whatever a port
    // without flows sends, so a probe sent earlier would get no answer and DAD would pass.
    install_flows(attachment.ovs(), &cfg, &port, applied.repaired)?;
    if let Some(timeout) = cfg.dad {
        // The port is on the bridge and the link up for the probe only: an address in use
        // elsewhere on the overlay is refused before this container ever claims it.
        if let Some(conflict) = link.probe(&port.addresses, timeout)? {
            bail!(
                "address {} is already in use on network {:?}: the interface with MAC {} \
                 answered for it (duplicate-address detection; choose another address, or \
                 turn the check off with --opt dad=false)",
                conflict.address,
                network.name,
                naming::format_mac(&conflict.mac)
            );
        }
    }
    link.configure(&spec)?;
    if !cfg.internal {
        connect_outside(attachment.ovs(), &cfg, &port.addresses, &published)?;
    } else if cfg.datapath == Datapath::System {
        // As in `create`: defence in depth, not a condition for the network to work.
        if let Err(err) = refresh_underlay(attachment.ovs()) {
            log::warn!("GENEVE underlay filter not refreshed: {err:#}");
        }
    }
    let attached = link.attached();
    attachment.commit();

    let gateway_of = |ip: &IpNet| {
        network
            .subnets()
            .iter()
            .filter(|_| !network.internal)
            .find(|s| s.subnet.contains(&ip.addr()))
            .and_then(|s| s.gateway)
    };
    let mut interfaces = BTreeMap::new();
    interfaces.insert(
        interface_name,
        NetInterface {
            mac_address: naming::format_mac(&attached.mac),
            subnets: addresses
                .iter()
                .map(|ip| NetAddress {
                    ipnet: *ip,
                    gateway: gateway_of(ip),
                })
                .collect(),
        },
    );
    let status = StatusBlock {
        dns_search_domains: Vec::new(),
        dns_server_ips: Vec::new(),
        interfaces,
    };
    Ok(serde_json::to_string(&status)?)
}

/// On the userspace datapath the container end starts with TX checksum offload off, because
/// OVS normally reads the host end without offload metadata and would forward partial
/// checksums as they are. With `userspace-tso-enable`, OVS reads it with that metadata and
/// completes checksums and segments itself (it says so in the port's status, read with the
/// wait for ovs-vswitchd): the container end then gets its offloads back, and sends TSO frames
/// instead of MTU-sized ones. Best effort: on failure the container keeps the slower,
/// always-correct setting.
fn keep_offloads(link: &container_link::PendingLink, spec: &ContainerLinkSpec) {
    if let Err(err) = link.enable_tx_checksum(spec) {
        log::warn!(
            "keeping TX checksum offload off on {}: {err:#}",
            spec.interface_name
        );
    }
}

/// The bridge's base flows and the port's own; the whole bridge's when the network had to be
/// repaired on the way (an older version's bridge just made `fail_mode=secure` has lost the
/// flows of the containers already on it). The repair is best effort: the port's own flows are
/// what this container needs.
fn install_flows(
    ovs: &mut Ovs,
    cfg: &NetworkConfig,
    port: &ContainerPort,
    repaired: bool,
) -> Result<()> {
    let ofctl = Ofctl::new(&ovs_rundir());
    if repaired {
        let lines = ovs.snapshot(Scope::Runtime).and_then(|inventory| {
            let mut lines = port_security::repair_lines(&inventory, &cfg.bridge)?;
            lines.extend(port_security::setup_lines(cfg, port)?);
            Ok(lines)
        });
        match lines.and_then(|lines| ofctl.apply(&cfg.bridge, &lines)) {
            Ok(()) => return Ok(()),
            Err(err) => log::warn!(
                "could not restore the flows of the other ports of bridge {} ({err:#}): \
                 `geneve-ovs gc` restores them",
                cfg.bridge
            ),
        }
    }
    port_security::install(&ofctl, cfg, port)
}

/// Refuses a static MAC (`mac=`) no container may have, before anything is built; the
/// gateway's is only known once the network is resolved.
fn check_static_mac(mac: Option<[u8; 6]>, gateway_mac: Option<[u8; 6]>) -> Result<()> {
    let Some(mac) = mac else {
        return Ok(());
    };
    if let Some(why) = flows::static_mac_refusal(mac, gateway_mac) {
        bail!(
            "static MAC address {} (mac=) refused: {why}; give the container another MAC, or none",
            naming::format_mac(&mac)
        );
    }
    Ok(())
}

/// The part of a non-internal network beyond the overlay: the gateway addresses on this host's
/// gateway port, and the network's and the container's elements in the nftables table (with
/// the underlay filter on the kernel datapath).
fn connect_outside(
    ovs: &mut Ovs,
    cfg: &NetworkConfig,
    addresses: &[IpAddr],
    published: &[Published],
) -> Result<()> {
    let gateway = naming::gateway_port_name(cfg.vni);
    gateway::configure(&gateway, &cfg.gateways)?;
    let (_lock, underlay) = if cfg.datapath == Datapath::System {
        let lock = lock_firewall()?;
        let underlay = firewall::Underlay::from_observed(&ovs.snapshot(Scope::Config)?);
        (Some(lock), Some(underlay))
    } else {
        (None, None)
    };
    match firewall::attach_container(&gateway, addresses, published, underlay.as_ref()) {
        Ok(()) => Ok(()),
        Err(err) => match err.downcast_ref::<PortTaken>() {
            Some(taken) => Err(anyhow::anyhow!(
                "{taken}{}; choose another host port, or, if that container is gone, run \
                 `geneve-ovs gc` to remove what it left",
                holder_of(ovs, taken.holder)
            )),
            None => Err(err),
        },
    }
}

/// ": container NAME (ID) on network NET" for the container port that has `address`, if OVS
/// knows one.
fn holder_of(ovs: &mut Ovs, address: IpAddr) -> String {
    let Ok(observed) = ovs.snapshot(Scope::Config) else {
        return String::new();
    };
    observed
        .ports
        .iter()
        .filter_map(|p| ContainerPortRecord::read(&p.external_ids))
        .find(|record| record.addresses.contains(&address))
        .map(|record| {
            let get = |v: Option<String>| v.unwrap_or_else(|| "?".to_string());
            format!(
                ": container {} ({}) on network {}",
                get(record.container_name),
                get(record.container_id)
                    .chars()
                    .take(12)
                    .collect::<String>(),
                get(record.network)
            )
        })
        .unwrap_or_default()
}

/// Each static IP with the prefix length of the network subnet that contains it.
fn container_addresses(network: &Network, static_ips: &[IpAddr]) -> Result<Vec<IpNet>> {
    static_ips
        .iter()
        .map(|ip| {
            let Some(subnet) = network.subnets().iter().find(|s| s.subnet.contains(ip)) else {
                bail!(
                    "static IP {ip} is in none of the subnets of network {:?}",
                    network.name
                );
            };
            IpNet::new(*ip, subnet.subnet.prefix_len()).with_context(|| {
                format!("static IP {ip} with prefix {}", subnet.subnet.prefix_len())
            })
        })
        .collect()
}

/// The gateways of the subnets the container has an address in; none on internal networks.
fn default_gateways(network: &Network, addresses: &[IpNet]) -> Vec<IpAddr> {
    if network.internal {
        return Vec::new();
    }
    network
        .subnets()
        .iter()
        .filter(|s| addresses.iter().any(|a| s.subnet.contains(&a.addr())))
        .filter_map(|s| s.gateway)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(internal: bool) -> Network {
        serde_json::from_value(serde_json::json!({
            "name": "net1", "id": "x", "driver": "geneve-ovs",
            "internal": internal, "dns_enabled": false, "ipv6_enabled": true,
            "subnets": [
                {"subnet": "192.168.120.0/24", "gateway": "192.168.120.254"},
                {"subnet": "fd12:3456::/64", "gateway": "fd12:3456::1"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn addresses_take_their_subnet_prefix() {
        let ips: Vec<IpAddr> = vec![
            "192.168.120.5".parse().unwrap(),
            "fd12:3456::5".parse().unwrap(),
        ];
        let got = container_addresses(&network(true), &ips).unwrap();
        assert_eq!(
            got,
            vec![
                "192.168.120.5/24".parse::<IpNet>().unwrap(),
                "fd12:3456::5/64".parse().unwrap()
            ]
        );
    }

    #[test]
    fn address_outside_the_subnets_is_an_error() {
        let e = container_addresses(&network(true), &["10.1.1.1".parse().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("10.1.1.1"), "{e}");
    }

    #[test]
    fn static_macs_no_container_may_have_are_refused() {
        let gateway = naming::gateway_mac(5001);
        let e = check_static_mac(Some([0x01, 0, 0x5e, 0, 0, 1]), None).unwrap_err();
        assert!(
            e.to_string().contains("01:00:5e:00:00:01") && e.to_string().contains("multicast"),
            "{e}"
        );
        let e = check_static_mac(Some([0; 6]), None).unwrap_err();
        assert!(e.to_string().contains("00:00:00:00:00:00"), "{e}");
        let e = check_static_mac(Some(gateway), Some(gateway)).unwrap_err();
        assert!(
            e.to_string().contains("02:67:77:00:13:89") && e.to_string().contains("gateway"),
            "{e}"
        );
        assert!(check_static_mac(Some([0x02, 1, 2, 3, 4, 5]), Some(gateway)).is_ok());
        assert!(check_static_mac(None, Some(gateway)).is_ok());
    }

    #[test]
    fn default_routes_only_off_internal_networks() {
        let addrs = vec!["192.168.120.5/24".parse().unwrap()];
        assert!(default_gateways(&network(true), &addrs).is_empty());
        assert_eq!(
            default_gateways(&network(false), &addrs),
            vec!["192.168.120.254".parse::<IpAddr>().unwrap()]
        );
    }
}
