//! Mutual TLS for the mesh. Every replica presents a certificate signed by the database's CA and
//! accepts only peers that do the same. Peer addresses come and go (pod IPs), so the server's
//! certificate is checked against the CA but not against the address dialled.
//!
//! The files are watched: when the operator renews the member certificate (or rotates the CA)
//! and the kubelet updates the mounted Secret, new connections use the new files; connections
//! already open keep theirs. Files that fail to load keep the previous configuration in use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use tracing::{info, warn};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> std::io::Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).map_err(|e| io_err(format!("reading {}: {e}", path.display())))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &data[..]).collect();
    let certs = certs.map_err(|e| io_err(format!("parsing {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(io_err(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> std::io::Result<PrivateKeyDer<'static>> {
    let data = std::fs::read(path).map_err(|e| io_err(format!("reading {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut &data[..])
        .map_err(|e| io_err(format!("parsing {}: {e}", path.display())))?
        .ok_or_else(|| io_err(format!("{} holds no PEM private key", path.display())))
}

fn io_err(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

/// Checks the server's chain against the mesh CA, but not its name.
#[derive(Debug)]
struct CaOnly {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for CaOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                ..
            })) => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Both ends of mutual TLS, built from the CA, certificate and key files.
#[derive(Clone)]
struct Ends {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

/// Mutual TLS of the mesh, reloaded when its files change.
pub struct MeshTls {
    files: [PathBuf; 3],
    ends: RwLock<(Ends, Option<SystemTime>)>,
}

/// The newest modification time among the files (a Secret volume swaps a symlink: the
/// metadata followed through it changes).
fn newest_mtime(files: &[PathBuf; 3]) -> Option<SystemTime> {
    files.iter().filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()).max()
}

impl MeshTls {
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> std::io::Result<MeshTls> {
        let files = [ca.to_path_buf(), cert.to_path_buf(), key.to_path_buf()];
        let mtime = newest_mtime(&files);
        let ends = Self::build(ca, cert, key)?;
        Ok(MeshTls { files, ends: RwLock::new((ends, mtime)) })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.ends.read().0.acceptor.clone()
    }

    pub fn connector(&self) -> TlsConnector {
        self.ends.read().0.connector.clone()
    }

    /// Reloads the files if they changed since the last load; returns whether it did.
    pub fn reload_if_changed(&self) -> bool {
        let mtime = newest_mtime(&self.files);
        if mtime.is_none() || mtime == self.ends.read().1 {
            return false;
        }
        let [ca, cert, key] = &self.files;
        match Self::build(ca, cert, key) {
            Ok(ends) => {
                *self.ends.write() = (ends, mtime);
                info!(cert = %cert.display(), "mesh TLS files changed: new connections use them");
                true
            }
            Err(e) => {
                // Half-written files during an update: keep the working configuration, try again.
                warn!(error = %e, "mesh TLS files changed but do not load; keeping the previous ones");
                false
            }
        }
    }

    /// Checks the files every `period`, forever.
    pub async fn watch(self: Arc<Self>, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            self.reload_if_changed();
        }
    }

    fn build(ca: &Path, cert: &Path, key: &Path) -> std::io::Result<Ends> {
        let mut roots = RootCertStore::empty();
        for c in load_certs(ca)? {
            roots.add(c).map_err(|e| io_err(format!("CA certificate {}: {e}", ca.display())))?;
        }
        let roots = Arc::new(roots);
        let chain = load_certs(cert)?;
        let key_der = load_key(key)?;
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| io_err(format!("client verifier: {e}")))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| io_err(e.to_string()))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key_der.clone_key())
            .map_err(|e| io_err(format!("certificate {} and key {}: {e}", cert.display(), key.display())))?;
        let server_verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| io_err(format!("server verifier: {e}")))?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| io_err(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaOnly { inner: server_verifier }))
            .with_client_auth_cert(chain, key_der)
            .map_err(|e| io_err(format!("client certificate: {e}")))?;
        Ok(Ends {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}
