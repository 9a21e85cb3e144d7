//! Request parsing: RESP multibulk frames (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline commands
//! (`GET k\r\n`), with Redis's limits and error texts.
//!
//! [`parse_request`] looks at the buffered bytes; it returns `Ok(None)` until a whole request
//! has arrived, so a request split across reads, or many pipelined ones in one read, both work.
//! Arguments are zero-copy slices of the read buffer.

use bytes::{Buf, Bytes, BytesMut};

/// A malformed request. The connection replies `-ERR Protocol error: …` and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn err(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// Limits a request must respect (Redis: `proto-max-bulk-len`, 1M multibulk elements is not a
/// Redis limit but `INT_MAX` is; inline requests and length lines are capped at 64 KiB).
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_bulk_len: usize,
    pub max_multibulk_len: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_bulk_len: 512 * 1024 * 1024, max_multibulk_len: i32::MAX as usize }
    }
}

const INLINE_MAX: usize = 64 * 1024;

/// Parses one request from the front of `buf`, consuming it. `Ok(Some(vec![]))` is an empty
/// inline line (ignored by the caller).
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &RequestLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, limits)
    } else {
        parse_inline(buf)
    }
}

/// Finds the CRLF-terminated line starting at `at`; returns the index of '\r'.
fn find_line(buf: &[u8], at: usize) -> Option<usize> {
    memchr_newline(&buf[at..]).map(|i| at + i)
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn parse_len(line: &[u8]) -> Option<i64> {
    if line.is_empty() || line.len() > 20 {
        return None;
    }
    std::str::from_utf8(line).ok()?.parse::<i64>().ok()
}

fn parse_multibulk(buf: &mut BytesMut, limits: &RequestLimits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(end) = find_line(buf, 1) else {
        if buf.len() > INLINE_MAX {
            return Err(err("too big mbulk count string"));
        }
        return Ok(None);
    };
    let count = match parse_len(&buf[1..end]) {
        Some(n) if n <= limits.max_multibulk_len as i64 => n,
        _ => return Err(err("invalid multibulk length")),
    };
    let mut pos = end + 2;
    if count <= 0 {
        buf.advance(pos);
        return Ok(Some(Vec::new()));
    }
    let count = count as usize;
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(err(format!("expected '$', got '{}'", buf[pos] as char)));
        }
        let Some(end) = find_line(buf, pos + 1) else {
            if buf.len() - pos > INLINE_MAX {
                return Err(err("too big bulk count string"));
            }
            return Ok(None);
        };
        let len = match parse_len(&buf[pos + 1..end]) {
            Some(n) if n >= 0 && n as usize <= limits.max_bulk_len => n as usize,
            _ => return Err(err("invalid bulk length")),
        };
        let start = end + 2;
        if buf.len() < start + len + 2 {
            // Grow geometrically towards a large argument, but never allocate much more than
            // has actually arrived: a client that only announces 512 MB gets nothing reserved.
            let needed = start + len + 2;
            if needed > buf.capacity() {
                let grow = buf.capacity().max(64 * 1024).min(needed - buf.len());
                buf.reserve(grow);
            }
            return Ok(None);
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return Err(err("expected CRLF after bulk data"));
        }
        ranges.push((start, start + len));
        pos = start + len + 2;
    }
    let frame = buf.split_to(pos).freeze();
    Ok(Some(ranges.into_iter().map(|(s, e)| frame.slice(s..e)).collect()))
}

fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&c| c == b'\n') else {
        if buf.len() > INLINE_MAX {
            return Err(err("too big inline request"));
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let mut line = &line[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    match split_args(line) {
        Some(args) => Ok(Some(args.into_iter().map(Bytes::from).collect())),
        None => Err(err("unbalanced quotes in request")),
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

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = parse_request(&mut buf, &RequestLimits::default())? {
            out.push(args.iter().map(|a| a.to_vec()).collect());
        }
        Ok(out)
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
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r"[..]);
        assert_eq!(parse_request(&mut buf, &RequestLimits::default()), Ok(None));
        buf.extend_from_slice(b"\nk\r\n");
        assert!(parse_request(&mut buf, &RequestLimits::default()).unwrap().is_some());
        assert!(buf.is_empty());
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(parse_all(b"*1\r\n$abc\r\n").unwrap_err().0, "invalid bulk length");
        assert_eq!(parse_all(b"*99999999999\r\n").unwrap_err().0, "invalid multibulk length");
        assert_eq!(parse_all(b"*1\r\n+x\r\n").unwrap_err().0, "expected '$', got '+'");
        assert_eq!(parse_all(b"SET a \"b\r\n").unwrap_err().0, "unbalanced quotes in request");
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
