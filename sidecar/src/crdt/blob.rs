//! [`Blob`]: a byte string as stored. Short keys and values (≤ 16 bytes) live inline, without a
//! heap allocation. [`Value`]: a string value, shared without copies when it is large.
//!
//! It is a type of its own (not a bare `SmallVec`) so that it can deserialize safely: a length
//! prefix read from the network never decides an allocation before the bytes have arrived.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Blob(SmallVec<[u8; 16]>);

impl Blob {
    pub fn new() -> Blob {
        Blob(SmallVec::new())
    }

    pub fn from_slice(b: &[u8]) -> Blob {
        Blob(SmallVec::from_slice(b))
    }

    pub fn from_vec(v: Vec<u8>) -> Blob {
        Blob(SmallVec::from_vec(v))
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for Blob {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

struct BlobVisitor;

impl<'de> Visitor<'de> for BlobVisitor {
    type Value = Blob;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
        Ok(Blob::from_slice(v))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
        Ok(Blob::from_vec(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
        // Grow as bytes arrive; never trust the announced length.
        let mut v = SmallVec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        Ok(Blob(v))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        d.deserialize_byte_buf(BlobVisitor)
    }
}

/// Deserializes a `SmallVec` through a `Vec`, whose allocation serde bounds, instead of
/// `SmallVec`'s own impl, which allocates whatever length the input announces.
pub fn small_vec<'de, D, T, const N: usize>(d: D) -> Result<SmallVec<[T; N]>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
    [T; N]: smallvec::Array<Item = T>,
{
    Ok(SmallVec::from_vec(Vec::<T>::deserialize(d)?))
}

/// Values at least this long are shared rather than copied (the parser reads arguments this
/// long into buffers of their own, so sharing one never holds anything else alive).
pub const LARGE_VALUE: usize = 32 * 1024;

/// A string value as stored. Short values live in a [`Blob`]; large ones are shared behind a
/// reference count, so the request that brought a value, the operation, the replication log and
/// the keyspace all hold the same bytes, and a reply can be written from them without a copy.
/// Serialized exactly as a [`Blob`] (a byte string).
#[derive(Clone)]
pub enum Value {
    Small(Blob),
    Large(Arc<Bytes>),
}

impl Value {
    pub fn from_slice(b: &[u8]) -> Value {
        if b.len() >= LARGE_VALUE {
            Value::Large(Arc::new(Bytes::copy_from_slice(b)))
        } else {
            Value::Small(Blob::from_slice(b))
        }
    }

    pub fn from_vec(v: Vec<u8>) -> Value {
        if v.len() >= LARGE_VALUE {
            Value::Large(Arc::new(Bytes::from(v)))
        } else {
            Value::Small(Blob::from_vec(v))
        }
    }

    /// A value from a request argument: a large one is kept as it is, without a copy.
    pub fn from_bytes(b: &Bytes) -> Value {
        if b.len() >= LARGE_VALUE {
            Value::Large(Arc::new(b.clone()))
        } else {
            Value::Small(Blob::from_slice(b))
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            Value::Small(b) => b,
            Value::Large(b) => b,
        }
    }

    /// The bytes of a large value, shared (None for a short one).
    pub fn shared(&self) -> Option<Bytes> {
        match self {
            Value::Small(_) => None,
            Value::Large(b) => Some(Bytes::clone(b)),
        }
    }
}

impl Default for Value {
    fn default() -> Self {
        Value::Small(Blob::new())
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Value {}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        // Through Blob's visitor (which never trusts an announced length); a large value then
        // moves into shared storage.
        let blob = Blob::deserialize(d)?;
        Ok(if blob.len() >= LARGE_VALUE { Value::from_vec(blob.0.into_vec()) } else { Value::Small(blob) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_serialize_as_blobs() {
        for len in [0, 5, 16, 17, LARGE_VALUE - 1, LARGE_VALUE, LARGE_VALUE * 3] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let v = Value::from_slice(&bytes);
            assert_eq!(matches!(v, Value::Large(_)), len >= LARGE_VALUE);
            let encoded = bincode::serialize(&v).unwrap();
            assert_eq!(encoded, bincode::serialize(&Blob::from_slice(&bytes)).unwrap());
            let back: Value = bincode::deserialize(&encoded).unwrap();
            assert_eq!(back, v);
            assert_eq!(matches!(back, Value::Large(_)), len >= LARGE_VALUE);
        }
    }

    #[test]
    fn a_large_argument_is_shared_not_copied() {
        let arg = Bytes::from(vec![7u8; LARGE_VALUE]);
        let v = Value::from_bytes(&arg);
        assert_eq!(v.shared().unwrap().as_ptr(), arg.as_ptr());
        assert_eq!(v.clone().shared().unwrap().as_ptr(), arg.as_ptr());
        assert!(Value::from_bytes(&Bytes::from_static(b"small")).shared().is_none());
    }
}
