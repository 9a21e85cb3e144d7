//! The state machine as openraft sees it: committed entries go to the [`Machine`], snapshots
//! are the machine's image, written to `--data-dir/raft/snapshot` (atomically: a new file, then
//! a rename) before openraft may purge the log entries it covers.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::machine::Machine;
use super::request::Outcome;
use super::TypeConfig;
use crate::server::store_lock::off_worker;
use crate::server::Server;

type NodeId = u64;

/// What the state machine shares with the leader's waits and with INFO.
pub struct Shared {
    pub state: Mutex<Applied>,
    /// The last applied log index, for those waiting on it.
    pub applied_index: watch::Sender<u64>,
}

pub struct Applied {
    pub machine: Machine,
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, BasicNode>,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

#[derive(Clone)]
pub struct StateMachine {
    server: Arc<Server>,
    pub shared: Arc<Shared>,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    path: PathBuf,
    /// Snapshots built since start (part of the snapshot id, which must be unique).
    built: Arc<std::sync::atomic::AtomicU64>,
}

fn read_snapshot(path: &Path) -> std::io::Result<Option<StoredSnapshot>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: {why}: move it aside to rebuild the strong keys from the other voters",
                path.display()
            ),
        )
    };
    if bytes.len() < 4 {
        return Err(bad("too short"));
    }
    let (crc, body) = bytes.split_at(4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad("checksum mismatch"));
    }
    bincode::deserialize(body).map(Some).map_err(|e| bad(&e.to_string()))
}

fn write_snapshot(path: &Path, s: &StoredSnapshot) -> std::io::Result<()> {
    use std::io::Write;
    let body = bincode::serialize(s).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&crc32fast::hash(&body).to_le_bytes())?;
    f.write_all(&body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl StateMachine {
    /// Opens the state machine of `dir`: the last snapshot, if any, is loaded (openraft then
    /// applies the log entries after it).
    pub fn open(server: Arc<Server>, dir: &Path) -> std::io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("snapshot");
        let stored = read_snapshot(&path)?;
        let mut applied =
            Applied { machine: Machine::new(), last_applied: None, membership: StoredMembership::default() };
        if let Some(s) = &stored {
            applied
                .machine
                .restore(&s.data)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            applied.last_applied = s.meta.last_log_id;
            applied.membership = s.meta.last_membership.clone();
        }
        let index = applied.last_applied.map(|l| l.index).unwrap_or(0);
        Ok(StateMachine {
            server,
            shared: Arc::new(Shared { state: Mutex::new(applied), applied_index: watch::channel(index).0 }),
            current: Arc::new(Mutex::new(stored)),
            path,
            built: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (data, last, membership) = {
            let st = self.shared.state.lock();
            (st.machine.snapshot(), st.last_applied, st.membership.clone())
        };
        let n = self.built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = match last {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, n),
            None => format!("none-{n}"),
        };
        let meta = SnapshotMeta { last_log_id: last, last_membership: membership, snapshot_id: id };
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let path = self.path.clone();
        let to_write = stored.clone();
        off_worker(move || write_snapshot(&path, &to_write))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let data = stored.data.clone();
        *self.current.lock() = Some(stored);
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let st = self.shared.state.lock();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut outcomes = Vec::new();
        let mut last = None;
        {
            let mut st = self.shared.state.lock();
            for entry in entries {
                st.last_applied = Some(entry.log_id);
                last = Some(entry.log_id.index);
                let outcome = match entry.payload {
                    EntryPayload::Blank => Outcome::Internal,
                    EntryPayload::Normal(req) => st.machine.apply(&self.server, entry.log_id.index, &req),
                    EntryPayload::Membership(m) => {
                        st.membership = StoredMembership::new(Some(entry.log_id), m);
                        Outcome::Internal
                    }
                };
                outcomes.push(outcome);
            }
        }
        if let Some(i) = last {
            self.shared.applied_index.send_replace(i);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let path = self.path.clone();
        let to_write = stored.clone();
        off_worker(move || write_snapshot(&path, &to_write))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        {
            let mut st = self.shared.state.lock();
            st.machine.restore(&stored.data).map_err(|e| {
                StorageIOError::read_snapshot(Some(meta.signature()), &std::io::Error::other(e))
            })?;
            st.last_applied = meta.last_log_id;
            st.membership = meta.last_membership.clone();
        }
        self.shared.applied_index.send_replace(meta.last_log_id.map(|l| l.index).unwrap_or(0));
        *self.current.lock() = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .current
            .lock()
            .as_ref()
            .map(|s| Snapshot { meta: s.meta.clone(), snapshot: Box::new(Cursor::new(s.data.clone())) }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use openraft::testing::{StoreBuilder, Suite};

    use super::super::raft_log::LogStore;
    use super::*;

    /// A fresh directory for each store the suite builds (removed when the guard drops).
    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    struct Builder(Arc<Server>);

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, Dir> for Builder {
        async fn build(&self) -> Result<(Dir, LogStore, StateMachine), StorageError<NodeId>> {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "syncmesh-raft-suite-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let log = LogStore::open(&dir).map_err(|e| StorageIOError::read_logs(&e))?;
            let sm = StateMachine::open(self.0.clone(), &dir).map_err(|e| StorageIOError::read_logs(&e))?;
            Ok((Dir(dir), log, sm))
        }
    }

    /// openraft's own test suite for log and state-machine storage.
    #[test]
    fn passes_openraft_storage_suite() {
        use clap::Parser;
        let server = Server::new(crate::config::Config::parse_from(["syncmesh-replica"]));
        Suite::test_all(Builder(server)).unwrap();
    }
}
