//! Finding peers and connecting to them: the listener, static seeds, the DNS name (re-resolved),
//! and peer exchange (each peer shares the addresses it knows), with a back-off per address.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use super::{peer, Host, Mesh};
use crate::config::Config;
use crate::net::AcceptBackoff;

/// Mesh addresses learned from seeds, DNS and peers, and addresses that turned out to be us.
#[derive(Default)]
pub struct Addresses {
    pub known: BTreeSet<String>,
    pub ours: HashSet<String>,
}

impl Addresses {
    pub fn seeded(seeds: &[String]) -> Addresses {
        Addresses { known: seeds.iter().cloned().collect(), ours: HashSet::new() }
    }

    pub fn learn(&mut self, addrs: impl IntoIterator<Item = String>) {
        for a in addrs {
            if !self.ours.contains(&a) && a.parse::<SocketAddr>().is_ok() {
                self.known.insert(a);
            }
        }
    }

    /// A dialled address answered with our own id: never dial it again.
    pub fn is_us(&mut self, addr: &str) {
        self.ours.insert(addr.to_string());
        self.known.remove(addr);
    }
}

/// The address the mesh listens on: `--mesh-bind`, else all interfaces with TLS and loopback
/// without (`--mesh-insecure`).
pub fn mesh_bind(config: &Config) -> String {
    match &config.mesh_bind {
        Some(b) => b.clone(),
        None if config.mesh_insecure && config.tls_ca.is_none() => "127.0.0.1".into(),
        None => "0.0.0.0".into(),
    }
}

/// Whether an address (as given to a bind flag) only accepts connections from this host.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub async fn listen(mesh: &Mesh, config: &Config) -> std::io::Result<TcpListener> {
    let host = mesh_bind(config);
    let addr = if host.contains(':') {
        format!("[{host}]:{}", config.mesh_port)
    } else {
        format!("{host}:{}", config.mesh_port)
    };
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr} (mesh): {e}")))?;
    info!(%addr, tls = mesh.tls.is_some(), "mesh listening");
    Ok(listener)
}

pub async fn accept_loop(mesh: Arc<Mesh>, host: Arc<dyn Host>, listener: TcpListener) {
    let mut shutdown = mesh.stopping();
    let mut backoff = AcceptBackoff::new("mesh");
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => { backoff.reset(); x }
                Err(e) => { backoff.pause(&e).await; continue; }
            },
            _ = shutdown.changed() => return,
        };
        let (mesh, host) = (mesh.clone(), host.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let io: Box<dyn peer::Io> = match &mesh.tls {
                None => Box::new(stream),
                Some(tls) => {
                    match tokio::time::timeout(Duration::from_secs(5), tls.acceptor().accept(stream)).await {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            warn!(peer = %remote, error = %e, "mesh TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            warn!(peer = %remote, "mesh TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            peer::run(mesh, host, io, remote, None).await;
        });
    }
}

/// Keeps a connection to every known peer address: static seeds, the DNS name's addresses
/// (re-resolved every few seconds), and addresses learned from peers.
pub async fn dial_loop(mesh: Arc<Mesh>, host: Arc<dyn Host>, dns: Option<String>, mesh_port: u16) {
    let mut shutdown = mesh.stopping();
    let attempts: Arc<Mutex<HashMap<String, (Instant, u32)>>> = Arc::new(Mutex::new(HashMap::new()));
    let dialing: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let mut last_dns = Instant::now() - Duration::from_secs(60);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Some(name) = &dns {
            if last_dns.elapsed() >= Duration::from_secs(5) {
                last_dns = Instant::now();
                let target = if name.contains(':') { name.clone() } else { format!("{name}:{mesh_port}") };
                match tokio::net::lookup_host(target.clone()).await {
                    Ok(addrs) => mesh.discovery.lock().learn(addrs.map(|a| a.to_string())),
                    Err(e) => debug!(name = %target, error = %e, "peer DNS lookup failed"),
                }
            }
        }
        let connected: HashSet<String> =
            mesh.members.lock().peers.values().map(|p| p.addr.to_string()).collect();
        let to_dial: Vec<String> = {
            let addrs = mesh.discovery.lock();
            addrs
                .known
                .iter()
                .filter(|a| !connected.contains(*a) && !addrs.ours.contains(*a))
                .cloned()
                .collect()
        };
        for addr in to_dial {
            let due = attempts.lock().get(&addr).is_none_or(|(at, _)| Instant::now() >= *at);
            if !due || !dialing.lock().insert(addr.clone()) {
                continue;
            }
            let (mesh, host, attempts, dialing) =
                (mesh.clone(), host.clone(), attempts.clone(), dialing.clone());
            tokio::spawn(async move {
                let ok = dial(mesh, host, &addr).await;
                let mut a = attempts.lock();
                let failures = if ok { 0 } else { a.get(&addr).map(|(_, f)| f + 1).unwrap_or(1) };
                let backoff = Duration::from_millis((100u64 << failures.min(6)).min(5_000));
                a.insert(addr.clone(), (Instant::now() + backoff, failures));
                dialing.lock().remove(&addr);
            });
        }
    }
}

/// One connection attempt; returns after the connection ends (true if it got past the
/// handshake).
async fn dial(mesh: Arc<Mesh>, host: Arc<dyn Host>, addr: &str) -> bool {
    let Ok(sockaddr) = addr.parse::<SocketAddr>() else { return false };
    let io = match connect(&mesh, sockaddr).await {
        Ok(io) => io,
        Err(e) => {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                warn!(peer = %addr, error = %e, "mesh TLS handshake failed");
            }
            return false;
        }
    };
    peer::run(mesh, host, io, sockaddr, Some(addr.to_string())).await
}

/// Opens a TCP connection to a member's mesh port (3 s) and, with TLS, the TLS session (5 s).
/// A failed TLS handshake is `PermissionDenied`.
pub async fn connect(mesh: &Mesh, addr: SocketAddr) -> std::io::Result<Box<dyn peer::Io>> {
    let timed_out =
        || std::io::Error::new(std::io::ErrorKind::TimedOut, format!("connecting to {addr} timed out"));
    let stream = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out())??;
    let _ = stream.set_nodelay(true);
    Ok(match &mesh.tls {
        None => Box::new(stream),
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from("syncmesh-peer").expect("valid name");
            let s = tokio::time::timeout(Duration::from_secs(5), tls.connector().connect(name, stream))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()))?;
            Box::new(s)
        }
    })
}
