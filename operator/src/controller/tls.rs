//! Mesh certificates of a SyncedDatabase in mode `Auto`: a CA per database (its key never
//! leaves the CA Secret) and one member certificate that every member mounts. Replicas accept a
//! peer whose certificate chains to the database CA, so the CA is what makes a pod a member.
//!
//! The member certificate is reissued when a third of its lifetime is left or when the CA
//! changed; a new CA is added to the trust bundle next to the old one until the old expires,
//! so members started before and after a rotation keep trusting each other.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};

use crate::crd::SyncedDatabase;
use crate::pki::{self, CertPair};

use super::{resources, Error, FIELD_MANAGER};

pub(super) fn text(secret: &Secret, key: &str) -> Option<String> {
    String::from_utf8(secret.data.as_ref()?.get(key)?.0.clone()).ok()
}

pub(super) fn secret(db: &SyncedDatabase, name: String, type_: &str, data: BTreeMap<&str, String>) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            namespace: db.metadata.namespace.clone(),
            labels: Some(resources::labels(db)),
            owner_references: Some(vec![db.controller_owner_ref(&()).expect("a stored object has a uid")]),
            ..Default::default()
        },
        type_: Some(type_.into()),
        data: Some(data.into_iter().map(|(k, v)| (k.to_string(), ByteString(v.into_bytes()))).collect()),
        ..Default::default()
    }
}

/// What changed, for Events.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TlsOutcome {
    pub ca_issued: bool,
    pub member_issued: bool,
}

/// Makes sure the CA and member Secrets exist and are current.
pub async fn ensure_mesh_tls(api: &Api<Secret>, db: &SyncedDatabase) -> Result<TlsOutcome, Error> {
    let now = pki::now_unix();
    let mut outcome = TlsOutcome::default();
    let namespace = db.metadata.namespace.clone().unwrap_or_default();
    let ca_name = db.ca_secret_name();
    let existing_ca = api.get_opt(&ca_name).await?;
    let current_ca = existing_ca
        .as_ref()
        .and_then(|s| Some(CertPair { cert_pem: text(s, "ca.crt")?, key_pem: text(s, "ca.key")? }));
    let ca = match current_ca {
        Some(ca) if !pki::needs_renewal(&ca.cert_pem, now) => ca,
        previous => {
            let ca = pki::generate_ca(
                &format!("syncmesh {} CA", db.metadata.name.as_deref().unwrap_or_default()),
                pki::CA_VALIDITY,
            )?;
            let mut data = BTreeMap::from([("ca.crt", ca.cert_pem.clone()), ("ca.key", ca.key_pem.clone())]);
            if let Some(old) =
                previous.filter(|old| pki::validity(&old.cert_pem).is_ok_and(|(_, end)| end > now))
            {
                data.insert("previous-ca.crt", old.cert_pem);
            }
            apply(api, secret(db, ca_name.clone(), "Opaque", data)).await?;
            outcome.ca_issued = true;
            ca
        }
    };
    // Trust bundle: the current CA, and the previous one while it is still valid.
    let previous_ca = api.get_opt(&ca_name).await?.and_then(|s| text(&s, "previous-ca.crt"));
    let bundle = match &previous_ca {
        Some(prev) if pki::validity(prev).is_ok_and(|(_, end)| end > now) => {
            format!("{}{}", ca.cert_pem, prev)
        }
        _ => ca.cert_pem.clone(),
    };

    let member_name = db.member_tls_secret_name();
    let member = api.get_opt(&member_name).await?;
    let current_leaf = member.as_ref().and_then(|s| text(s, "tls.crt"));
    let current_bundle = member.as_ref().and_then(|s| text(s, "ca.crt"));
    let leaf_ok = current_leaf
        .as_deref()
        .is_some_and(|leaf| !pki::needs_renewal(leaf, now) && pki::signed_by(leaf, &ca.cert_pem));
    if !leaf_ok || current_bundle.as_deref() != Some(bundle.as_str()) {
        let (cert, key) = match (leaf_ok, member.as_ref()) {
            (true, Some(m)) => {
                (current_leaf.clone().unwrap_or_default(), text(m, "tls.key").unwrap_or_default())
            }
            _ => {
                let service = db.mesh_dns();
                let names = vec![service.clone(), format!("*.{service}"), format!("{service}.cluster.local")];
                let leaf = pki::issue_leaf(
                    &ca,
                    &format!("{}-member", db.metadata.name.as_deref().unwrap_or_default()),
                    &names,
                    pki::LEAF_VALIDITY,
                )?;
                outcome.member_issued = true;
                (leaf.cert_pem, leaf.key_pem)
            }
        };
        crate::metrics::METRICS.record_certificate(&namespace, &member_name, "tls", &cert);
        let data = BTreeMap::from([("ca.crt", bundle), ("tls.crt", cert), ("tls.key", key)]);
        apply(api, secret(db, member_name, "kubernetes.io/tls", data)).await?;
    } else if let Some(leaf) = &current_leaf {
        crate::metrics::METRICS.record_certificate(&namespace, &member_name, "tls", leaf);
    }
    crate::metrics::METRICS.record_certificate(&namespace, &ca_name, "ca", &ca.cert_pem);
    Ok(outcome)
}

/// Records the expiry of a Secret's `tls.crt` that the operator does not issue (mode
/// `CertManager`), so that the certificate alerts cover it too.
pub async fn observe_external(api: &Api<Secret>, db: &SyncedDatabase) -> Result<(), Error> {
    let namespace = db.metadata.namespace.clone().unwrap_or_default();
    let name = db.member_tls_secret_name();
    match api.get_opt(&name).await?.and_then(|s| text(&s, "tls.crt")) {
        Some(cert) => crate::metrics::METRICS.record_certificate(&namespace, &name, "tls", &cert),
        None => crate::metrics::METRICS.forget_certificates(&namespace, &name),
    }
    Ok(())
}

async fn apply(api: &Api<Secret>, secret: Secret) -> Result<(), Error> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&secret)).await?;
    Ok(())
}
