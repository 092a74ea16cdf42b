//! Network namespaces as open files, and running code inside one.
//!
//! podman hands the plugin a path to the container's network namespace (a bind mount under
//! `/run/netns`, or `/proc/PID/ns/net`). Everything that must happen *inside* that namespace
//! (netlink sockets, `/proc/sys/net` writes, ethtool ioctls) resolves the namespace of the calling
//! thread at the moment the socket or file is opened, so the whole mechanism is: move this thread
//! in with `setns(2)`, do the work, move it back.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where the calling thread's own network namespace is visible. `thread-self`, not `self`: after a
/// `setns` only this thread has moved, and `/proc/self` names the process (its main thread).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// An open network namespace file.
///
/// Holding the file (rather than the path) pins the namespace: it cannot disappear or be replaced
/// under us between the moment we check it and the moment we enter it or create a link in it.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens the namespace file at `path` (`/run/netns/NAME`, `/proc/PID/ns/net`, ...).
    ///
    /// The error names the path, because a missing or wrong netns path from podman is the most
    /// likely reason for a setup to fail before anything was created.
    pub fn open(path: &Path) -> Result<Netns> {
        let file = File::open(path)
            .with_context(|| format!("opening network namespace {}", path.display()))?;
        Ok(Netns {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Opens the network namespace the calling thread is in now, so that it can be returned to.
    pub fn current() -> Result<Netns> {
        Netns::open(Path::new(THREAD_NETNS))
    }

    /// The path this namespace was opened from, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the calling thread inside this namespace and brings the thread back to the
    /// namespace it came from afterwards, whether `f` succeeded or not.
    ///
    /// Only the calling thread moves; other threads of the process are unaffected. `f` must not
    /// hand work to other threads that expects to run in this namespace.
    ///
    /// If the way back fails the thread is stranded in a foreign namespace; that error wins over
    /// the result of `f`, since continuing would create host links in the container.
    pub fn enter<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let origin = Netns::current().context("remembering the current network namespace")?;
        set_thread_netns(self.file.as_fd())
            .with_context(|| format!("entering network namespace {}", self.path.display()))?;
        let mut way_back = WayBack {
            origin: &origin,
            pending: true,
        };
        let result = f();
        way_back.pending = false;
        set_thread_netns(origin.file.as_fd()).with_context(|| {
            format!(
                "returning from network namespace {} to {}",
                self.path.display(),
                origin.path.display()
            )
        })?;
        result
    }
}

/// Brings the thread back to `origin` if [`Netns::enter`]'s closure panics, so that an unwinding
/// thread (a test harness thread, say) does not go on in a foreign namespace. The normal path
/// returns explicitly, where a failure can be reported.
struct WayBack<'a> {
    origin: &'a Netns,
    pending: bool,
}

impl Drop for WayBack<'_> {
    fn drop(&mut self) {
        if self.pending {
            if let Err(err) = set_thread_netns(self.origin.file.as_fd()) {
                log::error!(
                    "thread stranded outside {} while unwinding: {err:#}",
                    self.origin.path.display()
                );
            }
        }
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Netns {
    /// The raw descriptor is what netlink wants in `IFLA_NET_NS_FD`.
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Moves the calling thread into the network namespace behind `fd`.
fn set_thread_netns(fd: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: setns only reads the descriptor, which `BorrowedFd` guarantees is open for the
    // duration of the call; CLONE_NEWNET makes the kernel reject anything but a network
    // namespace file instead of silently switching another namespace type.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("setns(CLONE_NEWNET)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_names_the_missing_path() {
        let err = Netns::open(Path::new("/nonexistent/netns/x")).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/netns/x"));
    }

    #[test]
    fn entering_the_current_namespace_comes_back() {
        let ns = Netns::current().unwrap();
        let value = ns.enter(|| Ok(7)).unwrap();
        assert_eq!(value, 7);
        let failed: Result<()> = ns.enter(|| anyhow::bail!("inner failure"));
        assert!(failed.is_err());
    }
}
