//! The Pub/Sub hub: who is subscribed to what, and delivery of published messages to the
//! subscribers' connections. Each subscriber has an unbounded queue whose size in bytes is
//! tracked; a subscriber that lets more than its output-buffer limit pile up is disconnected
//! (Redis's `client-output-buffer-limit pubsub`, hard and soft), so one slow reader never holds the
//! others up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::client::ClientInfo;
use super::limits::ClientLimits;
use crate::commands::glob_match;

/// A message on its way to one subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub pattern: Option<Bytes>,
    pub channel: Bytes,
    pub payload: Bytes,
}

impl Delivery {
    pub fn size(&self) -> usize {
        self.pattern.as_ref().map(|p| p.len()).unwrap_or(0) + self.channel.len() + self.payload.len() + 32
    }
}

/// The sending end of a subscriber's queue.
pub struct Sink {
    pub tx: mpsc::UnboundedSender<Delivery>,
    /// Bytes queued and not yet written to the socket.
    pub queued: AtomicUsize,
    pub info: Arc<ClientInfo>,
}

impl Sink {
    pub fn new(info: Arc<ClientInfo>) -> (Arc<Sink>, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Sink { tx, queued: AtomicUsize::new(0), info }), rx)
    }
}

pub struct Hub {
    channels: HashMap<Bytes, Vec<Arc<Sink>>>,
    patterns: Vec<(Bytes, Arc<Sink>)>,
    /// The output limits a subscriber's pending bytes are held to.
    limits: Arc<ClientLimits>,
}

impl Hub {
    pub fn new(limits: Arc<ClientLimits>) -> Hub {
        Hub { channels: HashMap::new(), patterns: Vec::new(), limits }
    }

    /// Returns false if the client was already subscribed.
    pub fn subscribe(&mut self, channel: &Bytes, sink: &Arc<Sink>) -> bool {
        let subs = self.channels.entry(channel.clone()).or_default();
        if subs.iter().any(|s| s.info.id == sink.info.id) {
            return false;
        }
        subs.push(sink.clone());
        true
    }

    pub fn unsubscribe(&mut self, channel: &[u8], client: u64) -> bool {
        let Some(subs) = self.channels.get_mut(channel) else { return false };
        let before = subs.len();
        subs.retain(|s| s.info.id != client);
        let removed = subs.len() != before;
        if subs.is_empty() {
            self.channels.remove(channel);
        }
        removed
    }

    pub fn psubscribe(&mut self, pattern: &Bytes, sink: &Arc<Sink>) -> bool {
        if self.patterns.iter().any(|(p, s)| p == pattern && s.info.id == sink.info.id) {
            return false;
        }
        self.patterns.push((pattern.clone(), sink.clone()));
        true
    }

    pub fn punsubscribe(&mut self, pattern: &[u8], client: u64) -> bool {
        let before = self.patterns.len();
        self.patterns.retain(|(p, s)| !(p[..] == pattern[..] && s.info.id == client));
        self.patterns.len() != before
    }

    /// Delivers a message to every local subscriber; returns how many received it.
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let mut n = 0;
        if let Some(subs) = self.channels.get(channel) {
            for s in subs {
                n += self
                    .send(s, Delivery { pattern: None, channel: channel.clone(), payload: payload.clone() })
                    as usize;
            }
        }
        for (p, s) in &self.patterns {
            if glob_match(p, channel, false) {
                let d =
                    Delivery { pattern: Some(p.clone()), channel: channel.clone(), payload: payload.clone() };
                n += self.send(s, d) as usize;
            }
        }
        n
    }

    fn send(&self, sink: &Sink, d: Delivery) -> bool {
        let size = d.size();
        let queued = sink.queued.fetch_add(size, Ordering::AcqRel) + size;
        let pending = queued + sink.info.out_pending.load(Ordering::Relaxed);
        if self.limits.output_exceeded(&sink.info, pending) {
            // Too slow to read: disconnect it rather than buffer without bound.
            sink.info.kill();
            return true;
        }
        sink.tx.send(d).is_ok()
    }

    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.channels.keys().filter(|c| pattern.is_none_or(|p| glob_match(p, c, false))).cloned().collect()
    }

    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map(|s| s.len()).unwrap_or(0)
    }

    pub fn numpat(&self) -> usize {
        let mut unique: Vec<&Bytes> = self.patterns.iter().map(|(p, _)| p).collect();
        unique.sort();
        unique.dedup();
        unique.len()
    }

    /// Drops every subscription of a client that is going away.
    pub fn remove_client(&mut self, client: u64) {
        self.channels.retain(|_, subs| {
            subs.retain(|s| s.info.id != client);
            !subs.is_empty()
        });
        self.patterns.retain(|(_, s)| s.info.id != client);
    }
}
