//! The operator against a real control plane (tests/k8s/operator.sh brings it up and runs
//! this): CRD validation, the Helm chart, reconciliation, the injection webhook called over TLS
//! by kube-apiserver, leader election, restarts, certificate renewal, replica upgrades, the
//! operator's metrics, admission latency and cleanup. The operator runs as local processes
//! (there is no kubelet): the chart is installed with webhook.url pointing the API server at
//! them on loopback.
//!
//! Environment: what `cluster.sh up` exports, and SYNCMESH_OPERATOR_BIN (the binary).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::TryFutureExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
use syncmesh_k8s_tests::objects::{self, apply, container, env};
use syncmesh_k8s_tests::{
    condition, differs, ensure, ensure_eq, eventually, free_port, http, quantiles, refused, run, sample,
    Checks, Cluster, Failure, Outcome,
};
use syncmesh_operator::crd::{SyncedDatabase, SyncedDatabaseSpec};

const RELEASE: &str = "syncmesh";
const SYSTEM_NS: &str = "syncmesh-system";
const IMAGE: &str = "syncmesh/syncmesh-replica:test";
const IMAGE_V2: &str = "syncmesh/syncmesh-replica:test-v2";

/// Local operator processes, as the chart configures the operator.
struct Operators {
    bin: PathBuf,
    logs: PathBuf,
    webhook_port: u16,
    running: Vec<(String, u16, tokio::process::Child)>,
}

impl Operators {
    /// Starts instance `id` with its admin port and webhook port.
    fn start(&mut self, id: &str, admin: u16, webhook: u16, replica_image: &str) -> Outcome {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("operator-{id}.log")))?;
        let child = tokio::process::Command::new(&self.bin)
            .envs([
                ("SYNCMESH_OPERATOR_NAMESPACE", SYSTEM_NS.to_string()),
                ("SYNCMESH_OPERATOR_IDENTITY", id.to_string()),
                ("SYNCMESH_OPERATOR_ADMIN_ADDR", format!("127.0.0.1:{admin}")),
                ("SYNCMESH_OPERATOR_WEBHOOK_ADDR", format!("127.0.0.1:{webhook}")),
                ("SYNCMESH_OPERATOR_WEBHOOK_SERVICE", "syncmesh-webhook".into()),
                ("SYNCMESH_OPERATOR_WEBHOOK_SECRET", "syncmesh-webhook-tls".into()),
                ("SYNCMESH_OPERATOR_WEBHOOK_CONFIGURATION", "syncmesh-injector".into()),
                ("SYNCMESH_OPERATOR_WEBHOOK_EXTRA_SAN", "127.0.0.1".into()),
                ("SYNCMESH_OPERATOR_LEASE_NAME", "syncmesh".into()),
                ("SYNCMESH_OPERATOR_LEASE_SECONDS", "4".into()),
                ("SYNCMESH_OPERATOR_CERT_REFRESH_SECONDS", "2".into()),
                ("SYNCMESH_OPERATOR_CREATE_MISSING", "false".into()),
                ("SYNCMESH_OPERATOR_REPLICA_IMAGE", replica_image.into()),
                ("SYNCMESH_OPERATOR_LOG", "info,kube=warn".into()),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        self.running.push((id.to_string(), admin, child));
        Ok(())
    }

    fn pid(&self, id: &str) -> Option<u32> {
        self.running.iter().find(|(i, _, _)| i == id).and_then(|(_, _, c)| c.id())
    }

    /// Stops instance `id` with a signal (`KILL` or `TERM`).
    async fn signal(&mut self, id: &str, signal: &str) -> Outcome {
        let pid = self.pid(id).ok_or_else(|| Failure(format!("operator {id} is not running")))?;
        run(Path::new("/bin/kill"), &[&format!("-{signal}"), &pid.to_string()], None).await?;
        let i = self.running.iter().position(|(i, _, _)| i == id).expect("running");
        let (_, _, mut child) = self.running.remove(i);
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        Ok(())
    }

    /// The last warnings and lines of every instance's log (for a failure report).
    fn tails(&self) -> String {
        let mut out = String::new();
        if let Ok(dir) = std::fs::read_dir(&self.logs) {
            for entry in dir.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                out.push_str(&format!("---- {}\n", entry.path().display()));
                let bad: Vec<&str> =
                    lines.iter().copied().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
                let last = &lines[lines.len().saturating_sub(8)..];
                for l in bad[bad.len().saturating_sub(8)..].iter().chain(last) {
                    out.push_str(&format!("{}\n", l.chars().take(400).collect::<String>()));
                }
            }
        }
        out
    }
}

async fn admin(port: u16, path: &str) -> Outcome<String> {
    http::get(&format!("http://127.0.0.1:{port}{path}")).await
}

async fn leading(port: u16) -> Outcome {
    let m = admin(port, "/metrics").await?;
    ensure!(sample(&m, "syncmesh_operator_leader") == Some(1.0), "the instance on :{port} does not lead");
    Ok(())
}

fn sdb_condition(db: &SyncedDatabase, type_: &str) -> Option<(String, String)> {
    let c = condition(&db.status.as_ref()?.conditions, type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

/// The serving certificate the webhook presents: (serial, SAN entries).
async fn served_certificate(port: u16) -> Outcome<(String, Vec<String>)> {
    let out = run(
        Path::new("/bin/sh"),
        &["-c", &format!("echo | openssl s_client -connect 127.0.0.1:{port} -servername syncmesh-webhook.{SYSTEM_NS}.svc 2>/dev/null | openssl x509 -noout -serial -ext subjectAltName")],
        None,
    )
    .await?;
    let serial = out.lines().find_map(|l| l.strip_prefix("serial=")).unwrap_or_default().to_string();
    let sans = out
        .lines()
        .filter(|l| l.starts_with("    "))
        .flat_map(|l| l.trim().split(", "))
        .map(String::from)
        .collect();
    ensure!(!serial.is_empty(), "no certificate served on :{port}:\n{out}");
    Ok((serial, sans))
}

#[tokio::test]
#[ignore = "needs a control plane: bash tests/k8s/operator.sh"]
async fn operator() {
    let cluster = Cluster::from_env().await;
    let mut t = Checks::new("operator");
    let client = cluster.client.clone();
    let root = cluster.root.clone();
    let chart = root.join("charts/syncmesh");
    let chart = chart.to_str().unwrap();
    let work = std::env::temp_dir().join(format!("syncmesh-operator-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let mut ops = Operators {
        bin: std::env::var("SYNCMESH_OPERATOR_BIN").expect("SYNCMESH_OPERATOR_BIN").into(),
        logs: work.clone(),
        webhook_port: free_port(),
        running: Vec::new(),
    };

    // ------------------------------------------------------------------ CRD
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    t.require("kubectl apply --server-side -f crds/ establishes the SyncedDatabase CRD", async {
        cluster.kubectl(&["apply", "--server-side", "-f", root.join("crds").to_str().unwrap()]).await?;
        let established =
            await_condition(crds.clone(), "synceddatabases.syncmesh.io", conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .map_err(|_| "not Established in 30 s")??;
        Ok(())
    })
    .await;
    let ns = cluster.namespace("shop").await.expect("a namespace");
    let dbs: Api<SyncedDatabase> = Api::namespaced(client.clone(), &ns);
    let kubectl = cluster.bin.join("kubectl");
    let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_string();
    for (name, expected, spec) in [
        ("bad-size", "persistence.size is required when persistence.durableReplicas is greater than 0", "persistence: {durableReplicas: 2}"),
        ("bad-port", "spec.mesh.port: Invalid value: 70000: spec.mesh.port in body should be less than or equal to 65535", "mesh: {port: 70000}"),
        ("bad-mem", "maxMemory must be a positive quantity such as 256Mi or 1Gi", "replica: {maxMemory: lots}"),
        ("bad-tls", r#"spec.mesh.tls.mode: Unsupported value: "Manual": supported values: "Auto", "CertManager""#, "mesh: {tls: {mode: Manual}}"),
        ("bad-cm", "mesh.tls.secretName is required when mesh.tls.mode is CertManager", "mesh: {tls: {mode: CertManager}}"),
        ("bad-auth", "spec.auth.secretRef.name: Required value", "auth: {secretRef: {key: pw}}"),
        ("bad-fsync", r#"Unsupported value: "sometimes""#, "persistence: {appendfsync: sometimes}"),
        ("bad-rollout", r#"spec.rolloutAfterUpgrade: Unsupported value: "Always": supported values: "Manual", "Restart""#, "rolloutAfterUpgrade: Always"),
    ] {
        let yaml = format!("apiVersion: syncmesh.io/v1alpha1\nkind: SyncedDatabase\nmetadata: {{name: {name}}}\nspec:\n  {spec}\n");
        t.check(
            format!("refused: {spec}"),
            refused(&kubectl, &["--kubeconfig", &kubeconfig, "-n", &ns, "apply", "--server-side", "-f", "-"], Some(&yaml), expected),
        )
        .await;
    }
    t.check(
        "kubectl explain shows the field documentation",
        eventually(Duration::from_secs(20), || async {
            let out = cluster.kubectl(&["explain", "sdb.spec.persistence.durableReplicas"]).await?;
            ensure!(out.contains("keep the data when every application pod is gone"), "{out}");
            Ok(())
        }),
    )
    .await;

    // A pod that opts in before the webhook exists: it runs without a replica, and the status says so.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(
        &PostParams::default(),
        &objects::pod("legacy", &[("syncmesh.io/database", "orders"), ("app", "legacy")], "shop/legacy:1"),
    )
    .await
    .expect("the legacy pod");

    // ------------------------------------------------------------------ Helm chart
    let webhook_url = format!("webhook.url=https://127.0.0.1:{}/mutate-pods", ops.webhook_port);
    let chart_args =
        ["--namespace", SYSTEM_NS, "--set", &webhook_url, "--set", "webhook.extraNames={127.0.0.1}"];
    t.check("helm lint is clean", async { cluster.helm(&["lint", "--strict", chart]).await.map(|_| ()) })
        .await;
    t.check(
        "the chart's values schema refuses a bad value with a clear message",
        refused(
            &cluster.bin.join("helm"),
            &["template", "t", chart, "--set", "webhook.failurePolicy=Sometimes"],
            None,
            "at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'",
        ),
    )
    .await;
    t.check("helm template | kubectl apply --dry-run=server is accepted", async {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        apply(&namespaces, &Namespace { metadata: objects::meta(SYSTEM_NS, &[]), ..Default::default() })
            .await?;
        let mut args = vec!["template", RELEASE, chart];
        args.extend_from_slice(&chart_args);
        let rendered = cluster.helm(&args).await?;
        cluster.kubectl_input(&["apply", "--dry-run=server", "-f", "-"], &rendered).await.map(|_| ())
    })
    .await;
    t.require("helm install", async {
        let mut args = vec!["install", RELEASE, chart];
        args.extend_from_slice(&chart_args);
        args.push("--wait=false");
        cluster.helm(&args).await.map(|_| ())
    })
    .await;
    t.check(
        "the chart created the operator's Deployment, RBAC, Service, webhook configuration, Secret and Lease",
        async {
            let sys = |kind: &str, name: &str| format!("{kind}/{name}");
            cluster
                .kubectl(&[
                    "-n",
                    SYSTEM_NS,
                    "get",
                    &sys("deployment", "syncmesh"),
                    &sys("serviceaccount", "syncmesh"),
                    &sys("service", "syncmesh-webhook"),
                    &sys("pdb", "syncmesh"),
                    &sys("secret", "syncmesh-webhook-tls"),
                    &sys("lease", "syncmesh"),
                ])
                .await?;
            cluster
                .kubectl(&[
                    "get",
                    "mutatingwebhookconfiguration/syncmesh-injector",
                    "clusterrole/syncmesh",
                    "clusterrolebinding/syncmesh",
                ])
                .await?;
            Ok(())
        },
    )
    .await;

    // ------------------------------------------------------------------ the operator
    let admin1 = free_port();
    let webhook_port = ops.webhook_port;
    ops.start("op-1", admin1, webhook_port, IMAGE).expect("operator op-1 starts");
    t.require(
        "the operator becomes ready (webhook certificate issued, cache synced)",
        eventually(Duration::from_secs(30), || admin(admin1, "/readyz").map_ok(|_| ())),
    )
    .await;
    t.check("it takes the leader Lease", eventually(Duration::from_secs(20), || leading(admin1))).await;
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let ca_bundle = || async {
        let config = webhooks.get("syncmesh-injector").await?;
        let bundle =
            config.webhooks.as_ref().and_then(|w| w.first()).and_then(|w| w.client_config.ca_bundle.clone());
        Ok::<_, Failure>((bundle.map(|b| b.0).unwrap_or_default(), config))
    };
    t.check(
        "it sets the webhook's caBundle to its CA",
        eventually(Duration::from_secs(20), || async {
            let (bundle, config) = ca_bundle().await?;
            let pem = String::from_utf8_lossy(&bundle).into_owned();
            let (_, cert) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .map_err(|e| differs(format!("caBundle is not a PEM certificate: {e}"), &config))?;
            let cert = cert.parse_x509().map_err(|e| Failure(e.to_string()))?;
            ensure!(
                cert.subject().to_string().contains("syncmesh-webhook-ca"),
                "caBundle's subject: {}",
                cert.subject()
            );
            Ok(())
        }),
    )
    .await;
    t.check("the webhook serves a certificate for its Service name (and 127.0.0.1)", async {
        let (_, sans) = served_certificate(webhook_port).await?;
        ensure!(
            sans.contains(&format!("DNS:syncmesh-webhook.{SYSTEM_NS}.svc"))
                && sans.contains(&"IP Address:127.0.0.1".to_string()),
            "SANs: {sans:?}"
        );
        Ok(())
    })
    .await;
    let secrets_sys: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NS);
    t.check("helm upgrade keeps the caBundle and certificate the operator set", async {
        let (before, _) = ca_bundle().await?;
        let mut args = vec!["upgrade", RELEASE, chart];
        args.extend_from_slice(&chart_args);
        args.extend_from_slice(&["--set", "operator.logLevel=debug"]);
        cluster.helm(&args).await?;
        let (after, config) = ca_bundle().await?;
        ensure!(!before.is_empty(), "no caBundle before the upgrade");
        if before != after {
            return Err(differs("helm upgrade changed the caBundle", &config));
        }
        let secret = secrets_sys.get("syncmesh-webhook-tls").await?;
        ensure!(
            secret.data.as_ref().is_some_and(|d| d.contains_key("tls.crt")),
            "the webhook Secret lost its certificate"
        );
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ a SyncedDatabase to Ready
    let spec: SyncedDatabaseSpec =
        serde_json::from_value(json!({"replica": {"maxMemory": "256Mi"}})).unwrap();
    let started = Instant::now();
    apply(&dbs, &objects::database("orders", spec)).await.expect("apply the SyncedDatabase");
    let ready = await_condition(dbs.clone(), "orders", |db: Option<&SyncedDatabase>| {
        db.and_then(|db| sdb_condition(db, "Ready")).is_some_and(|(s, _)| s == "True")
    });
    let ready_in = match tokio::time::timeout(Duration::from_secs(60), ready).await {
        Ok(Ok(_)) => Some(started.elapsed()),
        _ => None,
    };
    t.check(
        format!(
            "SyncedDatabase orders is Ready ({} after the apply)",
            ready_in.map(|d| format!("{:.2}s", d.as_secs_f64())).unwrap_or("never".into())
        ),
        async {
            let db = dbs.get("orders").await?;
            ensure_eq!(sdb_condition(&db, "Ready").map(|c| c.0), Some("True".to_string()), &db);
            Ok(())
        },
    )
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    t.check("it owns the headless mesh Service (publishNotReadyAddresses)", async {
        let svc = services.get("orders-mesh").await?;
        let spec = svc.spec.clone().unwrap_or_default();
        ensure_eq!(spec.cluster_ip.as_deref(), Some("None"), &svc);
        ensure_eq!(spec.publish_not_ready_addresses, Some(true), &svc);
        ensure_eq!(
            spec.selector.as_ref().and_then(|s| s.get("syncmesh.io/member")).map(String::as_str),
            Some("orders"),
            &svc
        );
        ensure_eq!(spec.ports.as_ref().map(|p| p[0].port), Some(7379), &svc);
        ensure_eq!(
            svc.metadata.owner_references.as_ref().map(|o| o[0].kind.as_str()),
            Some("SyncedDatabase"),
            &svc
        );
        Ok(())
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    t.check("it issues the mesh CA and a member certificate that chains to it", async {
        let ca = secrets.get("orders-mesh-ca").await?;
        ensure_eq!(
            ca.metadata.owner_references.as_ref().map(|o| o[0].kind.as_str()),
            Some("SyncedDatabase"),
            &ca
        );
        let member = secrets.get("orders-mesh-tls").await?;
        let key = |k: &str| {
            member
                .data
                .as_ref()
                .and_then(|d| d.get(k))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .unwrap_or_default()
        };
        let dir = work.join("mesh");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("ca.crt"), key("ca.crt"))?;
        std::fs::write(dir.join("tls.crt"), key("tls.crt"))?;
        let ca_file = dir.join("ca.crt");
        let tls_file = dir.join("tls.crt");
        run(
            Path::new("openssl"),
            &["verify", "-CAfile", ca_file.to_str().unwrap(), tls_file.to_str().unwrap()],
            None,
        )
        .await?;
        let eku = run(
            Path::new("openssl"),
            &["x509", "-in", tls_file.to_str().unwrap(), "-noout", "-ext", "extendedKeyUsage"],
            None,
        )
        .await?;
        ensure!(eku.contains("TLS Web Server Authentication, TLS Web Client Authentication"), "{eku}");
        Ok(())
    })
    .await;
    t.check("status names the mesh Service and observedGeneration; the finalizer is set", async {
        let db = dbs.get("orders").await?;
        let status = db.status.clone().unwrap_or_default();
        ensure_eq!(status.mesh_service.as_deref(), Some("orders-mesh"), &db);
        ensure_eq!(status.observed_generation, Some(1), &db);
        ensure_eq!(db.metadata.finalizers.as_deref(), Some(&["syncmesh.io/cleanup".to_string()][..]), &db);
        Ok(())
    })
    .await;
    t.check(
        "a pod labelled before the webhook existed is reported (Degraded: UninjectedPods)",
        eventually(Duration::from_secs(20), || async {
            let db = dbs.get("orders").await?;
            let status = db.status.clone().unwrap_or_default();
            ensure_eq!(status.uninjected_pods, vec!["legacy".to_string()], &db);
            ensure_eq!(sdb_condition(&db, "Degraded").map(|c| c.1), Some("UninjectedPods".to_string()), &db);
            Ok(())
        }),
    )
    .await;
    t.check(
        "kubectl get sdb shows READY, MEMBERS (ready/injected), MESH and AGE; -o wide the reasons",
        async {
            let out = cluster.kubectl(&["-n", &ns, "get", "sdb"]).await?;
            let head = out.lines().next().unwrap_or_default().split_whitespace().collect::<Vec<_>>();
            ensure!(head == ["NAME", "READY", "MEMBERS", "MESH", "AGE"], "{out}");
            let row = out.lines().nth(1).unwrap_or_default().split_whitespace().collect::<Vec<_>>();
            ensure!(row.len() == 5 && row[..4] == ["orders", "True", "0/0", "False"], "{out}");
            let wide = cluster.kubectl(&["-n", &ns, "get", "sdb", "-o", "wide"]).await?;
            ensure!(
                wide.lines().next().unwrap_or_default().split_whitespace().collect::<Vec<_>>()
                    == ["NAME", "READY", "MEMBERS", "MESH", "AGE", "REASON", "DEGRADED"],
                "{wide}"
            );
            ensure!(wide.contains("Reconciled") && wide.contains("UninjectedPods"), "{wide}");
            Ok(())
        },
    )
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let reasons = || async {
        let list = events.list(&ListParams::default()).await?;
        Ok::<_, Failure>(
            list.items
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("orders"))
                .filter_map(|e| e.reason.clone())
                .collect::<Vec<_>>(),
        )
    };
    t.check(
        "Events say what it did and why",
        eventually(Duration::from_secs(10), || async {
            let got = reasons().await?;
            for want in ["CAIssued", "CertificateIssued", "Ready", "UninjectedPods"] {
                ensure!(got.iter().any(|r| r == want), "no {want} Event among {got:?}");
            }
            Ok(())
        }),
    )
    .await;

    // ------------------------------------------------------------------ injection
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let checkout = objects::deployment(
        "checkout",
        2,
        &[("syncmesh.io/database", "orders")],
        PodSpec {
            init_containers: Some(vec![container("migrate", "shop/migrate:1")]),
            containers: vec![
                container("app", "shop/checkout:1"),
                k8s_openapi::api::core::v1::Container {
                    env: Some(vec![env("REDIS_URL", "redis://elsewhere:6379")]),
                    ..container("worker", "shop/worker:1")
                },
            ],
            ..Default::default()
        },
    );
    apply(&deployments, &checkout).await.expect("the checkout Deployment");
    apply(
        &deployments,
        &objects::deployment(
            "catalog",
            2,
            &[],
            PodSpec { containers: vec![container("app", "shop/catalog:1")], ..Default::default() },
        ),
    )
    .await
    .expect("the catalog Deployment");
    let app_pods = |app: &'static str| {
        let pods = pods.clone();
        async move {
            Ok::<_, Failure>(pods.list(&ListParams::default().labels(&format!("app={app}"))).await?.items)
        }
    };
    t.check(
        "the labelled Deployment's ReplicaSet creates its pods through the webhook",
        eventually(Duration::from_secs(30), || async {
            let list = app_pods("checkout").await?;
            ensure!(list.len() == 2, "{} checkout pods", list.len());
            Ok(())
        }),
    )
    .await;
    t.check(
        "its pods carry the replica once, as a native sidecar first, and REDIS_URL (their own kept)",
        async {
            for pod in app_pods("checkout").await? {
                let spec = pod.spec.clone().unwrap_or_default();
                let init: Vec<&str> =
                    spec.init_containers.iter().flatten().map(|c| c.name.as_str()).collect();
                ensure_eq!(init, vec!["syncmesh-replica", "migrate"], &pod);
                let sidecar = &spec.init_containers.as_ref().unwrap()[0];
                ensure_eq!(sidecar.restart_policy.as_deref(), Some("Always"), &pod);
                ensure_eq!(
                    sidecar
                        .startup_probe
                        .as_ref()
                        .and_then(|p| p.http_get.as_ref())
                        .and_then(|h| h.path.as_deref()),
                    Some("/readyz"),
                    &pod
                );
                let url = |i: usize| {
                    spec.containers[i]
                        .env
                        .iter()
                        .flatten()
                        .find(|e| e.name == "REDIS_URL")
                        .and_then(|e| e.value.clone())
                };
                ensure_eq!(url(0).as_deref(), Some("redis://127.0.0.1:6379"), &pod);
                ensure_eq!(url(1).as_deref(), Some("redis://elsewhere:6379"), &pod);
                ensure_eq!(
                    pod.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("syncmesh.io/member"))
                        .map(String::as_str),
                    Some("orders"),
                    &pod
                );
            }
            Ok(())
        },
    )
    .await;
    t.check(
        "the sidecar gets the image, mesh DNS, maxMemory, restricted security context and volumes",
        async {
            let pod = app_pods("checkout").await?.into_iter().next().ok_or("no pod")?;
            let spec = pod.spec.clone().unwrap_or_default();
            let sidecar = &spec.init_containers.as_ref().unwrap()[0];
            let var =
                |n: &str| sidecar.env.iter().flatten().find(|e| e.name == n).and_then(|e| e.value.clone());
            ensure_eq!(sidecar.image.as_deref(), Some(IMAGE), &pod);
            ensure_eq!(var("SYNCMESH_PEERS_DNS"), Some(format!("orders-mesh.{ns}.svc")), &pod);
            ensure_eq!(var("SYNCMESH_MAXMEMORY").as_deref(), Some("268435456"), &pod);
            ensure_eq!(
                sidecar.security_context.as_ref().and_then(|s| s.read_only_root_filesystem),
                Some(true),
                &pod
            );
            let volumes: Vec<&str> = spec.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
            ensure!(
                volumes.contains(&"syncmesh-tls") && volumes.contains(&"syncmesh-data"),
                "volumes: {volumes:?}"
            );
            Ok(())
        },
    )
    .await;
    t.check(
        "an unlabelled Deployment's pods are untouched",
        eventually(Duration::from_secs(30), || async {
            let list = app_pods("catalog").await?;
            ensure!(list.len() == 2, "{} catalog pods", list.len());
            for pod in list {
                let spec = pod.spec.clone().unwrap_or_default();
                let annotated =
                    pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("syncmesh.io/injected"));
                if spec.init_containers.is_some() || annotated || spec.containers[0].env.is_some() {
                    return Err(differs("the pod was changed", &pod));
                }
            }
            Ok(())
        }),
    )
    .await;
    let pod_refused = |name: &'static str, db: &'static str, message: String| {
        let pods = pods.clone();
        async move {
            match pods
                .create(&PostParams::default(), &objects::pod(name, &[("syncmesh.io/database", db)], "x:1"))
                .await
            {
                Ok(p) => Err(differs("admitted", &p)),
                Err(e) if e.to_string().contains(&message) => Ok(()),
                Err(e) => Err(Failure(format!("refused, but not with {message:?}: {e}"))),
            }
        }
    };
    t.check(
        "a pod naming an unknown database is refused with a clear message",
        pod_refused("stray", "nope", format!("SyncedDatabase \"nope\" does not exist in namespace \"{ns}\"")),
    )
    .await;
    t.check(
        "status counts the injected members (none ready without a kubelet)",
        eventually(Duration::from_secs(20), || async {
            let db = dbs.get("orders").await?;
            let members = db.status.clone().unwrap_or_default().members;
            ensure_eq!((members.injected, members.ready, members.summary.as_str()), (2, 0, "0/2"), &db);
            ensure_eq!(
                sdb_condition(&db, "MeshFormed").map(|c| c.1),
                Some("NoReadyMembers".to_string()),
                &db
            );
            Ok(())
        }),
    )
    .await;
    t.check(
        "status counts the pods per replica image, all current",
        eventually(Duration::from_secs(20), || async {
            let db = dbs.get("orders").await?;
            let versions = db.status.clone().unwrap_or_default().replica_versions;
            ensure!(
                versions.len() == 1
                    && versions[0].image == IMAGE
                    && versions[0].pods == 2
                    && versions[0].current
                    && versions[0].version == "test",
                "{}",
                serde_yaml::to_string(&versions).unwrap_or_default()
            );
            ensure_eq!(
                sdb_condition(&db, "ReplicasUpToDate").map(|c| c.1),
                Some("AllCurrent".to_string()),
                &db
            );
            Ok(())
        }),
    )
    .await;

    // ------------------------------------------------------------------ durable replicas
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    let merge = |value: serde_json::Value| Patch::Merge(value);
    dbs.patch(
        "orders",
        &PatchParams::default(),
        &merge(
            json!({"spec": {"persistence": {"durableReplicas": 2, "size": "1Gi", "appendfsync": "always"}}}),
        ),
    )
    .await
    .expect("durableReplicas: 2");
    t.check(
        "durableReplicas: 2 creates the StatefulSet with volumes and its PDB; Ready waits for them",
        eventually(Duration::from_secs(20), || async {
            let sts = statefulsets.get("orders-durable").await?;
            let spec = sts.spec.clone();
            ensure_eq!(spec.replicas, Some(2), &sts);
            let size = spec
                .volume_claim_templates
                .as_ref()
                .and_then(|v| v[0].spec.as_ref())
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .map(|q| q.0.clone());
            ensure_eq!(size.as_deref(), Some("1Gi"), &sts);
            let container = &spec.template.spec.as_ref().unwrap().containers[0];
            let fsync = container
                .env
                .iter()
                .flatten()
                .find(|e| e.name == "SYNCMESH_APPENDFSYNC")
                .and_then(|e| e.value.clone());
            ensure_eq!(fsync.as_deref(), Some("always"), &sts);
            ensure_eq!(spec.service_name.as_deref(), Some("orders-mesh"), &sts);
            pdbs.get("orders-durable").await?;
            let db = dbs.get("orders").await?;
            ensure_eq!(
                sdb_condition(&db, "Ready").map(|c| c.1),
                Some("DurableReplicasNotReady".to_string()),
                &db
            );
            Ok(())
        }),
    )
    .await;
    dbs.patch(
        "orders",
        &PatchParams::default(),
        &merge(json!({"spec": {"persistence": {"durableReplicas": 0}}})),
    )
    .await
    .expect("durableReplicas: 0");
    t.check(
        "durableReplicas: 0 removes them and Ready returns",
        eventually(Duration::from_secs(20), || async {
            ensure!(
                statefulsets.get_opt("orders-durable").await?.is_none(),
                "the StatefulSet is still there"
            );
            ensure!(
                pdbs.get_opt("orders-durable").await?.is_none(),
                "the PodDisruptionBudget is still there"
            );
            let db = dbs.get("orders").await?;
            ensure_eq!(sdb_condition(&db, "Ready").map(|c| c.0), Some("True".to_string()), &db);
            Ok(())
        }),
    )
    .await;

    // ------------------------------------------------------------------ restarts and leader election
    let snapshot = || async {
        let mut s = Vec::new();
        let svc = services.get("orders-mesh").await?;
        s.push(format!("service={}", svc.metadata.resource_version.unwrap_or_default()));
        for name in ["orders-mesh-ca", "orders-mesh-tls", "orders-admin"] {
            s.push(format!(
                "{name}={}",
                secrets.get(name).await?.metadata.resource_version.unwrap_or_default()
            ));
        }
        s.push(format!(
            "webhook={}",
            secrets_sys.get("syncmesh-webhook-tls").await?.metadata.resource_version.unwrap_or_default()
        ));
        let db = dbs.get("orders").await?;
        for c in db.status.map(|s| s.conditions).unwrap_or_default() {
            s.push(format!("{}@{}", c.type_, c.last_transition_time.0));
        }
        Ok::<_, Failure>(s)
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = snapshot().await;
    let (admin2, webhook2) = (free_port(), free_port());
    ops.start("op-2", admin2, webhook2, IMAGE).expect("op-2 starts");
    t.check(
        "a second instance starts and serves the webhook too",
        eventually(Duration::from_secs(30), || admin(admin2, "/readyz").map_ok(|_| ())),
    )
    .await;
    t.check("only one instance leads", async {
        leading(admin1).await?;
        ensure!(leading(admin2).await.is_err(), "both instances lead");
        Ok(())
    })
    .await;
    ops.signal("op-1", "KILL").await.expect("kill -9 op-1");
    t.check(
        "when the leader is killed, the other takes the Lease",
        eventually(Duration::from_secs(30), || leading(admin2)),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    t.check(
        "the new leader changes nothing that was right (same objects, certificates, conditions)",
        async {
            let (before, after) = (before?, snapshot().await?);
            ensure!(before == after, "before: {before:?}\nafter:  {after:?}");
            Ok(())
        },
    )
    .await;
    ops.start("op-3", admin1, webhook_port, IMAGE).expect("op-3 starts");
    t.check(
        "the killed instance comes back as a follower",
        eventually(Duration::from_secs(30), || admin(admin1, "/readyz").map_ok(|_| ())),
    )
    .await;
    ops.signal("op-2", "TERM").await.expect("SIGTERM op-2");
    t.check(
        "a leader stopped with SIGTERM hands over the Lease at once",
        eventually(Duration::from_secs(10), || leading(admin1)),
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM_NS);
    t.check("the Lease names the new leader", async {
        let lease = leases.get("syncmesh").await?;
        ensure_eq!(lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()), Some("op-3"), &lease);
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ certificate renewal
    let (old_serial, _) = served_certificate(webhook_port).await.unwrap_or_default();
    let (old_bundle, _) = ca_bundle().await.unwrap_or_default();
    let garbage = k8s_openapi::ByteString(b"not a certificate".to_vec());
    secrets_sys
        .patch(
            "syncmesh-webhook-tls",
            &PatchParams::default(),
            &merge(json!({"data": {"ca.crt": garbage, "tls.crt": garbage}})),
        )
        .await
        .expect("damage the webhook Secret");
    t.check(
        "a damaged webhook CA and certificate are reissued, served without a restart, and caBundle follows",
        eventually(Duration::from_secs(20), || async {
            let (serial, _) = served_certificate(webhook_port).await?;
            let (bundle, _) = ca_bundle().await?;
            ensure!(
                serial != old_serial && !bundle.is_empty() && bundle != old_bundle,
                "serial {serial} (was {old_serial}); bundle changed: {}",
                bundle != old_bundle
            );
            Ok(())
        }),
    )
    .await;
    t.check(
        "the API server trusts the new certificate (a labelled pod is admitted)",
        eventually(Duration::from_secs(20), || async {
            pods.create(
                &PostParams::default(),
                &objects::pod("rotated", &[("syncmesh.io/database", "orders")], "x:1"),
            )
            .await?;
            Ok(())
        }),
    )
    .await;
    let old_member = secrets.get("orders-mesh-tls").await.ok().and_then(|s| s.metadata.uid);
    let _ = secrets.delete("orders-mesh-tls", &DeleteParams::default()).await;
    t.check(
        "a deleted member certificate Secret is reissued by the reconciler",
        eventually(Duration::from_secs(20), || async {
            let uid = secrets.get("orders-mesh-tls").await?.metadata.uid;
            ensure!(uid.is_some() && uid != old_member, "still the old Secret, or none");
            Ok(())
        }),
    )
    .await;
    t.check("the operator exports when every certificate it manages expires", async {
        let m = admin(admin1, "/metrics").await?;
        for (namespace, secret, kind) in [(ns.as_str(), "orders-mesh-ca", "ca"), (ns.as_str(), "orders-mesh-tls", "tls"),
            (SYSTEM_NS, "syncmesh-webhook-tls", "ca"), (SYSTEM_NS, "syncmesh-webhook-tls", "tls")] {
            let name = format!("syncmesh_operator_certificate_expiry_timestamp_seconds{{certificate=\"{kind}\",namespace=\"{namespace}\",secret=\"{secret}\"}}");
            let expiry = sample(&m, &name).ok_or_else(|| Failure(format!("no {name} in /metrics")))?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
            ensure!(expiry > now + 60.0 * 86400.0, "{name} = {expiry}: expires within 60 days");
        }
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ upgrading the replica
    // A new operator version injects another replica image: old pods keep theirs until their
    // workload restarts them.
    ops.signal("op-3", "TERM").await.expect("stop op-3");
    ops.start("op-4", admin1, webhook_port, IMAGE_V2).expect("op-4 starts with the new replica image");
    t.check("the upgraded operator leads", eventually(Duration::from_secs(30), || leading(admin1))).await;
    t.check(
        "the status counts the pods on the old image and says ReplicasUpToDate False (OutdatedReplicas)",
        eventually(Duration::from_secs(30), || async {
            let db = dbs.get("orders").await?;
            let status = db.status.clone().unwrap_or_default();
            let old = status.replica_versions.iter().find(|v| v.image == IMAGE);
            ensure!(old.is_some_and(|v| !v.current && v.pods >= 2), "{}", serde_yaml::to_string(&status.replica_versions).unwrap_or_default());
            let c = condition(&status.conditions, "ReplicasUpToDate").ok_or("no ReplicasUpToDate")?;
            ensure!(c.status == "False" && c.reason == "OutdatedReplicas", "{c:?}");
            ensure!(c.message.contains(IMAGE_V2) && c.message.contains("kubectl rollout restart"), "{}", c.message);
            let m = admin(admin1, "/metrics").await?;
            let series = format!("syncmesh_operator_database_replica_pods{{current=\"false\",database=\"orders\",image=\"{IMAGE}\",namespace=\"{ns}\"}}");
            ensure!(sample(&m, &series).is_some_and(|n| n >= 2.0), "no {series} in /metrics");
            Ok(())
        }),
    )
    .await;
    dbs.patch("orders", &PatchParams::default(), &merge(json!({"spec": {"rolloutAfterUpgrade": "Restart"}})))
        .await
        .expect("rolloutAfterUpgrade: Restart");
    t.check(
        "rolloutAfterUpgrade: Restart annotates the owning Deployment's pod template once (RolloutRestarted)",
        eventually(Duration::from_secs(30), || async {
            let d = deployments.get("checkout").await?;
            let annotation = d
                .spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get("syncmesh.io/replica-image"))
                .cloned();
            ensure_eq!(annotation.as_deref(), Some(IMAGE_V2), &d);
            let got = reasons().await?;
            ensure!(
                got.iter().filter(|r| *r == "RolloutRestarted").count() >= 1,
                "no RolloutRestarted Event among {got:?}"
            );
            Ok(())
        }),
    )
    .await;
    t.check(
        "the Deployment rolls: a new pod gets the new image through the webhook; the status says RollingOut",
        eventually(Duration::from_secs(30), || async {
            let fresh = app_pods("checkout")
                .await?
                .into_iter()
                .filter(|p| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.init_containers.as_ref())
                        .is_some_and(|c| c[0].image.as_deref() == Some(IMAGE_V2))
                })
                .count();
            ensure!(fresh >= 1, "no checkout pod on {IMAGE_V2} yet");
            let db = dbs.get("orders").await?;
            let c = db
                .status
                .as_ref()
                .and_then(|s| condition(&s.conditions, "ReplicasUpToDate").cloned())
                .ok_or("no condition")?;
            ensure!(c.reason == "RollingOut" && c.message.contains("deployment/checkout"), "{c:?}");
            ensure!(c.message.contains("no workload owns"), "bare pods are named: {}", c.message);
            Ok(())
        }),
    )
    .await;
    t.check("the restart happens once per image (the annotation is not rewritten)", async {
        let before = deployments.get("checkout").await?.metadata.generation;
        tokio::time::sleep(Duration::from_secs(7)).await;
        let d = deployments.get("checkout").await?;
        ensure_eq!(d.metadata.generation, before, &d);
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ admission latency
    let before_metrics = admin(admin1, "/metrics").await.unwrap_or_default();
    let apiserver_before = cluster.kubectl(&["get", "--raw", "/metrics"]).await.unwrap_or_default();
    let count = 200;
    let started = Instant::now();
    let mut creations = futures::stream::FuturesUnordered::new();
    for i in 0..count {
        let pods = pods.clone();
        creations.push(async move {
            let t0 = Instant::now();
            pods.create(
                &PostParams::default(),
                &objects::pod(&format!("latency-{i}"), &[("syncmesh.io/database", "orders")], "x:1"),
            )
            .await
            .map(|_| t0.elapsed())
        });
        // Four at a time, as a ReplicaSet controller creates a burst of pods.
        if creations.len() >= 4 {
            use futures::StreamExt;
            let _ = creations.next().await;
        }
    }
    {
        use futures::StreamExt;
        while creations.next().await.is_some() {}
    }
    let wall = started.elapsed();
    let after_metrics = admin(admin1, "/metrics").await.unwrap_or_default();
    let apiserver_after = cluster.kubectl(&["get", "--raw", "/metrics"]).await.unwrap_or_default();
    let delta = |before: &str, after: &str, metric: &str, labels: &[(&str, &str)]| {
        let (b, a) = (quantiles(before, metric, labels), quantiles(after, metric, labels));
        (b, a)
    };
    let (_, own) =
        delta(&before_metrics, &after_metrics, "syncmesh_operator_admission_duration_seconds", &[]);
    let labels = [("name", "inject.pods.syncmesh.io"), ("operation", "CREATE")];
    let (_, seen) = delta(
        &apiserver_before,
        &apiserver_after,
        "apiserver_admission_webhook_admission_duration_seconds",
        &labels,
    );
    let connections = sample(&after_metrics, "syncmesh_operator_webhook_connections_total").unwrap_or(0.0)
        - sample(&before_metrics, "syncmesh_operator_webhook_connections_total").unwrap_or(0.0);
    let figures = format!(
        "{count} pod creations in {:.1}s; webhook's own time: {}; API server's view: {}; new TLS connections: {connections}",
        wall.as_secs_f64(),
        own.map(|(n, p50, p99)| format!("count={n} p50={:.2}ms p99={:.2}ms", p50 * 1e3, p99 * 1e3)).unwrap_or("none".into()),
        seen.map(|(n, p50, p99)| format!("count={n} p50={:.2}ms p99={:.2}ms", p50 * 1e3, p99 * 1e3)).unwrap_or("none".into()),
    );
    t.check(format!("admission latency measured on the webhook and on the API server ({figures})"), async {
        ensure!(own.is_some() && seen.is_some(), "{figures}");
        Ok(())
    })
    .await;
    t.check(
        "the API server reuses its connections to the webhook (far fewer new connections than calls)",
        async {
            ensure!(
                connections < (count / 10) as f64,
                "{connections} new TLS connections for {count} admissions"
            );
            Ok(())
        },
    )
    .await;
    t.check("metrics count reconciles and injections", async {
        let m = admin(admin1, "/metrics").await?;
        ensure!(
            sample(&m, "syncmesh_operator_reconciles_total{result=\"ok\"}").is_some_and(|n| n > 0.0),
            "no ok reconcile counted"
        );
        ensure!(
            sample(&m, "syncmesh_operator_admissions_total{outcome=\"injected\"}").is_some_and(|n| n > 0.0),
            "no injection counted"
        );
        Ok(())
    })
    .await;
    t.check("every operator metric the chart's rules and dashboard use is exported (tests/charts/metric_names.py)", async {
        let rendered = cluster
            .helm(&["template", RELEASE, chart, "--namespace", SYSTEM_NS, "--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.grafanaDashboard.enabled=true"])
            .await?;
        let file = work.join("rendered.yaml");
        std::fs::write(&file, rendered)?;
        run(Path::new("python3"), &[root.join("tests/charts/metric_names.py").to_str().unwrap(), file.to_str().unwrap(),
            "--operator", &format!("http://127.0.0.1:{admin1}/metrics")], None).await.map(|_| ())
    })
    .await;

    // ------------------------------------------------------------------ deletion
    // A second finalizer holds the object in "being deleted" so that state can be observed.
    dbs.patch(
        "orders",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
        {"op": "add", "path": "/metadata/finalizers/-", "value": "test.syncmesh.io/hold"}]))
            .unwrap(),
        ),
    )
    .await
    .expect("add a holding finalizer");
    let _ = dbs.delete("orders", &DeleteParams::default()).await;
    t.check(
        "on deletion the finalizer removes the Service and Secrets, then itself",
        eventually(Duration::from_secs(30), || async {
            let db = dbs.get("orders").await?;
            ensure!(services.get_opt("orders-mesh").await?.is_none(), "the mesh Service is still there");
            ensure!(
                secrets.get_opt("orders-mesh-ca").await?.is_none()
                    && secrets.get_opt("orders-mesh-tls").await?.is_none()
                    && secrets.get_opt("orders-admin").await?.is_none(),
                "a Secret is still there"
            );
            ensure_eq!(
                db.metadata.finalizers.clone().unwrap_or_default(),
                vec!["test.syncmesh.io/hold".to_string()],
                &db
            );
            Ok(())
        }),
    )
    .await;
    t.check(
        "a pod for a database being deleted is refused",
        pod_refused(
            "late",
            "orders",
            format!(
                "SyncedDatabase \"orders\" in namespace \"{ns}\" is being deleted; new pods cannot join it"
            ),
        ),
    )
    .await;
    dbs.patch(
        "orders",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
        {"op": "remove", "path": "/metadata/finalizers/0"}]))
            .unwrap(),
        ),
    )
    .await
    .expect("remove the holding finalizer");
    t.check(
        "deleting the SyncedDatabase removes it, its Service and its Secrets",
        eventually(Duration::from_secs(30), || async {
            ensure!(dbs.get_opt("orders").await?.is_none(), "the SyncedDatabase is still there");
            ensure!(services.get_opt("orders-mesh").await?.is_none(), "the Service is still there");
            Ok(())
        }),
    )
    .await;
    t.check("its per-database metrics are gone", async {
        let m = admin(admin1, "/metrics").await?;
        ensure!(
            !m.lines().any(|l| l.starts_with("syncmesh_operator_database_")
                && l.contains(&format!("namespace=\"{ns}\""))),
            "per-database series remain"
        );
        Ok(())
    })
    .await;
    t.check(
        "pods can no longer join it",
        pod_refused("late", "orders", "SyncedDatabase \"orders\" does not exist".into()),
    )
    .await;
    t.check("helm uninstall", async {
        cluster.helm(&["uninstall", RELEASE, "--namespace", SYSTEM_NS, "--wait"]).await.map(|_| ())
    })
    .await;
    t.check(
        "helm uninstall leaves nothing behind (the operator's Secret and Lease included)",
        eventually(Duration::from_secs(20), || async {
            let cluster_wide = cluster
                .kubectl(&[
                    "get",
                    "mutatingwebhookconfiguration,clusterrole,clusterrolebinding",
                    "-o",
                    "name",
                ])
                .await?;
            let left: Vec<&str> = cluster_wide.lines().filter(|l| l.contains("syncmesh")).collect();
            let in_ns = cluster
                .kubectl(&[
                    "-n",
                    SYSTEM_NS,
                    "get",
                    "deploy,svc,sa,pdb,role,rolebinding,lease,secret",
                    "-o",
                    "name",
                ])
                .await?;
            let left_ns: Vec<&str> = in_ns.lines().filter(|l| *l != "serviceaccount/default").collect();
            ensure!(left.is_empty() && left_ns.is_empty(), "left behind: {left:?} {left_ns:?}");
            Ok(())
        }),
    )
    .await;

    if t.failed() > 0 {
        println!("{}", ops.tails());
    }
    t.say(format!(
        "time from apply to Ready: {}",
        ready_in.map(|d| format!("{:.2}s", d.as_secs_f64())).unwrap_or("never".into())
    ));
    t.say(format!("admission: {figures}"));
    drop(ops);
    let _ = std::fs::remove_dir_all(&work);
    t.finish();
}
