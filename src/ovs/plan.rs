//! Working out what must change in OVS for a network to be as its configuration says.
//!
//! Pure: it compares the desired network ([`NetworkConfig`]) with the [`Snapshot`] database
//! and lists [`Change`]s. `create` applies them (a reconcile: run again with other peers it
//! adds and removes tunnels), and `setup` applies them when the bridge was lost behind the
//! plugin's back. Refusals (a foreign bridge of the same name, a VNI already in use) are
//! decided here too, before anything is written.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{bail, Result};

use super::schema::{bridge_external_ids, gateway_external_ids, tunnel_external_ids, Role};
use super::snapshot::{BridgeRow, Snapshot};
use crate::ipsec::{self, HostPki, Psk};
use crate::naming;
use crate::options::{Datapath, NetworkConfig};

/// One GENEVE tunnel port to one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub name: String,
    pub peer: IpAddr,
    pub vni: u32,
    pub local_ip: Option<IpAddr>,
    pub dst_port: u16,
    pub bfd: bool,
    /// The pre-shared key of an encrypted network: `options:psk`, which is what makes
    /// ovs-monitor-ipsec set up IPsec for the tunnel (and ovs-vswitchd mark its packets).
    pub psk: Option<Psk>,
    /// With certificates: `options:remote_name`, the CN the peer's certificate must carry,
    /// which is its underlay address ([`crate::ipsec::HostPki`]).
    pub remote_name: Option<String>,
    pub external_ids: BTreeMap<String, String>,
}

/// `Bridge.fail_mode` of the plugin's bridges. `secure`: ovs-vswitchd never sets up flows of
/// its own, so after a restart (which loses the OpenFlow table) the bridge drops everything
/// until the plugin's flows are back, instead of switching frames unprotected.
pub const FAIL_MODE: &str = "secure";

/// BFD transmit and receive intervals of the tunnels, in milliseconds: one control packet a
/// second each way, and a peer silent for three intervals (3 s) is declared down.
pub const BFD_INTERVAL_MS: u32 = 1000;

impl Tunnel {
    /// The `Interface.bfd` of the tunnel: empty when BFD is off.
    pub fn bfd_config(&self) -> BTreeMap<String, String> {
        bfd_config(self.bfd)
    }

    /// The `Interface.options` of the tunnel.
    pub fn options(&self) -> BTreeMap<String, String> {
        let mut options = BTreeMap::new();
        options.insert("remote_ip".to_string(), self.peer.to_string());
        options.insert("key".to_string(), self.vni.to_string());
        if self.dst_port != crate::options::DEFAULT_DST_PORT {
            options.insert("dst_port".to_string(), self.dst_port.to_string());
        }
        if let Some(ip) = self.local_ip {
            options.insert("local_ip".to_string(), ip.to_string());
        }
        if let Some(psk) = &self.psk {
            options.insert("psk".to_string(), psk.expose().to_string());
        }
        if let Some(name) = &self.remote_name {
            options.insert("remote_name".to_string(), name.clone());
        }
        options
    }
}

/// The `Interface.bfd` column for a tunnel with BFD `enabled` or not.
///
/// By default OVS takes every UDP packet to port 3784 that comes out of a BFD-enabled tunnel
/// as BFD, whatever its destination: a container's own BFD (or anything else on that port)
/// would never reach the other host. `check_tnl_key` cannot tell them apart on our tunnels:
/// with a fixed `options:key` both BFD and container traffic carry the VNI, and it kills BFD
/// itself (tested). What does is the inner destination MAC: BFD is sent to
/// [`BFD_DST_MAC`](crate::flows::BFD_DST_MAC) (`bfd_local_dst_mac`, OVS's default made
/// explicit) and only packets to it are taken as BFD (`bfd_remote_dst_mac`), so container
/// frames, addressed to a container's MAC, cross untouched. Containers may not send to that
/// MAC (a port-security flow drops it).
pub fn bfd_config(enabled: bool) -> BTreeMap<String, String> {
    if !enabled {
        return BTreeMap::new();
    }
    let interval = BFD_INTERVAL_MS.to_string();
    let bfd_mac = naming::format_mac(&crate::flows::BFD_DST_MAC);
    [
        ("enable", "true"),
        ("min_rx", interval.as_str()),
        ("min_tx", interval.as_str()),
        ("bfd_local_dst_mac", bfd_mac.as_str()),
        ("bfd_remote_dst_mac", bfd_mac.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The network's gateway port on this host: an OVS internal port holding the subnets' gateway
/// addresses, with the same MAC on every host.
///
/// It is `protected`, like every tunnel port: protected ports never exchange frames with each
/// other, so nothing the gateway sends (ARP and neighbour replies, routed packets) ever enters a
/// tunnel, and nothing that comes out of a tunnel (a remote container's ARP request for the
/// gateway) ever reaches it. Each container therefore resolves the gateway to its own host's
/// port, and the shared MAC never shows up on a tunnel port, where it would flap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub external_ids: BTreeMap<String, String>,
}

/// One change to the OVS database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new bridge with its internal port and its tunnels.
    CreateBridge {
        name: String,
        datapath: Datapath,
        external_ids: BTreeMap<String, String>,
        tunnels: Vec<Tunnel>,
        gateway: Option<Gateway>,
    },
    /// The bridge is the network's but carries an older identity (the network was removed and
    /// created again), another datapath, or is not yet [`FAIL_MODE`] (created by an older
    /// version).
    UpdateBridge {
        uuid: String,
        external_ids: BTreeMap<String, String>,
        datapath: Datapath,
    },
    /// Tunnels to peers that have none yet.
    AddTunnels {
        bridge: String,
        tunnels: Vec<Tunnel>,
    },
    /// The gateway port, when the first container of a non-internal network arrives.
    AddGateway { bridge: String, gateway: Gateway },
    /// Owned ports to drop from a bridge (tunnels to peers no longer listed).
    RemovePorts { bridge: String, ports: Vec<String> },
    /// Owned tunnel ports that lost `protected=true`.
    ProtectPorts { ports: Vec<String> },
    /// The gateway interface (by UUID) of an older version, whose OpenFlow port number is not
    /// the pinned [`GATEWAY_OFPORT`](crate::flows::GATEWAY_OFPORT) the base flows name.
    PinGateway { interface: String },
    /// A tunnel whose options or `external_ids` differ from the network's (encryption turned
    /// on or off, a new key): its port and interface rows are rewritten in place.
    UpdateTunnel {
        port: String,
        interface: String,
        options: BTreeMap<String, String>,
        external_ids: BTreeMap<String, String>,
    },
    /// Tunnel interfaces (by UUID) whose `bfd` column differs from the network's setting.
    SetBfd {
        interfaces: Vec<String>,
        bfd: BTreeMap<String, String>,
    },
    /// An owned bridge of the same network under another name (an earlier create of it).
    RemoveBridge { uuid: String },
    /// The host's certificate, key and CA for OVS IPsec (`Open_vSwitch.other_config`), when
    /// the first network with certificates is created on this host.
    SetHostPki { pki: HostPki },
}

/// The gateway port a non-internal network has on this host from its first container on.
/// It stays when the last container leaves, as the bridge does, and goes with the bridge once
/// the network is gone (`gc`): removing it would make that `teardown` and the next `setup` each
/// wait for ovs-vswitchd to delete and create the device again (docs/benchmarks.md).
pub fn desired_gateway(cfg: &NetworkConfig) -> Option<Gateway> {
    if cfg.internal || cfg.gateways.is_empty() {
        return None;
    }
    Some(Gateway {
        name: naming::gateway_port_name(cfg.vni),
        mac: naming::gateway_mac(cfg.vni),
        mtu: cfg.mtu,
        external_ids: gateway_external_ids(cfg),
    })
}

/// ovs-monitor-ipsec takes the host's certificate settings into every tunnel and then refuses
/// those with a pre-shared key: a network with certificates is refused while another network
/// of this host has tunnels with a key (this network's own are rewritten in the same change).
fn check_no_psk_tunnels(cfg: &NetworkConfig, observed: &Snapshot) -> Result<()> {
    let network = |i: &super::snapshot::InterfaceRow| {
        i.external_ids
            .get(super::schema::keys::NETWORK)
            .cloned()
            .unwrap_or_default()
    };
    let keyed = observed
        .interfaces
        .iter()
        .find(|i| i.options.contains_key("psk") && network(i) != cfg.name);
    if let Some(i) = keyed {
        bail!(
            "invalid option cert: this host's OVS IPsec would take certificates for every \
             tunnel, and network {:?} uses a pre-shared key (tunnel {}); OVS IPsec cannot mix \
             the two on one host: give that network cert, key and ca too (create it again), or \
             use its psk_file here",
            network(i),
            i.name
        );
    }
    Ok(())
}

/// The tunnels the network wants on this host, one per peer.
pub fn desired_tunnels(cfg: &NetworkConfig) -> Vec<Tunnel> {
    cfg.peers
        .iter()
        .map(|&peer| {
            let external_ids = tunnel_external_ids(cfg, peer);
            Tunnel {
                name: naming::tunnel_port_name(cfg.vni, peer, cfg.local_ip, cfg.dst_port),
                peer,
                vni: cfg.vni,
                local_ip: cfg.local_ip,
                dst_port: cfg.dst_port,
                bfd: cfg.bfd,
                psk: cfg.encryption.psk().cloned(),
                remote_name: cfg.encryption.host_pki().map(|_| peer.to_string()),
                external_ids,
            }
        })
        .collect()
}

/// Lists the changes that make the database hold `cfg`'s bridge and tunnels, and its gateway
/// port once the network has had a container on this host (`adding_container`: one is about to
/// be added).
pub fn plan(
    cfg: &NetworkConfig,
    observed: &Snapshot,
    adding_container: bool,
) -> Result<Vec<Change>> {
    check_vni_is_free(cfg, observed)?;
    let mut changes = Vec::new();
    let seen =
        ipsec::PKI_OTHER_CONFIG_KEYS.map(|k| observed.ovs_other_config.get(k).map(String::as_str));
    if let Some(pki) = cfg.encryption.host_pki() {
        check_no_psk_tunnels(cfg, observed)?;
        if ipsec::check_host_pki(pki, &seen)? {
            changes.push(Change::SetHostPki { pki: pki.clone() });
        }
    } else if cfg.encryption.psk().is_some() {
        ipsec::check_no_host_pki(&seen)?;
    }
    let wanted = desired_tunnels(cfg);

    match observed.bridge(&cfg.bridge) {
        None => changes.push(Change::CreateBridge {
            name: cfg.bridge.clone(),
            datapath: cfg.datapath,
            external_ids: bridge_external_ids(cfg),
            tunnels: wanted,
            gateway: desired_gateway(cfg).filter(|_| adding_container),
        }),
        Some(bridge) => {
            check_bridge_is_ours(cfg, bridge)?;
            let external_ids = bridge_external_ids(cfg);
            if bridge.external_ids != external_ids
                || bridge.datapath_type != cfg.datapath.as_str()
                || bridge.fail_mode.as_deref() != Some(FAIL_MODE)
            {
                changes.push(Change::UpdateBridge {
                    uuid: bridge.uuid.clone(),
                    external_ids,
                    datapath: cfg.datapath,
                });
            }
            changes.extend(tunnel_changes(bridge, observed, wanted));
            changes.extend(gateway_changes(cfg, bridge, observed, adding_container));
        }
    }

    for stale in observed
        .owned_bridges()
        .filter(|b| b.network() == Some(cfg.name.as_str()) && b.name != cfg.bridge)
    {
        changes.push(Change::RemoveBridge {
            uuid: stale.uuid.clone(),
        });
    }
    Ok(changes)
}

fn check_vni_is_free(cfg: &NetworkConfig, observed: &Snapshot) -> Result<()> {
    let vni = cfg.vni;
    for bridge in observed.all_bridges() {
        let Some(other) = bridge.network() else {
            continue;
        };
        let same_vni = bridge.record().and_then(|r| r.vni) == Some(cfg.vni);
        if other != cfg.name && same_vni {
            bail!(
                "VNI {vni} is already used on this host by geneve-ovs network {other:?} \
                 (OVS bridge {}): give network {:?} another --opt vni=",
                bridge.name,
                cfg.name
            );
        }
    }
    Ok(())
}

fn check_bridge_is_ours(cfg: &NetworkConfig, bridge: &BridgeRow) -> Result<()> {
    match bridge.network() {
        None => bail!(
            "an OVS bridge named {:?} already exists and was not created by geneve-ovs: \
             refusing to take it over (choose another --interface-name, or remove the bridge)",
            bridge.name
        ),
        Some(other) if other != cfg.name => bail!(
            "the OVS bridge {:?} belongs to geneve-ovs network {other:?}, not {:?}: \
             choose another --interface-name",
            bridge.name,
            cfg.name
        ),
        Some(_) => Ok(()),
    }
}

fn gateway_changes(
    cfg: &NetworkConfig,
    bridge: &BridgeRow,
    observed: &Snapshot,
    adding_container: bool,
) -> Vec<Change> {
    let has_containers = adding_container
        || observed
            .ports_of(bridge)
            .any(|p| p.has_role(Role::Container));
    let present: Vec<_> = observed
        .ports_of(bridge)
        .filter(|p| p.has_role(Role::Gateway))
        .collect();
    // Made with the first container; kept once there, also when the last container leaves.
    let wanted =
        desired_gateway(cfg).filter(|g| has_containers || present.iter().any(|p| p.name == g.name));
    let mut changes = Vec::new();
    let stale: Vec<String> = present
        .iter()
        .filter(|p| wanted.as_ref().is_none_or(|g| g.name != p.name))
        .map(|p| p.uuid.clone())
        .collect();
    if !stale.is_empty() {
        changes.push(Change::RemovePorts {
            bridge: bridge.uuid.clone(),
            ports: stale,
        });
    }
    if let Some(gateway) = wanted {
        if !present.iter().any(|p| p.name == gateway.name) {
            changes.push(Change::AddGateway {
                bridge: bridge.uuid.clone(),
                gateway,
            });
        } else if let Some(interface) = observed
            .interface(&gateway.name)
            .filter(|i| i.ofport_request != Some(i64::from(crate::flows::GATEWAY_OFPORT)))
        {
            changes.push(Change::PinGateway {
                interface: interface.uuid.clone(),
            });
        }
    }
    changes
}

fn tunnel_changes(bridge: &BridgeRow, observed: &Snapshot, wanted: Vec<Tunnel>) -> Vec<Change> {
    let present: Vec<_> = observed
        .ports_of(bridge)
        .filter(|p| p.has_role(Role::Tunnel))
        .collect();
    let mut changes = Vec::new();

    let missing: Vec<Tunnel> = wanted
        .iter()
        .filter(|t| !present.iter().any(|p| p.name == t.name))
        .cloned()
        .collect();
    if !missing.is_empty() {
        changes.push(Change::AddTunnels {
            bridge: bridge.uuid.clone(),
            tunnels: missing,
        });
    }

    let extra: Vec<String> = present
        .iter()
        .filter(|p| !wanted.iter().any(|t| t.name == p.name))
        .map(|p| p.uuid.clone())
        .collect();
    if !extra.is_empty() {
        changes.push(Change::RemovePorts {
            bridge: bridge.uuid.clone(),
            ports: extra,
        });
    }

    let unprotected: Vec<String> = present
        .iter()
        .filter(|p| !p.protected && wanted.iter().any(|t| t.name == p.name))
        .map(|p| p.uuid.clone())
        .collect();
    if !unprotected.is_empty() {
        changes.push(Change::ProtectPorts { ports: unprotected });
    }

    for tunnel in &wanted {
        let Some(port) = present.iter().find(|p| p.name == tunnel.name) else {
            continue;
        };
        let Some(interface) = observed.interface(&tunnel.name) else {
            continue;
        };
        let options = tunnel.options();
        if interface.options != options
            || interface.external_ids != tunnel.external_ids
            || port.external_ids != tunnel.external_ids
        {
            changes.push(Change::UpdateTunnel {
                port: port.uuid.clone(),
                interface: interface.uuid.clone(),
                options,
                external_ids: tunnel.external_ids.clone(),
            });
        }
    }

    // BFD is one setting for the whole network, so one change covers every stray tunnel.
    if let Some(first) = wanted.first() {
        let bfd = first.bfd_config();
        let stray: Vec<String> = present
            .iter()
            .filter(|p| wanted.iter().any(|t| t.name == p.name))
            .filter_map(|p| observed.interface(&p.name))
            .filter(|i| i.bfd != bfd)
            .map(|i| i.uuid.clone())
            .collect();
        if !stray.is_empty() {
            changes.push(Change::SetBfd {
                interfaces: stray,
                bfd,
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovs::schema::keys;
    use crate::ovs::snapshot::{InterfaceRow, PortRow};

    fn cfg(peers: &[&str]) -> NetworkConfig {
        NetworkConfig {
            peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
            ..crate::options::sample_config()
        }
    }

    /// The database as `plan`'s own changes would leave it for `c`.
    fn built(c: &NetworkConfig) -> Snapshot {
        let tunnels = desired_tunnels(c);
        Snapshot {
            bridges: vec![BridgeRow {
                uuid: "b1".into(),
                name: c.bridge.clone(),
                external_ids: bridge_external_ids(c),
                datapath_type: c.datapath.as_str().into(),
                fail_mode: Some(FAIL_MODE.into()),
                ports: tunnels.iter().map(|t| format!("u-{}", t.name)).collect(),
            }],
            ports: tunnels
                .iter()
                .map(|t| PortRow {
                    uuid: format!("u-{}", t.name),
                    name: t.name.clone(),
                    external_ids: t.external_ids.clone(),
                    protected: true,
                    ..PortRow::default()
                })
                .collect(),
            interfaces: tunnels
                .iter()
                .map(|t| InterfaceRow {
                    uuid: format!("i-{}", t.name),
                    name: t.name.clone(),
                    bfd: t.bfd_config(),
                    ofport_request: None,
                    options: t.options(),
                    external_ids: t.external_ids.clone(),
                    ..InterfaceRow::default()
                })
                .collect(),
            ovs_other_config: BTreeMap::new(),
        }
    }

    fn encrypted(c: NetworkConfig, key: &str) -> NetworkConfig {
        NetworkConfig {
            datapath: Datapath::System,
            encryption: crate::ipsec::Encryption::IpsecPsk {
                psk_file: "/etc/net1.psk".into(),
                psk: crate::ipsec::check_key_text(std::path::Path::new("/k"), key).unwrap(),
            },
            ..c
        }
    }

    #[test]
    fn encrypted_tunnels_carry_the_key_and_say_so() {
        let c = encrypted(cfg(&["10.99.0.2"]), "0123456789abcdef0123");
        let tunnels = desired_tunnels(&c);
        assert_eq!(tunnels[0].options()["psk"], "0123456789abcdef0123");
        assert_eq!(tunnels[0].external_ids[keys::ENCRYPT], "ipsec");
        assert!(!format!("{tunnels:?}").contains("0123456789abcdef"));
        assert!(plan(&c, &built(&c), false).unwrap().is_empty());
        // A clear network's tunnels have neither.
        let clear = desired_tunnels(&cfg(&["10.99.0.2"]));
        assert!(!clear[0].options().contains_key("psk"));
        assert!(!clear[0].external_ids.contains_key(keys::ENCRYPT));
    }

    #[test]
    fn turning_encryption_on_off_or_a_new_key_updates_the_tunnels_in_place() {
        let clear = NetworkConfig {
            datapath: Datapath::System,
            ..cfg(&["10.99.0.2", "10.99.0.3"])
        };
        let on = encrypted(clear.clone(), "0123456789abcdef0123");
        let rotated = encrypted(clear.clone(), "fedcba9876543210fedc");
        for (from, to) in [(&clear, &on), (&on, &clear), (&on, &rotated)] {
            let changes = plan(to, &built(from), false).unwrap();
            assert_eq!(changes.len(), 2, "{changes:?}");
            for (change, tunnel) in changes.iter().zip(desired_tunnels(to)) {
                let Change::UpdateTunnel {
                    port,
                    options,
                    external_ids,
                    ..
                } = change
                else {
                    panic!("{change:?}");
                };
                assert_eq!(port, &format!("u-{}", tunnel.name));
                assert_eq!(options, &tunnel.options());
                assert_eq!(external_ids, &tunnel.external_ids);
            }
        }
    }

    fn with_certificates(c: NetworkConfig) -> NetworkConfig {
        NetworkConfig {
            datapath: Datapath::System,
            encryption: crate::ipsec::Encryption::IpsecCert(HostPki {
                certificate: "/etc/geneve-ovs/host-cert.pem".into(),
                private_key: "/etc/geneve-ovs/host-privkey.pem".into(),
                ca_cert: "/etc/geneve-ovs/cacert.pem".into(),
            }),
            ..c
        }
    }

    #[test]
    fn certificate_tunnels_name_the_peer_and_the_host_gets_its_pki_once() {
        let c = with_certificates(cfg(&["10.99.0.2", "10.99.0.3"]));
        let tunnels = desired_tunnels(&c);
        // The peer's certificate must carry its address as CN; no key on the tunnel.
        assert_eq!(tunnels[0].options()["remote_name"], "10.99.0.2");
        assert_eq!(tunnels[1].options()["remote_name"], "10.99.0.3");
        assert!(!tunnels[0].options().contains_key("psk"));
        assert_eq!(tunnels[0].external_ids[keys::ENCRYPT], "ipsec");

        // A host without certificate settings gets them, with the bridge.
        let changes = plan(&c, &Snapshot::default(), false).unwrap();
        let pki = c.encryption.host_pki().unwrap().clone();
        assert_eq!(changes[0], Change::SetHostPki { pki: pki.clone() });
        assert!(matches!(changes[1], Change::CreateBridge { .. }));

        // Set to the same files: nothing to do.
        let mut observed = built(&c);
        observed.ovs_other_config = pki
            .other_config()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(plan(&c, &observed, false).unwrap(), vec![]);

        // Set to other files (another network's, or the operator's): refused, nothing planned.
        observed
            .ovs_other_config
            .insert("certificate".into(), "/etc/other-cert.pem".into());
        let err = plan(&c, &observed, false).unwrap_err().to_string();
        assert!(err.contains("/etc/other-cert.pem"), "{err}");

        // A pre-shared key on a host with certificate settings: refused (OVS IPsec would
        // refuse the tunnels), and certificates beside another network's keyed tunnels too.
        let psk_net = encrypted(cfg(&["10.99.0.2"]), "0123456789abcdef0123");
        let with_pki = Snapshot {
            ovs_other_config: observed.ovs_other_config.clone(),
            ..Snapshot::default()
        };
        let err = plan(&psk_net, &with_pki, false).unwrap_err().to_string();
        assert!(
            err.contains("psk_file") && err.contains("certificate"),
            "{err}"
        );
        let mut other = built(&psk_net);
        for i in &mut other.interfaces {
            i.external_ids.insert(keys::NETWORK.into(), "keyed".into());
        }
        let err = plan(&c, &other, false).unwrap_err().to_string();
        assert!(
            err.contains("\"keyed\"") && err.contains("pre-shared key"),
            "{err}"
        );

        // From a pre-shared key to certificates: the tunnels are rewritten in place.
        let psk = encrypted(cfg(&["10.99.0.2", "10.99.0.3"]), "0123456789abcdef0123");
        let changes = plan(&c, &built(&psk), false).unwrap();
        let updated: Vec<_> = changes
            .iter()
            .filter_map(|ch| match ch {
                Change::UpdateTunnel { options, .. } => Some(options),
                _ => None,
            })
            .collect();
        assert_eq!(updated.len(), 2, "{changes:?}");
        assert!(updated
            .iter()
            .all(|o| o.contains_key("remote_name") && !o.contains_key("psk")));
    }

    #[test]
    fn empty_database_gets_a_bridge_with_all_tunnels() {
        let c = cfg(&["10.99.0.2", "10.99.0.3"]);
        let changes = plan(&c, &Snapshot::default(), false).unwrap();
        let [Change::CreateBridge {
            name,
            tunnels,
            external_ids,
            datapath,
            gateway: None,
        }] = changes.as_slice()
        else {
            panic!("{changes:?}");
        };
        assert_eq!(name, "gnv5001");
        assert_eq!(*datapath, Datapath::Netdev);
        assert_eq!(external_ids[keys::VNI], "5001");
        assert_eq!(tunnels.len(), 2);
        assert_eq!(tunnels[0].options()["remote_ip"], "10.99.0.2");
        assert_eq!(tunnels[0].options()["key"], "5001");
        assert!(!tunnels[0].options().contains_key("dst_port"));
        assert_eq!(tunnels[0].bfd_config()["enable"], "true");
    }

    #[test]
    fn bfd_setting_is_reconciled() {
        let on = cfg(&["10.99.0.2", "10.99.0.3"]);
        let mut off = on.clone();
        off.bfd = false;
        let changes = plan(&off, &built(&on), false).unwrap();
        let [Change::SetBfd { interfaces, bfd }] = changes.as_slice() else {
            panic!("{changes:?}");
        };
        assert_eq!(interfaces.len(), 2);
        assert!(bfd.is_empty());
        let changes = plan(&on, &built(&off), false).unwrap();
        let [Change::SetBfd { bfd, .. }] = changes.as_slice() else {
            panic!("{changes:?}");
        };
        assert_eq!(bfd, &bfd_config(true));
        assert_eq!(plan(&off, &built(&off), false).unwrap(), vec![]);
    }

    #[test]
    fn converged_database_needs_nothing() {
        let c = cfg(&["10.99.0.2", "10.99.0.3"]);
        assert_eq!(plan(&c, &built(&c), false).unwrap(), vec![]);
    }

    #[test]
    fn other_peers_add_and_remove_tunnels() {
        let old = cfg(&["10.99.0.2", "10.99.0.3"]);
        let new = cfg(&["10.99.0.3", "10.99.0.4"]);
        let changes = plan(&new, &built(&old), false).unwrap();
        assert_eq!(changes.len(), 2, "{changes:?}");
        let Change::AddTunnels { tunnels, .. } = &changes[0] else {
            panic!()
        };
        assert_eq!(tunnels.len(), 1);
        assert_eq!(tunnels[0].peer.to_string(), "10.99.0.4");
        let Change::RemovePorts { ports, .. } = &changes[1] else {
            panic!()
        };
        let gone = naming::tunnel_port_name(5001, "10.99.0.2".parse().unwrap(), None, 6081);
        assert_eq!(ports, &vec![format!("u-{gone}")]);
    }

    #[test]
    fn recreated_network_updates_identity() {
        let old = cfg(&["10.99.0.2"]);
        let mut new = old.clone();
        new.id = "id2".into();
        let changes = plan(&new, &built(&old), false).unwrap();
        // The tunnels carry the network's id too (setup's guards find them by it).
        let [Change::UpdateBridge { external_ids, .. }, Change::UpdateTunnel {
            external_ids: tunnel_ids,
            ..
        }] = changes.as_slice()
        else {
            panic!("{changes:?}")
        };
        assert_eq!(external_ids[keys::NETWORK_ID], "id2");
        assert_eq!(tunnel_ids[keys::NETWORK_ID], "id2");
    }

    #[test]
    fn bridges_of_older_versions_become_secure() {
        let c = cfg(&["10.99.0.2"]);
        let mut observed = built(&c);
        observed.bridges[0].fail_mode = None;
        let changes = plan(&c, &observed, false).unwrap();
        assert!(
            matches!(changes.as_slice(), [Change::UpdateBridge { .. }]),
            "{changes:?}"
        );
        // A bridge without the port-security key (an older version) is updated too.
        let mut observed = built(&c);
        observed.bridges[0].external_ids.remove(keys::PORT_SECURITY);
        assert_eq!(plan(&c, &observed, false).unwrap().len(), 1);
    }

    #[test]
    fn bfd_takes_only_frames_to_its_own_mac() {
        let bfd = bfd_config(true);
        assert_eq!(bfd["bfd_local_dst_mac"], "00:23:20:00:00:01");
        assert_eq!(bfd["bfd_remote_dst_mac"], "00:23:20:00:00:01");
        assert!(!bfd.contains_key("check_tnl_key"));
        // A tunnel of an older version (BFD on, no MAC check) is reconciled.
        let c = cfg(&["10.99.0.2"]);
        let mut observed = built(&c);
        observed.interfaces[0].bfd.remove("bfd_remote_dst_mac");
        let changes = plan(&c, &observed, false).unwrap();
        assert!(
            matches!(changes.as_slice(), [Change::SetBfd { .. }]),
            "{changes:?}"
        );
    }

    #[test]
    fn unprotected_tunnels_are_protected_again() {
        let c = cfg(&["10.99.0.2"]);
        let mut observed = built(&c);
        observed.ports[0].protected = false;
        assert_eq!(
            plan(&c, &observed, false).unwrap(),
            vec![Change::ProtectPorts {
                ports: vec![observed.ports[0].uuid.clone()]
            }]
        );
    }

    #[test]
    fn foreign_bridge_is_refused() {
        let c = cfg(&[]);
        let mut observed = built(&c);
        observed.bridges[0].external_ids.clear();
        let e = plan(&c, &observed, false).unwrap_err().to_string();
        assert!(
            e.contains("not created by geneve-ovs") && e.contains("gnv5001"),
            "{e}"
        );
    }

    #[test]
    fn bridge_of_another_network_is_refused() {
        let c = cfg(&[]);
        let mut other = c.clone();
        other.name = "net2".into();
        other.vni = 7;
        let e = plan(&c, &built(&other), false).unwrap_err().to_string();
        assert!(e.contains("belongs to geneve-ovs network \"net2\""), "{e}");
    }

    #[test]
    fn vni_collision_names_the_other_network() {
        let c = cfg(&[]);
        let mut other = c.clone();
        other.name = "net2".into();
        other.bridge = "gnvother".into();
        let e = plan(&c, &built(&other), false).unwrap_err().to_string();
        assert!(e.contains("VNI 5001") && e.contains("\"net2\""), "{e}");
    }

    #[test]
    fn old_bridge_of_same_network_is_removed() {
        let old = cfg(&[]);
        let mut new = old.clone();
        new.vni = 6000;
        new.bridge = "gnv6000".into();
        let changes = plan(&new, &built(&old), false).unwrap();
        assert!(matches!(changes[0], Change::CreateBridge { .. }));
        assert_eq!(changes[1], Change::RemoveBridge { uuid: "b1".into() });
    }
}

#[cfg(test)]
mod gateway_tests {
    use super::*;
    use crate::ovs::schema::{common_ids, keys};
    use crate::ovs::snapshot::{InterfaceRow, PortRow};

    fn cfg() -> NetworkConfig {
        NetworkConfig {
            internal: false,
            gateways: vec!["192.168.120.1/24".parse().unwrap()],
            ovn: vec![],
            ..crate::options::sample_config()
        }
    }

    fn observed(c: &NetworkConfig, roles: &[(&str, &str)]) -> Snapshot {
        let ports: Vec<PortRow> = roles
            .iter()
            .map(|(name, role)| PortRow {
                uuid: format!("u-{name}"),
                name: name.to_string(),
                external_ids: common_ids(c, role),
                protected: true,
                ..PortRow::default()
            })
            .collect();
        Snapshot {
            bridges: vec![BridgeRow {
                uuid: "b1".into(),
                name: c.bridge.clone(),
                external_ids: bridge_external_ids(c),
                datapath_type: "netdev".into(),
                fail_mode: Some(FAIL_MODE.into()),
                ports: ports.iter().map(|p| p.uuid.clone()).collect(),
            }],
            ports,
            interfaces: Vec::new(),
            ovs_other_config: BTreeMap::new(),
        }
    }

    #[test]
    fn gateway_comes_with_the_first_container() {
        let c = cfg();
        assert_eq!(plan(&c, &observed(&c, &[]), false).unwrap(), vec![]);
        let changes = plan(&c, &observed(&c, &[]), true).unwrap();
        let [Change::AddGateway { gateway, .. }] = changes.as_slice() else {
            panic!("{changes:?}")
        };
        assert_eq!(gateway.name, "gw5001");
        assert_eq!(gateway.mac, naming::gateway_mac(5001));
        let changes = plan(&c, &Snapshot::default(), true).unwrap();
        assert!(matches!(
            &changes[0],
            Change::CreateBridge {
                gateway: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn gateway_stays_when_the_last_container_leaves() {
        let c = cfg();
        let busy = observed(
            &c,
            &[
                ("gw5001", keys::ROLE_GATEWAY),
                ("gvx", keys::ROLE_CONTAINER),
            ],
        );
        assert_eq!(plan(&c, &busy, false).unwrap(), vec![]);
        let idle = observed(&c, &[("gw5001", keys::ROLE_GATEWAY)]);
        assert_eq!(plan(&c, &idle, false).unwrap(), vec![]);
        // A gateway port under another name (another VNI's) is not this network's: it goes.
        let other = observed(&c, &[("gw5002", keys::ROLE_GATEWAY)]);
        assert_eq!(
            plan(&c, &other, false).unwrap(),
            vec![Change::RemovePorts {
                bridge: "b1".into(),
                ports: vec!["u-gw5002".into()]
            }]
        );
    }

    #[test]
    fn gateway_of_an_older_version_gets_its_pinned_ofport() {
        let c = cfg();
        let mut busy = observed(
            &c,
            &[
                ("gw5001", keys::ROLE_GATEWAY),
                ("gvx", keys::ROLE_CONTAINER),
            ],
        );
        busy.interfaces.push(InterfaceRow {
            uuid: "i-gw".into(),
            name: "gw5001".into(),
            bfd: BTreeMap::new(),
            ofport_request: None,
            ..InterfaceRow::default()
        });
        assert_eq!(
            plan(&c, &busy, false).unwrap(),
            vec![Change::PinGateway {
                interface: "i-gw".into()
            }]
        );
        busy.interfaces[0].ofport_request = Some(i64::from(crate::flows::GATEWAY_OFPORT));
        assert_eq!(plan(&c, &busy, false).unwrap(), vec![]);
    }

    #[test]
    fn internal_networks_never_have_a_gateway() {
        let mut c = cfg();
        c.internal = true;
        c.gateways.clear();
        assert_eq!(plan(&c, &observed(&c, &[]), true).unwrap(), vec![]);
    }
}
