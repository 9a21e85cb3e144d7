//! A member that says anything after the membership proof: a `Hello` claiming an arbitrary
//! version vector (this replica's own id included), then arbitrary frames. The durable replica
//! must neither panic nor exit, must keep every file of its data directory, and must never take
//! writes under its own id that it did not make.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use clap::Parser;
use libfuzzer_sys::fuzz_target;
use syncmesh_replica::config::Config;
use syncmesh_replica::crdt::{Timestamp, VersionVector};
use syncmesh_replica::mesh::proof::{FirstFrame, Greeting, MembershipKey, Side};
use syncmesh_replica::mesh::wire::{self, Hello, Message};
use syncmesh_replica::mesh::{peer, Host};
use syncmesh_replica::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    server: Arc<Server>,
    dir: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("syncmesh-fuzz-handshake-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config::parse_from([
            "syncmesh-replica",
            "--mesh-insecure",
            "--database",
            "fuzz",
            "--data-dir",
            dir.to_str().unwrap(),
            "--appendfsync",
            "no",
        ]);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let server = runtime.block_on(async { Server::with_mesh(config).expect("server") });
        Fixture { runtime, server, dir }
    })
}

fn files(dir: &std::path::Path) -> BTreeMap<PathBuf, u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
        .collect()
}

/// The claimed vector, from the input: pairs of (whose entry, how far), with this replica's own
/// id among the choices.
fn claimed_vector(data: &[u8], own: u64, own_ts: Timestamp) -> (VersionVector, &[u8]) {
    let mut vv = VersionVector::new();
    let n = (data.first().copied().unwrap_or(0) % 5) as usize;
    let mut rest = data.get(1..).unwrap_or_default();
    for _ in 0..n {
        if rest.len() < 9 {
            break;
        }
        let who = match rest[0] % 4 {
            0 => own,
            1 => 7,
            2 => 8,
            _ => u64::from(rest[0]) << 32 | 1,
        };
        let delta = u64::from_le_bytes(rest[1..9].try_into().unwrap());
        let ts = if rest[0] % 2 == 0 { Timestamp(own_ts.0.wrapping_add(delta % (1 << 40))) } else { Timestamp(delta) };
        if ts != Timestamp::ZERO {
            vv.set(who, ts);
        }
        rest = &rest[9..];
    }
    (vv, rest)
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let before = files(&f.dir);
    let own = f.server.replica_id;
    let own_ts = f.server.store.lock().replica.version_vector().get(own);
    let (vv, frames) = claimed_vector(data, own, own_ts);
    f.runtime.block_on(async {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let mesh = f.server.mesh.clone().expect("a mesh");
        let host: Arc<dyn Host> = f.server.clone();
        let conn = tokio::spawn(async move {
            peer::run(mesh, host, Box::new(theirs), "127.0.0.1:1".parse().unwrap(), None).await
        });
        let (mut rd, mut wr) = tokio::io::split(ours);
        // The membership proof, done right: the fuzzer's bytes start after it.
        let mine = Greeting::new(wire::PROTOCOL_VERSION);
        let mut out = BytesMut::new();
        wire::encode_raw(&mine.encode(), &mut out);
        wr.write_all(&out).await.unwrap();
        let mut buf = BytesMut::new();
        let greeting = loop {
            if let Ok(Some(body)) = wire::take_frame(&mut buf, 4096) {
                break body;
            }
            if rd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        };
        let FirstFrame::Greeting(g) = Greeting::decode(&greeting) else { panic!("the replica's greeting") };
        let proof = MembershipKey::new("fuzz", None).prove(Side::Dialer, &g.nonce, &mine.nonce);
        let mut out = BytesMut::new();
        wire::encode(&Message::Proof(proof), &mut out);
        let hello = Hello {
            magic: wire::MAGIC.into(),
            protocol: wire::PROTOCOL_VERSION,
            database: "fuzz".into(),
            replica: 0xf0f0,
            listen_port: 1,
            advertise: None,
            vv,
        };
        wire::encode(&Message::Hello(hello), &mut out);
        out.extend_from_slice(frames);
        let _ = wr.write_all(&out).await;
        let _ = wr.shutdown().await;
        // Drain what the replica sends so it never blocks on a full pipe.
        let drain = tokio::spawn(async move {
            let mut sink = vec![0u8; 1 << 16];
            while rd.read(&mut sink).await.unwrap_or(0) > 0 {}
        });
        let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        drain.abort();
    });
    // Nothing the member said removed or cut a file, or put writes under this replica's id.
    let after = files(&f.dir);
    for (path, len) in &before {
        let now = after.get(path).copied().unwrap_or(0);
        assert!(now >= *len, "{} shrank from {len} to {now} bytes", path.display());
    }
    let now_own = f.server.store.lock().replica.version_vector().get(own);
    assert_eq!(now_own, own_ts, "writes appeared under the replica's own id");
    f.server.mesh.as_ref().unwrap().release(None);
});
