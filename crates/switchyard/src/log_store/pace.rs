//! Requests kept to the pace of the writer.
//!
//! Under a load the core cannot serve and record at once, requests would
//! outrun the writer (it runs at a lower priority, on purpose) and records
//! would pile up in the spool, and with them what waits for them in memory
//! (stored responses not yet in the database). So while the writer is
//! writing and more than `[logs] backlog_bytes` of the spool is not in the
//! database yet, a new request waits for the writer's next transaction
//! before it is recorded and sent. A writer that is failing (the database is down) or
//! stopped holds nothing back: that is what the spool and its bound are for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::spool::Spool;

/// The longest one request waits for the writer; past it the request goes
/// on (a writer that is alive but stuck is not a reason to stop serving).
const MAX_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Pace {
    /// 0: never wait.
    backlog_bytes: u64,
    /// The writer is running and its last round went in.
    writing: AtomicBool,
    /// Woken after each of the writer's transactions.
    wrote: Notify,
    /// Requests that waited.
    paced: AtomicU64,
    /// Told when a request starts waiting: the writer stops gathering.
    hurry: Notify,
}

impl Pace {
    pub fn new(backlog_bytes: u64) -> Pace {
        Pace {
            backlog_bytes,
            writing: AtomicBool::new(false),
            wrote: Notify::new(),
            paced: AtomicU64::new(0),
            hurry: Notify::new(),
        }
    }

    /// The writer's state: writing (its last round went in) or not (failed,
    /// or stopped).
    pub fn writing(&self, ok: bool) {
        if self.writing.swap(ok, Ordering::AcqRel) && !ok {
            // Whoever waits goes on at once.
            self.wrote.notify_waiters();
        }
    }

    /// The writer committed a transaction: whoever waits goes on.
    pub fn wrote(&self) {
        self.wrote.notify_waiters();
    }

    /// Returns when a request has started waiting for the writer (or one
    /// did since the last call): letting entries gather is then no longer
    /// worth the wait.
    pub async fn hurried(&self) {
        self.hurry.notified().await;
    }

    /// Requests that have waited for the writer.
    pub fn paced(&self) -> u64 {
        self.paced.load(Ordering::Relaxed)
    }

    /// The writer is writing and more than the backlog behind: requests
    /// wait for its next transaction.
    fn behind(&self, spool: &Spool) -> bool {
        self.backlog_bytes > 0
            && spool.pending() > self.backlog_bytes
            && self.writing.load(Ordering::Acquire)
    }

    /// Returns at once unless the writer is behind; then after its next
    /// transaction (each lets through at most the requests waiting, so the
    /// backlog shrinks while nobody waits more than one transaction), when
    /// it stops writing, or after [`MAX_WAIT`].
    pub async fn keep(&self, spool: &Spool) {
        if self.behind(spool) {
            self.wait(spool).await;
        }
    }

    #[cold]
    async fn wait(&self, spool: &Spool) {
        self.paced.fetch_add(1, Ordering::Relaxed);
        self.hurry.notify_one();
        let wrote = self.wrote.notified();
        tokio::pin!(wrote);
        // Registered before the check: a commit between the two wakes us.
        wrote.as_mut().enable();
        if self.behind(spool) {
            let _ = tokio::time::timeout(MAX_WAIT, wrote).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A spool with `n` bytes pending.
    fn spool(dir: &tempfile::TempDir, n: usize) -> Spool {
        let s = Spool::open(dir.path(), "inst_t").unwrap();
        let mut line = vec![b'x'; n - 1];
        line.push(b'\n');
        s.append(&line).unwrap();
        assert_eq!(s.pending(), n as u64);
        s
    }

    fn written(s: &Spool) {
        let from = s.checkpoint();
        let (_, to) = s.read(from, 100).unwrap();
        s.commit(from, to).unwrap();
        assert_eq!(s.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_only_while_a_writing_writer_is_behind() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(spool(&dir, 100));
        let pace = Arc::new(Pace::new(50));
        // The writer has not written yet (or failed): nothing waits.
        let started = tokio::time::Instant::now();
        pace.keep(&s).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Writing and behind: waits for its commit.
        pace.writing(true);
        let waiting = {
            let (s, pace) = (s.clone(), pace.clone());
            tokio::spawn(async move { pace.keep(&s).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "went on while the writer was behind"
        );
        let hurried = tokio::time::timeout(Duration::from_millis(1), pace.hurried()).await;
        assert!(hurried.is_ok(), "the writer is told to stop gathering");
        written(&s);
        pace.wrote();
        waiting.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(pace.paced(), 1);
        // Caught up: no wait. Off (0): no wait however far behind.
        pace.keep(&s).await;
        let off = Pace::new(0);
        off.writing(true);
        off.keep(&spool(&tempfile::tempdir().unwrap(), 100)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_writer_or_a_long_wait_lets_the_request_go() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(spool(&dir, 100));
        let pace = Arc::new(Pace::new(50));
        pace.writing(true);
        let waiting = {
            let (s, pace) = (s.clone(), pace.clone());
            tokio::spawn(async move { pace.keep(&s).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        let started = tokio::time::Instant::now();
        // The database went away: whoever waits goes on at once.
        pace.writing(false);
        waiting.await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Writing but making no progress: at most MAX_WAIT.
        pace.writing(true);
        pace.keep(&s).await;
        assert_eq!(started.elapsed(), MAX_WAIT);
    }
}
