//! syncmesh-operator: reconciles `SyncedDatabase` resources and injects the replica sidecar.
//!
//! - [`crd`]: the custom resource types (the CRD is generated from them by `crdgen`).
//! - [`controller`]: the reconciler (mesh Service, certificates, durable StatefulSet, status).
//! - [`webhook`]: the mutating admission webhook that injects the replica into pods.
//! - [`pki`]: the certificates the operator issues (mesh CA per database, webhook serving).
//! - [`leader`]: leader election with a `coordination.k8s.io` Lease.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz`.

pub mod admin;
pub mod config;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod pki;
pub mod webhook;
