//! OpenFlow spoken by the plugin itself, for the hot path: `setup`'s bundle of a port's flows
//! and `teardown`'s delete of its cookie. Running `ovs-ofctl` for them cost a fork and exec,
//! its own negotiation and the parsing of text flows, most of a container's teardown; here
//! it is one connection to the bridge's management socket and one write of the bundle.
//!
//! [`codec`] is the pure part (bytes in, bytes out), [`client`] the conversation.

pub mod client;
pub mod codec;

pub use client::Switch;
