//! One module per subcommand. Each reads its input, runs parse → validate → plan → apply
//! through the other modules, and returns what goes on stdout; [`run_plugin`] dispatches the
//! netavark protocol's commands, [`run_operator`] the operator's (parsed by [`crate::cli`]), and
//! the error framing is done by `main`.

mod attachment;
mod create;
mod gc;
mod info;
mod peers;
mod setup;
mod setup_plan;
mod status;
mod teardown;

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use crate::cli::Command;
use crate::firewall;
use crate::lock;
use crate::manual;
use crate::netlink::Netlink;
use crate::options::{HostFacts, UnderlayRoute};
use crate::ovs::snapshot::Scope;
use crate::ovs::Ovs;
use crate::ovsdb::Client;

/// What a command prints on stdout, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub stdout: Option<String>,
    pub code: u8,
}

impl Reply {
    /// Success, printing `text`.
    fn text(text: String) -> Reply {
        Reply {
            stdout: Some(text),
            code: 0,
        }
    }

    /// Success, printing nothing.
    fn silent() -> Reply {
        Reply {
            stdout: None,
            code: 0,
        }
    }
}

/// Runs the netavark plugin command named by `args` (without the program name: `info`,
/// `create`, `setup NETNS`, `teardown NETNS`, exactly as netavark calls them) and returns what
/// to print on stdout, if anything.
pub fn run_plugin(args: &[String]) -> Result<Reply> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["info"] => info::run().map(Reply::text),
        ["create"] => create::run(&read_stdin()?).map(Reply::text),
        ["setup", netns] => setup::run(Path::new(netns), &read_stdin()?).map(Reply::text),
        ["teardown", netns] => {
            teardown::run(Path::new(netns), &read_stdin()?).map(|()| Reply::silent())
        }
        ["setup" | "teardown"] => bail!(
            "{} needs the container's netns path (usage: geneve-ovs {} NETNS)",
            args[0],
            args[0]
        ),
        [] => bail!("no command given (see geneve-ovs --help)"),
        [other, ..] => bail!("unknown command or arguments {other:?} (see geneve-ovs --help)"),
    }
}

/// Runs an operator command, as [`crate::cli`] parsed it.
pub fn run_operator(command: &Command) -> Result<Reply> {
    match command {
        Command::Status(args) => status::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Peers(args) => peers::run(args),
        Command::Completions(args) => {
            let mut out = Vec::new();
            manual::completions(args.shell, &mut out);
            let text = String::from_utf8(out).context("the completion script is not UTF-8")?;
            Ok(Reply::text(text.trim_end().to_string()))
        }
        Command::Manpages(args) => {
            let written = manual::write_man_pages(&args.dir)?;
            let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            Ok(Reply::text(names.join("\n")))
        }
        // netavark's commands normally go to `run_plugin` before clap; these arms serve the
        // same commands when they come through clap anyway.
        Command::Info => run_plugin(&["info".to_string()]),
        Command::Create => run_plugin(&["create".to_string()]),
        Command::Setup(arg) => setup::run(&arg.netns, &read_stdin()?).map(Reply::text),
        Command::Teardown(arg) => {
            teardown::run(&arg.netns, &read_stdin()?).map(|()| Reply::silent())
        }
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

/// The directory of this host's OVSDB socket, where ovs-vswitchd's pidfile is too.
fn ovs_rundir() -> PathBuf {
    let socket = Client::default_socket();
    socket
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

/// Takes the host lock ([`crate::lock`]) of this host's Open vSwitch.
fn lock_host(mode: lock::Mode) -> Result<lock::HostLock> {
    lock::acquire_for(
        lock::Kind::Host,
        &Client::default_socket(),
        mode,
        lock::DEFAULT_WAIT,
    )
}

/// Takes the firewall lock ([`crate::lock`]) for a rewrite of the underlay filter.
fn lock_firewall() -> Result<lock::HostLock> {
    lock::acquire_for(
        lock::Kind::Firewall,
        &Client::default_socket(),
        lock::Mode::Exclusive,
        lock::DEFAULT_WAIT,
    )
}

/// Takes the host lock shared for `setup` and `teardown`. Only a `gc` that keeps it is an
/// error; a lock file that cannot be created (a read-only or confined directory) must not stop
/// containers from starting or stopping, so the run goes on without it, with a warning.
fn lock_host_shared() -> Result<Option<lock::HostLock>> {
    match lock_host(lock::Mode::Shared) {
        Ok(lock) => Ok(Some(lock)),
        Err(err) if err.downcast_ref::<lock::Busy>().is_some() => Err(err),
        Err(err) => {
            log::warn!("going on without the host lock (gc may misjudge this run): {err:#}");
            Ok(None)
        }
    }
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

    fn read_psk(&mut self, path: &Path) -> Result<crate::ipsec::Psk> {
        crate::ipsec::read_psk(path)
    }

    fn check_pki_files(&mut self, pki: &crate::ipsec::HostPki) -> Result<()> {
        crate::ipsec::check_pki_files(pki)
    }

    fn check_ipsec_software(&mut self) -> Result<()> {
        crate::ipsec::check_software(Path::new("/"), &ovs_rundir())
    }
}

/// Replaces the underlay filter (GENEVE only from the peers of kernel-datapath networks) with
/// what OVS now holds, under the firewall lock so that two runs cannot each apply a set that
/// lacks the other's peers.
fn refresh_underlay(ovs: &mut Ovs) -> Result<()> {
    let _lock = lock_firewall()?;
    let underlay = firewall::Underlay::from_observed(&ovs.snapshot(Scope::Config)?);
    firewall::replace_underlay(&underlay)
}
