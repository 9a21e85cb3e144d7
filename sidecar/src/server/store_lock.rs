//! The lock around the [`Store`], aware of long scripts.
//!
//! A script runs under the store lock for as long as it runs, on the worker thread of the
//! connection that sent it. A task that then waits for the lock must not pin its worker thread
//! for seconds: on a two-core machine the runtime would run out of workers, and nobody could
//! answer `BUSY` or serve `SCRIPT KILL`. So a wait that outlasts a short spin while a script
//! runs is moved off the runtime's workers (`block_in_place`), and a client connection stops
//! waiting altogether once the script is past the busy threshold (it gets `BUSY`).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use super::store::Store;
use crate::scripting::Status;

/// How long a waiter spins on its worker thread before stepping aside.
const SHORT_WAIT: Duration = Duration::from_millis(20);

pub struct StoreLock {
    inner: Mutex<Store>,
    scripts: Arc<Status>,
}

impl StoreLock {
    pub fn new(store: Store, scripts: Arc<Status>) -> StoreLock {
        StoreLock { inner: Mutex::new(store), scripts }
    }

    /// Waits for the store as long as it takes.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        if let Some(g) = self.inner.try_lock_for(SHORT_WAIT) {
            return g;
        }
        off_worker(|| self.inner.lock())
    }

    /// Waits for the store unless a script is past the busy threshold (None: answer `BUSY`).
    pub fn lock_for_client(&self, now_ms: impl Fn() -> u64) -> Option<MutexGuard<'_, Store>> {
        if let Some(g) = self.inner.try_lock_for(SHORT_WAIT) {
            return Some(g);
        }
        loop {
            if self.scripts.busy(now_ms()).is_some() {
                return None;
            }
            if let Some(g) = off_worker(|| self.inner.try_lock_for(SHORT_WAIT)) {
                return Some(g);
            }
        }
    }
}

/// Runs a blocking wait without holding up the runtime's other tasks (when called on a worker
/// of a multi-threaded runtime; anywhere else it just runs).
pub fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
