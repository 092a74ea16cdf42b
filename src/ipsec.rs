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
/// The IKE daemons' pidfiles (under `/`), each with the daemon's name: strongSwan's charon
/// (started by its `ipsec` starter) and Libreswan's pluto. ovs-monitor-ipsec running is not
/// enough: it only writes the daemon's configuration, and without a daemon no security
/// association ever comes up and every encrypted tunnel stays silent.
pub const IKE_DAEMON_PIDFILES: [(&str, &str); 2] = [
    ("var/run/charon.pid", "charon (strongSwan)"),
    ("run/pluto/pluto.pid", "pluto (Libreswan)"),
];

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

/// The host's certificate, its private key and the CA that signs every host's certificate
/// (options `cert`, `key`, `ca`): OVS keeps them host-wide, in `Open_vSwitch.other_config`
/// (`certificate`, `private_key`, `ca_cert`), so every encrypted network of a host uses the same
/// three files. Only the paths are held: the key stays in its file, which the IKE daemon reads.
///
/// A peer is recognised by its certificate's CN, which must be its underlay address (the
/// address in `peers`), also carried as an IP subjectAltName because strongSwan matches an
/// address identity against those: so `peers` alone says whom to trust, with no second list
/// of names to keep in step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPki {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub ca_cert: PathBuf,
}

/// The `Open_vSwitch.other_config` keys ovs-monitor-ipsec reads the host's PKI from, in the
/// order certificate, private key, CA.
pub const PKI_OTHER_CONFIG_KEYS: [&str; 3] = ["certificate", "private_key", "ca_cert"];

impl HostPki {
    /// The `Open_vSwitch.other_config` entries naming the three files.
    pub fn other_config(&self) -> [(&'static str, String); 3] {
        [
            (
                PKI_OTHER_CONFIG_KEYS[0],
                self.certificate.display().to_string(),
            ),
            (
                PKI_OTHER_CONFIG_KEYS[1],
                self.private_key.display().to_string(),
            ),
            (PKI_OTHER_CONFIG_KEYS[2], self.ca_cert.display().to_string()),
        ]
    }
}

/// What a network's tunnels are protected with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// Clear text (`encrypt=none`, the default).
    None,
    /// OVS IPsec with a pre-shared key read from `psk_file`.
    IpsecPsk { psk_file: PathBuf, psk: Psk },
    /// OVS IPsec with CA-signed certificates (`cert`, `key`, `ca`).
    IpsecCert(HostPki),
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
            Encryption::IpsecCert(_) => None,
        }
    }

    /// The host's certificate files, when the tunnels authenticate with certificates.
    pub fn host_pki(&self) -> Option<&HostPki> {
        match self {
            Encryption::IpsecCert(pki) => Some(pki),
            _ => None,
        }
    }
}

/// What the options ask for, before any file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    None,
    IpsecPsk { psk_file: PathBuf },
    IpsecCert(HostPki),
}

/// The credential options as given: `psk_file`, or `cert`, `key` and `ca`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub psk_file: Option<&'a Path>,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
    pub ca: Option<&'a Path>,
}

impl<'a> Credentials<'a> {
    /// The options that are set, by name, in the order psk_file, cert, key, ca.
    fn given(&self) -> Vec<(&'static str, &'a Path)> {
        [
            ("psk_file", self.psk_file),
            ("cert", self.cert),
            ("key", self.key),
            ("ca", self.ca),
        ]
        .into_iter()
        .filter_map(|(name, path)| path.map(|p| (name, p)))
        .collect()
    }
}

/// Checks `encrypt`, the credential options and `dst_port` together (each was parsed on its
/// own): with `encrypt=ipsec` exactly one way to authenticate, a pre-shared key or all three
/// certificate files; without it, none of them.
pub fn from_options(
    encrypt_ipsec: bool,
    credentials: Credentials<'_>,
    dst_port: u16,
) -> Result<Requested> {
    let given = credentials.given();
    if !encrypt_ipsec {
        if let Some((name, path)) = given.first() {
            bail!(
                "invalid option {name}={:?}: it is only used with encrypt=ipsec \
                 (add --opt encrypt=ipsec, or drop {name})",
                path.display().to_string()
            );
        }
        return Ok(Requested::None);
    }
    if dst_port != IPSEC_GENEVE_PORT {
        bail!(
            "invalid option dst_port={dst_port:?}: with encrypt=ipsec the tunnels must use UDP \
             {IPSEC_GENEVE_PORT}, the only GENEVE port OVS IPsec (ovs-monitor-ipsec) protects"
        );
    }
    let pki_given: Vec<&str> = given
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| *name != "psk_file")
        .collect();
    if let Some(psk_file) = credentials.psk_file {
        if let Some(name) = pki_given.first() {
            bail!(
                "invalid option psk_file={:?}: a pre-shared key and certificates ({name}) are \
                 alternatives: give either psk_file, or cert, key and ca",
                psk_file.display().to_string()
            );
        }
        return Ok(Requested::IpsecPsk {
            psk_file: psk_file.to_path_buf(),
        });
    }
    match (credentials.cert, credentials.key, credentials.ca) {
        (Some(cert), Some(key), Some(ca)) => Ok(Requested::IpsecCert(HostPki {
            certificate: cert.to_path_buf(),
            private_key: key.to_path_buf(),
            ca_cert: ca.to_path_buf(),
        })),
        (None, None, None) => bail!(
            "invalid option encrypt=\"ipsec\": needs psk_file=PATH, a root-only file (mode 0600) \
             holding the pre-shared key, the same on every host; or cert=PATH, key=PATH and \
             ca=PATH, this host's certificate, its private key and the CA's certificate"
        ),
        _ => {
            let (name, path) = given[0];
            let missing: Vec<&str> = ["cert", "key", "ca"]
                .into_iter()
                .filter(|n| !pki_given.contains(n))
                .collect();
            bail!(
                "invalid option {name}={:?}: certificates need all three of cert, key and ca; \
                 missing: {}",
                path.display().to_string(),
                missing.join(", ")
            )
        }
    }
}

/// Refuses a key file others may read or replace: it must be a regular file owned by root
/// (or by the user running the plugin) with no permission bits for group or others. `option`
/// names the option that gave the path (`psk_file`, `key`), for the message.
pub fn check_key_file_metadata(
    option: &str,
    path: &Path,
    is_file: bool,
    owner: u32,
    mode: u32,
    my_uid: u32,
) -> Result<()> {
    let shown = path.display();
    if !is_file {
        bail!("the key file {shown} (option {option}) is not a regular file");
    }
    if owner != 0 && owner != my_uid {
        bail!(
            "the key file {shown} (option {option}) is owned by uid {owner}, not root: \
             chown root:root {shown}"
        );
    }
    if mode & 0o077 != 0 {
        bail!(
            "the key file {shown} (option {option}) is readable or writable by group or others \
             (mode {:04o}): chmod 600 {shown}",
            mode & 0o7777
        );
    }
    Ok(())
}

/// What a PEM file given to the certificate options must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemKind {
    /// `cert`, `ca`: an X.509 certificate (`BEGIN CERTIFICATE`).
    Certificate,
    /// `key`: an unencrypted private key (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY`...);
    /// the IKE daemon starts unattended, so it could not ask for a passphrase.
    PrivateKey,
}

/// The largest certificate or key file read: a chain of a few certificates is far below it.
pub const MAX_PEM_LEN: u64 = 256 * 1024;

/// Checks that `text`, read from `path` (option `option`), is PEM of `kind`. Only the
/// `-----BEGIN ...-----` lines are looked at, and no error ever quotes the file.
pub fn check_pem_text(option: &str, path: &Path, text: &str, kind: PemKind) -> Result<()> {
    let shown = path.display();
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("-----BEGIN "))
        .filter_map(|l| l.strip_suffix("-----"))
        .collect();
    if labels.is_empty() {
        bail!(
            "the file {shown} (option {option}) is not PEM (no \"-----BEGIN ...-----\" line): \
             give the PEM file, e.g. as ovs-pki writes it"
        );
    }
    match kind {
        PemKind::Certificate => {
            if !labels.contains(&"CERTIFICATE") {
                bail!(
                    "the file {shown} (option {option}) holds no certificate (PEM \
                     \"BEGIN CERTIFICATE\"; found: {})",
                    labels.join(", ")
                );
            }
        }
        PemKind::PrivateKey => {
            if labels.iter().any(|l| l.contains("ENCRYPTED")) {
                bail!(
                    "the private key in {shown} (option {option}) is encrypted: the IKE daemon \
                     cannot ask for its passphrase; store it unencrypted, mode 0600 \
                     (openssl pkey -in OLD -out {shown})"
                );
            }
            if !labels.iter().any(|l| l.ends_with("PRIVATE KEY")) {
                bail!(
                    "the file {shown} (option {option}) holds no private key (PEM \
                     \"BEGIN PRIVATE KEY\"; found: {})",
                    labels.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Reads a PEM file of the certificate options (at most [`MAX_PEM_LEN`] bytes).
fn read_pem(option: &str, path: &Path) -> Result<String> {
    let shown = path.display();
    let mut text = String::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_LEN).read_to_string(&mut text))
        .with_context(|| {
            format!("cannot read the file {shown} (option {option}): create it on this host")
        })?;
    Ok(text)
}

/// Checks the three files of the certificate options: each readable PEM of its kind, and the
/// private key a root-only file like `psk_file`.
pub fn check_pki_files(pki: &HostPki) -> Result<()> {
    for (option, path) in [("cert", &pki.certificate), ("ca", &pki.ca_cert)] {
        check_pem_text(option, path, &read_pem(option, path)?, PemKind::Certificate)?;
    }
    let key = &pki.private_key;
    let meta = fs::metadata(key).with_context(|| {
        format!(
            "cannot read the key file {} (option key): create it on this host, mode 0600",
            key.display()
        )
    })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let my_uid = unsafe { libc::geteuid() };
    check_key_file_metadata("key", key, meta.is_file(), meta.uid(), meta.mode(), my_uid)?;
    check_pem_text("key", key, &read_pem("key", key)?, PemKind::PrivateKey)
}

/// Refuses a pre-shared key on a host whose OVS has certificate settings
/// (`Open_vSwitch.other_config`, as in [`check_host_pki`]): ovs-monitor-ipsec then refuses every
/// tunnel with a key.
pub fn check_no_host_pki(observed: &[Option<&str>; 3]) -> Result<()> {
    if let Some((key, path)) = PKI_OTHER_CONFIG_KEYS
        .iter()
        .zip(observed)
        .find_map(|(k, v)| v.map(|v| (k, v)))
    {
        bail!(
            "invalid option psk_file: this host's OVS IPsec uses certificates \
             (Open_vSwitch other_config:{key}={path:?}) and then refuses tunnels with a \
             pre-shared key; give this network cert, key and ca like the others, or remove the \
             certificate settings when no network uses them (ovs-vsctl remove Open_vSwitch . \
             other_config certificate private_key ca_cert)"
        );
    }
    Ok(())
}

/// Refuses certificate files other than those this host's OVS already uses: OVS has one
/// certificate, key and CA for every tunnel of the host (`observed`: the
/// `Open_vSwitch.other_config` entries of [`PKI_OTHER_CONFIG_KEYS`], as set). `Ok(true)`: they
/// must be set, `Ok(false)`: they already are.
pub fn check_host_pki(pki: &HostPki, observed: &[Option<&str>; 3]) -> Result<bool> {
    if observed.iter().all(Option::is_none) {
        return Ok(true);
    }
    let wanted = pki.other_config();
    if wanted
        .iter()
        .zip(observed)
        .all(|((_, want), seen)| *seen == Some(want.as_str()))
    {
        return Ok(false);
    }
    let shown = |seen: &Option<&str>| seen.map_or("(unset)".to_string(), |s| format!("{s:?}"));
    bail!(
        "this host's OVS IPsec already uses other certificate files (Open_vSwitch other_config: \
         certificate={}, private_key={}, ca_cert={}), and OVS has one set per host: give the same \
         cert, key and ca as the host's other encrypted networks (or, to replace them for all, \
         ovs-vsctl set Open_vSwitch . other_config:certificate=... other_config:private_key=... \
         other_config:ca_cert=..., then create again)",
        shown(&observed[0]),
        shown(&observed[1]),
        shown(&observed[2]),
    )
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
    check_key_file_metadata(
        "psk_file",
        path,
        meta.is_file(),
        meta.uid(),
        meta.mode(),
        my_uid,
    )?;
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

/// Whether the pidfile at `path` names a live process.
fn pidfile_alive(path: &Path) -> bool {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .is_some_and(alive)
}

/// Checks that this host has OVS IPsec running: ovs-monitor-ipsec installed and running (its
/// pidfile in `ovs_rundir` names a live process), an IKE daemon's `ipsec` command installed,
/// and the IKE daemon itself running (one of [`IKE_DAEMON_PIDFILES`] names a live process).
/// `root` is `/` but in tests.
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
    if !pidfile_alive(&pidfile) {
        bail!(
            "encrypt=ipsec needs ovs-monitor-ipsec running ({} names no live process): \
             systemctl start openvswitch-ipsec",
            pidfile.display()
        );
    }
    if !IKE_DAEMON_PIDFILES
        .iter()
        .any(|(path, _)| pidfile_alive(&root.join(path)))
    {
        let named: Vec<String> = IKE_DAEMON_PIDFILES
            .iter()
            .map(|(path, daemon)| format!("{daemon}: /{path}"))
            .collect();
        bail!(
            "encrypt=ipsec needs the IKE daemon running, and none is ({} name no live \
             process): without it no security association comes up and the tunnels carry \
             nothing; systemctl restart openvswitch-ipsec (ovs-monitor-ipsec starts the daemon), \
             or ipsec start",
            named.join(", ")
        );
    }
    Ok(())
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
