//! Record framing shared by the append-only log: every record is
//!
//! ```text
//! ┌──────────────┬──────────────┬────────────────────────────┐
//! │ len: u32 LE  │ crc: u32 LE  │ payload (len bytes)        │
//! └──────────────┴──────────────┴────────────────────────────┘
//! crc = CRC-32 (IEEE) of the four length bytes followed by the payload
//! ```
//!
//! The checksum covers the length too, so a flipped bit in the length is caught even when the
//! wrong length happens to point at plausible bytes. The reader never trusts a length before it
//! has checked that the bytes are there and that the checksum matches, so any input, however
//! damaged, yields a clean prefix of good records and a description of what follows it.

/// Bytes before the payload: length and checksum.
pub const FRAME_HEADER: usize = 8;
/// Largest payload accepted. A record is one command's or transaction's writes, or a snapshot
/// received from a peer; anything claiming more is damage, not data.
pub const MAX_RECORD: usize = 1 << 30;

/// Appends one framed record to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= MAX_RECORD, "record of {} bytes is larger than the limit", payload.len());
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// What ends a run of good records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The input ends exactly after the last good record.
    Clean,
    /// The last record is incomplete (a write cut short): it starts at `at`.
    Torn { at: usize },
    /// The record at `at` is complete but fails its checksum or claims an impossible length,
    /// and nothing readable follows it: damage at the tail.
    BadTail { at: usize },
    /// The record at `at` is bad but a good record follows it: damage in the middle, which a
    /// torn write cannot explain.
    BadMiddle { at: usize },
}

impl End {
    /// Where the good prefix ends.
    pub fn good_len(self, total: usize) -> usize {
        match self {
            End::Clean => total,
            End::Torn { at } | End::BadTail { at } | End::BadMiddle { at } => at,
        }
    }
}

/// Checks the frame at the front of `buf`: `Ok(Some(len))` if a whole good record is there,
/// `Ok(None)` if `buf` ends before the frame does, `Err(())` if it is damaged.
fn check(buf: &[u8]) -> Result<Option<usize>, ()> {
    if buf.len() < FRAME_HEADER {
        return Ok(None);
    }
    let len_bytes = [buf[0], buf[1], buf[2], buf[3]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_RECORD {
        return Err(());
    }
    if buf.len() < FRAME_HEADER + len {
        return Ok(None);
    }
    let stored = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len_bytes);
    crc.update(&buf[FRAME_HEADER..FRAME_HEADER + len]);
    if crc.finalize() == stored {
        Ok(Some(len))
    } else {
        Err(())
    }
}

/// The payload length of the whole, good record at the front of `buf`, if there is one.
pub fn whole_frame(buf: &[u8]) -> Option<usize> {
    check(buf).ok().flatten()
}

/// Iterates over the good records of `buf`, front to back; [`Reader::end`] then says what
/// stopped it.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: Option<End>,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0, end: None }
    }

    /// Offset just past the last record returned.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Why reading stopped; `None` until the iterator has returned `None`.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    /// Classifies damage at `at`: if the damaged frame's own length field is still plausible and
    /// a good record sits right behind it, the damage is in the middle of the log.
    fn classify_bad(&self, at: usize) -> End {
        let rest = &self.buf[at..];
        let claimed = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let next = FRAME_HEADER.saturating_add(claimed);
        if claimed <= MAX_RECORD && next < rest.len() && matches!(check(&rest[next..]), Ok(Some(_))) {
            End::BadMiddle { at }
        } else {
            End::BadTail { at }
        }
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.end.is_some() {
            return None;
        }
        let at = self.pos;
        let rest = &self.buf[at..];
        if rest.is_empty() {
            self.end = Some(End::Clean);
            return None;
        }
        match check(rest) {
            Ok(Some(len)) => {
                self.pos += FRAME_HEADER + len;
                Some(&rest[FRAME_HEADER..FRAME_HEADER + len])
            }
            Ok(None) => {
                self.end = Some(End::Torn { at });
                None
            }
            Err(()) => {
                self.end = Some(self.classify_bad(at));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, &mut out);
        }
        out
    }

    fn read_all(buf: &[u8]) -> (Vec<Vec<u8>>, End) {
        let mut r = Reader::new(buf);
        let records = r.by_ref().map(|p| p.to_vec()).collect();
        (records, r.end().unwrap())
    }

    #[test]
    fn round_trip() {
        let buf = framed(&[b"one", b"", b"three"]);
        let (records, end) = read_all(&buf);
        assert_eq!(records, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!(end, End::Clean);
        assert_eq!(read_all(&[]).1, End::Clean);
    }

    #[test]
    fn every_truncation_of_the_last_record_is_torn() {
        let buf = framed(&[b"first", b"second record"]);
        let first = FRAME_HEADER + 5;
        for cut in first + 1..buf.len() {
            let (records, end) = read_all(&buf[..cut]);
            assert_eq!(records, vec![b"first".to_vec()], "cut at {cut}");
            assert_eq!(end, End::Torn { at: first }, "cut at {cut}");
            assert_eq!(end.good_len(cut), first);
        }
    }

    #[test]
    fn a_flipped_byte_in_the_last_record_is_bad_tail() {
        let buf = framed(&[b"first", b"second record"]);
        let first = FRAME_HEADER + 5;
        for i in first..buf.len() {
            let mut damaged = buf.clone();
            damaged[i] ^= 0x40;
            let (records, end) = read_all(&damaged);
            assert_eq!(records, vec![b"first".to_vec()], "flip at {i}");
            assert!(
                matches!(end, End::BadTail { at } | End::Torn { at } if at == first),
                "flip at {i}: {end:?}"
            );
        }
    }

    #[test]
    fn damage_followed_by_good_records_is_bad_middle() {
        let buf = framed(&[b"first", b"second", b"third"]);
        let mut damaged = buf.clone();
        damaged[FRAME_HEADER + 2] ^= 1; // inside "first"
        let (records, end) = read_all(&damaged);
        assert!(records.is_empty());
        assert_eq!(end, End::BadMiddle { at: 0 });
    }

    #[test]
    fn absurd_lengths_are_damage_not_allocations() {
        let mut buf = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        buf.extend_from_slice(&[1; 32]);
        let (records, end) = read_all(&buf);
        assert!(records.is_empty());
        assert_eq!(end, End::BadTail { at: 0 });
    }
}
