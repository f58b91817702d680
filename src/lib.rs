//! Sluice: a Kafka-compatible streaming platform, thread-per-core on glommio.
//!
//! ```text
//!   cli ──► server ──► broker ──► storage ──► model
//!             └──► protocol ──► model
//!   bench / streams / connect ──► client ──► protocol
//! ```
//! Dependencies point one way: `storage` never imports `protocol` or `server`; `client` never
//! imports `broker`. Each module's docs say what it owns.

#![warn(missing_docs)]
#![deny(unused_must_use)]

pub mod bench;
pub mod broker;
pub mod cli;
pub mod client;
pub mod group;
pub mod limits;
pub mod model;
pub mod protocol;
pub mod server;
pub mod shard;
pub mod storage;
#[doc(hidden)]
pub mod testing;
