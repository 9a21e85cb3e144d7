//! What a peer can and cannot do (docs/durability.md): the membership proof comes before anything
//! is sent, a plaintext mesh on a network address needs the mesh secret, and no message can make
//! a replica delete its data, exit, or take writes under its own id that it never made.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use common::{free_port, ReplicaProcess};
use syncmesh_replica::crdt::op::Ttl;
use syncmesh_replica::crdt::replica::Update;
use syncmesh_replica::crdt::{Blob, Effect, Op, Timestamp, VersionVector};
use syncmesh_replica::mesh::client::MeshClient;
use syncmesh_replica::mesh::wire::{self, Encoder, Hello, Message};

fn mesh_addr(r: &ReplicaProcess) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], r.mesh_port))
}

/// Every file of a directory (recursively) with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.insert(path.display().to_string(), std::fs::read(&path).unwrap());
        }
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn peers_text(r: &ReplicaProcess) -> String {
    let v: redis::Value = redis::cmd("SYNCMESH.PEERS").query(&mut r.client()).unwrap();
    format!("{v:?}")
}

/// The replica's next message on a connection, skipping acks and peer lists.
async fn refusal(c: &mut MeshClient) -> Option<String> {
    loop {
        match c.recv(Duration::from_secs(2)).await {
            Ok(Some(Message::Refused(why))) => return Some(why),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

fn set(key: &str) -> Op {
    Op {
        db: 0,
        key: Blob::from_slice(key.as_bytes()),
        effect: Effect::Assign { value: syncmesh_replica::crdt::Value::from_slice(b"x"), ttl: Ttl::Clear },
    }
}

#[test]
fn a_forged_hello_never_wipes_a_durable_replica() {
    let dir = tempdir("forged-hello");
    let data = dir.to_str().unwrap().to_string();
    let mut r =
        ReplicaProcess::start(&["--database", "orders", "--data-dir", &data, "--appendfsync", "always"]);
    let mut c = r.client();
    for i in 0..100 {
        redis::cmd("SET").arg(format!("k{i}")).arg(i).query::<()>(&mut c).unwrap();
    }
    drop(c);
    r.kill9_and_restart();
    let before = files(&dir);

    let rt = runtime();
    let refused = rt.block_on(async {
        let mut liar = MeshClient::connect(mesh_addr(&r), "orders", None).await.unwrap();
        let theirs = liar.their_hello().await.unwrap();
        // "I hold a write of yours from an hour from now."
        let mut vv = VersionVector::new();
        vv.set(theirs.replica, Timestamp::new(theirs.vv.get(theirs.replica).millis() + 3_600_000, 0));
        liar.send_hello("orders", 0x1fa1, vv).await.unwrap();
        refusal(&mut liar).await
    });
    let why = refused.expect("the forged Hello is refused");
    assert!(why.contains("data directory does not hold"), "{why}");

    std::thread::sleep(Duration::from_millis(300));
    r.assert_running();
    let n: i64 = redis::cmd("DBSIZE").query(&mut r.client()).unwrap();
    assert_eq!(n, 100, "no key is lost");
    // Untouched: every file is still there with its bytes. The running replica may have appended
    // to its log meanwhile (its first stability record can come after readiness), never more.
    let after = files(&dir);
    for (path, bytes) in &before {
        let now = after.get(path).unwrap_or_else(|| panic!("{path} was removed"));
        assert!(
            now.starts_with(bytes),
            "{path} was changed or cut ({} bytes, was {})",
            now.len(),
            bytes.len()
        );
    }
    let peers = peers_text(&r);
    assert!(peers.contains("quarantined") && peers.contains("0000000000001fa1"), "{peers}");
    assert_eq!(r.metric("syncmesh_mesh_quarantined_peers"), 1);
    assert_eq!(r.info_field("mesh", "mesh_quarantined_peers"), "1");

    // The quarantined member stays refused, even with an honest Hello, until released.
    let again = rt.block_on(async {
        let mut liar = MeshClient::connect(mesh_addr(&r), "orders", None).await.unwrap();
        liar.their_hello().await.unwrap();
        liar.send_hello("orders", 0x1fa1, VersionVector::new()).await.unwrap();
        refusal(&mut liar).await
    });
    assert!(again.unwrap_or_default().contains("quarantined"));
    let released: i64 =
        redis::cmd("SYNCMESH.UNQUARANTINE").arg("0000000000001fa1").query(&mut r.client()).unwrap();
    assert_eq!(released, 1);
    assert_eq!(r.metric("syncmesh_mesh_quarantined_peers"), 0);

    // Restarted on the same directory, everything is still there.
    r.kill9_and_restart();
    let n: i64 = redis::cmd("DBSIZE").query(&mut r.client()).unwrap();
    assert_eq!(n, 100);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn writes_under_the_replicas_own_id_are_refused_and_the_sender_quarantined() {
    let r = ReplicaProcess::start(&["--database", "orders"]);
    redis::cmd("SET").arg("real").arg("1").query::<()>(&mut r.client()).unwrap();
    let rt = runtime();
    let (closed, honest_applied) = rt.block_on(async {
        let mut liar = MeshClient::connect(mesh_addr(&r), "orders", None).await.unwrap();
        let theirs = liar.their_hello().await.unwrap();
        let me = 0x2fa2;
        liar.send_hello("orders", me, VersionVector::new()).await.unwrap();
        let mut enc = Encoder::default();
        // One honest write of its own, sent three times: applied once.
        let honest = Update {
            origin: me,
            deps: theirs.vv.clone(),
            ops: vec![(Timestamp::new(now_ms(), 0), set("honest"))],
        };
        for _ in 0..3 {
            let w = enc.encode(&honest);
            liar.send(&Message::Updates(vec![w])).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let honest_applied = {
            let mut c = r.client();
            redis::cmd("EXISTS").arg("honest").query::<i64>(&mut c).unwrap()
        };
        // A write stamped as the replica's own, an hour ahead.
        let forged = Update {
            origin: theirs.replica,
            deps: theirs.vv.clone(),
            ops: vec![(Timestamp::new(now_ms() + 3_600_000, 0), set("forged"))],
        };
        liar.send(&Message::Updates(vec![enc.encode(&forged)])).await.unwrap();
        let mut closed = false;
        for _ in 0..50 {
            match liar.recv(Duration::from_millis(200)).await {
                Ok(Some(_)) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Ok(None) | Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        (closed, honest_applied)
    });
    assert_eq!(honest_applied, 1, "an honest member's duplicated write is applied, once");
    assert!(closed, "the connection that carried a forged write is closed");
    let mut c = r.client();
    assert_eq!(redis::cmd("EXISTS").arg("forged").query::<i64>(&mut c).unwrap(), 0);
    assert_eq!(redis::cmd("GET").arg("real").query::<String>(&mut c).unwrap(), "1");
    let peers = peers_text(&r);
    assert!(peers.contains("quarantined") && peers.contains("0000000000002fa2"), "{peers}");
    // Its own write is still there: quarantine refuses the member, it does not undo its writes.
    assert_eq!(redis::cmd("EXISTS").arg("honest").query::<i64>(&mut c).unwrap(), 1);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("syncmesh-trust-{name}-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The address of this machine on its first non-loopback interface (what a remote process would
/// dial).
fn network_ip() -> String {
    let out = Command::new("hostname").arg("-I").output().expect("hostname -I");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .unwrap_or_else(|| panic!("this machine has no non-loopback IPv4 address (hostname -I: {text:?})"))
        .to_string()
}

fn replica_command(mesh_port: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_syncmesh-replica"));
    cmd.args(["--bind", "127.0.0.1", "--port", &free_port().to_string()])
        .args(["--admin-bind", "127.0.0.1", "--admin-port", &free_port().to_string()])
        .args(["--mesh-port", &mesh_port.to_string(), "--database", "orders"])
        .args(extra);
    cmd
}

#[test]
fn a_plaintext_mesh_on_a_network_address_needs_the_secret() {
    // Without a secret it does not start, and says why.
    let out = replica_command(free_port(), &["--mesh-insecure", "--mesh-bind", "0.0.0.0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("needs a shared secret") && text.contains("--mesh-secret"), "{text}");

    // Without --mesh-bind, --mesh-insecure listens on loopback only.
    let ip = network_ip();
    let port = free_port();
    let mut child = replica_command(port, &["--mesh-insecure"]).stdout(Stdio::null()).spawn().unwrap();
    wait_listening(("127.0.0.1", port));
    assert!(TcpStream::connect((ip.as_str(), port)).is_err(), "the insecure mesh must not listen on {ip}");
    let _ = child.kill();
    let _ = child.wait();

    // With a secret on all interfaces: a rogue process learns nothing and can send nothing.
    let port = free_port();
    let mut child =
        replica_command(port, &["--mesh-insecure", "--mesh-bind", "0.0.0.0", "--mesh-secret", "s3cret"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
    wait_listening((ip.as_str(), port));
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let rt = runtime();
    rt.block_on(async {
        for wrong in [None, Some("guess")] {
            let err = MeshClient::connect(addr, "orders", wrong).await.err().expect("refused");
            assert!(err.to_string().contains("membership proof failed"), "{err}");
        }
        // A member of another database, with the right secret, is refused too.
        let err = MeshClient::connect(addr, "payments", Some("s3cret")).await.err().expect("refused");
        assert!(err.to_string().contains("membership proof failed"), "{err}");
        // The right secret gets the Hello.
        let mut ok = MeshClient::connect(addr, "orders", Some("s3cret")).await.unwrap();
        assert_eq!(ok.their_hello().await.unwrap().database, "orders");
    });
    // What a process without the secret receives, byte for byte: the greeting (magic, version,
    // nonce) and the refusal, nothing about the database.
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut greeting = BytesMut::new();
    wire::encode_raw(
        &syncmesh_replica::mesh::proof::Greeting::new(wire::PROTOCOL_VERSION).encode(),
        &mut greeting,
    );
    raw.write_all(&greeting).unwrap();
    let mut bogus = BytesMut::new();
    wire::encode(&Message::Proof(vec![0u8; 32]), &mut bogus);
    raw.write_all(&bogus).unwrap();
    let mut received = Vec::new();
    let _ = raw.read_to_end(&mut received);
    let text = String::from_utf8_lossy(&received);
    assert!(!text.contains("orders"), "the database name leaked: {text:?}");
    assert!(text.contains("membership proof failed"), "{text:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_replica_of_the_first_protocol_gets_a_clear_refusal() {
    let r = ReplicaProcess::start(&["--database", "orders"]);
    // What a protocol-1 replica sent first: its Hello (the message layout is unchanged).
    let hello = Hello {
        magic: wire::MAGIC.into(),
        protocol: 1,
        database: "orders".into(),
        replica: 0x3fa3,
        listen_port: 1,
        advertise: None,
        vv: VersionVector::new(),
    };
    let mut frame = BytesMut::new();
    wire::encode(&Message::Hello(hello), &mut frame);
    let mut raw = TcpStream::connect(("127.0.0.1", r.mesh_port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    raw.write_all(&frame).unwrap();
    let mut received = Vec::new();
    let _ = raw.read_to_end(&mut received);
    // A Refused message, the first and only frame: a protocol-1 replica reads the first frame as
    // a message, so the reason must come before anything else (the greeting is not sent).
    let mut buf = BytesMut::from(&received[..]);
    match wire::decode(&mut buf).unwrap() {
        Some(Message::Refused(why)) => assert!(why.contains("mesh protocol 1"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(buf.is_empty(), "nothing follows the refusal");
}

fn wait_listening(addr: (&str, u16)) {
    for _ in 0..500 {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on {addr:?}");
}
