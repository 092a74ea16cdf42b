//! A lab host's name servers for one test: its `/etc/resolv.conf` (a file of the host's own
//! root, the overlay over the lab's root filesystem, which `setup` reads for the upstream of an
//! open OVN network) replaced with the test's text and put back as it was when dropped, also
//! when the test fails, so that whatever runs on that host afterwards sees the file of the
//! root filesystem again.

use anyhow::{bail, Result};

use super::cmd::describe;
use super::{ok, Host};

/// Where the plugin (and podman) on a host read its name servers.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The host's `/etc/resolv.conf` as the test wrote it; the original is restored on drop.
pub struct ReplacedResolvConf<'a> {
    host: Host<'a>,
    /// The file's bytes before, `None` when there was none.
    original: Option<Vec<u8>>,
}

impl<'a> Host<'a> {
    /// Replaces this host's `/etc/resolv.conf` with `text` until the guard is dropped.
    pub fn replace_resolv_conf(&self, text: &str) -> Result<ReplacedResolvConf<'a>> {
        let read = self.exec(&["cat", RESOLV_CONF]);
        let original = if ok(&read) {
            Some(read.stdout)
        } else if !ok(&self.exec(&["test", "-e", RESOLV_CONF])) {
            None
        } else {
            bail!(
                "h{}: cannot read {RESOLV_CONF} to restore it later:\n{}",
                self.index(),
                describe(&read)
            );
        };
        let guard = ReplacedResolvConf {
            host: *self,
            original,
        };
        self.write_file(RESOLV_CONF, text.as_bytes().to_vec())?;
        Ok(guard)
    }
}

impl Drop for ReplacedResolvConf<'_> {
    fn drop(&mut self) {
        let restored = match self.original.take() {
            Some(bytes) => self.host.write_file(RESOLV_CONF, bytes),
            None => self.host.exec_ok(&["rm", "-f", RESOLV_CONF]).map(drop),
        };
        if let Err(err) = restored {
            eprintln!(
                "[e2e] h{}: restoring {RESOLV_CONF} failed: {err:#}",
                self.host.index()
            );
        }
    }
}
