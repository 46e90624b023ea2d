//! SQL of approval requests, for SQLite and Postgres. Every change of
//! state is one conditional UPDATE: whoever changes the row is the one
//! whose change counts.

use sqlx::Row;

use super::{Approval, State};
use crate::storage::{Storage, pg};

const COLUMNS: &str = "id, created_ms, expires_ms, state, kind, tool, method, path, arguments, body_digest, key_id, \
                       tags, request_id, decided_ms, decided_by, reason, executed_ms";

macro_rules! decode {
    ($r:expr) => {{
        let r = $r;
        let state: String = r.try_get("state")?;
        let tags: String = r.try_get("tags")?;
        Approval {
            id: r.try_get("id")?,
            created_ms: r.try_get("created_ms")?,
            expires_ms: r.try_get("expires_ms")?,
            state: State::parse(&state).unwrap_or(State::Expired),
            kind: r.try_get("kind")?,
            tool: r.try_get("tool")?,
            method: r.try_get("method")?,
            path: r.try_get("path")?,
            arguments: r.try_get("arguments")?,
            body_digest: r.try_get("body_digest")?,
            key_id: r.try_get("key_id")?,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            request_id: r.try_get("request_id")?,
            decided_ms: r.try_get("decided_ms")?,
            decided_by: r.try_get("decided_by")?,
            reason: r.try_get("reason")?,
            executed_ms: r.try_get("executed_ms")?,
        }
    }};
}

/// Runs `$q` (SQL with `?`) on either backend; `$bind` binds its
/// arguments; evaluates to rows affected.
macro_rules! execute {
    ($s:expr, $sql:expr, |$q:ident| $bind:expr) => {{
        match $s {
            Storage::Sqlite(p) => {
                let $q = sqlx::query($sql);
                $bind.execute(p).await?.rows_affected()
            }
            Storage::Postgres(p) => {
                let sql = pg($sql);
                let $q = sqlx::query(&sql);
                $bind.execute(p).await?.rows_affected()
            }
        }
    }};
}

pub async fn insert(s: &Storage, a: &Approval) -> anyhow::Result<()> {
    let sql = format!(
        "INSERT INTO approvals ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    let tags = serde_json::to_string(&a.tags)?;
    execute!(s, &sql, |q| q
        .bind(&a.id)
        .bind(a.created_ms)
        .bind(a.expires_ms)
        .bind(a.state.as_str())
        .bind(&a.kind)
        .bind(&a.tool)
        .bind(&a.method)
        .bind(&a.path)
        .bind(&a.arguments)
        .bind(&a.body_digest)
        .bind(&a.key_id)
        .bind(&tags)
        .bind(&a.request_id)
        .bind(a.decided_ms)
        .bind(&a.decided_by)
        .bind(&a.reason)
        .bind(a.executed_ms));
    Ok(())
}

pub async fn get(s: &Storage, id: &str) -> anyhow::Result<Option<Approval>> {
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = ?");
    Ok(match s {
        Storage::Sqlite(p) => match sqlx::query(&sql).bind(id).fetch_optional(p).await? {
            Some(r) => Some(decode!(&r)),
            None => None,
        },
        Storage::Postgres(p) => match sqlx::query(&pg(&sql)).bind(id).fetch_optional(p).await? {
            Some(r) => Some(decode!(&r)),
            None => None,
        },
    })
}

/// Pending and unexpired → `state`. True if this call changed it.
pub async fn decide(
    s: &Storage,
    id: &str,
    state: State,
    by: &str,
    reason: Option<&str>,
) -> anyhow::Result<bool> {
    let now = crate::clock::unix_ms();
    let n = execute!(
        s,
        "UPDATE approvals SET state = ?, decided_ms = ?, decided_by = ?, reason = ? \
                         WHERE id = ? AND state = 'pending' AND expires_ms > ?",
        |q| q
            .bind(state.as_str())
            .bind(now)
            .bind(by)
            .bind(reason)
            .bind(id)
            .bind(now)
    );
    Ok(n == 1)
}

/// Approved, with this digest → executed. True for the one caller that
/// changed it.
pub async fn claim(s: &Storage, id: &str, digest: &str) -> anyhow::Result<bool> {
    let now = crate::clock::unix_ms();
    let n = execute!(
        s,
        "UPDATE approvals SET state = 'executed', executed_ms = ? \
                         WHERE id = ? AND state = 'approved' AND body_digest = ?",
        |q| q.bind(now).bind(id).bind(digest)
    );
    Ok(n == 1)
}

/// A pending request past its expiry → expired.
pub async fn expire(s: &Storage, id: &str) -> anyhow::Result<()> {
    let now = crate::clock::unix_ms();
    execute!(
        s,
        "UPDATE approvals SET state = 'expired' WHERE id = ? AND state = 'pending' AND expires_ms <= ?",
        |q| q.bind(id).bind(now)
    );
    Ok(())
}

/// Every pending request past its expiry → expired.
pub async fn expire_due(s: &Storage, now: i64) -> anyhow::Result<u64> {
    Ok(execute!(
        s,
        "UPDATE approvals SET state = 'expired' WHERE state = 'pending' AND expires_ms <= ?",
        |q| q.bind(now)
    ))
}

pub async fn list(s: &Storage, state: Option<State>, limit: i64) -> anyhow::Result<Vec<Approval>> {
    let (sql, state) = match state {
        Some(st) => (
            format!(
                "SELECT {COLUMNS} FROM approvals WHERE state = ? ORDER BY created_ms DESC LIMIT ?"
            ),
            Some(st.as_str()),
        ),
        None => (
            format!("SELECT {COLUMNS} FROM approvals ORDER BY created_ms DESC LIMIT ?"),
            None,
        ),
    };
    let mut out = Vec::new();
    match s {
        Storage::Sqlite(p) => {
            let mut q = sqlx::query(&sql);
            if let Some(st) = state {
                q = q.bind(st);
            }
            for r in q.bind(limit).fetch_all(p).await? {
                out.push(decode!(&r));
            }
        }
        Storage::Postgres(p) => {
            let sql = pg(&sql);
            let mut q = sqlx::query(&sql);
            if let Some(st) = state {
                q = q.bind(st);
            }
            for r in q.bind(limit).fetch_all(p).await? {
                out.push(decode!(&r));
            }
        }
    }
    Ok(out)
}
