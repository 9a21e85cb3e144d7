//! `syncmesh-replica`: a Redis-compatible store whose every value is CRDT state, so that replicas
//! in a mesh converge. See `README.md` at the repository root for the map of the code.

pub mod crdt;
