//! The TLS transport of `ssl:` remotes, set up as Open vSwitch's own clients set it up.
//!
//! The key, certificate and CA certificate are the ones this host's Open vSwitch keeps in its
//! `SSL` table (`ovs-vsctl set-ssl KEY CERT CA`), which ovn-controller already uses towards the
//! southbound database: the operator configures them once per host, for every OVSDB client of
//! it. The server is verified as OVS verifies it: its certificate must chain to that CA, and no
//! host name is checked (ovs-pki's certificates name a switch or a controller, not an address).
//! The client presents its own certificate, which the OVN databases require.
//!
//! Built on the `openssl` crate: it is the library OVS and OVN themselves link, so the files
//! `ovs-pki` makes load here exactly as they load in ovsdb-server and ovn-controller (PEM keys of
//! any type, certificate chains in one file), and "chain to this CA, no name check" is its plain
//! `SSL_VERIFY_PEER` without extra code of ours; rustls would need a verifier of our own for it.
//! Plain `SslContext` rather than `SslConnector`, whose defaults trust the system's CAs and
//! check a host name, neither of which an OVSDB client does.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use openssl::pkey::PKey;
use openssl::ssl::{
    HandshakeError, Ssl, SslContext, SslMethod, SslStream, SslVerifyMode, SslVersion,
};
use openssl::x509::{X509VerifyResult, X509};

/// The command that records the files, for every message that asks the operator to fix them.
pub(crate) const SET_SSL: &str = "ovs-vsctl set-ssl PRIVATE_KEY CERTIFICATE CA_CERT";

/// The files of this host's OVSDB client identity, as recorded in its Open vSwitch `SSL` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `SSL.private_key`: this host's PEM private key.
    pub private_key: PathBuf,
    /// `SSL.certificate`: this host's PEM certificate (optionally followed by its chain).
    pub certificate: PathBuf,
    /// `SSL.ca_cert`: the PEM certificate(s) of the CA that servers' certificates chain to.
    pub ca_cert: PathBuf,
}

/// Reads one of the files, naming it, the column it came from and the fix.
fn read_file(path: &Path, what: &str, column: &str, remote: &str) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| {
        format!(
            "{remote}: cannot read {what} {} (SSL table, column {column}): install the file \
             there or record where it is with `{SET_SSL}`",
            path.display()
        )
    })
}

/// The TLS context of `files`: this host's key and certificate, the CA's certificates as the
/// only trusted roots, peer verification on.
fn context(files: &TlsFiles, remote: &str) -> Result<SslContext> {
    let key_pem = read_file(&files.private_key, "the private key", "private_key", remote)?;
    let key = PKey::private_key_from_pem(&key_pem).map_err(|err| {
        anyhow!(
            "{remote}: the private key {} (SSL table, column private_key) is not a PEM private \
             key ({err}); record the right file with `{SET_SSL}`",
            files.private_key.display()
        )
    })?;
    let cert_pem = read_file(&files.certificate, "the certificate", "certificate", remote)?;
    let chain = X509::stack_from_pem(&cert_pem).unwrap_or_default();
    let Some((leaf, intermediates)) = chain.split_first() else {
        bail!(
            "{remote}: the certificate {} (SSL table, column certificate) holds no PEM \
             certificate; record the right file with `{SET_SSL}`",
            files.certificate.display()
        );
    };
    let ca_pem = read_file(&files.ca_cert, "the CA certificate", "ca_cert", remote)?;
    let cas = X509::stack_from_pem(&ca_pem).unwrap_or_default();
    if cas.is_empty() {
        bail!(
            "{remote}: the CA certificate {} (SSL table, column ca_cert) holds no PEM \
             certificate; record the CA that signed the OVN databases' certificates with \
             `{SET_SSL}`",
            files.ca_cert.display()
        );
    }

    let openssl = |err: openssl::error::ErrorStack| anyhow!("{remote}: OpenSSL: {err}");
    let mut builder = SslContext::builder(SslMethod::tls_client()).map_err(openssl)?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(openssl)?;
    builder.set_private_key(&key).map_err(openssl)?;
    builder.set_certificate(leaf).map_err(openssl)?;
    for extra in intermediates {
        builder
            .add_extra_chain_cert(extra.clone())
            .map_err(openssl)?;
    }
    builder.check_private_key().map_err(|err| {
        anyhow!(
            "{remote}: the private key {} does not belong to the certificate {} ({err}); \
             record a matching pair with `{SET_SSL}`",
            files.private_key.display(),
            files.certificate.display()
        )
    })?;
    for ca in cas {
        builder.cert_store_mut().add_cert(ca).map_err(openssl)?;
    }
    builder.set_verify(SslVerifyMode::PEER);
    Ok(builder.build())
}

/// Connects to `address` over TCP and makes the TLS handshake, each within `timeout`. The error
/// says which side refused what: a server whose certificate does not chain to our CA, or a
/// handshake the server broke off (often: it does not trust our certificate).
pub fn connect(
    address: &SocketAddr,
    remote: &str,
    files: &TlsFiles,
    timeout: Duration,
) -> Result<SslStream<TcpStream>> {
    let context = context(files, remote)?;
    let timeout = timeout.max(Duration::from_millis(1));
    let tcp = TcpStream::connect_timeout(address, timeout)
        .with_context(|| format!("cannot connect to the OVSDB server at {remote}"))?;
    // Bounds the handshake; the client sets its own deadlines for every request afterwards.
    tcp.set_read_timeout(Some(timeout))
        .and_then(|()| tcp.set_write_timeout(Some(timeout)))
        .and_then(|()| tcp.set_nodelay(true))
        .with_context(|| format!("cannot set up the socket towards {remote}"))?;
    let ssl = Ssl::new(&context).map_err(|err| anyhow!("{remote}: OpenSSL: {err}"))?;
    match ssl.connect(tcp) {
        Ok(stream) => Ok(stream),
        Err(HandshakeError::Failure(mid)) => {
            let verified = mid.ssl().verify_result();
            if verified != X509VerifyResult::OK {
                bail!(
                    "{remote}: the server's certificate does not verify against the CA \
                     certificate {} (SSL table, column ca_cert): {}; that file must hold the CA \
                     that signed the OVN databases' certificates: record it with `{SET_SSL}`",
                    files.ca_cert.display(),
                    verified.error_string()
                );
            }
            bail!(
                "{remote}: the TLS handshake failed ({}); if the server refused this host's \
                 certificate {} (SSL table, column certificate), have it signed by the CA the \
                 OVN databases trust and record it with `{SET_SSL}`",
                describe(mid.error()),
                files.certificate.display()
            )
        }
        Err(HandshakeError::WouldBlock(_)) => bail!(
            "{remote}: no TLS handshake within {timeout:?}: is it an ssl: (not tcp:) listener?"
        ),
        Err(HandshakeError::SetupFailure(err)) => bail!("{remote}: OpenSSL: {err}"),
    }
}

/// An OpenSSL error as one line: the SSL reasons, else the I/O error, else its code.
fn describe(err: &openssl::ssl::Error) -> String {
    if let Some(stack) = err.ssl_error() {
        return reasons(stack);
    }
    match err.io_error() {
        Some(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            "the server closed the connection".to_string()
        }
        Some(io) => io.to_string(),
        None => format!("{err}"),
    }
}

/// The reasons of an OpenSSL error stack ("tlsv1 alert unknown ca"), without OpenSSL's file
/// and line numbers.
fn reasons(stack: &openssl::error::ErrorStack) -> String {
    let reasons: Vec<String> = stack
        .errors()
        .iter()
        .map(|e| e.reason().map_or_else(|| e.to_string(), str::to_string))
        .collect();
    if reasons.is_empty() {
        stack.to_string()
    } else {
        reasons.join("; ")
    }
}

/// Why a TLS stream failed after the handshake, for the error of a read or write: the server's
/// alert when it sent one, else the I/O error. `err` is the `io::Error` of the stream or the
/// OpenSSL error inside it (which is what serde_json gives as its error's source).
pub(super) fn failure(err: &(dyn std::error::Error + 'static)) -> String {
    let inner = match err.downcast_ref::<io::Error>() {
        Some(io) => io
            .get_ref()
            .map(|e| e as &(dyn std::error::Error + 'static)),
        None => Some(err),
    };
    inner
        .and_then(|e| e.downcast_ref::<openssl::ssl::Error>())
        .map_or_else(|| err.to_string(), describe)
}

/// The error of a TLS connection that broke on its first request or reply, `why` being what the
/// read or write saw: most often the server refusing this host's certificate, which a TLS 1.3
/// server does only after the handshake, so that the client sees an alert, a reset or a broken
/// pipe depending on timing.
pub(super) fn ended_after_handshake(server: &str, why: &str) -> anyhow::Error {
    anyhow!(
        "{server} ended the TLS connection ({why}): a server that does not trust this host's \
         certificate does so right after the handshake; the certificate in this host's SSL \
         table (`ovs-vsctl get-ssl`) must be signed by the CA the OVN databases trust \
         (`{SET_SSL}`)"
    )
}
