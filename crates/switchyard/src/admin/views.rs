//! What the admin API answers, as types: the handlers serialize these, and
//! the OpenAPI document (`crate::openapi`) takes its schemas from the same
//! types, so the two cannot drift apart.

use schemars::JsonSchema;
use serde::Serialize;

use crate::config::ProviderKind;
use crate::keys::KeyRecord;
use crate::log_store::query::StatsRow;
use crate::routing::health::Snapshot;

/// A provider's key as `GET /admin/v1/config` shows it: the variable that
/// holds it and whether that is set, never the value.
#[derive(Serialize, JsonSchema)]
pub struct ApiKeyView {
    pub env: Option<String>,
    pub set: bool,
}

/// One provider in `GET /admin/v1/providers`.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Provider")]
pub struct ProviderView {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub jurisdiction: Option<String>,
    pub key_set: bool,
    /// The provider's own circuit; absent until it has been called.
    pub health: Option<Snapshot>,
    /// Each `provider/model` target seen.
    pub targets: Vec<Snapshot>,
}

#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Providers")]
pub struct Providers {
    pub providers: Vec<ProviderView>,
}

/// A key as the admin API shows it: never its secret, except once, in the
/// answer that created it.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Key")]
pub struct KeyView {
    #[serde(flatten)]
    pub record: KeyRecord,
    pub revoked: bool,
    /// The secret: only in the answer to `POST /admin/v1/keys`.
    #[serde(rename = "key", skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Spent and held in the current period: only in `GET
    /// /admin/v1/keys/{id}` of a key with a budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_spent_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_held_usd: Option<f64>,
}

impl KeyView {
    pub fn new(record: KeyRecord) -> KeyView {
        KeyView {
            revoked: record.revoked_at.is_some(),
            record,
            secret: None,
            budget_spent_usd: None,
            budget_held_usd: None,
        }
    }
}

/// A whole list.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "{T}List")]
pub struct List<T> {
    pub data: Vec<T>,
}

/// One page of a longer list; `next_cursor` (as given) asks for the next,
/// `null` on the last page.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T, C> {
    pub data: Vec<T>,
    pub next_cursor: Option<C>,
}

/// `GET /admin/v1/cache`: a page, and which backend holds the entries.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "CacheEntryPage")]
pub struct CachePage<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
    /// `memory` or `redis`.
    pub backend: &'static str,
}

/// What a purge removed.
#[derive(Serialize, JsonSchema)]
pub struct Deleted {
    pub deleted: u64,
}

/// One of the busiest models or providers in `GET /admin/v1/stats`.
#[derive(Serialize, JsonSchema)]
pub struct Top {
    pub name: serde_json::Value,
    pub requests: i64,
    pub errors: i64,
    pub cost_usd: f64,
}

/// `GET /admin/v1/stats`: per bucket, over the whole range, and the
/// busiest models and providers.
#[derive(Serialize, JsonSchema)]
pub struct Stats {
    pub data: Vec<StatsRow>,
    pub totals: StatsRow,
    pub top_models: Vec<Top>,
    pub top_providers: Vec<Top>,
}
