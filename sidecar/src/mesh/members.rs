//! The member table: who is connected, what each member has applied, who left (retired) and who
//! is refused (quarantined). One lock holds all of it, so that a decision about a member (a new
//! connection, an ack, retirement, stability) always sees one consistent table.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::ControlTx;
use crate::crdt::{Dot, ReplicaId, VersionVector};

/// A connected peer: where to send it control messages (Pub/Sub).
pub struct PeerHandle {
    pub id: ReplicaId,
    pub addr: SocketAddr,
    /// The replica that opened the connection (decides which of two duplicates survives).
    pub dialer: ReplicaId,
    pub tx: ControlTx,
    pub connected_at: Instant,
    pub conn_id: u64,
}

/// What this replica knows of a member: what it has applied, and whether it is alive.
#[derive(Clone, Debug)]
pub struct Member {
    pub ack: VersionVector,
    /// The last ack that counts for stability: one whose own writes this replica has applied.
    pub stable_ack: VersionVector,
    pub beat: u64,
    pub last_change: Instant,
}

impl Member {
    fn new(now: Instant) -> Member {
        Member { ack: VersionVector::new(), stable_ack: VersionVector::new(), beat: 0, last_change: now }
    }
}

/// Why and since when a member is quarantined.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub reason: String,
    pub since_unix: u64,
}

/// One member as SYNCMESH.PEERS, INFO and /status show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerStatus {
    pub id: String,
    pub state: &'static str,
    pub addr: Option<String>,
    /// Log entries this replica applied that the member has not acknowledged.
    pub ops_lag: usize,
    /// Age of the oldest of those entries.
    pub time_lag_ms: u64,
    pub connected_secs: Option<u64>,
    /// Why a quarantined member is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The table itself (behind `Mesh::members`).
#[derive(Default)]
pub struct Members {
    pub peers: HashMap<ReplicaId, PeerHandle>,
    pub members: HashMap<ReplicaId, Member>,
    pub retired: HashSet<ReplicaId>,
    pub quarantine: HashMap<ReplicaId, Quarantined>,
}

impl Members {
    /// Registers a connected peer. If one is already connected, the connection opened by the
    /// replica with the smaller id survives (both ends reach the same decision).
    pub fn register(&mut self, me: ReplicaId, handle: PeerHandle) -> bool {
        if let Some(existing) = self.peers.get(&handle.id) {
            let winner = me.min(handle.id);
            if existing.dialer == winner || handle.dialer != winner {
                return false;
            }
        }
        self.members.entry(handle.id).or_insert_with(|| Member::new(Instant::now()));
        self.retired.remove(&handle.id);
        self.peers.insert(handle.id, handle);
        true
    }

    pub fn unregister(&mut self, id: ReplicaId, conn_id: u64) {
        if self.peers.get(&id).is_some_and(|p| p.conn_id == conn_id) {
            self.peers.remove(&id);
        }
    }

    /// An ack from a peer: what it has applied, and what it knows of every member.
    pub fn on_ack(
        &mut self,
        me: ReplicaId,
        from: ReplicaId,
        vv: VersionVector,
        members: Vec<(ReplicaId, VersionVector, u64)>,
        retired: Vec<ReplicaId>,
    ) {
        for r in retired {
            if r != me && !self.peers.contains_key(&r) {
                self.retired.insert(r);
            }
        }
        let now = Instant::now();
        let mut update = |id: ReplicaId, vv: VersionVector, beat: Option<u64>| {
            if id == me || self.retired.contains(&id) {
                return;
            }
            let m = self.members.entry(id).or_insert_with(|| Member::new(now));
            let mut merged = m.ack.clone();
            merged.merge(&vv);
            let newer_beat = beat.is_some_and(|b| b > m.beat);
            if merged != m.ack || newer_beat || beat.is_none() {
                m.last_change = now;
            }
            m.ack = merged;
            if let Some(b) = beat {
                m.beat = m.beat.max(b);
            }
        };
        update(from, vv, None);
        for (id, vv, beat) in members {
            update(id, vv, Some(beat));
        }
    }

    /// The member table as gossiped in acks (this replica included, with `beat`).
    pub fn gossip(
        &self,
        me: ReplicaId,
        my_vv: &VersionVector,
        beat: u64,
    ) -> (Vec<(ReplicaId, VersionVector, u64)>, Vec<ReplicaId>) {
        let mut v: Vec<(ReplicaId, VersionVector, u64)> =
            self.members.iter().map(|(id, m)| (*id, m.ack.clone(), m.beat)).collect();
        v.push((me, my_vv.clone(), beat));
        (v, self.retired.iter().copied().collect())
    }

    /// Members (other than this replica) whose acks cover `dot`: what WAIT counts.
    pub fn acked_count(&self, dot: Dot) -> usize {
        self.members.values().filter(|m| m.ack.covers(dot)).count()
    }

    /// Retires the members nobody has heard from for `after`; returns them.
    pub fn retire_silent(&mut self, after: Duration) -> Vec<ReplicaId> {
        let gone: Vec<ReplicaId> = self
            .members
            .iter()
            .filter(|(id, m)| !self.peers.contains_key(id) && m.last_change.elapsed() > after)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.members.remove(id);
            self.retired.insert(*id);
        }
        gone
    }

    /// What every member is known to have applied (`mine` bounds it): an ack counts once this
    /// replica has applied the member's own writes up to it, since then nothing that member
    /// wrote concurrently can still be on its way.
    pub fn stability_frontier(&mut self, mine: &VersionVector) -> VersionVector {
        let mut frontier = mine.clone();
        for (id, m) in self.members.iter_mut() {
            if mine.get(*id) >= m.ack.get(*id) {
                m.stable_ack = m.ack.clone();
            }
            frontier = frontier.meet(&m.stable_ack);
        }
        frontier
    }

    /// Refuses a member from now on; false if it already was.
    pub fn quarantine(&mut self, id: ReplicaId, reason: &str) -> bool {
        if self.quarantine.contains_key(&id) {
            return false;
        }
        let since_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.quarantine.insert(id, Quarantined { reason: reason.to_string(), since_unix });
        true
    }

    /// The members as the status commands show them; `lag` tells how far an ack is behind this
    /// replica's log (entries, age of the oldest in ms).
    pub fn status(
        &self,
        lag: impl Fn(&VersionVector) -> (usize, Option<u64>),
        now_ms: u64,
    ) -> Vec<PeerStatus> {
        let mut out: Vec<PeerStatus> = self
            .members
            .iter()
            .filter(|(id, _)| !self.quarantine.contains_key(id))
            .map(|(id, m)| {
                let (ops_lag, oldest) = lag(&m.ack);
                let p = self.peers.get(id);
                PeerStatus {
                    id: format!("{id:016x}"),
                    state: if p.is_some() { "connected" } else { "known" },
                    addr: p.map(|p| p.addr.to_string()),
                    ops_lag,
                    time_lag_ms: oldest.map(|ms| now_ms.saturating_sub(ms)).unwrap_or(0),
                    connected_secs: p.map(|p| p.connected_at.elapsed().as_secs()),
                    reason: None,
                }
            })
            .collect();
        let other = |id: &ReplicaId, state, reason| PeerStatus {
            id: format!("{id:016x}"),
            state,
            addr: None,
            ops_lag: 0,
            time_lag_ms: 0,
            connected_secs: None,
            reason,
        };
        for (id, q) in &self.quarantine {
            out.push(other(id, "quarantined", Some(format!("{} (since unix {})", q.reason, q.since_unix))));
        }
        for id in &self.retired {
            out.push(other(id, "retired", None));
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::Timestamp;

    fn vv(entries: &[(u64, u64)]) -> VersionVector {
        entries.iter().map(|&(r, t)| (r, Timestamp(t))).collect()
    }

    fn handle(id: ReplicaId, dialer: ReplicaId, conn_id: u64) -> PeerHandle {
        PeerHandle {
            id,
            addr: "127.0.0.1:1".parse().unwrap(),
            dialer,
            tx: super::super::control_queue().0,
            connected_at: Instant::now(),
            conn_id,
        }
    }

    #[test]
    fn of_two_connections_between_a_pair_the_smaller_ids_survives_on_both_ends() {
        let mut on_1 = Members::default();
        assert!(on_1.register(1, handle(2, 2, 1)));
        assert!(on_1.register(1, handle(2, 1, 2)), "the connection 1 dialled replaces 2's");
        assert!(!on_1.register(1, handle(2, 2, 3)));
        on_1.unregister(2, 1); // the replaced connection ends: the live one stays
        assert!(on_1.peers.contains_key(&2));
    }

    #[test]
    fn stability_counts_an_ack_once_the_members_own_writes_arrived() {
        let mut t = Members::default();
        t.register(1, handle(2, 1, 1));
        t.on_ack(1, 2, vv(&[(1, 10), (2, 5)]), vec![], vec![]);
        // We hold 2's writes up to 4 only: its ack of our 10 does not count yet.
        assert_eq!(t.stability_frontier(&vv(&[(1, 10), (2, 4)])).get(1), Timestamp(0));
        assert_eq!(t.stability_frontier(&vv(&[(1, 10), (2, 5)])).get(1), Timestamp(10));
    }
}
