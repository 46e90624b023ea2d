//! Keys in SQLite or Postgres. The SQL is written once with `?`
//! placeholders and numbered for Postgres by [`crate::storage::pg`].

use sqlx::Row;

use super::{BudgetPeriod, KeyRecord, hex};
use crate::config::LogMode;
use crate::storage::{Storage, pg};

const COLUMNS: &str = "id, name, hash, last4, models, tools, rpm, tpm, max_concurrent, budget_usd, budget_period, metadata, log_mode, \
                       jurisdictions, cache_namespace, cache_ttl_s, created_at, updated_at, revoked_at";

macro_rules! decode_key {
    ($row:expr) => {{
        let row = $row;
        let hash_hex: String = row.try_get("hash")?;
        let models: String = row.try_get("models")?;
        let tools: String = row.try_get("tools")?;
        let metadata: String = row.try_get("metadata")?;
        let jurisdictions: Option<String> = row.try_get("jurisdictions")?;
        let period: Option<String> = row.try_get("budget_period")?;
        let log: Option<String> = row.try_get("log_mode")?;
        let rpm: Option<i64> = row.try_get("rpm")?;
        let tpm: Option<i64> = row.try_get("tpm")?;
        let max_concurrent: Option<i64> = row.try_get("max_concurrent")?;
        let ttl: Option<i64> = row.try_get("cache_ttl_s")?;
        KeyRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            hash: unhex(&hash_hex),
            last4: row.try_get("last4")?,
            models: serde_json::from_str(&models).unwrap_or_default(),
            tools: serde_json::from_str(&tools).unwrap_or_default(),
            rpm: rpm.and_then(|v| u32::try_from(v).ok()),
            tpm: tpm.and_then(|v| u64::try_from(v).ok()),
            max_concurrent: max_concurrent.and_then(|v| u32::try_from(v).ok()),
            budget_usd: row.try_get("budget_usd")?,
            budget_period: period.as_deref().and_then(BudgetPeriod::parse),
            metadata: serde_json::from_str(&metadata).unwrap_or_default(),
            log: log.as_deref().and_then(parse_log),
            jurisdictions: jurisdictions.and_then(|j| serde_json::from_str(&j).ok()),
            cache_namespace: row.try_get("cache_namespace")?,
            cache_ttl_s: ttl.and_then(|v| u64::try_from(v).ok()),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            revoked_at: row.try_get("revoked_at")?,
        }
    }};
}

fn parse_log(s: &str) -> Option<LogMode> {
    match s {
        "full" => Some(LogMode::Full),
        "metadata" => Some(LogMode::Metadata),
        "none" => Some(LogMode::None),
        _ => None,
    }
}

fn log_str(l: LogMode) -> &'static str {
    match l {
        LogMode::Full => "full",
        LogMode::Metadata => "metadata",
        LogMode::None => "none",
    }
}

fn unhex(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = s
            .get(i * 2..i * 2 + 2)
            .and_then(|b| u8::from_str_radix(b, 16).ok())
            .unwrap_or(0);
    }
    out
}

/// The newest change and the number of keys: what `Keys::refresh` compares.
pub async fn change_stamp(s: &Storage) -> Result<(i64, i64), sqlx::Error> {
    const Q: &str = "SELECT COALESCE(MAX(updated_at), 0) AS stamp, COUNT(*) AS n FROM keys";
    let row = match s {
        Storage::Sqlite(p) => {
            let r = sqlx::query(Q).fetch_one(p).await?;
            (r.try_get("stamp")?, r.try_get("n")?)
        }
        Storage::Postgres(p) => {
            let r = sqlx::query(Q).fetch_one(p).await?;
            (r.try_get("stamp")?, r.try_get("n")?)
        }
    };
    Ok(row)
}

pub async fn list(s: &Storage, include_revoked: bool) -> Result<Vec<KeyRecord>, sqlx::Error> {
    let q = format!(
        "SELECT {COLUMNS} FROM keys {} ORDER BY created_at, id",
        if include_revoked {
            ""
        } else {
            "WHERE revoked_at IS NULL"
        }
    );
    let mut out = Vec::new();
    match s {
        Storage::Sqlite(p) => {
            for r in sqlx::query(&q).fetch_all(p).await? {
                out.push(decode_key!(&r));
            }
        }
        Storage::Postgres(p) => {
            for r in sqlx::query(&q).fetch_all(p).await? {
                out.push(decode_key!(&r));
            }
        }
    }
    Ok(out)
}

pub async fn get(s: &Storage, id: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
    one(s, &format!("SELECT {COLUMNS} FROM keys WHERE id = ?"), id).await
}

pub async fn find_by_hash(s: &Storage, h: &[u8; 32]) -> Result<Option<KeyRecord>, sqlx::Error> {
    one(
        s,
        &format!("SELECT {COLUMNS} FROM keys WHERE hash = ? AND revoked_at IS NULL"),
        &hex(h),
    )
    .await
}

async fn one(s: &Storage, q: &str, arg: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
    Ok(match s {
        Storage::Sqlite(p) => match sqlx::query(q).bind(arg).fetch_optional(p).await? {
            Some(r) => Some(decode_key!(&r)),
            None => None,
        },
        Storage::Postgres(p) => match sqlx::query(&pg(q)).bind(arg).fetch_optional(p).await? {
            Some(r) => Some(decode_key!(&r)),
            None => None,
        },
    })
}

macro_rules! bind_key {
    ($q:expr, $k:expr) => {{
        let k = $k;
        $q.bind(&k.name)
            .bind(hex(&k.hash))
            .bind(&k.last4)
            .bind(serde_json::to_string(&k.models).unwrap_or_else(|_| "[]".into()))
            .bind(serde_json::to_string(&k.tools).unwrap_or_else(|_| "[]".into()))
            .bind(k.rpm.map(i64::from))
            .bind(k.tpm.and_then(|v| i64::try_from(v).ok()))
            .bind(k.max_concurrent.map(i64::from))
            .bind(k.budget_usd)
            .bind(k.budget_period.map(BudgetPeriod::as_str))
            .bind(serde_json::to_string(&k.metadata).unwrap_or_else(|_| "{}".into()))
            .bind(k.log.map(log_str))
            .bind(
                k.jurisdictions
                    .as_ref()
                    .and_then(|j| serde_json::to_string(j).ok()),
            )
            .bind(k.cache_namespace.clone())
            .bind(k.cache_ttl_s.and_then(|v| i64::try_from(v).ok()))
            .bind(k.created_at)
            .bind(k.updated_at)
            .bind(k.revoked_at)
            .bind(&k.id)
    }};
}

pub async fn insert(s: &Storage, k: &KeyRecord) -> Result<(), sqlx::Error> {
    const Q: &str = "INSERT INTO keys (name, hash, last4, models, tools, rpm, tpm, max_concurrent, budget_usd, budget_period, \
                     metadata, log_mode, jurisdictions, cache_namespace, cache_ttl_s, created_at, updated_at, revoked_at, id) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    match s {
        Storage::Sqlite(p) => bind_key!(sqlx::query(Q), k).execute(p).await?,
        Storage::Postgres(p) => {
            let q = pg(Q);
            bind_key!(sqlx::query(&q), k).execute(p).await?;
            return Ok(());
        }
    };
    Ok(())
}

/// Writes every field but the secret's hash and the creation time.
pub async fn update(s: &Storage, k: &KeyRecord) -> Result<bool, sqlx::Error> {
    const Q: &str = "UPDATE keys SET name = ?, hash = ?, last4 = ?, models = ?, tools = ?, rpm = ?, tpm = ?, max_concurrent = ?, budget_usd = ?, \
                     budget_period = ?, metadata = ?, log_mode = ?, jurisdictions = ?, cache_namespace = ?, \
                     cache_ttl_s = ?, created_at = ?, updated_at = ?, revoked_at = ? WHERE id = ?";
    let n = match s {
        Storage::Sqlite(p) => bind_key!(sqlx::query(Q), k)
            .execute(p)
            .await?
            .rows_affected(),
        Storage::Postgres(p) => {
            let q = pg(Q);
            bind_key!(sqlx::query(&q), k)
                .execute(p)
                .await?
                .rows_affected()
        }
    };
    Ok(n == 1)
}
