//! A tiny DNS server and client for the labs: the server answers A queries for a fixed set of
//! names (NXDOMAIN for any other) over UDP and TCP from inside a namespace the test made, and
//! records every query it got; the client asks from inside a container's namespace. Both run
//! on a thread of their own that entered the namespace (a socket stays in the namespace it was
//! made in). Namespaces are named by path and nothing here depends on either lab, so the netns
//! lab (`tests/common`) and the podman lab (`tests/podman_lab`) share it as it is; how a host's
//! `/etc/resolv.conf` is made to name the server is each lab's own business.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// Runs `f` on a thread that entered the network namespace at `path`.
pub fn in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let inside = path.to_path_buf();
    std::thread::spawn(move || {
        enter(&inside)?;
        f()
    })
    .join()
    .map_err(|_| anyhow!("the thread in {} panicked", path.display()))?
}

fn enter(path: &Path) -> Result<()> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    // SAFETY: setns on a descriptor we own; it changes only the calling thread's namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!(
            "setns into {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// What a query got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Address(Ipv4Addr),
    /// No address, with the response code (3: NXDOMAIN).
    Nothing(u8),
}

/// An A query for `name` with id `id`.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend(id.to_be_bytes());
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    q
}

/// The question's name and type in `msg` and where the question ends.
fn question(msg: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(at..at + len)?).to_lowercase());
        at += len;
    }
    let kind = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
    Some((labels.join("."), kind, at + 4))
}

/// The first A record of a response to query `id`.
pub fn parse_answer(id: u16, msg: &[u8]) -> Result<Answer> {
    if msg.len() < 12 || msg[0..2] != id.to_be_bytes() || msg[2] & 0x80 == 0 {
        bail!("not a response to query {id}: {msg:?}");
    }
    let rcode = msg[3] & 0x0f;
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    let (_, _, mut at) = question(msg).context("no question in the response")?;
    for _ in 0..answers {
        // The name: a pointer, or labels.
        while let Some(&b) = msg.get(at) {
            if b & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += 1 + b as usize;
            if b == 0 {
                break;
            }
        }
        let field = |i: usize| -> Result<u16> {
            Ok(u16::from_be_bytes([
                *msg.get(at + i).context("short answer")?,
                *msg.get(at + i + 1).context("short answer")?,
            ]))
        };
        let (kind, len) = (field(0)?, field(8)? as usize);
        let data = msg.get(at + 10..at + 10 + len).context("short answer")?;
        if kind == 1 && len == 4 {
            return Ok(Answer::Address(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            )));
        }
        at += 10 + len;
    }
    Ok(Answer::Nothing(rcode))
}

/// Asks `server` for `name` over UDP, from the namespace at `netns_path`.
pub fn lookup_udp(netns_path: &Path, server: SocketAddr, name: &str) -> Result<Answer> {
    let name = name.to_string();
    in_netns(netns_path, move || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(3)))?;
        socket.send_to(&query(0x5101, &name), server)?;
        let mut buf = [0u8; 1500];
        let n = socket
            .recv(&mut buf)
            .with_context(|| format!("no answer from {server} over UDP for {name}"))?;
        parse_answer(0x5101, &buf[..n])
    })
}

/// Asks `server` for `name` over TCP, from the namespace at `netns_path`.
pub fn lookup_tcp(netns_path: &Path, server: SocketAddr, name: &str) -> Result<Answer> {
    let name = name.to_string();
    in_netns(netns_path, move || {
        let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(3))
            .with_context(|| format!("no TCP connection to {server}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        let q = query(0x5102, &name);
        stream.write_all(&(q.len() as u16).to_be_bytes())?;
        stream.write_all(&q)?;
        let mut len = [0u8; 2];
        stream
            .read_exact(&mut len)
            .with_context(|| format!("no answer from {server} over TCP for {name}"))?;
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut msg)?;
        parse_answer(0x5102, &msg)
    })
}

/// The response to `msg` from `names`.
fn respond(msg: &[u8], names: &[(String, Ipv4Addr)]) -> Option<Vec<u8>> {
    let (name, kind, end) = question(msg)?;
    let found = names.iter().find(|(n, _)| *n == name).map(|(_, a)| *a);
    let mut r = Vec::from(&msg[..end]);
    r[2] = 0x81 | (msg[2] & 0x01);
    r[3] = if found.is_some() { 0x80 } else { 0x83 };
    r[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    if let (Some(addr), 1) = (found, kind) {
        r[7] = 1;
        r.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend(addr.octets());
    }
    Some(r)
}

/// A query the server got: the name and who asked.
#[derive(Debug, Clone)]
pub struct Seen {
    pub name: String,
    pub from: SocketAddr,
}

/// The server, stopped when dropped.
pub struct Server {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `names` on UDP and TCP `addr:port` in the network namespace at `netns`
    /// (`/run/netns/NAME`).
    pub fn start(
        netns: &Path,
        addr: Ipv4Addr,
        port: u16,
        names: &[(&str, Ipv4Addr)],
    ) -> Result<Server> {
        let names: Vec<(String, Ipv4Addr)> =
            names.iter().map(|(n, a)| (n.to_string(), *a)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let path = netns.to_path_buf();
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let bound = enter(&path).and_then(|()| {
                let udp = UdpSocket::bind((addr, port))?;
                udp.set_read_timeout(Some(Duration::from_millis(50)))?;
                let tcp = TcpListener::bind((addr, port))?;
                tcp.set_nonblocking(true)?;
                Ok((udp, tcp))
            });
            let (udp, tcp) = match bound {
                Ok(sockets) => {
                    let _ = ready_tx.send(Ok(()));
                    sockets
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            let record = |name: Option<String>, from: SocketAddr| {
                if let (Some(name), Ok(mut seen)) = (name, seen2.lock()) {
                    seen.push(Seen { name, from });
                }
            };
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    record(question(&buf[..n]).map(|q| q.0), from);
                    if let Some(r) = respond(&buf[..n], &names) {
                        let _ = udp.send_to(&r, from);
                    }
                }
                if let Ok((mut stream, from)) = tcp.accept() {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut len = [0u8; 2];
                    if stream.read_exact(&mut len).is_err() {
                        continue;
                    }
                    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
                    if stream.read_exact(&mut msg).is_err() {
                        continue;
                    }
                    record(question(&msg).map(|q| q.0), from);
                    if let Some(r) = respond(&msg, &names) {
                        let _ = stream.write_all(&(r.len() as u16).to_be_bytes());
                        let _ = stream.write_all(&r);
                    }
                }
            }
        });
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| anyhow!("the DNS server in {} did not start", netns.display()))?;
        let server = Server {
            stop,
            seen,
            thread: Some(thread),
        };
        ready.with_context(|| format!("DNS server on {addr}:{port} in {}", netns.display()))?;
        Ok(server)
    }

    /// Every query it got so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
