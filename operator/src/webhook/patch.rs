//! What the webhook does to a pod, as a pure function: pod + SyncedDatabase → JSON Patch.
//!
//! The patch only adds; it never rewrites what the pod already has, so the API server applies
//! it to exactly the object the user (or controller) sent. Golden-file tests in
//! `operator/tests/golden/` pin the patch for the cases that matter.

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use serde_json::{json, Value};

use crate::crd::{SyncedDatabase, MEMBER_LABEL};

/// Name of the injected native sidecar.
pub const SIDECAR_NAME: &str = "syncmesh-replica";
/// Annotation that marks an injected pod (the webhook never injects twice).
pub const INJECTED_ANNOTATION: &str = "syncmesh.io/injected";
/// Where the replica listens inside the pod.
pub const CLIENT_PORT: i32 = 6379;
pub const ADMIN_PORT: i32 = 9379;
/// The key of the admin token in the database's admin Secret.
pub const ADMIN_TOKEN_KEY: &str = "token";
/// The environment variable applications read.
pub const REDIS_URL: &str = "REDIS_URL";
/// The password variable added when the database requires AUTH.
pub const REDIS_PASSWORD: &str = "REDIS_PASSWORD";
pub const TLS_VOLUME: &str = "syncmesh-tls";
pub const DATA_VOLUME: &str = "syncmesh-data";
pub const TLS_DIR: &str = "/etc/syncmesh/tls";
pub const DATA_DIR: &str = "/var/lib/syncmesh";
/// The user the replica runs as (no shell, no home, not root).
pub const REPLICA_UID: i64 = 65532;

/// Settings that do not come from the SyncedDatabase.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub replica_image: String,
}

/// The webhook's decision for one pod.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Admit unchanged, for the reason given.
    Skip(&'static str),
    /// Admit with this JSON Patch (a list of RFC 6902 operations).
    Patch(Vec<Value>),
}

/// Escapes a map key for a JSON Pointer (RFC 6901).
fn pointer_key(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Whether the pod was injected already (by annotation, or by a container of ours).
pub fn is_injected(pod: &Pod) -> bool {
    let annotated = pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(INJECTED_ANNOTATION));
    let spec = pod.spec.as_ref();
    let has_sidecar = spec.is_some_and(|s| {
        s.containers.iter().chain(s.init_containers.iter().flatten()).any(|c| c.name == SIDECAR_NAME)
    });
    annotated || has_sidecar
}

/// The patch that injects `db`'s replica into `pod`.
pub fn injection_patch(pod: &Pod, db: &SyncedDatabase, defaults: &Defaults) -> Decision {
    let Some(spec) = pod.spec.as_ref() else { return Decision::Skip("pod has no spec") };
    if is_injected(pod) {
        return Decision::Skip("already injected");
    }
    let mut ops = Vec::new();
    let db_name = db.metadata.name.clone().unwrap_or_default();

    // Mark the pod, and make it a member the mesh Service selects.
    match &pod.metadata.annotations {
        None => ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {INJECTED_ANNOTATION: "true"}})),
        Some(_) => ops.push(json!({
            "op": "add", "path": format!("/metadata/annotations/{}", pointer_key(INJECTED_ANNOTATION)), "value": "true"
        })),
    }
    match &pod.metadata.labels {
        None => ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {MEMBER_LABEL: db_name}})),
        Some(_) => ops.push(json!({
            "op": "add", "path": format!("/metadata/labels/{}", pointer_key(MEMBER_LABEL)), "value": db_name
        })),
    }

    // The replica goes first among the init containers: as a native sidecar it starts before
    // the ones after it, so even those can use it, and the app containers wait for its
    // startup probe (initial sync done).
    let sidecar = serde_json::to_value(sidecar_container(db, defaults)).expect("container serialises");
    match &spec.init_containers {
        Some(list) if !list.is_empty() => {
            ops.push(json!({"op": "add", "path": "/spec/initContainers/0", "value": sidecar}))
        }
        _ => ops.push(json!({"op": "add", "path": "/spec/initContainers", "value": [sidecar]})),
    }

    let volumes = [
        json!({"name": TLS_VOLUME, "secret": {"secretName": db.member_tls_secret_name(), "defaultMode": 0o444}}),
        json!({"name": DATA_VOLUME, "emptyDir": {}}),
    ];
    match &spec.volumes {
        Some(list) if !list.is_empty() => ops
            .extend(volumes.into_iter().map(|v| json!({"op": "add", "path": "/spec/volumes/-", "value": v}))),
        _ => ops.push(json!({"op": "add", "path": "/spec/volumes", "value": volumes})),
    }

    // Every application container learns where its replica is, unless it says otherwise.
    for (i, container) in spec.containers.iter().enumerate() {
        let env = container.env.as_deref().unwrap_or_default();
        let has = |name: &str| env.iter().any(|e| e.name == name);
        if has(REDIS_URL) {
            continue;
        }
        let mut add: Vec<Value> = Vec::new();
        let url = match &db.spec.auth {
            Some(auth) => {
                if !has(REDIS_PASSWORD) {
                    add.push(json!({"name": REDIS_PASSWORD, "valueFrom": {"secretKeyRef": {
                        "name": auth.secret_ref.name, "key": auth.secret_ref.key}}}));
                }
                format!("redis://:$({REDIS_PASSWORD})@127.0.0.1:{CLIENT_PORT}")
            }
            None => format!("redis://127.0.0.1:{CLIENT_PORT}"),
        };
        add.push(json!({"name": REDIS_URL, "value": url}));
        if container.env.is_none() {
            ops.push(json!({"op": "add", "path": format!("/spec/containers/{i}/env"), "value": add}));
        } else {
            ops.extend(
                add.into_iter()
                    .map(|v| json!({"op": "add", "path": format!("/spec/containers/{i}/env/-"), "value": v})),
            );
        }
    }
    Decision::Patch(ops)
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

/// The environment of a replica (injected sidecar and durable replica alike): database, mesh
/// wiring, TLS and limits from the SyncedDatabase. Flags are given as `SYNCMESH_*` variables
/// (docs/reference.md, "Flags"), so the container needs no command line.
pub fn replica_env(db: &SyncedDatabase, data_dir: &str) -> Vec<Value> {
    let spec = &db.spec;
    let mesh_port = spec.mesh.port;
    let mut env_list = vec![
        field_env("SYNCMESH_POD_NAME", "metadata.name"),
        field_env("SYNCMESH_POD_NAMESPACE", "metadata.namespace"),
        field_env("SYNCMESH_POD_IP", "status.podIP"),
    ];
    let mut plain = vec![
        env("SYNCMESH_DATABASE", db.metadata.name.clone().unwrap_or_default()),
        env("SYNCMESH_PORT", CLIENT_PORT.to_string()),
        env("SYNCMESH_ADMIN_PORT", ADMIN_PORT.to_string()),
        env("SYNCMESH_MESH_PORT", mesh_port.to_string()),
        env("SYNCMESH_ADVERTISE_ADDR", format!("$(SYNCMESH_POD_IP):{mesh_port}")),
        env("SYNCMESH_PEERS_DNS", db.mesh_dns()),
        env("SYNCMESH_TLS_CA", format!("{TLS_DIR}/ca.crt")),
        env("SYNCMESH_TLS_CERT", format!("{TLS_DIR}/tls.crt")),
        env("SYNCMESH_TLS_KEY", format!("{TLS_DIR}/tls.key")),
        env("SYNCMESH_DATA_DIR", data_dir),
        env("SYNCMESH_APPENDFSYNC", spec.persistence.appendfsync.as_str()),
        env(
            "SYNCMESH_LOG",
            serde_json::to_value(spec.replica.log_level)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_else(|| "info".into()),
        ),
    ];
    if !spec.remotes.is_empty() {
        let peers: Vec<String> = spec.remotes.iter().map(|r| format!("{}:{}", r.host, r.port)).collect();
        plain.push(env("SYNCMESH_PEERS", peers.join(",")));
    }
    if let Some(bytes) = spec.replica.max_memory.as_deref().and_then(|q| quantity_bytes(q).ok()) {
        plain.push(env("SYNCMESH_MAXMEMORY", bytes.to_string()));
    }
    env_list.extend(plain.into_iter().map(|e| serde_json::to_value(e).expect("env serialises")));
    if let Some(auth) = &spec.auth {
        env_list.push(json!({"name": "SYNCMESH_REQUIREPASS", "valueFrom": {"secretKeyRef": {
            "name": auth.secret_ref.name, "key": auth.secret_ref.key}}}));
    }
    // `/status` answers other hosts only with this token; the operator holds it to probe members.
    env_list.push(json!({"name": "SYNCMESH_ADMIN_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": db.admin_secret_name(), "key": ADMIN_TOKEN_KEY}}}));
    env_list
}

/// The restricted security context of the replica (Pod Security Standard "restricted").
pub fn restricted_security_context() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": REPLICA_UID,
        "runAsGroup": REPLICA_UID,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}
    })
}

/// Default resources when the SyncedDatabase sets none.
pub fn default_resources() -> Value {
    json!({"requests": {"cpu": "50m", "memory": "64Mi"}})
}

/// The ports, probes and mounts every replica container has.
pub fn replica_container_base(db: &SyncedDatabase, defaults: &Defaults, data_dir: &str) -> Value {
    let replica = &db.spec.replica;
    let mut c = json!({
        "name": SIDECAR_NAME,
        "image": replica.image.clone().unwrap_or_else(|| defaults.replica_image.clone()),
        "env": replica_env(db, data_dir),
        "ports": [
            {"name": "redis", "containerPort": CLIENT_PORT, "protocol": "TCP"},
            {"name": "syncmesh-mesh", "containerPort": db.spec.mesh.port, "protocol": "TCP"},
            {"name": "syncmesh-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"}
        ],
        // The startup probe holds the application containers back until the replica has its
        // initial sync (up to 10 minutes for a large dataset).
        "startupProbe": {"httpGet": {"path": "/readyz", "port": ADMIN_PORT}, "periodSeconds": 1, "failureThreshold": 600},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": ADMIN_PORT}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": ADMIN_PORT}, "periodSeconds": 10, "failureThreshold": 3},
        "resources": replica.resources.as_ref().map(|r| serde_json::to_value(r).expect("resources serialise")).unwrap_or_else(default_resources),
        "securityContext": restricted_security_context(),
        "volumeMounts": [
            {"name": TLS_VOLUME, "mountPath": TLS_DIR, "readOnly": true},
            {"name": DATA_VOLUME, "mountPath": data_dir}
        ]
    });
    if let Some(policy) = replica.image_pull_policy {
        c["imagePullPolicy"] = serde_json::to_value(policy).expect("policy serialises");
    }
    c
}

/// The injected native sidecar: an init container that keeps running (`restartPolicy: Always`).
pub fn sidecar_container(db: &SyncedDatabase, defaults: &Defaults) -> Container {
    let mut c = replica_container_base(db, defaults, DATA_DIR);
    c["restartPolicy"] = json!("Always");
    serde_json::from_value(c).expect("a valid container")
}

/// Bytes in a Kubernetes quantity (`256Mi`, `1G`, `1.5Gi`, `1e9`, `500m`), rounded up.
pub fn quantity_bytes(q: &str) -> Result<u64, String> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("invalid quantity '{q}'"))?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => {
            10f64.powi(s[1..].parse::<i32>().map_err(|_| format!("invalid quantity exponent in '{q}'"))?)
        }
        _ => return Err(format!("invalid quantity suffix in '{q}'")),
    };
    let bytes = (value * factor).ceil();
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("quantity '{q}' is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_bytes() {
        assert_eq!(quantity_bytes("256Mi").unwrap(), 256 * 1024 * 1024);
        assert_eq!(quantity_bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(quantity_bytes("1.5Gi").unwrap(), 1536 * 1024 * 1024);
        assert_eq!(quantity_bytes("1e3").unwrap(), 1000);
        assert_eq!(quantity_bytes("500m").unwrap(), 1);
        assert_eq!(quantity_bytes("4096").unwrap(), 4096);
        assert!(quantity_bytes("12zz").is_err());
        assert!(quantity_bytes("Mi").is_err());
    }

    #[test]
    fn pointer_keys_are_escaped() {
        assert_eq!(pointer_key("syncmesh.io/injected"), "syncmesh.io~1injected");
        assert_eq!(pointer_key("a~b"), "a~0b");
    }
}
