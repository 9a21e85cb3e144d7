//! The CRDT core: pure data structures and their merge rules, with no I/O.
//!
//! Everything the replica stores lives here as CRDT state from the first write, so that a single
//! replica and a mesh of them run exactly the same code. Tests drive this module directly (see
//! `tests/` in the crate) with simulated replicas and arbitrary delivery orders.
//!
//! - [`clock`]: hybrid logical clocks.
//! - [`dot`]: dots and version vectors.
//! - [`cell`]: the multi-value register and the counter every value is built from.
//! - [`keyspace`]: keys, their typed values and expiry.
//! - [`op`]: the operations that change a keyspace; the unit of replication.
//! - [`replica`]: one replica's whole state: clock, version vector, databases.

pub mod cell;
pub mod clock;
pub mod dot;
pub mod extended;
pub mod hll;
pub mod keyspace;
pub mod list;
pub mod number;
pub mod op;
pub mod replica;
pub mod stream;

pub mod blob;

pub use blob::{Blob, Value};

pub use clock::{Clock, Timestamp};
pub use dot::{Dot, ReplicaId, VersionVector};
pub use keyspace::{Entry, Keyspace, Kind};
pub use op::{Effect, Op, Ttl};
pub use replica::Replica;
