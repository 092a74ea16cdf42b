//! A blocking OVSDB JSON-RPC client over a unix socket, TCP or TLS ([`super::tls`]).
//!
//! The plugin makes a handful of short transactions per invocation, so a blocking client on
//! a blocking socket is all it needs: no async runtime, no background thread, no monitor.
//!
//! The wire format (RFC 7047 section 4) is JSON-RPC 1.0 with the messages written back to back
//! and no framing, so messages are read one at a time with serde_json's streaming deserializer
//! over a buffered socket. While waiting for a reply the client answers the server's `echo`
//! requests (ovsdb-server drops clients that do not) and ignores notifications. Every read and
//! write has a deadline so a hung server turns into an error instead of a hung plugin; after
//! any I/O or protocol error the connection is left unusable, since the stream may then be cut
//! in the middle of a message.

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};

use openssl::ssl::SslStream;

use super::ops::{self, wait_timeout_ms};
use super::remote::Remote;
use super::result::check_transact_result;
use super::tls::{self, TlsFiles, SET_SSL};
use super::value;

/// Where ovsdb-server listens when `OVS_RUNDIR` is not set (Debian's and upstream's default).
const DEFAULT_RUNDIR: &str = "/var/run/openvswitch";

/// A connection to an OVSDB server.
///
/// Not shared between threads: one connection per invocation of the plugin, used for a few
/// transactions and dropped.
#[derive(Debug)]
pub struct Client {
    /// Where the server is, to name it in errors.
    remote: Remote,
    /// The socket, buffered for reading; writes go to the same socket.
    reader: BufReader<DeadlineReader>,
    /// The id of the next request.
    next_id: u64,
    /// How long a request may take, on top of the timeouts of its `wait` operations.
    timeout: Duration,
    /// Why the connection cannot be used any more, after an I/O or protocol error.
    broken: Option<String>,
}

/// A socket reader whose reads fail once a deadline has passed, so a reply that trickles in
/// byte by byte cannot stretch a request beyond its timeout.
#[derive(Debug)]
struct DeadlineReader {
    stream: Stream,
    deadline: Option<Instant>,
}

/// The connected socket, whichever kind the remote names.
#[derive(Debug)]
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    /// TLS over TCP; timeouts are set on the TCP socket underneath.
    Ssl(Box<SslStream<TcpStream>>),
}

impl Stream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(timeout),
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Ssl(s) => s.get_ref().set_read_timeout(timeout),
        }
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(timeout),
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            Stream::Ssl(s) => s.get_ref().set_write_timeout(timeout),
        }
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_nonblocking(nonblocking),
            Stream::Tcp(s) => s.set_nonblocking(nonblocking),
            Stream::Ssl(s) => s.get_ref().set_nonblocking(nonblocking),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
            Stream::Ssl(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(bytes),
            Stream::Tcp(s) => s.write_all(bytes),
            Stream::Ssl(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
        }
    }
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
            }
            self.stream.set_read_timeout(Some(remaining))?;
        }
        self.stream.read(buf)
    }
}

/// A JSON-RPC request as written on the wire.
#[derive(Serialize)]
struct Request<'a> {
    method: &'a str,
    params: &'a [Value],
    id: u64,
}

impl Client {
    /// The files recorded in the `SSL` table of the Open vSwitch database `ovs` is connected to,
    /// or `None` when `Open_vSwitch.ssl` is empty (`set-ssl` never run).
    pub fn tls_files_from_ssl_table(ovs: &mut Client) -> Result<Option<TlsFiles>> {
        let results = ovs.transact(
            "Open_vSwitch",
            vec![ops::select("Open_vSwitch", vec![], Some(&["ssl"]))],
        )?;
        let Some(root) = value::rows(&results[0])?.first() else {
            bail!("the Open_vSwitch table is empty: the database was never initialised (ovs-vsctl init)");
        };
        let Some(ssl) = value::optional(value::column(root, "ssl")?)? else {
            return Ok(None);
        };
        let uuid = value::uuid_str(&ssl)?.to_string();
        let results = ovs.transact(
            "Open_vSwitch",
            vec![ops::select(
                "SSL",
                vec![ops::cond("_uuid", "==", value::uuid(&uuid))],
                Some(&["private_key", "certificate", "ca_cert"]),
            )],
        )?;
        let Some(row) = value::rows(&results[0])?.first() else {
            bail!("Open_vSwitch.ssl refers to SSL row {uuid}, which the database does not have");
        };
        let path = |column: &str| -> Result<PathBuf> {
            Ok(PathBuf::from(
                value::column(row, column).and_then(|v| value::string(v))?,
            ))
        };
        Ok(Some(TlsFiles {
            private_key: path("private_key")?,
            certificate: path("certificate")?,
            ca_cert: path("ca_cert")?,
        }))
    }

    /// The files of this host's Open vSwitch (its database at [`Client::default_socket`]),
    /// required since `remote` is an `ssl:` remote: their absence is an error that names the
    /// remote and the command that records them.
    fn tls_files_of_this_host(remote: &str) -> Result<TlsFiles> {
        let socket = Client::default_socket();
        let mut ovs = Client::connect(&socket).with_context(|| {
            format!("{remote} needs this host's SSL key, certificate and CA from Open vSwitch")
        })?;
        Self::tls_files_from_ssl_table(&mut ovs)?.ok_or_else(|| {
            anyhow!(
                "{remote} is an SSL remote, but this host's Open vSwitch has no SSL \
                 configuration (its SSL table is empty): record this host's private key, \
                 certificate and the CA certificate of the OVN databases once with `{SET_SSL}` \
                 (ovn-controller uses the same files)"
            )
        })
    }

    /// How long a request may take by default (plus the timeouts of its `wait` operations).
    /// Generous, since ovsdb-server answers in well under a millisecond when healthy; only a
    /// hung server reaches it.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// The socket ovs-vsctl would use: `$OVS_RUNDIR/db.sock`, with `OVS_RUNDIR` defaulting to
    /// `/var/run/openvswitch`. Honouring `OVS_RUNDIR` lets tests and multi-instance setups point
    /// the plugin at their own ovsdb-server.
    pub fn default_socket() -> PathBuf {
        let rundir = std::env::var_os("OVS_RUNDIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNDIR));
        rundir.join("db.sock")
    }

    /// Connects to the ovsdb-server listening on the unix socket `path`, with
    /// [`Client::DEFAULT_TIMEOUT`].
    ///
    /// The error names the socket and says what to start, because "connection refused" alone
    /// does not tell a podman user that Open vSwitch is not running.
    pub fn connect(path: &Path) -> Result<Client> {
        let stream = UnixStream::connect(path).with_context(|| {
            format!(
                "cannot connect to the OVSDB server at unix:{}: is Open vSwitch running? \
                 Start ovsdb-server (e.g. `systemctl start openvswitch-switch`), or set \
                 OVS_RUNDIR to the directory of its db.sock",
                path.display()
            )
        })?;
        Self::from_stream(Stream::Unix(stream), Remote::Unix(path.to_path_buf()))
    }

    /// Connects to the server at `remote`, giving up after `timeout` (a TCP server that is
    /// down or unroutable must not stall the plugin). An `ssl:` remote uses the key,
    /// certificate and CA of this host's Open vSwitch ([`Client::tls_files_of_this_host`]). The error
    /// names the remote; what to do about it is the caller's to say, who knows what the server
    /// is.
    pub fn connect_remote(remote: &Remote, timeout: Duration) -> Result<Client> {
        let stream = match remote {
            Remote::Unix(path) => Stream::Unix(
                UnixStream::connect(path)
                    .with_context(|| format!("cannot connect to the OVSDB server at {remote}"))?,
            ),
            Remote::Tcp(address) => Stream::Tcp(
                TcpStream::connect_timeout(address, timeout.max(Duration::from_millis(1)))
                    .with_context(|| format!("cannot connect to the OVSDB server at {remote}"))?,
            ),
            Remote::Ssl(address) => Stream::Ssl(Box::new(tls::connect(
                address,
                &remote.to_string(),
                &Self::tls_files_of_this_host(&remote.to_string())?,
                timeout,
            )?)),
        };
        if let Stream::Tcp(tcp) = &stream {
            // Requests are small and answered one at a time: do not let Nagle hold them back.
            tcp.set_nodelay(true)
                .with_context(|| format!("cannot set TCP_NODELAY towards {remote}"))?;
        }
        Self::from_stream(stream, remote.clone())
    }

    /// Connects to the `ssl:` remote `remote` with `files` as this client's identity and trust.
    /// Any other remote is connected as [`Client::connect_remote`] does.
    pub fn connect_tls(remote: &Remote, files: &TlsFiles, timeout: Duration) -> Result<Client> {
        let Remote::Ssl(address) = remote else {
            return Self::connect_remote(remote, timeout);
        };
        let stream = tls::connect(address, &remote.to_string(), files, timeout)?;
        Self::from_stream(Stream::Ssl(Box::new(stream)), remote.clone())
    }

    /// Wraps an already connected socket; `remote` only names the server in errors.
    fn from_stream(stream: Stream, remote: Remote) -> Result<Client> {
        // Blocking mode is what the deadline logic expects; a socket from elsewhere might not
        // be in it.
        stream
            .set_nonblocking(false)
            .context("cannot set the OVSDB socket to blocking mode")?;
        Ok(Client {
            remote,
            reader: BufReader::new(DeadlineReader {
                stream,
                deadline: None,
            }),
            next_id: 1,
            timeout: Self::DEFAULT_TIMEOUT,
            broken: None,
        })
    }

    /// The server this client is connected to.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// How long a request may take before the client gives up (on top of the timeouts of the
    /// request's `wait` operations).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the request timeout (at least 1 ms). A request that exceeds it fails with an
    /// error that says so, and the connection cannot be used afterwards.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout.max(Duration::from_millis(1));
    }

    /// Runs one transaction on database `db` (`"Open_vSwitch"`) and returns one result per
    /// operation. The operations are built with [`super::ops`].
    ///
    /// A transaction the server refused fails with a [`super::TransactError`] inside the
    /// `anyhow::Error`, whether an operation failed (e.g. a `wait` that "timed out") or the
    /// commit did (e.g. a "constraint violation" for a duplicate name); downcast to tell them
    /// apart. The client waits for the reply for its timeout plus the longest `wait` timeout
    /// among `ops`.
    pub fn transact(&mut self, db: &str, ops: Vec<Value>) -> Result<Vec<Value>> {
        let extra = ops
            .iter()
            .filter_map(wait_timeout_ms)
            .max()
            .map(Duration::from_millis)
            .unwrap_or_default();
        let mut params = Vec::with_capacity(ops.len() + 1);
        params.push(Value::from(db));
        params.extend(ops);
        let result = self.request("transact", &params, self.timeout.saturating_add(extra))?;
        check_transact_result(&params[1..], result)
    }

    /// Sends any other JSON-RPC request (`list_dbs`, `get_schema`...) and returns its `result`;
    /// a non-null JSON-RPC `error` becomes an error. Takes the client's timeout.
    pub fn call(&mut self, method: &str, params: &[Value]) -> Result<Value> {
        self.request(method, params, self.timeout)
    }

    /// Sends a request, waits at most `timeout` for its reply, and returns the reply's result.
    fn request(&mut self, method: &str, params: &[Value], timeout: Duration) -> Result<Value> {
        if let Some(reason) = &self.broken {
            bail!(
                "the connection to ovsdb-server at {} is unusable after an earlier error \
                 ({reason}); connect again",
                self.remote
            );
        }
        let id = self.next_id;
        self.next_id += 1;
        let now = Instant::now();
        // A huge timeout (e.g. Duration::MAX) must not overflow the clock: cap it at a year.
        let deadline = now
            .checked_add(timeout)
            .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
            .unwrap_or(now);
        let exchanged = self.send(method, params, id, deadline).and_then(|()| {
            self.receive_reply(id, deadline)
                .map_err(|err| self.explain_read_error(err, deadline, timeout))
        });
        let mut reply = match exchanged {
            Ok(reply) => reply,
            Err(err) => {
                self.broken = Some(format!("{err:#}"));
                return Err(err);
            }
        };
        match reply.remove("error") {
            None | Some(Value::Null) => {}
            Some(error) => bail!(
                "ovsdb-server at {} refused the {method} request: {}",
                self.remote,
                describe_rpc_error(&error)
            ),
        }
        Ok(reply.remove("result").unwrap_or(Value::Null))
    }

    /// Writes one request.
    fn send(&mut self, method: &str, params: &[Value], id: u64, deadline: Instant) -> Result<()> {
        let request = Request { method, params, id };
        let bytes = serde_json::to_vec(&request).context("cannot encode an OVSDB request")?;
        log::trace!("ovsdb -> {}", String::from_utf8_lossy(&bytes));
        match self.write_all(&bytes, deadline) {
            Ok(()) => Ok(()),
            Err(err) if self.remote.is_ssl() => Err(tls::ended_after_handshake(
                &format!("ovsdb-server at {}", self.remote),
                &tls::failure(&err),
            )),
            Err(err) => Err(err).with_context(|| {
                format!(
                    "cannot send the {method} request to ovsdb-server at {}",
                    self.remote
                )
            }),
        }
    }

    /// Writes `bytes` to the socket before `deadline`, so a server that stopped reading cannot
    /// block us either.
    fn write_all(&mut self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        let stream = &mut self.reader.get_mut().stream;
        let remaining = deadline.saturating_duration_since(Instant::now());
        stream.set_write_timeout(Some(remaining.max(Duration::from_millis(1))))?;
        stream.write_all(bytes)
    }

    /// Reads messages until the reply with `id`, answering `echo` requests and skipping
    /// notifications and stale replies on the way.
    fn receive_reply(&mut self, id: u64, deadline: Instant) -> Result<Map<String, Value>> {
        loop {
            let message = self.read_message(deadline)?;
            let Value::Object(message) = message else {
                bail!(
                    "malformed message from ovsdb-server at {} (not a JSON object): {message}",
                    self.remote
                );
            };
            if let Some(method) = message.get("method") {
                self.answer_request(method, &message, deadline)?;
                continue;
            }
            if !message.contains_key("result") && !message.contains_key("error") {
                bail!(
                    "malformed message from ovsdb-server at {} (no method, result or \
                     error): {}",
                    self.remote,
                    Value::Object(message)
                );
            }
            if message.get("id").and_then(Value::as_u64) == Some(id) {
                log::trace!("ovsdb <- {}", Value::Object(message.clone()));
                return Ok(message);
            }
            log::debug!(
                "ovsdb: ignoring a reply to another request: {}",
                Value::Object(message)
            );
        }
    }

    /// Reads the next message, whatever it is.
    fn read_message(&mut self, deadline: Instant) -> Result<Value> {
        self.reader.get_mut().deadline = Some(deadline);
        // A fresh streaming deserializer per message is safe because every message is a JSON
        // object: the deserializer stops right after its closing brace and reads nothing more,
        // so the next message stays in the buffer.
        let next = serde_json::Deserializer::from_reader(&mut self.reader)
            .into_iter::<Value>()
            .next();
        self.reader.get_mut().deadline = None;
        match next {
            Some(Ok(message)) => Ok(message),
            Some(Err(err)) => Err(err.into()),
            None => bail!("ovsdb-server at {} closed the connection", self.remote),
        }
    }

    /// Answers a request from the server: `echo` (its keepalive) with its own params, anything
    /// else with an error; notifications (no id) need no answer.
    fn answer_request(
        &mut self,
        method: &Value,
        message: &Map<String, Value>,
        deadline: Instant,
    ) -> Result<()> {
        let id = match message.get("id") {
            None | Some(Value::Null) => {
                log::debug!("ovsdb: ignoring notification {method}");
                return Ok(());
            }
            Some(id) => id.clone(),
        };
        let answer = if method.as_str() == Some("echo") {
            let params = message
                .get("params")
                .cloned()
                .unwrap_or_else(|| Value::Array(vec![]));
            serde_json::json!({"id": id, "result": params, "error": null})
        } else {
            log::debug!("ovsdb: refusing unexpected request {method} from the server");
            serde_json::json!({"id": id, "result": null, "error": "unknown method"})
        };
        let bytes =
            serde_json::to_vec(&answer).context("cannot encode an answer to ovsdb-server")?;
        self.write_all(&bytes, deadline).with_context(|| {
            format!(
                "cannot answer the {method} request of ovsdb-server at {}",
                self.remote
            )
        })
    }

    /// Turns a failed read into an error that says what happened in user terms: a timeout
    /// (hung server), a closed connection, or garbage.
    fn explain_read_error(
        &self,
        err: anyhow::Error,
        deadline: Instant,
        timeout: Duration,
    ) -> anyhow::Error {
        let server = format!("ovsdb-server at {}", self.remote);
        let timed_out = Instant::now() >= deadline
            || err
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                .is_some_and(|kind| {
                    matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
                });
        if timed_out {
            return anyhow!(
                "no reply from {server} within {timeout:?}: the server looks hung; gave up \
                 and dropped the connection"
            );
        }
        match err.downcast_ref::<serde_json::Error>() {
            Some(json) if json.is_eof() => err.context(format!(
                "{server} closed the connection in the middle of a message"
            )),
            Some(json) if json.is_io() && self.remote.is_ssl() => {
                let why = err
                    .downcast_ref::<serde_json::Error>()
                    .and_then(|e| std::error::Error::source(e))
                    .map_or_else(|| format!("{err}"), tls::failure);
                tls::ended_after_handshake(&server, &why)
            }
            Some(json) if json.is_io() => err.context(format!("cannot read from {server}")),
            Some(_) => err.context(format!("malformed JSON from {server}")),
            // Already says what happened and names the server.
            None => err,
        }
    }
}

/// A JSON-RPC `error` member as text: OVSDB sends `{"error": .., "details": ..}`.
fn describe_rpc_error(error: &Value) -> String {
    match (
        error.get("error").and_then(Value::as_str),
        error.get("details").and_then(Value::as_str),
    ) {
        (Some(error), Some(details)) => format!("{error} ({details})"),
        (Some(error), None) => error.to_string(),
        _ => match error.as_str() {
            Some(text) => text.to_string(),
            None => error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::ops::{comment, select};
    use super::super::{TransactError, Until};
    use super::*;
    use serde_json::json;
    use std::thread;

    /// The server end of a socketpair, reading requests as ovsdb-server would.
    struct FakeServer {
        stream: UnixStream,
        reader: BufReader<UnixStream>,
    }

    impl FakeServer {
        fn new(stream: UnixStream) -> Self {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let reader = BufReader::new(stream.try_clone().unwrap());
            FakeServer { stream, reader }
        }

        fn read(&mut self) -> Value {
            serde_json::Deserializer::from_reader(&mut self.reader)
                .into_iter::<Value>()
                .next()
                .expect("a message")
                .expect("valid JSON")
        }

        fn write(&mut self, text: &str) {
            self.stream.write_all(text.as_bytes()).unwrap();
        }
    }

    fn pair() -> (Client, FakeServer) {
        let (client, server) = UnixStream::pair().unwrap();
        let client = Client::from_stream(
            Stream::Unix(client),
            Remote::Unix(PathBuf::from("/fake/db.sock")),
        )
        .unwrap();
        (client, FakeServer::new(server))
    }

    #[test]
    fn default_socket_honours_ovs_rundir() {
        // The only test touching OVS_RUNDIR, so no other test races with it.
        std::env::set_var("OVS_RUNDIR", "/tmp/some-rundir");
        assert_eq!(
            Client::default_socket(),
            Path::new("/tmp/some-rundir/db.sock")
        );
        std::env::set_var("OVS_RUNDIR", "");
        assert_eq!(
            Client::default_socket(),
            Path::new("/var/run/openvswitch/db.sock")
        );
        std::env::remove_var("OVS_RUNDIR");
        assert_eq!(
            Client::default_socket(),
            Path::new("/var/run/openvswitch/db.sock")
        );
    }

    #[test]
    fn answers_echo_and_skips_notifications() {
        let (mut client, mut server) = pair();
        let server = thread::spawn(move || {
            let request = server.read();
            assert_eq!(
                request,
                json!({"method": "transact", "id": 1,
                       "params": ["Open_vSwitch", {"op": "comment", "comment": "hi"}]})
            );
            // A notification, an echo request, and a stale reply before the real one.
            server.write(r#"{"method":"update","params":[null,{}],"id":null}"#);
            server.write(r#" {"method":"echo","params":["ping",1],"id":"echo"}"#);
            let echo = server.read();
            assert_eq!(
                echo,
                json!({"id": "echo", "result": ["ping", 1], "error": null})
            );
            server.write("{\"id\":77,\"result\":[],\"error\":null}\n");
            // The reply in two pieces, followed at once by a notification in the same write.
            server.write(r#"{"id":1,"res"#);
            thread::sleep(Duration::from_millis(20));
            server.write(r#"ult":[{}],"error":null}{"method":"locked","params":["x"]}"#);

            // Second request: the leftover notification is read first, then the reply.
            let request = server.read();
            assert_eq!(request["id"], json!(2));
            server.write(r#"{"method":"other","params":[],"id":5}"#);
            let refused = server.read();
            assert_eq!(refused["id"], json!(5));
            assert_eq!(refused["error"], json!("unknown method"));
            server.write(r#"{"id":2,"result":[{"rows":[]}],"error":null}"#);
        });
        let results = client
            .transact("Open_vSwitch", vec![comment("hi")])
            .unwrap();
        assert_eq!(results, vec![json!({})]);
        let results = client
            .transact("Open_vSwitch", vec![select("Bridge", vec![], None)])
            .unwrap();
        assert_eq!(results, vec![json!({"rows": []})]);
        server.join().unwrap();
    }

    #[test]
    fn reports_transact_errors_and_rpc_errors() {
        let (mut client, mut server) = pair();
        let server = thread::spawn(move || {
            server.read();
            server.write(
                r#"{"id":1,"result":[{"uuid":["uuid","u"]},{"error":"constraint violation","details":"dup"}],"error":null}"#,
            );
            server.read();
            server.write(
                r#"{"id":2,"error":{"error":"unknown database","details":"transact request specifies unknown database Nope"}}"#,
            );
            server.read();
            server.write(r#"{"id":3,"result":["x"],"error":null}"#);
        });
        let insert = super::super::ops::insert("Bridge", None, json!({})).unwrap();
        let err = client
            .transact("Open_vSwitch", vec![insert])
            .expect_err("commit failure");
        let transact = err.downcast_ref::<TransactError>().expect("TransactError");
        assert!(transact.at_commit && transact.is("constraint violation"));
        // A refused transaction leaves the connection usable.
        let err = client.transact("Nope", vec![]).expect_err("rpc error");
        assert_eq!(
            err.to_string(),
            "ovsdb-server at unix:/fake/db.sock refused the transact request: unknown database \
             (transact request specifies unknown database Nope)"
        );
        let list = client.call("list_dbs", &[]).unwrap();
        assert_eq!(list, json!(["x"]));
        server.join().unwrap();
    }

    #[test]
    fn times_out_on_a_silent_server() {
        let (mut client, mut server) = pair();
        client.set_timeout(Duration::from_millis(100));
        let started = Instant::now();
        // A wait op extends the deadline by its own timeout.
        let wait = super::super::ops::wait("T", vec![], &[], Until::Equal, vec![], Some(100));
        let err = client.transact("Open_vSwitch", vec![wait]).unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(3),
            "{elapsed:?}"
        );
        let text = format!("{err:#}");
        assert!(
            text.contains("no reply from ovsdb-server at unix:/fake/db.sock within 200ms"),
            "{text}"
        );
        // Trickling bytes does not extend the deadline either, but the connection is now
        // unusable anyway.
        server.write("{");
        let err = client.call("list_dbs", &[]).unwrap_err();
        assert!(
            err.to_string().contains("unusable after an earlier error"),
            "{err}"
        );
    }

    #[test]
    fn trickling_reply_still_times_out() {
        let (mut client, mut server) = pair();
        client.set_timeout(Duration::from_millis(150));
        let writer = thread::spawn(move || {
            server.read();
            for _ in 0..20 {
                if server.stream.write_all(b" ").is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(30));
            }
        });
        let started = Instant::now();
        let err = client.call("list_dbs", &[]).unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(err.to_string().contains("no reply"), "{err:#}");
        drop(client);
        writer.join().unwrap();
    }

    #[test]
    fn accepts_a_huge_timeout() {
        let (mut client, mut server) = pair();
        client.set_timeout(Duration::MAX);
        let server = thread::spawn(move || {
            server.read();
            server.write(r#"{"id":1,"result":[],"error":null}"#);
        });
        let wait = super::super::ops::wait("T", vec![], &[], Until::Equal, vec![], Some(u64::MAX));
        // The wait is not in the reply (a fake server), so the result is malformed, but
        // nothing overflowed on the way.
        let err = client.transact("Open_vSwitch", vec![wait]).unwrap_err();
        assert!(
            err.to_string().contains("0 results for 1 operations"),
            "{err}"
        );
        server.join().unwrap();
    }

    #[test]
    fn survives_malformed_input() {
        for garbage in [
            "}{",
            "[1,2]",
            "42 ",
            "\"text\"",
            "{\"id\":1}",
            "{\"id\":1,\"result\":",
            "{\"id\":1,\"result\":[{}],\"error\":null",
            "{\"id\":1,\"result\":{\"a\":1},\"error\":null}",
            "{\"id\":1,\"result\":[{\"count\":1},{}],\"error\":null}",
            "{\"id\":1,\"result\":[null],\"error\":null}",
            "\u{0}\u{1}\u{2}",
            "",
        ] {
            let (mut client, mut server) = pair();
            client.set_timeout(Duration::from_millis(300));
            let server = thread::spawn(move || {
                server.read();
                server.write(garbage);
                // Closing the server end turns an incomplete message into EOF.
            });
            let err = client
                .transact("Open_vSwitch", vec![comment("x")])
                .expect_err(garbage);
            server.join().unwrap();
            assert!(err.downcast_ref::<TransactError>().is_none(), "{garbage}");
            let text = format!("{err:#}");
            assert!(!text.contains("no reply"), "{garbage}: {text}");
        }
    }

    #[test]
    fn reports_a_closed_connection() {
        let (mut client, server) = pair();
        drop(server);
        let err = client.call("list_dbs", &[]).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("unix:/fake/db.sock"), "{text}");
    }

    #[test]
    fn names_the_socket_when_connect_fails() {
        let path = Path::new("/nonexistent-dir-for-test/db.sock");
        let err = Client::connect(path).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("unix:/nonexistent-dir-for-test/db.sock"),
            "{text}"
        );
        assert!(
            text.contains("systemctl start openvswitch-switch"),
            "{text}"
        );
        assert!(text.contains("ovsdb-server"), "{text}");
    }

    #[test]
    fn describes_rpc_errors() {
        assert_eq!(describe_rpc_error(&json!("bad")), "bad");
        assert_eq!(describe_rpc_error(&json!({"error": "e"})), "e");
        assert_eq!(describe_rpc_error(&json!(3)), "3");
    }
}
