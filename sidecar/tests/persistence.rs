//! `--data-dir` with real processes: data and identity survive `kill -9` in every
//! `--appendfsync` mode, a restarted mesh member neither loses nor duplicates writes, a torn log
//! tail is dropped, a damaged snapshot falls back to a bootstrap from a peer, and the log is
//! compacted into a snapshot.

mod common;

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

fn replica_log(dir: &TempDir) -> PathBuf {
    dir.join("replica.log")
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

/// Damages the last record of the log while the replica is down, restarts it, and checks that
/// the earlier records are back, the damaged one is gone and the replica said so.
fn damage_last_record(damage: impl Fn(&Path)) {
    let dir = TempDir::new(&format!("tail-{}", free_port()));
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
    damage(&last_segment(&data));
    r.kill9_and_restart();
    let mut c = r.client();
    for i in 0..9 {
        let v: Option<i64> = c.get(format!("k{i}")).unwrap();
        assert_eq!(v, Some(i), "k{i} kept");
    }
    let last: Option<i64> = c.get("k9").unwrap();
    assert_eq!(last, None, "the damaged last record is dropped");
    let text = std::fs::read_to_string(replica_log(&dir)).unwrap();
    assert!(text.contains("WARN") && text.contains("torn or damaged"), "warning logged: {text}");
    // The replica goes on writing to a healthy log.
    let _: () = c.set("after", 1).unwrap();
    r.kill9_and_restart();
    let v: Option<i64> = r.client().get("after").unwrap();
    assert_eq!(v, Some(1));
    let v: Option<i64> = r.client().get("k8").unwrap();
    assert_eq!(v, Some(8));
}

#[test]
fn a_torn_last_record_is_dropped_and_earlier_ones_kept() {
    damage_last_record(|seg| {
        let len = std::fs::metadata(seg).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(seg).unwrap().set_len(len - 3).unwrap();
    });
}

#[test]
fn a_corrupt_last_record_is_dropped_and_earlier_ones_kept() {
    damage_last_record(|seg| {
        let mut bytes = std::fs::read(seg).unwrap();
        let i = bytes.len() - 2;
        bytes[i] ^= 0x5a;
        std::fs::write(seg, bytes).unwrap();
    });
}

/// A snapshot that fails its checksum: the replica logs an error, empties its data directory
/// and bootstraps from its peer as a new member, with all the data back.
#[test]
fn a_corrupt_snapshot_falls_back_to_a_bootstrap_from_a_peer() {
    let dir = TempDir::new("badsnap");
    let data = dir.join("data");
    let log = dir.join("replica.log");
    let (mut a, b) = durable_with_peer(&data, &log, &[]);
    write_mix(&a, "a");
    write_mix(&b, "b");
    converge(&[&a, &b], Duration::from_secs(20));
    let _: () = redis::cmd("SAVE").query(&mut a.client()).unwrap();
    assert!(data.join("snapshot.bin").exists());
    let id = a.info_field("mesh", "replica_id");
    let digest = b.digest();
    a.kill();
    let snap = data.join("snapshot.bin");
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&snap, bytes).unwrap();
    a.kill9_and_restart();
    assert_ne!(a.info_field("mesh", "replica_id"), id, "a new member");
    converge(&[&a, &b], Duration::from_secs(20));
    assert_eq!(a.digest(), digest, "everything came back from the peer");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("ERROR") && text.contains("damaged"), "error logged: {text}");
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
/// decides (docs/durability.md, "A replica whose history is behind its peers'").
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
