//! `--data-dir` with real processes: data and identity survive `kill -9` in every
//! `--appendfsync` mode, a restarted mesh member neither loses nor duplicates writes, a torn log
//! tail is cut (and kept aside), a damaged directory stops the replica without a byte changed
//! (`check-data --fix` then starts it with what was recoverable, `--recover-from-peers` rebuilds
//! it from a peer), and the log is compacted into a snapshot.

mod common;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{converge, free_port, ReplicaProcess};
use redis::Commands;

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("syncmesh-persist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn files(&self, ext: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        out.sort();
        out
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A replica A on `data` (its log to `log`, `extra` flags) and a memory-only peer B, meshed.
fn durable_with_peer(data: &Path, log: &Path, extra: &[&str]) -> (ReplicaProcess, ReplicaProcess) {
    let ports_a = (free_port(), free_port(), free_port());
    let b = ReplicaProcess::start(&["--peers", &format!("127.0.0.1:{}", ports_a.2)]);
    let seed_b = format!("127.0.0.1:{}", b.mesh_port);
    let mut args =
        vec!["--peers", &seed_b, "--bootstrap-timeout-ms", "300", "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    (ReplicaProcess::start_logged_on(ports_a, &args, log), b)
}

/// Writes of several types, some pipelined, as a client would make them.
fn write_mix(r: &ReplicaProcess, tag: &str) {
    let mut c = r.client();
    let _: () = c.set(format!("{tag}:str"), "value").unwrap();
    for _ in 0..25 {
        let _: i64 = c.incr(format!("{tag}:counter"), 2).unwrap();
    }
    let _: () = c.hset_multiple(format!("{tag}:hash"), &[("a", "1"), ("b", "2")]).unwrap();
    let _: i64 = c.rpush(format!("{tag}:list"), &["x", "y", "z"]).unwrap();
    let _: Option<String> = c.lpop(format!("{tag}:list"), None).unwrap();
    let _: i64 = c.sadd(format!("{tag}:set"), &["m1", "m2"]).unwrap();
    let _: i64 = c.zadd(format!("{tag}:zset"), "p", 1.5).unwrap();
    let _: String =
        redis::cmd("XADD").arg(format!("{tag}:stream")).arg("*").arg("f").arg("v").query(&mut c).unwrap();
    let _: bool = c.expire(format!("{tag}:str"), 3600).unwrap();
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.set(format!("{tag}:p{i}"), i).ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    let _: () = redis::pipe()
        .atomic()
        .incr(format!("{tag}:counter"), 1)
        .del(format!("{tag}:p0"))
        .query(&mut c)
        .unwrap();
}

#[test]
fn data_survives_kill_9_in_every_fsync_mode() {
    for mode in ["always", "everysec", "no"] {
        let dir = TempDir::new(&format!("modes-{mode}"));
        let mut r = ReplicaProcess::start(&["--data-dir", dir.path(), "--appendfsync", mode]);
        assert_eq!(r.info_field("persistence", "aof_enabled"), "1");
        assert_eq!(r.info_field("persistence", "aof_fsync_policy"), mode);
        let id = r.info_field("mesh", "replica_id");
        write_mix(&r, mode);
        let digest = r.digest();
        r.kill9_and_restart();
        assert_eq!(r.digest(), digest, "appendfsync {mode}: state after kill -9");
        assert_eq!(r.info_field("mesh", "replica_id"), id, "appendfsync {mode}: same identity");
        let mut c = r.client();
        let v: i64 = c.get(format!("{mode}:counter")).unwrap();
        assert_eq!(v, 51);
        let ttl: i64 = c.ttl(format!("{mode}:str")).unwrap();
        assert!(ttl > 3500, "TTL kept: {ttl}");
        // Writes go on after recovery and survive the next crash too.
        let _: i64 = c.incr(format!("{mode}:counter"), 1).unwrap();
        r.kill9_and_restart();
        let v: i64 = r.client().get(format!("{mode}:counter")).unwrap();
        assert_eq!(v, 52, "appendfsync {mode}: second recovery");
        if mode == "always" {
            let written: u64 = r.info_field("persistence", "aof_records_written").parse().unwrap();
            let _: i64 = r.client().incr("after", 1).unwrap();
            let synced: u64 = r.info_field("persistence", "aof_records_fsynced").parse().unwrap();
            assert!(synced > written, "the INCR was fsynced before its reply: {synced} > {written}");
        }
    }
}

#[test]
fn without_a_data_dir_a_restart_is_a_new_empty_member() {
    let mut r = ReplicaProcess::start(&[]);
    assert_eq!(r.info_field("persistence", "aof_enabled"), "0");
    let id = r.info_field("mesh", "replica_id");
    let _: () = r.client().set("k", "v").unwrap();
    r.kill9_and_restart();
    let v: Option<String> = r.client().get("k").unwrap();
    assert_eq!(v, None);
    assert_ne!(r.info_field("mesh", "replica_id"), id);
    let err = redis::cmd("BGREWRITEAOF").query::<String>(&mut r.client()).unwrap_err();
    assert!(err.to_string().contains("--data-dir"), "{err}");
}

/// Two replicas in a mesh, one with a data directory. Both increment one counter, the durable
/// one is killed with SIGKILL and restarted, both go on incrementing: every increment counts
/// exactly once, both converge, and the restarted replica kept its id (a reused dot would make
/// the peer drop its new writes as duplicates, a lost one would miss increments).
#[test]
fn a_restarted_mesh_member_keeps_its_identity_and_loses_or_repeats_nothing() {
    let dir = TempDir::new("mesh-identity");
    let ports_a = (free_port(), free_port(), free_port());
    let ports_b = (free_port(), free_port(), free_port());
    let seed_a = format!("127.0.0.1:{}", ports_a.2);
    let seed_b = format!("127.0.0.1:{}", ports_b.2);
    let common_args = ["--bootstrap-timeout-ms", "300"];
    let mut a_args = vec!["--peers", &seed_b, "--data-dir", dir.path(), "--appendfsync", "always"];
    a_args.extend_from_slice(&common_args);
    let mut b_args = vec!["--peers", &seed_a];
    b_args.extend_from_slice(&common_args);
    let mut a = ReplicaProcess::spawn_on(ports_a, &a_args);
    let b = ReplicaProcess::spawn_on(ports_b, &b_args);
    a.wait_ready(Duration::from_secs(20));
    b.wait_ready(Duration::from_secs(20));
    let id = a.info_field("mesh", "replica_id");

    let incr = |r: &ReplicaProcess, n: usize| {
        let mut c = r.client();
        for _ in 0..n {
            let _: i64 = c.incr("counter", 1).unwrap();
            let _: i64 =
                c.sadd("members", format!("{}-{}", r.port, Instant::now().elapsed().as_nanos())).unwrap();
        }
    };
    incr(&a, 100);
    incr(&b, 100);
    converge(&[&a, &b], Duration::from_secs(20));

    a.kill9_and_restart();
    assert_eq!(a.info_field("mesh", "replica_id"), id, "the replica id came back from the data dir");
    // The peer wrote while it was gone; the restarted replica writes right away, before or
    // while it catches up.
    incr(&a, 50);
    incr(&b, 50);
    converge(&[&a, &b], Duration::from_secs(20));
    let total: i64 = a.client().get("counter").unwrap();
    assert_eq!(total, 300, "every increment counted once");
    let total_b: i64 = b.client().get("counter").unwrap();
    assert_eq!(total_b, 300);

    // Once more, killed right after a burst of pipelined writes.
    let mut pipe = redis::pipe();
    for _ in 0..100 {
        pipe.incr("counter", 1).ignore();
    }
    let _: () = pipe.query(&mut a.client()).unwrap();
    a.kill9_and_restart();
    incr(&a, 10);
    converge(&[&a, &b], Duration::from_secs(20));
    let total: i64 = b.client().get("counter").unwrap();
    assert_eq!(total, 410);
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "aof"))
        .collect();
    segs.sort();
    // Every start opens a new segment; the one written before the crash is the last non-empty.
    segs.into_iter().rev().find(|p| std::fs::metadata(p).unwrap().len() > 32).expect("a segment with records")
}

/// Cuts the last record of the log short while the replica is down (what a crash in the middle
/// of a write leaves), restarts it, and checks that the earlier records are back, the torn one
/// is gone from the log but kept aside byte for byte, and the replica said so.
#[test]
fn a_torn_last_record_is_cut_kept_aside_and_earlier_ones_kept() {
    let dir = TempDir::new("torn-tail");
    let data = dir.join("data");
    let log = dir.join("replica.log");
    let mut r = ReplicaProcess::start_logged_on(
        (free_port(), free_port(), free_port()),
        &["--data-dir", data.to_str().unwrap(), "--appendfsync", "always"],
        &log,
    );
    let mut c = r.client();
    for i in 0..10 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    drop(c);
    r.kill();
    let seg = last_segment(&data);
    let whole = std::fs::read(&seg).unwrap();
    let torn = &whole[..whole.len() - 3];
    std::fs::write(&seg, torn).unwrap();
    r.kill9_and_restart();
    let mut c = r.client();
    for i in 0..9 {
        let v: Option<i64> = c.get(format!("k{i}")).unwrap();
        assert_eq!(v, Some(i), "k{i} kept");
    }
    let last: Option<i64> = c.get("k9").unwrap();
    assert_eq!(last, None, "the torn last record is not replayed");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("WARN") && text.contains("torn"), "warning logged: {text}");
    assert_every_byte_kept(&data, &[(seg.file_name().unwrap().to_string_lossy().into(), torn.to_vec())]);
    // The replica goes on writing to a healthy log.
    let _: () = c.set("after", 1).unwrap();
    r.kill9_and_restart();
    let v: Option<i64> = r.client().get("after").unwrap();
    assert_eq!(v, Some(1));
    let v: Option<i64> = r.client().get("k8").unwrap();
    assert_eq!(v, Some(8));
}

/// A flipped bit in the last record: the record is complete but fails its checksum, which no
/// crash explains: the replica refuses to start and changes nothing.
#[test]
fn a_corrupt_last_record_stops_the_replica() {
    let dir = TempDir::new("bad-last");
    let data = dir.join("data");
    let log = dir.join("replica.log");
    let mut r = ReplicaProcess::start_logged_on(
        (free_port(), free_port(), free_port()),
        &["--data-dir", data.to_str().unwrap(), "--appendfsync", "always"],
        &log,
    );
    for i in 0..10 {
        let _: () = r.client().set(format!("k{i}"), i).unwrap();
    }
    r.kill();
    let seg = last_segment(&data);
    let mut bytes = std::fs::read(&seg).unwrap();
    let i = bytes.len() - 2;
    bytes[i] ^= 0x5a;
    std::fs::write(&seg, bytes).unwrap();
    let before = dir_hashes(&data);
    let text = refused(&mut r, &log);
    assert!(text.contains("record checksum mismatch") && text.contains("9 keys are recoverable"), "{text}");
    assert_eq!(dir_hashes(&data), before, "not a byte changed");
}

/// The log is compacted into a snapshot when it outgrows the minimum size, and by
/// BGREWRITEAOF; recovery from snapshot plus the newer log gives the same state.
#[test]
fn the_log_is_compacted_into_a_snapshot_and_recovery_uses_it() {
    let dir = TempDir::new("rewrite");
    let mut r = ReplicaProcess::start(&[
        "--data-dir",
        dir.path(),
        "--appendfsync",
        "everysec",
        "--aof-rewrite-min-size",
        "64kb",
    ]);
    let mut c = r.client();
    let value = "x".repeat(100);
    for round in 0..5 {
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.set(format!("key{i}"), format!("{value}{round}")).ignore();
            pipe.incr("counter", 1).ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.info_field("persistence", "aof_rewrites") == "0" {
        assert!(Instant::now() < deadline, "no automatic rewrite");
        std::thread::sleep(Duration::from_millis(100));
    }
    while r.info_field("persistence", "aof_rewrite_in_progress") == "1" {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(r.info_field("persistence", "aof_last_bgrewrite_status"), "ok");
    assert!(dir.join("snapshot.bin").exists());
    let _: i64 = c.incr("counter", 1).unwrap();
    let reply: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert!(reply.contains("started"), "{reply}");
    let _: i64 = c.incr("counter", 1).unwrap();
    while r.info_field("persistence", "aof_rewrite_in_progress") == "1" {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lastsave: i64 = redis::cmd("LASTSAVE").query(&mut c).unwrap();
    assert!(lastsave > 0);
    assert!(dir.files("aof").len() <= 2, "covered segments deleted: {:?}", dir.files("aof"));
    let (_, metrics) = r.http_get("/metrics");
    assert!(metrics
        .lines()
        .any(|l| l.starts_with("syncmesh_aof_rewrites ") && l != "syncmesh_aof_rewrites 0"));
    assert!(metrics.contains("syncmesh_aof_write_ok 1"), "{metrics}");
    let (_, status) = r.http_get("/status");
    assert!(status.contains("\"appendfsync\":\"everysec\""), "{status}");
    let digest = r.digest();
    drop(c);
    r.kill9_and_restart();
    assert_eq!(r.digest(), digest);
    let v: i64 = r.client().get("counter").unwrap();
    assert_eq!(v, 2502);
}

/// Recovery time for a larger dataset, printed for docs/durability.md (not a timed assertion).
#[test]
fn recovery_of_100k_keys() {
    let dir = TempDir::new("recovery-time");
    let mut r = ReplicaProcess::start(&["--data-dir", dir.path(), "--appendfsync", "no"]);
    let mut c = r.client();
    let started = Instant::now();
    for chunk in 0..100 {
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.set(format!("key:{chunk}:{i}"), "0123456789abcdef0123456789abcdef").ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }
    let load = started.elapsed();
    let digest = r.digest();
    drop(c);
    let started = Instant::now();
    r.kill9_and_restart();
    let from_log = started.elapsed();
    assert_eq!(r.digest(), digest);
    let _: () = redis::cmd("SAVE").query(&mut r.client()).unwrap();
    let started = Instant::now();
    r.kill9_and_restart();
    let from_snapshot = started.elapsed();
    assert_eq!(r.digest(), digest);
    eprintln!(
        "100k keys: loaded in {load:?}; restart to ready from the log {from_log:?}, from a snapshot {from_snapshot:?}"
    );
}

/// Offsets where the records of a log segment end (after its 32-byte header).
fn record_ends(segment: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 32;
    while at + 8 <= segment.len() {
        let len = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
        ends.push(at);
    }
    ends
}

/// Simulates a host crash under `appendfsync no`: the log loses its last records although the
/// peer already has them. The restarted replica sees, at the handshake, that the peer holds
/// writes of its own id that it lacks; it must not write on under that id with that peer, nor
/// trust the claim: it quarantines the peer and keeps its data directory as it is, and a person
/// decides (docs/durability.md, "A replica whose history is behind its peers'"). The person's way
/// back: stop it, `check-data DIR --set-aside`, start it again: a new member that gets everything
/// back from the peer, its lost writes included, with the old history still on disk.
#[test]
fn a_replica_whose_log_lost_writes_a_peer_holds_quarantines_it_and_keeps_its_files() {
    let dir = TempDir::new("lost-tail");
    let data = dir.join("data");
    let log = dir.join("replica.log");
    let (mut a, b) = durable_with_peer(&data, &log, &["--appendfsync", "no"]);
    let mut c = a.client();
    for i in 0..10 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    drop(c);
    converge(&[&a, &b], Duration::from_secs(20));
    a.kill();
    // Drop the last three records at a record boundary: no torn tail, just a shorter history.
    let seg = last_segment(&data);
    let bytes = std::fs::read(&seg).unwrap();
    let ends = record_ends(&bytes);
    assert!(ends.len() >= 4, "{ends:?}");
    std::fs::write(&seg, &bytes[..ends[ends.len() - 4]]).unwrap();
    let kept = std::fs::read(&seg).unwrap();

    a.kill9_and_respawn();
    let b_id = b.info_field("mesh", "replica_id");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while a.info_field("mesh", "mesh_quarantined_peers") != "1" {
        assert!(std::time::Instant::now() < deadline, "the peer was not quarantined");
        std::thread::sleep(Duration::from_millis(50));
    }
    a.assert_running();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("mesh member quarantined") && text.contains("data directory does not hold"),
        "{text}"
    );
    let peers: redis::Value = redis::cmd("SYNCMESH.PEERS").query(&mut a.client()).unwrap();
    assert!(format!("{peers:?}").contains(&b_id), "{peers:?}");
    // Nothing of the directory was removed or cut.
    assert_eq!(std::fs::read(&seg).unwrap()[..kept.len()], kept[..]);
    for i in 0..7 {
        let v: Option<i64> = a.client().get(format!("k{i}")).unwrap();
        assert_eq!(v, Some(i), "k{i} is still served from the directory");
    }

    // The way back. While the replica runs, the tool refuses to touch the directory.
    let old_id = a.info_field("mesh", "replica_id");
    let (code, out) = check_data(&data, &["--set-aside"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("stop the replica first"), "{out}");
    a.kill();
    let history = history_files(&data);
    assert!(
        history.iter().any(|(name, bytes)| data.join(name) == seg && bytes[..] == kept[..]),
        "{history:?}"
    );
    let (code, out) = check_data(&data, &["--set-aside"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the next start") && out.contains("is a new member"), "{out}");
    let aside = aside_dirs(&data, "set-aside-");
    assert_eq!(aside.len(), 1, "{aside:?}: {out}");
    assert!(history_files(&data).is_empty(), "the history moved: {:?}", history_files(&data));
    assert!(data.join("database").exists(), "the database file stays");

    a.kill9_and_restart();
    let new_id = a.info_field("mesh", "replica_id");
    assert_ne!(new_id, old_id, "a new member");
    converge(&[&a, &b], Duration::from_secs(20));
    for i in 0..10 {
        let v: Option<i64> = a.client().get(format!("k{i}")).unwrap();
        assert_eq!(v, Some(i), "k{i} came back from the peer");
    }
    assert_eq!(a.info_field("mesh", "mesh_quarantined_peers"), "0");
    // It writes on under its new id, and the peer takes those writes.
    let _: () = a.client().set("after", 1).unwrap();
    converge(&[&a, &b], Duration::from_secs(20));
    assert_eq!(b.client().get::<_, Option<i64>>("after").unwrap(), Some(1));
    // The set-aside history is still there, byte for byte, next to the new member's files.
    assert_eq!(aside_dirs(&data, "set-aside-"), aside);
    for (name, bytes) in &history {
        assert_eq!(&std::fs::read(aside[0].join(name)).unwrap(), bytes, "{name} kept unchanged");
    }
    let readme = std::fs::read_to_string(aside[0].join("README")).unwrap();
    assert!(readme.contains("--set-aside"), "{readme}");
    assert!(!history_files(&data).is_empty(), "the new member has a log of its own");
}

fn snapshots_sent(r: &ReplicaProcess) -> u64 {
    r.metric("syncmesh_mesh_snapshots_sent")
}

/// Both replicas durable. B is down while A writes; then A is killed and restarted, then B
/// comes back. A's writes that B lacks are in A's recovered log, which seeds its replication
/// log: B gets them streamed, no snapshot is needed in either direction.
#[test]
fn a_restarted_replica_streams_its_recovered_log_to_a_peer_that_lacks_it() {
    let dir_a = TempDir::new("stream-a");
    let dir_b = TempDir::new("stream-b");
    let pa = (free_port(), free_port(), free_port());
    let pb = (free_port(), free_port(), free_port());
    let (sa, sb) = (format!("127.0.0.1:{}", pa.2), format!("127.0.0.1:{}", pb.2));
    let mut a = ReplicaProcess::spawn_on(
        pa,
        &["--peers", &sb, "--bootstrap-timeout-ms", "300", "--data-dir", dir_a.path()],
    );
    let mut b = ReplicaProcess::spawn_on(
        pb,
        &["--peers", &sa, "--bootstrap-timeout-ms", "300", "--data-dir", dir_b.path()],
    );
    a.wait_ready(Duration::from_secs(20));
    b.wait_ready(Duration::from_secs(20));
    for i in 0..20 {
        let _: i64 = a.client().incr("counter", 1).unwrap();
        let _: () = b.client().set(format!("b{i}"), i).unwrap();
    }
    converge(&[&a, &b], Duration::from_secs(20));

    b.kill();
    for i in 0..200 {
        let _: i64 = a.client().incr("counter", 1).unwrap();
        let _: () = a.client().set(format!("a{i}"), i).unwrap();
    }
    a.kill9_and_restart();
    b.kill9_and_restart();
    converge(&[&a, &b], Duration::from_secs(20));
    let v: i64 = b.client().get("counter").unwrap();
    assert_eq!(v, 220);
    assert_eq!(snapshots_sent(&a), 0, "A streamed its recovered log");
    assert_eq!(snapshots_sent(&b), 0);
}

/// A disk that fills up (a 1 MB tmpfs; skipped where mounting is not allowed): writes are
/// refused with MISCONF and reads keep working; once there is room again the held records are
/// written and writes are accepted; everything acknowledged before is recovered after kill -9.
#[test]
fn a_full_disk_refuses_writes_until_it_has_room_again() {
    let dir = TempDir::new("full-disk");
    let mount = dir.join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", mount.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    let mut r = ReplicaProcess::start(&["--data-dir", mount.to_str().unwrap(), "--appendfsync", "everysec"]);
    let mut c = r.client();
    let value = "x".repeat(10_000);
    let mut acked = 0;
    let mut refusal = None;
    for i in 0..300 {
        match c.set::<_, _, ()>(format!("k{i}"), &value) {
            Ok(()) => acked = i + 1,
            Err(e) => {
                refusal = Some(e.to_string());
                break;
            }
        }
    }
    let refusal = refusal.expect("a write is refused once the disk is full");
    assert!(refusal.contains("MISCONF"), "{refusal}");
    assert_eq!(r.info_field("persistence", "aof_last_write_status"), "err");
    let v: Option<String> = c.get("k0").unwrap();
    assert_eq!(v.as_deref(), Some(value.as_str()), "reads keep working");

    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=8m", mount.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(grown.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.set::<_, _, ()>("after", 1).is_err() {
        assert!(Instant::now() < deadline, "writes accepted again once there is room");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(r.info_field("persistence", "aof_last_write_status"), "ok");
    drop(c);
    r.kill9_and_restart();
    let mut c = r.client();
    for i in 0..acked {
        let v: Option<String> = c.get(format!("k{i}")).unwrap();
        assert_eq!(v.as_deref(), Some(value.as_str()), "k{i} recovered");
    }
    let v: Option<i64> = c.get("after").unwrap();
    assert_eq!(v, Some(1));
    drop(c);
    r.kill();
}

/// Two processes never share a data directory: the second one refuses to start.
#[test]
fn a_data_dir_in_use_is_refused() {
    let dir = TempDir::new("in-use");
    let r = ReplicaProcess::start(&["--data-dir", dir.path()]);
    let _: () = r.client().set("k", "v").unwrap();
    let second =
        ReplicaProcess::spawn_on((free_port(), free_port(), free_port()), &["--data-dir", dir.path()]);
    let status = second.wait_exit(Duration::from_secs(10)).expect("the second replica exits");
    assert!(!status.success());
    let v: String = r.client().get("k").unwrap();
    assert_eq!(v, "v");
}

// --- A damaged data directory is kept, never deleted -------------------------------------------

/// Damage offsets from a seed, printed so that a failing draw can be replayed
/// (`SYNCMESH_DAMAGE_SEED=N cargo test …`).
struct Rng(u64);

impl Rng {
    fn seeded(test: &str) -> Rng {
        let seed =
            std::env::var("SYNCMESH_DAMAGE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
                    % 1_000_000
            });
        eprintln!("{test}: damage seed {seed} (replay with SYNCMESH_DAMAGE_SEED={seed})");
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Every file under `dir` (recursively, the lock file too) with its length and a hash of its
/// bytes.
fn dir_hashes(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), (bytes.len() as u64, h.finish()));
            }
        }
    }
    out
}

/// The files of the history (snapshot, segments) with their bytes.
fn history_files(data: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .filter(|(n, _)| n == "snapshot.bin" || n.ends_with(".aof"))
        .map(|(n, p)| (n, std::fs::read(p).unwrap()))
        .collect();
    out.sort();
    out
}

/// The directories of `data` whose names start with `prefix` (`damaged-`, `set-aside-`).
fn aside_dirs(data: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    out.sort();
    out
}

/// Every byte of `originals` is still there: each file is in the data directory (perhaps cut)
/// with the rest in a `damaged-*` directory (`NAME.from-OFFSET`), or moved there whole.
fn assert_every_byte_kept(data: &Path, originals: &[(String, Vec<u8>)]) {
    let aside = aside_dirs(data, "damaged-");
    for (name, bytes) in originals {
        let now = std::fs::read(data.join(name)).ok();
        let kept = match &now {
            Some(now) if now.len() == bytes.len() => {
                assert_eq!(now, bytes, "{name} changed");
                continue;
            }
            Some(now) => {
                assert!(now.len() < bytes.len(), "{name} grew");
                let cut = format!("{name}.from-{}", now.len());
                let tail = aside.iter().find_map(|d| std::fs::read(d.join(&cut)).ok());
                [now.clone(), tail.unwrap_or_else(|| panic!("{cut} kept in {aside:?}"))].concat()
            }
            None => aside
                .iter()
                .find_map(|d| std::fs::read(d.join(name)).ok())
                .unwrap_or_else(|| panic!("{name} moved whole into {aside:?}")),
        };
        assert!(&kept == bytes, "{name}: the kept bytes are not the original ones");
    }
}

/// Restarts the (stopped) replica on its directory and returns what it wrote to its log before
/// exiting: it must refuse to start.
fn refused(r: &mut ReplicaProcess, log: &Path) -> String {
    let from = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0) as usize;
    r.kill9_and_respawn();
    let status = r.wait_exit(Duration::from_secs(30)).expect("the replica refuses to start");
    assert!(!status.success());
    std::fs::read_to_string(log).unwrap()[from..].to_string()
}

/// Runs `syncmesh-replica check-data DIR ARGS`: exit code and output.
fn check_data(data: &Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncmesh-replica"))
        .arg("check-data")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

const KEYS: usize = 2000;

fn value(i: usize) -> String {
    format!("value-{i}-{}", "x".repeat(i % 40))
}

/// Sets k{i} for i in `keys`, one command (so one log record) each, pipelined.
fn write_keys(r: &ReplicaProcess, keys: std::ops::Range<usize>) {
    let mut c = r.client();
    let keys: Vec<usize> = keys.collect();
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.set(format!("k{i}"), value(*i)).ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }
}

/// A replica alone on `data` that set k0.. in a first life and ..k{KEYS-1} in a second (two
/// segments; with `save`, a SAVE after the first life's writes puts them in the snapshot).
/// Returns it stopped.
fn history(data: &Path, log: &Path, save: bool) -> ReplicaProcess {
    let mut r = ReplicaProcess::start_logged_on(
        (free_port(), free_port(), free_port()),
        &["--data-dir", data.to_str().unwrap(), "--appendfsync", "always"],
        log,
    );
    write_keys(&r, 0..KEYS / 2);
    if save {
        let _: () = redis::cmd("SAVE").query(&mut r.client()).unwrap();
    }
    r.kill9_and_restart();
    write_keys(&r, KEYS / 2..KEYS);
    r.kill();
    r
}

/// The keys the replica shows are exactly k0..k{n-1}, with their values.
fn assert_keys_are_a_prefix(r: &ReplicaProcess, n: usize, what: &str) {
    let mut c = r.client();
    let size: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(size, n, "{what}: keys after the fix");
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
    for (i, v) in values.iter().enumerate() {
        let expected = (i < n).then(|| value(i));
        assert_eq!(v, &expected, "{what}: k{i}");
    }
}

/// Byte ranges of a segment's records, with whether each holds an update (a SET here).
fn segment_records(bytes: &[u8]) -> Vec<(usize, usize, bool)> {
    let mut out = Vec::new();
    let mut at = 32;
    while at + 8 < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let end = at + 8 + len;
        if end > bytes.len() {
            break;
        }
        out.push((at, end, bytes[at + 8] == 1));
        at = end;
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Harm {
    /// One bit flipped.
    Flip,
    /// A 4 KiB page (aligned in the file) zeroed.
    ZeroPage,
    /// The file cut short.
    Truncate,
}

/// Damages `bytes` at a random place below `limit` (`limit` > 0); returns the first byte that
/// changed (None: the damage changed nothing, draw again).
fn harm(bytes: &mut Vec<u8>, how: Harm, limit: usize, rng: &mut Rng) -> Option<usize> {
    match how {
        Harm::Flip => {
            let at = rng.below(limit as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
            Some(at)
        }
        Harm::ZeroPage => {
            let page = rng.below(limit.div_ceil(4096) as u64) as usize * 4096;
            let end = (page + 4096).min(bytes.len());
            let first = (page..end).find(|&i| bytes[i] != 0)?;
            bytes[page..end].fill(0);
            Some(first)
        }
        Harm::Truncate => {
            let at = rng.below(limit as u64) as usize;
            bytes.truncate(at);
            Some(at)
        }
    }
}

/// Damages one of the two segments of `history(…, false)` where a start cannot take it for a
/// torn tail (before the last record of the last segment; a cut only in the first segment).
/// Returns a description and the keys recoverable: the updates before the first changed byte.
fn damage_log(data: &Path, how: Harm, rng: &mut Rng) -> (String, usize) {
    let segs = history_files(data);
    assert_eq!(segs.len(), 2, "{:?}", segs.iter().map(|s| &s.0).collect::<Vec<_>>());
    loop {
        let which = match how {
            Harm::Truncate => 0,
            _ => rng.below(2) as usize,
        };
        let (name, original) = &segs[which];
        let records = segment_records(original);
        let limit = match (how, which) {
            (Harm::Truncate, _) => original.len(),
            (_, 1) => records.last().unwrap().0,
            _ => original.len(),
        };
        let mut bytes = original.clone();
        let Some(first) = harm(&mut bytes, how, limit, rng) else { continue };
        if matches!(how, Harm::Truncate) && first < 32 {
            continue; // a header cut short is what a crash right after creating a segment leaves
        }
        std::fs::write(data.join(name), &bytes).unwrap();
        let before: usize =
            segs[..which].iter().map(|(_, b)| segment_records(b).iter().filter(|r| r.2).count()).sum();
        let here = records.iter().filter(|r| r.2 && r.1 <= first).count();
        return (format!("{how:?} in {name} at byte {first} of {}", original.len()), before + here);
    }
}

/// Flipped bits, zeroed pages and a cut at random places of the log: the replica refuses to
/// start with an error naming the file, the offset and the keys recoverable, and not a byte of
/// the directory changes; `check-data` reports the same; `check-data --fix` sets the damage
/// aside (every byte is still somewhere) and the replica then starts with exactly the keys
/// written before the damage.
#[test]
fn damage_in_the_log_stops_the_replica_and_check_data_fix_starts_it_with_the_keys_before_it() {
    let mut rng = Rng::seeded("damage in the log");
    for how in [Harm::Flip, Harm::ZeroPage, Harm::Truncate, Harm::Flip, Harm::ZeroPage] {
        let dir = TempDir::new(&format!("log-{how:?}-{}", rng.below(1 << 20)));
        let data = dir.join("data");
        let log = dir.join("replica.log");
        let mut r = history(&data, &log, false);
        let (what, recoverable) = damage_log(&data, how, &mut rng);
        eprintln!("  {what}: {recoverable} keys recoverable");
        let damaged = history_files(&data);
        let before = dir_hashes(&data);

        let text = refused(&mut r, &log);
        assert!(text.contains("is damaged: log-"), "{what}: {text}");
        assert!(
            text.contains(&format!("; {recoverable} keys are recoverable up to there")),
            "{what}: {text}"
        );
        assert!(text.contains("check-data") && text.contains("--recover-from-peers"), "{what}: {text}");
        assert_eq!(dir_hashes(&data), before, "{what}: not a byte changed by the refused start");

        let (code, out) = check_data(&data, &[]);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(
            out.contains("DAMAGED") && out.contains(&format!("keys recoverable: {recoverable} ")),
            "{what}: {out}"
        );
        assert_eq!(dir_hashes(&data), before, "{what}: check-data changes nothing");

        let (code, out) = check_data(&data, &["--fix"]);
        assert_eq!(code, 0, "{what}: {out}");
        assert!(
            out.contains(&format!("OK: a replica starts on this directory with {recoverable} keys")),
            "{what}: {out}"
        );
        assert_every_byte_kept(&data, &damaged);
        r.kill9_and_restart();
        assert_keys_are_a_prefix(&r, recoverable, &what);
        // And it writes on.
        let _: () = r.client().set("after", 1).unwrap();
        r.kill9_and_restart();
        assert_eq!(r.client().get::<_, Option<i64>>("after").unwrap(), Some(1), "{what}");
    }
}

/// The last segment cut at a random place (a crash in the middle of a write): the replica
/// starts with the records before the cut, and the torn bytes are kept aside.
#[test]
fn a_log_cut_short_at_a_random_place_of_its_last_segment_starts_with_the_records_before_it() {
    let mut rng = Rng::seeded("torn last segment");
    for _ in 0..2 {
        let dir = TempDir::new(&format!("cut-{}", rng.below(1 << 20)));
        let data = dir.join("data");
        let log = dir.join("replica.log");
        let mut r = history(&data, &log, false);
        let segs = history_files(&data);
        let (name, original) = &segs[1];
        let records = segment_records(original);
        let cut = 33 + rng.below(original.len() as u64 - 34) as usize;
        std::fs::write(data.join(name), &original[..cut]).unwrap();
        let before: usize = segment_records(&segs[0].1).iter().filter(|r| r.2).count();
        let kept = before + records.iter().filter(|r| r.2 && r.1 <= cut).count();
        let what = format!("{name} cut at byte {cut} of {}", original.len());
        eprintln!("  {what}: {kept} keys before it");
        r.kill9_and_restart();
        assert_keys_are_a_prefix(&r, kept, &what);
        assert_every_byte_kept(&data, &[(name.clone(), original[..cut].to_vec())]);
    }
}

/// Flipped bits, a zeroed page, a cut at random places of the snapshot: the replica refuses to
/// start (nothing is recoverable: the log builds on the snapshot) and changes nothing;
/// `check-data --fix` moves every file aside and the replica starts as a new, empty member.
#[test]
fn damage_in_the_snapshot_stops_the_replica_and_changes_nothing() {
    let mut rng = Rng::seeded("damage in the snapshot");
    for how in [Harm::Flip, Harm::ZeroPage, Harm::Truncate] {
        let dir = TempDir::new(&format!("snap-{how:?}-{}", rng.below(1 << 20)));
        let data = dir.join("data");
        let log = dir.join("replica.log");
        let mut r = history(&data, &log, true);
        r.kill9_and_restart();
        let id = r.info_field("mesh", "replica_id");
        r.kill();
        let path = data.join("snapshot.bin");
        let original = std::fs::read(&path).unwrap();
        let mut bytes = original.clone();
        let first = loop {
            if let Some(first) = harm(&mut bytes, how, original.len(), &mut rng) {
                break first;
            }
        };
        std::fs::write(&path, &bytes).unwrap();
        let what = format!("{how:?} in snapshot.bin at byte {first} of {}", original.len());
        eprintln!("  {what}");
        let damaged = history_files(&data);
        let before = dir_hashes(&data);

        let text = refused(&mut r, &log);
        assert!(
            text.contains("is damaged: snapshot.bin at byte 0") && text.contains("; 0 keys are recoverable"),
            "{what}: {text}"
        );
        assert_eq!(dir_hashes(&data), before, "{what}: not a byte changed");
        let (code, out) = check_data(&data, &[]);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.contains("snapshot.bin") && out.contains("DAMAGED"), "{what}: {out}");

        let (code, out) = check_data(&data, &["--fix"]);
        assert_eq!(code, 0, "{what}: {out}");
        assert_every_byte_kept(&data, &damaged);
        r.kill9_and_restart();
        assert_keys_are_a_prefix(&r, 0, &what);
        assert_ne!(r.info_field("mesh", "replica_id"), id, "{what}: a new member");
    }
}

/// `--recover-from-peers` with a live peer: a damaged directory (log or snapshot) is moved into
/// `damaged-*/` unchanged and the replica rebuilds everything from the peer as a new member.
#[test]
fn recover_from_peers_rebuilds_from_a_live_peer_and_keeps_the_damaged_files() {
    let mut rng = Rng::seeded("recover from peers");
    for target in ["log", "snapshot.bin"] {
        let dir = TempDir::new(&format!("rebuild-{}", target.replace('.', "-")));
        let data = dir.join("data");
        let log = dir.join("replica.log");
        let (mut a, b) = durable_with_peer(&data, &log, &["--recover-from-peers", "--appendfsync", "always"]);
        write_mix(&a, "a1");
        write_mix(&b, "b1");
        let _: () = redis::cmd("SAVE").query(&mut a.client()).unwrap();
        write_mix(&a, "a2");
        converge(&[&a, &b], Duration::from_secs(20));
        let id = a.info_field("mesh", "replica_id");
        a.kill();
        let files = history_files(&data);
        let (name, original) = match target {
            "log" => files.iter().filter(|(n, _)| n.ends_with(".aof")).max_by_key(|(_, b)| b.len()).unwrap(),
            _ => files.iter().find(|(n, _)| n == target).unwrap(),
        };
        let mut bytes = original.clone();
        let limit =
            if target == "log" { segment_records(original).last().unwrap().0 } else { original.len() };
        let at = rng.below(limit as u64) as usize;
        bytes[at] ^= 1 << rng.below(8);
        std::fs::write(data.join(name), &bytes).unwrap();
        eprintln!("  bit flipped in {name} at byte {at} of {}", original.len());
        let damaged = history_files(&data);

        a.kill9_and_restart();
        assert_ne!(a.info_field("mesh", "replica_id"), id, "{name}: a new member");
        converge(&[&a, &b], Duration::from_secs(20));
        for tag in ["a1", "b1", "a2"] {
            let v: i64 = a.client().get(format!("{tag}:counter")).unwrap();
            assert_eq!(v, 51, "{name}: {tag}'s writes came back from the peer");
        }
        let aside = aside_dirs(&data, "damaged-");
        assert_eq!(aside.len(), 1, "{aside:?}");
        for (file, bytes) in &damaged {
            assert_eq!(&std::fs::read(aside[0].join(file)).unwrap(), bytes, "{file} kept unchanged");
        }
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("moved aside") && text.contains("rebuilds from its peers"), "{text}");
        // The new member's directory is a healthy one.
        let _: () = a.client().set("after", 1).unwrap();
        a.kill9_and_restart();
        converge(&[&a, &b], Duration::from_secs(20));
        assert_eq!(a.client().get::<_, Option<i64>>("after").unwrap(), Some(1));
    }
}

/// `--recover-from-peers` without peers has nothing to rebuild from: the replica still refuses
/// to start on a damaged directory, says why, and changes nothing.
#[test]
fn recover_from_peers_without_peers_still_refuses_a_damaged_directory() {
    let dir = TempDir::new("rebuild-alone");
    let data = dir.join("data");
    let log = dir.join("replica.log");
    let mut r = ReplicaProcess::start_logged_on(
        (free_port(), free_port(), free_port()),
        &["--data-dir", data.to_str().unwrap(), "--recover-from-peers"],
        &log,
    );
    write_keys(&r, 0..100);
    r.kill();
    let seg = &history_files(&data)[0].0;
    let mut bytes = std::fs::read(data.join(seg)).unwrap();
    bytes[100] ^= 0x10;
    std::fs::write(data.join(seg), bytes).unwrap();
    let before = dir_hashes(&data);
    let text = refused(&mut r, &log);
    assert!(text.contains("is damaged") && text.contains("no peers are configured"), "{text}");
    assert_eq!(dir_hashes(&data), before);
}
