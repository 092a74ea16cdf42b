//! The live facts of this host that `status` and `gc` hold the database against: is
//! ovs-vswitchd running, which namespaces still exist, which links exist and where the peers
//! of the plugin's veths are.
//!
//! Gathered once per command, without subprocesses: `/proc`, `statfs`, netlink.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::netlink::{LinkSummary, Netlink};

/// `statfs` magic of the namespace filesystem: a live namespace file (bind mount) has it.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Where rootful podman (and `ip netns`) mount network namespaces.
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";

/// Whether ovs-vswitchd runs, as far as its pidfile says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vswitchd {
    Running { pid: i32 },
    NotRunning { why: String },
}

impl Vswitchd {
    pub fn is_running(&self) -> bool {
        matches!(self, Vswitchd::Running { .. })
    }
}

/// Where the other end of one of the plugin's host veths is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPlace {
    /// In the host's own namespace: no container has it.
    HostNamespace,
    /// In a namespace mounted at this path: a container podman runs.
    Mounted(PathBuf),
    /// In a namespace that is mounted nowhere podman mounts them: no running container.
    Unmounted,
}

/// The facts, gathered by [`gather`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostView {
    pub vswitchd: Option<Vswitchd>,
    /// Every link of the host's namespace.
    pub links: Vec<LinkSummary>,
    /// Of the namespace paths asked about, those that are live namespaces.
    pub live_netns: BTreeSet<String>,
    /// For every veth whose name is a plugin host veth name: where its peer is.
    pub peers: BTreeMap<String, PeerPlace>,
}

impl HostView {
    /// Whether a link of this name exists in the host's namespace.
    pub fn has_link(&self, name: &str) -> bool {
        self.links.iter().any(|l| l.name == name)
    }

    pub fn netns_alive(&self, path: &str) -> bool {
        self.live_netns.contains(path)
    }
}

pub use crate::naming::is_host_veth_name;

/// Whether `path` is a live network namespace (a bind mount of one, or a `/proc` link).
pub fn is_netns(path: &Path) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct we pass and reads the NUL-terminated path.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut fs) };
    #[allow(clippy::unnecessary_cast)]
    let magic = fs.f_type as i64;
    rc == 0 && magic == NSFS_MAGIC
}

/// Reads `ovs-vswitchd.pid` in `rundir` and checks that the process is ovs-vswitchd.
pub fn vswitchd_state(rundir: &Path) -> Vswitchd {
    let pidfile = rundir.join("ovs-vswitchd.pid");
    let text = match std::fs::read_to_string(&pidfile) {
        Ok(text) => text,
        Err(err) => {
            return Vswitchd::NotRunning {
                why: format!("no pidfile {} ({err})", pidfile.display()),
            }
        }
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return Vswitchd::NotRunning {
            why: format!("{} holds no pid", pidfile.display()),
        };
    };
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) if comm.trim() == "ovs-vswitchd" => Vswitchd::Running { pid },
        _ => Vswitchd::NotRunning {
            why: format!("pid {pid} of {} is not running", pidfile.display()),
        },
    }
}

/// Gathers the facts: links of this namespace, which of `netns_paths` are alive, and where
/// the peers of the plugin's veths are. `netns_dirs` are the directories whose namespaces
/// count as containers' (the directories of `netns_paths` are added).
pub fn gather(rundir: &Path, netns_paths: &[String], netns_dirs: &[PathBuf]) -> Result<HostView> {
    let netlink = Netlink::open()?;
    // The link dump first: it makes the kernel give every peer namespace an id, which the
    // namespace files are then matched against.
    let links = netlink.links()?;
    let live_netns = netns_paths
        .iter()
        .filter(|p| is_netns(Path::new(p)))
        .cloned()
        .collect();

    let mut dirs: BTreeSet<PathBuf> = netns_dirs.iter().cloned().collect();
    dirs.extend(
        netns_paths
            .iter()
            .filter_map(|p| Path::new(p).parent().map(Path::to_path_buf)),
    );
    let mut candidates: BTreeSet<PathBuf> = netns_paths.iter().map(PathBuf::from).collect();
    for dir in &dirs {
        if let Ok(entries) = std::fs::read_dir(dir) {
            candidates.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    let mut mounted: BTreeMap<i32, PathBuf> = BTreeMap::new();
    for path in candidates {
        if !is_netns(&path) {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if let Ok(Some(id)) = netlink.netns_id(&file) {
            mounted.entry(id).or_insert(path);
        }
    }
    let peers = links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("veth") && is_host_veth_name(&l.name))
        .map(|l| {
            let place = match l.peer_netnsid {
                None => PeerPlace::HostNamespace,
                Some(id) => match mounted.get(&id) {
                    Some(path) => PeerPlace::Mounted(path.clone()),
                    None => PeerPlace::Unmounted,
                },
            };
            (l.name.clone(), place)
        })
        .collect();
    Ok(HostView {
        vswitchd: Some(vswitchd_state(rundir)),
        links,
        live_netns,
        peers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names() {
        assert!(is_host_veth_name(&crate::naming::host_veth_name("n", "c")));
        for bad in [
            "gv0123456789ab",
            "gv0123456789abcd",
            "gv0123456789abG",
            "gx0123456789abc",
            "eth0",
        ] {
            assert!(!is_host_veth_name(bad), "{bad}");
        }
    }

    #[test]
    fn namespace_files_are_told_from_others() {
        assert!(is_netns(Path::new("/proc/self/ns/net")));
        assert!(!is_netns(Path::new("/proc/self/status")));
        assert!(!is_netns(Path::new("/nonexistent/ns")));
    }

    #[test]
    fn vswitchd_without_pidfile_is_not_running() {
        let state = vswitchd_state(Path::new("/nonexistent-rundir"));
        assert!(!state.is_running());
    }
}
