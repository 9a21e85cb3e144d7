//! The admin port is reachable by anyone in the cluster (the kubelet probes it, Prometheus
//! scrapes it): it shows no more than health and metrics without the admin token, it cannot be
//! held open or flooded, and running out of file descriptors does not spin a core.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;

struct Replica {
    child: Child,
    port: u16,
    admin_port: u16,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a replica whose admin port listens on all interfaces; `max_files` caps its file
/// descriptors (RLIMIT_NOFILE) when given.
fn start(extra: &[&str], max_files: Option<u64>, log: Stdio) -> Replica {
    let (port, admin_port) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_syncmesh-replica"));
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--admin-bind", "0.0.0.0", "--admin-port", &admin_port.to_string()])
        .args(extra)
        .stdout(log)
        .stderr(Stdio::null());
    if let Some(n) = max_files {
        // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn().expect("start syncmesh-replica");
    let r = Replica { child, port, admin_port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(("127.0.0.1", admin_port), "/readyz", None).map(|(s, _)| s) != Some(200) {
        assert!(Instant::now() < deadline, "the replica did not become ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    r
}

/// One GET; (status, body), None if the connection failed or closed without an answer.
fn get(addr: (&str, u16), path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

/// Whether the server has not closed `s` (nothing to read yet, and no end of stream).
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let open = matches!(s.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

fn network_ip() -> String {
    let out = Command::new("hostname").arg("-I").output().expect("hostname -I");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .unwrap_or_else(|| panic!("this machine has no non-loopback IPv4 address (hostname -I: {text:?})"))
        .to_string()
}

#[test]
fn status_needs_loopback_or_the_token_and_health_stays_open() {
    let r = start(&["--admin-token", "t0ken"], None, Stdio::null());
    let ip = network_ip();
    let remote = (ip.as_str(), r.admin_port);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(remote, path, None).unwrap().0, 200, "{path} is open to other hosts");
    }
    let (status, body) = get(remote, "/status", None).unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("replica_id"), "{body}");
    assert_eq!(get(remote, "/status", Some("wrong")).unwrap().0, 401);
    let (status, body) = get(remote, "/status", Some("t0ken")).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("replica_id"), "{body}");
    // On loopback (a sidecar's own pod) no token is needed.
    assert_eq!(get(("127.0.0.1", r.admin_port), "/status", None).unwrap().0, 200);

    // Without --admin-token, /status answers loopback only.
    let r = start(&[], None, Stdio::null());
    assert_eq!(get((ip.as_str(), r.admin_port), "/status", None).unwrap().0, 401);
    assert_eq!(get(("127.0.0.1", r.admin_port), "/status", None).unwrap().0, 200);
}

#[test]
fn connections_are_capped_and_a_half_sent_request_times_out() {
    let r = start(&["--admin-max-connections", "8"], None, Stdio::null());
    let addr = ("127.0.0.1", r.admin_port);
    // Eight connections the server accepted and keeps. One that it closed at once (the slot of
    // the start-up readiness probe can still be taken for a moment on a loaded machine) is
    // opened again.
    let mut held: Vec<TcpStream> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.len() < 8 {
        held.extend((held.len()..8).map(|_| TcpStream::connect(addr).unwrap()));
        std::thread::sleep(Duration::from_millis(200));
        held.retain(still_open);
        assert!(Instant::now() < deadline, "the server kept only {} of 8 connections", held.len());
    }
    // The ninth is closed on arrival, without an answer.
    assert_eq!(get(addr, "/healthz", None), None);
    let metrics_after = {
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        get(addr, "/metrics", None).unwrap().1
    };
    let refused = metrics_after
        .lines()
        .find_map(|l| l.strip_prefix("syncmesh_admin_connections_refused_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("the refusal counter");
    assert!(refused >= 1, "{refused}");

    // A request whose headers never finish is closed within the header timeout (5 s).
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "a half-sent request was held {waited:?}");
    assert!(get(addr, "/healthz", None).is_some());
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn running_out_of_file_descriptors_neither_spins_nor_floods_the_log() {
    let log_path = std::env::temp_dir().join(format!("syncmesh-admin-fds-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let r = start(&["--maxclients", "100000"], Some(64), Stdio::from(log));
    // Take every descriptor the replica has left with client connections.
    let mut clients = Vec::new();
    for _ in 0..100 {
        match TcpStream::connect(("127.0.0.1", r.port)) {
            Ok(c) => clients.push(c),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    // Connections now wait in the admin and client backlogs, which the replica cannot accept.
    let waiting: Vec<TcpStream> =
        (0..5).filter_map(|_| TcpStream::connect(("127.0.0.1", r.admin_port)).ok()).collect();
    let lines_before = std::fs::read_to_string(&log_path).unwrap().lines().count();
    let cpu_before = cpu_seconds(r.child.id());
    std::thread::sleep(Duration::from_secs(3));
    let cpu = cpu_seconds(r.child.id()) - cpu_before;
    let lines = std::fs::read_to_string(&log_path).unwrap().lines().count() - lines_before;
    assert!(cpu < 0.5, "the replica used {cpu} s of CPU in 3 s while out of descriptors");
    assert!(lines < 30, "{lines} log lines in 3 s while out of descriptors");
    drop(waiting);
    drop(clients);
    // Recovered: health answers again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(("127.0.0.1", r.admin_port), "/healthz", None).map(|(s, _)| s) != Some(200) {
        assert!(Instant::now() < deadline, "the admin port did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&log_path);
}
