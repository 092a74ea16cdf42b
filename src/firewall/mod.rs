//! The plugin's nftables table, `inet geneve_ovs`: outbound NAT and isolation for non-internal
//! networks, the published ports (`-p`) of their containers, and the underlay filter that
//! accepts GENEVE only from the configured peers.
//!
//! The table is a fixed skeleton whose rules only look things up in named sets and maps
//! ([`render`]); what changes are their elements ([`elements`]):
//!
//! * network level: the gateway port of every non-internal network (NAT, hairpin, isolation),
//!   added by every `setup` of such a network and never removed by `teardown`, so the last
//!   container leaving and the next arriving cannot race; `gc` removes those of networks gone;
//! * container level: one element per published port in the DNAT maps, keyed by
//!   (protocol . port), or (host address . protocol . port) for `-p HOST_IP:...`. `setup` and
//!   `teardown` of a container first delete every element that targets one of its addresses,
//!   so the leftovers of a dead container (SIGKILL, reboot) never serve a new container that
//!   reuses its address, then `setup` adds its own; a key held by another address is refused;
//! * open OVN networks' DNS forwarding: (gateway port → the host's name server) per family,
//!   set by every `setup` of such a network from `/etc/resolv.conf` (replaced when it changed)
//!   and by `gc`'s reconcile; queries on port 53 that OVN left unanswered go there;
//! * the underlay filter: (peer . UDP port) of the tunnels of kernel-datapath networks,
//!   replaced as a whole from OVS by `create`, `gc` and `setup` on that datapath, under the
//!   firewall lock ([`crate::lock::Kind::Firewall`]); for encrypted networks' tunnels also in
//!   the IPsec guard's sets: GENEVE to or from those peers that did not go through IPsec is
//!   dropped.
//!
//! Each change is one nft transaction, atomic in the kernel, that starts with the skeleton. A
//! `setup` that would change nothing (the table holds this version's skeleton, by the stamp on
//! its last rule, and the network's gateway; the container publishes nothing and nothing
//! targets its addresses) sends no transaction at all.
//! Concurrent runs change disjoint elements, so none can lose another's update; `gc` (which
//! holds the host lock exclusively) does the full reconcile: empty every set and map and fill
//! them again from the OVS rows of the containers it judged alive.

pub mod elements;
pub mod listing;
pub mod render;

use std::net::IpAddr;

use anyhow::{anyhow, Context, Result};

use crate::host_resolvers::Upstreams;
use serde_json::Value;

pub use elements::{published_ports, Desired, PortTaken, Published, Underlay};

/// The plugin's own nftables table (family `inet`).
pub const TABLE: &str = "geneve_ovs";

/// How often a container's change is planned again when the table changed between the
/// listing and the transaction (an element it deletes was deleted by another run).
const ATTEMPTS: usize = 5;

fn nft_error(err: nftables::helper::NftablesError) -> anyhow::Error {
    anyhow!(
        "nftables table inet {TABLE} (is the nftables package installed, with `nft` in PATH?): \
         {err}"
    )
}

/// Sends `cmds` to nft as one transaction.
pub fn apply(cmds: Vec<Value>) -> Result<()> {
    // The crate's schema is a second opinion on what we render, before the kernel's (on
    // everything it knows: see render::outside_crate_schema).
    let checkable: Vec<Value> = cmds
        .iter()
        .filter(|c| !render::outside_crate_schema(c))
        .cloned()
        .collect();
    let _: nftables::schema::Nftables = serde_json::from_value(render::document(checkable))
        .context("the rendered nftables commands do not parse")?;
    let document = render::document(cmds);
    nftables::helper::apply_ruleset_raw(
        &document.to_string(),
        None::<&str>,
        std::iter::empty::<&str>(),
    )
    .map(|_| ())
    .map_err(nft_error)
}

/// What the table holds now; an empty listing when it does not exist.
pub fn list() -> Result<elements::Listing> {
    match nftables::helper::get_current_ruleset_raw(None::<&str>, ["list", "table", "inet", TABLE])
    {
        Ok(text) => {
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("nft -j list table inet {TABLE} printed no JSON"))?;
            Ok(listing::parse(&value))
        }
        Err(nftables::helper::NftablesError::NftFailed { stderr, .. })
            if stderr.contains("No such file or directory") =>
        {
            Ok(elements::Listing::default())
        }
        Err(err) => Err(nft_error(err)),
    }
}

/// A listing of the table taken ahead, on a thread of its own, while `setup` builds the
/// container's port: [`attach_container`]'s first plan starts from it, which takes one `nft` run
/// (a process start, about a third of what the firewall costs a `setup`) off the container's
/// start. A listing gone stale meanwhile costs nothing in correctness: a transaction that
/// deletes an element another run deleted fails whole and is planned again from a fresh listing,
/// as for any two runs that overlap; and the elements a plan deletes are those that target the
/// container's own addresses, which no other live container adds.
pub struct Prefetch(std::thread::JoinHandle<Result<elements::Listing>>);

impl Prefetch {
    /// Starts listing the table (from the calling thread's network namespace: the host's).
    /// `None` when no thread can be had: the attach then lists by itself.
    pub fn start() -> Option<Prefetch> {
        std::thread::Builder::new()
            .name("nft-list".to_string())
            .spawn(list)
            .map(Prefetch)
            .map_err(|err| log::debug!("no thread to list the nftables table ahead: {err}"))
            .ok()
    }

    /// The listing, when it was taken; a failed one is left to the attach to repeat and report.
    fn take(self) -> Option<elements::Listing> {
        match self.0.join() {
            Ok(Ok(listing)) => Some(listing),
            Ok(Err(err)) => {
                log::debug!("listing the nftables table ahead failed: {err:#}");
                None
            }
            Err(_) => None,
        }
    }
}

/// Attaches a container of a non-internal network: the network's gateway port, then, in the
/// same transaction, the container's published ports in place of whatever targeted its
/// addresses; the gateway port's DNS forwarding to `name_servers` when given (open OVN
/// networks); and the underlay filter when given. Fails with [`PortTaken`] when another
/// container holds one of the ports. The first plan starts from `listed` when given.
pub fn attach_container(
    gateway: &str,
    own: &[IpAddr],
    wanted: &[Published],
    name_servers: Option<&Upstreams>,
    underlay: Option<&Underlay>,
    listed: Option<Prefetch>,
) -> Result<()> {
    let skeleton_id = render::skeleton_id();
    retry(listed.and_then(Prefetch::take), |listing| {
        attach_commands(
            listing,
            &skeleton_id,
            gateway,
            own,
            wanted,
            name_servers,
            underlay,
        )
    })
}

/// The transaction that attaches a container, planned from `listing`: nothing at all when the
/// table already holds this version's skeleton, the network's gateway and what the container
/// needs (the common `setup`: a network's next container, without `-p`), so that no `nft`
/// runs; otherwise the whole skeleton and the changes.
fn attach_commands(
    listing: &elements::Listing,
    skeleton_id: &str,
    gateway: &str,
    own: &[IpAddr],
    wanted: &[Published],
    name_servers: Option<&Upstreams>,
    underlay: Option<&Underlay>,
) -> Result<Vec<Value>> {
    let change = elements::attach(listing, own, wanted)?;
    let forward = name_servers.map(|ns| elements::forward_names(listing, gateway, ns));
    let unchanged = change.is_empty()
        && forward
            .as_ref()
            .is_none_or(elements::NameForwardChange::is_empty)
        && underlay.is_none();
    if unchanged && listing.serves_gateway(skeleton_id, gateway) {
        return Ok(Vec::new());
    }
    let mut cmds = render::skeleton();
    cmds.extend(render::add_gateways(&[gateway.to_string()]));
    if let Some(forward) = &forward {
        cmds.extend(render::name_forward_change(forward));
    }
    cmds.extend(render::container_change(&change));
    if let Some(underlay) = underlay {
        cmds.extend(render::replace_underlay(underlay));
    }
    Ok(cmds)
}

/// Detaches a container: every element that targets one of its addresses goes. Nothing is
/// sent when the table holds none (and nothing is created when there is no table).
pub fn detach_container(own: &[IpAddr]) -> Result<()> {
    retry(None, |listing| {
        let change = elements::detach(listing, own);
        if change.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmds = render::skeleton();
        cmds.extend(render::container_change(&change));
        Ok(cmds)
    })
}

/// Lists, plans with `plan` and applies, again while the transaction fails (the table changed
/// in between); a plan error ends it at once. An empty plan sends nothing. The first attempt
/// plans from `first` when given, instead of listing.
fn retry(
    first: Option<elements::Listing>,
    plan: impl Fn(&elements::Listing) -> Result<Vec<Value>>,
) -> Result<()> {
    let mut last = None;
    let mut first = first;
    for _ in 0..ATTEMPTS {
        let listing = match first.take() {
            Some(listing) => listing,
            None => list()?,
        };
        let cmds = plan(&listing)?;
        if cmds.is_empty() {
            return Ok(());
        }
        match apply(cmds) {
            Ok(()) => return Ok(()),
            Err(err) => {
                log::info!("nft transaction failed, planning again: {err:#}");
                last = Some(err);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("nft transaction failed")))
}

/// Replaces the underlay filter's contents (the caller holds the firewall lock).
pub fn replace_underlay(underlay: &Underlay) -> Result<()> {
    let mut cmds = render::skeleton();
    cmds.extend(render::replace_underlay(underlay));
    apply(cmds)
}

/// The full reconcile: the table holds exactly `desired`, or goes when nothing needs it (the
/// caller holds the host lock exclusively and the firewall lock).
pub fn reconcile(desired: &Desired) -> Result<()> {
    if !desired.needed {
        return match list() {
            Ok(listing) if listing.exists => apply(render::remove_table()),
            Ok(_) => Ok(()),
            // No nft on a host that needs no table: nothing can be there to remove.
            Err(err) => {
                log::debug!("no nftables table to remove: {err:#}");
                Ok(())
            }
        };
    }
    let mut cmds = render::skeleton();
    cmds.extend(render::refill(desired));
    apply(cmds)
}

#[cfg(test)]
mod tests;
