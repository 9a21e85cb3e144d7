//! In-process tests of the mesh: replicas (real [`Server`]s as their [`Host`]s) connected by
//! in-memory streams instead of sockets, so that a test can open and drop many connections
//! quickly and run the stability pass as often as it likes.

use super::{peer, stability_pass, Host, Mesh};
use crate::config::Config;
use crate::resp::reply::{Protocol, Reply};
use crate::server::client::{Client, ClientInfo};
use crate::server::Server;
use bytes::Bytes;
use clap::Parser;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A replica of database `t` with a mesh (no ports: connections are handed to it).
fn replica() -> Arc<Server> {
    let config = Config::try_parse_from(["syncmesh-replica", "--database", "t", "--mesh-insecure"]).unwrap();
    Server::with_mesh(config).unwrap()
}

fn mesh(server: &Server) -> Arc<Mesh> {
    server.mesh.clone().expect("a replica with a mesh")
}

fn addr() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

/// Connects `a` (dialling) and `b` (accepting) over in-memory streams joined by a relay; the
/// connection lives until the returned relay task is aborted, which closes both ends as a
/// network failure would (the peers see the end of their streams and clean up).
fn connect(a: &Arc<Server>, b: &Arc<Server>) -> tokio::task::JoinHandle<()> {
    let (a_end, mut relay_a) = tokio::io::duplex(256 * 1024);
    let (b_end, mut relay_b) = tokio::io::duplex(256 * 1024);
    tokio::spawn(peer::run(mesh(a), a.clone() as Arc<dyn Host>, Box::new(a_end), addr(), Some("b".into())));
    tokio::spawn(peer::run(mesh(b), b.clone() as Arc<dyn Host>, Box::new(b_end), addr(), None));
    tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut relay_a, &mut relay_b).await;
    })
}

/// Runs one command on `server` as a client would, returning the raw RESP reply.
fn run(server: &Server, args: &[&str]) -> Vec<u8> {
    let info = Arc::new(ClientInfo::new(1, addr(), addr()));
    let mut client = Client::new(info, true);
    let mut out = Reply::new(Protocol::Resp2);
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
    server.execute(&mut client, &mut out, &args);
    out.buf.to_vec()
}

fn digest(server: &Server) -> Vec<u8> {
    run(server, &["SYNCMESH.DIGEST"])
}

/// Waits until every server shows the same digest, or panics after `limit`.
async fn converge(servers: &[&Arc<Server>], limit: Duration) {
    let start = Instant::now();
    loop {
        let digests: Vec<Vec<u8>> = servers.iter().map(|s| digest(s)).collect();
        if digests.windows(2).all(|w| w[0] == w[1]) {
            return;
        }
        assert!(start.elapsed() < limit, "no convergence in {limit:?}: {:?}", digests);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_over_an_in_memory_stream_exchange_writes_both_ways() {
    let (a, b) = (replica(), replica());
    let _conn = connect(&a, &b);
    for i in 0..200 {
        run(&a, &["SET", &format!("a{i}"), "x"]);
        run(&b, &["INCR", "hits"]);
    }
    converge(&[&a, &b], Duration::from_secs(10)).await;
    assert_eq!(run(&a, &["GET", "hits"]), b"$3\r\n200\r\n".to_vec());
    assert_eq!(run(&b, &["GET", "a199"]), b"$1\r\nx\r\n".to_vec());
    assert_eq!(mesh(&a).connected(), 1);
    assert_eq!(mesh(&b).connected(), 1);
}

/// Peers join and leave over and over while a writer keeps the acks flowing and the stability
/// pass runs without pause: the members, peers and retired tables and the store lock are all
/// taken from several threads at once. A lock-order inversion between them freezes a replica;
/// here that shows as a command that does not come back, or a deadline missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_leaves_under_ack_traffic_never_freeze_a_replica() {
    // With both runtime threads stuck on locks no timer fires: a plain thread ends the test.
    let finished = Arc::new(AtomicBool::new(false));
    let watchdog = finished.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(120));
        if !watchdog.load(Ordering::Relaxed) {
            eprintln!("the replicas froze: the test did not finish in 120 s (a lock-order deadlock?)");
            std::process::abort();
        }
    });
    let hub = replica();
    let visitors: Vec<Arc<Server>> = (0..6).map(|_| replica()).collect();
    let stop = Arc::new(AtomicBool::new(false));

    // A writer on the hub: every write is acked by each connected visitor.
    let writer = {
        let (hub, stop) = (hub.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                run(&hub, &["INCR", "counter"]);
                n += 1;
            }
            n
        })
    };
    // The stability pass, as fast as it can go, on the hub and on every visitor.
    let stabilizer = {
        let stop = stop.clone();
        let all: Vec<Arc<Server>> = visitors.iter().cloned().chain([hub.clone()]).collect();
        tokio::task::spawn_blocking(move || {
            let mut cursors = vec![(0usize, 0usize); all.len()];
            while !stop.load(Ordering::Relaxed) {
                for (s, c) in all.iter().zip(cursors.iter_mut()) {
                    *c = stability_pass(&mesh(s), s.as_ref(), *c);
                }
            }
        })
    };

    // Visitors connect, and the connections are dropped at random moments, many times over.
    const ROUNDS: usize = 25;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..ROUNDS {
        let conns: Vec<_> = visitors.iter().map(|v| connect(v, &hub)).collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(1 + seed % 30)).await;
        for link in conns {
            link.abort();
        }
        // The hub answers at once between rounds (a frozen store lock would stop it here).
        let started = Instant::now();
        let hub2 = hub.clone();
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::task::spawn_blocking(move || run(&hub2, &["PING"])),
        )
        .await
        .expect("the hub froze: PING did not come back within 5 s")
        .unwrap();
        assert_eq!(reply, b"+PONG\r\n".to_vec());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    // Last, everyone connects and stays: the writes converge everywhere.
    let _conns: Vec<_> = visitors.iter().map(|v| connect(v, &hub)).collect();
    stop.store(true, Ordering::Relaxed);
    let writes =
        tokio::time::timeout(Duration::from_secs(10), writer).await.expect("the writer froze").unwrap();
    tokio::time::timeout(Duration::from_secs(10), stabilizer)
        .await
        .expect("the stability pass froze")
        .unwrap();
    let all: Vec<&Arc<Server>> = visitors.iter().chain([&hub]).collect();
    converge(&all, Duration::from_secs(20)).await;
    let expected = format!("${}\r\n{writes}\r\n", writes.to_string().len()).into_bytes();
    for v in &visitors {
        assert_eq!(run(v, &["GET", "counter"]), expected);
    }
    eprintln!("{ROUNDS} rounds of joins and leaves, {writes} writes acked");
    finished.store(true, Ordering::Relaxed);
}
