//! Per-key rate limits: requests per minute and tokens per minute, exact
//! under concurrency.
//!
//! Windows are fixed minutes. Admission checks and counts in one step: in
//! one process under a mutex held for a few instructions, across replicas
//! in one Redis script. Tokens are held at admission by an estimate (input
//! size + max output tokens) and settled to what the provider reported.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use crate::kv::Kv;
use http::{HeaderName, HeaderValue};

use crate::keys::KeyRecord;

const WINDOW_S: i64 = 60;

/// The `x-ratelimit-*` numbers for a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit_requests: Option<u64>,
    pub remaining_requests: u64,
    pub limit_tokens: Option<u64>,
    pub remaining_tokens: u64,
    /// Seconds until the window resets.
    pub reset_s: u64,
}

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// Writes `x-ratelimit-*` headers (OpenAI's names) for the limits a key has.
pub fn write_headers(h: &mut http::HeaderMap, r: &RateHeaders) {
    let kinds = usize::from(r.limit_requests.is_some()) + usize::from(r.limit_tokens.is_some());
    if kinds == 0 {
        return;
    }
    // Room for all of them at once: the map grows (and rehashes) once at
    // most, where six inserts one by one could make it grow twice.
    h.reserve(3 * kinds);
    // One value for both resets (a clone shares its bytes), made from a
    // String without a copy.
    let reset = HeaderValue::try_from(format!("{}s", r.reset_s)).ok();
    if let Some(l) = r.limit_requests {
        h.insert(LIMIT_REQUESTS, l.into());
        h.insert(REMAINING_REQUESTS, r.remaining_requests.into());
        if let Some(v) = &reset {
            h.insert(RESET_REQUESTS, v.clone());
        }
    }
    if let Some(l) = r.limit_tokens {
        h.insert(LIMIT_TOKENS, l.into());
        h.insert(REMAINING_TOKENS, r.remaining_tokens.into());
        if let Some(v) = reset {
            h.insert(RESET_TOKENS, v);
        }
    }
}

/// A request let through: what it holds in its window.
#[derive(Debug, Clone)]
pub struct Admission {
    pub key_id: String,
    pub window: i64,
    pub held_tokens: u64,
    pub headers: RateHeaders,
    /// Counted in this process (no Redis, or Redis was unreachable and
    /// `[redis] on_unavailable = "local"`): settled here, without I/O.
    pub local: bool,
}

/// Over a limit: when to come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_s: u64,
    pub which: &'static str,
    pub headers: RateHeaders,
}

#[derive(Default, Debug)]
struct Window {
    index: i64,
    requests: u64,
    tokens: u64,
}

/// Where the counts live: this process, or Redis for every replica.
pub struct Limiter {
    /// Redis, when configured: counts every replica shares.
    shared: Option<Kv>,
    /// Counts in this process: all of them without Redis; with
    /// `[redis] on_unavailable = "local"`, those made while Redis cannot
    /// be reached.
    local: Mutex<HashMap<String, Window>>,
    /// Count here while Redis is away, rather than refuse.
    fallback: bool,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.shared {
            None => "Limiter::Memory",
            Some(_) => "Limiter::Redis",
        })
    }
}

/// A key's count of requests (`r`) or tokens (`t`) in a window; both in
/// one hash slot (tagged by key and window), as the admitting script needs.
fn window_key(key_id: &str, window: i64, which: char) -> String {
    format!("sy:rl:{{{key_id}:{window}}}:{which}")
}

/// Checks both limits and, when both pass, counts the request and its
/// estimated tokens; all or nothing.
const ADMIT: &str = r#"
local r = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = tonumber(redis.call('GET', KEYS[2]) or '0')
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local est = tonumber(ARGV[3])
if rpm > 0 and r + 1 > rpm then return {0, r, t} end
if tpm > 0 and t + est > tpm then return {0, r, t} end
r = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
t = redis.call('INCRBY', KEYS[2], est)
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {1, r, t}
"#;
static ADMIT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ADMIT));

/// Moves a window's token count by ARGV[1], if the window is still there:
/// a request that outlives its minute must not bring back (with no expiry)
/// a window that has already gone.
const SETTLE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"#;
static SETTLE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SETTLE));

impl Limiter {
    pub fn memory() -> Limiter {
        Limiter {
            shared: None,
            local: Mutex::new(HashMap::new()),
            fallback: false,
        }
    }

    /// Counts in Redis; `fallback`: in this process while Redis cannot be
    /// reached (else such calls are refused).
    pub fn redis(conn: Kv, fallback: bool) -> Limiter {
        Limiter {
            shared: Some(conn),
            local: Mutex::new(HashMap::new()),
            fallback,
        }
    }

    /// Checks and counts in this process: (admitted, requests, tokens).
    fn admit_local(
        &self,
        key_id: &str,
        window: i64,
        rpm: Option<u64>,
        tpm: Option<u64>,
        est: u64,
    ) -> (bool, u64, u64) {
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key_id) {
            map.insert(key_id.to_owned(), Window::default());
        }
        let Some(w) = map.get_mut(key_id) else {
            unreachable!("inserted above")
        };
        if w.index != window {
            *w = Window {
                index: window,
                requests: 0,
                tokens: 0,
            };
        }
        let over =
            rpm.is_some_and(|l| w.requests + 1 > l) || tpm.is_some_and(|l| w.tokens + est > l);
        if !over {
            w.requests += 1;
            w.tokens += est;
        }
        (!over, w.requests, w.tokens)
    }

    /// A tool call (HTTP tool or MCP) under its caller's key: one request,
    /// no tokens; `None` when the key has no rate limits (or there is no
    /// key).
    pub async fn admit_tool_call(
        &self,
        key: Option<&KeyRecord>,
    ) -> Result<Option<Admission>, Limited> {
        match key {
            Some(k) if k.rpm.is_some() || k.tpm.is_some() => self
                .admit(k, 0, crate::clock::unix_ms() / 1000)
                .await
                .map(Some),
            _ => Ok(None),
        }
    }

    /// Admits a request of `est_tokens` for `key`, or says why not.
    pub async fn admit(
        &self,
        key: &KeyRecord,
        est_tokens: u64,
        now_s: i64,
    ) -> Result<Admission, Limited> {
        let window = now_s.div_euclid(WINDOW_S);
        let reset_s = (WINDOW_S - now_s.rem_euclid(WINDOW_S)) as u64;
        let rpm = key.rpm.map(u64::from);
        let tpm = key.tpm;
        let est = if tpm.is_some() { est_tokens } else { 0 };
        let mut local = self.shared.is_none();
        let (ok, requests, tokens) = match &self.shared {
            None => self.admit_local(&key.id, window, rpm, tpm, est),
            Some(conn) => {
                let mut conn = conn.clone();
                let script = &*ADMIT_SCRIPT;
                let res: Result<(i64, i64, i64), _> = script
                    .key(window_key(&key.id, window, 'r'))
                    .key(window_key(&key.id, window, 't'))
                    .arg(rpm.unwrap_or(0))
                    .arg(tpm.unwrap_or(0))
                    .arg(est)
                    .arg(WINDOW_S * 2)
                    .invoke_async(&mut conn)
                    .await;
                match res {
                    Ok((ok, r, t)) => (ok == 1, r.max(0) as u64, t.max(0) as u64),
                    Err(e) if self.fallback => {
                        tracing::warn!(error = %e, "Rate-limit store unavailable; counting in this process");
                        local = true;
                        self.admit_local(&key.id, window, rpm, tpm, est)
                    }
                    Err(e) => {
                        // A limiter that cannot count must not wave requests
                        // through: refuse, and say when to retry.
                        tracing::warn!(error = %e, "Rate-limit store unavailable; refusing");
                        (false, rpm.unwrap_or(0), tpm.unwrap_or(0))
                    }
                }
            }
        };
        let headers = RateHeaders {
            limit_requests: rpm,
            remaining_requests: rpm.map(|l| l.saturating_sub(requests)).unwrap_or(0),
            limit_tokens: tpm,
            remaining_tokens: tpm.map(|l| l.saturating_sub(tokens)).unwrap_or(0),
            reset_s,
        };
        if ok {
            Ok(Admission {
                key_id: key.id.clone(),
                window,
                held_tokens: est,
                headers,
                local,
            })
        } else {
            let which = if rpm.is_some_and(|l| requests >= l) {
                "requests"
            } else {
                "tokens"
            };
            Err(Limited {
                retry_after_s: reset_s.max(1),
                which,
                headers,
            })
        }
    }

    /// [`Limiter::settle`] for counts in this process; does nothing for
    /// counts in Redis.
    pub fn settle_local(&self, a: &Admission, used_tokens: u64) {
        if a.held_tokens == 0 || used_tokens == a.held_tokens {
            return;
        }
        if a.local {
            let delta = used_tokens as i64 - a.held_tokens as i64;
            let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = map.get_mut(&a.key_id)
                && w.index == a.window
            {
                w.tokens = (w.tokens as i64 + delta).max(0) as u64;
            }
        }
    }

    /// Replaces the estimate a request held with what it used.
    pub async fn settle(&self, a: &Admission, used_tokens: u64) {
        if a.held_tokens == 0 || used_tokens == a.held_tokens {
            return;
        }
        let delta = used_tokens as i64 - a.held_tokens as i64;
        match &self.shared {
            _ if a.local => self.settle_local(a, used_tokens),
            None => {}
            Some(conn) => {
                let mut conn = conn.clone();
                let key = window_key(&a.key_id, a.window, 't');
                let r: Result<i64, _> = SETTLE_SCRIPT
                    .key(&key)
                    .arg(delta)
                    .invoke_async(&mut conn)
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "Could not settle rate-limit tokens");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rpm: Option<u32>, tpm: Option<u64>) -> KeyRecord {
        KeyRecord {
            id: "k".into(),
            name: "n".into(),
            hash: [0; 32],
            last4: "abcd".into(),
            models: vec![],
            tools: vec![],
            rpm,
            tpm,
            max_concurrent: None,
            budget_usd: None,
            budget_period: None,
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
    async fn requests_per_minute_are_exact_and_reset_with_the_window() {
        let l = Limiter::memory();
        let k = key(Some(2), None);
        assert!(l.admit(&k, 0, 60).await.is_ok());
        let a = l.admit(&k, 0, 61).await.unwrap();
        assert_eq!(a.headers.remaining_requests, 0);
        let e = l.admit(&k, 0, 90).await.unwrap_err();
        assert_eq!((e.retry_after_s, e.which), (30, "requests"));
        assert!(l.admit(&k, 0, 120).await.is_ok(), "next minute");
    }

    #[tokio::test]
    async fn tokens_are_held_then_settled() {
        let l = Limiter::memory();
        let k = key(None, Some(1000));
        let a = l.admit(&k, 800, 0).await.unwrap();
        assert!(l.admit(&k, 300, 1).await.is_err(), "800 + 300 > 1000");
        l.settle(&a, 100).await;
        let b = l.admit(&k, 300, 2).await.unwrap();
        assert_eq!(b.headers.remaining_tokens, 600);
    }

    #[test]
    fn rate_headers_are_written_for_the_limits_a_key_has() {
        let both = RateHeaders {
            limit_requests: Some(60),
            remaining_requests: 59,
            limit_tokens: Some(10_000),
            remaining_tokens: 9_000,
            reset_s: 42,
        };
        let mut h = http::HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        write_headers(&mut h, &both);
        let got = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got("x-ratelimit-limit-requests").as_deref(), Some("60"));
        assert_eq!(got("x-ratelimit-remaining-requests").as_deref(), Some("59"));
        assert_eq!(got("x-ratelimit-reset-requests").as_deref(), Some("42s"));
        assert_eq!(got("x-ratelimit-limit-tokens").as_deref(), Some("10000"));
        assert_eq!(got("x-ratelimit-remaining-tokens").as_deref(), Some("9000"));
        assert_eq!(got("x-ratelimit-reset-tokens").as_deref(), Some("42s"));
        assert_eq!(h.len(), 7);

        let requests_only = RateHeaders {
            limit_tokens: None,
            ..both
        };
        let mut h = http::HeaderMap::new();
        write_headers(&mut h, &requests_only);
        assert_eq!(h.len(), 3);
        assert!(h.get("x-ratelimit-reset-tokens").is_none());

        let none = RateHeaders {
            limit_requests: None,
            ..requests_only
        };
        let mut h = http::HeaderMap::new();
        write_headers(&mut h, &none);
        assert!(h.is_empty());
    }
}
