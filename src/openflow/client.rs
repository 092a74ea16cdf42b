//! A short OpenFlow 1.4 conversation with one bridge of ovs-vswitchd over its management
//! socket (`<OVS_RUNDIR>/<bridge>.mgmt`): HELLO, the port numbers when a flow names a port,
//! then one bundle. What goes on the wire is [`super::codec`]'s; this module only sends,
//! waits (never longer than the deadline), matches replies to requests by xid and turns the
//! switch's ERROR messages into errors that name the bridge and the flow.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::codec::{self, bundle, kind, Header, HEADER_LEN};
use crate::flows::{Field, FlowChange};

/// How long one conversation may wait for ovs-vswitchd. Only a hung ovs-vswitchd reaches it:
/// a busy one is slow, not broken (on the emulated kernel-datapath hosts under load, OVS
/// commands take seconds), so it is as generous as `ovs-ofctl`'s was.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How long a port named in a flow may be missing from the switch before that is an error.
/// ovs-vswitchd adds a port to its OpenFlow switch when it applies the database change, which
/// `setup` waits for; the wait covers a caller that did not.
pub const PORT_WAIT: Duration = Duration::from_secs(5);

/// The bundle id used on each connection (bundles belong to their connection).
const BUNDLE_ID: u32 = 1;

/// The bridges of one ovs-vswitchd, by its run directory.
#[derive(Debug, Clone)]
pub struct Switch {
    rundir: PathBuf,
    /// Port numbers the caller already knows (from OVSDB's `Interface.ofport`), so that a
    /// bundle naming only those needs no port list from the switch.
    known_ports: BTreeMap<String, u32>,
}

impl Switch {
    /// For the ovs-vswitchd whose run directory (where its `<bridge>.mgmt` sockets are) is
    /// `rundir`.
    pub fn new(rundir: &Path) -> Switch {
        Switch {
            rundir: rundir.to_path_buf(),
            known_ports: BTreeMap::new(),
        }
    }

    /// The same, with the OpenFlow numbers of some ports already known (`Interface.ofport`,
    /// read once ovs-vswitchd applied the port). Asking the switch for its port list costs a
    /// round trip and a description of every port of the bridge, which grows with the number of
    /// containers; the numbers OVSDB reports are the ones the switch uses.
    pub fn knowing_ports(mut self, ports: &BTreeMap<String, u32>) -> Switch {
        self.known_ports
            .extend(ports.iter().map(|(name, number)| (name.clone(), *number)));
        self
    }

    /// Applies `changes` to `bridge`'s table as one atomic, ordered bundle.
    pub fn apply(&self, bridge: &str, changes: &[FlowChange]) -> Result<()> {
        let socket = self.rundir.join(format!("{bridge}.mgmt"));
        let mut conversation = Conversation::open(&socket, bridge, Instant::now() + TIMEOUT)?;
        let unknown: Vec<&str> = named_ports(changes)
            .into_iter()
            .filter(|name| !self.known_ports.contains_key(*name))
            .collect();
        let mut numbers = if unknown.is_empty() {
            BTreeMap::new()
        } else {
            conversation.wait_for_ports(&unknown)?
        };
        numbers.extend(
            self.known_ports
                .iter()
                .map(|(name, number)| (name.clone(), *number)),
        );
        conversation.bundle(changes, &|name| numbers.get(name).copied())
    }
}

/// The ports `changes` name (an `in_port` that is a number needs no lookup).
fn named_ports(changes: &[FlowChange]) -> Vec<&str> {
    let mut names: Vec<&str> = changes
        .iter()
        .filter_map(|change| match change {
            FlowChange::Add(flow) => Some(flow),
            FlowChange::DeleteCookie(_) => None,
        })
        .flat_map(|flow| &flow.fields)
        .filter_map(|field| match field {
            Field::InPort(name) if name.parse::<u32>().is_err() => Some(name.as_str()),
            _ => None,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// One connection, after the HELLOs.
struct Conversation<'a> {
    stream: UnixStream,
    bridge: &'a str,
    deadline: Instant,
    next_xid: u32,
}

impl<'a> Conversation<'a> {
    fn open(socket: &Path, bridge: &'a str, deadline: Instant) -> Result<Conversation<'a>> {
        let stream = UnixStream::connect(socket).with_context(|| {
            format!(
                "cannot connect to OVS bridge {bridge} at {} (is ovs-vswitchd running, and \
                 does the bridge exist? `ovs-vsctl br-exists {bridge}`)",
                socket.display()
            )
        })?;
        let mut conversation = Conversation {
            stream,
            bridge,
            deadline,
            next_xid: 1,
        };
        let xid = conversation.xid();
        conversation.send(&codec::hello(xid))?;
        loop {
            let message = conversation.receive()?;
            let header = Header::parse(&message)?;
            match header.kind {
                kind::HELLO => {
                    if !codec::hello_accepts_1_4(&message)? {
                        bail!(
                            "OVS bridge {bridge} does not allow OpenFlow 1.4, which atomic \
                             flow bundles need; allow it with `ovs-vsctl set bridge {bridge} \
                             protocols=OpenFlow10,OpenFlow13,OpenFlow14`"
                        );
                    }
                    return Ok(conversation);
                }
                kind::ERROR => bail!(
                    "OVS bridge {bridge} refused the OpenFlow connection: {}",
                    codec::parse_error(&message)?
                ),
                _ => continue,
            }
        }
    }

    fn xid(&mut self) -> u32 {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        xid
    }

    fn remaining(&self) -> Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "OVS bridge {} did not answer within {} s: is ovs-vswitchd hung? \
                 (`ovs-appctl -t ovs-vswitchd version`)",
                self.bridge,
                TIMEOUT.as_secs()
            );
        }
        Ok(left)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.set_write_timeout(Some(self.remaining()?))?;
        self.stream.write_all(bytes).with_context(|| {
            format!(
                "cannot send OpenFlow messages to OVS bridge {}",
                self.bridge
            )
        })
    }

    /// The next message, header included. Answers the switch's ECHO_REQUESTs on the way.
    fn receive(&mut self) -> Result<Vec<u8>> {
        loop {
            let mut message = vec![0u8; HEADER_LEN];
            self.read_exact(&mut message)?;
            let header = Header::parse(&message)?;
            message.resize(usize::from(header.length), 0);
            self.read_exact(&mut message[HEADER_LEN..])?;
            if header.version != codec::VERSION && header.kind != kind::HELLO {
                bail!(
                    "OVS bridge {} answered in OpenFlow version {:#04x}, not 1.4",
                    self.bridge,
                    header.version
                );
            }
            if header.kind == kind::ECHO_REQUEST {
                self.send(&codec::echo_reply(&message)?)?;
                continue;
            }
            return Ok(message);
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            self.stream.set_read_timeout(Some(self.remaining()?))?;
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => bail!(
                    "OVS bridge {} closed the OpenFlow connection (see ovs-vswitchd's log)",
                    self.bridge
                ),
                Ok(n) => filled += n,
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.remaining()?;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot read from OVS bridge {}'s OpenFlow socket",
                            self.bridge
                        )
                    })
                }
            }
        }
        Ok(())
    }

    /// The OpenFlow numbers of all the bridge's ports, by name.
    fn ports(&mut self) -> Result<BTreeMap<String, u32>> {
        let xid = self.xid();
        self.send(&codec::port_desc_request(xid))?;
        let mut ports = BTreeMap::new();
        loop {
            let message = self.receive()?;
            let header = Header::parse(&message)?;
            if header.xid != xid {
                continue;
            }
            match header.kind {
                kind::MULTIPART_REPLY => {
                    let part = codec::parse_port_desc_reply(&message)?;
                    ports.extend(part.ports);
                    if !part.more {
                        return Ok(ports);
                    }
                }
                kind::ERROR => bail!(
                    "OVS bridge {} refused to list its ports: {}",
                    self.bridge,
                    codec::parse_error(&message)?
                ),
                other => bail!(
                    "OVS bridge {} answered the port list request with message type {other}",
                    self.bridge
                ),
            }
        }
    }

    /// The numbers of the ports `names`, asking again for up to [`PORT_WAIT`] while some are
    /// not on the switch yet.
    fn wait_for_ports(&mut self, names: &[&str]) -> Result<BTreeMap<String, u32>> {
        let give_up = Instant::now() + PORT_WAIT;
        loop {
            let ports = self.ports()?;
            let missing: Vec<&str> = names
                .iter()
                .copied()
                .filter(|name| !ports.contains_key(*name))
                .collect();
            if missing.is_empty() {
                return Ok(ports);
            }
            if Instant::now() >= give_up {
                bail!(
                    "OVS bridge {} has no OpenFlow port {} after {} s: ovs-vswitchd has not \
                     added it (see `ovs-vsctl list interface {}` and ovs-vswitchd's log)",
                    self.bridge,
                    missing.join(", "),
                    PORT_WAIT.as_secs(),
                    missing[0]
                );
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Sends OPEN, one ADD per change, COMMIT in one write, then reads until the commit's
    /// answer. Every ERROR on the way is about the message with its xid: the flow is named.
    fn bundle(
        &mut self,
        changes: &[FlowChange],
        port_number: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<()> {
        let open = self.xid();
        let mut out = codec::bundle_control(open, BUNDLE_ID, bundle::OPEN_REQUEST);
        let mut by_xid: BTreeMap<u32, &FlowChange> = BTreeMap::new();
        for change in changes {
            let xid = self.xid();
            let flow_mod = codec::flow_mod(xid, change, port_number)
                .with_context(|| format!("cannot encode for OVS bridge {}", self.bridge))?;
            out.extend(codec::bundle_add(BUNDLE_ID, &flow_mod)?);
            by_xid.insert(xid, change);
        }
        let commit = self.xid();
        out.extend(codec::bundle_control(
            commit,
            BUNDLE_ID,
            bundle::COMMIT_REQUEST,
        ));
        self.send(&out)?;

        let mut refusals = Vec::new();
        loop {
            let message = self.receive()?;
            let header = Header::parse(&message)?;
            match header.kind {
                kind::ERROR => {
                    let error = codec::parse_error(&message)?;
                    let about = match by_xid.get(&header.xid) {
                        Some(change) => format!("`{change}`: {error}"),
                        None if header.xid == open => format!("opening the bundle: {error}"),
                        None if header.xid == commit => format!("the commit: {error}"),
                        None => format!("{error}"),
                    };
                    refusals.push(about);
                    if header.xid == commit {
                        break;
                    }
                }
                kind::BUNDLE_CONTROL if header.xid == commit => {
                    let reply = codec::parse_bundle_control(&message)?;
                    if reply.control != bundle::COMMIT_REPLY {
                        refusals.push(format!(
                            "the commit was answered with bundle control type {}",
                            reply.control
                        ));
                    }
                    break;
                }
                _ => continue,
            }
        }
        if refusals.is_empty() {
            return Ok(());
        }
        Err(anyhow!(
            "OVS bridge {} refused the flow bundle, nothing of it was applied: {}",
            self.bridge,
            refusals.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::{Action, Flow};

    #[test]
    fn only_port_names_need_a_lookup() {
        let flow = |port: &str| {
            FlowChange::Add(Flow {
                cookie: 1,
                priority: 1,
                fields: vec![Field::InPort(port.into())],
                action: Action::Drop,
            })
        };
        let changes = vec![
            FlowChange::DeleteCookie(1),
            flow("65279"),
            flow("gvb"),
            flow("gva"),
            flow("gvb"),
        ];
        assert_eq!(named_ports(&changes), vec!["gva", "gvb"]);
        assert!(named_ports(&[FlowChange::DeleteCookie(1)]).is_empty());
    }
}
