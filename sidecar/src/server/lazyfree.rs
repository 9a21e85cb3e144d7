//! Lazy free: large values that `UNLINK` (and `DEL` with `lazyfree-lazy-user-del yes`) delete are
//! dropped on a background thread, so freeing a million-element list does not stall the clients
//! behind the command (Redis's `lazyfree.c`).

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::Mutex;

/// Collections with more elements than this are freed in the background (Redis's
/// `LAZYFREE_THRESHOLD`); large string values always are.
pub const LAZYFREE_THRESHOLD: usize = 64;

type Garbage = Vec<Box<dyn Any + Send>>;

#[derive(Default)]
struct Counters {
    /// Batches handed over and not yet freed.
    pending: AtomicU64,
    /// Batches freed since start.
    freed: AtomicU64,
}

pub struct LazyFree {
    /// None once the thread could not be started: things are then freed in place.
    tx: Mutex<Option<mpsc::Sender<Garbage>>>,
    counters: Arc<Counters>,
}

impl LazyFree {
    pub fn start() -> LazyFree {
        let (tx, rx) = mpsc::channel::<Garbage>();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let started = std::thread::Builder::new().name("lazyfree".into()).spawn(move || {
            for garbage in rx {
                drop(garbage);
                c.pending.fetch_sub(1, Ordering::Relaxed);
                c.freed.fetch_add(1, Ordering::Relaxed);
            }
        });
        LazyFree { tx: Mutex::new(started.ok().map(|_| tx)), counters }
    }

    /// Drops `garbage` on the background thread.
    pub fn free(&self, garbage: Garbage) {
        if garbage.is_empty() {
            return;
        }
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        let unsent = match self.tx.lock().as_ref() {
            Some(tx) => tx.send(garbage).err().map(|e| e.0),
            None => Some(garbage),
        };
        if let Some(garbage) = unsent {
            drop(garbage);
            self.counters.pending.fetch_sub(1, Ordering::Relaxed);
            self.counters.freed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `lazyfree_pending_objects` of `INFO memory`.
    pub fn pending(&self) -> u64 {
        self.counters.pending.load(Ordering::Relaxed)
    }

    /// `lazyfreed_objects` of `INFO stats`.
    pub fn freed(&self) -> u64 {
        self.counters.freed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_dropped_in_the_background() {
        let lf = LazyFree::start();
        let big: Vec<u64> = (0..1_000_000).collect();
        lf.free(vec![Box::new(big)]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while lf.freed() < 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!((lf.freed(), lf.pending()), (1, 0));
    }
}
