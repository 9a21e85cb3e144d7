//! The objects a SyncedDatabase owns, as pure functions of it: what server-side apply sends.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Resource;
use serde_json::json;

use crate::crd::{SyncedDatabase, MEMBER_LABEL};
use crate::webhook::patch::{self, Defaults, DATA_VOLUME, REPLICA_UID, TLS_VOLUME};

/// Label of the durable replicas' pods (besides the member label).
pub const ROLE_LABEL: &str = "syncmesh.io/role";
/// Where a durable replica keeps its data (the PersistentVolumeClaim's mount).
pub const DURABLE_DATA_DIR: &str = "/data";

/// The label selector of every object the operator owns (see [`labels`]).
pub const OWNED_SELECTOR: &str = "app.kubernetes.io/managed-by=syncmesh-operator";

/// Labels every owned object carries.
pub fn labels(db: &SyncedDatabase) -> BTreeMap<String, String> {
    let (managed_by, operator) = OWNED_SELECTOR.split_once('=').expect("a key=value selector");
    [
        ("app.kubernetes.io/name", "syncmesh"),
        ("app.kubernetes.io/instance", db.metadata.name.as_deref().unwrap_or_default()),
        (managed_by, operator),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn metadata(db: &SyncedDatabase, name: String) -> serde_json::Value {
    json!({
        "name": name,
        "namespace": db.metadata.namespace,
        "labels": labels(db),
        "ownerReferences": [db.controller_owner_ref(&()).expect("a stored object has a uid")],
    })
}

/// The headless Service through which members find each other: its DNS name resolves to every
/// member's IP, ready or not (a starting member must be found to bootstrap from its peers).
pub fn mesh_service(db: &SyncedDatabase) -> Service {
    let name = db.metadata.name.clone().unwrap_or_default();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(db, db.mesh_service_name()),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": {MEMBER_LABEL: name},
            "ports": [{"name": "mesh", "port": db.spec.mesh.port, "targetPort": db.spec.mesh.port, "protocol": "TCP"}]
        }
    }))
    .expect("a valid Service")
}

fn durable_selector(db: &SyncedDatabase) -> serde_json::Value {
    json!({MEMBER_LABEL: db.metadata.name, ROLE_LABEL: "durable"})
}

/// The durable replicas: a StatefulSet whose pods run only the replica, with a volume each.
/// Deleting it (the SyncedDatabase is deleted, or `durableReplicas` goes to 0) deletes the
/// volumes; scaling down keeps them for a later scale-up.
pub fn durable_statefulset(db: &SyncedDatabase, defaults: &Defaults) -> StatefulSet {
    let persistence = &db.spec.persistence;
    let mut container = patch::replica_container_base(db, defaults, DURABLE_DATA_DIR);
    // In a pod of its own the replica need not wait for clients: no startup probe beyond readiness.
    container.as_object_mut().expect("object").remove("startupProbe");
    if persistence.durable_replicas > 1 {
        // Another durable replica holds the data: a damaged volume is set aside (kept) and
        // rebuilt from the mesh rather than keeping this replica down. A lone durable replica
        // stops on damage instead, for a person to run `check-data` (docs/durability.md).
        container["env"]
            .as_array_mut()
            .expect("env list")
            .push(json!({"name": "SYNCMESH_RECOVER_FROM_PEERS", "value": "true"}));
    }
    let mut claim_spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": persistence.size.clone().unwrap_or_else(|| "1Gi".into())}}
    });
    if let Some(class) = &persistence.storage_class_name {
        claim_spec["storageClassName"] = json!(class);
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(db, db.durable_name()),
        "spec": {
            "serviceName": db.mesh_service_name(),
            "replicas": persistence.durable_replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": durable_selector(db)},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": durable_selector(db)},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": true,
                        "fsGroup": REPLICA_UID,
                        "seccompProfile": {"type": "RuntimeDefault"}
                    },
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [{"name": TLS_VOLUME, "secret": {"secretName": db.member_tls_secret_name(), "defaultMode": 0o444}}]
                }
            },
            "volumeClaimTemplates": [{"metadata": {"name": DATA_VOLUME}, "spec": claim_spec}]
        }
    }))
    .expect("a valid StatefulSet")
}

/// At most one durable replica down at a time for voluntary disruptions (node drains).
pub fn durable_pdb(db: &SyncedDatabase) -> PodDisruptionBudget {
    serde_json::from_value(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(db, db.durable_name()),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": durable_selector(db)}}
    }))
    .expect("a valid PodDisruptionBudget")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SyncedDatabaseSpec;

    fn db(spec: serde_json::Value) -> SyncedDatabase {
        let mut db =
            SyncedDatabase::new("orders", serde_json::from_value::<SyncedDatabaseSpec>(spec).unwrap());
        db.metadata.namespace = Some("shop".into());
        db.metadata.uid = Some("0000-1111".into());
        db
    }

    #[test]
    fn the_mesh_service_is_headless_and_publishes_unready_members() {
        let svc = mesh_service(&db(json!({})));
        let spec = svc.spec.unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("orders-mesh"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.selector.unwrap()[MEMBER_LABEL], "orders");
        assert_eq!(spec.ports.unwrap()[0].port, 7379);
        assert_eq!(svc.metadata.owner_references.unwrap()[0].controller, Some(true));
    }

    #[test]
    fn the_durable_statefulset_has_volumes_and_the_replica_settings() {
        let sts = durable_statefulset(
            &db(
                json!({"persistence": {"durableReplicas": 2, "size": "5Gi", "storageClassName": "fast", "appendfsync": "always"}}),
            ),
            &Defaults { replica_image: "img:1".into() },
        );
        let spec = sts.spec;
        assert_eq!(spec.replicas, Some(2));
        let claim = &spec.volume_claim_templates.unwrap()[0];
        assert_eq!(claim.spec.as_ref().unwrap().storage_class_name.as_deref(), Some("fast"));
        let container = &spec.template.spec.unwrap().containers[0];
        assert_eq!(container.image.as_deref(), Some("img:1"));
        let env = container.env.as_ref().unwrap();
        let value = |n: &str| env.iter().find(|e| e.name == n).and_then(|e| e.value.clone());
        assert_eq!(value("SYNCMESH_APPENDFSYNC").as_deref(), Some("always"));
        assert_eq!(value("SYNCMESH_DATA_DIR").as_deref(), Some("/data"));
        assert!(container.startup_probe.is_none());
    }

    /// With more than one durable replica a damaged volume is rebuilt from the mesh; a lone
    /// durable replica keeps stopping on damage (nothing to rebuild from that keeps the data).
    #[test]
    fn durable_replicas_rebuild_from_peers_only_when_another_durable_replica_exists() {
        let recover = |n: i32| {
            let sts = durable_statefulset(
                &db(json!({"persistence": {"durableReplicas": n}})),
                &Defaults { replica_image: "img:1".into() },
            );
            let env = sts.spec.template.spec.unwrap().containers[0].env.clone().unwrap();
            let found: Vec<_> = env.iter().filter(|e| e.name == "SYNCMESH_RECOVER_FROM_PEERS").collect();
            assert!(found.len() <= 1, "{found:?}");
            found.first().and_then(|e| e.value.clone())
        };
        assert_eq!(recover(1), None);
        assert_eq!(recover(2).as_deref(), Some("true"));
        assert_eq!(recover(3).as_deref(), Some("true"));
    }
}
