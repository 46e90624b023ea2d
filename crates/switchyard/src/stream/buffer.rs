//! The replay buffer: every event of one stream, in order, numbered from 0,
//! for the live client and for anyone who resumes after any event.
//!
//! Events are kept as the chunks the pump wrote (one `Bytes` each, with the
//! offset of every event in it), so a reader that is keeping up gets whole
//! chunks without a copy, and one that resumes mid-chunk gets a slice.
//! The buffer is bounded: past `max_bytes` it keeps only what a follower
//! attached now has not read yet, and says it can no longer resume from
//! the start (`overflowed`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::Notify;

use super::registry::Streams;

/// What a reader of a stream past `streams.max_buffer_bytes` is told.
pub const OUTGROWN: &str =
    "this stream outgrew its resume buffer (streams.max_buffer_bytes); its events are gone";

/// Events written in one go: the bytes and where each event starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    pub bytes: Bytes,
    pub starts: Vec<u32>,
}

impl Chunk {
    pub fn new(bytes: Bytes, starts: Vec<u32>) -> Chunk {
        Chunk { bytes, starts }
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

#[derive(Debug)]
struct Stored {
    chunk: Chunk,
    first_id: u64,
}

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Stored>,
    /// The id the next event pushed gets.
    next_id: u64,
    bytes: usize,
    done: bool,
    /// Old events were dropped: resuming from before `first_kept` fails.
    overflowed: bool,
    /// Cursors of attached followers (the next id each wants).
    cursors: Vec<Weak<AtomicU64>>,
}

#[derive(Debug)]
pub struct Buffer {
    state: Mutex<State>,
    notify: Notify,
    followers: AtomicUsize,
    max_bytes: usize,
    /// A follower read the stream to its end.
    delivered: AtomicBool,
    /// Told when that happens: the registry that forgets a stream no one
    /// may resume any more, and the stream's id there.
    release: OnceLock<(Weak<Streams>, String)>,
}

/// What a reader gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Bytes of events `[cursor, next)`, and `next`.
    Data(Bytes, u64),
    Done,
    Wait,
    /// The events asked for were dropped (the buffer overflowed).
    Gone,
}

impl Buffer {
    pub fn new(max_bytes: usize) -> Arc<Buffer> {
        Arc::new(Buffer {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            followers: AtomicUsize::new(0),
            max_bytes,
            delivered: AtomicBool::new(false),
            release: OnceLock::new(),
        })
    }

    /// Once a follower has read the whole stream, `streams` forgets it as
    /// `id`.
    pub(super) fn release_when_delivered(&self, streams: Weak<Streams>, id: String) {
        let _ = self.release.set((streams, id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, chunk: Chunk) {
        if chunk.is_empty() {
            return;
        }
        {
            let mut s = self.lock();
            let first_id = s.next_id;
            s.next_id += chunk.starts.len() as u64;
            s.bytes += chunk.bytes.len();
            s.chunks.push_back(Stored { chunk, first_id });
            if s.bytes > self.max_bytes {
                s.overflowed = true;
                // Keep only what an attached follower still has to read.
                s.cursors.retain(|c| c.strong_count() > 0);
                let keep_from = s
                    .cursors
                    .iter()
                    .filter_map(Weak::upgrade)
                    .map(|c| c.load(Ordering::Acquire))
                    .min()
                    .unwrap_or(u64::MAX);
                while let Some(front) = s.chunks.front() {
                    let end = front.first_id + front.chunk.starts.len() as u64;
                    if end > keep_from {
                        break;
                    }
                    let len = front.chunk.bytes.len();
                    s.chunks.pop_front();
                    s.bytes -= len;
                }
            }
        }
        self.notify.notify_waiters();
    }

    pub fn close(&self) {
        self.lock().done = true;
        self.notify.notify_waiters();
    }

    /// Once the stream is done: its events in one allocation of exactly
    /// their size. The chunks the pump wrote share the blocks its writer
    /// grew, so a kept stream would otherwise hold those blocks' spare room
    /// too, and the retention bound (which counts event bytes) would
    /// understate what ended streams really cost.
    pub fn compact(&self) {
        let mut s = self.lock();
        let Some(first_id) = s.chunks.front().map(|c| c.first_id) else {
            return;
        };
        if !s.done {
            return;
        }
        let events = s.chunks.iter().map(|c| c.chunk.starts.len()).sum();
        let mut bytes = Vec::with_capacity(s.bytes);
        let mut starts = Vec::with_capacity(events);
        for c in &s.chunks {
            let base = bytes.len() as u32;
            starts.extend(c.chunk.starts.iter().map(|o| base + o));
            bytes.extend_from_slice(&c.chunk.bytes);
        }
        s.chunks = VecDeque::from([Stored {
            chunk: Chunk::new(Bytes::from(bytes), starts),
            first_id,
        }]);
        s.cursors.retain(|c| c.strong_count() > 0);
        s.cursors.shrink_to_fit();
    }

    pub fn is_done(&self) -> bool {
        self.lock().done
    }

    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Events written so far.
    pub fn len(&self) -> u64 {
        self.lock().next_id
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn followers(&self) -> usize {
        self.followers.load(Ordering::Acquire)
    }

    /// Whether a follower has read the whole stream, its end included.
    pub fn delivered(&self) -> bool {
        self.delivered.load(Ordering::Acquire)
    }

    /// Everything from event `cursor` on that is available now.
    pub fn read_from(&self, cursor: u64) -> Read {
        let s = self.lock();
        if cursor >= s.next_id {
            return if s.done { Read::Done } else { Read::Wait };
        }
        let Some(first) = s.chunks.front() else {
            return Read::Gone;
        };
        if cursor < first.first_id {
            return Read::Gone;
        }
        // The chunk holding `cursor`: chunks are in id order.
        let i = s
            .chunks
            .partition_point(|c| c.first_id + c.chunk.starts.len() as u64 <= cursor);
        let c = &s.chunks[i];
        let offset = c.chunk.starts[(cursor - c.first_id) as usize] as usize;
        let head = c.chunk.bytes.slice(offset..);
        let rest = s.chunks.len() - i - 1;
        let out = if rest == 0 {
            head
        } else {
            let len = head.len()
                + s.chunks
                    .iter()
                    .skip(i + 1)
                    .map(|c| c.chunk.bytes.len())
                    .sum::<usize>();
            let mut joined = BytesMut::with_capacity(len);
            joined.extend_from_slice(&head);
            for c in s.chunks.iter().skip(i + 1) {
                joined.extend_from_slice(&c.chunk.bytes);
            }
            joined.freeze()
        };
        Read::Data(out, s.next_id)
    }

    /// Where each event starts in `read_from(0)`'s bytes (whose length is
    /// `len`), for mirroring what was written before the mirror existed.
    pub fn starts_of_first(&self, len: usize) -> Vec<u32> {
        let s = self.lock();
        let mut out = Vec::new();
        let mut base = 0u32;
        for c in &s.chunks {
            out.extend(c.chunk.starts.iter().map(|o| base + o));
            base += c.chunk.bytes.len() as u32;
        }
        out.retain(|o| (*o as usize) < len);
        out
    }

    /// Every event so far, joined (for caching a finished stream).
    pub fn all(&self) -> Option<Bytes> {
        match self.read_from(0) {
            Read::Data(b, _) => Some(b),
            Read::Done | Read::Wait => Some(Bytes::new()),
            Read::Gone => None,
        }
    }

    /// Follows the stream from event `from`, live, until it ends. Every
    /// event already available is sent in one write.
    pub fn follow(
        self: Arc<Self>,
        from: u64,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        self.followers.fetch_add(1, Ordering::AcqRel);
        let cursor = Arc::new(AtomicU64::new(from));
        self.lock().cursors.push(Arc::downgrade(&cursor));
        let guard = Follower {
            buffer: self,
            cursor,
        };
        futures_util::stream::unfold(guard, |guard| async move {
            let next = loop {
                let notified = guard.buffer.notify.notified();
                tokio::pin!(notified);
                // Registered before the check, so a push between the check
                // and the await still wakes us.
                notified.as_mut().enable();
                match guard.buffer.read_from(guard.cursor.load(Ordering::Acquire)) {
                    Read::Wait => notified.await,
                    ready => break ready,
                }
            };
            match next {
                Read::Data(bytes, to) => {
                    guard.cursor.store(to, Ordering::Release);
                    Some((Ok(bytes), guard))
                }
                Read::Gone => Some((
                    Err(std::io::Error::other("the stream outgrew its buffer")),
                    guard,
                )),
                _ => {
                    let b = &guard.buffer;
                    if !b.delivered.swap(true, Ordering::AcqRel)
                        && let Some((streams, id)) = b.release.get()
                        && let Some(streams) = streams.upgrade()
                    {
                        streams.forget_delivered(id);
                    }
                    None
                }
            }
        })
    }
}

struct Follower {
    buffer: Arc<Buffer>,
    cursor: Arc<AtomicU64>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.buffer.followers.fetch_sub(1, Ordering::AcqRel);
        // Wake the pump: it may be waiting to learn it is detached.
        self.buffer.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn chunk(events: &[&str]) -> Chunk {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for e in events {
            starts.push(bytes.len() as u32);
            bytes.extend_from_slice(e.as_bytes());
        }
        Chunk::new(Bytes::from(bytes), starts)
    }

    #[test]
    fn compacting_keeps_every_resume_point() {
        let b = Buffer::new(1 << 20);
        b.push(chunk(&["a0;", "a1;", "a2;"]));
        b.push(chunk(&["b3;"]));
        b.push(chunk(&["c4;", "c5;"]));
        let before: Vec<Read> = (0..7).map(|i| b.read_from(i)).collect();
        b.compact();
        assert_eq!(b.lock().chunks.len(), 3, "not done yet: left as written");
        b.close();
        b.compact();
        assert_eq!(b.lock().chunks.len(), 1);
        let after: Vec<Read> = (0..7).map(|i| b.read_from(i)).collect();
        assert_eq!(before[..6], after[..6]);
        assert_eq!(after[6], Read::Done);
        assert_eq!(b.bytes(), "a0;a1;a2;b3;c4;c5;".len());
        assert_eq!(b.starts_of_first(18), [0, 3, 6, 9, 12, 15]);
    }

    #[test]
    fn reads_resume_after_any_event() {
        let b = Buffer::new(1 << 20);
        b.push(chunk(&["a0;", "a1;", "a2;"]));
        b.push(chunk(&["b3;"]));
        assert_eq!(b.read_from(0), Read::Data(Bytes::from("a0;a1;a2;b3;"), 4));
        assert_eq!(b.read_from(2), Read::Data(Bytes::from("a2;b3;"), 4));
        assert_eq!(b.read_from(3), Read::Data(Bytes::from("b3;"), 4));
        assert_eq!(b.read_from(4), Read::Wait);
        b.close();
        assert_eq!(b.read_from(4), Read::Done);
    }

    #[tokio::test]
    async fn past_its_bound_it_keeps_only_what_followers_need() {
        let b = Buffer::new(8);
        let mut live = Box::pin(b.clone().follow(0));
        b.push(chunk(&["aaaa", "bbbb"]));
        assert_eq!(live.next().await.unwrap().unwrap(), Bytes::from("aaaabbbb"));
        b.push(chunk(&["cccc"]));
        assert!(b.overflowed());
        assert_eq!(b.read_from(0), Read::Gone, "the start is gone");
        assert_eq!(
            live.next().await.unwrap().unwrap(),
            Bytes::from("cccc"),
            "the live reader loses nothing"
        );
        b.close();
        assert!(live.next().await.is_none());
    }
}
