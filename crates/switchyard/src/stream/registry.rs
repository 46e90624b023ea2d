//! Streams and idempotent requests this process is serving or has kept.
//!
//! A stream's buffer stays here while it is generated and for
//! `streams.retain_s` after, so its caller (and only its caller) can
//! re-attach through `GET /v1/streams/{id}`. An `Idempotency-Key` maps to
//! the first request that used it (with a hash of its body), so a retry
//! attaches to that request's stream or result instead of calling the
//! provider again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use super::buffer::Buffer;
use crate::chat::Dialect;

/// A stream kept for re-attachment.
#[derive(Debug, Clone)]
pub struct Kept {
    pub buffer: Arc<Buffer>,
    /// Who may re-attach: the key id, or `anonymous`.
    pub owner: String,
    pub dialect: Dialect,
    pub provider: String,
    pub model: String,
    pub ended: Option<Instant>,
}

/// How the first request with an idempotency key turned out.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Still running (a non-stream answer is on its way).
    Running,
    /// A stream: attach to its buffer.
    Stream(String),
    /// A complete answer to hand out again.
    Whole(Arc<StoredAnswer>),
}

#[derive(Debug)]
pub struct StoredAnswer {
    pub body: Bytes,
    pub content_type: &'static str,
    pub provider: String,
    pub model: String,
    pub request_id: String,
}

#[derive(Debug)]
struct Idem {
    body_hash: [u8; 32],
    request_id: String,
    outcome: watch::Receiver<Outcome>,
    ended: Option<Instant>,
}

#[derive(Debug)]
pub struct Streams {
    kept: Mutex<HashMap<String, Kept>>,
    idem: Mutex<HashMap<(String, String), Idem>>,
    /// Streams still generating with no client attached.
    pub detached: AtomicUsize,
    pub retain: Duration,
}

/// What an idempotency lookup found.
pub enum Lookup {
    /// First use: go ahead, and resolve the claim when done.
    Claimed(Claim),
    /// The key was used with another body.
    Mismatch,
    /// The key's request: wait on it, then attach.
    Attach(String, watch::Receiver<Outcome>),
}

/// A claimed idempotency key. Dropped without `resolve`, it is released
/// (the request failed or was abandoned), so a retry runs again.
pub struct Claim {
    streams: Arc<Streams>,
    key: (String, String),
    tx: Option<watch::Sender<Outcome>>,
}

impl Claim {
    pub fn resolve(mut self, outcome: Outcome) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(outcome);
            if let Some(e) = self.streams.lock_idem().get_mut(&self.key) {
                e.ended = Some(Instant::now());
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.streams.lock_idem().remove(&self.key);
        }
    }
}

/// A claimed idempotency key, in this process or shared through Redis.
pub enum IdemClaim {
    Local(Claim),
    Shared(super::shared::SharedClaim),
}

impl IdemClaim {
    pub fn resolve(self, outcome: Outcome) {
        match self {
            IdemClaim::Local(c) => c.resolve(outcome),
            IdemClaim::Shared(c) => c.resolve(&outcome),
        }
    }
}

pub fn body_hash(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

impl Streams {
    pub fn new(retain: Duration) -> Arc<Streams> {
        Arc::new(Streams {
            kept: Mutex::new(HashMap::new()),
            idem: Mutex::new(HashMap::new()),
            detached: AtomicUsize::new(0),
            retain,
        })
    }

    fn lock_idem(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Idem>> {
        self.idem.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_kept(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn keep(&self, id: &str, kept: Kept) {
        self.lock_kept().insert(id.to_owned(), kept);
    }

    pub fn ended(&self, id: &str) {
        if let Some(k) = self.lock_kept().get_mut(id) {
            k.ended = Some(Instant::now());
        }
    }

    /// A kept stream, if `owner` may see it. Another caller's stream is
    /// reported exactly like a missing one.
    pub fn get(&self, id: &str, owner: &str) -> Option<Kept> {
        self.lock_kept()
            .get(id)
            .filter(|k| k.owner == owner)
            .cloned()
    }

    pub fn idempotent(
        self: &Arc<Self>,
        owner: &str,
        key: &str,
        hash: [u8; 32],
        request_id: &str,
    ) -> Lookup {
        let k = (owner.to_owned(), key.to_owned());
        let mut map = self.lock_idem();
        if let Some(e) = map.get(&k) {
            return if e.body_hash == hash {
                Lookup::Attach(e.request_id.clone(), e.outcome.clone())
            } else {
                Lookup::Mismatch
            };
        }
        let (tx, rx) = watch::channel(Outcome::Running);
        map.insert(
            k.clone(),
            Idem {
                body_hash: hash,
                request_id: request_id.to_owned(),
                outcome: rx,
                ended: None,
            },
        );
        Lookup::Claimed(Claim {
            streams: self.clone(),
            key: k,
            tx: Some(tx),
        })
    }

    /// Forgets what ended more than `retain` ago.
    pub fn sweep(&self) {
        let now = Instant::now();
        let stale =
            |ended: Option<Instant>| ended.is_some_and(|t| now.duration_since(t) > self.retain);
        self.lock_kept().retain(|_, k| !stale(k.ended));
        self.lock_idem().retain(|_, e| !stale(e.ended));
    }

    pub fn kept_count(&self) -> usize {
        self.lock_kept().len()
    }

    pub fn detached(&self) -> usize {
        self.detached.load(Ordering::Relaxed)
    }
}
