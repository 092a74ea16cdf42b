//! The host lock between `gc` and the plugin runs that attach and detach containers.
//!
//! `setup` creates a container's veth before it adds the OVS port for it, and `teardown`
//! removes the port before the veth. In between, a veth has no port, which is exactly what
//! `gc` looks for in a leaked veth. So `setup` and `teardown` hold the lock shared (any number
//! of them run side by side) and `gc` holds it exclusively while it decides and removes.
//!
//! The lock is an `flock` on `geneve-ovs.lock` next to ovsdb-server's socket: one lock per
//! Open vSwitch instance, which is the scope of everything the plugin does. The kernel drops
//! it when its holder exits, however it exits, so a killed run never leaves it held.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The lock file's name, in the directory of the OVSDB socket.
pub const LOCK_FILE: &str = "geneve-ovs.lock";

/// How long a run waits for the lock before giving up: far longer than any holder keeps it.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// How the lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `setup` and `teardown`: many at once, but not during a `gc`.
    Shared,
    /// `gc`: alone.
    Exclusive,
}

/// The lock stayed taken by another run for the whole wait.
#[derive(Debug)]
pub struct Busy {
    pub path: PathBuf,
    pub waited: Duration,
    pub mode: Mode,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is still locked after {:?}: another geneve-ovs {} is running",
            self.path.display(),
            self.waited,
            match self.mode {
                Mode::Shared => "gc",
                Mode::Exclusive => "setup, teardown or gc",
            }
        )
    }
}

impl std::error::Error for Busy {}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct HostLock {
    _file: File,
}

/// The lock file for the OVSDB server at `socket`.
pub fn path_for(socket: &Path) -> PathBuf {
    socket
        .parent()
        .unwrap_or_else(|| Path::new("/"))
        .join(LOCK_FILE)
}

/// Takes the lock at `path` in `mode`, waiting at most `wait`.
pub fn acquire(path: &Path, mode: Mode, wait: Duration) -> Result<HostLock> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    let operation = match mode {
        Mode::Shared => libc::LOCK_SH,
        Mode::Exclusive => libc::LOCK_EX,
    } | libc::LOCK_NB;
    let deadline = Instant::now() + wait;
    loop {
        // SAFETY: flock takes a descriptor we own and plain flags.
        let rc = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if rc == 0 {
            return Ok(HostLock { _file: file });
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
            _ => {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        if Instant::now() >= deadline {
            return Err(Busy {
                path: path.to_path_buf(),
                waited: wait,
                mode,
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_holders_coexist_and_exclude_an_exclusive_one() {
        let dir = std::env::temp_dir().join(format!("geneve-ovs-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(LOCK_FILE);
        let a = acquire(&path, Mode::Shared, DEFAULT_WAIT).unwrap();
        let b = acquire(&path, Mode::Shared, DEFAULT_WAIT).unwrap();
        let started = Instant::now();
        let err = acquire(&path, Mode::Exclusive, Duration::from_millis(50)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(err.to_string().contains("still locked"), "{err}");
        assert!(err.downcast_ref::<Busy>().is_some());
        drop((a, b));
        let x = acquire(&path, Mode::Exclusive, DEFAULT_WAIT).unwrap();
        assert!(acquire(&path, Mode::Shared, Duration::ZERO).is_err());
        drop(x);
        acquire(&path, Mode::Shared, Duration::ZERO).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lock_sits_next_to_the_socket() {
        assert_eq!(
            path_for(Path::new("/var/run/openvswitch/db.sock")),
            Path::new("/var/run/openvswitch/geneve-ovs.lock")
        );
    }
}
