//! Mutual TLS for the mesh. Every replica presents a certificate signed by the database's CA and
//! accepts only peers that do the same. Peer addresses come and go (pod IPs), so the server's
//! certificate is checked against the CA but not against the address dialled.

use std::path::Path;
use std::sync::Arc;

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
pub struct MeshTls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

impl MeshTls {
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> std::io::Result<MeshTls> {
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
        Ok(MeshTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}
