//! Stored Responses: what `store: true` keeps, so `previous_response_id`,
//! `item_reference` and `GET /v1/responses/{id}` work with every provider.
//!
//! A stored response goes into the spool with the request's record (so a
//! crash loses none), and the log writer puts it into the database
//! (`store.rs`). Until the writer has, it is kept in memory ([`Recent`],
//! within a budget: past it a lookup waits for the writer), so a next turn
//! that comes at once finds it: no race with the writer. A response belongs to its owner (a key's id, or
//! `anonymous`): another key's id is a 404. Retention removes it
//! `[responses] retain_days` after it was made; `DELETE` at once (a
//! tombstone here covers the time until the writer has deleted the rows).

mod recent;
pub mod store;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::gateway::Gateway;
pub use recent::{Found, Recent};

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
    /// The Response object, as the caller got it: JSON, read as a Response
    /// before it was kept, so sent on as it is (also when read back from
    /// the database, which only the gateway writes). In the spool's JSON
    /// lines of earlier versions it is the object itself.
    #[serde(with = "embedded")]
    pub response: String,
    /// This turn's own input items, each with an `id`.
    pub input: Vec<Box<RawValue>>,
    /// Its output items.
    pub output: Vec<Box<RawValue>>,
}

/// JSON text held as a `String`, (de)serialized as the value it is.
mod embedded {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub(super) fn serialize<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(Box::<RawValue>::deserialize(d)?.get().to_owned())
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

/// A stored response of `owner`, from memory or the database.
pub async fn find(
    gw: &Gateway,
    owner: &str,
    id: &str,
) -> anyhow::Result<Option<Arc<StoredResponse>>> {
    let found = match gw.conversations.get(id) {
        Found::Response(r) => Some(r),
        Found::Deleted => return Ok(None),
        Found::Pending => {
            gw.conversations.written(id).await?;
            store::get(&gw.storage, id).await?.map(Arc::new)
        }
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
            Found::Pending | Found::NotHere => {
                // (Pending: let go of before the writer had it; once it
                // has, the database holds it and the chain before it.)
                gw.conversations.written(&id).await?;
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
