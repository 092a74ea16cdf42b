//! geneve-ovs: a netavark plugin that gives podman a multi-host layer-2 overlay built on
//! Open vSwitch and GENEVE tunnels.
//!
//! Data flows one way through the modules:
//!
//! * [`types`]: the netavark plugin protocol (what podman sends, what we answer);
//! * [`options`]: parsing and validation of the network options, the one place that knows them;
//! * [`netconf`]: podman's saved network files, the record of which networks still exist;
//! * [`naming`]: deterministic names and identifiers (VNI, bridge, tunnel and veth names);
//! * [`ovsdb`]: the OVSDB (RFC 7047) wire protocol, nothing OVS-specific;
//! * [`ovs`]: Open vSwitch operations (bridges, tunnels, container ports) as transactions;
//! * [`netlink`], [`netns`], [`ethtool`], [`container_link`]: link and namespace plumbing;
//! * [`lock`]: the host lock that keeps `gc` away from containers being attached;
//! * [`operate`]: the operator views `status` and `gc` (database vs. host vs. podman);
//! * [`commands`]: one module per subcommand, wiring the above together.

pub mod commands;
pub mod container_link;
pub mod ethtool;
pub mod lock;
pub mod naming;
pub mod netconf;
pub mod netlink;
pub mod netns;
pub mod operate;
pub mod options;
pub mod ovs;
pub mod ovsdb;
pub mod types;
