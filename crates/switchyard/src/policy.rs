//! Policy: what a caller may do with a request, decided before any upstream
//! is contacted. Model scopes, jurisdictions, log mode, rate limits and the
//! budget hold all end in a [`Permit`], which only [`admit`] makes; the
//! attempt loop takes a `Permit`, so policy has always run.

use std::sync::Arc;

use http::HeaderMap;

use crate::auth::Caller;
use crate::config::LogMode;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::limits::{Admission, RateHeaders};
use crate::routing::{Constraints, Plan};

/// A request's licence to go upstream, and what it holds until it ends.
#[derive(Debug)]
pub struct Permit {
    pub caller: Caller,
    pub log_mode: LogMode,
    pub admission: Option<Admission>,
    pub reservation: Option<crate::budget::Hold>,
}

impl Permit {
    pub fn rate_headers(&self) -> Option<RateHeaders> {
        self.admission.as_ref().map(|a| a.headers)
    }
}

/// What the caller may narrow: jurisdictions (header ∩ key) and the
/// attempt cap. A model outside the key's globs is refused here.
pub fn constraints(
    caller: &Caller,
    headers: &HeaderMap,
    model: &str,
) -> Result<Constraints, GatewayError> {
    if let Some(k) = &caller.key
        && !k.allows_model(model)
    {
        return Err(GatewayError::Forbidden(format!(
            "this key may not use model `{model}`"
        )));
    }
    let key_j = caller.key.as_ref().and_then(|k| k.jurisdictions.as_deref());
    crate::pipeline::constraints(headers, key_j)
}

/// The log mode: the key's setting (or the configured default), made
/// stricter, never looser, by `x-switchyard-log`.
pub fn log_mode(
    gw: &Gateway,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<LogMode, GatewayError> {
    let ceiling = caller
        .key
        .as_ref()
        .and_then(|k| k.log)
        .unwrap_or(gw.config.logs.mode);
    let Some(v) = headers.get("x-switchyard-log") else {
        return Ok(ceiling);
    };
    let asked = match v.to_str().map(str::trim) {
        Ok("full") => LogMode::Full,
        Ok("metadata") => LogMode::Metadata,
        Ok("none") => LogMode::None,
        _ => {
            return Err(GatewayError::BadHeader {
                header: "x-switchyard-log",
                message: "expected full, metadata or none".into(),
            });
        }
    };
    Ok(asked.min(ceiling))
}

/// Admits a planned request: rate limits, then the budget hold.
/// `est_input_tokens` and `max_output_tokens` size both.
pub async fn admit(
    gw: &Gateway,
    caller: Caller,
    log_mode: LogMode,
    plan: &Plan,
    est_input_tokens: u64,
    max_output_tokens: Option<u32>,
    hold_ms: i64,
) -> Result<Permit, GatewayError> {
    let Some(key) = caller.key.clone() else {
        return Ok(Permit {
            caller,
            log_mode,
            admission: None,
            reservation: None,
        });
    };
    let now_ms = crate::clock::unix_ms();
    let out_tokens = |p: Option<&crate::pricing::Price>| {
        u64::from(
            max_output_tokens
                .or(p.and_then(|p| p.max_output_tokens))
                .unwrap_or(gw.config.limits.max_output_tokens),
        )
    };
    let admission = if key.rpm.is_some() || key.tpm.is_some() {
        let est = est_input_tokens + out_tokens(None);
        match gw.limiter.admit(&key, est, now_ms / 1000).await {
            Ok(a) => Some(a),
            Err(l) => {
                return Err(GatewayError::RateLimited {
                    message: format!("rate limit reached: {} per minute for this key", l.which),
                    retry_after_s: l.retry_after_s,
                    headers: l.headers,
                });
            }
        }
    } else {
        None
    };
    let reservation = if key.budget_usd.is_some() {
        // The most this call can cost: the dearest target it may reach.
        let mut most: f64 = 0.0;
        for t in &plan.attempts {
            let Some(p) = gw.prices.for_provider(&t.provider, &t.model) else {
                release(gw, admission.as_ref()).await;
                return Err(GatewayError::BudgetExceeded(format!(
                    "model `{}` has no price, and a key with a budget may only use priced models (add [pricing.\"{}\"])",
                    t.key, t.key
                )));
            };
            let usage = crate::chat::Usage {
                input_tokens: est_input_tokens,
                output_tokens: out_tokens(Some(p)),
                ..Default::default()
            };
            most = most.max(p.cost(&usage));
        }
        match gw.budget.reserve(&key, most, now_ms, hold_ms).await {
            Ok(r) => r,
            Err(crate::budget::BudgetError::Exceeded { .. }) => {
                release(gw, admission.as_ref()).await;
                return Err(GatewayError::BudgetExceeded(format!(
                    "this key's {} budget of ${:.2} does not cover this call",
                    key.budget_period
                        .unwrap_or(crate::keys::BudgetPeriod::Month)
                        .as_str(),
                    key.budget_usd.unwrap_or(0.0)
                )));
            }
            Err(e) => {
                release(gw, admission.as_ref()).await;
                tracing::error!(error = %e, "Budget store unavailable");
                return Err(GatewayError::Unavailable(
                    "the budget store is unavailable; no call is made that cannot be paid for"
                        .into(),
                ));
            }
        }
    } else {
        None
    };
    Ok(Permit {
        caller,
        log_mode,
        admission,
        reservation,
    })
}

async fn release(gw: &Gateway, a: Option<&Admission>) {
    if let Some(a) = a {
        gw.limiter.settle(a, 0).await;
    }
}

/// Ends a permit: tokens settle to what was used, the budget hold to what
/// the call cost (released when it cost nothing). Where every counter the
/// permit holds is in this process, that is done here and now (a few
/// instructions under a mutex); counters in Redis are settled in a tracked
/// task, so the response never waits for them.
pub fn settle(
    gw: &Arc<Gateway>,
    permit: Permit,
    used_tokens: Option<u64>,
    cost_usd: Option<f64>,
    succeeded: bool,
) {
    let actual = move |r: &crate::budget::Hold| match (succeeded, cost_usd) {
        (false, _) => None,
        (true, Some(c)) => Some(c),
        // A success without a price or usage keeps the whole hold: the
        // budget never under-counts.
        (true, None) => Some(r.amount_usd),
    };
    let local = permit.admission.as_ref().is_none_or(|a| a.local)
        && permit.reservation.as_ref().is_none_or(|r| r.id.is_empty());
    if local {
        if let Some(a) = &permit.admission {
            gw.limiter
                .settle_local(a, used_tokens.unwrap_or(a.held_tokens));
        }
        if let Some(r) = &permit.reservation {
            gw.budget.settle_local(r, actual(r));
        }
        return;
    }
    let gw2 = gw.clone();
    gw.spawn(async move {
        if let Some(a) = &permit.admission {
            gw2.limiter
                .settle(a, used_tokens.unwrap_or(a.held_tokens))
                .await;
        }
        if let Some(r) = &permit.reservation {
            gw2.budget.settle(r, actual(r)).await;
        }
    });
}
