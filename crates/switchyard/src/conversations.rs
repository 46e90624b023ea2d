//! Stored Responses: what `store: true` keeps, so `previous_response_id`,
//! `item_reference` and `GET /v1/responses/{id}` work with every provider.
//!
//! A stored response goes into the spool with the request's record (so a
//! crash loses none), and the log writer puts it into the database
//! (`store.rs`). Until the writer has, it is kept here in memory
//! ([`Recent`]), so a next turn that comes at once finds it: no race with
//! the writer. A response belongs to its owner (a key's id, or
//! `anonymous`): another key's id is a 404. Retention removes it
//! `[responses] retain_days` after it was made; `DELETE` at once (a
//! tombstone here covers the time until the writer has deleted the rows).

pub mod store;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::gateway::Gateway;

/// One stored response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResponse {
    pub id: String,
    pub owner: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// The response this one continued.
    pub previous_id: Option<String>,
    /// The model the caller named (a route, or `provider/model`).
    pub requested_model: String,
    /// What served it.
    pub provider: Option<String>,
    pub model: Option<String>,
    pub request_id: String,
    /// The Response object, as the caller got it.
    pub response: Box<RawValue>,
    /// This turn's own input items, each with an `id`.
    pub input: Vec<Box<RawValue>>,
    /// Its output items.
    pub output: Vec<Box<RawValue>>,
}

/// The most a stored response is kept in memory: far longer than the
/// writer takes to put it into the database (an entry the writer has not
/// committed is let go only past this, or past [`RECENT_MAX`]: then the disk
/// refused it, and the spool tells).
const RECENT_MS: i64 = 10 * 60 * 1000;
/// At most this many responses in memory, committed or not.
const RECENT_MAX: usize = 20_000;
/// Responses the writer has committed stay while all kept responses take
/// less than this (a next turn that follows soon finds its chain here);
/// past it the oldest committed ones go and are read from the database.
const RECENT_BYTES: usize = 8 << 20;

#[derive(Debug)]
enum Slot {
    Kept(Arc<StoredResponse>),
    Deleted,
}

#[derive(Debug)]
struct Held {
    slot: Slot,
    /// Which keep or delete of this id it is (an id deleted and its
    /// tombstone kept again is a new one; the old place in `order` is stale).
    generation: u64,
    /// The writer has committed it: the database answers as this does.
    committed: bool,
    bytes: usize,
}

/// Responses stored (or deleted) lately, by id, and their items by item
/// id: every one the writer has not committed yet, and the latest
/// committed ones within [`RECENT_BYTES`].
#[derive(Debug, Default)]
pub struct Recent {
    inner: Mutex<RecentInner>,
}

#[derive(Debug, Default)]
struct RecentInner {
    by_id: HashMap<String, Held>,
    items: HashMap<String, String>,
    /// Oldest first: when it was kept, its id, its generation.
    order: VecDeque<(i64, String, u64)>,
    generation: u64,
    /// What the responses held take (their JSON texts).
    bytes: usize,
}

impl RecentInner {
    /// Lets go of the oldest entries while there are too many, they are too
    /// old, or (once committed) they take more than [`RECENT_BYTES`].
    fn evict(&mut self, now: i64) {
        while let Some((at, id, generation)) = self.order.front() {
            let Some(held) = self.by_id.get(id).filter(|h| h.generation == *generation) else {
                // Replaced since (deleted after it was kept): nothing here.
                self.order.pop_front();
                continue;
            };
            let must = *at <= now - RECENT_MS || self.by_id.len() > RECENT_MAX;
            let room = held.committed && self.bytes > RECENT_BYTES;
            if !(must || room) {
                break;
            }
            let Some((_, id, _)) = self.order.pop_front() else {
                break;
            };
            self.remove(&id);
        }
    }

    fn remove(&mut self, id: &str) {
        let Some(held) = self.by_id.remove(id) else {
            return;
        };
        self.bytes -= held.bytes;
        if let Slot::Kept(r) = held.slot {
            for item in r.input.iter().chain(&r.output) {
                // Unless a later response holds an item of that id now.
                if let Some(item_id) = item_id(item)
                    && self.items.get(&item_id).map(String::as_str) == Some(id)
                {
                    self.items.remove(&item_id);
                }
            }
        }
    }

    fn hold(&mut self, now: i64, id: &str, slot: Slot, bytes: usize) {
        self.remove(id);
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
        self.evict(now);
    }
}

/// An item's `id`, if it has one.
pub fn item_id(item: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        id: Option<String>,
    }
    serde_json::from_str::<Peek>(item.get()).ok()?.id
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    Response(Arc<StoredResponse>),
    /// Deleted lately; the database may not know yet.
    Deleted,
    NotHere,
}

impl Recent {
    /// Keeps `r`, its items found by `item_ids` (as [`store::Row::of`]
    /// read them: empty for an item without one).
    pub fn keep<'a>(&self, r: Arc<StoredResponse>, item_ids: impl Iterator<Item = &'a str>) {
        let now = crate::clock::unix_ms();
        let bytes = r.response.get().len()
            + r.input
                .iter()
                .chain(&r.output)
                .map(|i| i.get().len())
                .sum::<usize>();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = r.id.clone();
        g.hold(now, &id, Slot::Kept(r), bytes);
        for item_id in item_ids.filter(|id| !id.is_empty()) {
            g.items.insert(item_id.to_owned(), id.clone());
        }
    }

    pub fn deleted(&self, id: &str) {
        let now = crate::clock::unix_ms();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.hold(now, id, Slot::Deleted, 0);
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
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (id, deleted) in done {
            if let Some(held) = g.by_id.get_mut(id)
                && matches!(held.slot, Slot::Deleted) == deleted
            {
                held.committed = true;
            }
        }
        g.evict(now);
    }

    pub fn get(&self, id: &str) -> Found {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match g.by_id.get(id).map(|h| &h.slot) {
            Some(Slot::Kept(r)) => Found::Response(r.clone()),
            Some(Slot::Deleted) => Found::Deleted,
            None => Found::NotHere,
        }
    }

    /// The response holding item `item_id`, if it is here.
    pub fn holding(&self, item_id: &str) -> Option<String> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.items.get(item_id).cloned()
    }
}

/// A stored response of `owner`, from memory or the database.
pub async fn find(
    gw: &Gateway,
    owner: &str,
    id: &str,
) -> anyhow::Result<Option<Arc<StoredResponse>>> {
    let found = match gw.conversations.get(id) {
        Found::Response(r) => Some(r),
        Found::Deleted => return Ok(None),
        Found::NotHere => store::get(&gw.storage, id).await?.map(Arc::new),
    };
    let now = crate::clock::unix_ms();
    Ok(found.filter(|r| r.owner == owner && r.expires_ms > now))
}

/// The stored item `item_id` of `owner`.
pub async fn find_item(
    gw: &Gateway,
    owner: &str,
    item_id: &str,
) -> anyhow::Result<Option<Box<RawValue>>> {
    let response_id = match gw.conversations.holding(item_id) {
        Some(r) => Some(r),
        None => store::holding(&gw.storage, item_id).await?,
    };
    let Some(response_id) = response_id else {
        return Ok(None);
    };
    let Some(r) = find(gw, owner, &response_id).await? else {
        return Ok(None);
    };
    Ok(r.input
        .iter()
        .chain(&r.output)
        .find(|i| item_id_is(i, item_id))
        .cloned())
}

fn item_id_is(item: &RawValue, id: &str) -> bool {
    item_id(item).as_deref() == Some(id)
}

/// The most turns a `previous_response_id` chain is followed back.
pub const MAX_CHAIN: usize = 10_000;

/// Every item of the conversation `id` ends, oldest first: each turn's
/// input, then its output. `None` if `id` (or a turn before it) is not a
/// stored response of `owner`. The newest turns come from memory while they
/// are there, the rest of the chain from the database in one read.
pub async fn history(
    gw: &Gateway,
    owner: &str,
    id: &str,
) -> anyhow::Result<Option<(Arc<StoredResponse>, Vec<Box<RawValue>>)>> {
    let too_long = || anyhow::anyhow!("the conversation is longer than {MAX_CHAIN} turns");
    let mut turns: Vec<Arc<StoredResponse>> = Vec::new();
    let mut next = Some(id.to_owned());
    while let Some(id) = next.take() {
        if turns.len() == MAX_CHAIN {
            return Err(too_long());
        }
        match gw.conversations.get(&id) {
            Found::Response(r) => {
                next = r.previous_id.clone();
                turns.push(r);
            }
            Found::Deleted => return Ok(None),
            Found::NotHere => {
                let room = MAX_CHAIN - turns.len();
                let older = store::chain(&gw.storage, &id, room + 1).await?;
                if older.len() > room {
                    return Err(too_long());
                }
                // Where the database's chain ends early, the turn before may
                // be one the writer has not committed yet: memory, again.
                let Some(last) = older.last() else {
                    return Ok(None);
                };
                next = last.previous_id.clone();
                for r in older {
                    if let Found::Deleted = gw.conversations.get(&r.id) {
                        return Ok(None);
                    }
                    turns.push(Arc::new(r));
                }
            }
        }
    }
    let now = crate::clock::unix_ms();
    if turns
        .iter()
        .any(|r| r.owner != owner || r.expires_ms <= now)
    {
        return Ok(None);
    }
    let last = turns[0].clone();
    let mut items = Vec::new();
    for t in turns.iter().rev() {
        items.extend(t.input.iter().cloned());
        items.extend(t.output.iter().cloned());
    }
    Ok(Some((last, items)))
}

/// Keeps a finished response: in memory at once, then through the spool
/// into the database.
pub fn keep(gw: &Gateway, r: StoredResponse) {
    let r = Arc::new(r);
    let row = store::Row::of(&r);
    gw.conversations
        .keep(r, row.items.iter().map(|i| i.item_id.as_str()));
    gw.recorder
        .write(&crate::log_store::Entry::Response(Box::new(row)));
}

/// Deletes a response of `owner`. False if there was none.
pub async fn delete(gw: &Gateway, owner: &str, id: &str) -> anyhow::Result<bool> {
    if find(gw, owner, id).await?.is_none() {
        return Ok(false);
    }
    gw.conversations.deleted(id);
    gw.recorder
        .write(&crate::log_store::Entry::ResponseDeleted { id: id.to_owned() });
    Ok(true)
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
            response: crate::wire::to_raw(&serde_json::json!({ "text": text })),
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
    fn only_committed_responses_make_room_and_the_oldest_go_first() {
        let recent = Recent::default();
        let ids: Vec<String> = (0..20).map(|n| format!("resp_{n:02}")).collect();
        for id in &ids {
            keep(&recent, id, 1024);
        }
        // 20 MiB held, none committed: all stay, whatever the budget.
        assert!(ids.iter().all(|id| here(&recent, id)));
        // The writer commits the first 15: the oldest go until the rest fit.
        recent.committed(ids[..15].iter().map(|id| (id.as_str(), false)));
        let kept: Vec<bool> = ids.iter().map(|id| here(&recent, id)).collect();
        let first_kept = kept.iter().position(|k| *k).unwrap();
        assert!(kept[first_kept..].iter().all(|k| *k), "{kept:?}");
        assert!((8..=15).contains(&first_kept), "{kept:?}");
        let g = recent.inner.lock().unwrap();
        assert!(g.bytes <= RECENT_BYTES + (1 << 20) + 4096, "{}", g.bytes);
        drop(g);
        // An evicted response's items went with it; a kept one's stay.
        assert_eq!(recent.holding("item_resp_00"), None);
        assert_eq!(recent.holding("item_resp_19").as_deref(), Some("resp_19"));
        // The uncommitted five never go for room.
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
}
