//! Stored responses in memory until the database has them, and a little
//! after: what makes a next turn that comes at once find its chain.
//!
//! Every response the writer has not committed yet is found here, within
//! two budgets. The newest committed ones stay while everything held takes
//! less than [`COMMITTED_BYTES`] (a chain that goes on soon is read from
//! memory). Uncommitted ones stay while everything held takes less than
//! [`UNCOMMITTED_BYTES`]: past it (the writer is behind, as under a burst
//! that fills the core) the oldest are let go, and only their ids and item
//! ids are kept; a lookup of one waits until the writer has committed it,
//! then reads the database. So memory is bounded whatever the writer's lag,
//! and no lookup ever misses a response that was stored.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{StoredResponse, item_id};

/// The most a stored response is kept in memory, committed or not (one
/// the writer has not committed by then was refused by the disk, and the
/// spool's own error says so).
const RECENT_MS: i64 = 10 * 60 * 1000;
/// At most this many responses held, committed or not.
const RECENT_MAX: usize = 20_000;
/// Committed responses go, oldest first, while all held take more.
const COMMITTED_BYTES: usize = 8 << 20;
/// Uncommitted responses are let go, oldest first, while all held take
/// more; their lookups wait for the writer.
const UNCOMMITTED_BYTES: usize = 24 << 20;
/// How long a lookup waits for the writer to commit a response it let go.
const WRITE_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug)]
enum Slot {
    Kept(Arc<StoredResponse>),
    Deleted,
}

#[derive(Debug)]
struct Held {
    slot: Slot,
    /// Which keep or delete of this id it is (an id deleted after it was
    /// kept is held again; its old place in `order` is stale).
    generation: u64,
    /// The writer has committed it: the database answers as this does.
    committed: bool,
    bytes: usize,
}

/// An uncommitted response (or deletion) let go from memory.
#[derive(Debug)]
struct Spilled {
    deleted: bool,
    /// Its item ids, still found by `holding`.
    items: Vec<String>,
}

/// Responses stored (or deleted) lately, by id, and their items by item id.
#[derive(Debug, Default)]
pub struct Recent {
    inner: Mutex<Inner>,
    /// Woken when the writer commits a response that was let go.
    written: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, Held>,
    items: HashMap<String, String>,
    /// Oldest first: when it was held, its id, its generation.
    order: VecDeque<(i64, String, u64)>,
    generation: u64,
    /// What the responses held take (their JSON texts).
    bytes: usize,
    spilled: HashMap<String, Spilled>,
    /// Oldest first, for letting go of spilled ids past [`RECENT_MS`].
    spilled_order: VecDeque<(i64, String)>,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    Response(Arc<StoredResponse>),
    /// Deleted lately; the database may not know yet.
    Deleted,
    /// Stored, not in memory, and not committed yet: wait for
    /// [`Recent::written`], then read the database.
    Pending,
    NotHere,
}

impl Inner {
    /// Lets go of the oldest entries while there are too many, they are too
    /// old, or they take more than their budget.
    fn evict(&mut self, now: i64) {
        while let Some((at, id, generation)) = self.order.front() {
            let Some(held) = self.by_id.get(id).filter(|h| h.generation == *generation) else {
                // Held again since (deleted after it was kept).
                self.order.pop_front();
                continue;
            };
            let too_old = *at <= now - RECENT_MS;
            let too_many = self.by_id.len() > RECENT_MAX;
            let budget = if held.committed {
                COMMITTED_BYTES
            } else {
                UNCOMMITTED_BYTES
            };
            if !too_old && !too_many && self.bytes <= budget {
                break;
            }
            // One let go for room is waited for; one too old never will be
            // committed.
            let spill = !held.committed && !too_old;
            let Some((_, id, _)) = self.order.pop_front() else {
                break;
            };
            let removed = self.remove(&id, spill);
            if spill && let Some((deleted, items)) = removed {
                self.spilled_order.push_back((now, id.clone()));
                self.spilled.insert(id, Spilled { deleted, items });
            }
        }
        while let Some((at, _)) = self.spilled_order.front() {
            if *at > now - RECENT_MS {
                break;
            }
            if let Some((_, id)) = self.spilled_order.pop_front() {
                self.forget_spilled(&id);
            }
        }
    }

    /// Removes `id`. With `keep_items`, its item ids stay found and are
    /// returned (with whether it was a deletion).
    fn remove(&mut self, id: &str, keep_items: bool) -> Option<(bool, Vec<String>)> {
        let held = self.by_id.remove(id)?;
        self.bytes -= held.bytes;
        let Slot::Kept(r) = held.slot else {
            return Some((true, Vec::new()));
        };
        let mut kept = Vec::new();
        for item in r.input.iter().chain(&r.output) {
            let Some(item_id) = item_id(item) else {
                continue;
            };
            if !keep_items {
                self.release_item(&item_id, id);
            } else if self.items.get(&item_id).map(String::as_str) == Some(id) {
                kept.push(item_id);
            }
        }
        Some((false, kept))
    }

    fn forget_spilled(&mut self, id: &str) -> bool {
        let Some(s) = self.spilled.remove(id) else {
            return false;
        };
        for item_id in &s.items {
            self.release_item(item_id, id);
        }
        true
    }

    /// Forgets that response `id` holds `item_id`, unless a later response
    /// holds an item of that id now.
    fn release_item(&mut self, item_id: &str, id: &str) {
        if self.items.get(item_id).map(String::as_str) == Some(id) {
            self.items.remove(item_id);
        }
    }

    fn hold(&mut self, now: i64, id: &str, slot: Slot, bytes: usize) {
        self.remove(id, false);
        self.generation += 1;
        let generation = self.generation;
        self.order.push_back((now, id.to_owned(), generation));
        self.bytes += bytes;
        self.by_id.insert(
            id.to_owned(),
            Held {
                slot,
                generation,
                committed: false,
                bytes,
            },
        );
    }
}

impl Recent {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `r`, its items found by `item_ids` (as [`super::store::Row::of`]
    /// read them: empty for an item without one).
    pub fn keep<'a>(&self, r: Arc<StoredResponse>, item_ids: impl Iterator<Item = &'a str>) {
        let now = crate::clock::unix_ms();
        let bytes = r.response.len()
            + r.input
                .iter()
                .chain(&r.output)
                .map(|i| i.get().len())
                .sum::<usize>();
        let id = r.id.clone();
        let mut g = self.lock();
        g.hold(now, &id, Slot::Kept(r), bytes);
        for item_id in item_ids.filter(|id| !id.is_empty()) {
            g.items.insert(item_id.to_owned(), id.clone());
        }
        g.evict(now);
    }

    pub fn deleted(&self, id: &str) {
        let now = crate::clock::unix_ms();
        let mut g = self.lock();
        g.hold(now, id, Slot::Deleted, 0);
        g.evict(now);
    }

    /// The writer has committed these to the database: responses kept
    /// (`(id, false)`) or deleted (`(id, true)`). They may go from memory
    /// once newer ones need the room. (A response deleted before the writer
    /// stored it stays a tombstone until the deletion is committed too.)
    pub fn committed<'a>(&self, done: impl Iterator<Item = (&'a str, bool)>) {
        let mut done = done.peekable();
        if done.peek().is_none() {
            return;
        }
        let now = crate::clock::unix_ms();
        let mut woke = false;
        {
            let mut g = self.lock();
            for (id, deleted) in done {
                if let Some(held) = g.by_id.get_mut(id)
                    && matches!(held.slot, Slot::Deleted) == deleted
                {
                    held.committed = true;
                }
                if g.spilled.get(id).is_some_and(|s| s.deleted == deleted) {
                    woke |= g.forget_spilled(id);
                }
            }
            g.evict(now);
        }
        if woke {
            self.written.notify_waiters();
        }
    }

    pub fn get(&self, id: &str) -> Found {
        let g = self.lock();
        match g.by_id.get(id).map(|h| &h.slot) {
            Some(Slot::Kept(r)) => Found::Response(r.clone()),
            Some(Slot::Deleted) => Found::Deleted,
            None if g.spilled.contains_key(id) => Found::Pending,
            None => Found::NotHere,
        }
    }

    /// The response holding item `item_id`, if it is here.
    pub fn holding(&self, item_id: &str) -> Option<String> {
        self.lock().items.get(item_id).cloned()
    }

    /// Waits until the writer has committed `id`, a response found
    /// [`Found::Pending`]; an error after [`WRITE_WAIT`].
    pub async fn written(&self, id: &str) -> anyhow::Result<()> {
        self.written_within(id, WRITE_WAIT).await
    }

    async fn written_within(&self, id: &str, wait: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.written.notified();
            tokio::pin!(notified);
            // Registered before the check: a commit between the two wakes it.
            notified.as_mut().enable();
            if !self.lock().spilled.contains_key(id) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                anyhow::bail!(
                    "the stored response {id} is not in the database yet (the log writer is behind)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response of about `kb` KiB with one output item `item`.
    fn response(id: &str, kb: usize, item: &str) -> Arc<StoredResponse> {
        let text = "x".repeat(kb << 10);
        Arc::new(StoredResponse {
            id: id.into(),
            owner: "o".into(),
            created_ms: 0,
            expires_ms: i64::MAX,
            previous_id: None,
            requested_model: "m".into(),
            provider: None,
            model: None,
            request_id: "r".into(),
            response: serde_json::json!({ "text": text }).to_string(),
            input: Vec::new(),
            output: vec![crate::wire::to_raw(&serde_json::json!({ "id": item }))],
        })
    }

    fn keep(recent: &Recent, id: &str, kb: usize) {
        let item = format!("item_{id}");
        recent.keep(response(id, kb, &item), std::iter::once(item.as_str()));
    }

    fn here(recent: &Recent, id: &str) -> bool {
        matches!(recent.get(id), Found::Response(_))
    }

    #[test]
    fn committed_responses_make_room_first_and_the_oldest_go_first() {
        let recent = Recent::default();
        let ids: Vec<String> = (0..20).map(|n| format!("resp_{n:02}")).collect();
        for id in &ids {
            keep(&recent, id, 1024);
        }
        // 20 MiB held, none committed: within the uncommitted budget.
        assert!(ids.iter().all(|id| here(&recent, id)));
        // The writer commits the first 15: the oldest go until the rest fit.
        recent.committed(ids[..15].iter().map(|id| (id.as_str(), false)));
        let kept: Vec<bool> = ids.iter().map(|id| here(&recent, id)).collect();
        let first_kept = kept.iter().position(|k| *k).unwrap();
        assert!(kept[first_kept..].iter().all(|k| *k), "{kept:?}");
        assert!((8..=15).contains(&first_kept), "{kept:?}");
        let g = recent.inner.lock().unwrap();
        assert!(g.bytes <= COMMITTED_BYTES + (1 << 20) + 4096, "{}", g.bytes);
        drop(g);
        // An evicted response's items went with it; a kept one's stay.
        assert_eq!(recent.holding("item_resp_00"), None);
        assert_eq!(recent.holding("item_resp_19").as_deref(), Some("resp_19"));
        // The uncommitted five do not go for the committed budget.
        recent.committed(ids[15..16].iter().map(|id| (id.as_str(), false)));
        for id in &ids[16..] {
            assert!(here(&recent, id), "{id}");
        }
    }

    #[test]
    fn a_tombstone_replaces_a_kept_response_and_its_old_place_is_skipped() {
        let recent = Recent::default();
        keep(&recent, "a", 4096);
        keep(&recent, "b", 1);
        recent.deleted("a");
        assert!(matches!(recent.get("a"), Found::Deleted));
        assert_eq!(recent.holding("item_a"), None);
        // The writer stored "a" (not yet its deletion): the tombstone is
        // not committed by that.
        recent.committed([("a", false), ("b", false)].into_iter());
        {
            let g = recent.inner.lock().unwrap();
            assert!(!g.by_id["a"].committed);
            assert!(g.by_id["b"].committed);
        }
        recent.committed(std::iter::once(("a", true)));
        // "a"'s first place in the order is stale, and with everything
        // committed nothing is over the budget: nothing goes.
        assert!(matches!(recent.get("a"), Found::Deleted));
        assert!(here(&recent, "b"));
        let g = recent.inner.lock().unwrap();
        assert!(g.by_id["a"].committed);
        assert_eq!(g.by_id.len(), 2);
        assert!(g.bytes < 8 << 10, "{}", g.bytes);
    }

    #[test]
    fn an_item_held_again_by_a_later_response_stays_when_the_first_goes() {
        let recent = Recent::default();
        recent.keep(response("first", 3072, "shared"), std::iter::once("shared"));
        recent.keep(response("later", 3072, "shared"), std::iter::once("shared"));
        recent.keep(response("third", 3072, "other"), std::iter::once("other"));
        recent.committed([("first", false), ("later", false), ("third", false)].into_iter());
        assert!(!here(&recent, "first"));
        assert_eq!(recent.holding("shared").as_deref(), Some("later"));
    }

    #[tokio::test]
    async fn past_its_budget_an_uncommitted_response_waits_for_the_writer() {
        let recent = Arc::new(Recent::default());
        let ids: Vec<String> = (0..30).map(|n| format!("resp_{n:02}")).collect();
        for id in &ids {
            keep(&recent, id, 1024);
        }
        // 30 MiB, none committed: the oldest are let go down to 24 MiB,
        // their ids and items still known.
        let pending: Vec<bool> = ids
            .iter()
            .map(|id| matches!(recent.get(id), Found::Pending))
            .collect();
        let first_here = pending.iter().position(|p| !p).unwrap();
        assert!((6..=8).contains(&first_here), "{pending:?}");
        assert!(ids[first_here..].iter().all(|id| here(&recent, id)));
        assert!(recent.inner.lock().unwrap().bytes <= UNCOMMITTED_BYTES);
        assert_eq!(recent.holding("item_resp_00").as_deref(), Some("resp_00"));
        // A lookup waits for the writer; one of a response held does not.
        recent.written("resp_29").await.unwrap();
        let waiter = {
            let recent = recent.clone();
            tokio::spawn(async move { recent.written("resp_00").await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // A deletion of that id committed is not its storing.
        recent.committed(std::iter::once(("resp_00", true)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        recent.committed(std::iter::once(("resp_00", false)));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter was not woken")
            .unwrap()
            .unwrap();
        // Now the database has it: nothing of it is left here.
        assert!(matches!(recent.get("resp_00"), Found::NotHere));
        assert_eq!(recent.holding("item_resp_00"), None);
        // One the writer never commits: the wait ends with an error.
        let e = recent
            .written_within("resp_01", Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("resp_01"), "{e}");
    }

    #[test]
    fn past_the_count_an_uncommitted_response_is_let_go_not_lost() {
        let recent = Recent::default();
        for n in 0..RECENT_MAX + 5 {
            keep(&recent, &format!("r{n}"), 0);
        }
        assert!(matches!(recent.get("r0"), Found::Pending));
        assert!(here(&recent, &format!("r{}", RECENT_MAX + 4)));
        assert_eq!(recent.inner.lock().unwrap().by_id.len(), RECENT_MAX);
    }
}
