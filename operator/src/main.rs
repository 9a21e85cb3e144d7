//! syncmesh-operator: every instance serves the injection webhook and the admin port; the one
//! holding the leader Lease also runs the reconciler.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};

use syncmesh_operator::admin::{self, Readiness};
use syncmesh_operator::config::Config;
use syncmesh_operator::controller::{self, Context};
use syncmesh_operator::crd::SyncedDatabase;
use syncmesh_operator::leader::LeaderElector;
use syncmesh_operator::webhook::patch::Defaults;
use syncmesh_operator::webhook::{self, certs, Webhook};

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|e| {
        eprintln!("syncmesh-operator: invalid --log '{}': {e}", config.log);
        std::process::exit(2);
    });
    // Colours only on a terminal: in a pod or a log file, escape codes are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal(tx: watch::Sender<bool>) {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    info!("shutting down");
    let _ = tx.send(true);
}

#[tokio::main]
async fn main() {
    let config = Config::parse();
    init_logging(&config);
    if let Err(e) = run(config).await {
        error!("{e}");
        std::process::exit(1);
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.map_err(|e| format!("cannot reach the Kubernetes API: {e}"))?;
    let identity = config.identity();
    let readiness = Arc::new(Readiness::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(shutdown_signal(shutdown_tx));

    let admin_listener = TcpListener::bind(&config.admin_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.admin_addr))?;
    tokio::spawn(admin::serve(admin_listener, readiness.clone()));

    // The webhook: a certificate first (shared through a Secret), then the cache, then serve.
    let resolver = certs::CertResolver::new();
    loop {
        match certs::refresh_once(&client, &config, &resolver).await {
            Ok(()) => break,
            Err(e) => {
                error!(error = %e, "cannot set up the webhook certificate; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    readiness.webhook.store(resolver.has_cert(), Ordering::Relaxed);
    tokio::spawn(certs::refresh_loop(
        client.clone(),
        config.clone(),
        resolver.clone(),
        Duration::from_secs(config.cert_refresh_seconds.max(1)),
    ));

    let (store, writer) = reflector::store::<SyncedDatabase>();
    let databases =
        reflector(writer, watcher(Api::<SyncedDatabase>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .touched_objects()
            .for_each(|_| async {});
    tokio::spawn(databases);
    {
        let store = store.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            if store.wait_until_ready().await.is_ok() {
                readiness.caches.store(true, Ordering::Relaxed);
                info!("SyncedDatabase cache synced");
            }
        });
    }
    let defaults = Defaults { replica_image: config.replica_image.clone() };
    let hook = Arc::new(Webhook { client: client.clone(), databases: store, defaults: defaults.clone() });
    let webhook_listener = TcpListener::bind(&config.webhook_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.webhook_addr))?;
    tokio::spawn(webhook::serve(webhook_listener, certs::server_config(resolver), hook));

    // The reconciler runs only while this instance leads.
    let (leading_tx, mut leading_rx) = watch::channel(false);
    let mut elector = LeaderElector::new(
        client.clone(),
        &config.namespace,
        &config.lease_name,
        &identity,
        Duration::from_secs(config.lease_seconds.max(2) as u64),
    );
    if !config.create_missing {
        elector = elector.without_creating();
    }
    let election = tokio::spawn(elector.run(leading_tx, shutdown_rx.clone()));
    info!(%identity, namespace = %config.namespace, "waiting for the leader lease");
    let mut shutdown = shutdown_rx.clone();
    loop {
        tokio::select! {
            changed = leading_rx.changed() => {
                if changed.is_err() { break }
                if *leading_rx.borrow() { break }
            }
            _ = shutdown.changed() => {
                let _ = election.await;
                return Ok(());
            }
        }
    }
    if *shutdown.borrow() {
        let _ = election.await;
        return Ok(());
    }
    info!(%identity, "leading: starting the reconciler");
    let ctx = Context::new(client.clone(), defaults, identity.clone());
    let reconciler = controller::run(ctx);
    tokio::select! {
        _ = reconciler => {}
        _ = async { while leading_rx.changed().await.is_ok() && *leading_rx.borrow() {} } => {
            if !*shutdown.borrow() {
                // Another instance may lead now: stop at once rather than reconcile beside it.
                return Err("lost the leader lease".into());
            }
        }
    }
    let _ = election.await;
    Ok(())
}
