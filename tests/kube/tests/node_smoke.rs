//! Smoke test of the node mode (tests/k8s/node-smoke.sh brings up `cluster.sh up --node`,
//! packs the replica and a busybox toolbox into images, and runs this): the replica as a
//! native sidecar in a Deployment, cluster DNS (headless Service), the mesh between two pods,
//! ClusterIP Services from the host and from pods, logs and exec through the API server, a pod
//! replaced, and that `cluster.sh down` leaves the host clean.
//!
//! Environment: what `cluster.sh up --node` exports, REPLICA_IMAGE and TOOLBOX_IMAGE.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams};
use syncmesh_k8s_tests::{differs, ensure, ensure_eq, eventually, run, Checks, Cluster, Failure, Outcome};

async fn shop_pods(pods: &Api<Pod>) -> Outcome<Vec<Pod>> {
    Ok(pods
        .list(&ListParams::default().labels("app=shop"))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

fn running_and_ready(p: &Pod) -> bool {
    let s = p.status.as_ref();
    s.and_then(|s| s.phase.as_deref()) == Some("Running")
        && s.and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn redis_cmd(ip: &str, args: &[&str]) -> Outcome<Option<String>> {
    let client = redis::Client::open(format!("redis://{ip}:6379/"))?;
    let mut conn = tokio::time::timeout(Duration::from_secs(3), client.get_multiplexed_async_connection())
        .await
        .map_err(|_| Failure(format!("no connection to {ip}:6379")))??;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    Ok(cmd.query_async(&mut conn).await?)
}

#[tokio::test]
#[ignore = "needs a cluster with a node: bash tests/k8s/node-smoke.sh"]
async fn node_smoke() {
    let cluster = Cluster::from_env().await;
    let mut t = Checks::new("node-smoke");
    let client = cluster.client.clone();
    let replica_image = std::env::var("REPLICA_IMAGE").expect("REPLICA_IMAGE");
    let toolbox_image = std::env::var("TOOLBOX_IMAGE").expect("TOOLBOX_IMAGE");
    let node_name = format!("syncmesh-{}", cluster.name);
    let state = cluster.state_dir();

    let nodes: Api<Node> = Api::all(client.clone());
    t.check(
        format!("Node {node_name} is Ready (kubelet v1.37.2, containerd 2.x, InternalIP 10.244.0.1)"),
        async {
            let node = nodes.get(&node_name).await?;
            let status = node.status.clone().unwrap_or_default();
            let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
            let info = status.node_info.clone().unwrap_or_default();
            ensure!(ready, "{}", differs("not Ready", &node));
            ensure_eq!(info.kubelet_version.as_str(), "v1.37.2", &node);
            ensure!(
                info.container_runtime_version.starts_with("containerd://2."),
                "runtime {}",
                info.container_runtime_version
            );
            ensure_eq!(status.addresses.as_ref().map(|a| a[0].address.as_str()), Some("10.244.0.1"), &node);
            Ok(())
        },
    )
    .await;
    t.check("the images are imported into the node's containerd", async {
        let list =
            run(&cluster.root.join("tests/k8s/images.sh"), &["--name", &cluster.name, "list"], None).await?;
        ensure!(list.lines().any(|l| l == format!("docker.io/library/{replica_image}")), "{list}");
        Ok(())
    })
    .await;
    let ns = cluster.namespace("node").await.expect("a namespace");
    let manifest = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: mesh}}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {{app: shop}}
  ports: [{{name: mesh, port: 7379}}]
---
apiVersion: v1
kind: Service
metadata: {{name: redis}}
spec:
  selector: {{app: shop}}
  ports: [{{name: redis, port: 6379}}, {{name: admin, port: 9379}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: shop}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata: {{labels: {{app: shop}}}}
    spec:
      terminationGracePeriodSeconds: 2
      initContainers:
      - name: syncmesh
        image: {replica_image}
        imagePullPolicy: Never
        restartPolicy: Always
        args: [--bind, 0.0.0.0, --protected-mode, "no", --mesh-insecure, --mesh-bind, 0.0.0.0, --mesh-secret, node-smoke, --database, shop, --peers-dns, mesh.{ns}.svc.cluster.local]
        ports: [{{name: redis, containerPort: 6379}}, {{name: mesh, containerPort: 7379}}, {{name: admin, containerPort: 9379}}]
        startupProbe: {{httpGet: {{path: /readyz, port: admin}}, periodSeconds: 1, failureThreshold: 60}}
        readinessProbe: {{httpGet: {{path: /readyz, port: admin}}, periodSeconds: 2}}
        securityContext:
          runAsNonRoot: true
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
          capabilities: {{drop: [ALL]}}
          seccompProfile: {{type: RuntimeDefault}}
      containers:
      - name: app
        image: {toolbox_image}
        imagePullPolicy: Never
        env: [{{name: REDIS_URL, value: "redis://127.0.0.1:6379"}}]
"#
    );
    t.require("the Services and the Deployment apply", async {
        cluster.kubectl_input(&["-n", &ns, "apply", "-f", "-"], &manifest).await.map(|_| ())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    t.check(
        "the Deployment's 2 pods are Running and Ready",
        eventually(Duration::from_secs(120), || async {
            let list = shop_pods(&pods).await?;
            ensure!(
                list.len() == 2 && list.iter().all(running_and_ready),
                "{} pods, {} running and ready",
                list.len(),
                list.iter().filter(|p| running_and_ready(p)).count()
            );
            Ok(())
        }),
    )
    .await;
    t.check(
        "the replica runs as a native sidecar (init container running beside the app, started first)",
        async {
            for pod in shop_pods(&pods).await? {
                let status = pod.status.clone().unwrap_or_default();
                let side = status
                    .init_container_statuses
                    .as_ref()
                    .and_then(|s| s.first())
                    .ok_or_else(|| differs("no sidecar status", &pod))?;
                let app = status
                    .container_statuses
                    .as_ref()
                    .and_then(|s| s.first())
                    .ok_or_else(|| differs("no app status", &pod))?;
                ensure!(
                    side.name == "syncmesh" && side.started == Some(true) && side.ready,
                    "{}",
                    differs("the sidecar is not started and ready", &pod)
                );
                let side_at = side
                    .state
                    .as_ref()
                    .and_then(|s| s.running.as_ref())
                    .and_then(|r| r.started_at.clone())
                    .ok_or_else(|| differs("the sidecar is not running", &pod))?;
                let app_at = app
                    .state
                    .as_ref()
                    .and_then(|s| s.running.as_ref())
                    .and_then(|r| r.started_at.clone())
                    .ok_or_else(|| differs("the app is not running", &pod))?;
                ensure!(
                    side_at.0 <= app_at.0,
                    "the app started ({}) before the sidecar ({})",
                    app_at.0,
                    side_at.0
                );
            }
            Ok(())
        },
    )
    .await;
    let list = shop_pods(&pods).await.unwrap_or_default();
    let names: Vec<String> = list.iter().filter_map(|p| p.metadata.name.clone()).collect();
    let ips: Vec<String> = list.iter().filter_map(|p| p.status.as_ref()?.pod_ip.clone()).collect();
    t.say(format!("pods: {names:?} at {ips:?}"));
    t.check(format!("pods have addresses from the pod subnet 10.244.0.0/24 ({ips:?})"), async {
        ensure!(ips.len() == 2 && ips.iter().all(|ip| ip.starts_with("10.244.0.")), "{ips:?}");
        Ok(())
    })
    .await;
    let first = names.first().cloned().unwrap_or_default();
    let in_app = |args: Vec<String>| {
        let (cluster, ns, pod) = (&cluster, ns.clone(), first.clone());
        async move {
            let mut all = vec![
                "-n".to_string(),
                ns,
                "exec".into(),
                pod,
                "-c".into(),
                "app".into(),
                "--".into(),
                "busybox".into(),
            ];
            all.extend(args);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            cluster.kubectl(&refs).await
        }
    };
    t.check(
        format!("the headless Service mesh.{ns}.svc.cluster.local resolves to both pod IPs from a pod"),
        eventually(Duration::from_secs(30), || async {
            let out = in_app(vec!["nslookup".into(), format!("mesh.{ns}.svc.cluster.local")]).await?;
            ensure!(
                ips.iter().all(|ip| out.lines().any(|l| l.trim_end() == format!("Address: {ip}"))),
                "{out}"
            );
            Ok(())
        }),
    )
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let cluster_ip = services.get("redis").await.ok().and_then(|s| s.spec?.cluster_ip).unwrap_or_default();
    t.check(
        "a ClusterIP Service resolves by its short name (search path) from a pod",
        eventually(Duration::from_secs(30), || async {
            // busybox nslookup tries every search domain and exits 1 when any of them is NXDOMAIN.
            let out = match in_app(vec!["nslookup".into(), "redis".into()]).await {
                Ok(o) => o,
                Err(Failure(o)) => o,
            };
            ensure!(out.lines().any(|l| l.trim_end() == format!("Address: {cluster_ip}")), "{out}");
            Ok(())
        }),
    )
    .await;
    let (ip0, ip1) = (ips.first().cloned().unwrap_or_default(), ips.get(1).cloned().unwrap_or_default());
    let greeting = format!("hello from {first}");
    t.check(
        "a SET on one pod's replica is read from the other's (mesh over --peers-dns)",
        eventually(Duration::from_secs(60), || async {
            redis_cmd(&ip0, &["SET", "node-smoke", &greeting]).await?;
            ensure_eq!(redis_cmd(&ip1, &["GET", "node-smoke"]).await?, Some(greeting.clone()), &ip1);
            Ok(())
        }),
    )
    .await;
    t.check(
        "and the other way round",
        eventually(Duration::from_secs(30), || async {
            redis_cmd(&ip1, &["SET", "node-smoke-back", "yes"]).await?;
            ensure_eq!(redis_cmd(&ip0, &["GET", "node-smoke-back"]).await?, Some("yes".to_string()), &ip0);
            Ok(())
        }),
    )
    .await;
    t.check(
        format!("the ClusterIP Service redis ({cluster_ip}:6379) reaches a pod from the host (kube-proxy)"),
        eventually(Duration::from_secs(30), || async {
            ensure_eq!(redis_cmd(&cluster_ip, &["PING"]).await?, Some("PONG".to_string()), &cluster_ip);
            Ok(())
        }),
    )
    .await;
    t.check(
        "the ClusterIP Service reaches a pod from a pod (by DNS name)",
        eventually(Duration::from_secs(30), || async {
            let out = in_app(vec![
                "sh".into(),
                "-c".into(),
                format!("printf 'PING\\r\\n' | busybox nc -w 2 redis.{ns}.svc.cluster.local 6379"),
            ])
            .await?;
            ensure!(out.contains("PONG"), "{out}");
            Ok(())
        }),
    )
    .await;
    t.check(
        "the apiserver reaches pod IPs through a Service (as it calls a webhook Service)",
        eventually(Duration::from_secs(30), || async {
            cluster
                .kubectl(&[
                    "get",
                    "--raw",
                    &format!("/api/v1/namespaces/{ns}/services/http:redis:admin/proxy/readyz"),
                ])
                .await
                .map(|_| ())
        }),
    )
    .await;
    t.check(
        "the kubernetes Service (10.96.0.1:443) reaches the apiserver from a pod",
        eventually(Duration::from_secs(30), || async {
            in_app(vec!["sh".into(), "-c".into(), "echo | busybox nc -w 2 10.96.0.1 443".into()])
                .await
                .map(|_| ())
        }),
    )
    .await;
    t.check("kubectl logs shows the sidecar's log (apiserver -> kubelet)", async {
        let out = cluster.kubectl(&["-n", &ns, "logs", &first, "-c", "syncmesh", "--tail=50"]).await?;
        ensure!(out.contains("ready to accept connections"), "{out}");
        ensure!(!out.contains('\u{1b}'), "colour codes in a log that is not a terminal:\n{out}");
        Ok(())
    })
    .await;
    t.check("kubectl exec runs in the pod, as the image's user 65532", async {
        let out = in_app(vec!["id".into(), "-u".into()]).await?;
        ensure!(out.trim() == "65532", "id -u: {out}");
        Ok(())
    })
    .await;
    t.check("a deleted pod is stopped and replaced by a Ready one", async {
        pods.delete(&first, &DeleteParams::default()).await?;
        eventually(Duration::from_secs(60), || async {
            ensure!(pods.get_opt(&first).await?.is_none(), "{first} is still there");
            Ok(())
        })
        .await?;
        eventually(Duration::from_secs(90), || async {
            let list = shop_pods(&pods).await?;
            ensure!(list.len() == 2 && list.iter().all(running_and_ready), "{} pods", list.len());
            Ok(())
        })
        .await
    })
    .await;

    // ------------------------------------------------------------------ down leaves the host clean
    let keep_logs = t.failed() > 0;
    t.check(
        "cluster.sh down stops every pod through the kubelet and leaves no bridge, iptables chain, mount, process, cgroup, host file or lock file",
        async {
            // With a failure so far, the logs are saved outside the state directory first.
            cluster.cluster_sh(if keep_logs { &["down", "--keep-logs"] } else { &["down"] }).await?;
            let sh = |script: String| async move { run(Path::new("/bin/sh"), &["-c", &script], None).await };
            ensure!(sh("ip link show syncmesh0".into()).await.is_err(), "bridge syncmesh0 left");
            let chains = sh("iptables-save | grep -cE '(KUBE|CNI)-' || true".into()).await?;
            ensure!(chains.trim() == "0", "{} iptables lines left", chains.trim());
            let st = state.display().to_string();
            ensure!(!std::fs::read_to_string("/proc/self/mounts")?.contains(&format!("{st}/")), "mounts left");
            let left: Vec<String> = std::fs::read_dir("/proc")?
                .flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok().map(|c| (e.file_name(), c)))
                .filter(|(_, c)| String::from_utf8_lossy(c).contains(&format!("{st}/")))
                .map(|(pid, c)| format!("{}: {}", pid.to_string_lossy(), String::from_utf8_lossy(&c).replace('\0', " ")))
                .collect();
            ensure!(left.is_empty(), "processes left: {left:?}");
            ensure!(sh("ls -d /sys/fs/cgroup/*/kubepods".into()).await.is_err(), "cgroups left");
            ensure!(sh(format!("ls /var/lib/cni/results/syncmesh-{}-*", cluster.name)).await.is_err(), "CNI results left (no CNI DEL)");
            let links = sh(format!("find /var/log/containers -lname '{st}/*' 2>/dev/null || true")).await?;
            ensure!(links.trim().is_empty(), "log links left: {links}");
            ensure!(!state.exists(), "the state directory {st} is left");
            let lock = state.parent().unwrap().join(format!("{}.lock", cluster.name));
            ensure!(!lock.exists(), "the lock file {} is left", lock.display());
            Ok(())
        },
    )
    .await;
    t.finish();
}
