//! Installing and reading a bridge's OpenFlow table with Open vSwitch's own `ovs-ofctl`: for
//! what is not on a container's hot path (`create`, `gc`'s restore, `status`); `setup` and
//! `teardown` speak OpenFlow themselves ([`crate::openflow`]).
//!
//! The flows themselves are decided in [`crate::flows`]; this module only runs the tool. It
//! talks to the bridge's management socket in ovs-vswitchd's run directory
//! (`<OVS_RUNDIR>/<bridge>.mgmt`, the directory of the OVSDB socket), and every change goes in
//! one `--bundle` (an OpenFlow 1.4 transaction): a port's flows are replaced whole or not at
//! all.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::flows::{Flow, FlowChange};

/// Seconds `ovs-ofctl` may wait for ovs-vswitchd before it gives up. Only a hung
/// ovs-vswitchd reaches it, so it is generous: a busy one is slow, not broken. 5 s was too
/// short: on the emulated kernel-datapath hosts under load, where every OVS command takes 2 to
/// 4 s, a port's `--bundle add-flows` passed it and `setup` failed (SIGALRM).
const TIMEOUT_SECS: u32 = 30;

/// Where `ovs-ofctl` is looked for when it is not on `PATH` (netavark may run plugins with a
/// minimal environment).
const FALLBACKS: &[&str] = &["/usr/bin/ovs-ofctl", "/usr/local/bin/ovs-ofctl"];

/// `ovs-ofctl` against the bridges of one ovs-vswitchd.
#[derive(Debug, Clone)]
pub struct Ofctl {
    rundir: PathBuf,
}

impl Ofctl {
    /// For the ovs-vswitchd whose run directory (where its `<bridge>.mgmt` sockets are) is
    /// `rundir`.
    pub fn new(rundir: &Path) -> Ofctl {
        Ofctl {
            rundir: rundir.to_path_buf(),
        }
    }

    fn target(&self, bridge: &str) -> String {
        format!("unix:{}/{bridge}.mgmt", self.rundir.display())
    }

    /// Applies `changes` as one bundle of `ovs-ofctl add-flows` lines (`add ...`,
    /// `delete ...`).
    pub fn apply(&self, bridge: &str, changes: &[FlowChange]) -> Result<()> {
        let mut input = String::new();
        for change in changes {
            input.push_str(&change.to_string());
            input.push('\n');
        }
        self.run(bridge, &["--bundle", "add-flows"], Some(&input))
            .map(|_| ())
            .with_context(|| {
                format!("cannot install the port-security flows of OVS bridge {bridge}")
            })
    }

    /// Makes the bridge's table exactly `flows`, in one bundle (`replace-flows`).
    pub fn replace_all(&self, bridge: &str, flows: &[Flow]) -> Result<()> {
        let input = crate::flows::flow_file(flows);
        self.run(bridge, &["--bundle", "replace-flows"], Some(&input))
            .map(|_| ())
            .with_context(|| format!("cannot restore the OpenFlow table of OVS bridge {bridge}"))
    }

    /// How many flows of the bridge's table carry each cookie.
    pub fn cookies(&self, bridge: &str) -> Result<BTreeMap<u64, usize>> {
        let text = self
            .run(bridge, &["dump-flows"], None)
            .with_context(|| format!("cannot read the OpenFlow table of OVS bridge {bridge}"))?;
        Ok(parse_cookies(&text))
    }

    /// Runs `ovs-ofctl <args> <target> [-]`, with `input` on stdin; returns stdout.
    fn run(&self, bridge: &str, args: &[&str], input: Option<&str>) -> Result<String> {
        let program = program();
        let mut command = Command::new(&program);
        command
            .arg(format!("--timeout={TIMEOUT_SECS}"))
            .args(args)
            .arg(self.target(bridge));
        if input.is_some() {
            command.arg("-");
        }
        command
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot run {} (install Open vSwitch's command-line tools)",
                program.display()
            )
        })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .context("cannot write the flows to ovs-ofctl")?;
        }
        let out = child.wait_with_output().context("waiting for ovs-ofctl")?;
        if !out.status.success() {
            bail!(
                "ovs-ofctl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// `ovs-ofctl` from `PATH`, else from its usual places.
fn program() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("ovs-ofctl"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| {
            FALLBACKS
                .iter()
                .map(PathBuf::from)
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("ovs-ofctl"))
}

/// Counts the flows per cookie in `ovs-ofctl dump-flows` output (` cookie=0x1, duration=...`).
pub fn parse_cookies(dump: &str) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for line in dump.lines() {
        let Some(rest) = line.trim_start().strip_prefix("cookie=0x") else {
            continue;
        };
        let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        if let Ok(cookie) = u64::from_str_radix(&hex, 16) {
            *counts.entry(cookie).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_counted_from_a_dump() {
        let dump = "NXST_FLOW reply (xid=0x4):\n \
            cookie=0x8000000000000002, duration=0.020s, table=0, n_packets=0, priority=200,arp actions=NORMAL\n \
            cookie=0x8000000000000002, duration=0.020s, table=0, priority=100 actions=drop\n \
            cookie=0x6776000000001389, duration=0.020s, table=0, priority=0 actions=drop\n";
        let counts = parse_cookies(dump);
        assert_eq!(counts.get(&0x8000_0000_0000_0002), Some(&2));
        assert_eq!(counts.get(&0x6776_0000_0000_1389), Some(&1));
        assert_eq!(counts.len(), 2);
        assert!(parse_cookies("NXST_FLOW reply (xid=0x4):\n").is_empty());
    }
}
