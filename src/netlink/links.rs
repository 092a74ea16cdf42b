//! Listing the links of a namespace and locating a veth's peer, for `gc` and `status`.
//!
//! A veth's host end carries the peer's interface index (`IFLA_LINK`) and, when the peer lives
//! in another namespace, that namespace's id as seen from here (`IFLA_LINK_NETNSID`). Asking the
//! kernel for the id of a namespace file (`RTM_GETNSID` with its descriptor) then says whether
//! the peer is in that namespace, without entering it.

use std::os::fd::AsRawFd;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};

use super::{kernel_error, Netlink};

/// One link of the namespace, with what tells a veth and its peer apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSummary {
    pub index: u32,
    pub name: String,
    /// The link kind (`veth`, `bridge`...), `None` for physical devices.
    pub kind: Option<String>,
    /// For a veth: the peer's interface index, in the peer's namespace.
    pub peer_index: Option<u32>,
    /// For a veth whose peer is in another namespace: that namespace's id, as seen from this
    /// one. `None` when the peer is in this namespace.
    pub peer_netnsid: Option<i32>,
}

impl Netlink {
    /// Every link of this namespace.
    pub fn links(&self) -> Result<Vec<LinkSummary>> {
        let request = self.handle.link().get().execute();
        let messages: Vec<LinkMessage> = self
            .runtime
            .block_on(request.try_collect())
            .map_err(kernel_error)
            .context("listing links")?;
        Ok(messages.iter().map(summary).collect())
    }

    /// The id this namespace gives to the namespace behind `ns` (an open namespace file),
    /// `None` when it has none (it then holds no peer of any link here).
    pub fn netns_id(&self, ns: &impl AsRawFd) -> Result<Option<i32>> {
        let mut message = NsidMessage::default();
        message.attributes = vec![NsidAttribute::Fd(ns.as_raw_fd() as u32)];
        let mut request = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(message));
        request.header.flags = NLM_F_REQUEST;
        let mut handle = self.handle.clone();
        self.runtime.block_on(async move {
            let mut answers = handle
                .request(request)
                .map_err(kernel_error)
                .context("asking for a namespace id")?;
            while let Some(answer) = answers.next().await {
                match answer.payload {
                    NetlinkPayload::Error(err) => {
                        return Err(kernel_error(rtnetlink::Error::NetlinkError(err)))
                            .context("asking for a namespace id");
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(answer)) => {
                        return Ok(answer.attributes.iter().find_map(|a| match a {
                            NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                            _ => None,
                        }));
                    }
                    _ => {}
                }
            }
            Ok(None)
        })
    }
}

fn summary(message: &LinkMessage) -> LinkSummary {
    let mut link = LinkSummary {
        index: message.header.index,
        name: String::new(),
        kind: None,
        peer_index: None,
        peer_netnsid: None,
    };
    for attr in &message.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Link(index) => link.peer_index = Some(*index),
            LinkAttribute::LinkNetNsId(id) if *id >= 0 => link.peer_netnsid = Some(*id),
            LinkAttribute::LinkInfo(infos) => {
                link.kind = infos.iter().find_map(|info| match info {
                    LinkInfo::Kind(kind) => Some(kind.to_string()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    link
}
