//! OVN as a network's control plane: the northbound database holds the network's logical
//! switch and one logical port per container, and ovn-controller on every host binds the
//! ports, programs `br-int` and builds the GENEVE tunnels to every other chassis itself.
//!
//! * [`schema`]: the typed northbound rows the plugin reads and writes;
//! * [`plan`]: what those rows should hold (pure);
//! * [`northbound`]: the guarded transactions on the database;
//! * [`host`]: this host's prerequisites (its chassis and ovn-controller's settings);
//! * [`record`]: the OVN networks this host joined, kept in its Open vSwitch database for `gc`;
//! * [`southbound`]: the port bindings `status` reads.
//!
//! The [`crate::control::ovn`] control plane puts them together behind the same interface
//! as the static mesh.

pub mod host;
pub mod northbound;
pub mod plan;
pub mod record;
pub mod schema;
pub mod southbound;
