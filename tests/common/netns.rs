//! Named network namespaces (`ip netns`), and the naming scheme that tells which of
//! them this harness made, by which process.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::cmd::Cmd;
use super::process;

/// Where `ip netns` bind-mounts named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Every name this harness gives starts with this tag, then the pid of the test
/// process, then `x` and a per-process counter: `gvl1234x0`. The pid lets a later run
/// recognise leftovers of a crashed one; the tag keeps other users' namespaces safe.
pub const TAG: &str = "gvl";

/// Path of the named namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Create the namespace `name` with its loopback up.
pub fn add(name: &str) -> Result<()> {
    Cmd::new("ip").args(["netns", "add", name]).run()?;
    Cmd::new("ip")
        .args(["-n", name, "link", "set", "lo", "up"])
        .run()?;
    Ok(())
}

/// Kill whatever still runs inside `name`, then delete it. Deleting only unmounts the
/// name: the kernel keeps a namespace while a process lives in it, hence the kill.
pub fn delete(name: &str) -> Result<()> {
    let p = path(name);
    if !p.exists() {
        return Ok(());
    }
    let result = process::kill_netns_processes(&p)
        .with_context(|| format!("emptying netns {name}"))
        .and_then(|()| Cmd::new("ip").args(["netns", "delete", name]).run());
    match result {
        // Another test process cleaning stale labs may have deleted it meanwhile.
        Err(_) if !p.exists() => Ok(()),
        r => r.map(drop),
    }
}

/// Names of all named namespaces on the machine.
pub fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(NETNS_DIR),
    };
    Ok(dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect())
}

/// The lab prefix `gvl<pid>x<n>` that `name` starts with, and that pid; `None` for
/// names this harness did not make.
pub fn parse_prefix(name: &str) -> Option<(String, i32)> {
    let rest = name.strip_prefix(TAG)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let pid: i32 = rest[..digits].parse().ok()?;
    let after = rest[digits..].strip_prefix('x')?;
    let n = after
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after.len());
    if n == 0 {
        return None;
    }
    let prefix_len = TAG.len() + digits + 1 + n;
    Some((name[..prefix_len].to_string(), pid))
}

/// Delete every namespace whose name starts with `prefix`.
pub fn delete_with_prefix(prefix: &str) -> Vec<anyhow::Error> {
    let mut errors = Vec::new();
    match list() {
        Ok(names) => {
            for name in names {
                if parse_prefix(&name).is_some_and(|(p, _)| p == prefix) {
                    if let Err(e) = delete(&name) {
                        errors.push(e);
                    }
                }
            }
        }
        Err(e) => errors.push(e),
    }
    errors
}
