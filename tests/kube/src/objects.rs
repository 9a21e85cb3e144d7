//! Typed objects the tests create, built from k8s-openapi's structs and the operator's own
//! SyncedDatabase types (a wrong field does not compile), and applied server-side.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use syncmesh_operator::crd::{SyncedDatabase, SyncedDatabaseSpec};

use crate::Outcome;

/// The field manager of everything the tests apply.
pub const MANAGER: &str = "syncmesh-tests";

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn meta(name: &str, labels_: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: if labels_.is_empty() { None } else { Some(labels(labels_)) },
        ..Default::default()
    }
}

pub fn container(name: &str, image: &str) -> Container {
    Container { name: name.into(), image: Some(image.into()), ..Default::default() }
}

pub fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

pub fn database(name: &str, spec: SyncedDatabaseSpec) -> SyncedDatabase {
    SyncedDatabase::new(name, spec)
}

/// A bare pod with one container.
pub fn pod(name: &str, labels_: &[(&str, &str)], image: &str) -> Pod {
    Pod {
        metadata: meta(name, labels_),
        spec: Some(PodSpec { containers: vec![container("app", image)], ..Default::default() }),
        ..Default::default()
    }
}

/// A Deployment whose pods carry `labels_` (its selector is `app: NAME`).
pub fn deployment(name: &str, replicas: i32, labels_: &[(&str, &str)], spec: PodSpec) -> Deployment {
    let mut all = vec![("app", name)];
    all.extend_from_slice(labels_);
    Deployment {
        metadata: meta(name, &[]),
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(labels(&[("app", name)])), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels(&all)), ..Default::default() }),
                spec: Some(spec),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Applies `object` server-side (field manager `syncmesh-tests`, conflicts forced).
pub async fn apply<K>(api: &Api<K>, object: &K) -> Outcome<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let dt = K::DynamicType::default();
    let mut value = serde_json::to_value(object)?;
    value["apiVersion"] = K::api_version(&dt).into();
    value["kind"] = K::kind(&dt).into();
    let name = object.meta().name.clone().unwrap_or_default();
    Ok(api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&value)).await?)
}
