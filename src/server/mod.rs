//! The builtin ZooKeeper-compatible server. It depends on nothing else in the crate, so it could
//! become a crate of its own.
//!
//! The write path, one stage per module: `conn` decodes a request → `core` stamps it into a
//! [`tree::Entry`] (time, session, auth ids, zxid) → the log makes it durable → [`tree::State::apply`]
//! runs it deterministically → `watch` turns its events into notifications → the reply goes
//! out after them, in the connection's arrival order.

pub mod config;
pub mod persist;
pub mod proto;
pub mod tree;
pub mod watch;
