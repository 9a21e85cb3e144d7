//! Small pieces every listener shares: what an accept loop does when `accept` fails, and
//! comparing secrets without leaking where they differ.

use std::time::{Duration, Instant};

use tracing::warn;

/// What an accept loop does when `accept` fails (most often: out of file descriptors, which
/// stays true until connections close): wait, longer each time up to a second, and say so once
/// a second at most, so that a full descriptor table neither spins a core nor floods the log.
pub struct AcceptBackoff {
    listener: &'static str,
    delay: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    pub fn new(listener: &'static str) -> AcceptBackoff {
        AcceptBackoff { listener, delay: Self::FIRST, last_log: None, suppressed: 0 }
    }

    pub fn reset(&mut self) {
        self.delay = Self::FIRST;
    }

    pub async fn pause(&mut self, error: &std::io::Error) {
        if self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            warn!(listener = self.listener, error = %error, suppressed = self.suppressed, retry_ms = self.delay.as_millis() as u64, "accept failed");
            self.last_log = Some(Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Self::MAX);
    }
}

/// Compares a presented secret with the expected one in time that does not depend on where
/// they differ (both are hashed first, so the length does not leak either).
pub fn secret_eq(presented: &[u8], expected: &[u8]) -> bool {
    use ring::digest::{digest, SHA256};
    let (a, b) = (digest(&SHA256, presented), digest(&SHA256, expected));
    a.as_ref().iter().zip(b.as_ref()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
