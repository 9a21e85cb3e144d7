//! Proof of membership, the first step of every mesh connection (see `docs/durability.md`,
//! "What a peer can and cannot do").
//!
//! Nothing about the database (its name, this replica's id, its version vector, any key) is sent
//! before the other side has proven that it belongs to the same database. Each side sends a
//! [`Greeting`] with its protocol version and a fresh random nonce (the dialer first; the acceptor
//! only once it accepts the dialer's protocol, else it sends a `Refused` naming both); each then
//! answers the other's nonce with an HMAC-SHA256 keyed by the database name and the mesh secret
//! (`--mesh-secret`, empty without one). A side sends its `Hello` only after the other's proof
//! checked out.
//!
//! - With TLS, the certificate already proves that the peer holds a certificate of the database's
//!   CA; the proof adds that it was configured for the same database.
//! - Without TLS (`--mesh-insecure`) on a non-loopback address, the mesh secret is what keeps
//!   outsiders out: a process that does not know it learns nothing and can send nothing.
//! - The proofs are bound to both nonces and to the side (dialer or acceptor), so a proof cannot
//!   be replayed on another connection nor reflected back to its sender.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes that open every greeting (and that the first releases put in their `Hello`).
pub const MAGIC: &[u8; 8] = b"SYNCMESH";
pub const NONCE_LEN: usize = 32;
const GREETING_LEN: usize = MAGIC.len() + 4 + NONCE_LEN;

/// The first frame each side sends: the protocol version it speaks and a fresh challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    pub protocol: u32,
    pub nonce: [u8; NONCE_LEN],
}

/// What the first frame from the other side turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstFrame {
    Greeting(Greeting),
    /// The `Hello` of a release that predates the membership proof (mesh protocol 1).
    LegacyHello,
    NotSyncMesh,
}

impl Greeting {
    pub fn new(protocol: u32) -> Greeting {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).expect("the operating system's random source works");
        Greeting { protocol, nonce }
    }

    /// The frame body: `SYNCMESH`, the protocol version (u32, big endian), the nonce.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GREETING_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.protocol.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out
    }

    pub fn decode(body: &[u8]) -> FirstFrame {
        if body.len() == GREETING_LEN && body.starts_with(MAGIC) {
            let protocol = u32::from_be_bytes(body[8..12].try_into().expect("4 bytes"));
            let nonce = body[12..].try_into().expect("32 bytes");
            return FirstFrame::Greeting(Greeting { protocol, nonce });
        }
        // Protocol 1 opened with a bincode `Message::Hello`: variant 0, then the magic as a
        // length-prefixed string.
        if body.len() > 10 && body[0] == 0 && body[1] == MAGIC.len() as u8 && &body[2..10] == MAGIC {
            return FirstFrame::LegacyHello;
        }
        FirstFrame::NotSyncMesh
    }
}

/// Which end of the connection a proof comes from (so a proof cannot be reflected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Dialer,
    Acceptor,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Dialer => b"dialer",
            Side::Acceptor => b"acceptor",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Dialer => Side::Acceptor,
            Side::Acceptor => Side::Dialer,
        }
    }
}

/// The key every member of one database (with one mesh secret) derives alike.
pub struct MembershipKey(hmac::Key);

impl MembershipKey {
    pub fn new(database: &str, secret: Option<&str>) -> MembershipKey {
        let outer = hmac::Key::new(hmac::HMAC_SHA256, secret.unwrap_or_default().as_bytes());
        let mut ctx = hmac::Context::with_key(&outer);
        ctx.update(b"syncmesh mesh membership v2\0");
        ctx.update(database.as_bytes());
        MembershipKey(hmac::Key::new(hmac::HMAC_SHA256, ctx.sign().as_ref()))
    }

    fn message(side: Side, challenge: &[u8; NONCE_LEN], own: &[u8; NONCE_LEN]) -> Vec<u8> {
        let mut m = Vec::with_capacity(16 + 2 * NONCE_LEN);
        m.extend_from_slice(side.label());
        m.push(0);
        m.extend_from_slice(challenge);
        m.extend_from_slice(own);
        m
    }

    /// This side's answer to the other's `challenge` (its nonce); `own` is this side's nonce.
    pub fn prove(&self, side: Side, challenge: &[u8; NONCE_LEN], own: &[u8; NONCE_LEN]) -> Vec<u8> {
        hmac::sign(&self.0, &Self::message(side, challenge, own)).as_ref().to_vec()
    }

    /// Checks the other side's proof (in constant time): it answered `mine` (our nonce) as
    /// `side`, having sent `theirs`.
    pub fn verify(&self, side: Side, mine: &[u8; NONCE_LEN], theirs: &[u8; NONCE_LEN], proof: &[u8]) -> bool {
        hmac::verify(&self.0, &Self::message(side, mine, theirs), proof).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_round_trip_and_old_hellos_are_recognised() {
        let g = Greeting::new(2);
        assert_eq!(Greeting::decode(&g.encode()), FirstFrame::Greeting(g));
        assert_ne!(Greeting::new(2).nonce, g.nonce, "nonces are fresh");
        // What a protocol-1 replica sent first: bincode Message::Hello { magic: "SYNCMESH", .. }.
        let mut legacy = vec![0u8, 8];
        legacy.extend_from_slice(b"SYNCMESH");
        legacy.extend_from_slice(&[1, 7, b'o', b'r', b'd', b'e', b'r', b's', b'!']);
        assert_eq!(Greeting::decode(&legacy), FirstFrame::LegacyHello);
        assert_eq!(Greeting::decode(b"GET / HTTP/1.1\r\n"), FirstFrame::NotSyncMesh);
        assert_eq!(Greeting::decode(&[]), FirstFrame::NotSyncMesh);
    }

    #[test]
    fn a_proof_checks_out_only_for_the_same_database_secret_nonces_and_side() {
        let (a, b) = (Greeting::new(2).nonce, Greeting::new(2).nonce);
        let key = MembershipKey::new("orders", Some("s3cret"));
        // The dialer (nonce a) answers the acceptor's challenge b.
        let proof = key.prove(Side::Dialer, &b, &a);
        let same = MembershipKey::new("orders", Some("s3cret"));
        assert!(same.verify(Side::Dialer, &b, &a, &proof));
        assert!(!same.verify(Side::Acceptor, &b, &a, &proof), "a reflected proof is refused");
        assert!(!same.verify(Side::Dialer, &a, &b, &proof), "nonces are bound in order");
        assert!(!same.verify(Side::Dialer, &b, &Greeting::new(2).nonce, &proof), "no replay");
        assert!(!MembershipKey::new("payments", Some("s3cret")).verify(Side::Dialer, &b, &a, &proof));
        assert!(!MembershipKey::new("orders", Some("guess")).verify(Side::Dialer, &b, &a, &proof));
        assert!(!MembershipKey::new("orders", None).verify(Side::Dialer, &b, &a, &proof));
        assert!(!same.verify(Side::Dialer, &b, &a, &proof[..31]));
    }
}
