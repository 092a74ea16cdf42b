//! Test fixtures: a database inventory and a host view built up step by step.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::host::{HostView, PeerPlace, Vswitchd};
use crate::netconf::{SavedNetwork, SavedNetworks};
use crate::netlink::LinkSummary;
use crate::ovs::schema::{keys, OWNER};
use crate::ovs::snapshot::{BridgeRow, InterfaceRow, PortRow, Snapshot};

pub struct Fix {
    pub inv: Snapshot,
    pub host: HostView,
    pub saved: SavedNetworks,
    next: usize,
}

fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Fix {
    pub fn new() -> Self {
        Fix {
            inv: Snapshot::default(),
            host: HostView {
                vswitchd: Some(Vswitchd::Running { pid: 42 }),
                ..HostView::default()
            },
            saved: SavedNetworks {
                dir: PathBuf::from("/etc/containers/networks"),
                ..SavedNetworks::default()
            },
            next: 0,
        }
    }

    fn uuid(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    /// An owned bridge of `network` (id `net-<network>`), and podman's file for it.
    pub fn network(&mut self, network: &str, bridge: &str, vni: u32, peers: &[&str]) -> &mut Self {
        let uuid = self.uuid("b");
        let id = format!("net-{network}");
        self.inv.bridges.push(BridgeRow {
            uuid,
            name: bridge.to_string(),
            external_ids: ids(&[
                (keys::OWNER, OWNER),
                (keys::ROLE, keys::ROLE_BRIDGE),
                (keys::NETWORK, network),
                (keys::NETWORK_ID, &id),
                (keys::VNI, &vni.to_string()),
            ]),
            datapath_type: "netdev".to_string(),
            fail_mode: Some("secure".to_string()),
            ports: Vec::new(),
        });
        self.saved.networks.push(SavedNetwork {
            name: network.to_string(),
            id,
            network_interface: Some(bridge.to_string()),
            options: ids(&[("mtu", "1450"), ("peers", &peers.join(","))]),
            file: PathBuf::from(format!("/etc/containers/networks/{network}.json")),
        });
        self
    }

    /// A bridge geneve-ovs did not create, holding one port of its own: the
    /// [`crate::ovs::snapshot::Scope::Runtime`] read sees every bridge.
    pub fn foreign_bridge(&mut self, bridge: &str) -> &mut Self {
        let uuid = self.uuid("b");
        let port = self.uuid("p");
        self.inv.bridges.push(BridgeRow {
            uuid,
            name: bridge.to_string(),
            external_ids: BTreeMap::new(),
            datapath_type: "netdev".to_string(),
            fail_mode: None,
            ports: vec![port],
        });
        self
    }

    /// podman forgets `network` (podman network rm).
    pub fn forget(&mut self, network: &str) -> &mut Self {
        self.saved.networks.retain(|n| n.name != network);
        self
    }

    fn attach(&mut self, bridge: &str, port: PortRow, iface: InterfaceRow) {
        let b = self
            .inv
            .bridges
            .iter_mut()
            .find(|b| b.name == bridge)
            .expect("bridge of the fixture");
        b.ports.push(port.uuid.clone());
        if crate::ovs::schema::is_owned(&port.external_ids) {
            self.inv.ports.push(port);
        }
        self.inv.interfaces.push(iface);
    }

    fn network_of(&self, bridge: &str) -> (String, String) {
        let b = self.inv.bridges.iter().find(|b| b.name == bridge).unwrap();
        (
            b.external_ids[keys::NETWORK].clone(),
            b.external_ids[keys::NETWORK_ID].clone(),
        )
    }

    /// A tunnel to `peer`; `bfd` is `None` when BFD is off, else its state.
    pub fn tunnel(
        &mut self,
        bridge: &str,
        peer: &str,
        bfd: Option<&str>,
        error: Option<&str>,
    ) -> &mut Self {
        let (network, id) = self.network_of(bridge);
        let name = format!("gt{}", peer.replace(['.', ':'], ""));
        let external_ids = ids(&[
            (keys::OWNER, OWNER),
            (keys::ROLE, keys::ROLE_TUNNEL),
            (keys::NETWORK, &network),
            (keys::NETWORK_ID, &id),
            (keys::PEER, peer),
        ]);
        let (pu, iu) = (self.uuid("p"), self.uuid("i"));
        let iface = InterfaceRow {
            uuid: iu.clone(),
            name: name.clone(),
            kind: "geneve".to_string(),
            options: ids(&[("remote_ip", peer)]),
            bfd: if bfd.is_some() {
                ids(&[("enable", "true")])
            } else {
                BTreeMap::new()
            },
            bfd_status: match bfd {
                Some("") | None => BTreeMap::new(),
                Some(state) => ids(&[("state", state), ("diagnostic", "No Diagnostic")]),
            },
            statistics: [
                ("rx_packets".to_string(), 10),
                ("tx_packets".to_string(), 12),
            ]
            .into_iter()
            .collect(),
            error: error.map(str::to_string),
            ofport: Some(if error.is_some() { -1 } else { 2 }),
            mtu: None,
            external_ids: external_ids.clone(),
            ..InterfaceRow::default()
        };
        let port = PortRow {
            uuid: pu,
            name,
            external_ids,
            interfaces: vec![iu],
            ..PortRow::default()
        };
        self.attach(bridge, port, iface);
        self
    }

    /// A container port `name` on `bridge` whose netns is `netns` (alive or not) and whose
    /// veth exists or not.
    pub fn container(
        &mut self,
        bridge: &str,
        name: &str,
        netns: &str,
        netns_alive: bool,
        veth: bool,
    ) -> &mut Self {
        let (network, id) = self.network_of(bridge);
        self.container_of(bridge, &network, &id, name, netns, netns_alive, veth)
    }

    /// An OVN network (its `ovn` option names the lab's northbound database): podman's file,
    /// and OVN's integration bridge `br-int` (not the plugin's) if there is none yet.
    pub fn ovn_network(&mut self, network: &str) -> &mut Self {
        if !self.inv.bridges.iter().any(|b| b.name == "br-int") {
            self.foreign_bridge("br-int");
        }
        self.saved.networks.push(SavedNetwork {
            name: network.to_string(),
            id: format!("net-{network}"),
            network_interface: Some("br-int".to_string()),
            options: ids(&[("mtu", "1450"), ("ovn", "tcp:10.99.0.250:6641")]),
            file: PathBuf::from(format!("/etc/containers/networks/{network}.json")),
        });
        self
    }

    /// A container of OVN network `network`, its port on `br-int`.
    pub fn ovn_container(&mut self, network: &str, name: &str, netns: &str) -> &mut Self {
        let id = format!("net-{network}");
        self.container_of("br-int", network, &id, name, netns, true, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn container_of(
        &mut self,
        bridge: &str,
        network: &str,
        id: &str,
        name: &str,
        netns: &str,
        netns_alive: bool,
        veth: bool,
    ) -> &mut Self {
        let external_ids = ids(&[
            (keys::OWNER, OWNER),
            (keys::ROLE, keys::ROLE_CONTAINER),
            (keys::NETWORK, network),
            (keys::NETWORK_ID, id),
            (
                keys::CONTAINER_ID,
                &format!("{name}-container-id-0123456789"),
            ),
            (keys::CONTAINER_NAME, &format!("ctr-{name}")),
            (keys::INTERFACE, "eth0"),
            (keys::MAC, "0a:58:c0:a8:78:05"),
            (keys::NETNS, netns),
        ]);
        let (pu, iu) = (self.uuid("p"), self.uuid("i"));
        let iface = InterfaceRow {
            uuid: iu.clone(),
            name: name.to_string(),
            error: (!veth)
                .then(|| format!("could not open network device {name} (No such device)")),
            ofport: Some(if veth { 5 } else { -1 }),
            mtu: veth.then_some(1450),
            external_ids: external_ids.clone(),
            ..InterfaceRow::default()
        };
        let port = PortRow {
            uuid: pu,
            name: name.to_string(),
            external_ids,
            interfaces: vec![iu],
            ..PortRow::default()
        };
        self.attach(bridge, port, iface);
        if netns_alive {
            self.host.live_netns.insert(netns.to_string());
        }
        if veth {
            self.link(name, Some(PeerPlace::Mounted(PathBuf::from(netns))));
        }
        self
    }

    /// Makes `bridge`'s network non-internal and gives it its gateway port.
    pub fn gateway(&mut self, bridge: &str, name: &str) -> &mut Self {
        let (network, id) = self.network_of(bridge);
        if let Some(b) = self.inv.bridges.iter_mut().find(|b| b.name == bridge) {
            b.external_ids
                .insert(keys::INTERNAL.to_string(), "false".to_string());
        }
        let external_ids = ids(&[
            (keys::OWNER, OWNER),
            (keys::ROLE, keys::ROLE_GATEWAY),
            (keys::NETWORK, &network),
            (keys::NETWORK_ID, &id),
        ]);
        let (pu, iu) = (self.uuid("p"), self.uuid("i"));
        let iface = InterfaceRow {
            uuid: iu.clone(),
            name: name.to_string(),
            kind: "internal".to_string(),
            external_ids: external_ids.clone(),
            ..InterfaceRow::default()
        };
        let port = PortRow {
            uuid: pu,
            name: name.to_string(),
            external_ids,
            interfaces: vec![iu],
            ..PortRow::default()
        };
        self.attach(bridge, port, iface);
        self
    }

    /// A port somebody else added to `bridge`.
    pub fn foreign_port(&mut self, bridge: &str, name: &str) -> &mut Self {
        let (pu, iu) = (self.uuid("p"), self.uuid("i"));
        let iface = InterfaceRow {
            uuid: iu.clone(),
            name: name.to_string(),
            ..InterfaceRow::default()
        };
        let port = PortRow {
            uuid: pu,
            name: name.to_string(),
            external_ids: BTreeMap::new(),
            interfaces: vec![iu],
            ..PortRow::default()
        };
        self.attach(bridge, port, iface);
        self
    }

    /// A link of the host; `peer` is given for veths.
    pub fn link(&mut self, name: &str, peer: Option<PeerPlace>) -> &mut Self {
        self.next += 1;
        self.host.links.push(LinkSummary {
            index: self.next as u32,
            name: name.to_string(),
            kind: peer.as_ref().map(|_| "veth".to_string()),
            peer_index: peer.as_ref().map(|_| 2),
            peer_netnsid: None,
        });
        if let Some(place) = peer {
            if super::host::is_host_veth_name(name) {
                self.host.peers.insert(name.to_string(), place);
            }
        }
        self
    }
}
