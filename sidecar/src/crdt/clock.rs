//! Hybrid logical clocks.
//!
//! A [`Timestamp`] packs milliseconds since the Unix epoch (upper 48 bits) and a logical counter
//! (lower 16 bits) into one `u64`, so timestamps compare as integers. The clock never goes
//! backwards: a wall clock that steps back, or a peer whose clock runs ahead, only makes the
//! logical part advance. Every timestamp a replica issues is unique for that replica, which is
//! why `(replica, timestamp)` serves as the replica's [`Dot`](super::Dot).

use serde::{Deserialize, Serialize};

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// A hybrid logical clock reading.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    pub fn new(millis: u64, logical: u64) -> Timestamp {
        Timestamp((millis << LOGICAL_BITS) | (logical & LOGICAL_MASK))
    }

    /// Milliseconds since the Unix epoch of the physical part.
    pub fn millis(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    pub fn logical(self) -> u64 {
        self.0 & LOGICAL_MASK
    }
}

/// `millis.logical`, as logs and error messages show a timestamp.
impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.millis(), self.logical())
    }
}

/// The clock of one replica. `offset_ms` skews the wall clock it reads (used by fault tests to
/// simulate a host whose clock is wrong).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    last: Timestamp,
    offset_ms: i64,
}

impl Clock {
    pub fn new(offset_ms: i64) -> Clock {
        Clock { last: Timestamp::ZERO, offset_ms }
    }

    /// A clock that resumes after `last` (a replica restarting from disk never reissues a dot).
    pub fn resume(last: Timestamp, offset_ms: i64) -> Clock {
        Clock { last, offset_ms }
    }

    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// The wall clock as this replica sees it (with the configured offset).
    pub fn wall_millis(&self, wall_ms: u64) -> u64 {
        (wall_ms as i64 + self.offset_ms).max(0) as u64
    }

    /// A fresh timestamp, strictly greater than every timestamp issued or observed before.
    pub fn tick(&mut self, wall_ms: u64) -> Timestamp {
        let physical = Timestamp::new(self.wall_millis(wall_ms), 0);
        self.last = if physical > self.last { physical } else { Timestamp(self.last.0 + 1) };
        self.last
    }

    /// Moves the clock past a timestamp received from a peer, so that writes issued here after
    /// seeing a remote write are ordered after it (the HLC receive rule).
    pub fn observe(&mut self, remote: Timestamp) {
        if remote > self.last {
            self.last = remote;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_when_the_wall_clock_steps_back() {
        let mut clock = Clock::new(0);
        let a = clock.tick(1_000);
        let b = clock.tick(1_000);
        let c = clock.tick(500);
        assert!(a < b && b < c);
        assert_eq!(c.millis(), 1_000);
    }

    #[test]
    fn observing_a_future_timestamp_orders_later_ticks_after_it() {
        let mut clock = Clock::new(0);
        let remote = Timestamp::new(9_000, 7);
        clock.observe(remote);
        assert!(clock.tick(1_000) > remote);
    }

    #[test]
    fn offset_skews_the_physical_part() {
        let mut clock = Clock::new(-300);
        assert_eq!(clock.tick(1_000).millis(), 700);
    }
}
