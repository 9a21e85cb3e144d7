//! The admin token of a SyncedDatabase. A member's `/status` (its id, peers, version vector) answers
//! other hosts only with this token; the operator reads it to ask the members how they see the
//! mesh. It is made once, kept while the database exists, and owned by it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::Api;
use ring::rand::{SecureRandom, SystemRandom};

use super::tls::{secret, text};
use super::Error;
use crate::crd::SyncedDatabase;
use crate::webhook::patch::ADMIN_TOKEN_KEY;

/// The token, creating its Secret if there is none.
pub async fn ensure_admin_token(api: &Api<Secret>, db: &SyncedDatabase) -> Result<String, Error> {
    let name = db.admin_secret_name();
    if let Some(token) = api.get_opt(&name).await?.and_then(|s| text(&s, ADMIN_TOKEN_KEY)) {
        return Ok(token);
    }
    let token = new_token();
    let object = secret(db, name.clone(), "Opaque", BTreeMap::from([(ADMIN_TOKEN_KEY, token.clone())]));
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(token),
        // Made meanwhile (another reconcile): use that one.
        Err(kube::Error::Api(e)) if e.code == 409 => api
            .get_opt(&name)
            .await?
            .and_then(|s| text(&s, ADMIN_TOKEN_KEY))
            .ok_or_else(|| Error::Invalid(format!("Secret {name} has no key {ADMIN_TOKEN_KEY}"))),
        Err(e) => Err(e.into()),
    }
}

/// 32 random bytes, hex.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).expect("the operating system's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_long_and_fresh() {
        let (a, b) = (super::new_token(), super::new_token());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
