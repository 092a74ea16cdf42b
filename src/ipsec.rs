//! Encryption between hosts (`--opt encrypt=ipsec`): Open vSwitch's own IPsec for the mesh's
//! tunnels. ovs-monitor-ipsec (package `openvswitch-ipsec`) watches the tunnel interfaces that
//! carry `options:psk` and configures the IKE daemon (strongSwan's `ipsec` starter and charon)
//! for them: one transport-mode ESP policy per peer and direction covering GENEVE's UDP 6081,
//! installed as a trap (`auto=route`), so a tunnel packet sent before its security association
//! is up is held back by the kernel rather than sent in clear.
//!
//! What this module knows, apart from the OVS rows ([`crate::ovs::plan`] puts the key on the
//! tunnels) and the firewall's guard ([`crate::firewall`] drops clear GENEVE to and from
//! encrypted peers whatever the IKE daemon does):
//! * [`Encryption`]: what a network's options ask for, checked as a whole ([`from_options`]);
//! * [`read_psk`]: reading the pre-shared key from its root-only file, the only place the key
//!   is ever read from;
//! * [`check_software`]: that this host runs what the tunnels need, naming the package when not;
//! * [`parse_xfrm_state`], [`peer_security`]: whether the kernel holds security associations
//!   both ways for a peer (`status`). Read from the kernel, not from ovs-monitor-ipsec, whose
//!   `tunnels/show` prints the key.

use std::fmt;
use std::fs;
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The only GENEVE port ovs-monitor-ipsec writes IPsec policies for (its strongSwan and
/// Libreswan templates name `udp/6081`).
pub const IPSEC_GENEVE_PORT: u16 = 6081;

/// ESP's worst case on top of the tunnel packet, with the cipher ovs-monitor-ipsec configures
/// (AES-GCM with a 16-byte ICV) in transport mode: SPI and sequence number (8), IV (8), up to 3
/// bytes of padding, pad length and next header (2), ICV (16); rounded up to 40.
pub const ESP_OVERHEAD: u32 = 40;

/// The longest pre-shared key accepted (strongSwan has no limit; a bound keeps a wrong file,
/// a certificate given as the key say, from being taken).
pub const MAX_PSK_LEN: usize = 1024;
/// The shortest: a key a person could guess is no key.
pub const MIN_PSK_LEN: usize = 16;

/// Where ovs-monitor-ipsec is installed by Debian's `openvswitch-ipsec`.
pub const MONITOR_SCRIPT: &str = "usr/share/openvswitch/scripts/ovs-monitor-ipsec";
/// The `ipsec` command ovs-monitor-ipsec drives strongSwan (or Libreswan) with.
pub const IKE_COMMAND: &str = "usr/sbin/ipsec";
/// ovs-monitor-ipsec's pidfile, in OVS's run directory.
pub const MONITOR_PIDFILE: &str = "ovs-monitor-ipsec.pid";

/// A pre-shared key. Never printed: `Debug` and `Display` show only that there is one, so
/// no log line or error message can carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(String);

impl Psk {
    /// The key, for the one place that needs it: the tunnel's `options:psk` in OVSDB.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// What a network's tunnels are protected with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// Clear text (`encrypt=none`, the default).
    None,
    /// OVS IPsec with a pre-shared key read from `psk_file`.
    IpsecPsk { psk_file: PathBuf, psk: Psk },
}

impl Encryption {
    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Encryption::None)
    }

    /// The key the tunnels carry, when there is one.
    pub fn psk(&self) -> Option<&Psk> {
        match self {
            Encryption::None => None,
            Encryption::IpsecPsk { psk, .. } => Some(psk),
        }
    }
}

/// What the options ask for, before the key is read: `encrypt` and the key file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    None,
    IpsecPsk { psk_file: PathBuf },
}

/// Checks `encrypt`, `psk_file` and `dst_port` together (each was parsed on its own).
pub fn from_options(
    encrypt_ipsec: bool,
    psk_file: Option<&Path>,
    dst_port: u16,
) -> Result<Requested> {
    if !encrypt_ipsec {
        if let Some(path) = psk_file {
            bail!(
                "invalid option psk_file={:?}: a key file is only used with encrypt=ipsec \
                 (add --opt encrypt=ipsec, or drop psk_file)",
                path.display().to_string()
            );
        }
        return Ok(Requested::None);
    }
    let Some(path) = psk_file else {
        bail!(
            "invalid option encrypt=\"ipsec\": needs psk_file=PATH, a root-only file (mode 0600) \
             holding the pre-shared key, the same on every host"
        );
    };
    if dst_port != IPSEC_GENEVE_PORT {
        bail!(
            "invalid option dst_port={dst_port:?}: with encrypt=ipsec the tunnels must use UDP \
             {IPSEC_GENEVE_PORT}, the only GENEVE port OVS IPsec (ovs-monitor-ipsec) protects"
        );
    }
    Ok(Requested::IpsecPsk {
        psk_file: path.to_path_buf(),
    })
}

/// Refuses a key file others may read or replace: it must be a regular file owned by root
/// (or by the user running the plugin) with no permission bits for group or others.
pub fn check_key_file_metadata(
    path: &Path,
    is_file: bool,
    owner: u32,
    mode: u32,
    my_uid: u32,
) -> Result<()> {
    let shown = path.display();
    if !is_file {
        bail!("the key file {shown} (option psk_file) is not a regular file");
    }
    if owner != 0 && owner != my_uid {
        bail!(
            "the key file {shown} (option psk_file) is owned by uid {owner}, not root: \
             chown root:root {shown}"
        );
    }
    if mode & 0o077 != 0 {
        bail!(
            "the key file {shown} (option psk_file) is readable or writable by group or others \
             (mode {:04o}): chmod 600 {shown}",
            mode & 0o7777
        );
    }
    Ok(())
}

/// Checks a key as read from its file: one line (a trailing newline is dropped), printable
/// ASCII without `"` (ovs-monitor-ipsec quotes it in ipsec.secrets), of a sensible length.
pub fn check_key_text(path: &Path, text: &str) -> Result<Psk> {
    let shown = path.display();
    let key = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if key.is_empty() {
        bail!("the key file {shown} (option psk_file) is empty");
    }
    if key.contains(['\n', '\r']) {
        bail!("the key file {shown} (option psk_file) must hold the key on a single line");
    }
    if !key.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"') {
        bail!(
            "the key file {shown} (option psk_file) holds characters a key may not have: \
             printable ASCII only, without '\"' (e.g. the output of `openssl rand -base64 48`)"
        );
    }
    if key.len() < MIN_PSK_LEN || key.len() > MAX_PSK_LEN {
        bail!(
            "the key in {shown} (option psk_file) is {} characters long: it must have \
             {MIN_PSK_LEN} to {MAX_PSK_LEN} (e.g. `openssl rand -base64 48`)",
            key.len()
        );
    }
    Ok(Psk(key.to_string()))
}

/// Reads the pre-shared key from `path`, after checking that only root can read it.
pub fn read_psk(path: &Path) -> Result<Psk> {
    let shown = path.display();
    let meta = fs::metadata(path).with_context(|| {
        format!(
            "cannot read the key file {shown} (option psk_file): create it on this host, mode 0600"
        )
    })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let my_uid = unsafe { libc::geteuid() };
    check_key_file_metadata(path, meta.is_file(), meta.uid(), meta.mode(), my_uid)?;
    let mut text = String::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_PSK_LEN as u64 + 3).read_to_string(&mut text))
        .with_context(|| format!("cannot read the key file {shown} (option psk_file)"))?;
    check_key_text(path, &text)
}

/// Whether a process `pid` exists (signal 0 reaches it).
fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Checks that this host has OVS IPsec running: ovs-monitor-ipsec installed and running (its
/// pidfile in `ovs_rundir` names a live process), and an IKE daemon's `ipsec` command
/// installed. `root` is `/` but in tests.
pub fn check_software(root: &Path, ovs_rundir: &Path) -> Result<()> {
    if !root.join(MONITOR_SCRIPT).exists() {
        bail!(
            "encrypt=ipsec needs OVS IPsec, and /{MONITOR_SCRIPT} is missing: install the \
             package openvswitch-ipsec"
        );
    }
    if !root.join(IKE_COMMAND).exists() {
        bail!(
            "encrypt=ipsec needs an IKE daemon, and /{IKE_COMMAND} is missing: install the \
             packages strongswan-starter and strongswan-charon (or libreswan)"
        );
    }
    let pidfile = ovs_rundir.join(MONITOR_PIDFILE);
    let pid = fs::read_to_string(&pidfile)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok());
    match pid {
        Some(pid) if alive(pid) => Ok(()),
        _ => bail!(
            "encrypt=ipsec needs ovs-monitor-ipsec running ({} names no live process): \
             systemctl start openvswitch-ipsec",
            pidfile.display()
        ),
    }
}

/// One ESP security association of the kernel (`ip xfrm state`): from `src` to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EspState {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spi: u32,
}

/// Parses `ip xfrm state`: the ESP states with an SPI. The larval states the kernel creates
/// while it waits for the IKE daemon (SPI 0) are not security associations and are left out.
/// Key material (`aead ...` lines) is never read.
pub fn parse_xfrm_state(text: &str) -> Vec<EspState> {
    let mut states = Vec::new();
    let mut endpoints: Option<(IpAddr, IpAddr)> = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["src", src, "dst", dst, ..] if !line.starts_with(char::is_whitespace) => {
                endpoints = src.parse().ok().zip(dst.parse().ok());
            }
            ["proto", "esp", "spi", spi, ..] => {
                let spi = spi
                    .strip_prefix("0x")
                    .and_then(|h| u32::from_str_radix(h.split('(').next().unwrap_or(h), 16).ok());
                if let (Some((src, dst)), Some(spi)) = (endpoints, spi) {
                    if spi != 0 {
                        states.push(EspState { src, dst, spi });
                    }
                }
            }
            _ => {}
        }
    }
    states
}

/// The IPsec state of the tunnels to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerSecurity {
    /// ESP security associations both ways: the tunnel's traffic crosses encrypted.
    Established,
    /// Only one direction has one: the other host's IKE daemon has not finished (or refuses).
    OneWay,
    /// None: nothing crosses (the firewall drops clear GENEVE), typically a wrong key, the
    /// peer not (yet) encrypting, or the IKE daemon down.
    NoSecurityAssociation,
}

impl PeerSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerSecurity::Established => "established",
            PeerSecurity::OneWay => "one-way",
            PeerSecurity::NoSecurityAssociation => "no-sa",
        }
    }
}

/// What `states` hold for `peer`.
pub fn peer_security(states: &[EspState], peer: IpAddr) -> PeerSecurity {
    let out = states.iter().any(|s| s.dst == peer);
    let back = states.iter().any(|s| s.src == peer);
    match (out, back) {
        (true, true) => PeerSecurity::Established,
        (false, false) => PeerSecurity::NoSecurityAssociation,
        _ => PeerSecurity::OneWay,
    }
}

#[cfg(test)]
mod tests;
