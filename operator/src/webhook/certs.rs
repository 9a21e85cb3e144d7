//! The webhook's serving certificate: kept in a Secret that every operator instance shares,
//! renewed before it expires, served without a restart, and trusted by the API server through
//! the MutatingWebhookConfiguration's `caBundle`, which the operator keeps current.
//!
//! Instances may race to create or renew the Secret; writes carry the `resourceVersion` they
//! read, so exactly one wins and the others adopt its result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::RwLock;
use tracing::{info, warn};

use crate::config::Config;
use crate::pki::{self, CertPair};

pub const FIELD_MANAGER: &str = "syncmesh-operator";

/// The names the serving certificate is valid for: the Service's DNS names, plus extras.
pub fn serving_names(config: &Config) -> Vec<String> {
    let (svc, ns) = (&config.webhook_service, &config.namespace);
    let mut names =
        vec![format!("{svc}.{ns}.svc"), format!("{svc}.{ns}.svc.cluster.local"), format!("{svc}.{ns}")];
    names.extend(config.webhook_extra_san.iter().filter(|s| !s.is_empty()).cloned());
    names
}

/// The webhook's CA and serving pair as stored in the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingCerts {
    pub ca: CertPair,
    pub serving: CertPair,
}

fn get(secret: &Secret, key: &str) -> Option<String> {
    let data = secret.data.as_ref()?;
    String::from_utf8(data.get(key)?.0.clone()).ok()
}

impl ServingCerts {
    fn from_secret(secret: &Secret) -> Option<Self> {
        Some(ServingCerts {
            ca: CertPair { cert_pem: get(secret, "ca.crt")?, key_pem: get(secret, "ca.key")? },
            serving: CertPair { cert_pem: get(secret, "tls.crt")?, key_pem: get(secret, "tls.key")? },
        })
    }

    fn data(&self) -> BTreeMap<String, ByteString> {
        [
            ("ca.crt", &self.ca.cert_pem),
            ("ca.key", &self.ca.key_pem),
            ("tls.crt", &self.serving.cert_pem),
            ("tls.key", &self.serving.key_pem),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
        .collect()
    }

    /// What has to be replaced: `None` if nothing, else the new set.
    fn renewed(
        current: Option<&ServingCerts>,
        names: &[String],
    ) -> Result<Option<ServingCerts>, pki::PkiError> {
        let now = pki::now_unix();
        let ca = match current {
            Some(c) if !pki::needs_renewal(&c.ca.cert_pem, now) => c.ca.clone(),
            _ => pki::generate_ca("syncmesh-webhook-ca", pki::CA_VALIDITY)?,
        };
        if let Some(c) = current {
            let serving_ok = c.ca == ca
                && !pki::needs_renewal(&c.serving.cert_pem, now)
                && pki::signed_by(&c.serving.cert_pem, &ca.cert_pem)
                && covers(&c.serving.cert_pem, names);
            if serving_ok {
                return Ok(None);
            }
        }
        let serving = pki::issue_leaf(&ca, &names[0], names, pki::LEAF_VALIDITY)?;
        Ok(Some(ServingCerts { ca, serving }))
    }
}

/// Whether a certificate names every one of `names` (so a new `--webhook-extra-san` reissues it).
fn covers(cert_pem: &str, names: &[String]) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else { return false };
    let Ok(cert) = pem.parse_x509() else { return false };
    let Ok(Some(san)) = cert.subject_alternative_name() else { return false };
    let present: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    names.iter().all(|n| present.contains(n))
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("the serving certificate is unusable: {0}")]
    Tls(String),
    #[error("Secret {0} does not exist (the Helm chart creates it)")]
    MissingSecret(String),
}

/// Makes sure the Secret holds a valid CA and serving certificate; returns them.
pub async fn ensure_secret(client: &Client, config: &Config) -> Result<ServingCerts, CertError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let names = serving_names(config);
    loop {
        let existing = api.get_opt(&config.webhook_secret).await?;
        let current = existing.as_ref().and_then(ServingCerts::from_secret);
        let Some(next) = ServingCerts::renewed(current.as_ref(), &names)? else {
            return Ok(current.expect("nothing to renew means a current set"));
        };
        let result = match existing {
            None if !config.create_missing => {
                return Err(CertError::MissingSecret(config.webhook_secret.clone()))
            }
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(config.webhook_secret.clone()),
                        labels: Some(
                            [("app.kubernetes.io/managed-by".to_string(), FIELD_MANAGER.to_string())].into(),
                        ),
                        ..Default::default()
                    },
                    type_: Some("Opaque".into()),
                    data: Some(next.data()),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &secret).await.map(|_| ())
            }
            Some(mut secret) => {
                secret.data = Some(next.data());
                api.replace(&config.webhook_secret, &PostParams::default(), &secret).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => {
                info!(secret = %config.webhook_secret, names = ?names, "issued the webhook serving certificate");
                return Ok(next);
            }
            // Another instance wrote first: read again and adopt its certificate.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets `caBundle` of every webhook in the configuration (server-side apply, own field manager).
/// A missing configuration is not an error: it is installed by the chart (or a test) and the
/// next refresh will find it.
pub async fn sync_ca_bundle(client: &Client, config: &Config, ca_pem: &str) -> Result<bool, CertError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let Some(current) = api.get_opt(&config.webhook_configuration).await? else {
        return Ok(false);
    };
    let bundle = ByteString(ca_pem.as_bytes().to_vec());
    let webhooks = current.webhooks.unwrap_or_default();
    if webhooks.iter().all(|w| w.client_config.ca_bundle.as_ref() == Some(&bundle)) {
        return Ok(true);
    }
    let entries: Vec<serde_json::Value> = webhooks
        .iter()
        .map(|w| serde_json::json!({"name": w.name, "clientConfig": {"caBundle": bundle}}))
        .collect();
    let apply = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": config.webhook_configuration},
        "webhooks": entries,
    });
    api.patch(
        &config.webhook_configuration,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&apply),
    )
    .await?;
    info!(configuration = %config.webhook_configuration, "updated the webhook caBundle");
    Ok(true)
}

/// Hands rustls whatever serving certificate is current; swapped in place on renewal.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl CertResolver {
    pub fn new() -> Arc<Self> {
        Arc::new(CertResolver { current: RwLock::new(None) })
    }

    pub fn has_cert(&self) -> bool {
        self.current.read().expect("lock").is_some()
    }

    /// Installs a PEM certificate chain and key.
    pub fn install(&self, pair: &CertPair) -> Result<(), CertError> {
        let certs: Vec<_> = rustls_pemfile::certs(&mut pair.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| CertError::Tls(e.to_string()))?;
        let key = rustls_pemfile::private_key(&mut pair.key_pem.as_bytes())
            .map_err(|e| CertError::Tls(e.to_string()))?
            .ok_or_else(|| CertError::Tls("no private key".into()))?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| CertError::Tls(e.to_string()))?;
        *self.current.write().expect("lock") = Some(Arc::new(CertifiedKey::new(certs, signing)));
        Ok(())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().expect("lock").clone()
    }
}

/// The rustls configuration of the webhook server.
pub fn server_config(resolver: Arc<CertResolver>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Keeps the certificate and caBundle current: at start, then every `period`. Returns after the
/// first round so the caller can report readiness.
pub async fn refresh_once(
    client: &Client,
    config: &Config,
    resolver: &CertResolver,
) -> Result<(), CertError> {
    let certs = ensure_secret(client, config).await?;
    resolver.install(&certs.serving)?;
    let metrics = &crate::metrics::METRICS;
    metrics.record_certificate(&config.namespace, &config.webhook_secret, "ca", &certs.ca.cert_pem);
    metrics.record_certificate(&config.namespace, &config.webhook_secret, "tls", &certs.serving.cert_pem);
    if !sync_ca_bundle(client, config, &certs.ca.cert_pem).await? {
        warn!(configuration = %config.webhook_configuration, "MutatingWebhookConfiguration not found; will retry");
    }
    Ok(())
}

pub async fn refresh_loop(client: Client, config: Config, resolver: Arc<CertResolver>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = refresh_once(&client, &config, &resolver).await {
            warn!(error = %e, "could not refresh the webhook certificate");
        }
    }
}
