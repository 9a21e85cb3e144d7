//! What other connections can know about the running script without taking the store lock:
//! whether one runs and since when, whether it wrote, and a request to kill it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

/// Redis's `busy-reply-threshold` (formerly `lua-time-limit`) default, in milliseconds.
pub const DEFAULT_BUSY_THRESHOLD_MS: u64 = 5000;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Running {
    /// `EVAL`/`EVALSHA`.
    Script,
    /// `FCALL`.
    Function,
}

pub struct Status {
    /// Unix ms when the running script started; 0 when none runs.
    started_ms: AtomicU64,
    function: AtomicBool,
    wrote: AtomicBool,
    kill: AtomicBool,
    /// The running script's thread has left the runtime's workers (see `Status::step_aside`).
    stepped_aside: AtomicBool,
    threshold_ms: AtomicU64,
    /// `--script-time-limit-ms` (0: none).
    time_limit_ms: AtomicU64,
    /// The running function's name and the command that runs it (`FUNCTION STATS`).
    running: Mutex<Option<(String, Vec<Bytes>)>>,
    /// Libraries and functions loaded (`FUNCTION STATS` answers it while a script is busy).
    pub counts: Mutex<(usize, usize)>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            started_ms: AtomicU64::new(0),
            function: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            kill: AtomicBool::new(false),
            stepped_aside: AtomicBool::new(false),
            threshold_ms: AtomicU64::new(DEFAULT_BUSY_THRESHOLD_MS),
            time_limit_ms: AtomicU64::new(0),
            running: Mutex::new(None),
            counts: Mutex::new((0, 0)),
        }
    }
}

/// What `SCRIPT KILL` / `FUNCTION KILL` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Kill {
    Requested,
    NothingRuns,
    AlreadyWrote,
    /// `SCRIPT KILL` on a function or `FUNCTION KILL` on a script.
    WrongKind(Running),
}

impl Status {
    pub fn start(&self, now_ms: u64, kind: Running, name: &str, command: &[Bytes]) {
        self.kill.store(false, Ordering::Release);
        self.wrote.store(false, Ordering::Release);
        self.stepped_aside.store(false, Ordering::Release);
        self.function.store(kind == Running::Function, Ordering::Release);
        {
            // Reuses the previous call's allocations where it can (this runs for every EVAL).
            let mut running = self.running.lock();
            let (n, c) = running.get_or_insert_with(Default::default);
            n.clear();
            n.push_str(name);
            c.clear();
            c.extend_from_slice(command);
        }
        self.started_ms.store(now_ms.max(1), Ordering::Release);
    }

    pub fn finish(&self) {
        self.started_ms.store(0, Ordering::Release);
        self.kill.store(false, Ordering::Release);
    }

    /// Called from the script's hook: once a script has run for a while, its thread hands its
    /// place among the runtime's workers to another thread, so that the other connections,
    /// the mesh and the accept loops keep running (they answer `BUSY`, serve `SCRIPT KILL`).
    pub fn step_aside(&self, now_ms: u64) {
        const AFTER_MS: u64 = 10;
        let started = self.started_ms.load(Ordering::Acquire);
        if started == 0
            || now_ms.saturating_sub(started) < AFTER_MS
            || self.stepped_aside.swap(true, Ordering::AcqRel)
        {
            return;
        }
        // The worker's core moves to a new thread while this closure runs; once it has been
        // taken there, this thread stays off the workers until the command ends.
        crate::server::store_lock::off_worker(|| std::thread::sleep(std::time::Duration::from_millis(2)));
    }

    pub fn mark_wrote(&self) {
        self.wrote.store(true, Ordering::Release);
    }

    pub fn kill_requested(&self) -> bool {
        self.kill.load(Ordering::Acquire)
    }

    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Ordering::Relaxed);
    }

    pub fn set_time_limit_ms(&self, ms: u64) {
        self.time_limit_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the running script has outlived `--script-time-limit-ms`.
    pub fn over_time_limit(&self, now_ms: u64) -> bool {
        let (started, limit) =
            (self.started_ms.load(Ordering::Acquire), self.time_limit_ms.load(Ordering::Relaxed));
        started != 0 && limit != 0 && now_ms.saturating_sub(started) > limit
    }

    /// The running script's kind, if one runs.
    pub fn running(&self) -> Option<Running> {
        if self.started_ms.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(if self.function.load(Ordering::Acquire) { Running::Function } else { Running::Script })
    }

    /// The running script's kind if it has run past the busy threshold.
    pub fn busy(&self, now_ms: u64) -> Option<Running> {
        let started = self.started_ms.load(Ordering::Acquire);
        let threshold = self.threshold_ms();
        if started == 0 || threshold == 0 || now_ms.saturating_sub(started) < threshold {
            return None;
        }
        self.running()
    }

    /// The running function's name, command and how long it has run (`FUNCTION STATS`).
    pub fn describe(&self, now_ms: u64) -> Option<(String, Vec<Bytes>, u64)> {
        let started = self.started_ms.load(Ordering::Acquire);
        if started == 0 {
            return None;
        }
        let running = self.running.lock().clone()?;
        Some((running.0, running.1, now_ms.saturating_sub(started)))
    }

    /// `SCRIPT KILL` (`function` false) or `FUNCTION KILL` (`function` true).
    pub fn request_kill(&self, function: bool) -> Kill {
        let Some(kind) = self.running() else { return Kill::NothingRuns };
        if self.wrote.load(Ordering::Acquire) {
            return Kill::AlreadyWrote;
        }
        if (kind == Running::Function) != function {
            return Kill::WrongKind(kind);
        }
        self.kill.store(true, Ordering::Release);
        Kill::Requested
    }
}
