//! Helpers for the operator commands and robustness tests: podman's saved network directory,
//! `status`/`gc` runs, and the plugin's leftovers on a host (container ports, `gv` veths).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::host::PLUGIN_BIN;
use super::{Host, Lab};

/// A podman network directory for host `i` of `lab` (inside the lab's private directory).
pub fn network_dir(lab: &Lab, i: usize) -> Result<PathBuf> {
    let dir = lab.dir().join(format!("networks-h{i}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Saves `network` (what `create` returned) as podman does: `<dir>/<name>.json`.
pub fn save_network(dir: &Path, network: &Value) -> Result<()> {
    let name = network["name"].as_str().context("network name")?;
    std::fs::write(dir.join(format!("{name}.json")), network.to_string())?;
    Ok(())
}

/// `podman network rm`: the file goes, the plugin is not told.
pub fn forget_network(dir: &Path, name: &str) -> Result<()> {
    std::fs::remove_file(dir.join(format!("{name}.json")))?;
    Ok(())
}

/// Runs an operator command (`status`, `gc`) with `--network-config-dir dir`; returns the
/// exit code and stdout.
pub fn operator(host: &Host, dir: &Path, args: &[&str]) -> (i32, String) {
    let dir = dir.display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--network-config-dir", dir.as_str()]);
    let out = host.plugin(&all, "");
    if !out.stderr.is_empty() {
        eprintln!(
            "[{} {}] stderr: {}",
            host.name(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `status --json`: exit code and the parsed report.
pub fn status_json(host: &Host, dir: &Path) -> Result<(i32, Value)> {
    let (code, out) = operator(host, dir, &["status", "--json"]);
    let report: Value =
        serde_json::from_str(&out).with_context(|| format!("status printed {out:?}"))?;
    Ok((code, report))
}

/// `gc --json [extra]`, requiring exit code 0; the parsed result.
pub fn gc_json(host: &Host, dir: &Path, extra: &[&str]) -> Result<Value> {
    let mut args = vec!["gc", "--json"];
    args.extend_from_slice(extra);
    let (code, out) = operator(host, dir, &args);
    if code != 0 {
        bail!("gc exited {code}: {out}");
    }
    serde_json::from_str(&out).with_context(|| format!("gc printed {out:?}"))
}

/// What `contrib/systemd/geneve-ovs-flows.service` runs after every start of ovs-vswitchd:
/// `gc --flows-only`, which puts the bridges' OpenFlow tables (port security) back. Tests that
/// restart ovs-vswitchd and expect traffic back call it as that unit would.
pub fn restore_flows(host: &Host) -> Result<Value> {
    let out = host.plugin(&["gc", "--flows-only", "--json"], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "gc --flows-only exited {:?}: {stdout} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_str(&stdout).with_context(|| format!("gc --flows-only printed {stdout:?}"))
}

/// The (kind, name) pairs of a gc result list (`removed`, `kept`, `failed`).
pub fn gc_items(result: &Value, list: &str) -> Vec<(String, String)> {
    result[list]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["kind"].as_str().unwrap_or("?").to_string(),
                i["name"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

/// Names of the host's links that look like the plugin's host veths (`gv` + 13 hex).
pub fn gv_links(host: &Host) -> Result<Vec<String>> {
    let out = host.exec_ok("ip", &["-j", "link", "show"])?;
    let links: Value = serde_json::from_str(&out)?;
    let mut names: Vec<String> = links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| geneve_ovs::operate::host::is_host_veth_name(n))
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(names)
}

/// Starts the plugin with `args` inside the host's namespace directly (no `ip netns exec`),
/// stdin `input`, so that the test holds the very process and can kill it.
pub fn spawn_plugin(host: &Host, args: &[&str], input: &str) -> Result<Child> {
    let ns = geneve_ovs::netns::Netns::open(&host.netns_path())?;
    let mut child = ns.enter(|| {
        Command::new(PLUGIN_BIN)
            .args(args)
            .env_clear()
            .env("OVS_RUNDIR", host.ovs_rundir())
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning the plugin")
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child killed early closes its end: a failed write is expected then.
        let _ = std::io::Write::write_all(&mut stdin, input.as_bytes());
    }
    Ok(child)
}

/// A continuous ping (every 50 ms) from a container, with the time of every reply, to see
/// exactly when traffic stops and comes back.
pub struct PingLog {
    child: Child,
    file: PathBuf,
}

/// Seconds since the epoch, as `ping -D` prints them.
pub fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl PingLog {
    /// Starts pinging `target` from the namespace `netns`, writing to `file`.
    pub fn start(netns: &str, target: &str, file: PathBuf) -> Result<PingLog> {
        let out = std::fs::File::create(&file)?;
        let child = Command::new("ip")
            .args([
                "netns", "exec", netns, "ping", "-D", "-n", "-i", "0.05", "-W", "1",
            ])
            .arg(target)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .context("starting ping")?;
        Ok(PingLog { child, file })
    }

    /// The times of the replies so far.
    pub fn replies(&self) -> Result<Vec<f64>> {
        let text = std::fs::read_to_string(&self.file)?;
        Ok(text
            .lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect())
    }

    /// The first reply at or after `t`, waiting up to `limit` for it.
    pub fn first_reply_after(&self, t: f64, limit: std::time::Duration) -> Result<f64> {
        super::wait::until_some("a ping reply", limit, || {
            Ok(self.replies()?.into_iter().find(|&r| r >= t))
        })
    }

    /// The last reply before `t`.
    pub fn last_reply_before(&self, t: f64) -> Result<Option<f64>> {
        Ok(self.replies()?.into_iter().rfind(|&r| r < t))
    }
}

impl Drop for PingLog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
