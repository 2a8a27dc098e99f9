//! The network, brought up on first need for Tang.
//!
//! ```text
//!   ip= / BOOTIF= / nameserver= ─► ip (grammar) ──┐
//!   vlan= / bond= ─────────────────► links (grammar) ┴► plan ─► bring_up ─┬─ rtnetlink (VLANs, bonds, links, addresses, routes)
//!                                                                         ├─ dhcp (AF_PACKET client)
//!                                                                         └─ dhcp6 (UDP on the link-local address)
//! ```

mod bring_up;
pub mod dhcp;
pub mod dhcp6;
pub(crate) mod ip;
pub mod links;
pub mod plan;

pub use bring_up::NetError;
#[cfg(test)]
pub(crate) use bring_up::testnet;
pub(crate) use bring_up::{Options, bring_up};
