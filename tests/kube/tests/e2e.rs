//! End to end on a real single-node cluster (tests/k8s/e2e.sh brings it up with `cluster.sh up
//! --node`, packs and imports the images, and runs this): the chart's operator runs as pods and
//! serves its webhook through its Service; two demo microservices (tests/e2e/demo) get the
//! replica injected and share data through it. The setup steps are tests/k8s/demo.sh's (the
//! README's demo), so the test checks what users run. Then the replica is upgraded and the
//! pods are rolled, by hand and by `rolloutAfterUpgrade: Restart`.
//!
//! Environment: what `cluster.sh up --node` exports, and E2E_TAG (the images' tag; the replica
//! image is also imported as `<tag>-v2`).

use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use syncmesh_k8s_tests::http::{self, request};
use syncmesh_k8s_tests::{
    condition, differs, ensure, ensure_eq, eventually, run, Checks, Cluster, Failure, Outcome,
};
use syncmesh_operator::crd::SyncedDatabase;

const SYSTEM_NS: &str = "syncmesh-system";
const NS: &str = "shop";

/// The demo's functions (tests/k8s/demo.sh), run as the demo runs them.
async fn demo(cluster: &Cluster, call: &str) -> Outcome<String> {
    let script = format!("source {}/tests/k8s/demo.sh && {call}", cluster.root.display());
    run(Path::new("bash"), &["-c", &script], None).await
}

async fn pods_of(pods: &Api<Pod>, selector: &str) -> Outcome<Vec<Pod>> {
    let list = pods.list(&ListParams::default().labels(selector)).await?;
    Ok(list.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect())
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// IPs of an app's ready pods.
async fn ips(pods: &Api<Pod>, app: &str) -> Outcome<Vec<String>> {
    Ok(pods_of(pods, &format!("app={app}"))
        .await?
        .iter()
        .filter(|p| ready(p))
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect())
}

async fn ready_count(pods: &Api<Pod>) -> Outcome<usize> {
    Ok(pods_of(pods, "syncmesh.io/database=orders").await?.iter().filter(|p| ready(p)).count())
}

fn url(ip: &str, path: &str) -> String {
    format!("http://{ip}:8080{path}")
}

async fn api(method: &str, ip: &str, path: &str, body: &str) -> Outcome<String> {
    let a = request(method, &url(ip, path), body, Duration::from_secs(5)).await?;
    ensure!(a.status == 200, "{method} {path} on {ip}: {} {}", a.status, a.body);
    Ok(a.body)
}

/// Every pod's service reads `want` for `key` within `limit`.
async fn read_everywhere(all: &[String], key: &str, want: &str, limit: Duration) -> Outcome {
    let deadline = Instant::now() + limit;
    loop {
        let path = format!("/kv/{key}");
        let reads = join_all(all.iter().map(|ip| api("GET", ip, &path, ""))).await;
        let pending: Vec<String> = all
            .iter()
            .zip(&reads)
            .filter(|(_, r)| r.as_deref().ok() != Some(want))
            .map(|(ip, r)| format!("{ip}: {r:?}"))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure(format!("{} pods do not read {key}={want}: {pending:?}", pending.len())));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sdb_reason(db: &SyncedDatabase, type_: &str) -> Option<String> {
    condition(&db.status.as_ref()?.conditions, type_).map(|c| c.reason.clone())
}

/// (image, pods) of the database's members, from its status.
fn versions(db: &SyncedDatabase) -> Vec<(String, i32)> {
    db.status.iter().flat_map(|s| s.replica_versions.iter()).map(|v| (v.image.clone(), v.pods)).collect()
}

#[tokio::test]
#[ignore = "needs a cluster with a node: bash tests/k8s/e2e.sh"]
async fn e2e() {
    let cluster = Cluster::from_env().await;
    let mut t = Checks::new("e2e");
    let tag = std::env::var("E2E_TAG").unwrap_or_else(|_| "e2e".into());
    let v2 = format!("{tag}-v2");
    let client = cluster.client.clone();
    let kubectl = cluster.bin.join("kubectl");
    let helm = cluster.bin.join("helm");
    let (kubectl, helm) = (kubectl.to_str().unwrap(), helm.to_str().unwrap());
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let dbs: Api<SyncedDatabase> = Api::namespaced(client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);

    // ------------------------------------------------------------------ 1. helm install
    t.require("helm install: the operator runs as pods (2 replicas, ready)", async {
        demo(&cluster, &format!("demo_install {kubectl} {helm} {tag}")).await.map(|_| ())
    })
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), SYSTEM_NS);
    t.check(
        "the webhook Service has both operator pods as ready endpoints",
        eventually(Duration::from_secs(60), || async {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=syncmesh-webhook"))
                .await?;
            let ready = list
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter().flatten())
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                .count();
            ensure!(ready == 2, "{ready} ready endpoints");
            Ok(())
        }),
    )
    .await;
    t.check("the operator's logs are plain text without colour codes (not a terminal)", async {
        let logs = cluster.kubectl(&["-n", SYSTEM_NS, "logs", "deployment/syncmesh", "--tail=20"]).await?;
        ensure!(!logs.is_empty() && !logs.contains('\u{1b}'), "escape codes in:\n{logs}");
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ 2. a database and two services
    let applied = Instant::now();
    t.check("the SyncedDatabase and two labelled Deployments apply", async {
        demo(&cluster, &format!("demo_deploy {kubectl} {tag}")).await.map(|_| ())
    })
    .await;
    t.require(
        "four pods of two services run and are ready",
        eventually(Duration::from_secs(180), || async {
            let n = ready_count(&pods).await?;
            ensure!(n == 4, "{n} ready pods");
            Ok(())
        }),
    )
    .await;
    let pods_ready_in = applied.elapsed();
    let mut a = ips(&pods, "svc-a").await.unwrap_or_default();
    let b = ips(&pods, "svc-b").await.unwrap_or_default();
    let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
    t.check("every pod runs the replica as a ready native sidecar", async {
        for pod in pods_of(&pods, "syncmesh.io/database=orders").await? {
            let spec = pod.spec.clone().unwrap_or_default();
            let sidecar = spec
                .init_containers
                .as_ref()
                .and_then(|c| c.first())
                .ok_or_else(|| differs("no init container", &pod))?;
            ensure_eq!(
                (sidecar.name.as_str(), sidecar.restart_policy.as_deref()),
                ("syncmesh-replica", Some("Always")),
                &pod
            );
            let status_ready = pod
                .status
                .as_ref()
                .and_then(|s| s.init_container_statuses.as_ref())
                .and_then(|s| s.first())
                .map(|s| s.ready);
            ensure_eq!(status_ready, Some(true), &pod);
        }
        Ok(())
    })
    .await;
    t.check("each application container started only after its replica was ready", async {
        for ip in &all {
            let out = api("GET", ip, "/startup", "").await?;
            ensure!(out.starts_with("replica_ready_at_start=true"), "{ip}: {out}");
        }
        Ok(())
    })
    .await;
    t.check(
        "the SyncedDatabase reports 4 members, 4 ready, mesh formed (all connected)",
        eventually(Duration::from_secs(60), || async {
            let db = dbs.get("orders").await?;
            let m = db.status.clone().unwrap_or_default().members;
            ensure_eq!((m.injected, m.ready, m.summary.as_str()), (4, 4, "4/4"), &db);
            ensure_eq!(sdb_reason(&db, "MeshFormed").as_deref(), Some("AllConnected"), &db);
            Ok(())
        }),
    )
    .await;
    t.check("kubectl get sdb reads READY True, MEMBERS 4/4, MESH True", async {
        let out = cluster.kubectl(&["-n", NS, "get", "sdb", "orders", "--no-headers"]).await?;
        let cols: Vec<&str> = out.split_whitespace().collect();
        ensure!(cols.len() >= 4 && cols[..4] == ["orders", "True", "4/4", "True"], "{out}");
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ 3. sharing data
    let t_write = Instant::now();
    let _ = api("PUT", &a[0], "/kv/color", "blue").await;
    t.check(
        "a write through one pod is read through every other pod within 5 s",
        read_everywhere(&all, "color", "blue", Duration::from_secs(5)),
    )
    .await;
    let replication_ms = t_write.elapsed().as_millis();
    const PER_POD: usize = 25;
    let acks = join_all(all.iter().map(|ip| async move {
        let mut lost = 0;
        for _ in 0..PER_POD {
            if api("POST", ip, "/incr/visits", "").await.is_err() {
                lost += 1;
            }
        }
        lost
    }))
    .await;
    t.check(format!("{} concurrent increments through four pods are all acknowledged", 4 * PER_POD), async {
        ensure!(acks.iter().all(|l| *l == 0), "lost: {acks:?}");
        Ok(())
    })
    .await;
    let total = (4 * PER_POD).to_string();
    t.check(
        "the counter ends at their sum on every pod",
        read_everywhere(&all, "visits", &total, Duration::from_secs(10)),
    )
    .await;
    let subscribers: Vec<String> = std::iter::once(a[1].clone()).chain(b.iter().cloned()).collect();
    let waiting: Vec<_> = subscribers
        .iter()
        .map(|ip| {
            let u = url(ip, "/subscribe/news?timeout=15");
            tokio::spawn(async move { request("GET", &u, "", Duration::from_secs(20)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let published = api("POST", &a[0], "/publish/news", "sale starts").await;
    t.check("a PUBLISH in one pod reaches subscribers in the others", async {
        for (ip, w) in subscribers.iter().zip(waiting) {
            let got = w.await.map_err(|e| Failure(e.to_string()))??;
            ensure!(got.status == 200 && got.body == "sale starts", "{ip}: {got:?}");
        }
        Ok(())
    })
    .await;
    t.check("the demo's PUBLISH answer says what its number counts (this pod's replica only)", async {
        let text = published?;
        ensure!(
            text.starts_with("published; 0 subscriber(s) on this pod's replica")
                && text.contains("other pods receive the message"),
            "{text}"
        );
        Ok(())
    })
    .await;
    let (a0, b0) = (a[0].clone(), b[0].clone());
    let pop = tokio::spawn(async move {
        request("GET", &url(&a0, "/pop/jobs?timeout=20"), "", Duration::from_secs(25)).await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = api("POST", &b0, "/push/jobs", "ship order 42").await;
    t.check("a BRPOP in svc-a receives the element svc-b pushed", async {
        let got = pop.await.map_err(|e| Failure(e.to_string()))??;
        ensure!(got.body == "ship order 42", "{got:?}");
        Ok(())
    })
    .await;
    t.check("kubectl port-forward reaches a demo service from anywhere kubectl works", async {
        let port = syncmesh_k8s_tests::free_port();
        let mut forward = tokio::process::Command::new(kubectl)
            .args(["-n", NS, "port-forward", "deployment/svc-b", &format!("{port}:8080")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}/kv/color");
        let got = eventually(Duration::from_secs(15), || http::get(&url)).await;
        let _ = forward.kill().await;
        ensure!(got? == "blue", "read through the port-forward");
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ 4. pods come and go
    for i in 1..=20 {
        let _ = api("PUT", &a[0], &format!("/kv/acked-{i}"), &format!("v{i}")).await;
    }
    let acked = api("GET", &a[0], "/wait?replicas=3&timeout=5000", "").await;
    t.check(format!("WAIT 3 confirms the other members applied the writes ({acked:?})"), async {
        ensure!(acked?.trim().parse::<i64>().unwrap_or(0) >= 3, "WAIT answered fewer than 3");
        Ok(())
    })
    .await;
    let victim = pods_of(&pods, "app=svc-a")
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) == Some(a[0].as_str()));
    let deleted = Instant::now();
    if let Some(v) = &victim {
        let _ = pods.delete(v.metadata.name.as_deref().unwrap_or_default(), &DeleteParams::default()).await;
    }
    t.check(
        "a deleted pod is replaced",
        eventually(Duration::from_secs(120), || async {
            let now = ips(&pods, "svc-a").await?;
            ensure!(
                ready_count(&pods).await? == 4 && now.len() == 2 && !now.contains(&a[0]),
                "svc-a at {now:?}"
            );
            Ok(())
        }),
    )
    .await;
    let replaced_in = deleted.elapsed();
    let new_a =
        ips(&pods, "svc-a").await.unwrap_or_default().into_iter().find(|ip| *ip != a[1]).unwrap_or_default();
    t.check("its replacement bootstrapped from the mesh before its application started", async {
        let out = api("GET", &new_a, "/startup", "").await?;
        let keys: i64 = out
            .split("keys_at_start=")
            .nth(1)
            .and_then(|k| k.split_whitespace().next()?.parse().ok())
            .unwrap_or(-1);
        ensure!(out.starts_with("replica_ready_at_start=true") && keys >= 22, "{out}");
        Ok(())
    })
    .await;
    a = ips(&pods, "svc-a").await.unwrap_or_default();
    all = a.iter().chain(&b).cloned().collect();
    t.check("nothing acknowledged is lost", async {
        for i in 1..=20 {
            read_everywhere(&all, &format!("acked-{i}"), &format!("v{i}"), Duration::from_secs(5)).await?;
        }
        read_everywhere(&all, "visits", &total, Duration::from_secs(5)).await
    })
    .await;

    // Durable replicas keep the data while every application pod is gone, on a hostPath volume
    // in the instance's state directory (removed by `cluster.sh down`).
    let pv_dir = cluster.state_dir().join("pv-durable-0");
    std::fs::create_dir_all(&pv_dir).unwrap();
    let _ = run(Path::new("chmod"), &["0777", pv_dir.to_str().unwrap()], None).await;
    let classes: Api<StorageClass> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let class: StorageClass = serde_json::from_value(json!({"metadata": {"name": "syncmesh-e2e-local"},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"}))
    .unwrap();
    let volume: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "syncmesh-e2e-durable-0"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "syncmesh-e2e-local", "hostPath": {"path": pv_dir.to_str().unwrap(), "type": "Directory"}}})).unwrap();
    let _ = syncmesh_k8s_tests::objects::apply(&classes, &class).await;
    let _ = syncmesh_k8s_tests::objects::apply(&volumes, &volume).await;
    let _ = dbs
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"persistence":
        {"durableReplicas": 1, "size": "100Mi", "storageClassName": "syncmesh-e2e-local"}}})),
        )
        .await;
    t.check(
        "persistence.durableReplicas: 1 runs a durable replica on a volume",
        eventually(Duration::from_secs(120), || async {
            let db = dbs.get("orders").await?;
            let ok = db.status.as_ref().is_some_and(|s| s.members.durable_ready == 1);
            ensure!(
                ok && sdb_reason(&db, "Ready").as_deref() == Some("Reconciled"),
                "{}",
                serde_yaml::to_string(&db.status).unwrap_or_default()
            );
            Ok(())
        }),
    )
    .await;
    let _ = api("PUT", &b[0], "/kv/survivor", "kept").await;
    t.check(
        "the durable replica applied the latest write (WAIT 4)",
        eventually(Duration::from_secs(20), || async {
            let n: i64 =
                api("GET", &b[0], "/wait?replicas=4&timeout=2000", "").await?.trim().parse().unwrap_or(0);
            ensure!(n >= 4, "WAIT 4 answered {n}");
            Ok(())
        }),
    )
    .await;
    let scale = |n: i32| {
        let deployments = deployments.clone();
        async move {
            for d in ["svc-a", "svc-b"] {
                deployments
                    .patch(d, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": n}})))
                    .await?;
            }
            Ok::<_, Failure>(())
        }
    };
    let _ = scale(0).await;
    t.check(
        "scaling both services to zero removes every application pod",
        eventually(Duration::from_secs(90), || async {
            let n = pods_of(&pods, "syncmesh.io/database=orders").await?.len();
            let left =
                pods.list(&ListParams::default().labels("syncmesh.io/database=orders")).await?.items.len();
            ensure!(n == 0 && left == 0, "{left} pods left");
            Ok(())
        }),
    )
    .await;
    let _ = pods.delete("orders-durable-0", &DeleteParams::default()).await;
    t.check(
        "the durable replica, deleted while it is the only member, restarts from its volume",
        eventually(Duration::from_secs(90), || async {
            let pod = pods.get("orders-durable-0").await?;
            ensure!(pod.metadata.deletion_timestamp.is_none() && ready(&pod), "not back and ready");
            Ok(())
        }),
    )
    .await;
    let _ = scale(2).await;
    t.check(
        "scaled back to two each, the pods start again",
        eventually(Duration::from_secs(180), || async {
            let n = ready_count(&pods).await?;
            ensure!(n == 4, "{n} ready pods");
            Ok(())
        }),
    )
    .await;
    a = ips(&pods, "svc-a").await.unwrap_or_default();
    let mut b = ips(&pods, "svc-b").await.unwrap_or_default();
    all = a.iter().chain(&b).cloned().collect();
    t.check("the data outlived the scale to zero and the durable replica's restart", async {
        read_everywhere(&all, "survivor", "kept", Duration::from_secs(10)).await?;
        read_everywhere(&all, "visits", &total, Duration::from_secs(5)).await?;
        read_everywhere(&all, "acked-20", "v20", Duration::from_secs(5)).await
    })
    .await;

    // ------------------------------------------------------------------ 5. upgrading the replica
    let new_image = format!("syncmesh/syncmesh-replica:{v2}");
    t.check("helm upgrade to a new replica image rolls the operator", async {
        cluster
            .helm(&[
                "upgrade",
                "syncmesh",
                cluster.root.join("charts/syncmesh").to_str().unwrap(),
                "--namespace",
                SYSTEM_NS,
                "--reuse-values",
                "--set",
                &format!("replica.image.tag={v2}"),
                "--wait",
                "--timeout",
                "180s",
            ])
            .await
            .map(|_| ())
    })
    .await;
    t.check(
        "the status shows every application pod on the old image: ReplicasUpToDate False (OutdatedReplicas)",
        eventually(Duration::from_secs(60), || async {
            let db = dbs.get("orders").await?;
            let v = versions(&db);
            let old = v.iter().filter(|(i, _)| *i != new_image).map(|(_, n)| n).sum::<i32>();
            // The four application pods (the durable replica may have rolled already).
            ensure!(
                old >= 4 && sdb_reason(&db, "ReplicasUpToDate").as_deref() == Some("OutdatedReplicas"),
                "{v:?} {:?}",
                sdb_reason(&db, "ReplicasUpToDate")
            );
            Ok(())
        }),
    )
    .await;
    t.check(
        "the durable replica, owned by the operator, rolls to the new image on its own",
        eventually(Duration::from_secs(120), || async {
            let pod = pods.get("orders-durable-0").await?;
            let image = pod
                .spec
                .as_ref()
                .map(|s| s.containers[0].image.clone().unwrap_or_default())
                .unwrap_or_default();
            ensure!(
                image == new_image && ready(&pod),
                "orders-durable-0 runs {image}, ready: {}",
                ready(&pod)
            );
            Ok(())
        }),
    )
    .await;
    let _ = cluster.kubectl(&["-n", NS, "rollout", "restart", "deployment/svc-a"]).await;
    t.check(
        "kubectl rollout restart (the documented way) rolls svc-a; the status counts the progress",
        eventually(Duration::from_secs(180), || async {
            let db = dbs.get("orders").await?;
            let v = versions(&db);
            let fresh = v.iter().find(|(i, _)| *i == new_image).map(|(_, n)| *n).unwrap_or(0);
            ensure!(fresh == 3, "pods on the new image (svc-a's 2 and the durable replica): {v:?}");
            ensure_eq!(sdb_reason(&db, "ReplicasUpToDate").as_deref(), Some("OutdatedReplicas"), &db);
            Ok(())
        }),
    )
    .await;
    let _ = dbs
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rolloutAfterUpgrade": "Restart"}})),
        )
        .await;
    t.check(
        "rolloutAfterUpgrade: Restart rolls svc-b; every member ends on the new image (AllCurrent)",
        eventually(Duration::from_secs(240), || async {
            let db = dbs.get("orders").await?;
            let v = versions(&db);
            ensure!(v == vec![(new_image.clone(), 5)], "{v:?}");
            ensure_eq!(sdb_reason(&db, "ReplicasUpToDate").as_deref(), Some("AllCurrent"), &db);
            let m = db.status.clone().unwrap_or_default().members;
            ensure_eq!((m.ready, m.injected), (5, 5), &db);
            Ok(())
        }),
    )
    .await;
    a = ips(&pods, "svc-a").await.unwrap_or_default();
    b = ips(&pods, "svc-b").await.unwrap_or_default();
    all = a.iter().chain(&b).cloned().collect();
    t.check("after the roll the data is all there and the mesh is formed", async {
        read_everywhere(&all, "survivor", "kept", Duration::from_secs(10)).await?;
        read_everywhere(&all, "visits", &total, Duration::from_secs(5)).await?;
        let db = eventually(Duration::from_secs(60), || async {
            let db = dbs.get("orders").await?;
            ensure!(
                sdb_reason(&db, "MeshFormed").as_deref() == Some("AllConnected"),
                "{:?}",
                sdb_reason(&db, "MeshFormed")
            );
            Ok(db)
        })
        .await?;
        ensure_eq!(sdb_reason(&db, "Ready").as_deref(), Some("Reconciled"), &db);
        Ok(())
    })
    .await;

    t.say(format!(
        "time from kubectl apply to 4 ready pods: {}s; write visible on all pods: {replication_ms} ms; deleted pod replaced and ready: {}s",
        pods_ready_in.as_secs(),
        replaced_in.as_secs()
    ));

    // ------------------------------------------------------------------ 6. nothing left behind
    for d in ["svc-a", "svc-b"] {
        let _ = deployments.delete(d, &DeleteParams::default()).await;
    }
    let _ = dbs.delete("orders", &DeleteParams::default()).await;
    t.check("helm uninstall", async {
        cluster
            .helm(&["uninstall", "syncmesh", "--namespace", SYSTEM_NS, "--wait", "--timeout", "120s"])
            .await
            .map(|_| ())
    })
    .await;
    t.check(
        "deleting the SyncedDatabase and helm uninstall leave nothing behind",
        eventually(Duration::from_secs(90), || async {
            let mut left = cluster
                .kubectl(&[
                    "-n",
                    NS,
                    "get",
                    "pods,statefulsets,pvc,services,secrets,poddisruptionbudgets",
                    "-o",
                    "name",
                ])
                .await?;
            left += &cluster.kubectl(&["-n", SYSTEM_NS, "get", "all,secrets,leases", "-o", "name"]).await?;
            left += &cluster
                .kubectl(&["get", "mutatingwebhookconfigurations", "-o", "name"])
                .await?
                .lines()
                .filter(|l| l.contains("syncmesh"))
                .collect::<String>();
            ensure!(left.trim().is_empty(), "left behind:\n{left}");
            Ok(())
        }),
    )
    .await;
    let _ = volumes.delete("syncmesh-e2e-durable-0", &DeleteParams::default()).await;
    let _ = classes.delete("syncmesh-e2e-local", &DeleteParams::default()).await;
    if t.failed() > 0 {
        for args in
            [vec!["get", "pods", "-A", "-o", "wide"], vec!["get", "events", "-A", "--sort-by=.lastTimestamp"]]
        {
            if let Ok(out) = cluster.kubectl(&args).await {
                println!(
                    "---- kubectl {}\n{}",
                    args.join(" "),
                    out.lines()
                        .rev()
                        .take(25)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }
    t.finish();
}
