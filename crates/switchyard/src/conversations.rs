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

/// How long a stored response stays in memory after it was made: far
/// longer than the writer takes to put it into the database, short enough
/// that memory stays small.
const RECENT_MS: i64 = 10 * 60 * 1000;
/// At most this many recent responses in memory.
const RECENT_MAX: usize = 20_000;

#[derive(Debug)]
enum Slot {
    Kept(Arc<StoredResponse>),
    Deleted,
}

/// Responses stored (or deleted) in the last minutes, by id, and their
/// items by item id.
#[derive(Debug, Default)]
pub struct Recent {
    inner: Mutex<RecentInner>,
}

#[derive(Debug, Default)]
struct RecentInner {
    by_id: HashMap<String, Slot>,
    items: HashMap<String, String>,
    order: VecDeque<(i64, String)>,
}

impl RecentInner {
    fn evict(&mut self, now: i64) {
        while let Some((at, _)) = self.order.front() {
            if *at > now - RECENT_MS && self.order.len() <= RECENT_MAX {
                break;
            }
            let Some((_, id)) = self.order.pop_front() else {
                break;
            };
            if let Some(Slot::Kept(r)) = self.by_id.remove(&id) {
                for item in r.input.iter().chain(&r.output) {
                    if let Some(item_id) = item_id(item) {
                        self.items.remove(&item_id);
                    }
                }
            }
        }
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
    /// Deleted in the last minutes; the database may not know yet.
    Deleted,
    NotHere,
}

impl Recent {
    /// Keeps `r`, its items found by `item_ids` (as [`store::Row::of`]
    /// read them: empty for an item without one).
    pub fn keep<'a>(&self, r: Arc<StoredResponse>, item_ids: impl Iterator<Item = &'a str>) {
        let now = crate::clock::unix_ms();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.evict(now);
        for item_id in item_ids.filter(|id| !id.is_empty()) {
            g.items.insert(item_id.to_owned(), r.id.clone());
        }
        g.order.push_back((now, r.id.clone()));
        g.by_id.insert(r.id.clone(), Slot::Kept(r));
    }

    pub fn deleted(&self, id: &str) {
        let now = crate::clock::unix_ms();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.evict(now);
        g.order.push_back((now, id.to_owned()));
        g.by_id.insert(id.to_owned(), Slot::Deleted);
    }

    pub fn get(&self, id: &str) -> Found {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match g.by_id.get(id) {
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
/// stored response of `owner`.
pub async fn history(
    gw: &Gateway,
    owner: &str,
    id: &str,
) -> anyhow::Result<Option<(Arc<StoredResponse>, Vec<Box<RawValue>>)>> {
    let mut turns = Vec::new();
    let mut next = Some(id.to_owned());
    while let Some(id) = next {
        if turns.len() == MAX_CHAIN {
            anyhow::bail!("the conversation is longer than {MAX_CHAIN} turns");
        }
        let Some(r) = find(gw, owner, &id).await? else {
            return Ok(None);
        };
        next = r.previous_id.clone();
        turns.push(r);
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
