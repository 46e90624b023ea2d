//! SQL of stored responses (`responses`, `response_items`), for SQLite and
//! Postgres. Inserts and deletes run in the log writer's transaction.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::Row as _;

use super::StoredResponse;
use crate::storage::{Storage, pg};

/// A stored response as the writer inserts it (and the spool carries it):
/// each item with its id, every JSON value as its text, so nothing is
/// decoded on the way (the texts were JSON when they were kept, and are
/// read back into `RawValue`s when asked for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub id: String,
    pub owner: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub previous_id: Option<String>,
    pub requested_model: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub request_id: String,
    pub response: String,
    /// The input items, then the output items, in order.
    pub items: Vec<ItemRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRow {
    /// Empty when the item has none.
    pub item_id: String,
    pub is_output: bool,
    pub item: String,
}

impl Row {
    pub fn of(r: &StoredResponse) -> Row {
        let input = r.input.iter().map(|i| (false, i));
        let output = r.output.iter().map(|i| (true, i));
        Row {
            id: r.id.clone(),
            owner: r.owner.clone(),
            created_ms: r.created_ms,
            expires_ms: r.expires_ms,
            previous_id: r.previous_id.clone(),
            requested_model: r.requested_model.clone(),
            provider: r.provider.clone(),
            model: r.model.clone(),
            request_id: r.request_id.clone(),
            response: r.response.clone(),
            items: input
                .chain(output)
                .map(|(is_output, item)| ItemRow {
                    item_id: super::item_id(item).unwrap_or_default(),
                    is_output,
                    item: item.get().to_owned(),
                })
                .collect(),
        }
    }
}

fn raw(text: String) -> Result<Box<RawValue>, sqlx::Error> {
    RawValue::from_string(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// The stored response `id`, whoever owns it (callers check).
pub async fn get(s: &Storage, id: &str) -> Result<Option<StoredResponse>, sqlx::Error> {
    Ok(chain(s, id, 1).await?.pop())
}

/// The turns of a chain, newest first, from `?1` back by `previous_id`, at
/// most `?2` of them; a turn that is not stored ends it.
const CHAIN: &str = "WITH RECURSIVE chain(id, depth) AS (\
                       SELECT id, CAST(0 AS BIGINT) FROM responses WHERE id = ? \
                       UNION ALL \
                       SELECT r.previous_id, c.depth + 1 FROM chain c JOIN responses r ON r.id = c.id \
                       WHERE r.previous_id IS NOT NULL AND c.depth + 1 < ?) ";
const CHAIN_TURNS: &str = "SELECT c.depth, r.id, r.owner, r.created_ms, r.expires_ms, r.previous_id, r.requested_model, \
                           r.provider, r.model, r.request_id, r.response \
                           FROM chain c JOIN responses r ON r.id = c.id ORDER BY c.depth";
const CHAIN_ITEMS: &str = "SELECT c.depth, i.item, i.is_output \
                           FROM chain c JOIN response_items i ON i.response_id = c.id ORDER BY c.depth, i.seq";

macro_rules! read_chain {
    ($pool:expr, $turns:expr, $items:expr, $id:expr, $most:expr) => {{
        let mut turns = Vec::new();
        for row in sqlx::query($turns)
            .bind($id)
            .bind($most)
            .fetch_all($pool)
            .await?
        {
            turns.push(StoredResponse {
                id: row.try_get("id")?,
                owner: row.try_get("owner")?,
                created_ms: row.try_get("created_ms")?,
                expires_ms: row.try_get("expires_ms")?,
                previous_id: row.try_get("previous_id")?,
                requested_model: row.try_get("requested_model")?,
                provider: row.try_get("provider")?,
                model: row.try_get("model")?,
                request_id: row.try_get("request_id")?,
                response: row.try_get("response")?,
                input: Vec::new(),
                output: Vec::new(),
            });
        }
        for item in sqlx::query($items)
            .bind($id)
            .bind($most)
            .fetch_all($pool)
            .await?
        {
            let depth: i64 = item.try_get("depth")?;
            // A turn deleted between the two reads has no place: skip it.
            let Some(r) = usize::try_from(depth).ok().and_then(|d| turns.get_mut(d)) else {
                continue;
            };
            let text: String = item.try_get("item")?;
            let is_output: bool = item.try_get("is_output")?;
            if is_output {
                r.output.push(raw(text)?);
            } else {
                r.input.push(raw(text)?);
            }
        }
        Ok(turns)
    }};
}

/// The stored response `id` and the ones it continued, newest first, at
/// most `most` of them, in two queries whatever the length. The list ends
/// early at a turn the database does not hold (its `previous_id` says
/// which); empty if it holds not even `id`.
pub async fn chain(s: &Storage, id: &str, most: usize) -> Result<Vec<StoredResponse>, sqlx::Error> {
    let most = i64::try_from(most).unwrap_or(i64::MAX);
    match s {
        Storage::Sqlite(p) => {
            read_chain!(
                p,
                &format!("{CHAIN}{CHAIN_TURNS}"),
                &format!("{CHAIN}{CHAIN_ITEMS}"),
                id,
                most
            )
        }
        Storage::Postgres(p) => read_chain!(
            p,
            &pg(&format!("{CHAIN}{CHAIN_TURNS}")),
            &pg(&format!("{CHAIN}{CHAIN_ITEMS}")),
            id,
            most
        ),
    }
}

/// The response holding item `item_id`.
pub async fn holding(s: &Storage, item_id: &str) -> Result<Option<String>, sqlx::Error> {
    const Q: &str = "SELECT response_id FROM response_items WHERE item_id = ? LIMIT 1";
    match s {
        Storage::Sqlite(p) => sqlx::query_scalar(Q).bind(item_id).fetch_optional(p).await,
        Storage::Postgres(p) => {
            sqlx::query_scalar(&pg(Q))
                .bind(item_id)
                .fetch_optional(p)
                .await
        }
    }
}

/// The writer's statements for stored responses (here, and on SQLite in
/// `log_store::writer::lite`).
pub(crate) const INSERT_RESPONSE: &str = "INSERT INTO responses (id, owner, created_ms, expires_ms, previous_id, requested_model, \
    provider, model, request_id, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING";
pub(crate) const INSERT_ITEM: &str = "INSERT INTO response_items (response_id, seq, item_id, is_output, item) VALUES (?, ?, ?, ?, ?) \
    ON CONFLICT (response_id, seq) DO NOTHING";
pub(crate) const DELETE_ITEMS: &str = "DELETE FROM response_items WHERE response_id = ?";
pub(crate) const DELETE_RESPONSE: &str = "DELETE FROM responses WHERE id = ?";

/// Inserts a stored response and its items in the writer's transaction
/// `$tx`; a response already stored is left as it is (spool replays).
macro_rules! insert_response {
    ($tx:expr, $q:expr, $r:expr) => {{
        let r: &crate::conversations::store::Row = $r;
        let done = sqlx::query(&$q($crate::conversations::store::INSERT_RESPONSE))
            .bind(&r.id)
            .bind(&r.owner)
            .bind(r.created_ms)
            .bind(r.expires_ms)
            .bind(&r.previous_id)
            .bind(&r.requested_model)
            .bind(&r.provider)
            .bind(&r.model)
            .bind(&r.request_id)
            .bind(&r.response)
            .execute(&mut *$tx)
            .await?;
        if done.rows_affected() > 0 {
            for (seq, item) in r.items.iter().enumerate() {
                sqlx::query(&$q($crate::conversations::store::INSERT_ITEM))
                    .bind(&r.id)
                    .bind(seq as i64)
                    .bind(&item.item_id)
                    .bind(item.is_output)
                    .bind(&item.item)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}
pub(crate) use insert_response;

/// Deletes a stored response and its items in the writer's transaction.
macro_rules! delete_response {
    ($tx:expr, $q:expr, $id:expr) => {{
        let id: &str = $id;
        sqlx::query(&$q($crate::conversations::store::DELETE_ITEMS))
            .bind(id)
            .execute(&mut *$tx)
            .await?;
        sqlx::query(&$q($crate::conversations::store::DELETE_RESPONSE))
            .bind(id)
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use delete_response;

/// Deletes responses past their expiry, a batch at a time; returns how
/// many went.
pub async fn expire(s: &Storage, now_ms: i64, batch: i64) -> Result<u64, sqlx::Error> {
    const IDS: &str = "SELECT id FROM responses WHERE expires_ms < ? LIMIT ?";
    let ids: Vec<String> = match s {
        Storage::Sqlite(p) => {
            sqlx::query_scalar(IDS)
                .bind(now_ms)
                .bind(batch)
                .fetch_all(p)
                .await?
        }
        Storage::Postgres(p) => {
            sqlx::query_scalar(&pg(IDS))
                .bind(now_ms)
                .bind(batch)
                .fetch_all(p)
                .await?
        }
    };
    for id in &ids {
        match s {
            Storage::Sqlite(p) => {
                let mut tx = p.begin().await?;
                delete_response!(tx, |q: &str| q.to_owned(), id);
                tx.commit().await?;
            }
            Storage::Postgres(p) => {
                let mut tx = p.begin().await?;
                delete_response!(tx, pg, id);
                tx.commit().await?;
            }
        }
    }
    Ok(ids.len() as u64)
}
