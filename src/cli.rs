//! The command line, as one clap definition: the operator commands' flags, their help, and the
//! shell completions and man pages generated from it ([`crate::manual`]).
//!
//! The netavark plugin commands (`info`, `create`, `setup`, `teardown`) are listed here for the
//! help and the manual only: netavark calls them with fixed arguments and reads one JSON
//! document on stdout, and `main` hands them to [`crate::commands::run_plugin`] before clap sees
//! them, so that their protocol (JSON errors included) stays exactly what netavark expects.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit code: success (for `status`: every tunnel up, every container port has its flows).
pub const EXIT_OK: u8 = 0;
/// Exit code: the command failed (the reason is on stderr, or on stdout as JSON with `--json`).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of `status`: a tunnel is down, a container port lacks its flows, or ovs-vswitchd
/// is not running.
pub const EXIT_DEGRADED: u8 = 2;
/// Exit code: the command line itself is wrong (unknown flag, missing argument). Not clap's
/// usual 2, which `status` already gives a meaning (sysexits' EX_USAGE instead).
pub const EXIT_USAGE: u8 = 64;

/// The subcommands netavark calls; [`crate::commands::run_plugin`] handles them.
pub const PLUGIN_COMMANDS: &[&str] = &["info", "create", "setup", "teardown"];

/// The exit codes, as `--help` and geneve-ovs(1) list them.
pub const EXIT_CODES: &str = "\
Exit status:
  0   success
  1   the command failed; the reason is printed on stderr (as {\"error\": ...} on stdout
      with --json, and always so for the plugin commands)
  2   status only: a tunnel is down, a container port lacks its flows, or ovs-vswitchd is
      not running
  64  the command line is wrong (unknown flag, missing argument)";

/// The environment variables, as `--help` and geneve-ovs(1) list them.
pub const ENVIRONMENT: &str = "\
Environment:
  OVS_RUNDIR                      directory of ovsdb-server's db.sock (default
                                  /var/run/openvswitch)
  GENEVE_OVS_RUNDIR               the plugin's root-only directory for its lock files
                                  (default /run/geneve-ovs)
  GENEVE_OVS_NETWORK_CONFIG_DIR   podman's network directory (default
                                  /etc/containers/networks)
  RUST_LOG                        log level on stderr (default warn)";

/// `geneve-ovs`: the netavark plugin and its operator commands.
#[derive(Debug, Parser)]
#[command(
    name = "geneve-ovs",
    version,
    about = "Multi-host layer-2 overlay networks for podman on Open vSwitch and GENEVE",
    long_about = "geneve-ovs is a netavark plugin: podman networks created with \
                  --driver geneve-ovs get an Open vSwitch bridge per network, joined to the \
                  same network on the other hosts by GENEVE tunnels. netavark calls the plugin \
                  commands (info, create, setup, teardown); the other commands are for the \
                  operator. The network options are described in geneve-ovs-options(5).",
    after_long_help = format!("{EXIT_CODES}\n\n{ENVIRONMENT}"),
    after_help = "See 'geneve-ovs help <command>' or 'geneve-ovs <command> --help'; exit codes \
                  and environment in 'geneve-ovs --help'.",
    propagate_version = true,
    disable_help_subcommand = false
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show networks, tunnel health (BFD) and containers of this host
    #[command(
        long_about = "Shows every geneve-ovs network of this host (or only NETWORK, by network \
                      or bridge name): its bridge, VNI, MTU and datapath, every peer with the \
                      tunnel's state (BFD, OVS errors) and counters, and every attached \
                      container with whether its port-security flows are in the bridge's \
                      OpenFlow table.",
        after_long_help = "Exit status: 0 when all is up, 2 when ovs-vswitchd is not running, \
                           a tunnel is down or a container port lacks its flows, 1 on errors."
    )]
    Status(StatusArgs),
    /// Remove stale ports, leaked veths and bridges of removed networks
    #[command(
        long_about = "Removes what geneve-ovs created and can no longer serve: OVS ports of \
                      containers whose network namespace or veth is gone, host veths (gv...) \
                      that no OVS port uses and no running container holds, gateway ports of \
                      networks without containers, and the bridges and tunnels of networks \
                      that are no longer in podman's network directory. Then it rebuilds the \
                      plugin's nftables table (inet geneve_ovs) from what OVS holds and restores \
                      every remaining bridge's OpenFlow table (port security). Run at boot, \
                      before containers start (geneve-ovs-gc.service), and after every \
                      ovs-vswitchd start with --flows-only (geneve-ovs-flows.service). Never \
                      touches an OVS row without external_ids:geneve-ovs.owner=geneve-ovs, nor \
                      a link not named gv + 13 hex digits.",
        after_long_help = "Exit status: 0 on success, 1 if anything could not be removed or \
                           restored."
    )]
    Gc(GcArgs),
    /// List, add or remove the other hosts of a running network
    #[command(
        long_about = "Changes which hosts a network's tunnels reach, on this host, while its \
                      containers run: the tunnels in Open vSwitch, the underlay filter, and the \
                      peers option of podman's saved network (rewritten atomically, every other \
                      field kept), so that later container starts and 'podman network inspect' \
                      agree. Run it on every host of the overlay, and create the network on the \
                      new host with the same options (see 'Adding a host' in the README). An add \
                      whose address range would overlap another host's is refused, saying why: \
                      each host's share of the subnet is fixed by the network's hosts option \
                      (geneve-ovs-options(5)).",
        after_long_help = "Exit status: 0 on success (also when nothing needed to change), 1 \
                           on errors; nothing is changed when an add is refused."
    )]
    Peers(PeersArgs),
    /// Print a shell completion script on stdout
    Completions(CompletionsArgs),
    /// Write the man pages (geneve-ovs(1) and its commands, geneve-ovs-options(5)) to DIR
    #[command(hide = true)]
    Manpages(ManpagesArgs),
    /// Plugin: print the plugin and API version (JSON)
    Info,
    /// Plugin: validate a network from stdin and build its bridge and tunnels (JSON)
    Create,
    /// Plugin: attach the container in NETNS to the network from stdin (JSON)
    Setup(NetnsArg),
    /// Plugin: detach the container in NETNS from the network from stdin (JSON)
    Teardown(NetnsArg),
}

/// Where podman's saved networks are.
#[derive(Debug, Clone, Args)]
pub struct NetworkDirArg {
    /// podman's network directory [default: $GENEVE_OVS_NETWORK_CONFIG_DIR, else
    /// /etc/containers/networks]
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub network_config_dir: Option<PathBuf>,
}

/// `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print the report as JSON (see docs/operations.md)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dir: NetworkDirArg,
    /// Only this network (by network or bridge name)
    pub network: Option<String>,
}

/// `gc`.
#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    /// List what would be removed, remove nothing
    #[arg(long, conflicts_with = "flows_only")]
    pub dry_run: bool,
    /// Remove nothing, only restore the OpenFlow tables (what geneve-ovs-flows.service runs
    /// after every ovs-vswitchd start)
    #[arg(long)]
    pub flows_only: bool,
    /// Print the result as JSON (see docs/operations.md)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dir: NetworkDirArg,
    /// Another directory where running containers' namespaces are mounted, besides /run/netns
    /// (may be repeated)
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub netns_dir: Vec<PathBuf>,
}

/// `peers`.
#[derive(Debug, Clone, Args)]
pub struct PeersArgs {
    /// The podman network (its name, as in 'podman network ls')
    pub network: String,
    #[command(subcommand)]
    pub action: PeersAction,
    /// Print the result as JSON
    #[arg(long, global = true)]
    pub json: bool,
    /// podman's network directory [default: $GENEVE_OVS_NETWORK_CONFIG_DIR, else
    /// /etc/containers/networks]
    #[arg(long, global = true, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub network_config_dir: Option<PathBuf>,
}

/// What `peers` does.
#[derive(Debug, Clone, Subcommand)]
pub enum PeersAction {
    /// Print the network's peers, with each host's address range
    List,
    /// Add hosts: tunnels to them, and them in the saved network's peers option
    Add {
        /// Underlay addresses of the hosts to add
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Remove hosts: their tunnels go, and they leave the saved network's peers option
    Remove {
        /// Underlay addresses of the hosts to remove
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
    },
}

/// `completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells completions are generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `manpages`.
#[derive(Debug, Clone, Args)]
pub struct ManpagesArgs {
    /// The directory to write the pages to (created when missing)
    #[arg(value_hint = clap::ValueHint::DirPath)]
    pub dir: PathBuf,
}

/// The container's network namespace argument of `setup` and `teardown`.
#[derive(Debug, Clone, Args)]
pub struct NetnsArg {
    /// Path of the container's network namespace
    pub netns: PathBuf,
}

/// The clap command, for the completions and man pages.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn parses_the_operator_commands() {
        let cli = Cli::try_parse_from([
            "geneve-ovs",
            "gc",
            "--dry-run",
            "--json",
            "--network-config-dir",
            "/x",
            "--netns-dir=/a",
            "--netns-dir",
            "/b",
        ])
        .unwrap();
        let Command::Gc(gc) = cli.command else {
            panic!("not gc")
        };
        assert!(gc.dry_run && gc.json && !gc.flows_only);
        assert_eq!(gc.dir.network_config_dir, Some(PathBuf::from("/x")));
        assert_eq!(gc.netns_dir, [PathBuf::from("/a"), PathBuf::from("/b")]);

        let cli = Cli::try_parse_from(["geneve-ovs", "peers", "net1", "add", "10.99.0.3"]).unwrap();
        let Command::Peers(p) = cli.command else {
            panic!("not peers")
        };
        assert_eq!(p.network, "net1");
        assert!(matches!(&p.action, PeersAction::Add { addresses } if addresses == &["10.99.0.3"]));
        // --json is accepted after the action too.
        let cli = Cli::try_parse_from(["geneve-ovs", "peers", "net1", "list", "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Peers(PeersArgs { json: true, .. })
        ));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for args in [
            &["geneve-ovs", "status", "--bogus"][..],
            &["geneve-ovs", "status", "a", "b"][..],
            &["geneve-ovs", "gc", "--dry-run", "--flows-only"][..],
            &["geneve-ovs", "gc", "--network-config-dir"][..],
            &["geneve-ovs", "peers", "net1", "add"][..],
            &["geneve-ovs", "peers", "net1"][..],
            &["geneve-ovs", "frobnicate"][..],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
