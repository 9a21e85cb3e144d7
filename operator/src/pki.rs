//! The certificates the operator issues, with rcgen (ECDSA P-256, PEM):
//!
//! - a mesh CA per SyncedDatabase (mode `Auto`) and the members' certificate signed by it;
//! - the webhook's CA and serving certificate.
//!
//! Every certificate is renewed when less than a third of its lifetime is left, so a renewal
//! has plenty of time to reach every consumer before the old one expires.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

/// Lifetime of a CA certificate.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of a leaf (member or serving) certificate.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("not a PEM certificate: {0}")]
    Parse(String),
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

fn params(common_name: &str, validity: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "SyncMesh");
    params.distinguished_name = dn;
    // Backdate a little: clocks in a cluster are never exactly equal.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + validity;
    params
}

/// A new self-signed CA.
pub fn generate_ca(common_name: &str, validity: Duration) -> Result<CertPair, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = params(common_name, validity);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key)?;
    Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// A leaf certificate signed by `ca`, usable as TLS server and client (mesh members are both),
/// valid for the given DNS names and IP addresses.
pub fn issue_leaf(
    ca: &CertPair,
    common_name: &str,
    names: &[String],
    validity: Duration,
) -> Result<CertPair, PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = params(common_name, validity);
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Validity window of the first certificate in a PEM bundle, as Unix seconds.
pub fn validity(cert_pem: &str) -> Result<(i64, i64), PkiError> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| PkiError::Parse(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| PkiError::Parse(e.to_string()))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// Whether a certificate should be replaced now: unparsable, not yet valid, or with less than
/// a third of its lifetime left.
pub fn needs_renewal(cert_pem: &str, now_unix: i64) -> bool {
    match validity(cert_pem) {
        Ok((not_before, not_after)) => {
            let lifetime = (not_after - not_before).max(1);
            now_unix < not_before || not_after - now_unix < lifetime / 3
        }
        Err(_) => true,
    }
}

/// Whether `leaf` was signed by `ca` (so a renewed CA forces new leaves).
pub fn signed_by(leaf_pem: &str, ca_pem: &str) -> bool {
    let parse = |pem: &str| x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok().map(|(_, p)| p);
    let (Some(leaf), Some(ca)) = (parse(leaf_pem), parse(ca_pem)) else { return false };
    let (Ok(leaf), Ok(ca)) = (leaf.parse_x509(), ca.parse_x509()) else { return false };
    leaf.verify_signature(Some(ca.public_key())).is_ok()
}

pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_is_signed_by_its_ca_and_not_by_another() {
        let ca = generate_ca("test-ca", CA_VALIDITY).unwrap();
        let other = generate_ca("other-ca", CA_VALIDITY).unwrap();
        let leaf =
            issue_leaf(&ca, "member", &["db-mesh.ns.svc".into(), "127.0.0.1".into()], LEAF_VALIDITY).unwrap();
        assert!(signed_by(&leaf.cert_pem, &ca.cert_pem));
        assert!(!signed_by(&leaf.cert_pem, &other.cert_pem));
    }

    #[test]
    fn renewal_is_due_in_the_last_third_of_the_lifetime() {
        let ca = generate_ca("test-ca", Duration::from_secs(90 * 24 * 3600)).unwrap();
        let (not_before, not_after) = validity(&ca.cert_pem).unwrap();
        assert!(!needs_renewal(&ca.cert_pem, now_unix()));
        assert!(needs_renewal(&ca.cert_pem, not_after - 10 * 24 * 3600));
        assert!(needs_renewal(&ca.cert_pem, not_before - 60));
        assert!(needs_renewal("garbage", now_unix()));
    }
}
