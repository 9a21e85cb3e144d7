//! Per-client limits that `CONFIG SET` can change and every connection reads on its hot path:
//! `proto-max-bulk-len`, `client-query-buffer-limit` and `client-output-buffer-limit`, as in
//! Redis 7.0. They are atomics, so a connection reads them without taking a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::client::ClientInfo;
use crate::config::parse_memory;

/// The classes `client-output-buffer-limit` configures, in the order Redis lists them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClientClass {
    Normal,
    /// Redis replicas. This server has no replication clients (peers use the mesh port, with its
    /// own bound), so the class is configurable but has no member.
    Replica,
    /// Clients subscribed to a channel or pattern.
    Pubsub,
}

impl ClientClass {
    const ALL: [ClientClass; 3] = [ClientClass::Normal, ClientClass::Replica, ClientClass::Pubsub];

    fn by_name(name: &str) -> Option<ClientClass> {
        match name.to_ascii_lowercase().as_str() {
            "normal" => Some(ClientClass::Normal),
            "slave" | "replica" => Some(ClientClass::Replica),
            "pubsub" => Some(ClientClass::Pubsub),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ClientClass::Normal => "normal",
            ClientClass::Replica => "slave",
            ClientClass::Pubsub => "pubsub",
        }
    }

    /// A client's class now: subscribed clients are Pub/Sub clients (in RESP3 too, as in Redis).
    pub fn of(info: &ClientInfo) -> ClientClass {
        if info.subscriptions.load(Ordering::Relaxed) > 0 {
            ClientClass::Pubsub
        } else {
            ClientClass::Normal
        }
    }
}

/// One class's output limits: past `hard` bytes a client is closed at once; past `soft` bytes
/// for more than `soft_seconds` in a row, too. 0 turns a limit off.
#[derive(Default)]
pub struct OutputLimit {
    hard: AtomicU64,
    soft: AtomicU64,
    soft_seconds: AtomicU64,
}

impl OutputLimit {
    fn set(&self, (hard, soft, secs): (u64, u64, u64)) {
        self.hard.store(hard, Ordering::Relaxed);
        self.soft.store(soft, Ordering::Relaxed);
        self.soft_seconds.store(secs, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64, u64) {
        (
            self.hard.load(Ordering::Relaxed),
            self.soft.load(Ordering::Relaxed),
            self.soft_seconds.load(Ordering::Relaxed),
        )
    }
}

/// Redis's defaults.
pub const DEFAULT_QUERY_BUFFER_LIMIT: u64 = 1 << 30;
pub const DEFAULT_PROTO_MAX_BULK_LEN: u64 = 512 << 20;
const MIN_BUFFER_SETTING: u64 = 1 << 20;

/// Output a client has pending that Redis does not count against the limits: the first reply
/// chunk lives in the client's fixed buffer, only what overflows it into the reply list counts.
const UNCOUNTED_OUTPUT: u64 = 16 * 1024;

pub struct ClientLimits {
    /// The clock of the soft output limits (seconds since this was made).
    epoch: Instant,
    proto_max_bulk_len: AtomicU64,
    query_buffer: AtomicU64,
    output: [OutputLimit; 3],
}

impl Default for ClientLimits {
    fn default() -> Self {
        let limits = ClientLimits {
            epoch: Instant::now(),
            proto_max_bulk_len: AtomicU64::new(DEFAULT_PROTO_MAX_BULK_LEN),
            query_buffer: AtomicU64::new(DEFAULT_QUERY_BUFFER_LIMIT),
            output: Default::default(),
        };
        limits.output_limit(ClientClass::Replica).set((256 << 20, 64 << 20, 60));
        limits.output_limit(ClientClass::Pubsub).set((32 << 20, 8 << 20, 60));
        limits
    }
}

/// A rejected `CONFIG SET` value: the reason, as Redis words it.
pub type Invalid = &'static str;

const NOT_MEMORY: Invalid = "argument must be a memory value";
const OUT_OF_RANGE: Invalid = "argument must be between 1048576 and 9223372036854775807 inclusive";

/// Parses a memory setting that Redis bounds to 1 MiB..=`LONG_MAX`.
fn parse_buffer_setting(value: &str) -> Result<u64, Invalid> {
    let n = parse_redis_memory(value).ok_or(NOT_MEMORY)?;
    if !(MIN_BUFFER_SETTING..=i64::MAX as u64).contains(&n) {
        return Err(OUT_OF_RANGE);
    }
    Ok(n)
}

/// A memory amount as Redis's `memtoull` reads it: digits and an optional unit (b, k, kb, m, mb,
/// g, gb, any case); no sign, no fraction.
pub fn parse_redis_memory(value: &str) -> Option<u64> {
    if value.starts_with('-') || value.starts_with('+') {
        return None;
    }
    let digits = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    if digits == 0 {
        return None;
    }
    parse_memory(value).ok()
}

impl ClientLimits {
    fn output_limit(&self, class: ClientClass) -> &OutputLimit {
        &self.output[ClientClass::ALL.iter().position(|c| *c == class).expect("every class has limits")]
    }

    pub fn proto_max_bulk_len(&self) -> usize {
        self.proto_max_bulk_len.load(Ordering::Relaxed).min(usize::MAX as u64) as usize
    }

    pub fn query_buffer(&self) -> usize {
        self.query_buffer.load(Ordering::Relaxed).min(usize::MAX as u64) as usize
    }

    pub fn set_proto_max_bulk_len(&self, value: &str) -> Result<(), Invalid> {
        self.proto_max_bulk_len.store(parse_buffer_setting(value)?, Ordering::Relaxed);
        Ok(())
    }

    pub fn set_query_buffer(&self, value: &str) -> Result<(), Invalid> {
        self.query_buffer.store(parse_buffer_setting(value)?, Ordering::Relaxed);
        Ok(())
    }

    /// `CONFIG SET client-output-buffer-limit "<class> <hard> <soft> <seconds> …"`: every group
    /// is checked before any is applied, as Redis does.
    pub fn set_output(&self, value: &str) -> Result<(), Invalid> {
        let words: Vec<&str> = value.split_whitespace().collect();
        if !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.");
        }
        let mut parsed = Vec::new();
        for group in words.chunks(4) {
            let class = ClientClass::by_name(group[0])
                .ok_or("Invalid client class specified in buffer limit configuration.")?;
            let bad = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
            let hard = parse_redis_memory(group[1]).ok_or(bad)?;
            let soft = parse_redis_memory(group[2]).ok_or(bad)?;
            let secs = parse_soft_seconds(group[3]).ok_or(bad)?;
            parsed.push((class, (hard, soft, secs)));
        }
        for (class, limit) in parsed {
            self.output_limit(class).set(limit);
        }
        Ok(())
    }

    /// `CONFIG GET client-output-buffer-limit`.
    pub fn output_config(&self) -> String {
        ClientClass::ALL
            .iter()
            .map(|&c| {
                let (hard, soft, secs) = self.output_limit(c).get();
                format!("{} {hard} {soft} {secs}", c.name())
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The hard limit of a class (0: none).
    pub fn hard_output_limit(&self, class: ClientClass) -> u64 {
        self.output_limit(class).get().0
    }

    /// Whether a client with `pending` bytes of output not yet written is over its class's
    /// limits and must be closed, as Redis's `checkClientOutputBufferLimits`: the hard limit at
    /// once, the soft limit once it has been exceeded continuously for more than its seconds.
    /// The client remembers when it first went over the soft limit.
    pub fn output_exceeded(&self, info: &ClientInfo, pending: usize) -> bool {
        if (pending as u64) <= UNCOUNTED_OUTPUT && info.obuf_soft_since.load(Ordering::Relaxed) == 0 {
            // Nothing counts and no soft-limit clock runs: the common case, without a clock read.
            return false;
        }
        self.output_exceeded_at(info, pending, self.epoch.elapsed().as_secs())
    }

    /// [`ClientLimits::output_exceeded`] at `now_secs` on this limit's clock.
    fn output_exceeded_at(&self, info: &ClientInfo, pending: usize, now_secs: u64) -> bool {
        let (hard, soft, secs) = self.output_limit(ClientClass::of(info)).get();
        if hard == 0 && soft == 0 {
            return false;
        }
        let used = (pending as u64).saturating_sub(UNCOUNTED_OUTPUT);
        if hard > 0 && used >= hard {
            return true;
        }
        if soft > 0 && used >= soft {
            // Stored as seconds + 1, so that 0 means "not over".
            let since = info.obuf_soft_since.load(Ordering::Relaxed);
            if since == 0 {
                info.obuf_soft_since.store(now_secs + 1, Ordering::Relaxed);
                return false;
            }
            return now_secs.saturating_sub(since - 1) > secs;
        }
        info.obuf_soft_since.store(0, Ordering::Relaxed);
        false
    }
}

/// `soft_seconds` as Redis's `strtoll` check reads it: a non-negative decimal integer.
fn parse_soft_seconds(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ClientInfo {
        let addr = "127.0.0.1:1".parse().unwrap();
        ClientInfo::new(1, addr, addr)
    }

    #[test]
    fn output_limit_syntax_as_redis() {
        let l = ClientLimits::default();
        assert_eq!(l.output_config(), "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
        assert!(l.set_output("normal 1 2").is_err());
        assert_eq!(
            l.set_output("foo 1 2 3"),
            Err("Invalid client class specified in buffer limit configuration.")
        );
        for bad in ["normal -1 2 3", "normal 1x 2 3", "normal 1 2 x", "normal 1 2 -3", "normal 1.5 2 3"] {
            assert!(l.set_output(bad).is_err(), "{bad}");
        }
        // Nothing of a rejected value applies.
        assert!(l.set_output("normal 1 2 3 pubsub 1 2 x").is_err());
        assert_eq!(l.output_config(), "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
        l.set_output("normal 1mb 2MB 3 replica 1k 2kb 4").unwrap();
        assert_eq!(
            l.output_config(),
            "normal 1048576 2097152 3 slave 1000 2048 4 pubsub 33554432 8388608 60"
        );
        l.set_output("").unwrap();
    }

    #[test]
    fn buffer_settings_have_redis_bounds() {
        let l = ClientLimits::default();
        assert_eq!(l.set_query_buffer("100"), Err(OUT_OF_RANGE));
        assert_eq!(l.set_query_buffer("1.5gb"), Err(NOT_MEMORY));
        assert_eq!(l.set_proto_max_bulk_len("-1"), Err(NOT_MEMORY));
        l.set_query_buffer("1mb").unwrap();
        assert_eq!(l.query_buffer(), 1 << 20);
        l.set_proto_max_bulk_len("2GB").unwrap();
        assert_eq!(l.proto_max_bulk_len(), 2 << 30);
    }

    #[test]
    fn hard_and_soft_output_limits() {
        let l = ClientLimits::default();
        let c = info();
        l.set_output("normal 10mb 1mb 2").unwrap();
        assert!(!l.output_exceeded_at(&c, 1 << 20, 100));
        assert!(l.output_exceeded_at(&c, 11 << 20, 100));
        // Over the soft limit: tolerated for 2 seconds, closed after.
        assert!(!l.output_exceeded_at(&c, 2 << 20, 100));
        assert!(!l.output_exceeded_at(&c, 2 << 20, 102));
        assert!(l.output_exceeded_at(&c, 2 << 20, 103));
        // Going under resets the clock.
        assert!(!l.output_exceeded_at(&c, 1000, 104));
        assert!(!l.output_exceeded_at(&c, 2 << 20, 105));
    }
}
