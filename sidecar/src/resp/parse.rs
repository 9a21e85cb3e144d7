//! Request parsing: RESP multibulk frames (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline commands
//! (`GET k\r\n`), with Redis 7.0's limits and error texts.
//!
//! A [`RequestParser`] owns a connection's read buffer and remembers how far it got in a request
//! that has not fully arrived: a multibulk read in many small pieces is parsed once, byte by
//! byte, however it is chunked (restarting from the first byte on every read would cost time
//! quadratic in the request's size). Small arguments stay zero-copy slices of the read buffer;
//! an argument of [`BIG_ARG`] bytes or more is read into a buffer of its own, sized from its
//! header, which then *is* the argument: a value stored by `SET` is never copied out of it.
//!
//! Lengths are parsed as Redis's `string2ll` does: no sign other than `-`, no leading zeros, no
//! spaces. Before a client has authenticated (when a password is required) a multibulk may have at
//! most 10 arguments of at most 16 KiB each, as in Redis 7.0, so an unauthenticated client cannot
//! make the server buffer a large request.

use bytes::buf::Limit;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A malformed request. The connection replies `-ERR Protocol error: …` and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn err(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// What a request must respect, given the client's state and the server's settings.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// `proto-max-bulk-len`: the longest argument.
    pub max_bulk_len: usize,
    /// A password is required and the client has not given it yet.
    pub auth_required: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_bulk_len: DEFAULT_MAX_BULK_LEN, auth_required: false }
    }
}

/// Redis's default `proto-max-bulk-len`.
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline request or length line.
const INLINE_MAX: usize = 64 * 1024;
/// Redis's `PROTO_MBULK_BIG_ARG`: arguments this long are read into a buffer of their own.
pub const BIG_ARG: usize = 32 * 1024;
/// Redis's `PROTO_IOBUF_LEN`: how much one read asks for.
const READ_CHUNK: usize = 16 * 1024;
/// The most arguments a multibulk may announce (Redis: `INT_MAX`).
const MAX_MULTIBULK: i64 = i32::MAX as i64;
/// Before authentication: the most arguments, and the longest argument (Redis 7.0).
const UNAUTH_MAX_MULTIBULK: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// An argument of the multibulk being read.
enum Arg {
    /// `start..end` of the read buffer (the request starts at its first byte).
    InBuffer(usize, usize),
    /// A big argument, in its own allocation.
    Own(Bytes),
}

/// A multibulk whose header has been read.
struct Multibulk {
    /// Arguments still to come.
    remaining: usize,
    args: Vec<Arg>,
    /// Where the next argument's header starts in the read buffer.
    pos: usize,
    /// The length of the argument whose header has been read.
    bulk: Option<usize>,
    /// A big argument being read: its own buffer, with room for exactly its bytes and CRLF.
    big: Option<BytesMut>,
}

/// A connection's read buffer and the state of the request being read.
pub struct RequestParser {
    buf: BytesMut,
    partial: Option<Multibulk>,
    /// Bytes of the current line already searched for its end (so a line that arrives slowly is
    /// searched once).
    scanned: usize,
    /// The most bytes buffered since the last [`RequestParser::resize`].
    peak: usize,
}

impl Default for RequestParser {
    fn default() -> Self {
        RequestParser::new()
    }
}

/// Parses a length as Redis's `string2ll`: `0`, or an optional `-` and digits without a leading
/// zero, at most 20 characters, within `i64`.
pub fn parse_strict_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if negative {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

impl RequestParser {
    pub fn new() -> RequestParser {
        RequestParser { buf: BytesMut::new(), partial: None, scanned: 0, peak: 0 }
    }

    /// A parser that starts with `bytes` already read (tests, fuzzing).
    pub fn with_input(bytes: &[u8]) -> RequestParser {
        let mut p = RequestParser::new();
        p.buf.extend_from_slice(bytes);
        p
    }

    /// Adds bytes as if they had been read.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let mut target = self.read_target();
            let n = rest.len().min(target.remaining_mut());
            target.put_slice(&rest[..n]);
            rest = &rest[n..];
        }
        self.peak = self.peak.max(self.buffered());
    }

    /// Where the next read from the socket goes: the big argument being read (never more than
    /// its missing bytes, so the buffer ends up holding exactly the argument), or the read
    /// buffer.
    pub fn read_target(&mut self) -> Limit<&mut BytesMut> {
        if let Some(m) = self.partial.as_mut() {
            if let (Some(big), Some(len)) = (m.big.as_mut(), m.bulk) {
                let missing = len + 2 - big.len();
                if missing > 0 {
                    return big.limit(missing);
                }
                // Complete but not yet parsed (the client is blocked): what follows the
                // argument goes to the read buffer, where the next argument starts.
            }
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        let room = self.buf.capacity() - self.buf.len();
        (&mut self.buf).limit(room)
    }

    /// Call after a read: keeps track of the peak for [`RequestParser::resize`].
    pub fn note_read(&mut self) {
        let n = self.buffered();
        if n > self.peak {
            self.peak = n;
        }
    }

    /// Bytes held for requests not yet returned: what `client-query-buffer-limit` bounds.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.partial.as_ref().and_then(|m| m.big.as_ref()).map_or(0, |b| b.len())
    }

    /// Bytes allocated for reading (for `CLIENT LIST`'s `qbuf-free`).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Gives back read-buffer space that is not needed, as Redis's `clientsCronResizeQueryBuffer`:
    /// all of it once the client has been idle (`idle`), or down to the recent peak when the
    /// buffer is more than twice that and over 32 KiB.
    pub fn resize(&mut self, idle: bool) {
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        if cap - len > 4 * 1024 {
            let target = if idle {
                Some(len)
            } else if cap > BIG_ARG && cap / 2 > self.peak {
                Some(len.max(self.peak))
            } else {
                None
            };
            if let Some(target) = target {
                let mut fresh = BytesMut::with_capacity(target);
                fresh.extend_from_slice(&self.buf);
                self.buf = fresh;
            }
        }
        self.peak = self.buffered();
    }

    /// True when the read buffer holds much more space than data (worth a [`RequestParser::resize`]
    /// once the client is idle).
    pub fn wasteful(&self) -> bool {
        self.buf.capacity() - self.buf.len() > READ_CHUNK + 4 * 1024
    }

    /// Parses the next request, consuming it. `Ok(None)`: it has not fully arrived.
    /// `Ok(Some(vec![]))`: an empty line or an empty multibulk, which the caller skips.
    pub fn next_request(&mut self, limits: &RequestLimits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if self.partial.is_none() {
            if self.buf.is_empty() {
                return Ok(None);
            }
            if self.buf[0] != b'*' {
                return self.inline();
            }
            if !self.multibulk_header(limits)? {
                return Ok(None);
            }
            if self.partial.is_none() {
                return Ok(Some(Vec::new()));
            }
        }
        self.multibulk_args(limits)
    }

    /// Finds the end of the line starting at `from`: the index of the first `end` byte, searching
    /// each byte once across calls.
    fn line_end(&mut self, from: usize, end: u8) -> Option<usize> {
        let start = self.scanned.max(from);
        match memchr::memchr(end, &self.buf[start..]) {
            Some(i) => Some(start + i),
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// Reads `*<count>\r\n`; false if the line has not fully arrived.
    fn multibulk_header(&mut self, limits: &RequestLimits) -> Result<bool, ProtocolError> {
        let Some(cr) = self.line_end(1, b'\r') else {
            if self.buf.len() > INLINE_MAX {
                return Err(err("too big mbulk count string"));
            }
            return Ok(false);
        };
        // Redis skips the two bytes after '\r' without looking at them.
        if cr + 2 > self.buf.len() {
            return Ok(false);
        }
        let count = match parse_strict_i64(&self.buf[1..cr]) {
            Some(n) if n <= MAX_MULTIBULK => n,
            _ => return Err(err("invalid multibulk length")),
        };
        if count > UNAUTH_MAX_MULTIBULK && limits.auth_required {
            return Err(err("unauthenticated multibulk length"));
        }
        self.scanned = 0;
        if count <= 0 {
            self.buf.advance(cr + 2);
            return Ok(true);
        }
        let count = count as usize;
        self.partial = Some(Multibulk {
            remaining: count,
            args: Vec::with_capacity(count.min(1024)),
            pos: cr + 2,
            bulk: None,
            big: None,
        });
        Ok(true)
    }

    fn multibulk_args(&mut self, limits: &RequestLimits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            let mb = self.partial.as_mut().expect("a multibulk is being read");
            if mb.remaining == 0 {
                break;
            }
            if let Some(big) = &mb.big {
                let len = mb.bulk.expect("a big argument has a length");
                if big.len() < len + 2 {
                    return Ok(None);
                }
                mb.bulk = None;
                let mut arg = mb.big.take().expect("checked above").freeze();
                arg.truncate(len);
                mb.args.push(Arg::Own(arg));
                mb.remaining -= 1;
                continue;
            }
            let pos = mb.pos;
            match mb.bulk {
                Some(len) => {
                    if self.buf.len() - pos < len + 2 {
                        return Ok(None);
                    }
                    // The two bytes after the data are skipped unread, as Redis does.
                    let arg = if len >= BIG_ARG {
                        // Arrived whole with other data around it: copied out, so that a value
                        // kept by the keyspace never holds the read buffer alive.
                        Arg::Own(Bytes::copy_from_slice(&self.buf[pos..pos + len]))
                    } else {
                        Arg::InBuffer(pos, pos + len)
                    };
                    let mb = self.partial.as_mut().expect("a multibulk is being read");
                    mb.args.push(arg);
                    mb.pos = pos + len + 2;
                    mb.bulk = None;
                    mb.remaining -= 1;
                }
                None => {
                    if pos >= self.buf.len() {
                        return Ok(None);
                    }
                    let Some(cr) = self.line_end(pos, b'\r') else {
                        if self.buf.len() - pos > INLINE_MAX {
                            return Err(err("too big bulk count string"));
                        }
                        return Ok(None);
                    };
                    if cr + 2 > self.buf.len() {
                        return Ok(None);
                    }
                    if self.buf[pos] != b'$' {
                        return Err(err(format!("expected '$', got '{}'", self.buf[pos] as char)));
                    }
                    let len = match parse_strict_i64(&self.buf[pos + 1..cr]) {
                        Some(n) if n >= 0 && n as u64 <= limits.max_bulk_len as u64 => n,
                        _ => return Err(err("invalid bulk length")),
                    };
                    if len > UNAUTH_MAX_BULK && limits.auth_required {
                        return Err(err("unauthenticated bulk length"));
                    }
                    let len = len as usize;
                    self.scanned = 0;
                    let start = cr + 2;
                    let mb = self.partial.as_mut().expect("a multibulk is being read");
                    mb.pos = start;
                    mb.bulk = Some(len);
                    if len >= BIG_ARG && self.buf.len() - start < len + 2 {
                        // Read the rest straight into a buffer of the argument's size.
                        let mut big = BytesMut::with_capacity(len + 2);
                        big.extend_from_slice(&self.buf[start..]);
                        self.buf.truncate(start);
                        mb.big = Some(big);
                    }
                }
            }
        }
        let mb = self.partial.take().expect("a multibulk is being read");
        let request = self.buf.split_to(mb.pos).freeze();
        self.scanned = 0;
        Ok(Some(
            mb.args
                .into_iter()
                .map(|a| match a {
                    Arg::InBuffer(s, e) => request.slice(s..e),
                    Arg::Own(b) => b,
                })
                .collect(),
        ))
    }

    fn inline(&mut self) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(nl) = self.line_end(0, b'\n') else {
            if self.buf.len() > INLINE_MAX {
                return Err(err("too big inline request"));
            }
            return Ok(None);
        };
        self.scanned = 0;
        let line = self.buf.split_to(nl + 1);
        let mut line = &line[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        match split_args(line) {
            Some(args) => Ok(Some(args.into_iter().map(Bytes::from).collect())),
            None => Err(err("unbalanced quotes in request")),
        }
    }
}

/// C's `isspace`: what separates inline arguments.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

/// Splits an inline command line like a shell would, with Redis's quoting rules: `"..."` with
/// `\n \r \t \b \a \\ \" \xHH` escapes, `'...'` with `\'`. A closing quote must be followed by a
/// space or the end of the line.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let hex = std::str::from_utf8(&line[i + 2..i + 4]).ok()?;
                    current.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    current.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else if in_single {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    c if is_space(c) => break,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    c => current.push(c),
                }
            }
            i += 1;
        }
        args.push(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits::default()
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = RequestParser::with_input(input);
        let mut out = Vec::new();
        while let Some(args) = p.next_request(&limits())? {
            out.push(args.iter().map(|a| a.to_vec()).collect());
        }
        Ok(out)
    }

    /// Feeds `input` `chunk` bytes at a time, parsing after each piece.
    fn parse_chunked(
        input: &[u8],
        chunk: usize,
        l: &RequestLimits,
    ) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = RequestParser::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            p.feed(piece);
            while let Some(args) = p.next_request(l)? {
                out.push(args.iter().map(|a| a.to_vec()).collect());
            }
        }
        Ok(out)
    }

    fn multibulk(args: &[&[u8]]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn pipelined_multibulk_and_inline() {
        let got = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET a \"b c\"\r\n").unwrap();
        assert_eq!(
            got,
            vec![vec![b"GET".to_vec(), b"k".to_vec()], vec![b"SET".to_vec(), b"a".to_vec(), b"b c".to_vec()]]
        );
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut p = RequestParser::with_input(b"*2\r\n$3\r\nGET\r\n$1\r");
        assert_eq!(p.next_request(&limits()), Ok(None));
        p.feed(b"\nk\r\n");
        assert!(p.next_request(&limits()).unwrap().is_some());
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn every_chunking_gives_the_same_requests() {
        let mut input = multibulk(&[b"SET", b"key", &vec![b'x'; 100_000]]);
        input.extend_from_slice(b"PING\r\n");
        input.extend(multibulk(&[b"RPUSH", b"l", b"a", b"", b"ccc"]));
        input.extend(multibulk(&[b"ECHO", &vec![b'y'; BIG_ARG]]));
        input.extend_from_slice(b"*0\r\n*-1\r\n");
        input.extend(multibulk(&[b"GET", b"k"]));
        let whole = parse_all(&input).unwrap();
        assert_eq!(whole.len(), 7);
        assert_eq!(whole[0][2].len(), 100_000);
        for chunk in [1, 2, 3, 7, 100, 4096, 40_000, input.len()] {
            assert_eq!(parse_chunked(&input, chunk, &limits()).unwrap(), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn a_big_argument_is_read_into_a_buffer_of_its_size() {
        let value = vec![b'v'; 1 << 20];
        let input = multibulk(&[b"SET", b"k", &value]);
        let mut p = RequestParser::new();
        p.feed(&input[..1000]);
        assert_eq!(p.next_request(&limits()), Ok(None));
        // The next read goes into the argument's own buffer and asks for no more than it lacks.
        let missing = input.len() - 1000;
        assert_eq!(p.read_target().remaining_mut(), missing);
        p.feed(&input[1000..]);
        let args = p.next_request(&limits()).unwrap().unwrap();
        assert_eq!(&args[2][..], &value[..]);
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn data_after_a_complete_big_argument_waits_in_the_read_buffer() {
        let value = vec![b'v'; BIG_ARG + 10];
        let input = multibulk(&[b"ECHO", &value, b"tail"]);
        let mut p = RequestParser::new();
        let head = input.len() - value.len() - 2 - 10;
        p.feed(&input[..head]);
        assert_eq!(p.next_request(&limits()), Ok(None));
        // A blocked client is not parsed: reads go on without it.
        p.feed(&input[head..]);
        let args = p.next_request(&limits()).unwrap().unwrap();
        assert_eq!(args.len(), 3);
        assert_eq!(&args[1][..], &value[..]);
        assert_eq!(&args[2][..], b"tail");
    }

    #[test]
    fn parsing_work_is_linear_in_the_request() {
        // 200k arguments dripped 100 bytes at a time: restarting at byte 0 on every piece would
        // look at ~10^10 bytes; the parser remembers where it was.
        let args: Vec<Vec<u8>> = (0..200_000).map(|i| format!("{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        let input = multibulk(&refs);
        let started = std::time::Instant::now();
        let got = parse_chunked(&input, 100, &limits()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), 200_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn lengths_are_strict_as_redis() {
        for bad in [
            &b"*1\r\n$+4\r\nPING\r\n"[..],
            b"*1\r\n$04\r\nPING\r\n",
            b"*1\r\n$ 4\r\nPING\r\n",
            b"*1\r\n$-0\r\n",
        ] {
            assert_eq!(parse_all(bad).unwrap_err().0, "invalid bulk length", "{bad:?}");
        }
        for bad in [&b"*+1\r\n"[..], b"*01\r\n", b"* 1\r\n", b"*1 \r\n", b"*\r\n", b"*-0\r\n"] {
            assert_eq!(parse_all(bad).unwrap_err().0, "invalid multibulk length", "{bad:?}");
        }
        assert_eq!(parse_all(b"*1\r\n$00004\r\nPING\r\n").unwrap_err().0, "invalid bulk length");
        assert_eq!(parse_strict_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_strict_i64(b"9223372036854775808"), None);
        assert_eq!(parse_strict_i64(b"0"), Some(0));
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(parse_all(b"*1\r\n$abc\r\n").unwrap_err().0, "invalid bulk length");
        assert_eq!(parse_all(b"*99999999999\r\n").unwrap_err().0, "invalid multibulk length");
        assert_eq!(parse_all(b"*1\r\n+x\r\n").unwrap_err().0, "expected '$', got '+'");
        assert_eq!(parse_all(b"SET a \"b\r\n").unwrap_err().0, "unbalanced quotes in request");
        let l = RequestLimits { max_bulk_len: 1024 * 1024, auth_required: false };
        let mut p = RequestParser::with_input(b"*2\r\n$4\r\nECHO\r\n$1048577\r\n");
        assert_eq!(p.next_request(&l).unwrap_err().0, "invalid bulk length");
        let mut p = RequestParser::with_input(&vec![b'*'; 70 * 1024]);
        assert_eq!(p.next_request(&l).unwrap_err().0, "too big mbulk count string");
    }

    #[test]
    fn unauthenticated_requests_are_small() {
        let l = RequestLimits { max_bulk_len: DEFAULT_MAX_BULK_LEN, auth_required: true };
        let mut p = RequestParser::with_input(b"*11\r\n");
        assert_eq!(p.next_request(&l).unwrap_err().0, "unauthenticated multibulk length");
        let mut p = RequestParser::with_input(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n");
        assert_eq!(p.next_request(&l).unwrap_err().0, "unauthenticated bulk length");
        let big = vec![b'p'; 16384];
        let mut args: Vec<&[u8]> = vec![b"AUTH"; 9];
        args.push(&big);
        let mut p = RequestParser::with_input(&multibulk(&args));
        assert_eq!(p.next_request(&l).unwrap().unwrap().len(), 10);
    }

    #[test]
    fn idle_buffers_shrink() {
        let mut p = RequestParser::new();
        let args: Vec<Vec<u8>> = (0..100_000).map(|i| format!("{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        p.feed(&multibulk(&refs));
        assert!(p.next_request(&limits()).unwrap().is_some());
        assert!(p.capacity() > 500_000);
        assert!(p.wasteful());
        p.resize(true);
        assert_eq!(p.capacity(), 0);
        p.feed(b"PING\r\n");
        assert_eq!(p.next_request(&limits()).unwrap().unwrap()[0], &b"PING"[..]);
    }

    #[test]
    fn nul_bytes_are_ordinary_characters() {
        assert_eq!(split_args(b"\0\0 a").unwrap(), vec![b"\0\0".to_vec(), b"a".to_vec()]);
    }

    #[test]
    fn inline_escapes() {
        assert_eq!(
            split_args(br#"a "\x41\n" 'it\'s'"#).unwrap(),
            vec![b"a".to_vec(), b"A\n".to_vec(), b"it's".to_vec()]
        );
    }
}
