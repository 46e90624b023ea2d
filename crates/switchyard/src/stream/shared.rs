//! Stream buffers and idempotency keys in Redis, so that a stream started
//! on one replica can be resumed, or a retry attached, through another.
//!
//! Each stream is mirrored into a Redis stream `sy:stream:{<id>}`: one
//! entry per chunk (the id of its first event, where each event starts, the
//! bytes), then an `end` entry. `sy:streammeta:{<id>}` says whose it is and
//! in which dialect (the braces are literal: both keys in one cluster hash
//! slot). A reader on any replica reads the entries from the
//! chunk holding the event it wants, and polls for more until `end`.
//! Both keys expire `streams.retain_s` after the stream ends. Requests in
//! log mode `none` are never mirrored: their buffers stay in memory.

use std::time::Duration;

use crate::kv::Kv;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use redis::AsyncCommands;

use super::buffer::Chunk;

fn stream_key(id: &str) -> String {
    format!("sy:stream:{{{id}}}")
}

fn meta_key(id: &str) -> String {
    format!("sy:streammeta:{{{id}}}")
}

fn idem_key(owner: &str, key: &str) -> String {
    format!("sy:idem:{{{owner}:{key}}}")
}

fn answer_key(id: &str) -> String {
    format!("sy:answer:{{{id}}}")
}

/// Who a mirrored stream belongs to and how to present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMeta {
    pub owner: String,
    pub dialect: String,
    pub provider: String,
    pub model: String,
    pub overflowed: bool,
}

/// Writes one stream's chunks into Redis as they are produced.
pub struct Mirror {
    conn: Kv,
    id: String,
    next_id: u64,
    bytes: usize,
    max_bytes: usize,
    overflowed: bool,
    /// How long the keys live while the stream is being generated.
    live_ttl: Duration,
    /// The Redis key of the idempotency claim that points here, which must
    /// not outlive the stream it leads to.
    idem: Option<String>,
}

impl Mirror {
    pub async fn start(
        conn: Kv,
        id: &str,
        meta: &RemoteMeta,
        max_bytes: usize,
        live_ttl: Duration,
        idem: Option<String>,
    ) -> Mirror {
        let mut m = Mirror {
            conn,
            id: id.to_owned(),
            next_id: 0,
            bytes: 0,
            max_bytes,
            overflowed: false,
            live_ttl,
            idem,
        };
        let r: redis::RedisResult<()> = redis::pipe()
            .hset(meta_key(id), "owner", &meta.owner)
            .ignore()
            .hset(meta_key(id), "dialect", &meta.dialect)
            .ignore()
            .hset(meta_key(id), "provider", &meta.provider)
            .ignore()
            .hset(meta_key(id), "model", &meta.model)
            .ignore()
            .expire(meta_key(id), secs(live_ttl))
            .ignore()
            .query_async(&mut m.conn)
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "Could not mirror a stream to Redis");
        }
        m
    }

    pub async fn push(&mut self, chunk: &Chunk) {
        let first = self.next_id;
        self.next_id += chunk.starts.len() as u64;
        if self.overflowed {
            return;
        }
        self.bytes += chunk.bytes.len();
        if self.bytes > self.max_bytes {
            // Past the bound a stream cannot resume: what was kept goes,
            // and a marker stays, so a reader following the stream learns
            // it was cut rather than seeing a clean end.
            self.overflowed = true;
            let r: redis::RedisResult<()> = redis::pipe()
                .hset(meta_key(&self.id), "overflowed", 1)
                .ignore()
                .del(stream_key(&self.id))
                .ignore()
                .cmd("XADD")
                .arg(stream_key(&self.id))
                .arg("*")
                .arg("overflowed")
                .arg(1)
                .ignore()
                .expire(stream_key(&self.id), secs(self.live_ttl))
                .ignore()
                .query_async(&mut self.conn)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "Could not mark a mirrored stream as past its bound");
            }
            return;
        }
        let starts: Vec<String> = chunk.starts.iter().map(u32::to_string).collect();
        let r: redis::RedisResult<()> = redis::pipe()
            .cmd("XADD")
            .arg(stream_key(&self.id))
            .arg("*")
            .arg("first")
            .arg(first)
            .arg("starts")
            .arg(starts.join(","))
            .arg("data")
            .arg(chunk.bytes.as_ref())
            .ignore()
            .expire(stream_key(&self.id), secs(self.live_ttl))
            .ignore()
            .query_async(&mut self.conn)
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "Could not mirror a stream chunk to Redis");
        }
    }

    /// Marks the end; both keys (and the idempotency claim leading to
    /// them) then live `retain` longer.
    pub async fn end(mut self, retain: Duration) {
        let secs = secs(retain);
        let mut p = redis::pipe();
        p.cmd("XADD")
            .arg(stream_key(&self.id))
            .arg("*")
            .arg("end")
            .arg(1)
            .ignore()
            .expire(stream_key(&self.id), secs)
            .ignore()
            .expire(meta_key(&self.id), secs)
            .ignore();
        let r: redis::RedisResult<()> = p.query_async(&mut self.conn).await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "Could not close a mirrored stream");
        }
        // The claim is in another hash slot (its own tag): a command of its
        // own, never in the pipeline above (a cluster refuses pipelines
        // across slots).
        if let Some(k) = &self.idem {
            let r: redis::RedisResult<()> = self.conn.expire(k, secs).await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "Could not extend an idempotency claim");
            }
        }
    }
}

/// Deletes the mirrors of streams `ids` (their callers read them to the
/// end and this replica has forgotten them).
pub async fn forget(conn: &Kv, ids: &[String]) {
    let mut conn = conn.clone();
    for chunk in ids.chunks(256) {
        let keys: Vec<String> = chunk
            .iter()
            .flat_map(|id| [stream_key(id), meta_key(id)])
            .collect();
        let r: redis::RedisResult<()> = conn.del(keys).await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "Could not delete delivered stream mirrors");
        }
    }
}

pub async fn meta(conn: &Kv, id: &str) -> Option<RemoteMeta> {
    let mut conn = conn.clone();
    let fields: std::collections::HashMap<String, String> =
        conn.hgetall(meta_key(id)).await.ok()?;
    Some(RemoteMeta {
        owner: fields.get("owner")?.clone(),
        dialect: fields.get("dialect")?.clone(),
        provider: fields.get("provider").cloned().unwrap_or_default(),
        model: fields.get("model").cloned().unwrap_or_default(),
        overflowed: fields.get("overflowed").is_some_and(|v| v == "1"),
    })
}

type Entry = (String, std::collections::HashMap<String, redis::Value>);

fn field(fields: &std::collections::HashMap<String, redis::Value>, name: &str) -> Option<Vec<u8>> {
    match fields.get(name)? {
        redis::Value::BulkString(b) => Some(b.clone()),
        redis::Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

/// Follows a mirrored stream from event `from` until its end.
pub fn follow(
    conn: Kv,
    id: String,
    from: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct State {
        conn: Kv,
        key: String,
        last: String,
        cursor: u64,
        done: bool,
        idle: u32,
    }
    let state = State {
        conn,
        key: stream_key(&id),
        last: "-".into(),
        cursor: from,
        done: false,
        idle: 0,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let start = if st.last == "-" {
                "-".to_owned()
            } else {
                format!("({}", st.last)
            };
            let entries: redis::RedisResult<Vec<Entry>> = redis::cmd("XRANGE")
                .arg(&st.key)
                .arg(start)
                .arg("+")
                .arg("COUNT")
                .arg(200)
                .query_async(&mut st.conn)
                .await;
            let entries = match entries {
                Ok(e) => e,
                Err(e) => {
                    return Some((
                        Err(std::io::Error::other(e.to_string())),
                        State { done: true, ..st },
                    ));
                }
            };
            let mut out = BytesMut::new();
            for (entry_id, fields) in entries {
                st.last = entry_id;
                if fields.contains_key("overflowed") {
                    return Some((
                        Err(std::io::Error::other(super::buffer::OUTGROWN)),
                        State { done: true, ..st },
                    ));
                }
                if fields.contains_key("end") {
                    st.done = true;
                    break;
                }
                let (Some(first), Some(starts), Some(data)) = (
                    field(&fields, "first"),
                    field(&fields, "starts"),
                    field(&fields, "data"),
                ) else {
                    continue;
                };
                let first: u64 = String::from_utf8_lossy(&first).parse().unwrap_or(0);
                let starts: Vec<usize> = String::from_utf8_lossy(&starts)
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .collect();
                let end = first + starts.len() as u64;
                if end <= st.cursor {
                    continue;
                }
                let offset = if st.cursor > first {
                    starts[(st.cursor - first) as usize]
                } else {
                    0
                };
                out.extend_from_slice(&data[offset..]);
                st.cursor = end;
            }
            if !out.is_empty() {
                st.idle = 0;
                return Some((Ok(out.freeze()), st));
            }
            if st.done {
                return None;
            }
            // Nothing new: the stream is still being generated elsewhere.
            st.idle += 1;
            if st.idle > 30_000 {
                return Some((
                    Err(std::io::Error::other("the stream stopped arriving")),
                    State { done: true, ..st },
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// What a shared idempotency key says.
pub enum Claimed {
    /// Ours: go ahead.
    Mine,
    /// Used with another body.
    Mismatch,
    /// Used by request `id` with this body.
    Theirs(String),
}

/// A Redis expiry in whole seconds; never 0, which would delete the key.
fn secs(d: Duration) -> i64 {
    d.as_secs().max(1) as i64
}

pub async fn claim(
    conn: &Kv,
    owner: &str,
    key: &str,
    hash: &str,
    id: &str,
    ttl: Duration,
) -> redis::RedisResult<Claimed> {
    let mut conn = conn.clone();
    let k = idem_key(owner, key);
    let value = format!("{hash}:{id}");
    let set: Option<String> = redis::cmd("SET")
        .arg(&k)
        .arg(&value)
        .arg("NX")
        .arg("EX")
        .arg(secs(ttl))
        .query_async(&mut conn)
        .await?;
    if set.is_some() {
        return Ok(Claimed::Mine);
    }
    let existing: Option<String> = conn.get(&k).await?;
    Ok(match existing.as_deref().and_then(|v| v.split_once(':')) {
        Some((h, first)) if h == hash => Claimed::Theirs(first.to_owned()),
        Some(_) => Claimed::Mismatch,
        // Released between the two calls: try again.
        None => Box::pin(claim(&conn, owner, key, hash, id, ttl)).await?,
    })
}

pub async fn release(conn: &Kv, owner: &str, key: &str) {
    let mut conn = conn.clone();
    let _: redis::RedisResult<()> = conn.del(idem_key(owner, key)).await;
}

/// Stores a whole answer for `ttl`, and has the idempotency claim `idem`
/// that leads to it end with it.
pub async fn store_answer(
    conn: &Kv,
    id: &str,
    idem: &str,
    body: &[u8],
    provider: &str,
    model: &str,
    ttl: Duration,
) {
    let mut conn = conn.clone();
    let r: redis::RedisResult<()> = redis::pipe()
        .hset(answer_key(id), "body", body)
        .ignore()
        .hset(answer_key(id), "provider", provider)
        .ignore()
        .hset(answer_key(id), "model", model)
        .ignore()
        .expire(answer_key(id), secs(ttl))
        .ignore()
        .query_async(&mut conn)
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "Could not share an idempotent answer");
        return;
    }
    // The claim has its own hash slot: its own command (see `end`).
    let r: redis::RedisResult<()> = conn.expire(idem, secs(ttl)).await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "Could not extend an idempotency claim");
    }
}

pub async fn answer(conn: &Kv, id: &str) -> Option<(Bytes, String, String)> {
    let mut conn = conn.clone();
    let (body, provider, model): (Option<Vec<u8>>, Option<String>, Option<String>) = redis::pipe()
        .hget(answer_key(id), "body")
        .hget(answer_key(id), "provider")
        .hget(answer_key(id), "model")
        .query_async(&mut conn)
        .await
        .ok()?;
    Some((
        Bytes::from(body?),
        provider.unwrap_or_default(),
        model.unwrap_or_default(),
    ))
}

/// A claimed shared idempotency key. Dropped unresolved (the request
/// failed), it is released so a retry runs.
pub struct SharedClaim {
    conn: Kv,
    /// The gateway's tasks: what the claim leaves to do is waited for at
    /// shutdown like any other work.
    tasks: tokio_util::task::TaskTracker,
    owner: String,
    key: String,
    id: String,
    /// How long a resolved claim (and the answer it leads to) is kept.
    retain: Duration,
    resolved: bool,
}

impl SharedClaim {
    pub fn new(
        conn: Kv,
        tasks: tokio_util::task::TaskTracker,
        owner: &str,
        key: &str,
        id: &str,
        retain: Duration,
    ) -> SharedClaim {
        SharedClaim {
            conn,
            tasks,
            owner: owner.to_owned(),
            key: key.to_owned(),
            id: id.to_owned(),
            retain,
            resolved: false,
        }
    }

    /// The claim's Redis key, for the stream mirror to end it with the
    /// stream.
    pub fn redis_key(&self) -> String {
        idem_key(&self.owner, &self.key)
    }

    /// A stream is found through its mirror; a whole answer is stored for
    /// the retries to read.
    pub fn resolve(mut self, outcome: &super::registry::Outcome) {
        self.resolved = true;
        if let super::registry::Outcome::Whole(a) = outcome {
            let (conn, id, retain) = (self.conn.clone(), self.id.clone(), self.retain);
            let idem = self.redis_key();
            let a = a.clone();
            self.tasks.spawn(async move {
                store_answer(&conn, &id, &idem, &a.body, &a.provider, &a.model, retain).await
            });
        }
    }
}

impl Drop for SharedClaim {
    fn drop(&mut self) {
        if !self.resolved {
            let (conn, owner, key) = (self.conn.clone(), self.owner.clone(), self.key.clone());
            self.tasks
                .spawn(async move { release(&conn, &owner, &key).await });
        }
    }
}
