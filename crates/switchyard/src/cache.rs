//! The response cache: exact-match, per tenant, with TTLs that are a
//! guarantee and contents that can be listed and purged.
//!
//! The key is a SHA-256 over the caller's namespace, the inbound dialect,
//! whether the answer streams, and every top-level field the caller sent
//! (name and raw JSON, in name order), so changing anything that is
//! forwarded upstream changes the key, and one namespace never reads
//! another's entries. `x-switchyard-cache-key` replaces the derived part,
//! never the namespace. An entry stores the answer exactly as the caller
//! got it (a stream as its events) and is served only before it expires,
//! whatever the backend's own eviction has or has not done.
//!
//! Backends: memory (bounded by entries and bytes, evicting the entries
//! closest to expiry first) or Redis, shared by replicas, where each entry
//! is a hash with a server-side expiry and two sorted sets index entries
//! by expiry, overall and per namespace, for listing and purging.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use crate::kv::Kv;
use bytes::Bytes;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dialect::Dialect;
use crate::wire::Fields;

/// The longest an entry may live: a year.
pub const MAX_TTL_S: u64 = 365 * 86_400;

/// What an entry says about itself; listed by the admin API (never the body).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[schemars(rename = "CacheEntry")]
pub struct EntryMeta {
    pub id: String,
    pub namespace: String,
    /// The hash the entry is stored under.
    pub key_hash: String,
    pub requested_model: String,
    pub provider: String,
    pub model: String,
    pub dialect: String,
    pub stream: bool,
    pub size_bytes: u64,
    pub created_at: i64,
    pub expires_at: i64,
    /// What the original call cost: a hit saves this.
    pub cost_usd: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub meta: EntryMeta,
    pub body: Bytes,
}

/// The cache key for a request: its id in the cache (hex SHA-256).
pub fn key(
    namespace: &str,
    dialect: Dialect,
    stream: bool,
    fields: &Fields<'_>,
    custom: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    part(namespace.as_bytes());
    part(dialect.as_str().as_bytes());
    part(if stream { b"stream" } else { b"whole" });
    match custom {
        Some(c) => {
            part(b"custom");
            part(c.as_bytes());
        }
        None => {
            let mut sorted: Vec<(&str, &str)> = fields
                .0
                .iter()
                .map(|(k, v)| (k.as_ref(), v.get()))
                .collect();
            sorted.sort_unstable();
            for (k, v) in sorted {
                part(k.as_bytes());
                part(v.as_bytes());
            }
        }
    }
    crate::keys::hex(&h.finalize())
}

#[derive(Debug, Default)]
struct Memory {
    entries: HashMap<String, Entry>,
    /// (expires_at, id), for eviction and expiry.
    by_expiry: BTreeSet<(i64, String)>,
    bytes: u64,
}

pub struct Cache {
    backend: Backend,
    max_entries: u64,
    max_bytes: u64,
}

enum Backend {
    Memory(Mutex<Memory>),
    Redis(Kv),
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.backend {
            Backend::Memory(_) => "Cache::Memory",
            Backend::Redis(_) => "Cache::Redis",
        })
    }
}

/// Every cache key carries the hash tag `{cache}`: the writes that touch an
/// entry and its indexes at once stay in one cluster slot (the cache lives
/// on one shard of a cluster).
const PREFIX: &str = "sy:{cache}";

fn entry_key(id: &str) -> String {
    format!("{PREFIX}:e:{id}")
}

fn index_key() -> String {
    format!("{PREFIX}:idx")
}

fn ns_key(ns: &str) -> String {
    format!("{PREFIX}:ns:{ns}")
}

/// The namespaces that have (or had) entries, for purging everything.
fn namespaces_key() -> String {
    format!("{PREFIX}:nss")
}

impl Cache {
    pub fn memory(max_entries: u64, max_bytes: u64) -> Cache {
        Cache {
            backend: Backend::Memory(Mutex::new(Memory::default())),
            max_entries,
            max_bytes,
        }
    }

    pub fn redis(conn: Kv, max_entries: u64, max_bytes: u64) -> Cache {
        Cache {
            backend: Backend::Redis(conn),
            max_entries,
            max_bytes,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// The entry under `id`, if it has not expired.
    pub async fn get(&self, id: &str, now_ms: i64) -> Option<Entry> {
        match &self.backend {
            Backend::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                let e = m.entries.get(id)?;
                if e.meta.expires_at <= now_ms {
                    let key = (e.meta.expires_at, id.to_owned());
                    if let Some(old) = m.entries.remove(id) {
                        m.bytes -= old.meta.size_bytes;
                    }
                    m.by_expiry.remove(&key);
                    return None;
                }
                Some(e.clone())
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let (meta, body): (Option<String>, Option<Vec<u8>>) = redis::pipe()
                    .hget(entry_key(id), "meta")
                    .hget(entry_key(id), "body")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| tracing::warn!(error = %e, "Cache read failed"))
                    .ok()?;
                let meta: EntryMeta = serde_json::from_str(&meta?).ok()?;
                // The server's expiry is a backstop; ours is the guarantee.
                if meta.expires_at <= now_ms {
                    return None;
                }
                Some(Entry {
                    meta,
                    body: Bytes::from(body?),
                })
            }
        }
    }

    /// Stores an entry (replacing one with the same id).
    pub async fn put(&self, e: Entry) {
        if e.meta.size_bytes > self.max_bytes {
            return;
        }
        match &self.backend {
            Backend::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(old) = m.entries.remove(&e.meta.id) {
                    m.bytes -= old.meta.size_bytes;
                    m.by_expiry.remove(&(old.meta.expires_at, old.meta.id));
                }
                // Room: drop what expires soonest (the expired first of all).
                while m.entries.len() as u64 >= self.max_entries
                    || m.bytes + e.meta.size_bytes > self.max_bytes
                {
                    let Some(first) = m.by_expiry.pop_first() else {
                        break;
                    };
                    if let Some(old) = m.entries.remove(&first.1) {
                        m.bytes -= old.meta.size_bytes;
                    }
                }
                m.bytes += e.meta.size_bytes;
                m.by_expiry.insert((e.meta.expires_at, e.meta.id.clone()));
                m.entries.insert(e.meta.id.clone(), e);
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let meta = serde_json::to_string(&e.meta).unwrap_or_default();
                let k = entry_key(&e.meta.id);
                let r: redis::RedisResult<()> = redis::pipe()
                    .atomic()
                    .hset(&k, "meta", meta)
                    .hset(&k, "body", e.body.as_ref())
                    .cmd("PEXPIREAT")
                    .arg(&k)
                    .arg(e.meta.expires_at)
                    .zadd(index_key(), &e.meta.id, e.meta.expires_at)
                    .zadd(ns_key(&e.meta.namespace), &e.meta.id, e.meta.expires_at)
                    .sadd(namespaces_key(), &e.meta.namespace)
                    // The indexes forget what has expired, so they stay as
                    // small as what is live.
                    .zrembyscore(index_key(), "-inf", e.meta.created_at)
                    .zrembyscore(ns_key(&e.meta.namespace), "-inf", e.meta.created_at)
                    .query_async(&mut conn)
                    .await;
                if let Err(err) = r {
                    tracing::warn!(error = %err, "Cache write failed");
                }
            }
        }
    }

    /// Live entries, soonest to expire first, `limit` from `offset`.
    pub async fn list(
        &self,
        namespace: Option<&str>,
        offset: usize,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<EntryMeta>, redis::RedisError> {
        match &self.backend {
            Backend::Memory(m) => {
                let m = m.lock().unwrap_or_else(|p| p.into_inner());
                Ok(m.by_expiry
                    .iter()
                    .filter(|(exp, _)| *exp > now_ms)
                    .filter_map(|(_, id)| m.entries.get(id))
                    .filter(|e| namespace.is_none_or(|ns| e.meta.namespace == ns))
                    .skip(offset)
                    .take(limit)
                    .map(|e| e.meta.clone())
                    .collect())
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let index = namespace.map(ns_key).unwrap_or_else(index_key);
                let ids: Vec<String> = redis::cmd("ZRANGE")
                    .arg(&index)
                    .arg(format!("({now_ms}"))
                    .arg("+inf")
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(offset)
                    .arg(limit)
                    .query_async(&mut conn)
                    .await?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let meta: Option<String> = conn.hget(entry_key(&id), "meta").await?;
                    if let Some(m) = meta.and_then(|m| serde_json::from_str(&m).ok()) {
                        out.push(m);
                    }
                }
                Ok(out)
            }
        }
    }

    /// Deletes one entry; returns how many went (0 or 1).
    pub async fn purge_id(&self, id: &str) -> Result<u64, redis::RedisError> {
        match &self.backend {
            Backend::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                Ok(match m.entries.remove(id) {
                    Some(old) => {
                        m.bytes -= old.meta.size_bytes;
                        m.by_expiry.remove(&(old.meta.expires_at, old.meta.id));
                        1
                    }
                    None => 0,
                })
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let meta: Option<String> = conn.hget(entry_key(id), "meta").await?;
                let ns = meta
                    .and_then(|m| serde_json::from_str::<EntryMeta>(&m).ok())
                    .map(|m| m.namespace);
                let mut p = redis::pipe();
                p.del(entry_key(id)).zrem(index_key(), id);
                if let Some(ns) = &ns {
                    p.zrem(ns_key(ns), id);
                }
                let r: Vec<u64> = p.query_async(&mut conn).await?;
                Ok(r.first().copied().unwrap_or(0))
            }
        }
    }

    /// Deletes every entry of a namespace.
    pub async fn purge_namespace(&self, ns: &str) -> Result<u64, redis::RedisError> {
        match &self.backend {
            Backend::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                let ids: Vec<String> = m
                    .entries
                    .values()
                    .filter(|e| e.meta.namespace == ns)
                    .map(|e| e.meta.id.clone())
                    .collect();
                for id in &ids {
                    if let Some(old) = m.entries.remove(id) {
                        m.bytes -= old.meta.size_bytes;
                        m.by_expiry.remove(&(old.meta.expires_at, old.meta.id));
                    }
                }
                Ok(ids.len() as u64)
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let ids: Vec<String> = conn.zrange(ns_key(ns), 0, -1).await?;
                let mut n = 0;
                for chunk in ids.chunks(500) {
                    let mut p = redis::pipe();
                    for id in chunk {
                        p.del(entry_key(id)).ignore().zrem(index_key(), id).ignore();
                    }
                    p.query_async::<()>(&mut conn).await?;
                    n += chunk.len() as u64;
                }
                let _: () = conn.del(ns_key(ns)).await?;
                Ok(n)
            }
        }
    }

    /// Deletes everything.
    pub async fn purge_all(&self) -> Result<u64, redis::RedisError> {
        match &self.backend {
            Backend::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                let n = m.entries.len() as u64;
                *m = Memory::default();
                Ok(n)
            }
            Backend::Redis(conn) => {
                // From the indexes (no SCAN: a cluster has no one keyspace
                // to scan): every live entry is in the main index.
                let mut conn = conn.clone();
                let ids: Vec<String> = conn.zrange(index_key(), 0, -1).await?;
                let mut n = 0;
                for chunk in ids.chunks(500) {
                    let keys: Vec<String> = chunk.iter().map(|id| entry_key(id)).collect();
                    let deleted: u64 = conn.del(keys).await?;
                    n += deleted;
                }
                let namespaces: Vec<String> = conn.smembers(namespaces_key()).await?;
                let mut keys: Vec<String> = namespaces.iter().map(|ns| ns_key(ns)).collect();
                keys.push(index_key());
                keys.push(namespaces_key());
                for chunk in keys.chunks(500) {
                    let _: () = conn.del(chunk).await?;
                }
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k(ns: &str, body: &str) -> String {
        let f = Fields::parse(body.as_bytes()).unwrap();
        key(ns, Dialect::OpenAi, false, &f, None)
    }

    #[test]
    fn field_order_does_not_matter_and_namespaces_never_meet() {
        assert_eq!(
            k("a", r#"{"model":"m","temperature":0}"#),
            k("a", r#"{"temperature":0,"model":"m"}"#)
        );
        assert_ne!(k("a", r#"{"model":"m"}"#), k("b", r#"{"model":"m"}"#));
        let f = Fields::parse(br#"{"model":"m"}"#).unwrap();
        assert_ne!(
            key("a", Dialect::OpenAi, false, &f, None),
            key("a", Dialect::Anthropic, false, &f, None)
        );
        assert_ne!(
            key("a", Dialect::OpenAi, false, &f, None),
            key("a", Dialect::OpenAi, true, &f, None)
        );
        assert_ne!(
            key("a", Dialect::OpenAi, false, &f, Some("x")),
            key("b", Dialect::OpenAi, false, &f, Some("x"))
        );
        assert_ne!(key("ab", Dialect::OpenAi, false, &f, None), {
            // Length-prefixed parts: "a"+"b..." cannot collide with "ab"+"...".
            key("a", Dialect::OpenAi, false, &f, None)
        });
    }

    fn field_value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            any::<i32>().prop_map(serde_json::Value::from),
            "[a-z ]{0,12}".prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            proptest::collection::vec("[a-z]{0,5}", 0..3).prop_map(serde_json::Value::from),
        ]
    }

    proptest! {
        /// Changing any field's value, adding or removing a field, changes
        /// the key; the namespace always separates.
        #[test]
        fn every_forwarded_field_is_in_the_key(
            fields in proptest::collection::btree_map("[a-z_]{1,10}", field_value(), 1..8),
            pick in any::<proptest::sample::Index>(),
            new_value in field_value(),
        ) {
            let body = serde_json::to_string(&fields).unwrap();
            let base = k("ns", &body);
            let name = fields.keys().nth(pick.index(fields.len())).unwrap().clone();
            let mut changed = fields.clone();
            if changed[&name] != new_value {
                changed.insert(name.clone(), new_value);
                prop_assert_ne!(&base, &k("ns", &serde_json::to_string(&changed).unwrap()));
            }
            let mut removed = fields.clone();
            removed.remove(&name);
            prop_assert_ne!(&base, &k("ns", &serde_json::to_string(&removed).unwrap()));
            prop_assert_ne!(&base, &k("other-ns", &body));
        }
    }

    fn entry(id: &str, ns: &str, expires: i64, size: usize) -> Entry {
        Entry {
            meta: EntryMeta {
                id: id.into(),
                namespace: ns.into(),
                key_hash: id.into(),
                requested_model: "m".into(),
                provider: "p".into(),
                model: "m".into(),
                dialect: "openai".into(),
                stream: false,
                size_bytes: size as u64,
                created_at: 0,
                expires_at: expires,
                cost_usd: None,
                input_tokens: None,
                output_tokens: None,
            },
            body: Bytes::from(vec![b'x'; size]),
        }
    }

    #[tokio::test]
    async fn memory_bounds_expiry_and_purges() {
        let c = Cache::memory(3, 100);
        c.put(entry("a", "n1", 1000, 10)).await;
        c.put(entry("b", "n1", 2000, 10)).await;
        c.put(entry("c", "n2", 3000, 10)).await;
        assert!(c.get("a", 999).await.is_some());
        assert!(
            c.get("a", 1000).await.is_none(),
            "never served at or past expiry"
        );
        c.put(entry("d", "n2", 4000, 10)).await;
        c.put(entry("e", "n2", 5000, 10)).await;
        assert!(c.get("b", 0).await.is_none(), "evicted: closest to expiry");
        c.put(entry("big", "n2", 9000, 95)).await;
        let all = c.list(None, 0, 10, 0).await.unwrap();
        assert_eq!(
            all.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["big"],
            "bytes bound"
        );
        c.put(entry("f", "n3", 9000, 1)).await;
        assert_eq!(c.purge_namespace("n2").await.unwrap(), 1);
        assert_eq!(c.purge_id("f").await.unwrap(), 1);
        assert_eq!(c.purge_all().await.unwrap(), 0);
    }
}
