//! Scripts and function libraries across a mesh of real processes: a script's writes reach a
//! peer as one unit; a library loaded on one replica is callable on a replica that joins later
//! and on one restarted from its data directory; concurrent loads of one library converge.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{converge, free_port, mesh, ReplicaProcess};

const LIB: &str = "#!lua name=counters\n\
    redis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\n\
    redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("syncmesh-scripts-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fcall(r: &ReplicaProcess, name: &str, keys: &[&str], args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd("FCALL");
    cmd.arg(name).arg(keys.len()).arg(keys).arg(args);
    cmd.query(&mut r.client())
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "condition not reached within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_scripts_writes_reach_a_peer_as_one_unit() {
    const KEYS: usize = 40;
    const ROUNDS: usize = 200;
    let replicas = mesh(2, &[]);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("unit:{i}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let observed = {
        let (stop, keys, port) = (stop.clone(), keys.clone(), replicas[1].port);
        std::thread::spawn(move || {
            let mut c =
                redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
            let mut torn = Vec::new();
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let values: Vec<Option<i64>> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
                reads += 1;
                if values.iter().any(|v| *v != values[0]) {
                    torn.push(values);
                }
            }
            (reads, torn)
        })
    };
    let script = "for i, k in ipairs(KEYS) do redis.call('set', k, ARGV[1]) end return #KEYS";
    let mut c = replicas[0].client();
    for round in 1..=ROUNDS {
        let n: i64 = redis::cmd("EVAL").arg(script).arg(KEYS).arg(&keys).arg(round).query(&mut c).unwrap();
        assert_eq!(n, KEYS as i64);
    }
    converge(&[&replicas[0], &replicas[1]], Duration::from_secs(20));
    stop.store(true, Ordering::Relaxed);
    let (reads, torn) = observed.join().unwrap();
    assert!(reads > 10, "the reader on the peer made only {reads} reads");
    assert!(
        torn.is_empty(),
        "{} of {reads} reads on the peer saw half a script: {:?}",
        torn.len(),
        torn.first()
    );
    let last: Vec<i64> = redis::cmd("MGET").arg(&keys).query(&mut replicas[1].client()).unwrap();
    assert!(last.iter().all(|v| *v == ROUNDS as i64));
}

#[test]
fn a_library_reaches_a_replica_that_joins_later() {
    let replicas = mesh(2, &[]);
    let name: String = redis::cmd("FUNCTION").arg("LOAD").arg(LIB).query(&mut replicas[0].client()).unwrap();
    assert_eq!(name, "counters");
    // Its peer can call it once the library has arrived.
    let n = wait_for(Duration::from_secs(10), || fcall(&replicas[1], "bump", &["c"], &["5"]).ok());
    assert_eq!(n, redis::Value::Int(5));
    // A member that joins afterwards gets it with the rest of the state.
    let seed = format!("127.0.0.1:{}", replicas[0].mesh_port);
    let newcomer = ReplicaProcess::start_on((free_port(), free_port(), free_port()), &["--peers", &seed]);
    let v = wait_for(Duration::from_secs(10), || fcall(&newcomer, "peek", &["c"], &[]).ok());
    assert_eq!(v, redis::Value::BulkString(b"5".to_vec()));
    assert_eq!(fcall(&newcomer, "bump", &["c"], &["2"]).unwrap(), redis::Value::Int(7));
    converge(&[&replicas[0], &replicas[1], &newcomer], Duration::from_secs(20));
    // Deleting it on one replica deletes it everywhere.
    let _: () = redis::cmd("FUNCTION").arg("DELETE").arg("counters").query(&mut newcomer.client()).unwrap();
    wait_for(Duration::from_secs(10), || {
        fcall(&replicas[0], "bump", &["c"], &["1"])
            .err()
            .filter(|e| e.to_string().contains("Function not found"))
    });
    // The script cache is per replica: EVALSHA elsewhere answers NOSCRIPT.
    let sha: String =
        redis::cmd("SCRIPT").arg("LOAD").arg("return 1").query(&mut replicas[0].client()).unwrap();
    let err = redis::cmd("EVALSHA").arg(&sha).arg(0).query::<i64>(&mut replicas[1].client()).unwrap_err();
    assert_eq!(err.kind(), redis::ErrorKind::NoScriptError, "{err}");
}

#[test]
fn a_library_survives_a_restart_from_the_data_directory() {
    let dir = TempDir::new(&format!("restart-{}", free_port()));
    let mut r = ReplicaProcess::start(&["--data-dir", dir.path()]);
    let _: String = redis::cmd("FUNCTION").arg("LOAD").arg(LIB).query(&mut r.client()).unwrap();
    assert_eq!(fcall(&r, "bump", &["k"], &["3"]).unwrap(), redis::Value::Int(3));
    // From the log.
    r.kill9_and_restart();
    assert_eq!(fcall(&r, "bump", &["k"], &["1"]).unwrap(), redis::Value::Int(4));
    // From a snapshot.
    let _: () = redis::cmd("BGREWRITEAOF").query(&mut r.client()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    r.kill9_and_restart();
    assert_eq!(fcall(&r, "peek", &["k"], &[]).unwrap(), redis::Value::BulkString(b"4".to_vec()));
    let listed: redis::Value = redis::cmd("FUNCTION").arg("LIST").query(&mut r.client()).unwrap();
    assert!(format!("{listed:?}").contains("counters"));
}

#[test]
fn concurrent_loads_of_one_library_converge_to_one_version() {
    let replicas = mesh(2, &[]);
    for (i, r) in replicas.iter().enumerate() {
        let code = format!("#!lua name=v\nredis.register_function('which', function() return {i} end)");
        let _: String =
            redis::cmd("FUNCTION").arg("LOAD").arg("REPLACE").arg(code).query(&mut r.client()).unwrap();
    }
    converge(&[&replicas[0], &replicas[1]], Duration::from_secs(20));
    let a = fcall(&replicas[0], "which", &[], &[]).unwrap();
    let b = fcall(&replicas[1], "which", &[], &[]).unwrap();
    assert_eq!(a, b, "both replicas run the same version of the library");
}

/// One command over a bare connection; the first line of the reply.
fn raw_command(port: u16, command: &str) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(format!("{command}\r\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

#[test]
fn a_busy_script_leaves_the_mesh_and_admin_port_working_and_shutdown_nosave_stops_it() {
    let replicas = mesh(2, &["--busy-reply-threshold-ms", "200"]);
    let port = replicas[0].port;
    // Writes, then runs for 2 s by the server's clock: past the threshold, and unkillable.
    let script = "redis.call('set', 'w', 'done') local t0 = redis.call('time') \
        while true do local t = redis.call('time') if (t[1] - t0[1]) * 1e6 + t[2] - t0[2] > 2e6 then break end end \
        return 'finished'";
    let long = std::thread::spawn(move || {
        let mut c =
            redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
        redis::cmd("EVAL").arg(script).arg(0).query::<String>(&mut c)
    });
    let busy = wait_for(Duration::from_secs(10), || {
        raw_command(port, "PING").ok().filter(|r| r.starts_with("-BUSY"))
    });
    assert!(busy.contains("SCRIPT KILL or SHUTDOWN NOSAVE"), "{busy}");
    assert!(raw_command(port, "SCRIPT KILL").unwrap().starts_with("-UNKILLABLE"));
    assert_eq!(replicas[0].http_get("/healthz").0, 200, "the admin port answers while a script runs");
    // The peer keeps working, and its write waits for the script on the busy replica.
    let _: () = redis::cmd("SET").arg("from-peer").arg("1").query(&mut replicas[1].client()).unwrap();
    assert_eq!(long.join().unwrap().unwrap(), "finished");
    converge(&[&replicas[0], &replicas[1]], Duration::from_secs(20));
    let w: String = redis::cmd("GET").arg("w").query(&mut replicas[1].client()).unwrap();
    assert_eq!(w, "done");
    let connected: String = redis::cmd("INFO").arg("mesh").query(&mut replicas[1].client()).unwrap();
    assert!(connected.contains("mesh_peers_connected:1"), "{connected}");

    // A script that never ends: SHUTDOWN NOSAVE still stops the replica, and the script's
    // unfinished writes reach nobody.
    let forever = std::thread::spawn(move || {
        let mut c =
            redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
        redis::cmd("EVAL")
            .arg("redis.call('set', 'half', 1) while true do end")
            .arg(0)
            .query::<String>(&mut c)
    });
    wait_for(Duration::from_secs(10), || raw_command(port, "PING").ok().filter(|r| r.starts_with("-BUSY")));
    let _ = raw_command(port, "SHUTDOWN NOSAVE");
    assert!(replicas[0].wait_exit(Duration::from_secs(10)).is_some(), "SHUTDOWN NOSAVE stopped the replica");
    assert!(forever.join().unwrap().is_err());
    let half: Option<String> = redis::cmd("GET").arg("half").query(&mut replicas[1].client()).unwrap();
    assert_eq!(half, None);
}
