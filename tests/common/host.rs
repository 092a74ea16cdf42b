//! One simulated host: a network namespace with its own OVS instance and an address on
//! the shared underlay.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::cmd::Cmd;
use super::container::Container;
use super::netns;
use super::ovs::Ovs;

/// The plugin binary Cargo built for this test run.
pub const PLUGIN_BIN: &str = env!("CARGO_BIN_EXE_geneve-ovs");

/// How long one plugin invocation may take before it counts as hung.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variables handed through to the plugin when the test run has them set.
const PLUGIN_ENV_PASSTHROUGH: &[&str] = &["RUST_LOG", "RUST_BACKTRACE", "PATH"];

pub struct Host {
    pub(super) index: usize,
    pub(super) netns: String,
    pub(super) underlay_ip: IpAddr,
    pub(super) underlay_prefix_len: u8,
    pub(super) ovs: Ovs,
}

impl Host {
    /// 1-based position in the lab.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Name of the host's network namespace.
    pub fn name(&self) -> &str {
        &self.netns
    }

    pub fn netns_path(&self) -> PathBuf {
        netns::path(&self.netns)
    }

    /// The host's address on the underlay (on its `br-phy` bridge).
    pub fn underlay_ip(&self) -> IpAddr {
        self.underlay_ip
    }

    /// The underlay address with its prefix length, as `ip addr` writes it.
    pub fn underlay_cidr(&self) -> String {
        format!("{}/{}", self.underlay_ip, self.underlay_prefix_len)
    }

    /// The directory holding this host's OVS database socket (`db.sock`), pidfiles and
    /// logs; the value the plugin gets as OVS_RUNDIR.
    pub fn ovs_rundir(&self) -> &Path {
        self.ovs.dir()
    }

    /// Run ovs-vsctl against this host's database; stdout on success.
    pub fn vsctl<S: AsRef<str>>(&self, args: &[S]) -> Result<String> {
        self.ovs.vsctl_cmd(args).run()
    }

    /// Run ovs-appctl against this host's ovs-vswitchd; stdout on success.
    pub fn appctl<S: AsRef<str>>(&self, args: &[S]) -> Result<String> {
        self.ovs.appctl_cmd(args).run()
    }

    /// Run a command inside the host's network namespace.
    pub fn exec<S: AsRef<str>>(&self, cmd: &str, args: &[S]) -> Output {
        Cmd::in_netns(&self.netns, cmd, &as_strs(args)).output_lossy()
    }

    /// Run a command inside the host's network namespace and require success.
    pub fn exec_ok<S: AsRef<str>>(&self, cmd: &str, args: &[S]) -> Result<String> {
        Cmd::in_netns(&self.netns, cmd, &as_strs(args)).run()
    }

    /// Run the plugin binary in the host's network namespace, as netavark would: with
    /// `stdin` as its standard input and OVS_RUNDIR pointing at this host's OVS, so
    /// that it finds `$OVS_RUNDIR/db.sock`.
    pub fn plugin(&self, args: &[&str], stdin: &str) -> Output {
        self.run_as_plugin(PLUGIN_BIN, args, stdin)
    }

    /// Run `program` the way [`Host::plugin`] runs the plugin: in the host's namespace,
    /// with `stdin`, a clean environment but for OVS_RUNDIR and OVN_RUNDIR (this host's) and RUST_LOG,
    /// RUST_BACKTRACE and PATH (the test run's). Lets the lab check that environment
    /// with a stand-in program.
    pub fn run_as_plugin(&self, program: &str, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Cmd::in_netns(&self.netns, program, args)
            .env_clear()
            .env("OVS_RUNDIR", self.ovs.dir())
            // Where an OVN lab's ovn-controller has its pidfile and control socket (for
            // `ovn-appctl -t ovn-controller`, which `status` asks); the system's is /run/ovn.
            .env("OVN_RUNDIR", self.ovs.dir())
            .stdin(stdin)
            .timeout(PLUGIN_TIMEOUT);
        for key in PLUGIN_ENV_PASSTHROUGH {
            if let Some(v) = std::env::var_os(key) {
                cmd = cmd.env(key, v);
            }
        }
        if std::env::var_os("PATH").is_none() {
            cmd = cmd.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        }
        cmd.output_lossy()
    }

    pub fn stop_vswitchd(&self) -> Result<()> {
        self.ovs.stop_vswitchd()
    }

    pub fn start_vswitchd(&self) -> Result<()> {
        self.ovs.start_vswitchd()
    }

    /// See [`super::ovs::Ovs::start_vswitchd_offering_system`].
    pub fn start_vswitchd_offering_system(&self) -> Result<()> {
        self.ovs.start_vswitchd_offering_system()
    }

    pub fn stop_ovsdb(&self) -> Result<()> {
        self.ovs.stop_ovsdb()
    }

    pub fn start_ovsdb(&self) -> Result<()> {
        self.ovs.start_ovsdb()
    }

    /// Pid of "ovsdb-server" or "ovs-vswitchd" on this host, if it runs.
    pub fn daemon_pid(&self, program: &str) -> Option<i32> {
        self.ovs.pid(program)
    }

    /// The last lines of a daemon's log ("ovsdb-server" or "ovs-vswitchd").
    pub fn log_tail(&self, program: &str) -> String {
        self.ovs.log_tail(program)
    }

    /// A fresh network namespace standing for a container on this host, deleted when
    /// the returned value is dropped. `name` may hold letters, digits, `-` and `_`.
    pub fn container(&self, name: &str) -> Result<Container> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("bad container name {name:?}");
        }
        Container::create(format!("{}-{name}", self.netns))
    }

    /// One counter of `Interface.statistics` (e.g. "tx_packets"), 0 when absent.
    pub fn interface_stat(&self, iface: &str, key: &str) -> Result<u64> {
        let col = format!("statistics:{key}");
        match self.vsctl(&["--if-exists", "get", "Interface", iface, col.as_str()]) {
            Ok(s) if s.is_empty() => Ok(0),
            Ok(s) => s
                .trim_matches('"')
                .parse()
                .with_context(|| format!("statistics:{key} of {iface} is {s:?}")),
            // ovs-vsctl fails on a missing map key: the counter was never reported.
            Err(e) if format!("{e:#}").contains("no key") => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// True when at least one of a few pings from the host itself to `ip` is answered.
    pub fn ping(&self, ip: &str) -> bool {
        super::ping_in(&self.netns, ip)
    }

    /// Names of the host's network interfaces.
    pub fn links(&self) -> Result<Vec<String>> {
        let out = self.exec_ok("ip", &["-j", "link", "show"])?;
        let links: serde_json::Value = serde_json::from_str(&out).context("ip -j link show")?;
        Ok(links
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Names of the plugin's container ports in the host's OVS, sorted.
    pub fn container_ports(&self) -> Result<Vec<String>> {
        let out = self.vsctl(&[
            "--bare",
            "--columns=name",
            "find",
            "Port",
            "external_ids:geneve-ovs.role=container",
        ])?;
        let mut names: Vec<String> = out.split_whitespace().map(str::to_string).collect();
        names.sort();
        Ok(names)
    }
}

fn as_strs<S: AsRef<str>>(args: &[S]) -> Vec<&str> {
    args.iter().map(|a| a.as_ref()).collect()
}
