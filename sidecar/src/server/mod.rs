//! The server: listeners, the shared state every connection sees, command dispatch, and the
//! background jobs (active expiry, memory accounting).

pub mod client;
pub mod connection;
pub mod durability;
pub mod lazyfree;
pub mod limits;
mod mesh_host;
pub mod pubsub;
pub mod store;
pub mod store_lock;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::commands::{flags, registry, Blocking, CmdError, Ctx};
use crate::config::Config;
use crate::crdt::ReplicaId;
use crate::metrics::Metrics;
use crate::resp::{Protocol, Reply};
use client::{Client, ClientInfo};
use store::Store;

/// Settings `CONFIG SET` can change at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    pub maxmemory: u64,
    pub maxclients: usize,
    pub requirepass: Option<String>,
    /// Idle client timeout in seconds (0 = never).
    pub timeout: u64,
    pub appendfsync: String,
    pub notify_keyspace_events: String,
    pub maxmemory_policy: String,
    /// Refuse clients from other hosts while no password is set (Redis's `protected-mode`).
    pub protected_mode: bool,
    /// `DEL` frees large values in the background, as `UNLINK` does.
    pub lazyfree_lazy_user_del: bool,
}

/// Counters for `INFO stats`.
#[derive(Default)]
pub struct Stats {
    pub commands: AtomicU64,
    pub connections: AtomicU64,
    pub rejected: AtomicU64,
    pub net_input: AtomicU64,
    pub net_output: AtomicU64,
}

pub struct Server {
    pub config: Config,
    pub settings: RwLock<Settings>,
    /// Request and output limits every connection reads (changed by `CONFIG SET`).
    pub limits: Arc<limits::ClientLimits>,
    /// Frees what `UNLINK` deletes off the command path.
    pub lazyfree: lazyfree::LazyFree,
    pub store: store_lock::StoreLock,
    /// The running script, as other connections see it without the store lock.
    pub scripts: Arc<crate::scripting::Status>,
    pub clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    pub next_client_id: AtomicU64,
    pub metrics: Metrics,
    pub stats: Stats,
    pub started: Instant,
    pub replica_id: ReplicaId,
    /// The client port listens and initial sync is done.
    pub ready: AtomicBool,
    /// jemalloc's allocated bytes, refreshed in the background (the OOM check reads this).
    pub used_memory: AtomicU64,
    pub shutdown: watch::Sender<bool>,
    pub listen_addrs: Mutex<Vec<SocketAddr>>,
    pub pubsub: Mutex<pubsub::Hub>,
    /// The mesh, when this replica has peers (or may get some).
    pub mesh: Option<Arc<crate::mesh::Mesh>>,
    /// The data directory's fsync policy and status (`--data-dir`); waiting on it needs no lock.
    pub durability: Option<Arc<crate::storage::sync::Durability>>,
    pub storage_status: Option<Arc<crate::storage::Status>>,
    /// This replica's own newest write that the data directory gave back (None: new member).
    pub recovered_own: Option<crate::crdt::Timestamp>,
    /// The data directory was damaged and set aside (`--recover-from-peers`): ready only after
    /// the initial sync from a peer, never on our own after the bootstrap timeout.
    pub rebuilding: bool,
    /// Strong keys (`--strong-keys`): None without them, and commands take the CRDT path alone.
    pub strong: Option<Arc<crate::strong::Strong>>,
}

/// Commands whose first argument is a subcommand (`CLIENT ID` is reported as `client|id`).
const CONTAINERS: &[&str] = &["client", "config", "command", "pubsub", "object", "memory", "xinfo", "xgroup"];

/// Redis's default `client-output-buffer-limit pubsub` hard limit (the mesh bounds its control
/// queues with it too).
pub const PUBSUB_BUFFER_LIMIT: u64 = 32 * 1024 * 1024;

pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Server {
    pub fn new(config: Config) -> Arc<Server> {
        Server::with_mesh(config).expect("mesh configuration")
    }

    pub fn with_mesh(config: Config) -> std::io::Result<Arc<Server>> {
        let durability::Start { mut replica, storage, recovered_own, replayed, snapshotted, rebuilding } =
            durability::Start::open(&config)?;
        let replica_id: ReplicaId = replica.id;
        let mesh = crate::mesh::Mesh::from_config(&config, replica_id)?;
        let strong = crate::strong::Strong::from_config(&config, mesh.as_ref())?;
        if mesh.is_some() {
            replica.set_replicated(true);
        }
        replica.set_persistent(storage.is_some());
        let durability = storage.as_ref().map(|s| s.durability.clone());
        let storage_status = storage.as_ref().map(|s| s.status.clone());
        let scripts = Arc::new(crate::scripting::Status::default());
        scripts.set_threshold_ms(config.busy_reply_threshold_ms);
        scripts.set_time_limit_ms(config.script_time_limit_ms);
        let engine = crate::scripting::Engine::new(scripts.clone(), config.script_memory_limit as usize);
        let mut store = Store::with_scripting(replica, engine);
        store.log = crate::mesh::log::ReplicationLog::new(config.log_cap as usize);
        // The log replayed from the data directory seeds the replication log, so peers that
        // lack some of it get it streamed; what came from snapshots (the snapshot file, peers'
        // snapshots) is not in it: a peer that lacks any of that gets a snapshot.
        store.log.truncated = snapshotted;
        for u in replayed {
            store.log.append(Arc::new(u));
        }
        store.storage = storage;
        let settings = Settings {
            maxmemory: config.maxmemory,
            maxclients: config.maxclients,
            requirepass: config.requirepass.clone(),
            timeout: 0,
            appendfsync: config.appendfsync.as_str().to_string(),
            notify_keyspace_events: String::new(),
            maxmemory_policy: "noeviction".into(),
            protected_mode: config.protected_mode.enabled(),
            lazyfree_lazy_user_del: false,
        };
        let limits = Arc::new(limits::ClientLimits::default());
        let (shutdown, _) = watch::channel(false);
        let metrics = Metrics::new();
        if let Some(mesh) = &mesh {
            metrics
                .registry
                .register(Box::new(mesh.handshakes_refused.clone()))
                .expect("metric registers once");
        }
        if let Some(strong) = &strong {
            strong.forwarder.stats.register(&metrics.registry);
        }
        Ok(Arc::new(Server {
            config,
            settings: RwLock::new(settings),
            limits: limits.clone(),
            lazyfree: lazyfree::LazyFree::start(),
            store: store_lock::StoreLock::new(store, scripts.clone()),
            scripts,
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            metrics,
            stats: Stats::default(),
            started: Instant::now(),
            replica_id,
            ready: AtomicBool::new(false),
            used_memory: AtomicU64::new(0),
            shutdown,
            listen_addrs: Mutex::new(Vec::new()),
            pubsub: Mutex::new(pubsub::Hub::new(limits)),
            mesh,
            durability,
            storage_status,
            recovered_own,
            rebuilding,
            strong,
        }))
    }

    /// The time the replica reads: the wall clock skewed by `--clock-offset-ms`.
    pub fn now_ms(&self) -> u64 {
        (unix_ms() as i64 + self.config.clock_offset_ms).max(0) as u64
    }

    pub fn over_maxmemory(&self) -> bool {
        let max = self.settings.read().maxmemory;
        if max == 0 {
            return false;
        }
        let used = allocated_bytes();
        self.used_memory.store(used, Ordering::Relaxed);
        used > max
    }

    /// Protected mode (as Redis): while it is on and no password is set, only clients on the
    /// loopback interface are served.
    pub fn protected_mode_refuses(&self, peer: SocketAddr) -> bool {
        !peer.ip().to_canonical().is_loopback() && self.protected_mode_active()
    }

    /// Protected mode is on and no password is set: clients from other hosts are refused.
    pub fn protected_mode_active(&self) -> bool {
        let settings = self.settings.read();
        settings.protected_mode && settings.requirepass.is_none()
    }

    /// Runs one command for a client, writing its reply into `out`.
    pub fn execute(&self, client: &mut Client, out: &mut Reply, args: &[Bytes]) {
        let mut store = self.store.lock();
        self.run_batch(&mut store, client, out, std::iter::once(args));
    }

    /// Runs a batch of pipelined commands under one acquisition of the store lock (they would
    /// run back to back anyway; this saves a lock hand-off per command between the threads).
    /// Returns how many commands ran: a command that blocks ends the batch.
    pub fn execute_batch(&self, client: &mut Client, out: &mut Reply, batch: &[Vec<Bytes>]) -> usize {
        let Some(mut store) = self.store.lock_for_client(|| self.now_ms()) else {
            // A script has run past the busy threshold: answer without the store.
            return crate::scripting::busy::answer(self, client, out, batch);
        };
        self.run_batch(&mut store, client, out, batch.iter().map(|a| a.as_slice()))
    }

    /// Runs commands back to back, then commits once ([`Server::commit`]): one `fsync` (under
    /// `appendfsync always`) covers the replies of the whole batch and of every other client's
    /// batch written meanwhile (group commit).
    fn run_batch<'a>(
        &self,
        store: &mut Store,
        client: &mut Client,
        out: &mut Reply,
        batch: impl Iterator<Item = &'a [Bytes]>,
    ) -> usize {
        // One clock reading per batch: the commands of a pipeline run at the same instant.
        let now = self.now_ms();
        if let Some(mesh) = &self.mesh {
            store.replica.set_solo(mesh.alone());
        }
        let before = store.storage.as_ref().map(|s| s.appended());
        let mut ran = 0;
        for args in batch {
            ran += 1;
            self.execute_locked(store, client, out, args, now);
            // Clients blocked on a key this command wrote are served before the next command, as
            // Redis does.
            if !store.ready.is_empty() {
                self.serve_blocked(store, now);
            }
            // Each command outside a transaction is its own update (a record in the log, a unit
            // for the peers), so no update grows with the pipeline's length; the batch is still
            // flushed, fsynced and announced to the peers once, in the commit below.
            if client.multi.is_none() {
                store.log_local_writes();
            }
            if client.close
                || client.blocked.is_some()
                || client.wait_for.is_some()
                || client.forward.is_some()
            {
                break;
            }
        }
        let durable = self.commit(store, now);
        if let (Some(before), Some(seq)) = (before, durable) {
            if seq > before {
                client.durable_seq = seq;
            }
        }
        ran
    }

    /// Publishes to this replica's subscribers and to every other replica's; returns how many
    /// received it here (as Redis counts receivers on the node that published).
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        if let Some(mesh) = &self.mesh {
            mesh.publish(channel, payload);
        }
        self.pubsub.lock().publish(channel, payload)
    }

    /// The one commit path: what follows every change to the store, whoever made it (a client's
    /// batch of commands, updates and snapshots from peers, the expiry sweep).
    ///
    /// 1. Clients blocked on keys that changed are served (their pops are writes too).
    /// 2. Writes not yet logged become one update (a client's batch logs each command as it
    ///    runs): in the data directory's log and in the replication log, so that peers apply
    ///    them as one unit.
    /// 3. The data directory's records go to the operating system; the returned sequence number
    ///    is what a reply must wait for under `appendfsync always` (None without a data
    ///    directory).
    /// 4. The peer writers are woken if the replication log grew (local or relayed updates).
    pub fn commit(&self, store: &mut Store, now: u64) -> Option<u64> {
        if !store.ready.is_empty() {
            self.serve_blocked(store, now);
        }
        store.log_local_writes();
        let durable = store.flush_storage();
        if let Some(mesh) = &self.mesh {
            mesh.log_grew(store.log.end_seq());
        }
        durable
    }

    /// Retries the commands of clients blocked on keys that were written, in the order the
    /// clients blocked; a served client gets its reply and stops waiting.
    pub fn serve_blocked(&self, store: &mut Store, now: u64) {
        while let Some((db, key)) = store.ready.pop() {
            for waiter in store.waiters_on(db, &key) {
                let Some((index, cmd)) = registry().get(&waiter.args[0]) else { continue };
                let mut client = Client::new(waiter.client.clone(), true);
                client.select(waiter.db);
                let mut out = Reply::new(waiter.proto);
                let mut ctx = Ctx::new(store, &mut client, &mut out, self, now);
                ctx.blocking = Blocking::Serving;
                let result = ctx.call(index, cmd, &waiter.args);
                let still_waiting = ctx.block.is_some();
                match result {
                    // The key changed type: keep waiting, as Redis does.
                    Err(CmdError::WrongType) => continue,
                    Err(e) => out.error(&e.to_string()),
                    Ok(()) if still_waiting => continue,
                    Ok(()) => {}
                }
                store.unblock(waiter.id);
                waiter.client.blocked.store(false, Ordering::Relaxed);
                if let Some(tx) = waiter.reply.lock().take() {
                    let _ = tx.send(out.buf);
                }
            }
        }
    }

    fn execute_locked(
        &self,
        store: &mut Store,
        client: &mut Client,
        out: &mut Reply,
        args: &[Bytes],
        now: u64,
    ) {
        let Some((index, cmd)) = registry().get(&args[0]) else {
            client.multi_error |= client.multi.is_some();
            out.error(&unknown_command(args));
            return;
        };
        if !cmd.arity_ok(args.len()) {
            let err = CmdError::Arity(cmd.name.to_string()).to_string();
            if cmd.name == "exec" {
                // Redis discards the transaction outright.
                client.multi = None;
                client.multi_error = false;
                client.info.in_multi.store(false, Ordering::Relaxed);
                out.error(&format!("EXECABORT Transaction discarded because of: {}", &err[4..]));
                return;
            }
            client.multi_error |= client.multi.is_some();
            out.error(&err);
            return;
        }
        if !client.authenticated && !cmd.is(flags::NO_AUTH) {
            client.multi_error |= client.multi.is_some();
            out.error("NOAUTH Authentication required.");
            return;
        }
        if out.proto == Protocol::Resp2 && client.subscriptions() > 0 && !cmd.is(flags::SUBSCRIBED_OK) {
            if cmd.name == "ping" {
                out.array(2);
                out.bulk(b"pong");
                out.bulk(args.get(1).map(|a| &a[..]).unwrap_or(b""));
                return;
            }
            let full = match args.get(1) {
                Some(sub) if CONTAINERS.contains(&cmd.name) => {
                    format!("{}|{}", cmd.name, String::from_utf8_lossy(sub).to_ascii_lowercase())
                }
                _ => cmd.name.to_string(),
            };
            out.error(&format!(
                "ERR Can't execute '{full}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            ));
            return;
        }
        if let (Some(queued), false) = (client.multi.as_mut(), cmd.is(flags::TX_CONTROL)) {
            if cmd.is(flags::NO_MULTI) {
                client.multi_error = true;
                out.error("ERR Command not allowed inside a transaction");
                return;
            }
            if cmd.is(flags::DENYOOM) && self.over_maxmemory() {
                client.multi_error = true;
                self.metrics.oom_rejections.inc();
                out.error(&CmdError::Oom.to_string());
                return;
            }
            if cmd.is(flags::WRITE) && self.log_failing() {
                client.multi_error = true;
                out.error(durability::MISCONF);
                return;
            }
            if let Some(strong) = &self.strong {
                // A transaction runs on the group or here, not both: refused as it is queued.
                if let Err(e) = strong.check_queued(cmd, args, &mut client.multi_keys) {
                    client.multi_error = true;
                    out.error(e);
                    return;
                }
            }
            queued.push(args.to_vec());
            out.simple("QUEUED");
            return;
        }
        if let Some(strong) = &self.strong {
            // Commands on strong keys run on the group, not here (the connection forwards them).
            if strong.intercept(cmd, args, client, out, &store.scripting) {
                return;
            }
        }
        if cmd.is(flags::DENYOOM) && self.over_maxmemory() {
            self.metrics.oom_rejections.inc();
            out.error(&CmdError::Oom.to_string());
            return;
        }
        if cmd.is(flags::WRITE) && self.log_failing() {
            out.error(durability::MISCONF);
            return;
        }
        client.info.last_cmd.store(index, Ordering::Relaxed);
        client.info.last_active_ms.store(now, Ordering::Relaxed);
        let mut ctx = Ctx::new(store, client, out, self, now);
        let result = ctx.call(index, cmd, args);
        let block = ctx.block.take();
        if let Err(e) = result {
            out.error(&e.to_string());
        } else if let Some(b) = block {
            let args = b.retry_args.unwrap_or_else(|| args.to_vec());
            let (waiter, reply) = store.block(client.info.clone(), client.db, out.proto, args, b.keys);
            client.info.blocked.store(true, Ordering::Relaxed);
            client.blocked =
                Some(client::Blocked { waiter, reply, deadline: b.deadline, on_timeout: b.on_timeout });
        }
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
    }

    pub fn register_client(&self, info: Arc<ClientInfo>) {
        self.clients.lock().insert(info.id, info);
        self.metrics.connections.inc();
        self.metrics.connections_total.inc();
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unregister_client(&self, id: u64) {
        if self.clients.lock().remove(&id).is_some() {
            self.metrics.connections.dec();
        }
    }

    pub fn client_count(&self) -> usize {
        self.clients.lock().len()
    }
}

pub fn unknown_command(args: &[Bytes]) -> String {
    let name = &args[0][..args[0].len().min(128)];
    let mut msg =
        format!("ERR unknown command '{}', with args beginning with: ", String::from_utf8_lossy(name));
    let mut budget = 128usize;
    for a in args.iter().skip(1) {
        if budget == 0 {
            break;
        }
        let part = &a[..a.len().min(budget)];
        budget -= part.len();
        msg.push_str(&format!("'{}' ", String::from_utf8_lossy(part)));
    }
    msg
}

/// Binds the client listeners. The first address must bind; others (like `::1` on a host
/// without IPv6) are skipped with a warning.
pub async fn bind_clients(config: &Config) -> std::io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for (i, host) in config.bind.iter().enumerate() {
        let addr = if host.contains(':') {
            format!("[{host}]:{}", config.port)
        } else {
            format!("{host}:{}", config.port)
        };
        match TcpListener::bind(&addr).await {
            Ok(l) => listeners.push(l),
            Err(e) if i > 0 => warn!(%addr, error = %e, "could not listen on an additional address"),
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))),
        }
    }
    Ok(listeners)
}

/// Accepts client connections until shutdown.
pub async fn serve_clients(server: Arc<Server>, listener: TcpListener) {
    let mut shutdown = server.shutdown.subscribe();
    let mut backoff = crate::net::AcceptBackoff::new("client");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(x) => { backoff.reset(); x }
                    Err(e) => { backoff.pause(&e).await; continue; }
                };
                let server = server.clone();
                tokio::spawn(async move { connection::run(server, stream, addr).await });
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Background jobs: the active expiry sweep (as Redis: sample keys with a TTL, delete the
/// expired ones, repeat while more than a quarter of the sample had expired) and memory
/// accounting.
pub async fn background(server: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut shutdown = server.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        server.used_memory.store(allocated_bytes(), Ordering::Relaxed);
        active_expire(&server);
    }
}

fn active_expire(server: &Server) {
    use rand::Rng;
    let deadline = Instant::now() + Duration::from_millis(2);
    let mut rng = rand::rng();
    for db in 0..crate::crdt::replica::DATABASES {
        loop {
            let mut store = server.store.lock();
            let now = server.now_ms();
            let n = store.replica.db(db).expiring_len();
            if n == 0 {
                break;
            }
            let mut expired = Vec::new();
            let samples = n.min(20);
            for _ in 0..samples {
                let i = rng.random_range(0..n);
                let ks = store.replica.db(db);
                if let Some(key) = ks.expiring_key(i) {
                    if ks.get(key).is_some_and(|e| e.is_expired(now)) {
                        expired.push(key.clone());
                    }
                }
            }
            expired.sort();
            expired.dedup();
            for key in &expired {
                store.expire_key(db, key, now);
            }
            server.commit(&mut store, now);
            drop(store);
            if expired.len() * 4 <= samples || Instant::now() > deadline {
                break;
            }
        }
    }
}

pub fn allocated_bytes() -> u64 {
    let counted = crate::alloc::counted();
    if counted > 0 {
        return counted as u64;
    }
    #[cfg(not(target_env = "msvc"))]
    {
        let _ = tikv_jemalloc_ctl::epoch::advance();
        tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0) as u64
    }
    #[cfg(target_env = "msvc")]
    {
        0
    }
}

pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Starts everything and runs until SIGTERM/SIGINT.
pub async fn run(config: Config) -> std::io::Result<()> {
    let listeners = bind_clients(&config).await?;
    // Bound before the data directory is replayed, so that the ports are ours while it runs
    // (connections wait in the backlog).
    let admin = crate::admin::bind(&config).await?;
    let server = Server::with_mesh(config.clone())?;
    *server.listen_addrs.lock() = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
    let exposed = server.listen_addrs.lock().iter().any(|a| !a.ip().to_canonical().is_loopback());
    if exposed && server.protected_mode_active() {
        warn!(
            "protected mode: no password is set, so clients from addresses other than loopback are \
             refused (set --requirepass, or --protected-mode no on a trusted network)"
        );
    }
    for l in listeners {
        tokio::spawn(serve_clients(server.clone(), l));
    }
    tokio::spawn(crate::admin::serve(server.clone(), admin));
    tokio::spawn(background(server.clone()));
    if server.durability.is_some() {
        tokio::spawn(durability::storage_loop(server.clone()));
    }
    if let Some(mesh) = &server.mesh {
        crate::mesh::start(mesh.clone(), server.clone(), &config).await?;
        if let Some(strong) = &server.strong {
            strong.start(server.clone(), mesh.clone()).await?;
        }
    }
    match &server.mesh {
        Some(mesh) if mesh.has_seeds && server.rebuilding => {
            info!("rebuilding from the peers (the damaged data directory was set aside): ready after the initial sync from a peer");
        }
        Some(mesh) if mesh.has_seeds => {
            // Ready after the initial sync from a peer, or when none answers in time.
            let s = server.clone();
            let timeout = Duration::from_millis(s.config.bootstrap_timeout_ms);
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if !s.ready.load(Ordering::Acquire) && s.mesh.as_ref().is_some_and(|m| m.connected() == 0) {
                    info!("no peer reachable within the bootstrap timeout: ready on our own");
                    s.ready.store(true, Ordering::Release);
                }
            });
        }
        _ => server.ready.store(true, Ordering::Release),
    }
    info!(
        replica = format!("{:016x}", server.replica_id),
        database = %server.config.database,
        addrs = ?server.listen_addrs.lock(),
        "ready to accept connections"
    );
    let mut shutdown = server.shutdown.subscribe();
    tokio::select! {
        _ = wait_for_signal() => {}
        // SHUTDOWN from a client.
        _ = shutdown.changed() => {}
    }
    info!("shutting down");
    let _ = server.shutdown.send(true);
    if let Some(mesh) = &server.mesh {
        mesh.stop();
    }
    for c in server.clients.lock().values() {
        c.kill();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    if let Some(storage) = server.store.lock().storage.as_mut() {
        storage.close();
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
