//! Streams and idempotent requests this process is serving or has kept.
//!
//! A stream's buffer stays here while it is generated and after, so its
//! caller (and only its caller) can re-attach through
//! `GET /v1/streams/{id}`: for `streams.retain_s` when the caller did not
//! read it to the end (it went away: resuming is what the buffer is for),
//! for the shorter `streams.delivered_retain_s` when it did (0 by default:
//! a stream read to its end without an `Idempotency-Key` is forgotten the
//! moment its end is read, as nobody has anything left to resume). What ended
//! streams keep is bounded by `streams.max_retained_bytes` as well; past
//! it the oldest delivered streams go first, then the oldest of the rest,
//! so memory does not grow with throughput. An `Idempotency-Key` maps to
//! the first request that used it (with a hash of its body), so a retry
//! attaches to that request's stream or result instead of calling the
//! provider again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use super::buffer::Buffer;
use crate::dialect::Dialect;

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
    /// An `Idempotency-Key` points at it: kept for the full retention
    /// even once delivered, so a retry still attaches.
    pub idempotent: bool,
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

/// Kept streams, and the ended ones in the order they ended.
#[derive(Debug, Default)]
struct KeptSet {
    map: HashMap<String, Kept>,
    /// Ids of ended streams, oldest first; an id no longer in `map` is
    /// skipped when met.
    ended: VecDeque<String>,
    /// Bytes held by the buffers of ended streams.
    bytes: usize,
}

/// How long ended streams are kept, and how much of them.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub undelivered: Duration,
    pub delivered: Duration,
    pub max_bytes: usize,
}

#[derive(Debug)]
pub struct Streams {
    kept: Mutex<KeptSet>,
    idem: Mutex<HashMap<(String, String), Idem>>,
    /// Streams still generating with no client attached.
    pub detached: AtomicUsize,
    pub retain: Duration,
    retention: Retention,
    /// Delivered streams forgotten at once, whose Redis mirrors the next
    /// sweep deletes.
    forgotten: Mutex<Vec<String>>,
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

/// Forgets one ended stream: the oldest delivered one among the oldest few,
/// else the oldest. `false` when none is left to forget.
fn evict_one(set: &mut KeptSet) -> bool {
    // Ids already forgotten (by a sweep) are dropped on the way.
    while let Some(front) = set.ended.front() {
        if set.map.contains_key(front) {
            break;
        }
        set.ended.pop_front();
    }
    if set.ended.is_empty() {
        return false;
    }
    let pick = set
        .ended
        .iter()
        .take(64)
        .position(|id| {
            set.map
                .get(id)
                .is_some_and(|k| k.buffer.delivered() && !k.idempotent)
        })
        .unwrap_or(0);
    let Some(id) = set.ended.remove(pick) else {
        return false;
    };
    if let Some(k) = set.map.remove(&id) {
        set.bytes = set.bytes.saturating_sub(k.buffer.bytes());
    }
    true
}

pub fn body_hash(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

impl Streams {
    pub fn new(retention: Retention) -> Arc<Streams> {
        Arc::new(Streams {
            kept: Mutex::new(KeptSet::default()),
            idem: Mutex::new(HashMap::new()),
            detached: AtomicUsize::new(0),
            retain: retention.undelivered,
            retention,
            forgotten: Mutex::new(Vec::new()),
        })
    }

    fn lock_idem(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Idem>> {
        self.idem.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_kept(&self) -> std::sync::MutexGuard<'_, KeptSet> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn keep(self: &Arc<Self>, id: &str, kept: Kept) {
        if !kept.idempotent && self.retention.delivered.is_zero() {
            kept.buffer
                .release_when_delivered(Arc::downgrade(self), id.to_owned());
        }
        self.lock_kept().map.insert(id.to_owned(), kept);
    }

    /// A follower read stream `id` to its end and it is kept for no time
    /// after that (`delivered_retain_s = 0`): it goes now, whether or not
    /// its pump has reported the end yet.
    pub(super) fn forget_delivered(&self, id: &str) {
        let mut set = self.lock_kept();
        if set.map.get(id).is_none_or(|k| k.idempotent) {
            return;
        }
        if let Some(k) = set.map.remove(id)
            && k.ended.is_some()
        {
            set.bytes = set.bytes.saturating_sub(k.buffer.bytes());
        }
        drop(set);
        self.forgotten
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id.to_owned());
    }

    /// The stream finished generating: from now on its buffer counts
    /// against the bound, and the oldest ended streams make room.
    pub fn ended(&self, id: &str) {
        let mut set = self.lock_kept();
        let Some(k) = set.map.get_mut(id) else {
            return;
        };
        if k.ended.is_some() {
            return;
        }
        k.ended = Some(Instant::now());
        let bytes = k.buffer.bytes();
        set.bytes += bytes;
        set.ended.push_back(id.to_owned());
        while set.bytes > self.retention.max_bytes && evict_one(&mut set) {}
    }

    /// A kept stream, if `owner` may see it. Another caller's stream is
    /// reported exactly like a missing one.
    pub fn get(&self, id: &str, owner: &str) -> Option<Kept> {
        self.lock_kept()
            .map
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

    /// Forgets what has outlived its retention. Returns the ids of the
    /// delivered streams forgotten early (`delivered_retain`, here or at
    /// once), whose Redis mirrors are to go with them.
    pub fn sweep(&self) -> Vec<String> {
        let now = Instant::now();
        let r = self.retention;
        let mut delivered = Vec::new();
        {
            let mut set = self.lock_kept();
            let mut freed = 0;
            set.map.retain(|id, k| {
                let keep = k.ended.is_none_or(|t| {
                    let age = now.duration_since(t);
                    let limit = if k.buffer.delivered() && !k.idempotent {
                        r.delivered
                    } else {
                        r.undelivered
                    };
                    age <= limit
                });
                if !keep {
                    freed += k.buffer.bytes();
                    if k.buffer.delivered() && !k.idempotent {
                        delivered.push(id.clone());
                    }
                }
                keep
            });
            set.bytes = set.bytes.saturating_sub(freed);
            let KeptSet { map, ended, .. } = &mut *set;
            ended.retain(|id| map.contains_key(id));
        }
        let stale =
            |ended: Option<Instant>| ended.is_some_and(|t| now.duration_since(t) > self.retain);
        self.lock_idem().retain(|_, e| !stale(e.ended));
        delivered.append(&mut self.forgotten.lock().unwrap_or_else(|p| p.into_inner()));
        delivered
    }

    pub fn kept_count(&self) -> usize {
        self.lock_kept().map.len()
    }

    /// Bytes held by the buffers of streams that have ended.
    pub fn retained_bytes(&self) -> usize {
        self.lock_kept().bytes
    }

    pub fn detached(&self) -> usize {
        self.detached.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Chunk;
    use futures_util::StreamExt;

    fn kept(bytes: usize) -> Kept {
        let buffer = Buffer::new(1 << 20);
        buffer.push(Chunk::new(Bytes::from(vec![b'x'; bytes]), vec![0]));
        buffer.close();
        Kept {
            buffer,
            owner: "o".into(),
            dialect: Dialect::OpenAi,
            provider: "p".into(),
            model: "m".into(),
            ended: None,
            idempotent: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ended_streams_are_bounded_and_delivered_ones_go_first() {
        let s = Streams::new(Retention {
            undelivered: Duration::from_secs(600),
            delivered: Duration::from_secs(30),
            max_bytes: 100,
        });
        for id in ["a", "b", "c"] {
            s.keep(id, kept(40));
        }
        // `b` was read to its end by its caller.
        let b = s.get("b", "o").unwrap().buffer;
        let mut follow = Box::pin(b.follow(0));
        while follow.next().await.is_some() {}
        drop(follow);
        s.ended("a");
        s.ended("b");
        assert_eq!(s.retained_bytes(), 80);
        s.ended("c");
        assert!(s.get("b", "o").is_none(), "the delivered one made room");
        assert!(s.get("a", "o").is_some() && s.get("c", "o").is_some());
        assert_eq!(s.retained_bytes(), 80);
        // Still running: not counted, not evicted.
        s.keep("d", kept(90));
        assert_eq!(s.retained_bytes(), 80);
        s.ended("d");
        assert!(s.get("a", "o").is_none() && s.get("c", "o").is_none());
        assert_eq!((s.kept_count(), s.retained_bytes()), (1, 90));
        // Kept for `retain` when nobody read it to the end...
        tokio::time::advance(Duration::from_secs(599)).await;
        s.sweep();
        assert!(s.get("d", "o").is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        s.sweep();
        assert_eq!((s.kept_count(), s.retained_bytes()), (0, 0));
        // ...and for the shorter time when its caller had all of it.
        s.keep("e", kept(10));
        let e = s.get("e", "o").unwrap().buffer;
        let mut follow = Box::pin(e.follow(0));
        while follow.next().await.is_some() {}
        s.ended("e");
        tokio::time::advance(Duration::from_secs(31)).await;
        s.sweep();
        assert!(s.get("e", "o").is_none());
    }

    async fn read_all(s: &Streams, id: &str) {
        let b = s.get(id, "o").unwrap().buffer;
        let mut follow = Box::pin(b.follow(0));
        while follow.next().await.is_some() {}
    }

    #[tokio::test]
    async fn with_no_delivered_retention_a_stream_read_to_its_end_goes_at_once() {
        let s = Streams::new(Retention {
            undelivered: Duration::from_secs(600),
            delivered: Duration::ZERO,
            max_bytes: 1000,
        });
        // Read to its end after its pump reported the end...
        s.keep("a", kept(40));
        s.ended("a");
        assert_eq!(s.retained_bytes(), 40);
        read_all(&s, "a").await;
        assert!(s.get("a", "o").is_none());
        assert_eq!(s.retained_bytes(), 0, "its bytes are no longer counted");
        // ...and before: the late report finds nothing to count.
        s.keep("b", kept(40));
        read_all(&s, "b").await;
        assert!(s.get("b", "o").is_none());
        s.ended("b");
        assert_eq!((s.kept_count(), s.retained_bytes()), (0, 0));
        // Under an Idempotency-Key, or not read to the end: kept.
        let mut idem = kept(40);
        idem.idempotent = true;
        s.keep("c", idem);
        s.keep("d", kept(40));
        s.ended("c");
        s.ended("d");
        read_all(&s, "c").await;
        assert!(s.get("c", "o").is_some() && s.get("d", "o").is_some());
        assert_eq!(s.retained_bytes(), 80);
        // The next sweep hands over the ids forgotten early, once, for
        // their Redis mirrors.
        let mut swept = s.sweep();
        swept.sort();
        assert_eq!(swept, ["a", "b"]);
        assert!(s.sweep().is_empty());
    }
}
