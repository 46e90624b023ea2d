//! Hard budgets: money is reserved before the upstream call and settled to
//! the actual cost after it.
//!
//! The database is the source of truth, so the cap holds across replicas
//! sharing it. A reservation is one short transaction that locks the key's
//! period row (SQLite: `BEGIN IMMEDIATE`; Postgres: `SELECT ... FOR
//! UPDATE`), refuses if spent + reserved + this call would pass the budget,
//! and records the hold. Settling replaces the hold with the real cost, or
//! releases it when the call failed. A hold whose process died expires and
//! is settled at its estimate by the next reservation for that key.

use sqlx::Row;

use crate::keys::{BudgetPeriod, KeyRecord};
use crate::storage::{Storage, pg};

#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub id: String,
    pub key_id: String,
    pub period_start: i64,
    pub amount_usd: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error(
        "budget exceeded: spent ${spent:.6} and ${reserved:.6} held for calls in flight of ${budget:.6}; this call may cost up to ${amount:.6}"
    )]
    Exceeded {
        spent: f64,
        reserved: f64,
        budget: f64,
        amount: f64,
    },
    #[error("budget store: {0}")]
    Store(#[from] sqlx::Error),
}

/// The start of the period `now_ms` falls in, in ms since the epoch (UTC).
pub fn period_start(period: BudgetPeriod, now_ms: i64) -> i64 {
    const DAY: i64 = 86_400_000;
    match period {
        BudgetPeriod::Total => 0,
        BudgetPeriod::Day => now_ms.div_euclid(DAY) * DAY,
        BudgetPeriod::Month => {
            let days = now_ms.div_euclid(DAY);
            // Civil date from days (Howard Hinnant's algorithm), then back
            // to the first of that month.
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z - era * 146_097;
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let d = doy - (153 * mp + 2) / 5; // day of month, from 0
            (days - d) * DAY
        }
    }
}

/// Holds `amount_usd` of `key`'s budget, or refuses.
pub async fn reserve(
    s: &Storage,
    key: &KeyRecord,
    amount_usd: f64,
    now_ms: i64,
    hold_ms: i64,
) -> Result<Option<Reservation>, BudgetError> {
    let (Some(budget), period) = (
        key.budget_usd,
        key.budget_period.unwrap_or(BudgetPeriod::Month),
    ) else {
        return Ok(None);
    };
    let start = period_start(period, now_ms);
    let id = format!("res_{}", uuid::Uuid::now_v7().simple());
    macro_rules! run {
        ($tx:expr, $q:expr) => {{
            let tx = $tx;
            // Holds left by processes that died are settled at their estimate.
            let stale = sqlx::query(&$q(
                "SELECT id, period_start, amount_usd FROM budget_reservations WHERE key_id = ? AND expires_at < ?",
            ))
            .bind(&key.id)
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?;
            for r in stale {
                let rid: String = r.try_get("id")?;
                let rstart: i64 = r.try_get("period_start")?;
                let amount: f64 = r.try_get("amount_usd")?;
                sqlx::query(&$q("DELETE FROM budget_reservations WHERE id = ?"))
                    .bind(&rid)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&$q(
                    "UPDATE budget_spend SET reserved_usd = reserved_usd - ?, spent_usd = spent_usd + ? WHERE key_id = ? AND period_start = ?",
                ))
                .bind(amount)
                .bind(amount)
                .bind(&key.id)
                .bind(rstart)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(&$q(
                "INSERT INTO budget_spend (key_id, period_start, spent_usd, reserved_usd) VALUES (?, ?, 0, 0) ON CONFLICT (key_id, period_start) DO NOTHING",
            ))
            .bind(&key.id)
            .bind(start)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(&$q(
                "SELECT spent_usd, reserved_usd FROM budget_spend WHERE key_id = ? AND period_start = ? LOCK",
            ))
            .bind(&key.id)
            .bind(start)
            .fetch_one(&mut *tx)
            .await?;
            let spent: f64 = row.try_get("spent_usd")?;
            let reserved: f64 = row.try_get("reserved_usd")?;
            if spent + reserved + amount_usd > budget + 1e-12 {
                return Err(BudgetError::Exceeded {
                    spent,
                    reserved,
                    budget,
                    amount: amount_usd,
                });
            }
            sqlx::query(&$q(
                "INSERT INTO budget_reservations (id, key_id, period_start, amount_usd, expires_at) VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(&id)
            .bind(&key.id)
            .bind(start)
            .bind(amount_usd)
            .bind(now_ms + hold_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&$q(
                "UPDATE budget_spend SET reserved_usd = reserved_usd + ? WHERE key_id = ? AND period_start = ?",
            ))
            .bind(amount_usd)
            .bind(&key.id)
            .bind(start)
            .execute(&mut *tx)
            .await?;
        }};
    }
    match s {
        Storage::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            run!(&mut *tx, |q: &str| q.replace(" LOCK", ""));
            tx.commit().await?;
        }
        Storage::Postgres(p) => {
            let mut tx = p.begin().await?;
            run!(&mut *tx, |q: &str| pg(&q.replace(" LOCK", " FOR UPDATE")));
            tx.commit().await?;
        }
    }
    Ok(Some(Reservation {
        id,
        key_id: key.id.clone(),
        period_start: start,
        amount_usd,
    }))
}

/// Replaces a hold with the actual cost (`None`: the call cost nothing,
/// release it). A hold already settled as stale is not counted twice.
pub async fn settle(
    s: &Storage,
    r: &Reservation,
    actual_usd: Option<f64>,
) -> Result<(), sqlx::Error> {
    let actual = actual_usd.unwrap_or(0.0);
    macro_rules! run {
        ($tx:expr, $q:expr) => {{
            let tx = $tx;
            let gone = sqlx::query(&$q("DELETE FROM budget_reservations WHERE id = ?"))
                .bind(&r.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone == 1 {
                sqlx::query(&$q(
                    "UPDATE budget_spend SET reserved_usd = reserved_usd - ?, spent_usd = spent_usd + ? WHERE key_id = ? AND period_start = ?",
                ))
                .bind(r.amount_usd)
                .bind(actual)
                .bind(&r.key_id)
                .bind(r.period_start)
                .execute(&mut *tx)
                .await?;
            }
        }};
    }
    match s {
        Storage::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            run!(&mut *tx, |q: &str| q.to_owned());
            tx.commit().await?;
        }
        Storage::Postgres(p) => {
            let mut tx = p.begin().await?;
            run!(&mut *tx, pg);
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Spent and held for `key` in its current period.
pub async fn status(s: &Storage, key: &KeyRecord, now_ms: i64) -> Result<(f64, f64), sqlx::Error> {
    let start = period_start(key.budget_period.unwrap_or(BudgetPeriod::Month), now_ms);
    const Q: &str =
        "SELECT spent_usd, reserved_usd FROM budget_spend WHERE key_id = ? AND period_start = ?";
    let row = match s {
        Storage::Sqlite(p) => sqlx::query(Q)
            .bind(&key.id)
            .bind(start)
            .fetch_optional(p)
            .await?
            .map(|r| {
                (
                    r.try_get::<f64, _>("spent_usd").unwrap_or(0.0),
                    r.try_get::<f64, _>("reserved_usd").unwrap_or(0.0),
                )
            }),
        Storage::Postgres(p) => sqlx::query(&pg(Q))
            .bind(&key.id)
            .bind(start)
            .fetch_optional(p)
            .await?
            .map(|r| {
                (
                    r.try_get::<f64, _>("spent_usd").unwrap_or(0.0),
                    r.try_get::<f64, _>("reserved_usd").unwrap_or(0.0),
                )
            }),
    };
    Ok(row.unwrap_or((0.0, 0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_where_the_calendar_says() {
        // 2026-11-28T10:00:00Z
        let t = 1_795_860_000_000;
        assert_eq!(period_start(BudgetPeriod::Total, t), 0);
        assert_eq!(period_start(BudgetPeriod::Day, t), 1_795_824_000_000); // 2026-11-28T00:00Z
        assert_eq!(period_start(BudgetPeriod::Month, t), 1_793_491_200_000); // 2026-11-01T00:00Z
        // 2024-02-29 → 2024-02-01
        assert_eq!(
            period_start(BudgetPeriod::Month, 1_709_200_000_000),
            1_706_745_600_000
        );
    }
}
