//! A network namespace standing for a container: what podman would hand the plugin.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use super::cmd::Cmd;
use super::{netns, wait};

/// Owns its namespace: dropping it kills whatever runs inside and deletes it.
pub struct Container {
    netns: String,
}

impl Container {
    pub(super) fn create(netns_name: String) -> Result<Self> {
        netns::add(&netns_name)?;
        Ok(Container { netns: netns_name })
    }

    /// Name of the container's network namespace.
    pub fn name(&self) -> &str {
        &self.netns
    }

    /// `/run/netns/<name>`: the path podman would pass as the container's namespace.
    pub fn netns_path(&self) -> PathBuf {
        netns::path(&self.netns)
    }

    /// Run a command inside the container's namespace.
    pub fn exec<S: AsRef<str>>(&self, cmd: &str, args: &[S]) -> Output {
        self.cmd(cmd, args).output_lossy()
    }

    /// Run a command inside the container's namespace and require success.
    pub fn exec_ok<S: AsRef<str>>(&self, cmd: &str, args: &[S]) -> Result<String> {
        self.cmd(cmd, args).run()
    }

    /// The same with a time limit of its own (for transfers and servers).
    pub fn exec_timeout<S: AsRef<str>>(&self, timeout: Duration, cmd: &str, args: &[S]) -> Output {
        self.cmd(cmd, args).timeout(timeout).output_lossy()
    }

    fn cmd<S: AsRef<str>>(&self, cmd: &str, args: &[S]) -> Cmd {
        let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
        Cmd::in_netns(&self.netns, cmd, &args)
    }

    /// True when at least one of a few pings to `ip` is answered.
    pub fn ping(&self, ip: &str) -> bool {
        super::ping_in(&self.netns, ip)
    }

    /// Ping `ip` until it answers, at most `timeout` (the first packets of a new path may
    /// be dropped while ARP/ND and OVS's tunnel neighbour cache fill).
    pub fn wait_ping(&self, ip: &str, timeout: Duration) -> Result<()> {
        wait::until(&format!("{} to reach {ip}", self.netns), timeout, || {
            Ok(super::ping_once(&self.netns, ip))
        })
    }

    /// `ip -j addr show` inside the container, parsed.
    pub fn addr_json(&self) -> Result<Value> {
        self.ip_json(&["addr", "show"])
    }

    /// `ip -j -d link show` inside the container, parsed.
    pub fn link_json(&self) -> Result<Value> {
        self.ip_json(&["-d", "link", "show"])
    }

    /// `ip -j route show` (IPv4) inside the container, parsed.
    pub fn route_json(&self) -> Result<Value> {
        self.ip_json(&["route", "show"])
    }

    /// `ip -j <args>` inside the container, parsed.
    pub fn ip_json(&self, args: &[&str]) -> Result<Value> {
        let out = Cmd::new("ip")
            .args(["-n", self.netns.as_str(), "-j"])
            .args(args)
            .run()?;
        serde_json::from_str(&out).with_context(|| format!("ip -j {args:?} printed {out:?}"))
    }

    /// Addresses (without prefix length) configured on interface `dev`.
    pub fn addresses(&self, dev: &str) -> Result<Vec<String>> {
        let v = self.ip_json(&["addr", "show", "dev", dev])?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|link| link.get("addr_info")?.as_array())
            .flatten()
            .filter_map(|a| Some(a.get("local")?.as_str()?.to_string()))
            .collect())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = netns::delete(&self.netns) {
            eprintln!("[lab] cleanup of container netns {}: {e:#}", self.netns);
        }
    }
}
