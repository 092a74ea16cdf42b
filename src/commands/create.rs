//! `geneve-ovs create`: validate a new network, build its bridge and tunnels, and return the
//! network with every resolved option written back.
//!
//! The overlay exists from this moment, before any container runs, so that peers can reach
//! this host at once. Run again for the same network name, it reconciles (adds missing
//! tunnels, removes ones no longer listed).

use anyhow::Result;

use super::{connect_ovs, ovs_rundir, parse_input, refresh_underlay, LiveHost};
use crate::control;
use crate::ofctl::Ofctl;
use crate::options::{self, Datapath, NetworkConfig, Stage};
use crate::ovs::plan::FAIL_MODE;
use crate::ovs::snapshot::Scope;
use crate::ovs::Ovs;
use crate::port_security;
use crate::types::Network;

pub fn run(input: &str) -> Result<String> {
    let mut network: Network = parse_input(input, "network")?;
    // Syntax first: a typo must be reported even when OVS is not running.
    options::parse(&network.options())?;

    let mut ovs = connect_ovs()?;
    let mut host = LiveHost::new(&mut ovs);
    options::complete_network(&mut network, &mut host)?;
    let cfg = options::resolve(&network, Stage::Create, &mut host)?;
    // A bridge of a version without port security loses its OpenFlow table when it becomes
    // fail_mode=secure: then every port's flows go back in, not only the base ones.
    let upgraded = ovs
        .snapshot(Scope::Config)?
        .bridge(&cfg.bridge)
        .is_some_and(|b| b.fail_mode.as_deref() != Some(FAIL_MODE));
    let plane = control::for_network(&network);
    plane.create_switch(&mut ovs, &cfg)?;
    // The bridge drops everything until its flows are in; the first `setup` installs them
    // too (and fails loudly if it cannot), so here a failure is a warning.
    let flows = if plane.programs_flows() {
        install_flows(&mut ovs, &cfg, upgraded)
    } else {
        Ok(())
    };
    if let Err(err) = flows {
        log::warn!(
            "the OpenFlow table of bridge {} is not installed yet: {err:#}",
            cfg.bridge
        );
    }
    if cfg.datapath == Datapath::System {
        // The underlay filter (GENEVE only from the peers) is defence in depth: OVS itself
        // only accepts tunnel packets from a configured remote_ip. A host without nftables
        // still gets a working network. From now on the filter covers this network's peers.
        // For an encrypted network it is more: the guard that no clear GENEVE goes to or
        // comes from its peers, which must not depend on the IKE daemon running.
        match refresh_underlay(&mut ovs) {
            Err(err) if cfg.encryption.is_encrypted() => {
                return Err(err.context(format!(
                    "network {}: the firewall guard of its encrypted tunnels (nftables table \
                     inet geneve_ovs) could not be installed; the tunnels are in OVS but carry \
                     only what IPsec protects: install nftables and run the create again",
                    cfg.name
                )))
            }
            Err(err) => log::warn!("GENEVE underlay filter not installed: {err:#}"),
            Ok(()) => {}
        }
    }

    network.options = Some(cfg.to_options());
    network.network_interface = Some(cfg.bridge.clone());
    // Netavark runs no DNS server for plugin networks: do not promise one.
    network.dns_enabled = false;
    Ok(serde_json::to_string(&network)?)
}

/// The bridge's base flows (tunnels and gateway switched, the rest dropped), or its whole
/// table from the database after an upgrade to a secure bridge.
fn install_flows(ovs: &mut Ovs, cfg: &NetworkConfig, upgraded: bool) -> Result<()> {
    let changes = if upgraded {
        port_security::repair_changes(&ovs.snapshot(Scope::Runtime)?, &cfg.bridge)?
    } else {
        port_security::create_changes(cfg)
    };
    Ofctl::new(&ovs_rundir()).apply(&cfg.bridge, &changes)
}
