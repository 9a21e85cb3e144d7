//! Smoke test of the local control plane (tests/k8s/smoke.sh brings up an instance with
//! `cluster.sh up` and runs this): the API server, admission (a loopback mutating webhook,
//! ValidatingAdmissionPolicy, ServiceAccount), controllers, server-side apply, CRDs with
//! `kubectl explain`, helm, a second instance beside the first, a component killed during `up`
//! (explained, its logs kept), and `down`.
//!
//! Environment: what `cluster.sh up` exports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use syncmesh_k8s_tests::objects::{self, container};
use syncmesh_k8s_tests::{
    differs, ensure, ensure_eq, eventually, refused, run, Checks, Cluster, Failure, Outcome,
};

async fn sh(script: &str) -> Outcome<String> {
    run(Path::new("/bin/sh"), &["-c", script], None).await
}

/// Applies a CRD file and waits until it is Established.
async fn crd_established(cluster: &Cluster, file: &Path, name: &str) -> Outcome {
    cluster.kubectl(&["apply", "--server-side", "-f", file.to_str().unwrap()]).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, name, conditions::is_crd_established()),
    )
    .await
    .map_err(|_| Failure(format!("{name} not Established in 30 s")))??;
    Ok(())
}

#[tokio::test]
#[ignore = "needs a control plane: bash tests/k8s/smoke.sh"]
async fn smoke() {
    let cluster = Cluster::from_env().await;
    let mut t = Checks::new("smoke");
    let client = cluster.client.clone();
    let testdata = cluster.root.join("tests/k8s/testdata");
    let state_root: PathBuf = cluster.state_dir().parent().unwrap().to_path_buf();

    t.check("cluster.sh env prints the same KUBECONFIG", async {
        let out = cluster.cluster_sh(&["env"]).await?;
        ensure_eq!(
            out.lines().next().unwrap_or_default().to_string(),
            format!("export KUBECONFIG={}", cluster.kubeconfig.display()),
            &out
        );
        Ok(())
    })
    .await;
    t.check("the server's version is the client's (v1.37.2)", async {
        let version = client.apiserver_version().await?;
        ensure_eq!(version.git_version.as_str(), "v1.37.2", &version);
        let client_version = cluster.kubectl(&["version", "--client", "-o", "json"]).await?;
        ensure!(client_version.contains("\"gitVersion\": \"v1.37.2\""), "{client_version}");
        Ok(())
    })
    .await;
    t.check("/readyz is ok", async {
        ensure_eq!(
            cluster.kubectl(&["get", "--raw", "/readyz"]).await?.trim().to_string(),
            "ok".to_string(),
            &"readyz"
        );
        Ok(())
    })
    .await;
    t.check("the admission chain includes ServiceAccount, webhooks and admission policies", async {
        let log = std::fs::read_to_string(cluster.state_dir().join("logs/kube-apiserver.log"))?;
        let mutating = log.lines().any(|l| {
            l.contains("mutating admission controller")
                && l.contains("ServiceAccount")
                && l.contains("MutatingAdmissionWebhook")
        });
        let validating = log.lines().any(|l| {
            l.contains("validating admission controller")
                && l.contains("ValidatingAdmissionPolicy,ValidatingAdmissionWebhook")
        });
        ensure!(mutating && validating, "the apiserver log does not list the admission chain");
        Ok(())
    })
    .await;
    t.check("RBAC denies an unprivileged service account", async {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some("system:serviceaccount:default:default".into()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some("create".into()),
                    resource: Some("pods".into()),
                    namespace: Some("default".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer =
            Api::<SubjectAccessReview>::all(client.clone()).create(&PostParams::default(), &review).await?;
        ensure_eq!(answer.status.as_ref().map(|s| s.allowed), Some(false), &answer);
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ namespaces
    let ns = cluster.cluster_sh(&["ns", "smoke"]).await.map(|s| s.trim().to_string()).unwrap_or_default();
    let other = cluster.cluster_sh(&["ns", "smoke"]).await.map(|s| s.trim().to_string()).unwrap_or_default();
    t.check(format!("cluster.sh ns gives distinct namespaces ({ns}, {other})"), async {
        ensure!(!ns.is_empty() && ns != other, "{ns} / {other}");
        cluster.kubectl(&["get", "ns", &ns, &other]).await.map(|_| ())
    })
    .await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    t.check(
        format!("the controller-manager creates the default ServiceAccount in {ns}"),
        eventually(Duration::from_secs(30), || async {
            sas.get("default").await.map(|_| ()).map_err(Failure::from)
        }),
    )
    .await;

    // ------------------------------------------------------------------ a mutating webhook on loopback
    let work = std::env::temp_dir().join(format!("syncmesh-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let w = work.display();
    let certs = sh(&format!(
        "cd {w} && openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null && \
         openssl req -x509 -new -key ca.key -subj /CN=smoke-webhook-ca -days 1 -out ca.crt 2>/dev/null && \
         openssl ecparam -name prime256v1 -genkey -noout -out wh.key 2>/dev/null && \
         openssl req -new -key wh.key -subj /CN=127.0.0.1 -out wh.csr 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > wh.ext && \
         openssl x509 -req -in wh.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile wh.ext -out wh.crt 2>/dev/null"
    ))
    .await;
    let mut webhook = tokio::process::Command::new("python3")
        .args([
            testdata.join("mutating-webhook.py").to_str().unwrap(),
            work.join("wh.crt").to_str().unwrap(),
            work.join("wh.key").to_str().unwrap(),
        ])
        .stdout(std::fs::File::create(work.join("webhook.port")).unwrap())
        .stderr(std::fs::File::create(work.join("webhook.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("the loopback webhook");
    t.check("a mutating webhook served on loopback is registered", async {
        certs?;
        let port = eventually(Duration::from_secs(10), || async {
            let p = std::fs::read_to_string(work.join("webhook.port"))?;
            ensure!(!p.trim().is_empty(), "no port yet");
            Ok(p.trim().to_string())
        })
        .await?;
        let bundle = sh(&format!("base64 -w0 < {w}/ca.crt")).await?;
        let config = format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: smoke-{ns}}}\nwebhooks:\n\
             - name: smoke.syncmesh.io\n  clientConfig: {{url: 'https://127.0.0.1:{port}/mutate', caBundle: {bundle}}}\n\
             \x20 rules: [{{operations: [CREATE], apiGroups: [''], apiVersions: [v1], resources: [pods]}}]\n\
             \x20 namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}\n\
             \x20 objectSelector: {{matchLabels: {{smoke.syncmesh.io/inject: 'true'}}}}\n\
             \x20 sideEffects: None\n  admissionReviewVersions: [v1]\n  failurePolicy: Fail\n  timeoutSeconds: 5\n"
        );
        cluster.kubectl_input(&["apply", "-f", "-"], &config).await.map(|_| ())
    })
    .await;

    // ------------------------------------------------------------------ Deployment -> ReplicaSet -> Pods
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let web = objects::deployment(
        "web",
        2,
        &[("smoke.syncmesh.io/inject", "true")],
        PodSpec { containers: vec![container("web", "registry.invalid/web:1")], ..Default::default() },
    );
    let _ = objects::apply(&deployments, &web).await;
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    t.check(
        "the Deployment creates its ReplicaSet",
        eventually(Duration::from_secs(30), || async {
            let rs = replicasets.list(&ListParams::default().labels("app=web")).await?;
            let owner = rs
                .items
                .first()
                .and_then(|r| r.metadata.owner_references.as_ref())
                .and_then(|o| o.first())
                .map(|o| o.name.clone());
            ensure_eq!(owner.as_deref(), Some("web"), &rs.items);
            Ok(())
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    t.check(
        "the ReplicaSet creates 2 Pods (Pending without a kubelet)",
        eventually(Duration::from_secs(30), || async {
            let n = pods.list(&ListParams::default().labels("app=web")).await?.items.len();
            ensure!(n == 2, "{n} pods");
            Ok(())
        }),
    )
    .await;
    t.check("the Pods were mutated by the webhook, created by the ReplicaSet controller", async {
        for pod in pods.list(&ListParams::default().labels("app=web")).await?.items {
            let label =
                pod.metadata.labels.as_ref().and_then(|l| l.get("smoke.syncmesh.io/mutated")).cloned();
            let by = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("smoke.syncmesh.io/created-by"))
                .cloned();
            ensure_eq!(label.as_deref(), Some("true"), &pod);
            ensure_eq!(by.as_deref(), Some("system:serviceaccount:kube-system:replicaset-controller"), &pod);
            ensure_eq!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending"), &pod);
        }
        Ok(())
    })
    .await;
    t.check("ServiceAccount admission mounted the projected token volume", async {
        let pod = pods
            .list(&ListParams::default().labels("app=web"))
            .await?
            .items
            .into_iter()
            .next()
            .ok_or("no pod")?;
        let path = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .and_then(|v| v[0].projected.as_ref())
            .and_then(|p| p.sources.as_ref())
            .and_then(|s| s[0].service_account_token.as_ref())
            .map(|t| t.path.clone());
        ensure_eq!(path.as_deref(), Some("token"), &pod);
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ ValidatingAdmissionPolicy
    let policy = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {{name: smoke-max-replicas-{ns}}}\n\
         spec:\n  failurePolicy: Fail\n  matchConstraints:\n    resourceRules: [{{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}]\n\
         \x20 validations: [{{expression: 'object.spec.replicas <= 5', message: 'smoke: at most 5 replicas'}}]\n---\n\
         apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {{name: smoke-max-replicas-{ns}}}\n\
         spec:\n  policyName: smoke-max-replicas-{ns}\n  validationActions: [Deny]\n  matchResources: {{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}}}\n"
    );
    let _ = cluster.kubectl_input(&["apply", "-f", "-"], &policy).await;
    t.check(
        "a ValidatingAdmissionPolicy denies a Deployment with 9 replicas",
        eventually(Duration::from_secs(30), || async {
            let too_big = objects::deployment(
                "too-big",
                9,
                &[],
                PodSpec { containers: vec![container("x", "registry.invalid/x:1")], ..Default::default() },
            );
            match deployments.create(&PostParams::default(), &too_big).await {
                Ok(d) => {
                    let _ = deployments.delete("too-big", &Default::default()).await;
                    Err(differs("admitted", &d))
                }
                Err(e) if e.to_string().contains("smoke: at most 5 replicas") => Ok(()),
                Err(e) => Err(e.into()),
            }
        }),
    )
    .await;

    // ------------------------------------------------------------------ server-side apply
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = |colour: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"colour": colour}});
    t.check("server-side apply creates an object owned by its field manager", async {
        let created =
            configmaps.patch("ssa", &PatchParams::apply("kubectl"), &Patch::Apply(cm("red"))).await?;
        let manager = created
            .metadata
            .managed_fields
            .as_ref()
            .and_then(|m| m.first())
            .map(|m| (m.manager.clone(), m.operation.clone()));
        ensure_eq!(manager, Some((Some("kubectl".to_string()), Some("Apply".to_string()))), &created);
        Ok(())
    })
    .await;
    t.check("server-side apply detects a field-manager conflict; forcing takes over", async {
        match configmaps.patch("ssa", &PatchParams::apply("other"), &Patch::Apply(cm("blue"))).await {
            Ok(o) => return Err(differs("no conflict", &o)),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let forced =
            configmaps.patch("ssa", &PatchParams::apply("other").force(), &Patch::Apply(cm("blue"))).await?;
        ensure_eq!(
            forced.data.as_ref().and_then(|d| d.get("colour")).map(String::as_str),
            Some("blue"),
            &forced
        );
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ CRDs and kubectl explain
    t.check(
        "a CRD applies server-side and becomes Established",
        crd_established(&cluster, &testdata.join("widget-crd.yaml"), "widgets.smoke.syncmesh.io"),
    )
    .await;
    t.check(
        "kubectl explain widgets.spec.size shows the schema description",
        eventually(Duration::from_secs(30), || async {
            let out = cluster.kubectl(&["explain", "widgets.spec.size"]).await?;
            ensure!(out.contains("Number of sprockets in the widget"), "{out}");
            Ok(())
        }),
    )
    .await;
    let widget = |size: u32| {
        format!("apiVersion: smoke.syncmesh.io/v1alpha1\nkind: Widget\nmetadata: {{name: w}}\nspec: {{size: {size}}}\n")
    };
    t.check(
        "a valid custom resource applies server-side",
        eventually(Duration::from_secs(15), || async {
            cluster
                .kubectl_input(&["-n", &ns, "apply", "--server-side", "-f", "-"], &widget(3))
                .await
                .map(|_| ())
        }),
    )
    .await;
    let kubectl = cluster.bin.join("kubectl");
    t.check(
        "the CRD schema rejects an invalid custom resource with a clear message",
        refused(
            &kubectl,
            &[
                "--kubeconfig",
                cluster.kubeconfig.to_str().unwrap(),
                "-n",
                &ns,
                "apply",
                "--server-side",
                "-f",
                "-",
            ],
            Some(&widget(42)),
            "should be less than or equal to 10",
        ),
    )
    .await;
    t.check(
        "the project's SyncedDatabase CRD applies server-side and is Established",
        crd_established(
            &cluster,
            &cluster.root.join("crds/syncmesh.io_synceddatabases.yaml"),
            "synceddatabases.syncmesh.io",
        ),
    )
    .await;
    t.check(
        "kubectl explain synceddatabases.spec",
        eventually(Duration::from_secs(30), || async {
            cluster.kubectl(&["explain", "synceddatabases.spec"]).await.map(|_| ())
        }),
    )
    .await;

    // ------------------------------------------------------------------ helm
    t.check("helm installs, lists and uninstalls a chart", async {
        cluster
            .helm(&[
                "install",
                "smoke",
                testdata.join("smoke-chart").to_str().unwrap(),
                "-n",
                &ns,
                "--set",
                "greeting=hi",
            ])
            .await?;
        let made = configmaps.get("smoke-greeting").await?;
        ensure_eq!(made.data.as_ref().and_then(|d| d.get("greeting")).map(String::as_str), Some("hi"), &made);
        let list = cluster.helm(&["list", "-n", &ns]).await?;
        ensure!(list.lines().any(|l| l.starts_with("smoke") && l.contains("deployed")), "{list}");
        cluster.helm(&["uninstall", "smoke", "-n", &ns]).await?;
        ensure!(
            configmaps.get_opt("smoke-greeting").await?.is_none(),
            "the chart's ConfigMap is still there"
        );
        Ok(())
    })
    .await;

    // ------------------------------------------------------------------ a second instance at the same time
    let script = cluster.root.join("tests/k8s/cluster.sh");
    let second = format!("{}-b", cluster.name);
    t.check("a second control plane runs alongside on other ports, then goes down", async {
        let env = run(&script, &["--name", &second, "up"], None).await?;
        let kc =
            env.lines().find_map(|l| l.strip_prefix("export KUBECONFIG=")).unwrap_or_default().to_string();
        ensure!(!kc.is_empty() && kc != cluster.kubeconfig.to_str().unwrap(), "{env}");
        let readyz = run(&kubectl, &["--kubeconfig", &kc, "get", "--raw", "/readyz"], None).await?;
        ensure!(readyz.trim() == "ok", "the second instance: {readyz}");
        ensure!(
            run(&kubectl, &["--kubeconfig", &kc, "get", "ns", &ns], None).await.is_err(),
            "the first instance's namespace exists in the second"
        );
        ensure!(
            cluster.kubectl(&["get", "--raw", "/readyz"]).await?.trim() == "ok",
            "the first instance is not ready any more"
        );
        run(&script, &["--name", &second, "down"], None).await.map(|_| ())
    })
    .await;

    // ------------------------------------------------------------------ a component that dies during up
    let third = format!("{}-c", cluster.name);
    t.check("a component killed during up: up says which and how it ended, and down --keep-logs keeps the logs", async {
        let up = tokio::process::Command::new(&script)
            .args(["--name", &third, "up"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid_file = state_root.join(&third).join("kube-apiserver.pid");
        let pid = eventually(Duration::from_secs(60), || async {
            let pid = std::fs::read_to_string(&pid_file)?.trim().to_string();
            // The arguments are separated by NUL bytes; empty while the launcher is inside execve.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            ensure!(cmdline.contains("kube-apiserver --"), "kube-apiserver not started yet (pid {pid}: {cmdline:?})");
            Ok(pid)
        })
        .await?;
        run(Path::new("/bin/kill"), &["-KILL", &pid], None).await?;
        let out = tokio::time::timeout(Duration::from_secs(60), up.wait_with_output()).await.map_err(|_| "up did not end")??;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(!out.status.success(), "up succeeded:\n{err}");
        // Killed while up still checked that it started, or later while up waited for /readyz:
        // either way up names the component and how it ended.
        ensure!(
            err.contains("kube-apiserver did not start: killed by signal SIGKILL")
                || err.contains("kube-apiserver exited while waiting for kube-apiserver /readyz: killed by signal SIGKILL"),
            "up's log:\n{err}"
        );
        let down = run(&script, &["--name", &third, "down", "--keep-logs"], None).await;
        let saved = std::fs::read_dir(state_root.join("logs"))?.flatten().map(|e| e.path()).filter(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{third}-")))
        }).collect::<Vec<_>>();
        down?;
        ensure!(saved.iter().any(|d| d.join("kube-apiserver.log").exists() && d.join("etcd.log").exists()), "no saved logs of {third}: {saved:?}");
        for d in saved {
            let _ = std::fs::remove_dir_all(d);
        }
        ensure!(!state_root.join(&third).exists(), "its state is left");
        ensure!(!state_root.join(format!("{third}.lock")).exists(), "its lock file is left");
        Ok(())
    })
    .await;

    let _ = webhook.kill().await;
    let _ = std::fs::remove_dir_all(&work);

    // ------------------------------------------------------------------ down
    let api_port = std::fs::read_to_string(&cluster.kubeconfig).ok().and_then(|k| {
        k.lines()
            .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:").map(|p| p.trim().to_string()))
    });
    let keep_logs = t.failed() > 0;
    t.check("cluster.sh down stops the processes and removes the state and the lock file", async {
        cluster.cluster_sh(if keep_logs { &["down", "--keep-logs"] } else { &["down"] }).await?;
        let port = api_port.ok_or("no API port in the kubeconfig")?;
        ensure!(
            std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
            "the apiserver still listens on {port}"
        );
        ensure!(!cluster.state_dir().exists(), "the state directory is left");
        ensure!(!state_root.join(format!("{}.lock", cluster.name)).exists(), "the lock file is left");
        Ok(())
    })
    .await;
    t.finish();
}
