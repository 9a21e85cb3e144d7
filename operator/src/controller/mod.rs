//! The reconciler: for each SyncedDatabase, keep its owned objects in shape and report status.
//!
//! Owned objects (all with a controller ownerReference, written by server-side apply under the
//! field manager `syncmesh-operator`): the headless mesh Service, the mesh CA and member
//! certificate Secrets (mode `Auto`), and with `persistence.durableReplicas > 0` the durable
//! StatefulSet and its PodDisruptionBudget. The finalizer deletes them before the
//! SyncedDatabase goes away. Errors requeue with exponential backoff per object.

pub mod admin_token;
pub mod resources;
pub mod rollout;
pub mod status;
pub mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::crd::{RolloutPolicy, SyncedDatabase, TlsMode, DATABASE_LABEL, FINALIZER, MEMBER_LABEL};
use crate::metrics::{DatabaseFigures, METRICS};
use crate::webhook::patch::Defaults;
use status::{MeshView, Observed};

pub const FIELD_MANAGER: &str = "syncmesh-operator";
/// How often a healthy database is looked at again (certificate renewal, member health).
const RESYNC: Duration = Duration::from_secs(60);
/// How often while members or durable replicas are not all ready, or the mesh is not formed.
const RESYNC_UNSETTLED: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("certificates: {0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A short label for metrics and logs: `conflict` (409: someone else owns a field or the
    /// object changed), `forbidden` (403: the operator's RBAC lacks a permission), `kube`
    /// (any other API error), `pki`, `invalid`. A finalizer error is labelled by its cause.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(e)) if e.code == 403 => "forbidden",
            Error::Kube(_) => "kube",
            Error::Pki(_) => "pki",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.kind(),
                kube::runtime::finalizer::Error::AddFinalizer(kube::Error::Api(e))
                | kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(e))
                    if e.code == 409 =>
                {
                    "conflict"
                }
                kube::runtime::finalizer::Error::AddFinalizer(kube::Error::Api(e))
                | kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(e))
                    if e.code == 403 =>
                {
                    "forbidden"
                }
                _ => "kube",
            },
            Error::Invalid(_) => "invalid",
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub defaults: Defaults,
    /// Consecutive failures per object, for backoff.
    failures: Mutex<HashMap<ObjectRef<SyncedDatabase>, u32>>,
}

impl Context {
    pub fn new(client: Client, defaults: Defaults, instance: String) -> Arc<Self> {
        let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: Some(instance) };
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            defaults,
            failures: Mutex::new(HashMap::new()),
        })
    }

    async fn event(&self, db: &SyncedDatabase, type_: EventType, reason: &str, action: &str, note: String) {
        let ev =
            Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &db.object_ref(&())).await {
            warn!(error = %e, reason, "could not publish an event");
        }
    }
}

/// Runs the controller until the stream ends (it does not on its own).
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let databases: Api<SyncedDatabase> = Api::all(client.clone());
    let opt_in = watcher::Config::default().labels(DATABASE_LABEL);
    // Only objects this operator labelled are watched (not every Secret in the cluster).
    let owned = || watcher::Config::default().labels(resources::OWNED_SELECTOR);
    Controller::new(databases, watcher::Config::default())
        .owns(Api::<Service>::all(client.clone()), owned())
        .owns(Api::<Secret>::all(client.clone()), owned())
        .owns(Api::<StatefulSet>::all(client.clone()), owned())
        .owns(Api::<PodDisruptionBudget>::all(client.clone()), owned())
        // A pod that opts in (or changes readiness) changes the database's status.
        .watches(Api::<Pod>::all(client.clone()), opt_in, |pod: Pod| {
            let name = pod.labels().get(DATABASE_LABEL)?.clone();
            Some(ObjectRef::new(&name).within(&pod.namespace()?))
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "reconcile failed");
            }
        })
        .await;
}

/// One reconcile of one SyncedDatabase: adds the finalizer, or brings the owned objects and the
/// status in line ([`apply`]), or cleans up when it is being deleted ([`cleanup`]).
pub async fn reconcile(db: Arc<SyncedDatabase>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace =
        db.namespace().ok_or_else(|| Error::Invalid("SyncedDatabase without a namespace".into()))?;
    let api: Api<SyncedDatabase> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, db.clone(), |event| async {
        match event {
            Finalizer::Apply(db) => apply(&db, &ctx).await,
            Finalizer::Cleanup(db) => cleanup(&db, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    METRICS.reconcile_seconds.with_label_values(&[] as &[&str]).observe(started.elapsed().as_secs_f64());
    METRICS.reconciles.with_label_values(&[if result.is_ok() { "ok" } else { "error" }]).inc();
    if result.is_ok() {
        ctx.failures.lock().expect("lock").remove(&ObjectRef::from(db.as_ref()));
    }
    result
}

/// Requeues a failed object with exponential backoff: 1 s, 2 s, 4 s … up to 5 minutes.
pub fn error_policy(db: Arc<SyncedDatabase>, error: &Error, ctx: Arc<Context>) -> Action {
    METRICS.reconcile_errors.with_label_values(&[error.kind()]).inc();
    let mut failures = ctx.failures.lock().expect("lock");
    let n = failures.entry(ObjectRef::from(db.as_ref())).or_insert(0);
    *n = n.saturating_add(1);
    let delay = Duration::from_secs(1u64 << (*n - 1).min(9)).min(Duration::from_secs(300));
    warn!(database = %db.name_any(), namespace = ?db.namespace(), error = %error, retry_in = ?delay, "reconcile failed");
    let ctx = ctx.clone();
    let (db, message) = (db.clone(), error.to_string());
    tokio::spawn(
        async move { ctx.event(&db, EventType::Warning, "ReconcileFailed", "Reconcile", message).await },
    );
    Action::requeue(delay)
}

async fn apply_object<K>(api: &Api<K>, object: &K) -> Result<(), Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object)).await?;
    Ok(())
}

async fn delete_if_exists<K>(api: &Api<K>, name: &str) -> Result<bool, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn apply(db: &SyncedDatabase, ctx: &Context) -> Result<Action, Error> {
    let client = ctx.client.clone();
    let namespace = db.namespace().unwrap_or_default();
    let name = db.name_any();

    apply_object(&Api::<Service>::namespaced(client.clone(), &namespace), &resources::mesh_service(db))
        .await?;

    if db.spec.mesh.tls.mode == TlsMode::Auto {
        let outcome = tls::ensure_mesh_tls(&Api::namespaced(client.clone(), &namespace), db).await?;
        if outcome.ca_issued {
            ctx.event(
                db,
                EventType::Normal,
                "CAIssued",
                "IssueCertificate",
                format!("issued the mesh CA in Secret {}", db.ca_secret_name()),
            )
            .await;
        }
        if outcome.member_issued {
            let note = format!("issued the member certificate in Secret {}", db.member_tls_secret_name());
            ctx.event(db, EventType::Normal, "CertificateIssued", "IssueCertificate", note).await;
        }
    } else {
        tls::observe_external(&Api::namespaced(client.clone(), &namespace), db).await?;
    }

    let admin_token =
        admin_token::ensure_admin_token(&Api::namespaced(client.clone(), &namespace), db).await?;

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &namespace);
    let wanted = db.spec.persistence.durable_replicas;
    let mut durable_ready = 0;
    if wanted > 0 {
        apply_object(&statefulsets, &resources::durable_statefulset(db, &ctx.defaults)).await?;
        apply_object(&pdbs, &resources::durable_pdb(db)).await?;
        let sts = statefulsets.get_opt(&db.durable_name()).await?;
        durable_ready = sts.and_then(|s| s.status).and_then(|s| s.ready_replicas).unwrap_or(0);
    } else {
        let removed = delete_if_exists(&statefulsets, &db.durable_name()).await?;
        delete_if_exists(&pdbs, &db.durable_name()).await?;
        if removed {
            let note =
                format!("durableReplicas is 0: deleted StatefulSet {} and its volumes", db.durable_name());
            ctx.event(db, EventType::Normal, "DurableReplicasRemoved", "Delete", note).await;
        }
    }

    // Members: the pods that opted in.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let opted_in = pods.list(&ListParams::default().labels(&format!("{DATABASE_LABEL}={name}"))).await?;
    let (members, uninjected) = status::classify(&opted_in.items);
    let ready_ips: Vec<(String, String)> =
        members.iter().filter(|m| m.ready).filter_map(|m| Some((m.name.clone(), m.ip.clone()?))).collect();
    let views: Vec<(String, MeshView)> = if ready_ips.len() > 1 {
        futures::future::join_all(ready_ips.iter().map(|(pod, ip)| {
            let token = admin_token.as_str();
            async move { (pod.clone(), status::probe(ip, token, Duration::from_secs(1)).await) }
        }))
        .await
    } else {
        Vec::new()
    };
    // Which replica image each member runs, and (rolloutAfterUpgrade: Restart) the restart of
    // the workloads whose pods run another than the one injected now.
    let wanted_image = db.spec.replica.image.clone().unwrap_or_else(|| ctx.defaults.replica_image.clone());
    let durable_images = if wanted > 0 {
        let selector = format!("{MEMBER_LABEL}={name},{}=durable", resources::ROLE_LABEL);
        status::durable_images(&pods.list(&ListParams::default().labels(&selector)).await?.items)
    } else {
        Vec::new()
    };
    let (mut restarted, mut unowned) = (Vec::new(), Vec::new());
    if db.spec.rollout_after_upgrade == RolloutPolicy::Restart {
        let outdated: Vec<&Pod> = opted_in
            .items
            .iter()
            .filter(|p| members.iter().any(|m| Some(&m.name) == p.metadata.name.as_ref()))
            .filter(|p| status::replica_image(p).is_some_and(|i| i != wanted_image))
            .collect();
        if !outdated.is_empty() {
            let rollout = rollout::restart_outdated(&client, &namespace, &outdated, &wanted_image).await?;
            for workload in &rollout.newly_restarted {
                let note =
                    format!("restarted {workload}: its pods run another replica image than {wanted_image}");
                ctx.event(db, EventType::Normal, "RolloutRestarted", "Restart", note).await;
            }
            restarted = rollout.restarted.iter().map(|w| w.to_string()).collect();
            unowned = rollout.unowned;
        }
    }

    let new_status = status::compute(
        db,
        &Observed {
            members: &members,
            uninjected: &uninjected,
            durable: (durable_ready, wanted),
            views: &views,
            wanted_image: &wanted_image,
            durable_images: &durable_images,
            restarted: &restarted,
            unowned: &unowned,
        },
    );
    let conditions: Vec<(&str, bool)> =
        new_status.conditions.iter().map(|c| (c.type_.as_str(), c.status == "True")).collect();
    let images: Vec<(String, bool, i64)> =
        new_status.replica_versions.iter().map(|v| (v.image.clone(), v.current, v.pods as i64)).collect();
    METRICS.record_database(
        &namespace,
        &name,
        &DatabaseFigures {
            injected: new_status.members.injected as i64,
            ready: new_status.members.ready as i64,
            uninjected: new_status.uninjected_pods.len() as i64,
            conditions: &conditions,
            images: &images,
        },
    );

    let previous_uninjected = db.status.as_ref().map(|s| s.uninjected_pods.clone()).unwrap_or_default();
    if !uninjected.is_empty() && uninjected != previous_uninjected {
        let note = format!(
            "pods without the replica although labelled {DATABASE_LABEL}={name}: {}",
            uninjected.join(", ")
        );
        ctx.event(db, EventType::Warning, "UninjectedPods", "Inspect", note).await;
    }
    let became_ready = new_status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        && !db
            .status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));

    if db.status.as_ref() != Some(&new_status) {
        let api: Api<SyncedDatabase> = Api::namespaced(client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": "syncmesh.io/v1alpha1",
            "kind": "SyncedDatabase",
            "status": new_status,
        });
        match api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await
        {
            Ok(_) => {}
            // Deleted while this reconcile ran (its finalizer was removed by hand): nothing to
            // report on, and the owned objects go with it (owner references).
            Err(kube::Error::Api(e)) if e.code == 404 => {
                info!(database = %name, %namespace, "deleted during reconcile");
                METRICS.forget_database(&namespace, &name);
                return Ok(Action::await_change());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if became_ready {
        let note = format!("mesh Service {} and certificates in place", db.mesh_service_name());
        ctx.event(db, EventType::Normal, "Ready", "Reconcile", note).await;
        info!(database = %name, %namespace, "ready");
    }

    // Members connect to each other moments after they turn ready: look again soon until the
    // mesh is formed, since no pod event will say when it is.
    let mesh_formed = new_status.conditions.iter().any(|c| c.type_ == "MeshFormed" && c.status == "True");
    let settled = new_status.members.ready == new_status.members.injected
        && durable_ready >= wanted
        && (mesh_formed || new_status.members.ready == 0);
    Ok(Action::requeue(if settled { RESYNC } else { RESYNC_UNSETTLED }))
}

/// Deletes what the database owns (the garbage collector would, but only after the object is
/// gone; doing it here makes deletion complete when the SyncedDatabase disappears).
async fn cleanup(db: &SyncedDatabase, ctx: &Context) -> Result<Action, Error> {
    let client = ctx.client.clone();
    let namespace = db.namespace().unwrap_or_default();
    ctx.event(
        db,
        EventType::Normal,
        "Deleting",
        "Cleanup",
        "deleting the mesh Service, certificates and durable replicas".into(),
    )
    .await;
    delete_if_exists(&Api::<StatefulSet>::namespaced(client.clone(), &namespace), &db.durable_name()).await?;
    delete_if_exists(&Api::<PodDisruptionBudget>::namespaced(client.clone(), &namespace), &db.durable_name())
        .await?;
    delete_if_exists(&Api::<Service>::namespaced(client.clone(), &namespace), &db.mesh_service_name())
        .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    delete_if_exists(&secrets, &db.ca_secret_name()).await?;
    delete_if_exists(&secrets, &db.admin_secret_name()).await?;
    if db.spec.mesh.tls.mode == TlsMode::Auto {
        delete_if_exists(&secrets, &db.member_tls_secret_name()).await?;
    }
    METRICS.forget_database(&namespace, &db.name_any());
    METRICS.forget_certificates(&namespace, &db.ca_secret_name());
    METRICS.forget_certificates(&namespace, &db.member_tls_secret_name());
    info!(database = %db.name_any(), %namespace, "cleaned up");
    Ok(Action::await_change())
}
