//! One module per subcommand. Each reads its input, runs parse → validate → plan → apply
//! through the other modules, and returns what goes on stdout; [`run`] dispatches and
//! [`crate::types::PluginError`] framing is done by `main`.

mod create;
mod info;
mod setup;
mod teardown;

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use crate::firewall;
use crate::netlink::Netlink;
use crate::options::{HostFacts, UnderlayRoute};
use crate::ovs::Ovs;
use crate::ovsdb::Client;

/// The usage text, printed for `--help` and for unknown subcommands.
pub const USAGE: &str = "usage: geneve-ovs <command>

netavark plugin commands (called by netavark, JSON on stdin and stdout):
  info                  print the plugin and API version
  create                validate a network and build its OVS bridge and tunnels
  setup <netns path>    attach a container to the network
  teardown <netns path> detach a container from the network

Environment:
  OVS_RUNDIR            directory of ovsdb-server's db.sock (default /var/run/openvswitch)
  RUST_LOG              log level on stderr (default warn)";

/// Runs the subcommand named by `args` (without the program name) and returns what to print
/// on stdout, if anything.
pub fn run(args: &[String]) -> Result<Option<String>> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["info"] => info::run().map(Some),
        ["create"] => create::run(&read_stdin()?).map(Some),
        ["setup", netns] => setup::run(Path::new(netns), &read_stdin()?).map(Some),
        ["teardown", netns] => teardown::run(Path::new(netns), &read_stdin()?).map(|()| None),
        ["setup" | "teardown"] => bail!("{} needs the container's netns path\n{USAGE}", args[0]),
        [] => bail!("no command given\n{USAGE}"),
        [other, ..] => bail!("unknown command or arguments {other:?}\n{USAGE}"),
    }
}

fn read_stdin() -> Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read stdin")?;
    Ok(input)
}

/// Parses the JSON document netavark sent on stdin.
fn parse_input<T: DeserializeOwned>(input: &str, what: &str) -> Result<T> {
    if input.trim().is_empty() {
        bail!("expected {what} as JSON on stdin, got nothing");
    }
    serde_json::from_str(input).with_context(|| format!("invalid {what} JSON on stdin"))
}

/// Connects to this host's ovsdb-server (`$OVS_RUNDIR/db.sock`).
fn connect_ovs() -> Result<Ovs> {
    Ovs::connect(&Client::default_socket())
}

/// The live host behind [`HostFacts`]: netlink for addresses and routes, OVSDB for datapaths.
/// Each is opened only when an option actually needs it.
struct LiveHost<'a> {
    netlink: Option<Netlink>,
    ovs: &'a mut Ovs,
}

impl<'a> LiveHost<'a> {
    fn new(ovs: &'a mut Ovs) -> Self {
        LiveHost { netlink: None, ovs }
    }

    fn netlink(&mut self) -> Result<&Netlink> {
        if self.netlink.is_none() {
            self.netlink = Some(Netlink::open()?);
        }
        self.netlink.as_ref().context("netlink socket unavailable")
    }
}

impl HostFacts for LiveHost<'_> {
    fn local_addresses(&mut self) -> Result<Vec<IpAddr>> {
        self.netlink()?.local_addresses()
    }

    fn underlay_route(&mut self, peer: IpAddr) -> Result<Option<UnderlayRoute>> {
        Ok(self.netlink()?.route_to(peer)?.map(|r| UnderlayRoute {
            mtu: r.mtu,
            source: r.source,
        }))
    }

    fn route_destinations(&mut self) -> Result<Vec<IpNet>> {
        self.netlink()?.route_destinations()
    }

    fn datapath_types(&mut self) -> Result<Vec<String>> {
        self.ovs.datapath_types()
    }
}

/// Rebuilds the plugin's nftables table from what OVS now holds.
fn sync_firewall(ovs: &mut Ovs) -> Result<()> {
    let observed = ovs.read()?;
    firewall::apply(&firewall::Rules::from_observed(&observed))
}
