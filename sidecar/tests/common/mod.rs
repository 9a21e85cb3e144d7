//! Starts real `syncmesh-replica` processes for integration tests and stops them on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A port nobody listens on, never handed out twice by this test process.
///
/// Ports come from 10000..32000, below Linux's ephemeral range (32768..60999): asking the
/// kernel for port 0 would return an ephemeral port, which a replica's outgoing mesh
/// connection can take before the replica meant to listen on it has started. Each test
/// binary starts at an offset derived from its pid so concurrent binaries rarely meet, and
/// a port is only returned after a trial bind succeeds.
pub fn free_port() -> u16 {
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = (std::process::id() * 997) % SPAN;
    loop {
        let port = (LOW + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The replica executable of this build.
pub fn this_build() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_syncmesh-replica"))
}

pub struct ReplicaProcess {
    pub port: u16,
    pub admin_port: u16,
    pub mesh_port: u16,
    child: Mutex<Child>,
    /// The executable (this build's replica unless a test runs another release's).
    bin: PathBuf,
    /// The arguments it was started with, for a restart.
    args: Vec<String>,
    /// Where its output (its log) goes (None: discarded).
    log: Option<PathBuf>,
}

impl ReplicaProcess {
    pub fn start(extra: &[&str]) -> ReplicaProcess {
        Self::start_on((free_port(), free_port(), free_port()), extra)
    }

    /// Starts on given (client, admin, mesh) ports; waits until /readyz answers 200.
    pub fn start_on(ports: (u16, u16, u16), extra: &[&str]) -> ReplicaProcess {
        let r = Self::spawn_on(ports, extra);
        r.wait_ready(Duration::from_secs(20));
        r
    }

    /// Starts without waiting for readiness.
    pub fn spawn_on(ports: (u16, u16, u16), extra: &[&str]) -> ReplicaProcess {
        let args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        Self::spawn_with(this_build(), ports, args, None)
    }

    /// Starts the replica executable `bin` (another release's) on given (client, admin, mesh)
    /// ports with its output appended to `log`; waits until ready.
    pub fn start_binary_logged_on(
        bin: &Path,
        ports: (u16, u16, u16),
        extra: &[&str],
        log: &Path,
    ) -> ReplicaProcess {
        let args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let r = Self::spawn_with(bin.to_path_buf(), ports, args, Some(log.to_path_buf()));
        r.wait_ready(Duration::from_secs(20));
        r
    }

    /// Starts on given (client, admin, mesh) ports with its output (the replica's log) appended
    /// to `log`; waits until ready.
    pub fn start_logged_on(ports: (u16, u16, u16), extra: &[&str], log: &Path) -> ReplicaProcess {
        let args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let r = Self::spawn_with(this_build(), ports, args, Some(log.to_path_buf()));
        r.wait_ready(Duration::from_secs(20));
        r
    }

    /// As [`Self::start_logged_on`], without waiting for readiness (the process may exit).
    pub fn spawn_logged_on(ports: (u16, u16, u16), extra: &[&str], log: &Path) -> ReplicaProcess {
        let args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        Self::spawn_with(this_build(), ports, args, Some(log.to_path_buf()))
    }

    fn spawn_with(
        bin: PathBuf,
        ports: (u16, u16, u16),
        args: Vec<String>,
        log: Option<PathBuf>,
    ) -> ReplicaProcess {
        let (port, admin_port, mesh_port) = ports;
        // Plaintext mesh unless the test brings certificates.
        let insecure: &[&str] = if args.iter().any(|a| a == "--tls-ca") { &[] } else { &["--mesh-insecure"] };
        // The replica logs to stdout; panics and start-up errors go to stderr.
        let output = || match &log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new().create(true).append(true).open(path).expect("replica log file"),
            ),
            None => Stdio::null(),
        };
        let child = Command::new(&bin)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--admin-port", &admin_port.to_string(), "--admin-bind", "127.0.0.1"])
            .args(["--mesh-port", &mesh_port.to_string(), "--mesh-bind", "127.0.0.1"])
            .args(insecure)
            .args(&args)
            .stdout(output())
            .stderr(output())
            .spawn()
            .expect("start syncmesh-replica");
        let r = ReplicaProcess { port, admin_port, mesh_port, child: Mutex::new(child), bin, args, log };
        // The admin port answers once the process is up (readiness may come later). A process
        // that exits meanwhile is left for the caller to notice (wait_ready, wait_exit).
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", r.admin_port)).is_err() && Instant::now() < deadline {
            if r.has_exited() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        r
    }

    /// Kills the process with SIGKILL (`kill -9`: no shutdown code runs) and starts it again
    /// on the same ports with the same arguments (so the same `--data-dir`); waits until ready.
    pub fn kill9_and_restart(&mut self) {
        self.kill9_and_respawn();
        self.wait_ready(Duration::from_secs(30));
    }

    /// As [`Self::kill9_and_restart`], without waiting for readiness.
    pub fn kill9_and_respawn(&mut self) {
        self.kill();
        let ports = (self.port, self.admin_port, self.mesh_port);
        let restarted = Self::spawn_with(self.bin.clone(), ports, self.args.clone(), self.log.clone());
        *self = restarted;
    }

    /// Waits for the process to exit by itself; its exit status, or None at the timeout.
    pub fn wait_exit(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.lock().unwrap_or_else(|e| e.into_inner()).try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends a signal by name (`STOP`, `CONT`) to the process: a stopped replica keeps its
    /// sockets open but reads nothing, as a peer that hangs.
    pub fn signal(&self, name: &str) {
        let pid = self.child.lock().unwrap_or_else(|e| e.into_inner()).id();
        let ok =
            Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap().success();
        assert!(ok, "kill -{name} {pid}");
    }

    /// Panics if the process answering on the client port is not this one: another process on
    /// the machine took a port between `free_port` and the replica's bind. (Not checked when
    /// the replica requires a password.)
    pub fn assert_ours(&self) {
        let pid = self.child.lock().unwrap_or_else(|e| e.into_inner()).id();
        // A replica that requires a password cannot be asked without it: nothing to check.
        let Ok(info) = redis::cmd("INFO").arg("server").query::<String>(&mut self.client()) else { return };
        let theirs = info.lines().find_map(|l| l.strip_prefix("process_id:")).map(|p| p.trim().to_string());
        assert_eq!(theirs, Some(pid.to_string()), "port {} is served by another process", self.port);
    }

    fn has_exited(&self) -> bool {
        matches!(self.child.lock().unwrap_or_else(|e| e.into_inner()).try_wait(), Ok(Some(_)))
    }

    /// Panics with the exit status if the process has exited (for example because a port was
    /// taken), instead of letting the test talk to whatever else listens there.
    pub fn assert_running(&self) {
        let exited = self.child.lock().unwrap_or_else(|e| e.into_inner()).try_wait();
        if let Ok(Some(status)) = exited {
            panic!("replica on port {} exited: {status}", self.port);
        }
    }

    pub fn kill(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The process id (for /proc figures: CPU time, memory).
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    pub fn digest(&self) -> String {
        redis::cmd("SYNCMESH.DIGEST").query(&mut self.client()).unwrap()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }

    /// One field of an `INFO` section.
    pub fn info_field(&self, section: &str, field: &str) -> String {
        let text: String = redis::cmd("INFO").arg(section).query(&mut self.client()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("INFO {section} has no {field}: {text}"))
            .trim()
            .to_string()
    }

    /// The value of an unlabelled Prometheus metric on the admin port.
    pub fn metric(&self, name: &str) -> u64 {
        let (_, body) = self.http_get("/metrics");
        let value = body
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no metric {name}"));
        value.trim().parse().unwrap_or_else(|_| panic!("metric {name} is not a count: {value}"))
    }

    pub fn http_get(&self, path: &str) -> (u16, String) {
        self.try_http_get(path).unwrap()
    }

    fn try_http_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.admin_port))?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        let status = body.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let payload = body.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, payload))
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.assert_running();
            // A connection reset (the process exiting while the request waited) is retried;
            // assert_running then reports the exit.
            if self.try_http_get("/readyz").is_ok_and(|(status, _)| status == 200) {
                self.assert_ours();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("replica on port {} did not become ready", self.port);
    }
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `n` replicas of one database on loopback, each seeded with all the others' mesh
/// addresses (plaintext mesh: these tests are about replication, TLS has its own test).
pub fn mesh(n: usize, extra: &[&str]) -> Vec<ReplicaProcess> {
    let ports: Vec<(u16, u16, u16)> = (0..n).map(|_| (free_port(), free_port(), free_port())).collect();
    let seeds: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{}", p.2)).collect();
    let seeds = seeds.join(",");
    let mut args: Vec<&str> = vec!["--peers", &seeds, "--bootstrap-timeout-ms", "300"];
    args.extend_from_slice(extra);
    let replicas: Vec<ReplicaProcess> = ports.iter().map(|p| ReplicaProcess::spawn_on(*p, &args)).collect();
    for r in &replicas {
        r.wait_ready(Duration::from_secs(20));
    }
    replicas
}

/// Waits until every replica shows the same digest; returns how long it took.
pub fn converge(replicas: &[&ReplicaProcess], timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let digests: Vec<String> = replicas.iter().map(|r| r.digest()).collect();
        if digests.windows(2).all(|w| w[0] == w[1]) {
            return start.elapsed();
        }
        if start.elapsed() > timeout {
            panic!("replicas did not converge within {timeout:?}: {digests:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
