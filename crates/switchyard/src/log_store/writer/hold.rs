//! Begins held back until their end: a model call's record written once,
//! whole.
//!
//! A model call lasts seconds, longer than the writer's round, so its
//! begin and its end reach the writer in different rounds. Written as they
//! came, the begin was a `begun` row with its index entries, and the end an
//! UPDATE that rewrote the row (larger), took it out of the `begun` index
//! and put it into the provider, model and status ones: 90k instructions a
//! record on SQLite, against 54k for the same row inserted whole
//! (`bench/record-cost.sh`). So the writer keeps this process's begins in
//! memory until their end comes, for up to [`HOLD_MS`] (a minute: most
//! model calls end well within it) and while the spool has moved on by no
//! more than [`HOLD_SPOOL_BYTES`] past them, and writes the two together.
//!
//! Only on SQLite. There the spool sits beside the database, on the same
//! machine's disk, and the spool, not the row, is what makes a begin
//! durable: the spool's checkpoint does not move past a begin held back.
//! A process killed while it holds one reads it again at its next start,
//! where it is a begin of a process that is gone: written at once, then
//! settled as `interrupted`, as before. A failed round forgets what it
//! held and reads again from the checkpoint (the writes are idempotent).
//! A begin past either bound is written as before, so a call in flight
//! shows in the logs as `begun` after at most a minute; the spool keeps at
//! most [`HOLD_SPOOL_BYTES`] more on disk, and that bounds what is held in
//! memory too (every held begin lies in that stretch of the spool).
//!
//! On Postgres the database outlives a replica whose spool is gone with
//! its pod (an `emptyDir`), and a `begun` row is how the other replicas
//! settle the calls of one that died: there begins are written as they
//! come.

use super::super::spool::{Checkpoint, SEGMENT_BYTES};
use super::super::{Begin, Entry};
use crate::FastMap;

/// The longest a begin waits for its end before it is written alone.
pub const HOLD_MS: i64 = 60_000;
/// How far the writer reads past a held begin before it writes it alone:
/// the most the spool keeps on disk for held begins, and a bound on them
/// in memory.
pub const HOLD_SPOOL_BYTES: u64 = 16 * 1024 * 1024;
/// A begin carrying a larger request body (log mode `full`) is written at
/// once: what the writer holds stays small whatever the calls send.
pub const HOLD_BODY_BYTES: usize = 64 * 1024;

/// The writer's place in the spool and the begins it holds.
#[derive(Debug)]
pub struct Holding {
    instance: String,
    /// Whether begins are held at all (see the module's text).
    enabled: bool,
    /// Where the writer has read to.
    cursor: Checkpoint,
    /// Where the spool's checkpoint is: everything before it is written.
    durable: Checkpoint,
    /// The furthest the writer has read: what lies before it is no longer
    /// counted as pending, even when read again after a failed round.
    seen: Checkpoint,
    held: FastMap<String, Held>,
}

#[derive(Debug)]
struct Held {
    /// Where the begin starts in the spool.
    at: Checkpoint,
    begin: Begin,
}

/// What one round writes, and where the spool may be checkpointed once it
/// is written.
#[derive(Debug)]
pub struct Round {
    pub entries: Vec<Entry>,
    pub durable: Checkpoint,
}

impl Holding {
    /// The writer of `instance`, starting at the spool's checkpoint,
    /// holding begins if `enabled`.
    pub fn new(instance: &str, checkpoint: Checkpoint, enabled: bool) -> Holding {
        Holding {
            instance: instance.to_owned(),
            enabled,
            cursor: checkpoint,
            durable: checkpoint,
            seen: checkpoint,
            held: FastMap::default(),
        }
    }

    /// The part of a round's read, from the cursor to `to`, not read
    /// before: what leaves the spool's pending count.
    pub fn unseen(&self, to: Checkpoint) -> (Checkpoint, Checkpoint) {
        let from = self.cursor.max(self.seen);
        (from, to.max(from))
    }

    /// Where the next read starts.
    pub fn cursor(&self) -> Checkpoint {
        self.cursor
    }

    /// Where the spool's checkpoint is.
    pub fn durable(&self) -> Checkpoint {
        self.durable
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Sorts the entries read up to `to` (each with where it starts) into
    /// what to write now. This process's begins are held; an end brings
    /// its held begin with it, just before it; begins held since before
    /// `now_ms - HOLD_MS` or more than [`HOLD_SPOOL_BYTES`] before `to`
    /// (or all, when `release` says so, at shutdown) are written alone.
    pub fn round(
        &mut self,
        read: Vec<(Checkpoint, Entry)>,
        to: Checkpoint,
        now_ms: i64,
        release: bool,
    ) -> Round {
        let mut entries = Vec::with_capacity(read.len());
        for (at, entry) in read {
            match entry {
                Entry::Begin(b) if !release && self.holds(&b) => {
                    self.held.insert(b.id.clone(), Held { at, begin: b });
                }
                Entry::End(e) => {
                    if let Some(h) = self.held.remove(&e.id) {
                        entries.push(Entry::Begin(h.begin));
                    }
                    entries.push(Entry::End(e));
                }
                other => entries.push(other),
            }
        }
        let due = |h: &Held| {
            release
                || now_ms - h.begin.time_ms >= HOLD_MS
                || spool_bytes(h.at, to) > HOLD_SPOOL_BYTES
        };
        entries.extend(
            self.held
                .extract_if(|_, h| due(h))
                .map(|(_, h)| Entry::Begin(h.begin)),
        );
        let durable = self.held.values().map(|h| h.at).min().unwrap_or(to).min(to);
        Round { entries, durable }
    }

    /// This process's begins are held, unless their body is large; another
    /// process's are written at once (it is gone: they are settled next).
    fn holds(&self, b: &Begin) -> bool {
        self.enabled
            && b.instance == self.instance
            && b.request_body
                .as_ref()
                .is_none_or(|body| body.len() <= HOLD_BODY_BYTES)
    }

    /// A round's entries, read up to `to`, are in the database, and the
    /// spool's checkpoint is at `durable`.
    pub fn written(&mut self, to: Checkpoint, durable: Checkpoint) {
        self.cursor = to;
        self.seen = self.seen.max(to);
        self.durable = durable;
    }

    /// A round failed: what it held may not be written, so forget it all
    /// and read again from the checkpoint (writing is idempotent).
    pub fn reset(&mut self) {
        self.held.clear();
        self.cursor = self.durable;
    }
}

/// About how many bytes of the spool lie from `from` to `to` (segments
/// are about [`SEGMENT_BYTES`] each).
fn spool_bytes(from: Checkpoint, to: Checkpoint) -> u64 {
    (to.seq.saturating_sub(from.seq) * SEGMENT_BYTES + to.offset).saturating_sub(from.offset)
}

/// The ranges of `entries` to write, one transaction each, of about `max`
/// entries: never between a begin and the end that follows it (a call's
/// two halves in one transaction are inserted as one row).
pub fn transactions(entries: &[Entry], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::with_capacity(entries.len() / max + 1);
    let mut start = 0;
    while start < entries.len() {
        let mut end = entries.len().min(start + max);
        if let (Some(Entry::Begin(b)), Some(Entry::End(e))) =
            (entries.get(end - 1), entries.get(end))
            && b.id == e.id
        {
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_store::End;

    fn at(offset: u64) -> Checkpoint {
        Checkpoint { seq: 1, offset }
    }

    fn begin(id: &str, instance: &str, time_ms: i64) -> Entry {
        Entry::Begin(Begin {
            id: id.into(),
            time_ms,
            instance: instance.into(),
            key_id: None,
            route: None,
            requested_model: "m".into(),
            dialect: "openai".into(),
            stream: false,
            log_mode: crate::config::LogMode::Metadata,
            est_input_tokens: 1,
            metadata: Default::default(),
            request_body: None,
            hold_usd: None,
            trace_id: None,
        })
    }

    fn end(id: &str) -> Entry {
        Entry::End(End {
            id: id.into(),
            ..End::default()
        })
    }

    /// `b:id` for a begin, `e:id` for an end.
    fn names(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Begin(b) => format!("b:{}", b.id),
                Entry::End(e) => format!("e:{}", e.id),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn a_begin_waits_for_its_end_and_the_checkpoint_waits_for_it() {
        let mut h = Holding::new("me", at(0), true);
        let r = h.round(
            vec![
                (at(0), begin("a", "me", 1000)),
                (at(10), begin("b", "me", 1000)),
            ],
            at(20),
            1500,
            false,
        );
        assert!(r.entries.is_empty());
        assert_eq!(r.durable, at(0), "the spool keeps what is held");
        h.written(at(20), r.durable);
        assert_eq!((h.cursor(), h.held()), (at(20), 2));
        // a ends: written whole, with its begin just before its end; b is
        // still held, so the checkpoint stops at b.
        let r = h.round(vec![(at(20), end("a"))], at(30), 2000, false);
        assert_eq!(names(&r.entries), ["b:a", "e:a"]);
        assert_eq!(r.durable, at(10));
        h.written(at(30), r.durable);
        // Nothing new, but b has waited long enough: written alone.
        let r = h.round(vec![], at(30), 1000 + HOLD_MS, false);
        assert_eq!(names(&r.entries), ["b:b"]);
        assert_eq!(r.durable, at(30));
        h.written(at(30), r.durable);
        assert_eq!((h.durable(), h.held()), (at(30), 0));
        // Its end, later, finishes the stored row as before.
        let r = h.round(vec![(at(30), end("b"))], at(40), 1000 + HOLD_MS, false);
        assert_eq!(names(&r.entries), ["e:b"]);
    }

    #[test]
    fn another_process_s_begins_and_large_ones_are_written_at_once_and_shutdown_releases_all() {
        let mut h = Holding::new("me", at(0), true);
        let r = h.round(
            vec![
                (at(0), begin("dead", "gone", 1000)),
                (at(5), begin("mine", "me", 1000)),
            ],
            at(9),
            1000,
            false,
        );
        assert_eq!(names(&r.entries), ["b:dead"]);
        let Entry::Begin(mut big) = begin("big", "me", 1000) else {
            unreachable!()
        };
        big.request_body = Some("x".repeat(HOLD_BODY_BYTES + 1));
        let r2 = Holding::new("me", at(0), true).round(
            vec![(at(0), Entry::Begin(big))],
            at(1),
            1000,
            false,
        );
        assert_eq!(names(&r2.entries), ["b:big"], "a large body is not held");
        assert_eq!(r.durable, at(5));
        h.written(at(9), r.durable);
        let r = h.round(vec![(at(9), begin("late", "me", 1000))], at(12), 1000, true);
        assert_eq!(names(&r.entries).len(), 2);
        assert_eq!(r.durable, at(12));
    }

    #[test]
    fn a_failed_round_reads_again_from_the_checkpoint() {
        let mut h = Holding::new("me", at(0), true);
        let r = h.round(vec![(at(0), begin("a", "me", 0))], at(10), 0, false);
        h.written(at(10), r.durable);
        let r = h.round(vec![(at(10), end("a"))], at(20), 0, false);
        assert_eq!(names(&r.entries), ["b:a", "e:a"]);
        // The write failed: a's begin is no longer held, so read it again.
        h.reset();
        assert_eq!((h.cursor(), h.held()), (at(0), 0));
        // What was read before is not counted again; what is new is.
        assert_eq!(h.unseen(at(10)), (at(10), at(10)));
        assert_eq!(h.unseen(at(20)), (at(10), at(20)));
        let r = h.round(
            vec![(at(0), begin("a", "me", 0)), (at(10), end("a"))],
            at(20),
            0,
            false,
        );
        assert_eq!(names(&r.entries), ["b:a", "e:a"]);
        assert_eq!(r.durable, at(20));
    }

    /// However young, a begin that the spool has moved far past is written.
    #[test]
    fn a_begin_far_behind_in_the_spool_is_written() {
        let mut h = Holding::new("me", at(0), true);
        let r = h.round(vec![(at(100), begin("a", "me", 0))], at(200), 0, false);
        assert!(r.entries.is_empty());
        h.written(at(200), r.durable);
        let near = Checkpoint {
            seq: 1 + HOLD_SPOOL_BYTES / SEGMENT_BYTES,
            offset: 100,
        };
        let r = h.round(vec![], near, 0, false);
        assert!(r.entries.is_empty(), "exactly the bound: still held");
        h.written(near, r.durable);
        let far = Checkpoint {
            offset: 101,
            ..near
        };
        let r = h.round(vec![], far, 0, false);
        assert_eq!(names(&r.entries), ["b:a"]);
        assert_eq!(r.durable, far);
    }

    #[test]
    fn nothing_is_held_when_holding_is_off() {
        let mut h = Holding::new("me", at(0), false);
        let r = h.round(vec![(at(0), begin("a", "me", 0))], at(10), 0, false);
        assert_eq!(names(&r.entries), ["b:a"]);
        assert_eq!(r.durable, at(10));
    }

    #[test]
    fn transactions_do_not_part_a_begin_from_its_end() {
        let entries = vec![end("x"), begin("a", "me", 0), end("a"), end("y"), end("z")];
        assert_eq!(transactions(&entries, 2), [0..3, 3..5]);
        assert_eq!(transactions(&entries, 10), vec![0..entries.len()]);
        assert_eq!(
            transactions(&entries[..0], 2),
            Vec::<std::ops::Range<usize>>::new()
        );
        let split = vec![begin("a", "me", 0), end("b")];
        assert_eq!(transactions(&split, 1), [0..1, 1..2]);
    }
}
