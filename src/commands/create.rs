//! `geneve-ovs create`: validate a new network, build its bridge and tunnels, and return the
//! network with every resolved option written back.
//!
//! The overlay exists from this moment, before any container runs, so that peers can reach
//! this host at once. Run again for the same network name, it reconciles (adds missing
//! tunnels, removes ones no longer listed).

use anyhow::Result;

use super::{connect_ovs, parse_input, refresh_underlay, LiveHost};
use crate::options::{self, Datapath, Stage};
use crate::types::Network;

pub fn run(input: &str) -> Result<String> {
    let mut network: Network = parse_input(input, "network")?;
    // Syntax first: a typo must be reported even when OVS is not running.
    options::parse(&network.options())?;

    let mut ovs = connect_ovs()?;
    let mut host = LiveHost::new(&mut ovs);
    options::complete_network(&mut network, &mut host)?;
    let cfg = options::resolve(&network, Stage::Create, &mut host)?;
    ovs.ensure_network(&cfg)?;
    if cfg.datapath == Datapath::System {
        // The underlay filter (GENEVE only from the peers) is defence in depth: OVS itself
        // only accepts tunnel packets from a configured remote_ip. A host without nftables
        // still gets a working network. From now on the filter covers this network's peers.
        if let Err(err) = refresh_underlay(&mut ovs) {
            log::warn!("GENEVE underlay filter not installed: {err:#}");
        }
    }

    network.options = Some(cfg.to_options());
    network.network_interface = Some(cfg.bridge.clone());
    // Netavark runs no DNS server for plugin networks: do not promise one.
    network.dns_enabled = false;
    Ok(serde_json::to_string(&network)?)
}
