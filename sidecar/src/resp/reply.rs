//! Writing replies. Handlers write straight into the connection's output buffer through
//! [`Reply`], which renders each RESP3 type in the form the client negotiated with `HELLO`
//! (RESP2 clients get maps as flat arrays, doubles as bulk strings, and so on).
//!
//! A large value can go out without being copied: [`Reply::bulk_shared`] keeps a reference to the
//! stored bytes next to the buffer, and the connection writes the pieces in order.

use bytes::{BufMut, Bytes, BytesMut};

use crate::crdt::number::format_double;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    Resp2,
    Resp3,
}

/// Values at least this long are referenced rather than copied by [`Reply::bulk_shared`].
pub const SHARE_MIN: usize = 32 * 1024;

/// An output buffer plus the protocol it speaks.
pub struct Reply {
    /// The reply's tail; everything in `pieces` goes out before it.
    pub buf: BytesMut,
    pub proto: Protocol,
    /// Finished output that precedes `buf`: parts of the buffer and referenced large values.
    pieces: Vec<Bytes>,
    pieces_len: usize,
    /// Whether large values may be referenced (the connection's own reply, which writes the
    /// pieces); other users (replies handed between tasks) get plain bytes in `buf`.
    share_large: bool,
}

impl Reply {
    pub fn new(proto: Protocol) -> Reply {
        Reply {
            buf: BytesMut::with_capacity(16 * 1024),
            proto,
            pieces: Vec::new(),
            pieces_len: 0,
            share_large: false,
        }
    }

    /// A reply whose large bulk strings are written from the stored value, without a copy.
    pub fn sharing(proto: Protocol) -> Reply {
        Reply { share_large: true, ..Reply::new(proto) }
    }

    /// A bulk string from bytes the caller holds a reference to: a large one is not copied into
    /// the buffer (when this reply allows it).
    pub fn bulk_shared(&mut self, b: &Bytes) {
        if !self.share_large || b.len() < SHARE_MIN {
            return self.bulk(b);
        }
        self.header(b'$', b.len() as i64);
        let head = self.buf.split().freeze();
        self.pieces_len += head.len() + b.len();
        self.pieces.push(head);
        self.pieces.push(b.clone());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// The output that goes before `buf`, taken out of the reply (the writer sends these, then
    /// `buf`).
    pub fn take_pieces(&mut self) -> Vec<Bytes> {
        self.pieces_len = 0;
        std::mem::take(&mut self.pieces)
    }

    /// Drops everything written so far.
    pub fn clear(&mut self) {
        self.pieces.clear();
        self.pieces_len = 0;
        self.buf.clear();
    }

    /// Gives back buffer space a large reply left behind.
    pub fn shrink(&mut self) {
        if self.is_empty() && self.buf.capacity() > 64 * 1024 {
            self.buf = BytesMut::with_capacity(16 * 1024);
        }
    }

    pub fn resp3(&self) -> bool {
        self.proto == Protocol::Resp3
    }

    fn header(&mut self, prefix: u8, n: i64) {
        self.buf.put_u8(prefix);
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    pub fn simple(&mut self, s: &str) {
        self.buf.put_u8(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error reply; `msg` starts with its code (`ERR`, `WRONGTYPE`, …). Newlines would break
    /// the protocol and are replaced by spaces, as Redis does.
    pub fn error(&mut self, msg: &str) {
        self.buf.put_u8(b'-');
        for &c in msg.as_bytes() {
            self.buf.put_u8(if c == b'\r' || c == b'\n' { b' ' } else { c });
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    pub fn bulk(&mut self, b: &[u8]) {
        self.header(b'$', b.len() as i64);
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn bulk_str(&mut self, s: &str) {
        self.bulk(s.as_bytes());
    }

    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        self.bulk(b.format(n).as_bytes());
    }

    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        if self.resp3() {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// A missing aggregate: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        if self.resp3() {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A map of `n` pairs: `%n` in RESP3, a flat array of `2n` in RESP2.
    pub fn map(&mut self, n: usize) {
        if self.resp3() {
            self.header(b'%', n as i64);
        } else {
            self.header(b'*', 2 * n as i64);
        }
    }

    pub fn set(&mut self, n: usize) {
        if self.resp3() {
            self.header(b'~', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// An out-of-band push (Pub/Sub messages): `>n` in RESP3, an array in RESP2.
    pub fn push(&mut self, n: usize) {
        if self.resp3() {
            self.header(b'>', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    pub fn double(&mut self, d: f64) {
        let s = format_double(d);
        if self.resp3() {
            self.buf.put_u8(b',');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }

    pub fn boolean(&mut self, b: bool) {
        if self.resp3() {
            self.buf.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }

    /// Human-readable text (`INFO`, `CLIENT LIST`): verbatim string in RESP3, bulk in RESP2.
    pub fn verbatim(&mut self, text: &str) {
        if self.resp3() {
            self.header(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    /// Bytes of output pending.
    pub fn len(&self) -> usize {
        self.pieces_len + self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty() && self.buf.is_empty()
    }
}
