//! Finding and stopping processes by pid, carefully: a pid read from a pidfile may by
//! now belong to some unrelated process, so every kill checks the command line first.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::wait;

/// True while `pid` names a process that has not exited. A zombie (exited, not yet
/// reaped by its parent) counts as gone: it holds no resources the lab cares about.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the command name, which is in parentheses and may
        // itself contain spaces or parentheses: look after the last ')'.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// The NUL-separated command line of `pid`, joined with spaces ("" when unreadable).
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Send `signal` to `pid`; a process that is already gone is not an error.
pub fn signal(pid: i32, signal: i32) -> Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err).with_context(|| format!("kill({pid}, {signal})"));
        }
    }
    Ok(())
}

/// Stop `pid`: SIGTERM, wait up to `grace`, then SIGKILL and wait again.
pub fn terminate(pid: i32, grace: Duration) -> Result<()> {
    signal(pid, libc::SIGTERM)?;
    if wait::until("process exit", grace, || Ok(!alive(pid))).is_ok() {
        return Ok(());
    }
    signal(pid, libc::SIGKILL)?;
    wait::until(&format!("pid {pid} to die"), Duration::from_secs(5), || {
        Ok(!alive(pid))
    })
}

/// The pid in `pidfile` if that process is alive and its command line mentions
/// `marker` (the daemon's private directory), so it is certainly ours.
pub fn pid_from_file(pidfile: &Path, marker: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    (pid > 0 && alive(pid) && cmdline(pid).contains(marker)).then_some(pid)
}

/// Stop the daemon whose pidfile is `pidfile` (see [`pid_from_file`]); nothing to do
/// when it is not running.
pub fn stop_by_pidfile(pidfile: &Path, marker: &str) -> Result<()> {
    if let Some(pid) = pid_from_file(pidfile, marker) {
        terminate(pid, Duration::from_secs(5))
            .with_context(|| format!("stopping {} (pid {pid})", pidfile.display()))?;
    }
    // A killed daemon leaves its pidfile behind; OVS would cope, but a clean directory
    // makes "is it running?" answerable from the file alone.
    match std::fs::remove_file(pidfile) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", pidfile.display())),
    }
}

/// Every pid whose network namespace is the one bind-mounted at `netns_path`.
pub fn pids_in_netns(netns_path: &Path) -> Result<Vec<i32>> {
    use std::os::unix::fs::MetadataExt;
    let target =
        std::fs::metadata(netns_path).with_context(|| format!("stat {}", netns_path.display()))?;
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // Processes vanish while we look; skip any we cannot stat.
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            if m.dev() == target.dev() && m.ino() == target.ino() && alive(pid) {
                pids.push(pid);
            }
        }
    }
    Ok(pids)
}

/// SIGKILL every process living in the namespace at `netns_path` and wait for them.
pub fn kill_netns_processes(netns_path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let target = std::fs::metadata(netns_path)?;
    // Never empty the namespace the tests themselves run in.
    let own = std::fs::metadata("/proc/self/ns/net").context("stat /proc/self/ns/net")?;
    if target.dev() == own.dev() && target.ino() == own.ino() {
        bail!(
            "{} is the test process's own namespace",
            netns_path.display()
        );
    }
    let pids = pids_in_netns(netns_path)?;
    for pid in &pids {
        signal(*pid, libc::SIGKILL)?;
    }
    for pid in pids {
        wait::until(&format!("pid {pid} to die"), Duration::from_secs(5), || {
            Ok(!alive(pid))
        })?;
    }
    Ok(())
}

/// Fail unless `pid` is alive (used right after starting a daemon).
pub fn require_alive(pid: i32, what: &str) -> Result<()> {
    if !alive(pid) {
        bail!("{what} (pid {pid}) is not running");
    }
    Ok(())
}
