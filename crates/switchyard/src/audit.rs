//! The audit trail of credentialed tools: every tool call, approval
//! request and decision, in a hash chain. Record `n` holds the SHA-256 of
//! record `n - 1`'s hash, its own number, time, kind and JSON, so editing,
//! removing or reordering any record breaks every hash after it, and
//! [`verify`] names the first record that does not match.
//!
//! Appends take the chain's head row in a transaction (`FOR UPDATE` on
//! Postgres, `BEGIN IMMEDIATE` on SQLite), so replicas sharing a database
//! extend one chain. A tool call is slow next to an append (a person may
//! approve it), so records are written before the call answers, not
//! through the spool.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::storage::{Storage, pg};

pub mod group;
pub use group::Group;

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A record's hash: over the previous hash, its number, time, kind and
/// JSON, each on its own line.
pub fn hash(prev: &str, seq: i64, time_ms: i64, kind: &str, record: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &seq.to_string(), &time_ms.to_string(), kind, record] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    crate::keys::hex(&h.finalize())
}

/// One record to append.
pub struct New {
    pub time_ms: i64,
    pub kind: String,
    pub record: String,
}

impl New {
    pub fn of<T: Serialize>(kind: &str, record: &T) -> serde_json::Result<New> {
        Ok(New {
            time_ms: crate::clock::unix_ms(),
            kind: kind.to_owned(),
            record: serde_json::to_string(record)?,
        })
    }
}

/// Appends a record; returns its number.
pub async fn append<T: Serialize>(s: &Storage, kind: &str, record: &T) -> anyhow::Result<i64> {
    let seqs = append_all(s, &[New::of(kind, record)?]).await?;
    seqs.first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no audit record was appended"))
}

/// Appends records, in order, in one transaction; returns their numbers.
pub async fn append_all(s: &Storage, new: &[New]) -> anyhow::Result<Vec<i64>> {
    macro_rules! append_in {
        ($tx:expr, $q:expr, $lock:literal) => {{
            let head = sqlx::query(&$q(concat!("SELECT seq, hash FROM audit_head WHERE id = 1", $lock)))
                .fetch_one(&mut *$tx)
                .await?;
            let mut seq: i64 = head.try_get("seq")?;
            let mut prev: String = head.try_get("hash")?;
            let mut seqs = Vec::with_capacity(new.len());
            for n in new {
                seq += 1;
                let h = hash(&prev, seq, n.time_ms, &n.kind, &n.record);
                sqlx::query(&$q(
                    "INSERT INTO audit (seq, time_ms, kind, record, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
                ))
                .bind(seq)
                .bind(n.time_ms)
                .bind(&n.kind)
                .bind(&n.record)
                .bind(&prev)
                .bind(&h)
                .execute(&mut *$tx)
                .await?;
                prev = h;
                seqs.push(seq);
            }
            sqlx::query(&$q("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"))
                .bind(seq)
                .bind(&prev)
                .execute(&mut *$tx)
                .await?;
            seqs
        }};
    }
    let seqs = match s {
        Storage::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            let seqs = append_in!(tx, |q: &str| q.to_owned(), "");
            tx.commit().await?;
            seqs
        }
        Storage::Postgres(p) => {
            let mut tx = p.begin().await?;
            let seqs = append_in!(tx, pg, " FOR UPDATE");
            tx.commit().await?;
            seqs
        }
    };
    Ok(seqs)
}

/// What [`verify`] found.
#[derive(Debug, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Verdict {
    pub ok: bool,
    /// Records walked.
    pub records: i64,
    /// The first record that does not match, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The chain's last hash.
    pub head: String,
}

/// Rows read at a time.
const PAGE: i64 = 1000;

/// Re-walks the whole chain from the first record.
pub async fn verify(s: &Storage) -> anyhow::Result<Verdict> {
    const Q: &str = "SELECT seq, time_ms, kind, record, prev_hash, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?";
    let mut prev = GENESIS.to_owned();
    let mut expected = 1i64;
    let mut records = 0i64;
    let bad = |seq: i64, records: i64, head: String, problem: String| Verdict {
        ok: false,
        records,
        first_bad: Some(seq),
        problem: Some(problem),
        head,
    };
    loop {
        let rows = match s {
            Storage::Sqlite(p) => sqlx::query(Q)
                .bind(expected - 1)
                .bind(PAGE)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(|r| read_row(&r))
                .collect::<Result<Vec<_>, _>>()?,
            Storage::Postgres(p) => sqlx::query(&pg(Q))
                .bind(expected - 1)
                .bind(PAGE)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(|r| read_row(&r))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if rows.is_empty() {
            break;
        }
        for r in rows {
            if r.seq != expected {
                return Ok(bad(
                    expected,
                    records,
                    prev,
                    format!("record {expected} is missing"),
                ));
            }
            if r.prev_hash != prev {
                return Ok(bad(
                    r.seq,
                    records,
                    prev,
                    "its previous hash is not the record before's".into(),
                ));
            }
            if hash(&prev, r.seq, r.time_ms, &r.kind, &r.record) != r.hash {
                return Ok(bad(
                    r.seq,
                    records,
                    prev,
                    "its contents do not match its hash".into(),
                ));
            }
            prev = r.hash;
            expected += 1;
            records += 1;
        }
    }
    let head_hash: String = match s {
        Storage::Sqlite(p) => {
            sqlx::query_scalar("SELECT hash FROM audit_head WHERE id = 1")
                .fetch_one(p)
                .await?
        }
        Storage::Postgres(p) => {
            sqlx::query_scalar("SELECT hash FROM audit_head WHERE id = 1")
                .fetch_one(p)
                .await?
        }
    };
    if head_hash != prev {
        return Ok(bad(
            expected,
            records,
            prev,
            "the chain ends before its head says".into(),
        ));
    }
    Ok(Verdict {
        ok: true,
        records,
        first_bad: None,
        problem: None,
        head: prev,
    })
}

struct Row_ {
    seq: i64,
    time_ms: i64,
    kind: String,
    record: String,
    prev_hash: String,
    hash: String,
}

fn read_row<R: Row>(r: &R) -> Result<Row_, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Row_ {
        seq: r.try_get("seq")?,
        time_ms: r.try_get("time_ms")?,
        kind: r.try_get("kind")?,
        record: r.try_get("record")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// One record as the admin API lists it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(rename = "AuditRecord")]
pub struct Listed {
    pub seq: i64,
    pub time_ms: i64,
    pub kind: String,
    pub record: serde_json::Value,
    pub hash: String,
}

/// Records newest first, before `before` (a sequence number), of `kind`
/// when given, at most `limit`.
pub async fn list(
    s: &Storage,
    kind: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> anyhow::Result<Vec<Listed>> {
    let q = "SELECT seq, time_ms, kind, record, prev_hash, hash FROM audit WHERE seq < ? AND (? IS NULL OR kind = ?) \
             ORDER BY seq DESC LIMIT ?";
    let before = before.unwrap_or(i64::MAX);
    let rows = match s {
        Storage::Sqlite(p) => sqlx::query(q)
            .bind(before)
            .bind(kind)
            .bind(kind)
            .bind(limit)
            .fetch_all(p)
            .await?
            .iter()
            .map(read_row)
            .collect::<Result<Vec<_>, _>>()?,
        Storage::Postgres(p) => sqlx::query(&pg(&q.replace("(? IS NULL", "(?::TEXT IS NULL")))
            .bind(before)
            .bind(kind)
            .bind(kind)
            .bind(limit)
            .fetch_all(p)
            .await?
            .iter()
            .map(read_row)
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(rows
        .into_iter()
        .map(|r| Listed {
            seq: r.seq,
            time_ms: r.time_ms,
            kind: r.kind,
            record: serde_json::from_str(&r.record).unwrap_or(serde_json::Value::Null),
            hash: r.hash,
        })
        .collect())
}
