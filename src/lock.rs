//! The host locks: between `gc` and the plugin runs that attach and detach containers, and
//! between the runs that rewrite the underlay filter.
//!
//! `setup` creates a container's veth before it adds the OVS port for it, and `teardown`
//! removes the port before the veth. In between, a veth has no port, which is exactly what
//! `gc` looks for in a leaked veth. So `setup` and `teardown` hold the host lock shared (any
//! number of them run side by side) and `gc` holds it exclusively while it decides and removes.
//! The underlay filter is replaced as a whole from what OVS holds ([`crate::firewall`]); the
//! runs that do it (`create`, `gc`, `setup` on the kernel datapath) hold the firewall lock
//! exclusively, so two of them cannot each apply a set that lacks the other's peers.
//!
//! The locks are `flock`s on files in a directory of the plugin's own, root-only
//! ([`DEFAULT_DIR`], or `$GENEVE_OVS_RUNDIR`), never in a directory others can write to: a
//! file there could be a symlink planted to make the plugin create or lock something else.
//! So the directory is refused unless it is a real directory owned by root and writable by
//! root alone, and the lock files are opened with `O_NOFOLLOW`.
//!
//! One lock per Open vSwitch instance, which is the scope of everything the plugin does: the
//! file names carry a hash of the OVSDB socket path, so hosts simulated on one machine (one
//! filesystem, one OVS each) do not share locks. The kernel drops a lock when its holder
//! exits, however it exits, so a killed run never leaves it held.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// The plugin's own run-time directory, created (mode 0700) when missing.
pub const DEFAULT_DIR: &str = "/run/geneve-ovs";

/// The environment variable that moves [`DEFAULT_DIR`].
pub const DIR_ENV: &str = "GENEVE_OVS_RUNDIR";

/// How long a run waits for the lock before giving up: far longer than any holder keeps it.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Which lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `gc` against `setup`/`teardown`.
    Host,
    /// The runs that replace the underlay filter.
    Firewall,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::Firewall => "firewall",
        }
    }
}

/// How the lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `setup` and `teardown`: many at once, but not during a `gc`.
    Shared,
    /// `gc`, or a rewrite of the underlay filter: alone.
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
                Mode::Exclusive => "setup, teardown, create or gc",
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

/// The lock directory: `$GENEVE_OVS_RUNDIR` if set and not empty, else [`DEFAULT_DIR`].
pub fn dir() -> PathBuf {
    dir_from(std::env::var_os(DIR_ENV).as_deref())
}

fn dir_from(env: Option<&OsStr>) -> PathBuf {
    env.filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

/// The file of lock `kind` for the OVSDB server at `socket`, in `dir`.
pub fn path_for(dir: &Path, kind: Kind, socket: &Path) -> PathBuf {
    let digest = Sha256::digest(socket.as_os_str().as_encoded_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{}-{hex}.lock", kind.prefix()))
}

/// Makes sure `dir` exists and is the plugin's own: a directory (not a symlink), owned by
/// root, writable by its owner alone. Creates it with mode 0700 when missing.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let created = std::fs::DirBuilder::new().mode(0o700).create(dir);
            match created {
                Ok(()) => {}
                // Another run made it in between: check what is there now.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!("cannot create the lock directory {}", dir.display())
                    })
                }
            }
        }
        Err(err) => {
            return Err(err)
                .with_context(|| format!("cannot inspect the lock directory {}", dir.display()))
        }
        Ok(_) => {}
    }
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot inspect the lock directory {}", dir.display()))?;
    check_private_dir(dir, &meta)
}

fn check_private_dir(dir: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let fix = format!("remove it, or set {DIR_ENV} to a directory only root can write to");
    if meta.file_type().is_symlink() {
        bail!(
            "refusing the lock directory {}: it is a symlink ({fix})",
            dir.display()
        );
    }
    if !meta.is_dir() {
        bail!(
            "refusing the lock directory {}: it is not a directory ({fix})",
            dir.display()
        );
    }
    if meta.uid() != 0 {
        bail!(
            "refusing the lock directory {}: it is owned by uid {}, not root ({fix})",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "refusing the lock directory {}: it is writable by group or others (mode {:o}; {fix})",
            dir.display(),
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

/// Takes lock `kind` of the OVSDB server at `socket` in `mode`, waiting at most `wait`.
pub fn acquire_for(kind: Kind, socket: &Path, mode: Mode, wait: Duration) -> Result<HostLock> {
    let dir = dir();
    ensure_private_dir(&dir)?;
    acquire(&path_for(&dir, kind, socket), mode, wait)
}

/// Takes the lock at `path` in `mode`, waiting at most `wait`. The file is never followed if
/// it is a symlink.
pub fn acquire(path: &Path, mode: Mode, wait: Duration) -> Result<HostLock> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| {
            format!(
                "cannot open the lock file {} (a symlink there is refused)",
                path.display()
            )
        })?;
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
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("geneve-ovs-lock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn shared_holders_coexist_and_exclude_an_exclusive_one() {
        let dir = scratch("modes");
        let path = dir.join("host.lock");
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
    fn one_lock_file_per_ovs_instance_and_kind() {
        let dir = Path::new("/run/geneve-ovs");
        let a = path_for(dir, Kind::Host, Path::new("/var/run/openvswitch/db.sock"));
        let b = path_for(dir, Kind::Host, Path::new("/tmp/lab/h2/db.sock"));
        let c = path_for(
            dir,
            Kind::Firewall,
            Path::new("/var/run/openvswitch/db.sock"),
        );
        assert_eq!(a.parent(), Some(dir));
        assert_ne!(a, b);
        assert_ne!(a, c);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("host-") && name.ends_with(".lock"),
            "{name}"
        );
        assert_eq!(
            a,
            path_for(dir, Kind::Host, Path::new("/var/run/openvswitch/db.sock"))
        );
    }

    #[test]
    fn the_directory_defaults_to_run_and_follows_the_environment() {
        assert_eq!(dir_from(None), Path::new(DEFAULT_DIR));
        assert_eq!(dir_from(Some(OsStr::new(""))), Path::new(DEFAULT_DIR));
        assert_eq!(dir_from(Some(OsStr::new("/tmp/x"))), Path::new("/tmp/x"));
    }

    #[test]
    fn a_missing_directory_is_created_root_only() {
        let parent = scratch("create");
        let dir = parent.join("run");
        ensure_private_dir(&dir).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o777, 0o700);
        // A second time it is simply accepted.
        ensure_private_dir(&dir).unwrap();
        std::fs::remove_dir_all(&parent).unwrap();
    }

    #[test]
    fn unsafe_directories_and_symlinked_lock_files_are_refused() {
        let parent = scratch("refuse");
        // A symlink to a real, private directory.
        let real = parent.join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = parent.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = ensure_private_dir(&link).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err:#}");
        // World-writable.
        let open = parent.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = ensure_private_dir(&open).unwrap_err();
        assert!(err.to_string().contains("writable by group"), "{err:#}");
        // Owned by someone else (the tests run as root; 65534 is nobody).
        let theirs = parent.join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        let err = ensure_private_dir(&theirs).unwrap_err();
        assert!(err.to_string().contains("uid 65534"), "{err:#}");
        // A file in place of the directory.
        let file = parent.join("file");
        std::fs::write(&file, "").unwrap();
        assert!(ensure_private_dir(&file).is_err());
        // A lock file that is a symlink is never followed.
        let target = parent.join("target");
        std::fs::write(&target, "keep").unwrap();
        let planted = real.join("host.lock");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let err = acquire(&planted, Mode::Exclusive, Duration::ZERO).unwrap_err();
        assert!(format!("{err:#}").contains("symlink"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
