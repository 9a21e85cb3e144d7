//! Strong keys with real processes on loopback: three voters (durable replicas, each with a
//! data directory) and two application replicas that only forward. Queues hand each job to
//! one worker, consumer groups divide their entries, a lock has one holder, the leader's death
//! loses and duplicates nothing, and without a majority a command fails in bounded time.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{free_port, ReplicaProcess};
use redis::Commands;

const PATTERNS: &str = "jobs*,lock:*,tx:*";

struct StrongMesh {
    voters: Vec<ReplicaProcess>,
    apps: Vec<ReplicaProcess>,
    dir: PathBuf,
}

impl Drop for StrongMesh {
    fn drop(&mut self) {
        for r in self.voters.iter_mut().chain(self.apps.iter_mut()) {
            r.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `voters` voters and `apps` forwarding replicas of one database, all seeded with every
/// mesh address, and waits until the group has a leader.
fn strong_mesh(name: &str, voters: usize, apps: usize, extra: &[&str]) -> StrongMesh {
    let dir = std::env::temp_dir().join(format!("syncmesh-strong-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ports: Vec<(u16, u16, u16)> =
        (0..voters + apps).map(|_| (free_port(), free_port(), free_port())).collect();
    let mesh_addr = |p: &(u16, u16, u16)| format!("127.0.0.1:{}", p.2);
    let seeds = ports.iter().map(mesh_addr).collect::<Vec<_>>().join(",");
    let voter_list = ports[..voters].iter().map(mesh_addr).collect::<Vec<_>>().join(",");
    let spawn = |i: usize| {
        let data = dir.join(format!("voter{i}"));
        let data = data.to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec![
            "--peers",
            &seeds,
            "--bootstrap-timeout-ms",
            "300",
            "--strong-keys",
            PATTERNS,
            "--strong-voters",
            &voter_list,
        ];
        if i < voters {
            args.extend(["--data-dir", &data]);
        }
        args.extend_from_slice(extra);
        let log = dir.join(format!("replica{i}.log"));
        std::fs::create_dir_all(&dir).unwrap();
        ReplicaProcess::spawn_logged_on(ports[i], &args, &log)
    };
    let mut all: Vec<ReplicaProcess> = (0..voters + apps).map(spawn).collect();
    for r in &all {
        r.wait_ready(Duration::from_secs(30));
    }
    let apps = all.split_off(voters);
    let m = StrongMesh { voters: all, apps, dir };
    m.wait_leader(Duration::from_secs(20));
    m
}

/// A field of `INFO strong`; None if the replica does not answer (it was killed).
fn strong_info(r: &ReplicaProcess, field: &str) -> Option<String> {
    let mut c = redis::Client::open(r.url()).ok()?.get_connection().ok()?;
    let text: String = redis::cmd("INFO").arg("strong").query(&mut c).ok()?;
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).map(|v| v.trim().to_string())
}

impl StrongMesh {
    /// The index of the voter that leads, once all running voters agree on one.
    fn wait_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            for (i, v) in self.voters.iter().enumerate() {
                if strong_info(v, "strong_role").as_deref() == Some("leader") {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no leader elected within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every voter applied the same entries to the same state.
    fn wait_same_state(&self, voters: &[usize], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let digests: Vec<String> = voters
                .iter()
                .map(|&i| {
                    redis::cmd("SYNCMESH.STRONG").arg("DIGEST").query(&mut self.voters[i].client()).unwrap()
                })
                .collect();
            if digests.windows(2).all(|w| w[0] == w[1]) {
                return digests[0].clone();
            }
            assert!(Instant::now() < deadline, "voters did not reach the same strong state: {digests:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Pops with BRPOP until the queue stays empty for `idle` after `producer_done` is set.
fn brpop_worker(r: &ReplicaProcess, key: &str, done: &std::sync::atomic::AtomicBool) -> Vec<String> {
    let mut c = r.client();
    let mut got = Vec::new();
    loop {
        let popped: Option<(String, String)> = redis::cmd("BRPOP").arg(key).arg(1).query(&mut c).unwrap();
        match popped {
            Some((_, job)) => got.push(job),
            None if done.load(std::sync::atomic::Ordering::Acquire) => return got,
            None => {}
        }
    }
}

#[test]
fn strong_keys_hand_each_job_to_one_worker_divide_groups_and_lock_once() {
    let m = strong_mesh("queue", 3, 2, &[]);
    let (producer, w1, w2) = (&m.apps[0], &m.apps[1], &m.voters[2]);

    // ---- Lists: 2,000 jobs pushed on one replica, BRPOP workers on two others.
    const JOBS: usize = 2_000;
    let done = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let (got1, got2) = std::thread::scope(|s| {
        let a = s.spawn(|| brpop_worker(w1, "jobs", &done));
        let b = s.spawn(|| brpop_worker(w2, "jobs", &done));
        let mut c = producer.client();
        for i in 0..JOBS {
            let _: i64 = c.lpush("jobs", format!("job{i}")).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        (a.join().unwrap(), b.join().unwrap())
    });
    let elapsed = started.elapsed();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for j in got1.iter().chain(&got2) {
        *seen.entry(j.clone()).or_default() += 1;
    }
    let twice = seen.values().filter(|&&n| n > 1).count();
    let lost = (0..JOBS).filter(|i| !seen.contains_key(&format!("job{i}"))).count();
    println!(
        "strong list: {JOBS} jobs in {:.1} s, worker 1 popped {}, worker 2 popped {}, {twice} twice, {lost} lost",
        elapsed.as_secs_f64(),
        got1.len(),
        got2.len()
    );
    assert_eq!(twice, 0, "no job is popped twice");
    assert_eq!(lost, 0, "no job is lost");
    assert_eq!(got1.len() + got2.len(), JOBS);
    // Both workers got work (the queue is shared, not per replica).
    assert!(!got1.is_empty() && !got2.is_empty(), "both workers popped: {} and {}", got1.len(), got2.len());
    // The strong keys are not in any replica's CRDT keyspace.
    let plain: Option<String> = redis::cmd("TYPE").arg("jobs").query(&mut producer.client()).ok();
    assert_eq!(plain.as_deref(), Some("none"), "an emptied strong list reads as absent");

    // ---- Streams: one consumer group read from two replicas divides the entries.
    let mut c = producer.client();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("jobs:stream")
        .arg("workers")
        .arg("$")
        .arg("MKSTREAM")
        .query(&mut c)
        .unwrap();
    for i in 0..100 {
        let _: String = redis::cmd("XADD").arg("jobs:stream").arg("*").arg("n").arg(i).query(&mut c).unwrap();
    }
    let read_group = |r: &ReplicaProcess, consumer: &str| -> Vec<String> {
        let mut c = r.client();
        let mut ids = Vec::new();
        loop {
            let reply: redis::Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("workers")
                .arg(consumer)
                .arg("COUNT")
                .arg(3)
                .arg("BLOCK")
                .arg(300)
                .arg("STREAMS")
                .arg("jobs:stream")
                .arg(">")
                .query(&mut c)
                .unwrap();
            let batch = stream_ids(&reply);
            if batch.is_empty() {
                return ids;
            }
            for id in &batch {
                let acked: i64 =
                    redis::cmd("XACK").arg("jobs:stream").arg("workers").arg(id).query(&mut c).unwrap();
                assert_eq!(acked, 1);
            }
            ids.extend(batch);
        }
    };
    let (ids1, ids2) = std::thread::scope(|s| {
        let a = s.spawn(|| read_group(w1, "c1"));
        let b = s.spawn(|| read_group(w2, "c2"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let set1: HashSet<&String> = ids1.iter().collect();
    let set2: HashSet<&String> = ids2.iter().collect();
    println!("strong stream: consumer 1 got {}, consumer 2 got {}", ids1.len(), ids2.len());
    assert!(set1.is_disjoint(&set2), "no entry goes to both consumers");
    assert_eq!(ids1.len() + ids2.len(), 100, "every entry goes to one consumer");
    let pending: redis::Value =
        redis::cmd("XPENDING").arg("jobs:stream").arg("workers").query(&mut c).unwrap();
    assert!(
        matches!(&pending, redis::Value::Array(v) if v.first() == Some(&redis::Value::Int(0))),
        "{pending:?}"
    );

    // ---- Locks: SET NX PX from two replicas at once, one winner per round.
    for round in 0..20 {
        let barrier = Arc::new(Barrier::new(2));
        let key = format!("lock:{round}");
        let wins: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = [&m.apps[0], &m.apps[1]]
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let (barrier, key) = (barrier.clone(), key.clone());
                    s.spawn(move || {
                        let mut c = r.client();
                        barrier.wait();
                        let ok: Option<String> = redis::cmd("SET")
                            .arg(&key)
                            .arg(format!("owner{i}"))
                            .arg("NX")
                            .arg("PX")
                            .arg(30_000)
                            .query(&mut c)
                            .unwrap();
                        ok.is_some()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(wins.iter().filter(|&&w| w).count(), 1, "round {round}: exactly one holder");
    }

    // ---- Transactions, mixed keys, WATCH.
    let mut c = m.apps[1].client();
    let (a, b, v): (i64, i64, String) =
        redis::pipe().atomic().incr("tx:a", 1).incr("tx:a", 2).get("tx:a").query(&mut c).unwrap();
    assert_eq!((a, b, v.as_str()), (1, 3, "3"));
    let err = redis::cmd("MSET").arg("tx:a").arg(1).arg("plain").arg(2).query::<()>(&mut c).unwrap_err();
    assert!(err.code() == Some("CROSSSLOT"), "{err}");
    let err = redis::cmd("WATCH").arg("tx:a").query::<()>(&mut c).unwrap_err();
    assert!(err.to_string().contains("WATCH is not supported on strong keys"), "{err}");
    // A transaction that mixes them is refused as it is queued, and EXEC aborts it.
    let mut raw = m.apps[1].client();
    let _: () = redis::cmd("MULTI").query(&mut raw).unwrap();
    let _: String = redis::cmd("INCR").arg("tx:a").query(&mut raw).unwrap();
    let err = redis::cmd("INCR").arg("plain:n").query::<String>(&mut raw).unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    let err = redis::cmd("EXEC").query::<()>(&mut raw).unwrap_err();
    assert_eq!(err.code(), Some("EXECABORT"), "{err}");
    let a: i64 = c.get("tx:a").unwrap();
    assert_eq!(a, 3, "nothing of the aborted transaction ran");
    // Scripts whose keys are all strong run on the group.
    let n: i64 = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        .key("tx:s")
        .arg(5)
        .invoke(&mut c)
        .unwrap();
    let n2: i64 = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        .key("tx:s")
        .arg(5)
        .invoke(&mut m.apps[0].client())
        .unwrap();
    assert_eq!((n, n2), (5, 10));
    // Plain keys still replicate as CRDT state.
    let _: () = c.set("plain", "x").unwrap();

    // ---- Metrics: the forwarder's counts, the group's gauges.
    assert!(producer.metric("syncmesh_strong_commands_total") >= JOBS as u64);
    let leaders: u64 = m.voters.iter().map(|v| v.metric("syncmesh_strong_is_leader")).sum();
    assert_eq!(leaders, 1, "one voter reports itself leader");
    assert!(m.voters[0].metric("syncmesh_strong_applied_index") > JOBS as u64);

    // ---- Every voter computed the same state.
    let digest = m.wait_same_state(&[0, 1, 2], Duration::from_secs(10));
    println!("voters' strong state: {digest}");
}

/// The ids of an XREADGROUP reply (one stream).
fn stream_ids(v: &redis::Value) -> Vec<String> {
    let redis::Value::Array(streams) = v else { return vec![] };
    let mut ids = Vec::new();
    for s in streams {
        let redis::Value::Array(pair) = s else { continue };
        let Some(redis::Value::Array(entries)) = pair.get(1) else { continue };
        for e in entries {
            if let redis::Value::Array(e) = e {
                if let Some(redis::Value::BulkString(id)) = e.first() {
                    ids.push(String::from_utf8_lossy(id).into_owned());
                }
            }
        }
    }
    ids
}

#[test]
fn the_leaders_death_loses_and_duplicates_nothing_and_no_majority_fails_in_bounded_time() {
    let mut m = strong_mesh("failover", 3, 2, &[]);
    const PUSHES: usize = 400;
    let done = std::sync::atomic::AtomicBool::new(false);
    let leader = m.wait_leader(Duration::from_secs(10));
    let (acked, popped, errors) = std::thread::scope(|s| {
        let (producer, worker) = (&m.apps[0], &m.apps[1]);
        let done = &done;
        let w = s.spawn(move || brpop_worker(worker, "jobs:f", done));
        let p = s.spawn(move || {
            let mut c = producer.client();
            let mut acked = Vec::new();
            let mut errors = Vec::new();
            for i in 0..PUSHES {
                match c.lpush::<_, _, i64>("jobs:f", format!("job{i}")) {
                    Ok(_) => acked.push(format!("job{i}")),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (acked, errors)
        });
        // Kill the leader while both run.
        std::thread::sleep(Duration::from_millis(700));
        let killed_at = Instant::now();
        m.voters[leader].kill();
        let (acked, errors) = p.join().unwrap();
        println!("failover: producer done {:.1} s after the kill", killed_at.elapsed().as_secs_f64());
        done.store(true, std::sync::atomic::Ordering::Release);
        (acked, w.join().unwrap(), errors)
    });
    // Whatever the worker did not pop is still in the list.
    let mut c = m.apps[1].client();
    let rest: Vec<String> = c.lrange("jobs:f", 0, -1).unwrap();
    let mut count: HashMap<&String, usize> = HashMap::new();
    for j in popped.iter().chain(&rest) {
        *count.entry(j).or_default() += 1;
    }
    let twice = count.values().filter(|&&n| n > 1).count();
    let lost = acked.iter().filter(|j| !count.contains_key(j)).count();
    println!(
        "failover: {} pushes acknowledged, {} failed, {} popped, {} left, {twice} twice, {lost} lost",
        acked.len(),
        errors.len(),
        popped.len(),
        rest.len()
    );
    assert_eq!(twice, 0, "no job is handed out twice");
    assert_eq!(lost, 0, "no acknowledged push is lost");
    assert!(errors.is_empty(), "one voter down leaves a majority: no push fails ({errors:?})");
    let new_leader = m.wait_leader(Duration::from_secs(10));
    assert_ne!(new_leader, leader);

    // ---- No majority: a second voter down, commands fail in bounded time with a clear error.
    let other = (0..3).find(|&i| i != leader && i != new_leader).unwrap();
    m.voters[new_leader].kill();
    let started = Instant::now();
    let err = c.lpush::<_, _, i64>("jobs:f", "nomajority").unwrap_err();
    let took = started.elapsed();
    println!("no majority: {err} after {:.2} s", took.as_secs_f64());
    assert!(err.code() == Some("CLUSTERDOWN"), "{err}");
    assert!(took >= Duration::from_millis(4_900) && took < Duration::from_secs(12), "bounded wait: {took:?}");
    let err = m.voters[other].client().lpush::<_, _, i64>("jobs:f", "x").unwrap_err();
    assert!(err.code() == Some("CLUSTERDOWN"), "on the remaining voter too: {err}");
    // Non-strong keys stay available.
    let _: () = c.set("plain", "still works").unwrap();

    // ---- The killed voters come back from their data directories: the group works again
    // with everything it had.
    // A blocking pop started now stays blocked (no -CLUSTERDOWN) and resumes once there is a
    // leader again.
    let waiting = std::thread::spawn({
        let url = m.apps[0].url();
        move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let started = Instant::now();
            let got: Option<(String, String)> =
                redis::cmd("BRPOP").arg("jobs:late").arg(0).query(&mut c).unwrap();
            (got, started.elapsed())
        }
    });
    std::thread::sleep(Duration::from_secs(6));
    m.voters[leader].kill9_and_restart();
    m.voters[new_leader].kill9_and_restart();
    m.wait_leader(Duration::from_secs(20));
    let _: i64 = c.lpush("jobs:late", "late job").unwrap();
    let (got, waited) = waiting.join().unwrap();
    assert_eq!(got, Some(("jobs:late".to_string(), "late job".to_string())), "blocked through the outage");
    assert!(waited > Duration::from_secs(6), "it waited: {waited:?}");
    // (A push refused for want of a majority may still have committed: the error says so.)
    let items: Vec<String> = c.lrange("jobs:f", 0, -1).unwrap();
    let kept: Vec<&String> = items.iter().filter(|j| *j != "nomajority" && *j != "x").collect();
    assert_eq!(kept, rest.iter().collect::<Vec<_>>(), "the list survived the restarts");
    let _: i64 = c.lpush("jobs:f", "after").unwrap();
    m.wait_same_state(&[0, 1, 2], Duration::from_secs(15));
}
