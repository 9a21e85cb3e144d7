//! `syncmesh-replica`: a Redis-compatible store whose every value is CRDT state, so that replicas
//! in a mesh converge. See `README.md` at the repository root for the map of the code.
//!
//! - [`crdt`]: the CRDT core, pure and without I/O.
//! - [`resp`]: the Redis protocol.
//! - [`commands`]: one file per command family.
//! - [`scripting`]: Lua scripts and function libraries.
//! - [`server`]: listeners, connections, the store and its watchers.
//! - [`mesh`]: peers, replication and snapshots.
//! - [`storage`]: the data directory: append-only log, snapshots, recovery.
//! - [`admin`]: the HTTP admin port.
//! - [`check_data`]: the `check-data` tool for a data directory.

pub mod admin;
pub mod alloc;
pub mod check_data;
pub mod commands;
pub mod config;
pub mod crdt;
pub mod mesh;
pub mod metrics;
pub mod net;
pub mod resp;
pub mod scripting;
pub mod server;
pub mod storage;
pub mod strong;
