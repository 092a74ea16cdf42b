//! A simulated host's name servers, set the way `ip netns exec` offers it:
//! `/etc/netns/HOST/resolv.conf` is bind-mounted over `/etc/resolv.conf` for what runs in the
//! host's namespace (the plugin included), and the machine's own file is never touched.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::host::Host;

/// The host's `/etc/resolv.conf` as the plugin run on it sees it, removed when dropped (with
/// `/etc/netns` when this made it and it is empty then).
pub struct HostResolvConf {
    dir: PathBuf,
    made_parent: bool,
}

const ETC_NETNS: &str = "/etc/netns";

impl HostResolvConf {
    pub fn write(host: &Host, text: &str) -> Result<HostResolvConf> {
        let made_parent = !Path::new(ETC_NETNS).exists();
        let dir = Path::new(ETC_NETNS).join(&host.netns);
        let conf = HostResolvConf {
            dir: dir.clone(),
            made_parent,
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        std::fs::write(dir.join("resolv.conf"), text)?;
        Ok(conf)
    }
}

impl Drop for HostResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.made_parent {
            // Fails, as it should, while another lab's file is still there.
            let _ = std::fs::remove_dir(ETC_NETNS);
        }
    }
}
