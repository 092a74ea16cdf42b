//! What `setup` builds for one container, worked out before anything is built.
//!
//! Two pure steps, so that every rule of a setup request is testable without a host:
//!
//! 1. [`check_request`] checks what can be checked from the request alone (the static MAC, the
//!    static IPs against the subnets, the port mappings), before `setup` even connects to OVS.
//! 2. [`SetupPlan::new`] adds the network's resolved options: the container link, the OVS port
//!    and the reply, each address's gateway derived once and shared by the three.
//!
//! `setup` then applies the plan under its undo guard.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ipnet::IpNet;

use crate::container_link::{ContainerLinkSpec, ContainerRoute};
use crate::firewall::{self, Published};
use crate::flows;
use crate::naming;
use crate::options::{Datapath, NetworkConfig};
use crate::ovs::ContainerPort;
use crate::types::{NetAddress, NetInterface, Network, NetworkPluginExec, StatusBlock};

/// The parts of a setup request checked before the host is touched.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRequest {
    /// The static MAC (`mac=`), when one was given.
    mac: Option<[u8; 6]>,
    /// The container's addresses: each static IP with its subnet's prefix and gateway.
    addresses: Vec<NetAddress>,
    /// The port mappings as the firewall's elements; none on internal networks.
    published: Vec<Published>,
}

/// Checks what the request alone decides: a static MAC no container may have, a static IP
/// outside the network's subnets, a port mapping that cannot be rendered.
pub fn check_request(exec: &NetworkPluginExec) -> Result<CheckedRequest> {
    let network = &exec.network;
    let mac = match exec.network_options.static_mac.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            naming::parse_mac(text)
                .with_context(|| format!("invalid static MAC address {text:?} (mac=)"))?,
        ),
    };
    check_static_mac(mac, None)?;
    let static_ips = exec
        .network_options
        .static_ips
        .as_deref()
        .unwrap_or_default();
    let addresses = container_addresses(network, static_ips)?;
    // Internal networks publish nothing (no gateway, no NAT).
    let published = if network.internal {
        Vec::new()
    } else {
        let port_mappings = exec.port_mappings.as_deref().unwrap_or_default();
        firewall::published_ports(static_ips, port_mappings)
            .with_context(|| format!("container {}", exec.container_name))?
    };
    Ok(CheckedRequest {
        mac,
        addresses,
        published,
    })
}

/// Everything `setup` builds for one container.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupPlan {
    /// The container's veth pair and its configuration inside the container.
    pub link: ContainerLinkSpec,
    /// The container's OVS port but its `mac`, known once the link exists (see [`Self::port`]).
    port: ContainerPort,
    /// The container's addresses with the gateways podman reports for them.
    addresses: Vec<NetAddress>,
    /// The container's port mappings as the firewall's elements.
    pub published: Vec<Published>,
    /// The name servers podman writes into the container's `resolv.conf`: on an OVN network
    /// its gateway port's addresses, where OVN answers the containers' names.
    dns_servers: Vec<IpAddr>,
}

impl SetupPlan {
    /// The plan for attaching the container of `exec`, whose namespace is `netns`, to the
    /// network resolved as `cfg`. Refuses a static MAC equal to the network's gateway MAC,
    /// which only the resolved VNI says.
    pub fn new(
        exec: &NetworkPluginExec,
        netns: &Path,
        request: CheckedRequest,
        cfg: &NetworkConfig,
    ) -> Result<SetupPlan> {
        check_static_mac(request.mac, Some(naming::gateway_mac(cfg.vni)))?;
        let network = &exec.network;
        let host_name = naming::host_veth_name(&network.id, &exec.container_id);
        let interface_name = exec.network_options.interface_name.clone();
        let link = ContainerLinkSpec {
            host_name: host_name.clone(),
            interface_name: interface_name.clone(),
            mtu: cfg.mtu,
            mac: request.mac,
            addresses: request.addresses.iter().map(|a| a.ipnet).collect(),
            routes: network
                .routes()
                .iter()
                .map(|r| ContainerRoute {
                    destination: r.destination,
                    gateway: r.gateway,
                    metric: r.metric,
                })
                .collect(),
            default_gateways: default_gateways(network, &request.addresses),
            // The userspace datapath reads the host end through AF_PACKET and does not complete
            // partial checksums: without this, ping works and TCP does not.
            disable_tx_checksum: cfg.datapath == Datapath::Netdev,
            ignore_router_advertisements: !cfg.ovn.is_empty(),
        };
        let port = ContainerPort {
            name: host_name,
            container_id: exec.container_id.clone(),
            container_name: exec.container_name.clone(),
            interface: interface_name,
            mac: String::new(),
            netns: netns.display().to_string(),
            addresses: request.addresses.iter().map(|a| a.ipnet.addr()).collect(),
            port_mappings: exec.port_mappings.clone().unwrap_or_default(),
            aliases: exec.network_options.aliases.clone().unwrap_or_default(),
        };
        let dns_servers = if cfg.ovn.is_empty() {
            Vec::new()
        } else {
            cfg.gateways.iter().map(IpNet::addr).collect()
        };
        Ok(SetupPlan {
            link,
            port,
            addresses: request.addresses,
            published: request.published,
            dns_servers,
        })
    }

    /// The container's OVS port, for the link created with MAC `mac`.
    pub fn port(&self, mac: [u8; 6]) -> ContainerPort {
        ContainerPort {
            mac: naming::format_mac(&mac),
            ..self.port.clone()
        }
    }

    /// What `setup` prints once the container's interface is up with MAC `mac`.
    pub fn status(&self, mac: [u8; 6]) -> StatusBlock {
        let interface = NetInterface {
            mac_address: naming::format_mac(&mac),
            subnets: self.addresses.clone(),
        };
        StatusBlock {
            dns_search_domains: Vec::new(),
            dns_server_ips: self.dns_servers.clone(),
            interfaces: [(self.link.interface_name.clone(), interface)].into(),
        }
    }
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

/// Each static IP with the prefix length of the network subnet that contains it and, off
/// internal networks, that subnet's gateway: the one place a container address meets its subnet.
fn container_addresses(network: &Network, static_ips: &[IpAddr]) -> Result<Vec<NetAddress>> {
    static_ips
        .iter()
        .map(|ip| {
            let Some(subnet) = network.subnets().iter().find(|s| s.subnet.contains(ip)) else {
                bail!(
                    "static IP {ip} is in none of the subnets of network {:?}",
                    network.name
                );
            };
            let ipnet = IpNet::new(*ip, subnet.subnet.prefix_len()).with_context(|| {
                format!("static IP {ip} with prefix {}", subnet.subnet.prefix_len())
            })?;
            let gateway = subnet.gateway.filter(|_| !network.internal);
            Ok(NetAddress { ipnet, gateway })
        })
        .collect()
}

/// The gateways of the container's `addresses`, in the order of the network's subnets (the
/// container link makes the first of each family its default route); none on internal networks.
fn default_gateways(network: &Network, addresses: &[NetAddress]) -> Vec<IpAddr> {
    network
        .subnets()
        .iter()
        .filter_map(|s| s.gateway)
        .filter(|gateway| addresses.iter().any(|a| a.gateway == Some(*gateway)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options;

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

    fn ipnets(addresses: Vec<NetAddress>) -> Vec<IpNet> {
        addresses.into_iter().map(|a| a.ipnet).collect()
    }

    #[test]
    fn addresses_take_their_subnet_prefix() {
        let ips: Vec<IpAddr> = vec![
            "192.168.120.5".parse().unwrap(),
            "fd12:3456::5".parse().unwrap(),
        ];
        let got = ipnets(container_addresses(&network(true), &ips).unwrap());
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
        let ips: Vec<IpAddr> = vec!["192.168.120.5".parse().unwrap()];
        let internal = container_addresses(&network(true), &ips).unwrap();
        let open = container_addresses(&network(false), &ips).unwrap();
        assert!(default_gateways(&network(true), &internal).is_empty());
        assert_eq!(
            default_gateways(&network(false), &open),
            vec!["192.168.120.254".parse::<IpAddr>().unwrap()]
        );
    }

    /// A setup request for container `c1` on `network(internal)`.
    fn exec(internal: bool, static_mac: Option<&str>) -> NetworkPluginExec {
        let mut exec: NetworkPluginExec = serde_json::from_value(serde_json::json!({
            "container_id": "c1", "container_name": "web",
            "port_mappings": [{"container_port": 80, "host_port": 8080, "protocol": "tcp"}],
            "network": network(internal),
            "network_options": {
                "interface_name": "eth0",
                // Given in the reverse of the subnets' order.
                "static_ips": ["fd12:3456::5", "192.168.120.5"],
            }
        }))
        .unwrap();
        exec.network_options.static_mac = static_mac.map(str::to_string);
        exec
    }

    fn plan(exec: &NetworkPluginExec, internal: bool) -> Result<SetupPlan> {
        let cfg = NetworkConfig {
            internal,
            ..options::sample_config()
        };
        let request = check_request(exec)?;
        SetupPlan::new(exec, Path::new("/run/netns/c1"), request, &cfg)
    }

    #[test]
    fn the_link_the_port_and_the_reply_share_one_derivation_of_the_addresses() {
        let exec = exec(false, Some("02:00:00:00:00:05"));
        let plan = plan(&exec, false).unwrap();
        let v4: IpAddr = "192.168.120.254".parse().unwrap();
        let v6: IpAddr = "fd12:3456::1".parse().unwrap();

        assert_eq!(plan.link.host_name, naming::host_veth_name("x", "c1"));
        assert_eq!(plan.link.interface_name, "eth0");
        assert_eq!(plan.link.mtu, 1450);
        assert_eq!(plan.link.mac, Some([0x02, 0, 0, 0, 0, 5]));
        assert!(plan.link.disable_tx_checksum, "netdev datapath");
        let link_addresses: Vec<String> =
            plan.link.addresses.iter().map(IpNet::to_string).collect();
        assert_eq!(link_addresses, ["fd12:3456::5/64", "192.168.120.5/24"]);
        // Default routes in the subnets' order, whatever the order of the addresses.
        assert_eq!(plan.link.default_gateways, vec![v4, v6]);

        let port = plan.port([0x02, 0, 0, 0, 0, 5]);
        assert_eq!(port.name, plan.link.host_name);
        assert_eq!(port.mac, "02:00:00:00:00:05");
        assert_eq!(port.netns, "/run/netns/c1");
        assert_eq!(port.container_name, "web");
        let port_addresses: Vec<IpAddr> = plan.link.addresses.iter().map(IpNet::addr).collect();
        assert_eq!(port.addresses, port_addresses);
        assert_eq!(port.port_mappings.len(), 1);
        assert_eq!(
            plan.published.len(),
            2,
            "the mapping, to each of the two addresses"
        );

        let status = plan.status([0x02, 0, 0, 0, 0, 5]);
        let eth0 = &status.interfaces["eth0"];
        assert_eq!(eth0.mac_address, "02:00:00:00:00:05");
        let reply: Vec<(IpNet, Option<IpAddr>)> =
            eth0.subnets.iter().map(|s| (s.ipnet, s.gateway)).collect();
        assert_eq!(
            reply,
            vec![
                (plan.link.addresses[0], Some(v6)),
                (plan.link.addresses[1], Some(v4))
            ]
        );
    }

    #[test]
    fn an_internal_network_plans_no_gateway_and_publishes_nothing() {
        let exec = exec(true, None);
        let plan = plan(&exec, true).unwrap();
        assert!(plan.link.default_gateways.is_empty());
        assert!(plan.published.is_empty());
        let status = plan.status([0x02, 0, 0, 0, 0, 5]);
        assert!(status.interfaces["eth0"]
            .subnets
            .iter()
            .all(|s| s.gateway.is_none()));
        // The mappings stay with the port: the database keeps what podman asked for.
        assert_eq!(plan.port([0x02, 0, 0, 0, 0, 5]).port_mappings.len(), 1);
    }

    #[test]
    fn an_ovn_network_gives_podman_its_gateway_port_as_name_server() {
        let exec = exec(true, None);
        let request = check_request(&exec).unwrap();
        let mesh = options::sample_config();
        let plan = SetupPlan::new(&exec, Path::new("/run/netns/c1"), request.clone(), &mesh);
        assert!(plan
            .unwrap()
            .status([2, 0, 0, 0, 0, 5])
            .dns_server_ips
            .is_empty());
        let ovn = NetworkConfig {
            ovn: vec![crate::ovsdb::Remote::parse("tcp:10.99.0.250:6641", 6641).unwrap()],
            gateways: vec!["192.168.120.1/24".parse().unwrap()],
            ..options::sample_config()
        };
        let plan = SetupPlan::new(&exec, Path::new("/run/netns/c1"), request, &ovn).unwrap();
        let status = plan.status([2, 0, 0, 0, 0, 5]);
        assert_eq!(
            status.dns_server_ips,
            vec!["192.168.120.1".parse::<IpAddr>().unwrap()]
        );
        // Internal: the name server, but still no route out.
        assert!(plan.link.default_gateways.is_empty());
    }

    #[test]
    fn the_gateway_mac_is_refused_once_the_network_is_resolved() {
        let gateway = naming::format_mac(&naming::gateway_mac(5001));
        let exec = exec(false, Some(&gateway));
        assert!(check_request(&exec).is_ok(), "the VNI is not known yet");
        let err = plan(&exec, false).unwrap_err();
        assert!(err.to_string().contains(&gateway), "{err}");
    }
}
