//! The reconciler's error paths, in-process against a fake API server (`fake_api`): conflicts
//! on apply, a permission the operator's RBAC lacks, the object deleted during a reconcile,
//! the finalizer while a dependent cannot be deleted, and the backoff between retries. The
//! real API server runs the happy paths (tests/k8s/operator.sh).

mod fake_api;

use std::sync::Arc;
use std::time::Duration;

use fake_api::FakeApi;
use kube::runtime::controller::Action;
use serde_json::{json, Value};
use syncmesh_operator::controller::{error_policy, reconcile, Context};
use syncmesh_operator::crd::SyncedDatabase;
use syncmesh_operator::metrics::METRICS;
use syncmesh_operator::webhook::patch::Defaults;

const DB: &str = "/apis/syncmesh.io/v1alpha1/namespaces/shop/synceddatabases/orders";
const SERVICE: &str = "/api/v1/namespaces/shop/services/orders-mesh";
const CA: &str = "/api/v1/namespaces/shop/secrets/orders-mesh-ca";
const MEMBER_TLS: &str = "/api/v1/namespaces/shop/secrets/orders-mesh-tls";
const PODS: &str = "/api/v1/namespaces/shop/pods";

/// A stored SyncedDatabase `shop/orders` that already carries the finalizer.
fn database(deleting: bool) -> Value {
    let mut db = json!({
        "apiVersion": "syncmesh.io/v1alpha1",
        "kind": "SyncedDatabase",
        "metadata": {
            "name": "orders", "namespace": "shop", "uid": "3f1c2a9e-0000-4000-8000-000000000001",
            "generation": 1, "resourceVersion": "1", "finalizers": ["syncmesh.io/cleanup"]
        },
        "spec": {}
    });
    if deleting {
        db["metadata"]["deletionTimestamp"] = json!("2026-12-03T10:00:00Z");
    }
    db
}

fn setup(deleting: bool) -> (FakeApi, Arc<SyncedDatabase>, Arc<Context>) {
    let fake = FakeApi::new();
    let object = database(deleting);
    fake.put(DB, object.clone());
    let db: SyncedDatabase = serde_json::from_value(object).unwrap();
    let ctx = Context::new(
        fake.client(),
        Defaults { replica_image: "syncmesh/syncmesh-replica:test".into() },
        "test".into(),
    );
    (fake, Arc::new(db), ctx)
}

fn errors_of(kind: &str) -> u64 {
    METRICS.reconcile_errors.with_label_values(&[kind]).get()
}

/// Waits up to a second for an Event (error_policy publishes from a spawned task).
async fn event(fake: &FakeApi, reason: &str) -> (String, String, String) {
    for _ in 0..100 {
        if let Some(e) = fake.events().into_iter().find(|(_, r, _)| r == reason) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {reason} Event; Events: {:?}", fake.events());
}

fn condition(fake: &FakeApi, type_: &str) -> Value {
    let db = fake.get(DB).unwrap();
    db["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or_else(|| panic!("no {type_} condition in {:#}", db["status"]))
}

#[tokio::test]
async fn a_reconcile_creates_the_owned_objects_and_reports_ready() {
    let (fake, db, ctx) = setup(false);
    let action = reconcile(db, ctx).await.expect("reconcile succeeds");
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let service = fake.get(SERVICE).expect("the mesh Service is applied");
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(service["metadata"]["ownerReferences"][0]["uid"], "3f1c2a9e-0000-4000-8000-000000000001");
    assert!(
        fake.get(CA).is_some() && fake.get(MEMBER_TLS).is_some(),
        "the CA and member Secrets are applied"
    );
    assert_eq!(condition(&fake, "Ready")["status"], "True");
    assert_eq!(condition(&fake, "ReplicasUpToDate")["reason"], "AllCurrent");
    event(&fake, "CAIssued").await;
}

#[tokio::test]
async fn a_conflict_on_apply_fails_the_reconcile_and_the_retry_succeeds() {
    let (fake, db, ctx) = setup(false);
    fake.fail(
        "PATCH",
        SERVICE,
        409,
        "Operation cannot be fulfilled on services \"orders-mesh\": conflict",
        1,
    );
    let before = errors_of("conflict");
    let error = reconcile(db.clone(), ctx.clone()).await.expect_err("the conflict fails the reconcile");
    assert_eq!(error.kind(), "conflict", "{error}");
    assert!(error.to_string().contains("conflict"), "{error}");
    assert_eq!(error_policy(db.clone(), &error, ctx.clone()), Action::requeue(Duration::from_secs(1)));
    assert_eq!(errors_of("conflict"), before + 1);
    let (type_, _, note) = event(&fake, "ReconcileFailed").await;
    assert_eq!(type_, "Warning");
    assert!(note.contains("orders-mesh"), "{note}");
    // Nothing after the failed step ran: no certificates, no status.
    assert!(fake.get(CA).is_none() && fake.get(DB).unwrap().get("status").is_none());

    reconcile(db, ctx).await.expect("the retry succeeds");
    assert!(fake.get(SERVICE).is_some());
    assert_eq!(condition(&fake, "Ready")["status"], "True");
}

#[tokio::test]
async fn missing_rbac_is_a_forbidden_error_that_says_what_is_missing() {
    let (fake, db, ctx) = setup(false);
    let message = "pods is forbidden: User \"system:serviceaccount:syncmesh-system:syncmesh\" cannot list \
                   resource \"pods\" in API group \"\" in the namespace \"shop\"";
    fake.fail("GET", PODS, 403, message, usize::MAX);
    let before = errors_of("forbidden");
    let error = reconcile(db.clone(), ctx.clone()).await.expect_err("a 403 fails the reconcile");
    assert_eq!(error.kind(), "forbidden", "{error}");
    error_policy(db.clone(), &error, ctx.clone());
    assert_eq!(errors_of("forbidden"), before + 1);
    let (_, _, note) = event(&fake, "ReconcileFailed").await;
    assert!(note.contains("cannot list resource \"pods\""), "the Event names the missing permission: {note}");
    // The status is not written from half an observation.
    assert!(fake.get(DB).unwrap().get("status").is_none());
    assert_eq!(fake.count("PATCH", &format!("{DB}/status")), 0);
}

#[tokio::test]
async fn a_database_deleted_during_the_reconcile_ends_it_quietly() {
    let (fake, db, ctx) = setup(false);
    // The status write finds the object gone (its finalizer removed by hand meanwhile).
    fake.fail("PATCH", &format!("{DB}/status"), 404, "synceddatabases.syncmesh.io \"orders\" not found", 1);
    let action = reconcile(db, ctx).await.expect("a deleted database is not an error");
    assert_eq!(action, Action::await_change());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        fake.events().iter().all(|(_, r, _)| r != "ReconcileFailed"),
        "no failure is reported: {:?}",
        fake.events()
    );
    let families = syncmesh_operator::metrics::render();
    assert!(
        !families.lines().any(|l| l.starts_with("syncmesh_operator_database_members{")
            && l.contains("namespace=\"shop\"")
            && l.contains("database=\"orders\"")),
        "the deleted database's series are forgotten"
    );
}

#[tokio::test]
async fn the_finalizer_stays_while_a_dependent_cannot_be_deleted() {
    let (fake, db, ctx) = setup(true);
    fake.put(SERVICE, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "orders-mesh"}}));
    fake.put(CA, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "orders-mesh-ca"}}));
    fake.put(
        MEMBER_TLS,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "orders-mesh-tls"}}),
    );
    let stuck = "secrets \"orders-mesh-ca\" is forbidden: unable to delete while a policy holds it";
    fake.fail("DELETE", CA, 403, stuck, 2);

    for attempt in 1..=2u32 {
        let error =
            reconcile(db.clone(), ctx.clone()).await.expect_err("cleanup fails while the Secret stays");
        let delay = error_policy(db.clone(), &error, ctx.clone());
        assert_eq!(delay, Action::requeue(Duration::from_secs(1 << (attempt - 1))), "attempt {attempt}");
        assert_eq!(
            fake.get(DB).unwrap()["metadata"]["finalizers"],
            json!(["syncmesh.io/cleanup"]),
            "attempt {attempt}: the finalizer must stay"
        );
    }
    let (_, _, note) = event(&fake, "ReconcileFailed").await;
    assert!(note.contains("orders-mesh-ca"), "{note}");
    assert!(fake.get(SERVICE).is_none(), "what could be deleted is deleted");
    assert_eq!(fake.count("DELETE", CA), 2, "each attempt tries the stuck Secret again");

    reconcile(db.clone(), ctx.clone()).await.expect("cleanup succeeds once the Secret can go");
    assert!(fake.get(CA).is_none() && fake.get(MEMBER_TLS).is_none());
    assert_eq!(fake.get(DB).unwrap()["metadata"]["finalizers"], json!([]), "the finalizer is removed last");
}

#[tokio::test]
async fn retries_back_off_exponentially_to_five_minutes_and_reset_after_a_success() {
    let (fake, db, ctx) = setup(false);
    fake.fail("PATCH", SERVICE, 500, "etcdserver: request timed out", 3);
    let error = reconcile(db.clone(), ctx.clone()).await.expect_err("the API error fails the reconcile");
    assert_eq!(error.kind(), "kube");
    let seconds = |action: Action| {
        (1..=300).find(|s| action == Action::requeue(Duration::from_secs(*s))).expect("a requeue in seconds")
    };
    let delays: Vec<u64> = (0..12).map(|_| seconds(error_policy(db.clone(), &error, ctx.clone()))).collect();
    assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);

    // Another database's failures are counted on their own.
    let mut other = database(false);
    other["metadata"]["name"] = json!("carts");
    let other: SyncedDatabase = serde_json::from_value(other).unwrap();
    assert_eq!(seconds(error_policy(Arc::new(other), &error, ctx.clone())), 1);

    // A success forgets the failures: the next failure waits 1 s again.
    for _ in 0..2 {
        reconcile(db.clone(), ctx.clone()).await.expect_err("fails while the fault lasts");
    }
    reconcile(db.clone(), ctx.clone()).await.expect("succeeds once the fault is gone");
    fake.fail("PATCH", SERVICE, 500, "etcdserver: request timed out", 1);
    let error = reconcile(db.clone(), ctx.clone()).await.expect_err("fails again");
    assert_eq!(seconds(error_policy(db, &error, ctx)), 1);
}
