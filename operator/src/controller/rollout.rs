//! `rolloutAfterUpgrade: Restart`: after the replica image the operator injects has changed,
//! restart the workloads whose pods still run another one, as `kubectl rollout restart` does,
//! by changing their pod template. The new pods pass through the webhook and get the new
//! image; the workload's own update strategy (maxUnavailable, PodDisruptionBudgets) paces the
//! roll, so the mesh keeps enough members while it happens.
//!
//! The template annotation `syncmesh.io/replica-image` carries the image the workload was
//! restarted for: each workload is restarted once per image, never again while its pods roll.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::{Error, FIELD_MANAGER};
use crate::crd::REPLICA_IMAGE_ANNOTATION;

/// A workload that owns pods and can be restarted through its pod template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    Deployment(String),
    StatefulSet(String),
    DaemonSet(String),
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Workload::Deployment(n) => write!(f, "deployment/{n}"),
            Workload::StatefulSet(n) => write!(f, "statefulset/{n}"),
            Workload::DaemonSet(n) => write!(f, "daemonset/{n}"),
        }
    }
}

/// What a restart round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Workloads whose template names the wanted image (restarted now or before).
    pub restarted: Vec<Workload>,
    /// Of those, the ones restarted in this round.
    pub newly_restarted: Vec<Workload>,
    /// Outdated pods that no workload owns (bare pods, Jobs): they must be recreated by hand.
    pub unowned: Vec<String>,
}

fn controller_of(meta: &ObjectMeta) -> Option<(String, String)> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.clone(), o.name.clone()))
}

/// Finds the workloads that own `pods` (through their ReplicaSet for Deployments).
async fn owners(
    client: &Client,
    namespace: &str,
    pods: &[&Pod],
) -> Result<(BTreeSet<Workload>, Vec<String>), Error> {
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let mut workloads = BTreeSet::new();
    let mut unowned = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let workload = match controller_of(&pod.metadata) {
            Some((kind, owner)) if kind == "ReplicaSet" => {
                let rs = replicasets.get_opt(&owner).await?;
                match rs.as_ref().and_then(|rs| controller_of(&rs.metadata)) {
                    Some((kind, deployment)) if kind == "Deployment" => {
                        Some(Workload::Deployment(deployment))
                    }
                    _ => None,
                }
            }
            Some((kind, owner)) if kind == "StatefulSet" => Some(Workload::StatefulSet(owner)),
            Some((kind, owner)) if kind == "DaemonSet" => Some(Workload::DaemonSet(owner)),
            _ => None,
        };
        match workload {
            Some(w) => {
                workloads.insert(w);
            }
            None => unowned.push(name),
        }
    }
    Ok((workloads, unowned))
}

/// The merge patch that restarts a workload onto `image`.
pub fn restart_patch(image: &str) -> serde_json::Value {
    json!({"spec": {"template": {"metadata": {"annotations": {REPLICA_IMAGE_ANNOTATION: image}}}}})
}

/// Sets the restart annotation on one workload's pod template unless it names `image` already;
/// returns whether it did.
async fn restart<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    image: &str,
    template: impl Fn(&K) -> Option<&ObjectMeta>,
) -> Result<bool, Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let current = api.get(name).await?;
    let annotated = template(&current)
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(REPLICA_IMAGE_ANNOTATION))
        .is_some_and(|v| v == image);
    if annotated {
        return Ok(false);
    }
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    api.patch(name, &params, &Patch::Merge(restart_patch(image))).await?;
    Ok(true)
}

/// Restarts (once per image) the workloads that own `outdated` pods.
pub async fn restart_outdated(
    client: &Client,
    namespace: &str,
    outdated: &[&Pod],
    image: &str,
) -> Result<Rollout, Error> {
    let (workloads, unowned) = owners(client, namespace, outdated).await?;
    let mut rollout = Rollout { unowned, ..Default::default() };
    for workload in workloads {
        let restarted = match &workload {
            Workload::Deployment(n) => {
                restart::<Deployment>(client, namespace, n, image, |d| d.spec.template.metadata.as_ref())
                    .await?
            }
            Workload::StatefulSet(n) => {
                restart::<StatefulSet>(client, namespace, n, image, |s| s.spec.template.metadata.as_ref())
                    .await?
            }
            Workload::DaemonSet(n) => {
                restart::<DaemonSet>(client, namespace, n, image, |d| d.spec.template.metadata.as_ref())
                    .await?
            }
        };
        if restarted {
            rollout.newly_restarted.push(workload.clone());
        }
        rollout.restarted.push(workload);
    }
    Ok(rollout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_only_sets_the_template_annotation() {
        assert_eq!(
            restart_patch("r:2"),
            json!({"spec": {"template": {"metadata": {"annotations": {"syncmesh.io/replica-image": "r:2"}}}}})
        );
    }

    #[test]
    fn workloads_read_as_kubectl_names_them() {
        assert_eq!(Workload::Deployment("svc-a".into()).to_string(), "deployment/svc-a");
        assert_eq!(Workload::StatefulSet("db".into()).to_string(), "statefulset/db");
    }
}
