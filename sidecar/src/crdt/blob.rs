//! [`Blob`]: a byte string as stored. Short keys and values (≤ 16 bytes) live inline, without a
//! heap allocation.
//!
//! It is a type of its own (not a bare `SmallVec`) so that it can deserialize safely: a length
//! prefix read from the network never decides an allocation before the bytes have arrived.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

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
