//! The replica through the Rust `redis` crate: every command family, RESP3, pipelining,
//! transactions, errors, and the admin port.

mod common;

use common::ReplicaProcess;
use redis::{Commands, RedisResult, Value};

fn replica() -> (ReplicaProcess, redis::Connection) {
    let r = ReplicaProcess::start(&[]);
    let c = r.client();
    (r, c)
}

#[test]
fn strings_counters_and_expiry() {
    let (_r, mut c) = replica();
    let _: () = c.set("greeting", "hello").unwrap();
    assert_eq!(c.get::<_, String>("greeting").unwrap(), "hello");
    assert_eq!(c.append::<_, _, i64>("greeting", " world").unwrap(), 11);
    assert_eq!(c.incr::<_, _, i64>("n", 5).unwrap(), 5);
    assert_eq!(c.decr::<_, _, i64>("n", 2).unwrap(), 3);
    let f: f64 = redis::cmd("INCRBYFLOAT").arg("n").arg("0.5").query(&mut c).unwrap();
    assert_eq!(f, 3.5);
    let _: () = c.set_ex("session", "x", 100).unwrap();
    let ttl: i64 = c.ttl("session").unwrap();
    assert!((99..=100).contains(&ttl));
    let _: () = c.mset(&[("a", "1"), ("b", "2")]).unwrap();
    let v: Vec<Option<String>> = c.mget(&["a", "b", "missing"]).unwrap();
    assert_eq!(v, vec![Some("1".into()), Some("2".into()), None]);
    let _: () = c.setbit("bits", 7, true).unwrap();
    assert_eq!(c.bitcount::<_, i64>("bits").unwrap(), 1);
    let err: RedisResult<i64> = c.incr("greeting", 1);
    assert!(err.unwrap_err().to_string().contains("not an integer"));
    let _: () = redis::cmd("SET").arg("px").arg("v").arg("PX").arg(30).query(&mut c).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(60));
    assert_eq!(c.get::<_, Option<String>>("px").unwrap(), None);
}

#[test]
fn hashes_sets_sorted_sets_and_hyperloglog() {
    let (_r, mut c) = replica();
    let _: () = c.hset_multiple("user:1", &[("name", "ada"), ("lang", "rust")]).unwrap();
    assert_eq!(c.hget::<_, _, String>("user:1", "name").unwrap(), "ada");
    assert_eq!(c.hincr::<_, _, _, i64>("user:1", "visits", 3).unwrap(), 3);
    let all: std::collections::HashMap<String, String> = c.hgetall("user:1").unwrap();
    assert_eq!(all.len(), 3);

    assert_eq!(c.sadd::<_, _, i64>("tags", &["a", "b", "c"]).unwrap(), 3);
    assert_eq!(c.srem::<_, _, i64>("tags", "b").unwrap(), 1);
    let mut members: Vec<String> = c.smembers("tags").unwrap();
    members.sort();
    assert_eq!(members, vec!["a", "c"]);

    let _: () = c.zadd_multiple("board", &[(10, "ann"), (20, "bob"), (15, "cid")]).unwrap();
    let top: Vec<(String, f64)> = c.zrevrange_withscores("board", 0, 1).unwrap();
    assert_eq!(top, vec![("bob".to_string(), 20.0), ("cid".to_string(), 15.0)]);
    assert_eq!(c.zincr::<_, _, _, f64>("board", "ann", 11).unwrap(), 21.0);
    assert_eq!(c.zrank::<_, _, Option<i64>>("board", "ann").unwrap(), Some(2));

    let _: () = c.pfadd("visitors", (0..1000).map(|i| format!("v{i}")).collect::<Vec<_>>()).unwrap();
    let n: i64 = c.pfcount("visitors").unwrap();
    assert!((980..=1020).contains(&n), "estimate {n}");

    let err: RedisResult<i64> = c.sadd("user:1", "x");
    assert!(err.unwrap_err().to_string().contains("WRONGTYPE"));
}

#[test]
fn pipelines_and_transactions() {
    let (r, mut c) = replica();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    pipe.cmd("DBSIZE");
    let (n,): (i64,) = pipe.query(&mut c).unwrap();
    assert_eq!(n, 1000);

    let (a, b): (i64, i64) =
        redis::pipe().atomic().incr("counter", 1).incr("counter", 1).query(&mut c).unwrap();
    assert_eq!((a, b), (1, 2));

    // WATCH: a change by another connection aborts the transaction.
    let mut other = r.client();
    let _: () = redis::cmd("WATCH").arg("counter").query(&mut c).unwrap();
    let _: () = other.set("counter", 100).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut c).unwrap();
    let _: () = redis::cmd("INCR").arg("counter").query(&mut c).unwrap();
    let res: Value = redis::cmd("EXEC").query(&mut c).unwrap();
    assert_eq!(res, Value::Nil);
    assert_eq!(c.get::<_, i64>("counter").unwrap(), 100);
}

#[test]
fn resp3_replies_and_connection_commands() {
    let r = ReplicaProcess::start(&[]);
    let mut c = redis::Client::open(format!("{}?protocol=resp3", r.url())).unwrap().get_connection().unwrap();
    let _: () = c.hset("h", "f", "v").unwrap();
    let v: Value = redis::cmd("HGETALL").arg("h").query(&mut c).unwrap();
    assert!(matches!(v, Value::Map(ref m) if m.len() == 1), "{v:?}");
    let _: () = c.zadd("z", "m", 1.5).unwrap();
    let v: Value = redis::cmd("ZSCORE").arg("z").arg("m").query(&mut c).unwrap();
    assert_eq!(v, Value::Double(1.5));
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
    assert!(id > 0);
    let info: String = redis::cmd("INFO").arg("mesh").query(&mut c).unwrap();
    assert!(info.contains("# Mesh") && info.contains("replica_id:"), "{info}");
}

#[test]
fn digest_depends_on_content_not_on_write_order() {
    let a = ReplicaProcess::start(&[]);
    let b = ReplicaProcess::start(&[]);
    let (mut ca, mut cb) = (a.client(), b.client());
    let _: () = ca.set("x", "1").unwrap();
    let _: () = ca.sadd("s", &["p", "q"]).unwrap();
    let _: () = cb.sadd("s", &["q", "p"]).unwrap();
    let _: () = cb.set("x", "1").unwrap();
    let da: String = redis::cmd("SYNCMESH.DIGEST").query(&mut ca).unwrap();
    let db: String = redis::cmd("SYNCMESH.DIGEST").query(&mut cb).unwrap();
    assert_eq!(da, db);
    let _: () = cb.set("x", "2").unwrap();
    let db2: String = redis::cmd("SYNCMESH.DIGEST").query(&mut cb).unwrap();
    assert_ne!(da, db2);
}

#[test]
fn auth_is_required_when_a_password_is_set() {
    let r = ReplicaProcess::start(&["--requirepass", "s3cret"]);
    let mut c = r.client();
    let err: RedisResult<()> = c.set("k", "v");
    assert!(err.unwrap_err().to_string().contains("NOAUTH"));
    let mut c = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", r.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = c.set("k", "v").unwrap();
}

#[test]
fn maxmemory_refuses_writes_but_serves_reads() {
    let r = ReplicaProcess::start(&["--maxmemory", "3mb"]);
    let mut c = r.client();
    let _: () = c.set("keep", "me").unwrap();
    let big = "x".repeat(64 * 1024);
    let mut refused = false;
    for i in 0..200 {
        if let Err(e) = c.set::<_, _, ()>(format!("fill{i}"), &big) {
            assert!(e.to_string().contains("OOM"), "{e}");
            refused = true;
            break;
        }
    }
    assert!(refused, "writes were never refused");
    assert_eq!(c.get::<_, String>("keep").unwrap(), "me");
}

#[test]
fn admin_port_serves_health_metrics_and_status() {
    let (r, mut c) = replica();
    let _: () = c.set("k", "v").unwrap();
    assert_eq!(r.http_get("/healthz").0, 200);
    assert_eq!(r.http_get("/readyz").0, 200);
    let (status, metrics) = r.http_get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("syncmesh_commands_total{cmd=\"set\"} 1"), "{metrics}");
    assert!(metrics.contains("syncmesh_command_duration_seconds_bucket"));
    let (_, status) = r.http_get("/status");
    let json: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(json["database"], "default");
    assert_eq!(json["keys"], 1);
}
