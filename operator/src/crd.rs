//! The `SyncedDatabase` custom resource: one shared dataset, replicated into every pod that opts
//! in with the label `syncmesh.io/database: <name>`.
//!
//! The Rust types are the source of truth. `crdgen` turns them into
//! `crds/syncmesh.io_synceddatabases.yaml`, so the schema the API server enforces (defaults,
//! ranges, enums and the CEL rules with their messages) is exactly what this file says.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The API group of every SyncMesh resource and the prefix of its labels and annotations.
pub const GROUP: &str = "syncmesh.io";
/// The label a pod carries to opt in; its value names the SyncedDatabase (same namespace).
pub const DATABASE_LABEL: &str = "syncmesh.io/database";
/// The label every mesh member carries (injected pods and durable replicas); the mesh Service
/// selects on it. It is separate from the opt-in label so that the durable StatefulSet's pods,
/// which run the replica as their main container, are not injected a second time.
pub const MEMBER_LABEL: &str = "syncmesh.io/member";
/// The finalizer that lets the operator clean up before a SyncedDatabase disappears.
pub const FINALIZER: &str = "syncmesh.io/cleanup";
/// The pod template annotation the operator sets to restart a workload onto a new replica image
/// (`rolloutAfterUpgrade: Restart`); its value is that image.
pub const REPLICA_IMAGE_ANNOTATION: &str = "syncmesh.io/replica-image";

/// A database shared by the pods that carry `syncmesh.io/database: <name>`: each gets a local
/// Redis-compatible replica as a native sidecar, and the replicas converge through a mesh.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "syncmesh.io",
    version = "v1alpha1",
    kind = "SyncedDatabase",
    plural = "synceddatabases",
    singular = "synceddatabase",
    shortname = "sdb",
    category = "syncmesh",
    namespaced,
    doc = "A database shared by the pods labelled syncmesh.io/database=<name> in its namespace",
    status = "SyncedDatabaseStatus",
    // The columns read as other operators' do: READY is the Ready condition, MEMBERS counts
    // ready of all members as `kubectl get deployment` does; -o wide adds the reasons.
    printcolumn = r#"{"name":"Ready", "type":"string", "description":"The Ready condition: the mesh Service, certificates and durable replicas are in place", "jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Members", "type":"string", "description":"Members whose replica is ready, of all members (injected pods plus durable replicas)", "jsonPath":".status.members.summary"}"#,
    printcolumn = r#"{"name":"Mesh", "type":"string", "description":"The MeshFormed condition: every ready member is connected to all the others", "jsonPath":".status.conditions[?(@.type==\"MeshFormed\")].status"}"#,
    printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Reason", "type":"string", "priority":1, "description":"Reason of the Ready condition", "jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Degraded", "type":"string", "priority":1, "description":"Reason of the Degraded condition", "jsonPath":".status.conditions[?(@.type==\"Degraded\")].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SyncedDatabaseSpec {
    /// The replica container injected into every member pod.
    #[serde(default)]
    pub replica: ReplicaSpec,

    /// Password clients must give (Redis AUTH). Without it, only the pod's own containers can
    /// reach the replica anyway (it listens on localhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// The mesh between replicas.
    #[serde(default)]
    pub mesh: MeshSpec,

    /// Durable replicas that keep the data when every application pod is gone.
    #[serde(default)]
    pub persistence: PersistenceSpec,

    /// Mesh endpoints of this database in other clusters (cross-cluster active-active). They
    /// must use a certificate from the same CA (`mesh.tls.mode: CertManager` with a shared
    /// issuer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub remotes: Vec<Remote>,

    /// What happens when members run another replica image than the one the operator injects
    /// now (after `helm upgrade` changed the operator's replica image, or `replica.image`
    /// changed). `Manual`: the status says which pods are outdated (condition
    /// `ReplicasUpToDate`, `status.replicaVersions`); restart their workloads yourself
    /// (`kubectl rollout restart`). `Restart`: the operator restarts the Deployments,
    /// StatefulSets and DaemonSets that own outdated pods, once per image, by setting the pod
    /// template annotation `syncmesh.io/replica-image`; they roll as their update strategy says.
    #[serde(default)]
    pub rollout_after_upgrade: RolloutPolicy,
}

/// See `SyncedDatabaseSpec::rollout_after_upgrade`.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RolloutPolicy {
    #[default]
    Manual,
    Restart,
}

/// The replica container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpec {
    /// Container image of syncmesh-replica. Defaults to the operator's `--replica-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// When the kubelet pulls the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// CPU and memory requests and limits of the replica container. Defaults to requests of
    /// 50m CPU and 64Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Memory the dataset may use, as a quantity (`256Mi`, `1Gi`). Past it, writes get `-OOM`
    /// and reads keep working. Unset: no limit besides the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("maxMemory must be a positive quantity such as 256Mi or 1Gi"))]
    pub max_memory: Option<String>,

    /// Log level of the replica (`error`, `warn`, `info`, `debug`, `trace`).
    #[serde(default = "default_log_level")]
    pub log_level: LogLevel,
}

/// The image pull policies Kubernetes knows.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Log levels of the replica.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

fn default_log_level() -> LogLevel {
    LogLevel::Info
}

/// Client authentication.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// The Secret (same namespace) that holds the password.
    pub secret_ref: SecretKeyRef,
}

/// A key of a Secret in the SyncedDatabase's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_password_key() -> String {
    "password".into()
}

/// The mesh between replicas.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeshSpec {
    /// Port of the mesh (peer replication, mutual TLS).
    #[serde(default = "default_mesh_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Where the mesh certificates come from.
    #[serde(default)]
    pub tls: TlsSpec,
}

impl Default for MeshSpec {
    fn default() -> Self {
        MeshSpec { port: default_mesh_port(), tls: TlsSpec::default() }
    }
}

fn default_mesh_port() -> i32 {
    7379
}

/// Mesh certificates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.mode != 'CertManager' || has(self.secretName)").message("mesh.tls.secretName is required when mesh.tls.mode is CertManager"))]
pub struct TlsSpec {
    /// `Auto`: the operator runs a CA for this database and issues the members' certificate.
    /// `CertManager`: the members use `secretName` (with `ca.crt`, `tls.crt`, `tls.key`), for
    /// example a cert-manager Certificate's Secret.
    #[serde(default)]
    pub mode: TlsMode,

    /// The Secret with the members' certificate when `mode` is `CertManager`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

/// Where mesh certificates come from.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    #[default]
    Auto,
    CertManager,
}

/// Durable replicas: a StatefulSet of replicas with volumes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.durableReplicas == 0 || has(self.size)").message("persistence.size is required when persistence.durableReplicas is greater than 0"))]
pub struct PersistenceSpec {
    /// Replicas that run on their own (a StatefulSet with a PersistentVolumeClaim each) and
    /// keep the data when every application pod is gone. 0: none.
    #[serde(default)]
    #[schemars(range(min = 0, max = 15))]
    pub durable_replicas: i32,

    /// Size of each durable replica's volume, as a quantity (`1Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("persistence.size must be a positive quantity such as 1Gi"))]
    pub size: Option<String>,

    /// StorageClass of the volumes. Unset: the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,

    /// When the durable replicas flush their log to disk (as Redis's `appendfsync`).
    #[serde(default)]
    pub appendfsync: AppendFsync,
}

/// Redis's `appendfsync` policies.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    Always,
    #[default]
    Everysec,
    No,
}

impl AppendFsync {
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
            AppendFsync::No => "no",
        }
    }
}

/// A mesh endpoint of this database in another cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Remote {
    /// Host name or IP address.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Mesh port.
    #[serde(default = "default_mesh_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// What the operator observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncedDatabaseStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `MeshFormed` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Member counts.
    #[serde(default)]
    pub members: MemberCounts,

    /// Pods that carry the opt-in label but no replica (created before the webhook ran, or
    /// while it was not installed). Recreate them to inject the replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uninjected_pods: Vec<String>,

    /// The headless Service the members find each other through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_service: Option<String>,

    /// How many member pods run each replica image, the one the operator injects now first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_versions: Vec<ReplicaVersion>,
}

/// Member pods that run one replica image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaVersion {
    /// The version: the image's tag (or digest).
    pub version: String,
    /// The replica container's image.
    pub image: String,
    /// Member pods (injected pods and durable replicas) that run it.
    pub pods: i32,
    /// Whether it is the image the operator injects now.
    pub current: bool,
}

impl ReplicaVersion {
    /// The version part of an image reference: the digest, else the tag, else `latest`.
    pub fn version_of(image: &str) -> String {
        if let Some((_, digest)) = image.split_once('@') {
            return digest.to_string();
        }
        match image.rsplit_once(':') {
            Some((_, tag)) if !tag.contains('/') => tag.to_string(),
            _ => "latest".to_string(),
        }
    }
}

/// Member counts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberCounts {
    /// Pods with the replica injected, plus durable replicas.
    pub injected: i32,
    /// Members whose replica is ready (initial sync done).
    pub ready: i32,
    /// Durable replicas that are ready.
    pub durable_ready: i32,
    /// `ready/injected`, as `kubectl get sdb` shows it.
    #[serde(default)]
    pub summary: String,
}

/// Names of the objects a SyncedDatabase owns, derived from its name.
impl SyncedDatabase {
    fn base(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }

    /// The headless Service of the mesh.
    pub fn mesh_service_name(&self) -> String {
        format!("{}-mesh", self.base())
    }

    /// The Secret with the database CA's certificate and key (mode `Auto`).
    pub fn ca_secret_name(&self) -> String {
        format!("{}-mesh-ca", self.base())
    }

    /// The Secret mounted into members: `ca.crt`, `tls.crt`, `tls.key`.
    pub fn member_tls_secret_name(&self) -> String {
        match (&self.spec.mesh.tls.mode, &self.spec.mesh.tls.secret_name) {
            (TlsMode::CertManager, Some(name)) => name.clone(),
            _ => format!("{}-mesh-tls", self.base()),
        }
    }

    /// The Secret with the token that opens the members' `/status` to the operator (`token`).
    pub fn admin_secret_name(&self) -> String {
        format!("{}-admin", self.base())
    }

    /// The StatefulSet (and PodDisruptionBudget) of the durable replicas.
    pub fn durable_name(&self) -> String {
        format!("{}-durable", self.base())
    }

    /// DNS name of the mesh Service inside the cluster.
    pub fn mesh_dns(&self) -> String {
        format!(
            "{}.{}.svc",
            self.mesh_service_name(),
            self.metadata.namespace.as_deref().unwrap_or("default")
        )
    }

    /// Whether the object is being deleted.
    pub fn is_deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }
}

/// The CRD as the YAML document committed in `crds/` and shipped in the Helm chart.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let header = "# Generated by `cargo run -p syncmesh-operator --bin crdgen` from operator/src/crd.rs.\n\
                  # Do not edit: change the Rust types and regenerate.\n";
    format!("{header}{}", serde_yaml::to_string(&SyncedDatabase::crd()).expect("the CRD serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn an_empty_spec_gets_every_default() {
        let spec: SyncedDatabaseSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.mesh.port, 7379);
        assert_eq!(spec.mesh.tls.mode, TlsMode::Auto);
        assert_eq!(spec.persistence.durable_replicas, 0);
        assert_eq!(spec.persistence.appendfsync, AppendFsync::Everysec);
        assert_eq!(spec.replica.log_level, LogLevel::Info);
        assert_eq!(spec.rollout_after_upgrade, RolloutPolicy::Manual);
    }

    #[test]
    fn versions_come_from_the_image_reference() {
        assert_eq!(ReplicaVersion::version_of("syncmesh/syncmesh-replica:0.2.0"), "0.2.0");
        assert_eq!(ReplicaVersion::version_of("registry:5000/syncmesh-replica:1.0"), "1.0");
        assert_eq!(ReplicaVersion::version_of("registry:5000/syncmesh-replica"), "latest");
        assert_eq!(ReplicaVersion::version_of("r/x:1@sha256:abcd"), "sha256:abcd");
    }

    #[test]
    fn the_schema_carries_validation_and_printer_columns() {
        let crd = serde_json::to_string(&SyncedDatabase::crd()).unwrap();
        for needle in [
            "persistence.size is required when persistence.durableReplicas is greater than 0",
            "mesh.tls.secretName is required",
            "\"maximum\":65535",
            "\"shortNames\":[\"sdb\"]",
            "\"name\":\"Members\"",
            "\"name\":\"Ready\"",
            "\"status\":{}",
        ] {
            assert!(crd.contains(needle), "CRD lacks {needle}");
        }
    }
}
