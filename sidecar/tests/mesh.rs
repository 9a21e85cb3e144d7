//! The mesh with real processes and real clients on loopback: convergence of concurrent writes of
//! every type, joining and leaving members, relaying through a partial mesh, cross-replica
//! Pub/Sub, blocking pops and WAIT, and bad input on the mesh port.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{converge, free_port, mesh, ReplicaProcess};
use redis::Commands;

/// A deterministic mix of writes of every type on shared keys, as one client of one replica.
fn workload(r: &ReplicaProcess, seed: u64, ops: usize) -> (i64, HashSet<String>) {
    let mut c = r.client();
    let mut incremented = 0i64;
    let mut added = HashSet::new();
    let mut x = seed;
    for i in 0..ops {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let k = (x >> 33) % 4;
        match (x >> 40) % 12 {
            0 => {
                let _: () = c.set(format!("str{k}"), format!("v{seed}-{i}")).unwrap();
            }
            1 => {
                let by = 1 + (x % 5) as i64;
                let _: i64 = c.incr("counter", by).unwrap();
                incremented += by;
            }
            2 => {
                let _: () = c.hset(format!("hash{k}"), format!("f{}", x % 7), i).unwrap();
            }
            3 => {
                let _: i64 = c.hincr(format!("hash{k}"), "hits", 1).unwrap();
            }
            4 => {
                let m = format!("m{seed}-{i}");
                let _: i64 = c.sadd("set", &m).unwrap();
                added.insert(m);
            }
            5 => {
                let _: i64 = c.sadd(format!("set{k}"), x % 9).unwrap();
                let _: i64 = c.srem(format!("set{k}"), (x >> 3) % 9).unwrap();
            }
            6 => {
                let _: i64 = c.zadd(format!("z{k}"), format!("p{}", x % 6), (x % 100) as f64).unwrap();
            }
            7 => {
                let _: f64 = c.zincr(format!("z{k}"), format!("p{}", x % 6), 1.5).unwrap();
            }
            8 => {
                let _: i64 = c.rpush(format!("list{k}"), i).unwrap();
                if x.is_multiple_of(3) {
                    let _: Option<String> = c.lpop(format!("list{k}"), None).unwrap();
                }
            }
            9 => {
                let _: String = redis::cmd("XADD")
                    .arg(format!("stream{k}"))
                    .arg("*")
                    .arg("i")
                    .arg(i)
                    .query(&mut c)
                    .unwrap();
            }
            10 => {
                let _: i64 =
                    redis::cmd("PFADD").arg("hll").arg(format!("e{}", x % 500)).query(&mut c).unwrap();
            }
            _ => {
                let _: i64 = c.del(format!("str{k}")).unwrap();
                let _: bool = c.expire(format!("hash{k}"), 1000).unwrap();
            }
        }
    }
    (incremented, added)
}

fn run_concurrent_workload(replicas: &[ReplicaProcess], ops: usize) -> (i64, HashSet<String>) {
    let results: Vec<(i64, HashSet<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = replicas
            .iter()
            .enumerate()
            .map(|(i, r)| s.spawn(move || workload(r, 17 + i as u64, ops)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total = results.iter().map(|r| r.0).sum();
    let added = results.into_iter().flat_map(|r| r.1).collect();
    (total, added)
}

fn check_model(r: &ReplicaProcess, total: i64, added: &HashSet<String>) {
    let mut c = r.client();
    let counter: i64 = c.get("counter").unwrap_or(0);
    assert_eq!(counter, total, "the counter is the sum of every acknowledged increment");
    let members: HashSet<String> = c.smembers("set").unwrap();
    assert!(added.is_subset(&members), "every member added and never removed is present");
}

#[test]
fn three_replicas_converge_under_concurrent_writes_of_every_type() {
    let replicas = mesh(3, &[]);
    let (total, added) = run_concurrent_workload(&replicas, 400);
    let refs: Vec<&ReplicaProcess> = replicas.iter().collect();
    converge(&refs, Duration::from_secs(20));
    for r in &replicas {
        check_model(r, total, &added);
    }
}

#[test]
fn five_replicas_converge_under_concurrent_writes_of_every_type() {
    let replicas = mesh(5, &[]);
    let (total, added) = run_concurrent_workload(&replicas, 200);
    let refs: Vec<&ReplicaProcess> = replicas.iter().collect();
    converge(&refs, Duration::from_secs(30));
    check_model(&replicas[4], total, &added);
}

#[test]
fn a_new_member_joins_a_loaded_mesh_and_is_ready_only_after_its_initial_sync() {
    // A small log cap forces the newcomer onto a snapshot.
    let mut replicas = mesh(2, &["--log-cap", "64kb"]);
    let mut c = replicas[0].client();
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(i).ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    converge(&[&replicas[0], &replicas[1]], Duration::from_secs(20));
    let seed = format!("127.0.0.1:{}", replicas[0].mesh_port);
    let ports = (free_port(), free_port(), free_port());
    let newcomer = ReplicaProcess::spawn_on(ports, &["--peers", &seed]);
    let started = Instant::now();
    loop {
        if newcomer.http_get("/readyz").0 == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never became ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    let n: i64 = redis::cmd("DBSIZE").query(&mut newcomer.client()).unwrap();
    assert_eq!(n, 20_000, "ready means the data is there");
    replicas.push(newcomer);
    let refs: Vec<&ReplicaProcess> = replicas.iter().collect();
    converge(&refs, Duration::from_secs(20));
}

#[test]
fn a_partial_mesh_converges_by_relay() {
    // A - B - C, and A never talks to C.
    let ports: Vec<(u16, u16, u16)> = (0..3).map(|_| (free_port(), free_port(), free_port())).collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i].2);
    let base = ["--peer-exchange", "false", "--bootstrap-timeout-ms", "300"];
    let peers_of = [addr(1), format!("{},{}", addr(0), addr(2)), addr(1)];
    let replicas: Vec<ReplicaProcess> = (0..3)
        .map(|i| {
            let mut args: Vec<&str> = base.to_vec();
            args.extend(["--peers", peers_of[i].as_str()]);
            ReplicaProcess::spawn_on(ports[i], &args)
        })
        .collect();
    for r in &replicas {
        r.wait_ready(Duration::from_secs(20));
    }
    let _: () = replicas[0].client().set("from-a", "1").unwrap();
    let _: () = replicas[2].client().set("from-c", "1").unwrap();
    let _: i64 = replicas[0].client().incr("n", 1).unwrap();
    let _: i64 = replicas[2].client().incr("n", 1).unwrap();
    let refs: Vec<&ReplicaProcess> = replicas.iter().collect();
    converge(&refs, Duration::from_secs(20));
    assert_eq!(replicas[0].client().get::<_, i64>("n").unwrap(), 2);
    assert_eq!(replicas[2].client().get::<_, Option<String>>("from-a").unwrap().as_deref(), Some("1"));
    let info: String = redis::cmd("INFO").arg("mesh").query(&mut replicas[0].client()).unwrap();
    assert!(info.contains("mesh_peers_connected:1"), "A talks only to B: {info}");
}

#[test]
fn a_member_that_leaves_for_good_is_retired() {
    let mut replicas = mesh(3, &["--retire-after-secs", "2"]);
    let _: () = replicas[0].client().set("k", "v").unwrap();
    converge(&[&replicas[0], &replicas[1], &replicas[2]], Duration::from_secs(20));
    replicas[2].kill();
    let started = Instant::now();
    loop {
        let info: String = redis::cmd("INFO").arg("mesh").query(&mut replicas[0].client()).unwrap();
        if info.contains("state=retired") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "never retired: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _: () = replicas[1].client().set("after", "1").unwrap();
    converge(&[&replicas[0], &replicas[1]], Duration::from_secs(20));
}

#[test]
fn pubsub_blocking_pops_wait_and_transactions_cross_the_mesh() {
    let replicas = mesh(3, &[]);
    // BLPOP on one replica, woken by a push on another.
    let blocked = std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut c = replicas[1].client();
            let v: Option<(String, String)> = redis::cmd("BLPOP").arg("jobs").arg(5).query(&mut c).unwrap();
            v
        });
        std::thread::sleep(Duration::from_millis(200));
        let _: i64 = replicas[0].client().rpush("jobs", "job-1").unwrap();
        waiter.join().unwrap()
    });
    assert_eq!(blocked, Some(("jobs".into(), "job-1".into())));

    // PUBLISH on one replica reaches subscribers on the others, in order.
    let mut sub = redis::Client::open(replicas[2].url()).unwrap().get_connection().unwrap();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("news").unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..5 {
        let _: i64 = replicas[0].client().publish("news", format!("m{i}")).unwrap();
    }
    for i in 0..5 {
        let msg = pubsub.get_message().unwrap();
        assert_eq!(msg.get_payload::<String>().unwrap(), format!("m{i}"));
    }
    drop(pubsub);

    // WAIT counts the peers that applied this connection's write.
    let mut c = replicas[0].client();
    let _: () = c.set("durable", "yes").unwrap();
    let n: i64 = redis::cmd("WAIT").arg(2).arg(2000).query(&mut c).unwrap();
    assert_eq!(n, 2);

    // A transaction reaches peers as one unit: never one key without the other.
    let watcher = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut c = replicas[1].client();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let (a, b): (Option<String>, Option<String>) =
                    redis::pipe().get("tx-a").get("tx-b").query(&mut c).unwrap();
                assert_eq!(a.is_some(), b.is_some(), "saw half a transaction");
                if a.is_some() {
                    return true;
                }
            }
            false
        });
        let _: () =
            redis::pipe().atomic().set("tx-a", 1).set("tx-b", 1).query(&mut replicas[0].client()).unwrap();
        h.join().unwrap()
    });
    assert!(watcher);
}

#[test]
fn bad_input_on_the_mesh_port_is_refused_without_harm() {
    use bytes::BytesMut;
    use syncmesh_replica::mesh::wire::{self, Message};
    let replicas = mesh(2, &[]);
    let target = &replicas[0];
    // Garbage.
    let mut s = TcpStream::connect(("127.0.0.1", target.mesh_port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n\x00\x00\x00\x10garbagegarbage!!").unwrap();
    let mut sink = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut sink);
    // A wrong protocol version (in the greeting) and a wrong database (in the membership proof)
    // are refused with a reason.
    use syncmesh_replica::mesh::proof::{Greeting, MembershipKey, Side};
    for (protocol, database, expect) in
        [(99, "default", "not supported"), (wire::PROTOCOL_VERSION, "other", "membership proof failed")]
    {
        let mut s = TcpStream::connect(("127.0.0.1", target.mesh_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mine = Greeting::new(protocol);
        let mut buf = BytesMut::new();
        wire::encode_raw(&mine.encode(), &mut buf);
        s.write_all(&buf).unwrap();
        let mut received = BytesMut::new();
        let first = loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed before its first frame");
            received.extend_from_slice(&chunk[..n]);
            if let Some(body) = wire::take_frame(&mut received, 4096).unwrap() {
                break body;
            }
        };
        // Its greeting, or (a protocol it does not speak) a refusal instead.
        let mut got = BytesMut::new();
        match Greeting::decode(&first) {
            syncmesh_replica::mesh::proof::FirstFrame::Greeting(g) => {
                let proof = MembershipKey::new(database, None).prove(Side::Dialer, &g.nonce, &mine.nonce);
                let mut buf = BytesMut::new();
                wire::encode(&Message::Proof(proof), &mut buf);
                let _ = s.write_all(&buf);
            }
            _ => wire::encode_raw(&first, &mut got),
        }
        got.extend_from_slice(&received);
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        got.extend_from_slice(&rest);
        let mut refused = None;
        while let Ok(Some(m)) = wire::decode(&mut got) {
            assert!(!matches!(m, Message::Hello(_)), "a Hello went to a refused peer");
            if let Message::Refused(why) = m {
                refused = Some(why);
            }
        }
        let why = refused.expect("a refusal");
        assert!(why.contains(expect), "{why}");
    }
    // Still serving and still replicating.
    let _: () = target.client().set("still", "fine").unwrap();
    converge(&[&replicas[0], &replicas[1]], Duration::from_secs(10));
}

#[test]
fn a_replica_that_was_alone_gives_a_newcomer_everything_it_wrote() {
    // Started with a mesh port but no seeds: nobody to replicate to yet.
    let ports = (free_port(), free_port(), free_port());
    let first = ReplicaProcess::start_on(ports, &[]);
    let mut c = first.client();
    for i in 0..100 {
        let _: () = c.set(format!("early:{i}"), i).unwrap();
    }
    let _: i64 = c.incr("n", 5).unwrap();
    let seed = format!("127.0.0.1:{}", ports.2);
    let newcomer = ReplicaProcess::start_on((free_port(), free_port(), free_port()), &["--peers", &seed]);
    converge(&[&first, &newcomer], Duration::from_secs(10));
    assert_eq!(newcomer.client().get::<_, i64>("n").unwrap(), 5);
    let _: i64 = first.client().incr("n", 1).unwrap();
    converge(&[&first, &newcomer], Duration::from_secs(10));
}

/// A TCP relay to `target` whose connections can be silenced: a silenced connection stays open
/// but forwards nothing, as a network partition looks to both ends (no FIN, no RST). New
/// connections are relayed normally.
struct SilenceableRelay {
    port: u16,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SilenceableRelay {
    fn start(target: u16) -> SilenceableRelay {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let port = free_port();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let generation = Arc::new(AtomicU64::new(0));
        let gen = generation.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let born = gen.load(Ordering::SeqCst);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    let gen = gen.clone();
                    from.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 64 * 1024];
                        loop {
                            if gen.load(Ordering::SeqCst) != born {
                                // Silenced: hold both sockets open, forward nothing, ever.
                                std::thread::sleep(Duration::from_secs(3600));
                            }
                            match from.read(&mut buf) {
                                Ok(0) => return,
                                Ok(n) => {
                                    if gen.load(Ordering::SeqCst) != born || to.write_all(&buf[..n]).is_err()
                                    {
                                        continue;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        SilenceableRelay { port, generation }
    }

    /// Every connection open now goes silent.
    fn silence_open_connections(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_silent_mesh_connection_is_dropped_and_dialled_again() {
    // B listens; A reaches it only through the relay. A partition that drops packets leaves
    // both connections open and silent; the replicas must notice (acks stop arriving) and
    // reconnect, or A's later writes never reach B (found by tests/faults: after a 30 s
    // partition, the mesh waited for TCP retransmission backoff before converging).
    let timeout = ["--peer-timeout-ms", "1000", "--peer-exchange", "false"];
    let b = ReplicaProcess::start(&timeout);
    let relay = SilenceableRelay::start(b.mesh_port);
    let seed = format!("127.0.0.1:{}", relay.port);
    let mut args = timeout.to_vec();
    args.extend(["--peers", seed.as_str()]);
    let a = ReplicaProcess::start(&args);
    let _: () = a.client().set("before", "1").unwrap();
    converge(&[&a, &b], Duration::from_secs(20));

    relay.silence_open_connections();
    let _: () = a.client().set("after", "1").unwrap();
    let took = converge(&[&a, &b], Duration::from_secs(15));
    assert_eq!(b.client().get::<_, Option<String>>("after").unwrap().as_deref(), Some("1"));
    let info: String = redis::cmd("INFO").arg("mesh").query(&mut a.client()).unwrap();
    assert!(info.contains("mesh_peers_connected:1"), "A is connected again: {info} (after {took:?})");
}

/// `XADD *` on several replicas in the same milliseconds: every acknowledged entry stays (the
/// ids carry each replica's tag, so two replicas never pick the same one).
#[test]
fn concurrent_xadds_on_several_replicas_keep_every_entry() {
    let replicas = mesh(3, &[]);
    const PER_REPLICA: usize = 3000;
    let ids: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = replicas
            .iter()
            .enumerate()
            .map(|(r, replica)| {
                s.spawn(move || {
                    let mut c = replica.client();
                    let mut pipe = redis::pipe();
                    for i in 0..PER_REPLICA {
                        pipe.cmd("XADD").arg("events").arg("*").arg("from").arg(format!("{r}-{i}"));
                    }
                    pipe.query::<Vec<String>>(&mut c).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: HashSet<&String> = ids.iter().flatten().collect();
    assert_eq!(all.len(), 3 * PER_REPLICA, "two replicas picked the same id");
    let refs: Vec<&ReplicaProcess> = replicas.iter().collect();
    converge(&refs, Duration::from_secs(20));
    for r in &replicas {
        let len: usize = redis::cmd("XLEN").arg("events").query(&mut r.client()).unwrap();
        assert_eq!(len, 3 * PER_REPLICA, "an acknowledged entry is hidden");
    }
}
