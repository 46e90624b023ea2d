//! Hard budgets: money is held before the upstream call and settled to the
//! actual cost after it.
//!
//! Two things, kept apart:
//!
//! - **Spend** is durable. The log writer adds each finished request's cost
//!   to `key_spend` (per key and UTC day) in the transaction that finishes
//!   the request's record, once, exactly as it keeps the usage sums. So
//!   spend is as crash-proof as the records are, and a period's spend is the
//!   sum of its days.
//! - **The ledger** is what admission checks: per key and period, what was
//!   spent plus what calls in flight hold. A call is admitted only if
//!   spent + held + the most it can cost fits the budget. In one process the
//!   ledger lives in memory under a mutex held for a few instructions (no
//!   I/O on the request path); with `[redis]` it is a Redis hash changed by
//!   scripts, shared by every replica. An account is loaded from
//!   `key_spend` the first time a key is used in a period, and only once the
//!   writer has caught up with what earlier processes left in the spool, so
//!   a restart never forgets money spent before it.
//!
//! A process that dies loses its in-memory holds; its unfinished requests
//! are settled by the writer as `interrupted` at their estimate, and that
//! estimate is what their spend becomes. In Redis a hold carries an expiry,
//! and the holds of a replica that died are settled at their full amount by
//! the next reservation for that key.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use crate::kv::Kv;
use tokio::sync::watch;

use crate::keys::{BudgetPeriod, KeyRecord};
use crate::storage::{Storage, pg};

/// How long a budgeted request waits at start for the writer to catch up
/// before it is refused as unavailable.
const READY_WAIT: Duration = Duration::from_secs(5);

/// Money held for one call in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// The hold's id in Redis; empty for a hold in this process.
    pub id: String,
    pub key_id: String,
    pub period_start: i64,
    pub amount_usd: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error(
        "budget exceeded: spent ${spent:.6} and ${held:.6} held for calls in flight of ${budget:.6}; this call may cost up to ${amount:.6}"
    )]
    Exceeded {
        spent: f64,
        held: f64,
        budget: f64,
        amount: f64,
    },
    #[error("budget store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("budget store: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the request log writer has not caught up since start")]
    NotReady,
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

fn period_of(key: &KeyRecord) -> BudgetPeriod {
    key.budget_period.unwrap_or(BudgetPeriod::Month)
}

/// One key's current period, in memory.
#[derive(Debug)]
struct Account {
    period_start: i64,
    spent: f64,
    held: f64,
    /// With Redis configured: spent here while Redis was away, not yet
    /// added to the shared account.
    unsynced: f64,
}

/// The live view of every budget: spent and held, per key and period.
pub struct Ledger {
    /// Redis, when configured: accounts every replica shares.
    shared: Option<Kv>,
    /// Accounts in this process: all of them without Redis; with `[redis]
    /// on_unavailable = "local"`, holds taken while Redis cannot be reached
    /// (each such account starts from the database's spend).
    local: Mutex<HashMap<String, Account>>,
    /// Hold here while Redis is away, rather than refuse.
    fallback: bool,
    storage: Storage,
    ready_tx: watch::Sender<bool>,
    ready: watch::Receiver<bool>,
    standing: tokio::sync::Mutex<Option<(std::time::Instant, Standing)>>,
}

/// Budgeted keys by the share of their budget spent or held in the
/// current period (for `/metrics`: counts, never key ids).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Standing {
    pub ok: u64,
    /// At least [`NEAR`] of the budget used.
    pub near: u64,
    pub exhausted: u64,
    /// The highest share of any key (1.0 = all of it).
    pub max_ratio: f64,
}

/// The share of a budget that counts as near exhaustion.
pub const NEAR: f64 = 0.8;

/// How long a computed [`Standing`] is served again (scrapes are frequent;
/// every budgeted key is asked once per computation).
const STANDING_TTL: Duration = Duration::from_secs(15);

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.shared {
            None => "Ledger::Memory",
            Some(_) => "Ledger::Redis",
        })
    }
}

/// Settles the expired holds of the account, then holds ARGV[2] if it fits.
/// KEYS: account hash, expiry sorted set. ARGV: budget, amount, hold id,
/// now (ms), hold expiry (ms), key TTL (s; 0 = none). Returns {-1} when the
/// account must be seeded first, {0, spent, held} when it does not fit,
/// {1} when held. Floats travel as strings.
const RESERVE: &str = r#"
if redis.call('HEXISTS', KEYS[1], 'spent') == 0 then return {-1} end
-- The account lives its period's TTL whether or not this hold fits (a
-- freshly seeded account refused at once must not stay forever).
if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
for _, id in ipairs(stale) do
  local a = redis.call('HGET', KEYS[1], 'h:' .. id)
  if a then
    redis.call('HINCRBYFLOAT', KEYS[1], 'held', -tonumber(a))
    redis.call('HINCRBYFLOAT', KEYS[1], 'spent', tonumber(a))
    redis.call('HDEL', KEYS[1], 'h:' .. id)
  end
  redis.call('ZREM', KEYS[2], id)
end
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent'))
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
local amount = tonumber(ARGV[2])
if spent + held + amount > tonumber(ARGV[1]) + 1e-12 then
  return {0, tostring(spent), tostring(held)}
end
redis.call('HINCRBYFLOAT', KEYS[1], 'held', amount)
redis.call('HSET', KEYS[1], 'h:' .. ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
return {1}
"#;
static RESERVE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RESERVE));

/// Replaces hold ARGV[1] with the cost ARGV[2]; a hold already settled as
/// expired is not counted twice.
const SETTLE: &str = r#"
local a = redis.call('HGET', KEYS[1], 'h:' .. ARGV[1])
if not a then return 0 end
redis.call('HDEL', KEYS[1], 'h:' .. ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBYFLOAT', KEYS[1], 'held', -tonumber(a))
redis.call('HINCRBYFLOAT', KEYS[1], 'spent', tonumber(ARGV[2]))
return 1
"#;
static SETTLE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SETTLE));

fn redis_keys(key_id: &str, period_start: i64) -> (String, String) {
    // One hash slot for both (the scripts touch both).
    let base = format!("sy:budget:{{{key_id}:{period_start}}}");
    let exp = format!("{base}:exp");
    (base, exp)
}

/// How long Redis keeps an account after its last hold.
fn redis_ttl_s(period: BudgetPeriod) -> i64 {
    match period {
        BudgetPeriod::Day => 3 * 86_400,
        BudgetPeriod::Month => 40 * 86_400,
        BudgetPeriod::Total => 0,
    }
}

impl Ledger {
    /// `fallback`: with Redis, hold in this process while Redis cannot be
    /// reached (else such calls are refused).
    pub fn new(storage: Storage, redis: Option<Kv>, fallback: bool) -> Ledger {
        let (ready_tx, ready) = watch::channel(false);
        Ledger {
            shared: redis,
            local: Mutex::new(HashMap::new()),
            fallback,
            storage,
            ready_tx,
            ready,
            standing: tokio::sync::Mutex::new(None),
        }
    }

    /// Every unrevoked key with a budget, by how much of it is used, as
    /// admission sees it; computed at most every 15 s.
    pub async fn standing(&self, now_ms: i64) -> Result<Standing, BudgetError> {
        let mut cached = self.standing.lock().await;
        if let Some((at, s)) = *cached
            && at.elapsed() < STANDING_TTL
        {
            return Ok(s);
        }
        let mut s = Standing::default();
        for key in crate::keys::store::list(&self.storage, false).await? {
            let Some(budget) = key.budget_usd.filter(|b| *b > 0.0) else {
                continue;
            };
            let (spent, held) = self.status(&key, now_ms).await?;
            let ratio = (spent + held) / budget;
            s.max_ratio = s.max_ratio.max(ratio);
            if ratio >= 1.0 - 1e-12 {
                s.exhausted += 1;
            } else if ratio >= NEAR {
                s.near += 1;
            } else {
                s.ok += 1;
            }
        }
        *cached = Some((std::time::Instant::now(), s));
        Ok(s)
    }

    /// Called by the log writer once what earlier processes left in the
    /// spool is in the database: spend read from now on is complete.
    pub fn mark_ready(&self) {
        self.ready_tx.send_replace(true);
    }

    async fn wait_ready(&self) -> Result<(), BudgetError> {
        let mut rx = self.ready.clone();
        match tokio::time::timeout(READY_WAIT, rx.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(BudgetError::NotReady),
        }
    }

    /// Holds `amount_usd` of `key`'s budget, or refuses. `None`: the key has
    /// no budget.
    pub async fn reserve(
        &self,
        key: &KeyRecord,
        amount_usd: f64,
        now_ms: i64,
        hold_ms: i64,
    ) -> Result<Option<Hold>, BudgetError> {
        let Some(budget) = key.budget_usd else {
            return Ok(None);
        };
        let period = period_of(key);
        let start = period_start(period, now_ms);
        let shared = match &self.shared {
            Some(conn) => {
                self.reserve_shared(
                    conn, key, budget, start, period, amount_usd, now_ms, hold_ms,
                )
                .await
            }
            None => return self.reserve_local(key, budget, start, amount_usd).await,
        };
        match shared {
            Err(BudgetError::Redis(e)) if self.fallback => {
                tracing::warn!(error = %e, "Budget store unavailable; holding in this process");
                self.reserve_local(key, budget, start, amount_usd).await
            }
            Ok(Some(h)) if self.fallback => {
                if let Some(conn) = &self.shared {
                    self.sync_local(conn, &key.id, start).await;
                }
                Ok(Some(h))
            }
            r => r,
        }
    }

    /// Redis answers again: what this process spent while it was away goes
    /// into the shared account, and a local account with nothing held is
    /// forgotten (the next outage starts again from the database).
    async fn sync_local(&self, conn: &Kv, key_id: &str, start: i64) {
        let unsynced = {
            let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
            let Some(a) = map.get_mut(key_id) else {
                return;
            };
            let unsynced = if a.period_start == start {
                std::mem::take(&mut a.unsynced)
            } else {
                0.0
            };
            if a.held <= 1e-12 {
                map.remove(key_id);
            }
            unsynced
        };
        if unsynced <= 0.0 {
            return;
        }
        let (k1, _) = redis_keys(key_id, start);
        let mut c = conn.clone();
        let r: Result<f64, _> = redis::cmd("HINCRBYFLOAT")
            .arg(&k1)
            .arg("spent")
            .arg(unsynced)
            .query_async(&mut c)
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "Could not add the spend of a Redis outage to the shared account");
            let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(a) = map.get_mut(key_id) {
                a.unsynced += unsynced;
            }
        }
    }

    /// A hold on the account in this process.
    async fn reserve_local(
        &self,
        key: &KeyRecord,
        budget: f64,
        start: i64,
        amount_usd: f64,
    ) -> Result<Option<Hold>, BudgetError> {
        let fits = |a: &mut Account| {
            if a.spent + a.held + amount_usd > budget + 1e-12 {
                return Err(BudgetError::Exceeded {
                    spent: a.spent,
                    held: a.held,
                    budget,
                    amount: amount_usd,
                });
            }
            a.held += amount_usd;
            Ok(())
        };
        {
            let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(a) = map.get_mut(key.id.as_str())
                && a.period_start == start
            {
                fits(a)?;
                return Ok(Some(self.hold(key, start, amount_usd, String::new())));
            }
        }
        // First use of this key in this period: load what it spent.
        let spent = self.load_spent(&key.id, start).await?;
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let a = map.entry(key.id.clone()).or_insert(Account {
            period_start: start,
            spent,
            held: 0.0,
            unsynced: 0.0,
        });
        if a.period_start != start {
            *a = Account {
                period_start: start,
                spent,
                held: 0.0,
                unsynced: 0.0,
            };
        }
        fits(a)?;
        Ok(Some(self.hold(key, start, amount_usd, String::new())))
    }

    /// A hold on the account in Redis.
    #[allow(clippy::too_many_arguments)]
    async fn reserve_shared(
        &self,
        conn: &Kv,
        key: &KeyRecord,
        budget: f64,
        start: i64,
        period: BudgetPeriod,
        amount_usd: f64,
        now_ms: i64,
        hold_ms: i64,
    ) -> Result<Option<Hold>, BudgetError> {
        let (k1, k2) = redis_keys(&key.id, start);
        let id = uuid::Uuid::now_v7().simple().to_string();
        let script = &*RESERVE_SCRIPT;
        for _ in 0..2 {
            let mut c = conn.clone();
            let r: Vec<redis::Value> = script
                .key(&k1)
                .key(&k2)
                .arg(budget)
                .arg(amount_usd)
                .arg(&id)
                .arg(now_ms)
                .arg(now_ms + hold_ms)
                .arg(redis_ttl_s(period))
                .invoke_async(&mut c)
                .await?;
            let code: i64 = r
                .first()
                .and_then(|v| redis::from_redis_value(v).ok())
                .unwrap_or(-1);
            match code {
                1 => return Ok(Some(self.hold(key, start, amount_usd, id))),
                0 => {
                    let num = |i: usize| {
                        r.get(i)
                            .and_then(|v| redis::from_redis_value::<String>(v).ok())
                            .and_then(|s| s.parse::<f64>().ok())
                            .unwrap_or(0.0)
                    };
                    return Err(BudgetError::Exceeded {
                        spent: num(1),
                        held: num(2),
                        budget,
                        amount: amount_usd,
                    });
                }
                _ => {
                    // Not in Redis yet (or Redis lost it): seed the
                    // account from the database; the first seed wins.
                    let spent = self.load_spent(&key.id, start).await?;
                    let mut c = conn.clone();
                    let _: i64 = redis::cmd("HSETNX")
                        .arg(&k1)
                        .arg("spent")
                        .arg(spent)
                        .query_async(&mut c)
                        .await?;
                }
            }
        }
        Err(BudgetError::Redis(redis::RedisError::from((
            redis::ErrorKind::ResponseError,
            "the budget account could not be seeded",
        ))))
    }

    fn hold(&self, key: &KeyRecord, start: i64, amount_usd: f64, id: String) -> Hold {
        Hold {
            id,
            key_id: key.id.clone(),
            period_start: start,
            amount_usd,
        }
    }

    /// [`Ledger::settle`] for a ledger in this process; does nothing for
    /// one in Redis.
    pub fn settle_local(&self, h: &Hold, actual_usd: Option<f64>) {
        if h.id.is_empty() {
            let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
            // A hold from a period that has since ended has nothing left to
            // release: the new period started from the database.
            if let Some(a) = map.get_mut(h.key_id.as_str())
                && a.period_start == h.period_start
            {
                a.held = (a.held - h.amount_usd).max(0.0);
                a.spent += actual_usd.unwrap_or(0.0);
                if self.shared.is_some() {
                    a.unsynced += actual_usd.unwrap_or(0.0);
                }
            }
        }
    }

    /// Replaces a hold with the actual cost (`None`: the call cost nothing,
    /// release it).
    pub async fn settle(&self, h: &Hold, actual_usd: Option<f64>) {
        let actual = actual_usd.unwrap_or(0.0);
        match &self.shared {
            _ if h.id.is_empty() => self.settle_local(h, actual_usd),
            None => {}
            Some(conn) => {
                let (k1, k2) = redis_keys(&h.key_id, h.period_start);
                let mut c = conn.clone();
                let r: Result<i64, _> = SETTLE_SCRIPT
                    .key(&k1)
                    .key(&k2)
                    .arg(&h.id)
                    .arg(actual)
                    .invoke_async(&mut c)
                    .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "Could not settle a budget hold; it settles at its amount when it expires");
                }
            }
        }
    }

    /// Spent and held for `key` in its current period, as admission sees
    /// them (the database's spend when this process has no account yet).
    pub async fn status(&self, key: &KeyRecord, now_ms: i64) -> Result<(f64, f64), BudgetError> {
        let start = period_start(period_of(key), now_ms);
        let local = async || {
            {
                let map = self.local.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(a) = map.get(key.id.as_str())
                    && a.period_start == start
                {
                    return Ok((a.spent, a.held.max(0.0)));
                }
            }
            Ok((self.load_spent(&key.id, start).await?, 0.0))
        };
        match &self.shared {
            None => local().await,
            Some(conn) => {
                let (k1, _) = redis_keys(&key.id, start);
                let mut c = conn.clone();
                let read: Result<(Option<f64>, Option<f64>), _> = redis::cmd("HMGET")
                    .arg(&k1)
                    .arg("spent")
                    .arg("held")
                    .query_async(&mut c)
                    .await;
                let (spent, held) = match read {
                    Ok(r) => r,
                    Err(_) if self.fallback => return local().await,
                    Err(e) => return Err(e.into()),
                };
                match spent {
                    Some(s) => Ok((s, held.unwrap_or(0.0).max(0.0))),
                    None => Ok((self.load_spent(&key.id, start).await?, 0.0)),
                }
            }
        }
    }

    async fn load_spent(&self, key_id: &str, start: i64) -> Result<f64, BudgetError> {
        self.wait_ready().await?;
        Ok(spent_since(&self.storage, key_id, start).await?)
    }
}

/// What `key_id` spent from `start_ms` on, as the records say.
pub async fn spent_since(s: &Storage, key_id: &str, start_ms: i64) -> Result<f64, sqlx::Error> {
    const Q: &str =
        "SELECT COALESCE(SUM(spent_usd), 0.0) FROM key_spend WHERE key_id = ? AND day_ms >= ?";
    let v: f64 = match s {
        Storage::Sqlite(p) => {
            sqlx::query_scalar(Q)
                .bind(key_id)
                .bind(start_ms)
                .fetch_one(p)
                .await?
        }
        Storage::Postgres(p) => {
            sqlx::query_scalar(&pg(Q))
                .bind(key_id)
                .bind(start_ms)
                .fetch_one(p)
                .await?
        }
    };
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(budget: f64) -> KeyRecord {
        KeyRecord {
            id: "key_b".into(),
            name: "b".into(),
            hash: [0; 32],
            last4: "abcd".into(),
            models: vec![],
            tools: vec![],
            rpm: None,
            tpm: None,
            max_concurrent: None,
            budget_usd: Some(budget),
            budget_period: Some(BudgetPeriod::Day),
            metadata: Default::default(),
            log: None,
            jurisdictions: None,
            cache_namespace: None,
            cache_ttl_s: None,
            created_at: 0,
            updated_at: 0,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn memory_ledger_holds_settles_and_starts_from_recorded_spend() {
        let (_dir, storage, pool) = crate::storage::scratch_sqlite().await;
        let p = &pool;
        let day = 20_000 * 86_400_000i64;
        // Spent earlier today and yesterday; only today counts for a day budget.
        for (d, usd) in [(day, 0.25), (day - 86_400_000, 5.0)] {
            sqlx::query("INSERT INTO key_spend (key_id, day_ms, spent_usd) VALUES ('key_b', ?, ?)")
                .bind(d)
                .bind(usd)
                .execute(p)
                .await
                .unwrap();
        }
        let ledger = Ledger::new(storage.clone(), None, false);
        let k = key(1.0);
        let now = day + 3_600_000;
        // Before the writer caught up, nothing is admitted on a guess.
        tokio::time::pause();
        let early = ledger.reserve(&k, 0.1, now, 60_000).await;
        assert!(matches!(early, Err(BudgetError::NotReady)), "{early:?}");
        tokio::time::resume();
        ledger.mark_ready();
        let a = ledger.reserve(&k, 0.5, now, 60_000).await.unwrap().unwrap();
        let e = ledger.reserve(&k, 0.3, now, 60_000).await.unwrap_err();
        assert!(
            matches!(e, BudgetError::Exceeded { spent, held, .. } if spent == 0.25 && held == 0.5),
            "{e:?}"
        );
        ledger.settle(&a, Some(0.1)).await;
        assert_eq!(ledger.status(&k, now).await.unwrap(), (0.35, 0.0));
        let b = ledger.reserve(&k, 0.6, now, 60_000).await.unwrap().unwrap();
        ledger.settle(&b, None).await;
        assert_eq!(ledger.status(&k, now).await.unwrap(), (0.35, 0.0));
        // The next day starts from that day's recorded spend (none).
        let tomorrow = now + 86_400_000;
        assert_eq!(ledger.status(&k, tomorrow).await.unwrap(), (0.0, 0.0));
        assert!(ledger.reserve(&k, 0.9, tomorrow, 60_000).await.is_ok());
    }

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
