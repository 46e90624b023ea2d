//! What the gateway has learned about each provider and each provider/model:
//! circuit breakers, a time-decaying latency average, a recent error rate,
//! and `Retry-After` pauses (a model's; a whole provider's only for an
//! exhausted quota).
//!
//! Breakers: `failures` consecutive failures open a circuit (connect
//! failures and upstream errors counted apart, so a flapping network and a
//! failing model each trip on their own). A provider's breaker counts
//! connection failures; a provider/model's counts both, so one model's
//! errors never eject the provider's other models. An open circuit waits a cooldown
//! that doubles with each repeated ejection, then lets exactly one probe
//! through (half-open); the probe's outcome closes or reopens it.
//!
//! Kept in memory per process, behind one short-held mutex; no lock is held
//! across an await.

use crate::FastMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

use crate::config::CircuitConfig;
use crate::providers::ErrorClass;

/// How long a latency sample keeps its weight: an unsampled target's
/// average decays toward zero, so a recovered target wins a comparison again
/// and gets traffic.
const LATENCY_DECAY: Duration = Duration::from_secs(30);
/// A probe that never reports back (its request was cancelled) stops
/// blocking other probes after this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Consecutive successes after which the ejection count resets.
const HEALED_AFTER: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_since: Option<Instant> },
}

#[derive(Debug)]
struct Entry {
    circuit: Circuit,
    connect_failures: u32,
    upstream_failures: u32,
    successes: u32,
    ejections: u32,
    latency_ms: Option<(f64, Instant)>,
    error_rate: f64,
    last_error: Option<(ErrorClass, SystemTime)>,
    blocked_until: Option<Instant>,
    requests: u64,
    failures: u64,
}

impl Default for Entry {
    fn default() -> Entry {
        Entry {
            circuit: Circuit::Closed,
            connect_failures: 0,
            upstream_failures: 0,
            successes: 0,
            ejections: 0,
            latency_ms: None,
            error_rate: 0.0,
            last_error: None,
            blocked_until: None,
            requests: 0,
            failures: 0,
        }
    }
}

/// Whether a target may take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Its circuit is half-open and no probe is out: this request probes.
    Probe,
    /// Not before this instant: an open circuit or a probe in flight.
    NotUntil(Instant),
    /// The provider said not before this instant (`Retry-After`): unlike
    /// an open circuit, never tried anyway as a route's last target.
    Blocked(Instant),
}

/// Targets tracked at most. Providers are configured, but a caller may
/// name any `provider/model`; past this many, a new target is not tracked
/// (its provider still is).
const MAX_TRACKED_TARGETS: usize = 4096;

/// The entry of `key`, made if need be; a new target only while there is
/// room. No allocation when it exists.
fn slot<'a>(
    entries: &'a mut FastMap<String, Entry>,
    key: &str,
    is_provider: bool,
) -> Option<&'a mut Entry> {
    if !entries.contains_key(key) {
        if !is_provider && entries.len() >= MAX_TRACKED_TARGETS {
            return None;
        }
        entries.insert(key.to_owned(), Entry::default());
    }
    entries.get_mut(key)
}

#[derive(Debug)]
pub struct Health {
    config: CircuitConfig,
    entries: Mutex<FastMap<String, Entry>>,
}

/// One entry as the admin API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(rename = "Health")]
pub struct Snapshot {
    pub key: String,
    pub circuit: &'static str,
    /// Seconds until an open circuit half-opens.
    pub reopens_in_s: Option<f64>,
    pub ejections: u32,
    pub consecutive_failures: u32,
    pub error_rate: f64,
    pub latency_ms: Option<f64>,
    pub last_error_class: Option<&'static str>,
    /// Seconds since the Unix epoch.
    pub last_error_at: Option<u64>,
    pub blocked_for_s: Option<f64>,
    pub requests: u64,
    pub failures: u64,
}

impl Health {
    pub fn new(config: CircuitConfig) -> Health {
        Health {
            config,
            entries: Mutex::new(FastMap::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FastMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Readiness of a target: the worse of its provider's and its own.
    pub fn readiness(&self, provider: &str, target: &str, now: Instant) -> Readiness {
        let mut entries = self.lock();
        let a = readiness_of(entries.get_mut(provider), now);
        let b = readiness_of(entries.get_mut(target), now);
        match (a, b) {
            (Readiness::Blocked(x), Readiness::Blocked(y)) => Readiness::Blocked(x.max(y)),
            (r @ Readiness::Blocked(_), _) | (_, r @ Readiness::Blocked(_)) => r,
            (Readiness::NotUntil(x), Readiness::NotUntil(y)) => Readiness::NotUntil(x.max(y)),
            (r @ Readiness::NotUntil(_), _) | (_, r @ Readiness::NotUntil(_)) => r,
            (Readiness::Probe, _) | (_, Readiness::Probe) => Readiness::Probe,
            _ => Readiness::Ready,
        }
    }

    /// Marks the start of an attempt; a half-open circuit's probe is taken.
    pub fn begin(&self, provider: &str, target: &str, now: Instant) {
        let mut entries = self.lock();
        for (i, key) in [provider, target].into_iter().enumerate() {
            let Some(e) = slot(&mut entries, key, i == 0) else {
                continue;
            };
            e.requests += 1;
            if let Circuit::HalfOpen { probe_since } = &mut e.circuit {
                probe_since.get_or_insert(now);
            }
        }
    }

    pub fn success(&self, provider: &str, target: &str, latency: Duration, now: Instant) {
        let mut entries = self.lock();
        for (i, key) in [provider, target].into_iter().enumerate() {
            let Some(e) = slot(&mut entries, key, i == 0) else {
                continue;
            };
            e.connect_failures = 0;
            e.upstream_failures = 0;
            e.successes += 1;
            if e.successes >= HEALED_AFTER {
                e.ejections = 0;
            }
            e.circuit = Circuit::Closed;
            e.error_rate *= 0.9;
            let ms = latency.as_secs_f64() * 1000.0;
            e.latency_ms = Some(match e.latency_ms {
                Some((avg, at)) => (0.7 * decayed(avg, at, now) + 0.3 * ms, now),
                None => (ms, now),
            });
        }
    }

    /// Records a failed attempt. Only failures that say something about the
    /// provider count toward its breaker; a bad request does not.
    pub fn failure(
        &self,
        provider: &str,
        target: &str,
        class: ErrorClass,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        let counts = !matches!(
            class,
            ErrorClass::BadRequest
                | ErrorClass::ContentFilter
                | ErrorClass::NotFound
                | ErrorClass::Client
                | ErrorClass::Auth
        );
        let mut entries = self.lock();
        // A target past the table's bound cannot hold its own pause: its
        // provider holds it rather than it being lost.
        let untracked = slot(&mut entries, target, false).is_none();
        for (i, key) in [provider, target].into_iter().enumerate() {
            let Some(e) = slot(&mut entries, key, i == 0) else {
                continue;
            };
            e.failures += 1;
            e.successes = 0;
            e.last_error = Some((class, SystemTime::now()));
            e.error_rate = 0.9 * e.error_rate + 0.1;
            // A pause asked for (`Retry-After`) is the model's: OpenAI,
            // Anthropic and Google rate-limit per model. Only an
            // account-wide answer, an exhausted quota or credit, pauses the
            // whole provider (for its Retry-After, else the longest
            // cooldown: credit does not come back in seconds).
            let pause = match (class, i) {
                (ErrorClass::Quota, 0) => Some(retry_after.unwrap_or(self.config.max_cooldown)),
                (ErrorClass::Quota, _) => None,
                (_, 1) => retry_after,
                (_, _) if untracked => retry_after,
                _ => None,
            };
            if let Some(after) = pause {
                let until = now
                    .checked_add(after.min(crate::providers::errors::MAX_RETRY_AFTER))
                    .unwrap_or(now);
                e.blocked_until = Some(e.blocked_until.map_or(until, |b| b.max(until)));
            }
            // A provider's own breaker trips on connection failures only:
            // an upstream error may be one model's (its target's breaker
            // trips on it), and one failing model must not eject the
            // provider's others.
            if !counts || (i == 0 && class != ErrorClass::Connect) {
                continue;
            }
            if class == ErrorClass::Connect {
                e.connect_failures += 1;
            } else {
                e.upstream_failures += 1;
            }
            let tripped = e.connect_failures >= self.config.failures
                || e.upstream_failures >= self.config.failures;
            let probing = matches!(e.circuit, Circuit::HalfOpen { .. });
            if tripped || probing {
                e.ejections += 1;
                let factor = 2u32.saturating_pow(e.ejections.saturating_sub(1).min(16));
                let cooldown = self
                    .config
                    .cooldown
                    .saturating_mul(factor)
                    .min(self.config.max_cooldown);
                e.circuit = Circuit::Open {
                    until: now + cooldown,
                };
                e.connect_failures = 0;
                e.upstream_failures = 0;
            }
        }
    }

    /// A time-decayed latency average, for least-latency ordering.
    pub fn latency(&self, target: &str, now: Instant) -> f64 {
        self.lock()
            .get(target)
            .and_then(|e| e.latency_ms)
            .map(|(avg, at)| decayed(avg, at, now))
            .unwrap_or(0.0)
    }

    pub fn snapshot(&self, now: Instant) -> Vec<Snapshot> {
        let entries = self.lock();
        let mut out: Vec<Snapshot> = entries
            .iter()
            .map(|(key, e)| Snapshot {
                key: key.clone(),
                circuit: match e.circuit {
                    Circuit::Closed => "closed",
                    Circuit::Open { until } if until > now => "open",
                    Circuit::Open { .. } | Circuit::HalfOpen { .. } => "half-open",
                },
                reopens_in_s: match e.circuit {
                    Circuit::Open { until } if until > now => Some((until - now).as_secs_f64()),
                    _ => None,
                },
                ejections: e.ejections,
                consecutive_failures: e.connect_failures.max(e.upstream_failures),
                error_rate: (e.error_rate * 1000.0).round() / 1000.0,
                latency_ms: e
                    .latency_ms
                    .map(|(avg, at)| (decayed(avg, at, now) * 10.0).round() / 10.0),
                last_error_class: e.last_error.map(|(c, _)| c.as_str()),
                last_error_at: e
                    .last_error
                    .and_then(|(_, t)| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
                blocked_for_s: e
                    .blocked_until
                    .filter(|b| *b > now)
                    .map(|b| (b - now).as_secs_f64()),
                requests: e.requests,
                failures: e.failures,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

fn decayed(avg: f64, at: Instant, now: Instant) -> f64 {
    let age = now.saturating_duration_since(at).as_secs_f64();
    avg * (-age / LATENCY_DECAY.as_secs_f64()).exp()
}

fn readiness_of(e: Option<&mut Entry>, now: Instant) -> Readiness {
    let Some(e) = e else { return Readiness::Ready };
    if let Some(b) = e.blocked_until {
        if b > now {
            return Readiness::Blocked(b);
        }
        e.blocked_until = None;
    }
    match e.circuit {
        Circuit::Closed => Readiness::Ready,
        Circuit::Open { until } if until > now => Readiness::NotUntil(until),
        Circuit::Open { .. } => {
            e.circuit = Circuit::HalfOpen { probe_since: None };
            Readiness::Probe
        }
        Circuit::HalfOpen { probe_since: None } => Readiness::Probe,
        Circuit::HalfOpen {
            probe_since: Some(t),
        } if now.saturating_duration_since(t) > PROBE_TIMEOUT => Readiness::Probe,
        Circuit::HalfOpen {
            probe_since: Some(t),
        } => Readiness::NotUntil(t + PROBE_TIMEOUT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(CircuitConfig {
            failures: 3,
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(4),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_half_opens_and_closes() {
        let h = health();
        let (p, t) = ("a", "a/m");
        for _ in 0..2 {
            h.failure(p, t, ErrorClass::Server, None, Instant::now());
            assert_eq!(h.readiness(p, t, Instant::now()), Readiness::Ready);
        }
        h.failure(p, t, ErrorClass::Server, None, Instant::now());
        assert!(matches!(
            h.readiness(p, t, Instant::now()),
            Readiness::NotUntil(_)
        ));
        tokio::time::advance(Duration::from_millis(1001)).await;
        // One probe goes through; others wait for it.
        assert_eq!(h.readiness(p, t, Instant::now()), Readiness::Probe);
        h.begin(p, t, Instant::now());
        assert!(matches!(
            h.readiness(p, t, Instant::now()),
            Readiness::NotUntil(_)
        ));
        h.success(p, t, Duration::from_millis(5), Instant::now());
        assert_eq!(h.readiness(p, t, Instant::now()), Readiness::Ready);
    }

    /// Callers may name any model: the table stops growing at its bound,
    /// the provider is still tracked, and a huge Retry-After cannot panic.
    #[tokio::test(start_paused = true)]
    async fn made_up_models_do_not_grow_the_table_without_bound() {
        let h = health();
        let now = Instant::now();
        for i in 0..MAX_TRACKED_TARGETS + 100 {
            let t = format!("a/made-up-{i}");
            h.begin("a", &t, now);
            h.success("a", &t, Duration::from_millis(1), now);
        }
        assert_eq!(h.lock().len(), MAX_TRACKED_TARGETS);
        assert!(h.lock().contains_key("a"), "the provider is tracked");
        // An untracked model's pause is held by its provider.
        h.failure(
            "a",
            "a/other",
            ErrorClass::RateLimited,
            Some(Duration::MAX),
            now,
        );
        assert!(matches!(
            h.readiness("a", "a/x", now),
            Readiness::Blocked(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn one_failing_model_leaves_the_providers_others_alone() {
        let h = health();
        let now = Instant::now();
        for _ in 0..5 {
            h.failure("a", "a/bad", ErrorClass::Server, None, now);
        }
        assert!(matches!(
            h.readiness("a", "a/bad", now),
            Readiness::NotUntil(_)
        ));
        assert_eq!(h.readiness("a", "a/good", now), Readiness::Ready);
        // Connection failures are the provider's: every model waits.
        for _ in 0..3 {
            h.failure("a", "a/bad", ErrorClass::Connect, None, now);
        }
        assert!(matches!(
            h.readiness("a", "a/good", now),
            Readiness::NotUntil(_)
        ));
        // Retry-After pauses the model, and says so apart.
        h.failure(
            "b",
            "b/m",
            ErrorClass::RateLimited,
            Some(Duration::from_secs(2)),
            now,
        );
        assert!(matches!(
            h.readiness("b", "b/m", now),
            Readiness::Blocked(_)
        ));
        assert_eq!(h.readiness("b", "b/other", now), Readiness::Ready);
    }

    #[tokio::test(start_paused = true)]
    async fn cooldown_grows_with_repeated_ejections_up_to_the_cap() {
        let h = health();
        let (p, t) = ("a", "a/m");
        let mut cooldowns = Vec::new();
        for _ in 0..4 {
            for _ in 0..3 {
                h.failure(p, t, ErrorClass::Overloaded, None, Instant::now());
            }
            let Readiness::NotUntil(until) = h.readiness(p, t, Instant::now()) else {
                panic!("should be open");
            };
            let cd = until - Instant::now();
            cooldowns.push(cd.as_secs());
            tokio::time::advance(cd + Duration::from_millis(1)).await;
            assert_eq!(h.readiness(p, t, Instant::now()), Readiness::Probe);
            h.begin(p, t, Instant::now());
            // The probe fails: straight back to open, for longer.
            h.failure(p, t, ErrorClass::Overloaded, None, Instant::now());
            let Readiness::NotUntil(until) = h.readiness(p, t, Instant::now()) else {
                panic!("probe failure reopens");
            };
            tokio::time::advance(until - Instant::now() + Duration::from_millis(1)).await;
            h.success(p, t, Duration::from_millis(1), Instant::now());
        }
        assert_eq!(
            cooldowns,
            [1, 4, 4, 4],
            "1s, then doubled per ejection, capped at 4s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn connect_and_upstream_failures_count_apart_and_bad_requests_not_at_all() {
        let h = health();
        let (p, t) = ("a", "a/m");
        for class in [
            ErrorClass::Connect,
            ErrorClass::Server,
            ErrorClass::Connect,
            ErrorClass::Server,
        ] {
            h.failure(p, t, class, None, Instant::now());
        }
        assert_eq!(
            h.readiness(p, t, Instant::now()),
            Readiness::Ready,
            "2 + 2 is not 3 in a row"
        );
        for _ in 0..10 {
            h.failure(p, t, ErrorClass::BadRequest, None, Instant::now());
        }
        assert_eq!(h.readiness(p, t, Instant::now()), Readiness::Ready);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_the_model_until_then_and_a_quota_the_provider() {
        let h = health();
        h.failure(
            "a",
            "a/m",
            ErrorClass::RateLimited,
            Some(Duration::from_secs(2)),
            Instant::now(),
        );
        assert!(matches!(
            h.readiness("a", "a/m", Instant::now()),
            Readiness::Blocked(_)
        ));
        assert_eq!(
            h.readiness("a", "a/other", Instant::now()),
            Readiness::Ready
        );
        tokio::time::advance(Duration::from_millis(2001)).await;
        assert_eq!(h.readiness("a", "a/m", Instant::now()), Readiness::Ready);
        // An exhausted quota is the account's: every model waits.
        h.failure(
            "a",
            "a/m",
            ErrorClass::Quota,
            Some(Duration::from_secs(2)),
            Instant::now(),
        );
        assert!(matches!(
            h.readiness("a", "a/other", Instant::now()),
            Readiness::Blocked(_)
        ));
        tokio::time::advance(Duration::from_millis(2001)).await;
        assert_eq!(
            h.readiness("a", "a/other", Instant::now()),
            Readiness::Ready
        );
        // Without a Retry-After, for the longest cooldown.
        h.failure("a", "a/m", ErrorClass::Quota, None, Instant::now());
        tokio::time::advance(Duration::from_millis(3900)).await;
        assert!(matches!(
            h.readiness("a", "a/other", Instant::now()),
            Readiness::Blocked(_)
        ));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(
            h.readiness("a", "a/other", Instant::now()),
            Readiness::Ready
        );
    }

    #[tokio::test(start_paused = true)]
    async fn latency_decays_so_a_recovered_target_wins_again() {
        let h = health();
        h.success("a", "a/m", Duration::from_millis(900), Instant::now());
        h.success("b", "b/m", Duration::from_millis(100), Instant::now());
        assert!(h.latency("a/m", Instant::now()) > h.latency("b/m", Instant::now()));
        tokio::time::advance(Duration::from_secs(120)).await;
        h.success("b", "b/m", Duration::from_millis(100), Instant::now());
        assert!(h.latency("a/m", Instant::now()) < h.latency("b/m", Instant::now()));
    }
}
