//! geneve-ovs: a netavark plugin that gives podman a multi-host layer-2 overlay built on
//! Open vSwitch and GENEVE tunnels.
//!
//! Data flows one way through the modules:
//!
//! * [`types`]: the netavark plugin protocol (what podman sends, what we answer);
//! * [`options`]: parsing and validation of the network options, the one place that knows them;
//! * [`addressing`]: default subnets and this host's share of them (pure);
//! * [`netconf`]: podman's saved network files, the record of which networks still exist;
//! * [`naming`]: deterministic names and identifiers (VNI, bridge, tunnel and veth names);
//! * [`ovsdb`]: the OVSDB (RFC 7047) wire protocol, nothing OVS-specific;
//! * [`ovs`]: Open vSwitch operations (bridges, tunnels, container ports) as transactions, and
//!   [`ovs::schema`], what the plugin keeps in its rows' `external_ids`;
//! * [`control`]: the control-plane seam (switch, container ports, link health), the static
//!   mesh of tunnels first;
//! * [`netlink`], [`netns`], [`ethtool`], [`container_link`], [`gateway`]: link and namespace
//!   plumbing;
//! * [`dad`]: duplicate-address detection on the overlay, before a container's addresses are set;
//! * [`firewall`]: the plugin's nftables table (NAT, port mappings, underlay filter);
//! * [`ipsec`]: encryption between hosts (OVS IPsec): the key file, the software, the SAs;
//! * [`flows`], [`ofctl`]: port security, the OpenFlow table of each bridge (pure), and
//!   installing it with `ovs-ofctl`; [`port_security`]: which flows each bridge and port gets;
//! * [`membership`]: which hosts a running network reaches, and the rule that keeps their
//!   address ranges disjoint (`geneve-ovs peers`);
//! * [`lock`]: the host lock that keeps `gc` away from containers being attached;
//! * [`phases`]: where a command's time goes, in one debug line;
//! * [`operate`]: the operator views `status` and `gc` (database vs. host vs. podman);
//! * [`cli`]: the command line (clap), and [`manual`]: the completions and man pages made from it;
//! * [`commands`]: one module per subcommand, wiring the above together.

pub mod addressing;
pub mod cli;
pub mod commands;
pub mod container_link;
pub mod control;
pub mod dad;
pub mod ethtool;
pub mod firewall;
pub mod flows;
pub mod gateway;
pub mod host_resolvers;
pub mod ipsec;
pub mod lock;
pub mod manual;
pub mod membership;
pub mod naming;
pub mod netconf;
pub mod netlink;
pub mod netns;
pub mod ofctl;
pub mod openflow;
pub mod operate;
pub mod options;
pub mod ovn;
pub mod ovs;
pub mod ovsdb;
pub mod phases;
pub mod port_security;
pub mod types;
