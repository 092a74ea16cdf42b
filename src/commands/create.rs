//! `geneve-ovs create`: validate a new network, build its bridge and tunnels, and return the
//! network with every resolved option written back.
//!
//! The overlay exists from this moment, before any container runs, so that peers can reach
//! this host at once. Run again for the same network name, it reconciles (adds missing
//! tunnels, removes ones no longer listed).

use anyhow::Result;

use super::{connect_ovs, parse_input, LiveHost};
use crate::options::{self, Stage};
use crate::types::Network;

pub fn run(input: &str) -> Result<String> {
    let mut network: Network = parse_input(input, "network")?;
    // Syntax first: a typo must be reported even when OVS is not running.
    options::parse(&network.options())?;

    let mut ovs = connect_ovs()?;
    let cfg = options::resolve(&network, Stage::Create, &mut LiveHost::new(&mut ovs))?;
    ovs.ensure_network(&cfg)?;

    network.options = Some(cfg.to_options());
    network.network_interface = Some(cfg.bridge.clone());
    // Netavark runs no DNS server for plugin networks: do not promise one.
    network.dns_enabled = false;
    Ok(serde_json::to_string(&network)?)
}
