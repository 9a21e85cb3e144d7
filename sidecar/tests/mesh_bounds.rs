//! Memory stays bounded when a peer cannot keep up: the replication log is capped by
//! `--log-cap` while a peer is away, and the peer comes back through a snapshot; a peer that
//! hangs with its connection open gets TCP backpressure for updates and a bounded queue for
//! Pub/Sub, not buffers that grow with the traffic.

mod common;

use std::time::Duration;

use common::{converge, free_port, ReplicaProcess};
use redis::Commands;

fn info_u64(r: &ReplicaProcess, section: &str, field: &str) -> u64 {
    r.info_field(section, field).parse().unwrap()
}

fn snapshots_sent(r: &ReplicaProcess) -> u64 {
    r.metric("syncmesh_mesh_snapshots_sent")
}

/// Pipelined SETs of `n` values of `size` bytes over `keys` keys.
fn load(r: &ReplicaProcess, n: usize, keys: usize, size: usize) {
    let mut c = r.client();
    let value = "v".repeat(size);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.set(format!("key{}", i % keys), &value).ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }
}

/// Starts A (the writer, with `a_extra`) and B seeded with each other.
fn pair(a_extra: &[&str], b_extra: &[&str]) -> (ReplicaProcess, ReplicaProcess) {
    let pa = (free_port(), free_port(), free_port());
    let pb = (free_port(), free_port(), free_port());
    let (sa, sb) = (format!("127.0.0.1:{}", pa.2), format!("127.0.0.1:{}", pb.2));
    let mut args_a = vec!["--peers", &sb, "--bootstrap-timeout-ms", "300"];
    args_a.extend_from_slice(a_extra);
    let mut args_b = vec!["--peers", &sa, "--bootstrap-timeout-ms", "300"];
    args_b.extend_from_slice(b_extra);
    let a = ReplicaProcess::spawn_on(pa, &args_a);
    let b = ReplicaProcess::spawn_on(pb, &args_b);
    a.wait_ready(Duration::from_secs(20));
    b.wait_ready(Duration::from_secs(20));
    (a, b)
}

#[test]
fn a_peer_away_for_long_is_capped_out_of_the_log_and_comes_back_by_snapshot() {
    let dir = std::env::temp_dir().join(format!("syncmesh-bounds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // B keeps its identity across the restart, so A sees the same member come back behind.
    let (a, mut b) = pair(&["--log-cap", "64kb"], &["--data-dir", dir.to_str().unwrap()]);
    let _: () = a.client().set("before", 1).unwrap();
    converge(&[&a, &b], Duration::from_secs(20));
    let sent_before = snapshots_sent(&a);

    b.kill();
    load(&a, 4000, 4000, 500); // about 2 MB of updates while B is away
    let log_bytes = info_u64(&a, "mesh", "replication_log_bytes");
    assert!(log_bytes <= 64 * 1024 + 4096, "the log stays under --log-cap: {log_bytes}");

    b.kill9_and_restart();
    converge(&[&a, &b], Duration::from_secs(30));
    assert!(snapshots_sent(&a) > sent_before, "B came back through a snapshot");
    let n: usize = redis::cmd("DBSIZE").query(&mut b.client()).unwrap();
    assert_eq!(n, 4001);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hanging_peer_gets_backpressure_not_unbounded_buffers() {
    let (a, b) = pair(&["--log-cap", "1mb"], &[]);
    let _: () = a.client().set("before", 1).unwrap();
    converge(&[&a, &b], Duration::from_secs(20));
    let used_before = info_u64(&a, "memory", "used_memory");

    b.signal("STOP");
    // 30 MB of updates on 100 keys (live data stays small) and 60 MB of Pub/Sub messages.
    load(&a, 30_000, 100, 1000);
    let mut c = a.client();
    let payload = "p".repeat(1000);
    for _ in 0..60 {
        let mut pipe = redis::pipe();
        for _ in 0..1000 {
            pipe.publish("news", &payload).ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }
    let used_after = info_u64(&a, "memory", "used_memory");
    let grown = used_after.saturating_sub(used_before);
    assert!(grown < 48 * 1024 * 1024, "memory grew by {grown} bytes for 90 MB pushed at a hung peer");
    assert!(info_u64(&a, "mesh", "replication_log_bytes") <= 1024 * 1024 + 4096);
    assert!(
        info_u64(&a, "mesh", "mesh_pubsub_dropped") > 0,
        "Pub/Sub for the hung peer was dropped, not queued"
    );
    let _: i64 = c.incr("after", 1).unwrap();

    b.signal("CONT");
    converge(&[&a, &b], Duration::from_secs(30));
    let v: i64 = b.client().get("after").unwrap();
    assert_eq!(v, 1);
}
