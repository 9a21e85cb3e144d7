//! A mesh member that lies, for the fault suite (`tests/faults`, docs/faults.md).
//!
//! It knows the database and the mesh secret, so it passes the membership proof, and then tries
//! what a faulty or hostile member could, one connection each:
//!
//! 1. `forged-hello`: a `Hello` claiming writes of the target's own id that it never made (its
//!    version vector's entry for the target an hour ahead). Expected: refused, and the target
//!    quarantines this member id, keeping its data directory and running on.
//! 2. `far-ahead`: a `Hello` as a new member whose version vector is an hour ahead for every
//!    origin the target knows. Expected: accepted; the target simply sends it less.
//! 3. `duplicates`: an honest new member that writes `SET <key> <value>` and sends that update
//!    three times, and sends the target's own updates back to it. Expected: applied once.
//! 4. `forged-writes`: an update under the target's id, stamped an hour ahead, setting a key.
//!    Expected: the connection is closed, the member quarantined, the key never appears.
//!
//! It prints one JSON line: what each step observed, for the harness to check.
//!
//! ```sh
//! cargo run --example lying_member -- --target 10.201.0.2:7379 --database faults --secret S --key liar:1
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use serde_json::json;
use syncmesh_replica::crdt::op::Ttl;
use syncmesh_replica::crdt::replica::Update;
use syncmesh_replica::crdt::{Blob, Effect, Op, Timestamp, Value, VersionVector};
use syncmesh_replica::mesh::client::MeshClient;
use syncmesh_replica::mesh::wire::{Encoder, Message};

#[derive(Parser)]
struct Args {
    /// The target replica's mesh address.
    #[arg(long)]
    target: SocketAddr,
    #[arg(long)]
    database: String,
    #[arg(long)]
    secret: Option<String>,
    /// The key the duplicated write sets (its value is the key too); the forged write sets
    /// `<key>:forged`, which must never appear.
    #[arg(long)]
    key: String,
}

const HOUR_MS: u64 = 3_600_000;

fn ahead(t: Timestamp) -> Timestamp {
    Timestamp::new(t.millis().max(now_ms()) + HOUR_MS, 0)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn set(key: &str) -> Op {
    Op {
        db: 0,
        key: Blob::from_slice(key.as_bytes()),
        effect: Effect::Assign { value: Value::from_slice(key.as_bytes()), ttl: Ttl::Clear },
    }
}

/// The outcome of one step: "refused: …", "accepted", "closed", or an error.
async fn outcome(client: &mut MeshClient) -> String {
    // Whatever the target does next: a refusal, closing, or streaming on (accepted).
    for _ in 0..20 {
        match client.recv(Duration::from_millis(500)).await {
            Ok(Some(Message::Refused(why))) => return format!("refused: {why}"),
            Ok(Some(_)) => continue,
            Ok(None) => return "closed".into(),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return "accepted".into(),
            Err(e) => return format!("closed: {e}"),
        }
    }
    "accepted".into()
}

async fn step(args: &Args, name: &str) -> std::io::Result<String> {
    let mut c = MeshClient::connect(args.target, &args.database, args.secret.as_deref()).await?;
    let theirs = c.their_hello().await?;
    let target = theirs.replica;
    let me = rand::random::<u64>() | 1;
    match name {
        "forged-hello" => {
            let mut vv = VersionVector::new();
            vv.set(target, ahead(theirs.vv.get(target)));
            c.send_hello(&args.database, me, vv).await?;
            Ok(outcome(&mut c).await)
        }
        "far-ahead" => {
            let mut vv = VersionVector::new();
            for (origin, t) in theirs.vv.iter() {
                if origin != target {
                    vv.set(origin, ahead(t));
                }
            }
            vv.set(me, ahead(Timestamp::ZERO));
            c.send_hello(&args.database, me, vv).await?;
            Ok(outcome(&mut c).await)
        }
        "duplicates" => {
            c.send_hello(&args.database, me, VersionVector::new()).await?;
            let mut encoder = Encoder::default();
            let write = Update {
                origin: me,
                deps: theirs.vv.clone(),
                ops: vec![(Timestamp::new(now_ms(), 0), set(&args.key))],
            };
            for _ in 0..3 {
                let w = encoder.encode(&write);
                c.send(&Message::Updates(vec![w])).await?;
            }
            // Echo back what the target streams of its own history.
            let mut echoed = 0;
            while let Ok(Some(msg)) = c.recv(Duration::from_millis(500)).await {
                if let Message::Updates(batch) = msg {
                    echoed += batch.len();
                    c.send(&Message::Updates(batch)).await?;
                }
                if echoed > 1000 {
                    break;
                }
            }
            Ok(format!("{} (echoed {echoed})", outcome(&mut c).await))
        }
        "forged-writes" => {
            c.send_hello(&args.database, me, VersionVector::new()).await?;
            let mut encoder = Encoder::default();
            let t = ahead(theirs.vv.get(target));
            let forged = Update {
                origin: target,
                deps: theirs.vv.clone(),
                ops: vec![(t, set(&format!("{}:forged", args.key)))],
            };
            c.send(&Message::Updates(vec![encoder.encode(&forged)])).await?;
            Ok(outcome(&mut c).await)
        }
        _ => unreachable!(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let mut report = serde_json::Map::new();
    for name in ["forged-hello", "far-ahead", "duplicates", "forged-writes"] {
        let result = match tokio::time::timeout(Duration::from_secs(20), step(&args, name)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "error: timed out".into(),
        };
        report.insert(name.into(), json!(result));
    }
    println!("{}", serde_json::Value::Object(report));
}
