//! Routing: a request's `model` → the [`Plan`] of attempts to make.
//!
//! `model` is `provider/model` (one target) or a route name (several, with
//! a strategy). Planning is where the hard rules apply, in this order:
//!
//! 1. Jurisdiction: a target whose provider is outside the allowed set is
//!    never in the plan; when none is left the request fails closed (403
//!    `no_compliant_provider`) with the allowed set and what was excluded.
//! 2. Strategy orders what remains (fallback, weighted, least-latency,
//!    cheapest).
//! 3. Health: targets behind an open circuit or a `Retry-After` block drop
//!    out, but never all of them: when every target is down the one that
//!    reopens soonest stays, so each request still makes one attempt and no
//!    more (no retry storm).
//! 4. The attempt cap (route `max_attempts`, `x-switchyard-max-attempts`).
//!
//! Retry and failover rules (which failures move on, backoff between tries
//! of the same provider) live in [`backoff`] and the pipeline's attempt loop.

pub mod backoff;
pub mod health;

use std::sync::Arc;

use rand::Rng;
use serde::Serialize;
use tokio::time::Instant;

use crate::config::Strategy;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::providers::Provider;
use health::Readiness;

/// One provider and the model name it is sent.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<Provider>,
    pub model: String,
    /// `provider/model`, the key health is kept under.
    pub key: Arc<str>,
}

impl Target {
    pub fn new(provider: Arc<Provider>, model: &str) -> Target {
        let key: Arc<str> = Arc::from(format!("{}/{model}", provider.name()));
        Target {
            provider,
            model: model.to_owned(),
            key,
        }
    }

    pub fn jurisdiction(&self) -> Option<&str> {
        self.provider.config.jurisdiction.as_deref()
    }
}

/// A target left out of a plan by policy, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Excluded {
    pub target: String,
    pub jurisdiction: Option<String>,
    pub reason: String,
}

/// `target (jurisdiction); ...`, for messages.
pub fn describe_excluded(excluded: &[Excluded]) -> String {
    excluded
        .iter()
        .map(|e| {
            format!(
                "{} ({})",
                e.target,
                e.jurisdiction.as_deref().unwrap_or("unspecified")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The attempts to make for one request, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The route name, when `model` named one.
    pub route: Option<String>,
    /// The route's first target in configuration order: an answer from any
    /// other target is a fallback answer.
    pub primary: Arc<str>,
    pub attempts: Vec<Target>,
    pub excluded: Vec<Excluded>,
    /// Whether a fallback target's answer may be cached.
    pub cache_fallback: bool,
}

/// One attempt, as evidence for the request's record.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Attempt {
    pub target: String,
    pub jurisdiction: Option<String>,
    /// Milliseconds after the request arrived.
    pub start_ms: f64,
    pub duration_ms: f64,
    /// `ok`, `error`, or `cut` (the request's deadline, shutdown or the
    /// caller ended it while it ran).
    pub outcome: String,
    pub error_class: Option<String>,
    pub status: Option<u16>,
    /// The attempt's span in the request's trace, chosen before it is
    /// sent (it is the upstream's parent when the trace is propagated).
    #[serde(skip)]
    pub span_id: [u8; 8],
}

/// Where a request went and why: every attempt, and every target policy
/// kept it from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    pub route: Option<String>,
    pub attempts: Vec<Attempt>,
    pub excluded: Vec<Excluded>,
}

/// What narrows a plan beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    /// Allowed jurisdictions (request header ∩ key's list); `None` = any.
    pub jurisdictions: Option<Vec<String>>,
    /// `x-switchyard-max-attempts`.
    pub max_attempts: Option<u32>,
}

/// Parses a jurisdiction list (`eu, us`), lower-cased.
pub fn parse_jurisdictions(list: &str) -> Vec<String> {
    list.split(',')
        .map(|j| j.trim().to_ascii_lowercase())
        .filter(|j| !j.is_empty())
        .collect()
}

/// Intersects two optional allow-lists (`None` allows everything).
pub fn intersect(a: Option<Vec<String>>, b: Option<&[String]>) -> Option<Vec<String>> {
    match (a, b) {
        (None, None) => None,
        (Some(a), None) => Some(a),
        (None, Some(b)) => Some(b.to_vec()),
        (Some(a), Some(b)) => Some(a.into_iter().filter(|j| b.contains(j)).collect()),
    }
}

/// Whether `provider` may receive a request under `allowed`.
pub fn permits(allowed: Option<&[String]>, provider: &Provider) -> bool {
    match allowed {
        None => true,
        Some(list) => provider
            .config
            .jurisdiction
            .as_deref()
            .is_some_and(|j| list.iter().any(|a| a == j)),
    }
}

/// Resolves a request's `model` into a plan.
pub fn plan(gw: &Gateway, model: &str, c: &Constraints) -> Result<Plan, GatewayError> {
    let (route, candidates, strategy, route_cap, cache_fallback) = candidates(gw, model)?;
    let primary = candidates[0].0.key.clone();

    // 1. Jurisdiction, a hard rule.
    let mut allowed = Vec::with_capacity(candidates.len());
    let mut excluded = Vec::new();
    for (t, w) in candidates {
        if permits(c.jurisdictions.as_deref(), &t.provider) {
            allowed.push((t, w));
        } else {
            excluded.push(Excluded {
                target: t.key.to_string(),
                jurisdiction: t.jurisdiction().map(str::to_owned),
                reason: format!(
                    "jurisdiction {} is not in the allowed set",
                    t.jurisdiction().unwrap_or("unspecified")
                ),
            });
        }
    }
    if allowed.is_empty() {
        return Err(GatewayError::NoCompliantProvider {
            allowed: c.jurisdictions.clone().unwrap_or_default(),
            excluded,
        });
    }

    // 2. Strategy.
    let now = Instant::now();
    let ordered = order(gw, strategy, allowed, now);

    // 3. Health: drop what is down, but never everything: with every
    // circuit open, the one that reopens soonest is tried. A provider that
    // asked for a pause (Retry-After) is not asked again before it, even
    // then: the caller hears how long to wait.
    let mut ready = Vec::with_capacity(ordered.len());
    let mut soonest: Option<(Instant, Target)> = None;
    let mut blocked: Option<(Instant, Target)> = None;
    for t in ordered {
        match gw.health.readiness(t.provider.name(), &t.key, now) {
            Readiness::Ready | Readiness::Probe => ready.push(t),
            Readiness::NotUntil(until) => {
                if soonest.as_ref().is_none_or(|(s, _)| until < *s) {
                    soonest = Some((until, t));
                }
            }
            Readiness::Blocked(until) => {
                if blocked.as_ref().is_none_or(|(s, _)| until < *s) {
                    blocked = Some((until, t));
                }
            }
        }
    }
    if ready.is_empty() {
        if let Some((_, t)) = soonest {
            ready.push(t);
        } else if let Some((until, t)) = blocked {
            let wait = until.saturating_duration_since(now);
            return Err(GatewayError::Upstream(crate::providers::UpstreamError {
                provider: t.provider.name().to_owned(),
                class: crate::providers::ErrorClass::RateLimited,
                status: 429,
                message: format!(
                    "{} asked not to be called again for {:.1} s (Retry-After), and no other target can take the request",
                    t.provider.name(),
                    wait.as_secs_f64()
                ),
                provider_code: None,
                retry_after: Some(wait.max(std::time::Duration::from_secs(1))),
            }));
        }
    }

    // 4. The cap: each ready target once by default; more cycles through them.
    let cap = [route_cap, c.max_attempts]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(ready.len() as u32)
        .max(1) as usize;
    let attempts = ready
        .iter()
        .cycle()
        .take(cap.min(ready.len() * 8))
        .cloned()
        .collect();
    Ok(Plan {
        route,
        primary,
        attempts,
        excluded,
        cache_fallback,
    })
}

type Candidates = (
    Option<String>,
    Vec<(Target, u32)>,
    Strategy,
    Option<u32>,
    bool,
);

fn candidates(gw: &Gateway, model: &str) -> Result<Candidates, GatewayError> {
    if let Some(r) = gw.config.route(model) {
        let mut out = Vec::with_capacity(r.targets.len());
        for t in &r.targets {
            // Validation guarantees every route target's provider exists.
            let Some(p) = gw.providers.get(&t.provider) else {
                return Err(GatewayError::Internal(format!(
                    "route {} names an unknown provider",
                    r.name
                )));
            };
            out.push((Target::new(p.clone(), &t.model), t.weight));
        }
        return Ok((
            Some(r.name.clone()),
            out,
            r.strategy,
            r.max_attempts,
            r.cache_fallback,
        ));
    }
    let unknown = |why: String| GatewayError::UnknownModel {
        model: model.to_owned(),
        message: format!("unknown model `{model}`: {why}"),
    };
    let Some((provider, upstream_model)) = model.split_once('/') else {
        let routes: Vec<&str> = gw.config.routes.iter().map(|r| r.name.as_str()).collect();
        return Err(unknown(format!(
            "expected `provider/model` or a route name (providers: {}; routes: {})",
            names(gw.providers.list.iter().map(|p| p.name())),
            names(routes.into_iter())
        )));
    };
    let Some(p) = gw.providers.get(provider) else {
        return Err(unknown(format!(
            "no provider named `{provider}` (providers: {})",
            names(gw.providers.list.iter().map(|p| p.name()))
        )));
    };
    if upstream_model.is_empty() {
        return Err(unknown(format!(
            "the model name after `{provider}/` is empty"
        )));
    }
    Ok((
        None,
        vec![(Target::new(p.clone(), upstream_model), 1)],
        Strategy::Fallback,
        None,
        false,
    ))
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn order(
    gw: &Gateway,
    strategy: Strategy,
    mut targets: Vec<(Target, u32)>,
    now: Instant,
) -> Vec<Target> {
    let mut rng = rand::thread_rng();
    match strategy {
        Strategy::Fallback => targets.into_iter().map(|(t, _)| t).collect(),
        Strategy::Weighted => {
            // Weighted sampling without replacement: the first pick follows
            // the weights, and failover goes on to the others in the same way.
            let mut out = Vec::with_capacity(targets.len());
            while !targets.is_empty() {
                let total: u64 = targets.iter().map(|(_, w)| u64::from(*w)).sum();
                let mut pick = rng.gen_range(0..total.max(1));
                let mut idx = 0;
                for (i, (_, w)) in targets.iter().enumerate() {
                    if pick < u64::from(*w) {
                        idx = i;
                        break;
                    }
                    pick -= u64::from(*w);
                }
                out.push(targets.swap_remove(idx).0);
            }
            out
        }
        Strategy::LeastLatency => {
            let mut ts: Vec<(Target, f64)> = targets
                .into_iter()
                .map(|(t, _)| {
                    let l = gw.health.latency(&t.key, now);
                    (t, l)
                })
                .collect();
            // Power of two choices for the first: two at random, the faster
            // wins; the rest follow by latency.
            let first = if ts.len() >= 2 {
                let a = rng.gen_range(0..ts.len());
                let mut b = rng.gen_range(0..ts.len() - 1);
                if b >= a {
                    b += 1;
                }
                if ts[b].1 < ts[a].1 { b } else { a }
            } else {
                0
            };
            let head = ts.swap_remove(first);
            ts.sort_by(|x, y| x.1.total_cmp(&y.1));
            std::iter::once(head).chain(ts).map(|(t, _)| t).collect()
        }
        Strategy::Cheapest => {
            let mut ts: Vec<(Target, Option<f64>)> = targets
                .into_iter()
                .map(|(t, _)| {
                    let p = gw
                        .prices
                        .for_provider(&t.provider, &t.model)
                        .map(|p| p.rank());
                    (t, p)
                })
                .collect();
            // Stable: equal prices keep configuration order; unpriced last.
            ts.sort_by(|x, y| match (x.1, y.1) {
                (Some(a), Some(b)) => a.total_cmp(&b),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            });
            ts.into_iter().map(|(t, _)| t).collect()
        }
    }
}
