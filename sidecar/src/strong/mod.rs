//! Strong keys: keys (`--strong-keys` patterns) whose every command runs linearizably through a
//! Raft group of the durable replicas (`--strong-voters`), instead of being CRDT state merged
//! across the mesh. A popped element goes to one consumer, a consumer group divides its entries,
//! a lock has one holder.
//!
//! - [`route`]: which commands are strong (all their keys match a pattern).
//! - [`request`]: the Raft log entry (a command, with its time and id) and its outcome.
//! - [`machine`]: the state machine: a keyspace of strong keys driven by the command table.
//!
//! The design is written down in `docs/design.md`, "Strong keys".

pub mod machine;
pub mod raft_log;
pub mod raft_state;
pub mod request;
pub mod route;

use std::io::Cursor;

use request::{Outcome, Request};

openraft::declare_raft_types!(
    /// The strong keys' Raft types: entries carry [`Request`]s, applying one gives an
    /// [`Outcome`]; nodes are voters' mesh addresses.
    pub TypeConfig:
        D = Request,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
);
