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
pub mod request;
pub mod route;
