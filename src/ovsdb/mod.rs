//! The OVSDB wire protocol (RFC 7047): JSON-RPC over a unix socket, TCP or TLS, nothing
//! schema-specific (but for the `SSL` table where Open vSwitch keeps a host's TLS files).
//!
//! Existing crates either cannot transact or mishandle the protocol (panics on `echo`, wrong
//! deletes), so this is a small client of our own:
//!
//! * [`Client`]: connection, `transact` with per-element result checking, `echo` answers and
//!   timeouts;
//! * [`TlsFiles`]: the TLS transport of `ssl:` remotes, with this host's key, certificate and CA
//!   from its Open vSwitch `SSL` table;
//! * [`ops`]: builders for the operations of a transaction;
//! * [`value`]: the OVSDB JSON encoding of UUIDs, sets and maps, both ways;
//! * [`TransactError`]: a transaction the server refused, typed so callers can react to
//!   "constraint violation" or "timed out".
//!
//! What the tables and columns mean (Bridge, Port, Interface...) is the business of
//! [`crate::ovs`].

mod client;
pub mod ops;
mod remote;
mod result;
mod tls;
pub mod value;

pub use client::Client;
pub use ops::Until;
pub use remote::Remote;
pub use result::{
    check_transact_result, TransactError, ABORTED, CONSTRAINT_VIOLATION,
    REFERENTIAL_INTEGRITY_VIOLATION, TIMED_OUT,
};
pub use tls::TlsFiles;
