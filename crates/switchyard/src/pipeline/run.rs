//! Running a call: in a tracked task of its own, within its deadline, and
//! the one place a failed call is closed (record, permit, error answer).

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;
use http::request::Parts;
use tokio_util::sync::CancellationToken;

use super::cached::CacheSlot;
use super::ctx::{ATTEMPTS, Ctx, MODEL, PROVIDER, ms};
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::log_store::{End, Journal};
use crate::policy::{self, Permit};
use crate::routing::Evidence;

/// The outcome of an attempt the request's deadline (or shutdown, or the
/// caller leaving) cut short while it ran.
pub(super) const CUT: &str = "cut";

/// What a call still running when shutdown's grace period ends is told.
pub(super) const SHUTTING_DOWN: &str = "the gateway is shutting down; retry the request";

/// What a request holds while it runs, owned by [`run`] so that whatever
/// happens (an error, a deadline that drops the work mid-way) the permit is
/// settled and the record closed.
#[derive(Default)]
pub(super) struct Held {
    pub journal: Journal,
    pub permit: Option<Permit>,
    pub rate: Option<crate::limits::RateHeaders>,
    pub evidence: Evidence,
    /// Where the answer goes in the cache, when caching is on for it.
    pub cache: Option<CacheSlot>,
    /// The `Idempotency-Key` this request claimed, resolved with its answer.
    pub claim: Option<crate::stream::registry::IdemClaim>,
    /// The stored conversation this call is a turn of.
    pub turn: Option<super::conversation::Turn>,
}

/// Runs the call `work` makes in a tracked task and waits for its answer,
/// once there is a place for it among the calls in flight (held until the
/// answer's body is done).
/// `work` gets a token cancelled when the caller has gone (this future was
/// dropped): it decides whether to stop; nothing is cut short under it.
pub async fn in_own_task<F, Fut>(gw: &Arc<Gateway>, dialect: Dialect, work: F) -> Response
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    let place = match gw.inflight.admit().await {
        Ok(p) => p,
        Err(e) => return Ctx::new(gw, dialect).error(e),
    };
    let resp = match crate::gateway::own_task(&gw.tasks, work).await {
        Some(resp) => resp,
        None => Ctx::new(gw, dialect).error(GatewayError::Internal(
            "the request's task ended without an answer".into(),
        )),
    };
    crate::inflight::hold(resp, place)
}

/// One chat call, start to end, inside its task: the journey
/// ([`super::admit::prepare`] and on) raced against the deadline, the
/// caller leaving (when streams do not continue without it) and shutdown.
pub(super) async fn run(
    gw: Arc<Gateway>,
    dialect: Dialect,
    parts: Parts,
    body: Bytes,
    left: CancellationToken,
) -> Response {
    let mut ctx = Ctx::new(&gw, dialect);
    let mut held = Held::default();
    let keep_going = gw.config.streams.continue_on_disconnect;
    let result = async {
        ctx.apply_headers(&parts.headers)?;
        let ctx = ctx.clone();
        let work = super::admit::prepare(&gw, &ctx, &parts, &body, &mut held);
        let gone = async {
            if keep_going {
                std::future::pending::<()>().await;
            }
            left.cancelled().await;
        };
        tokio::select! {
            r = tokio::time::timeout_at(ctx.deadline, work) => match r {
                Ok(r) => r,
                Err(_) => Err(GatewayError::DeadlineExceeded(crate::config::fmt_duration(
                    ctx.timeout,
                ))),
            },
            () = gone => Err(GatewayError::ClientGone),
            () = gw.stopping.cancelled() => Err(GatewayError::Unavailable(SHUTTING_DOWN.into())),
        }
    }
    .await;
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => fail(&gw, &ctx, &mut held, e),
    };
    if let Some(h) = held.rate {
        crate::limits::write_headers(resp.headers_mut(), &h);
    }
    resp
}

/// A call that ended in an error: its record closed with what is known
/// (the attempt cut while it ran included), its permit released, and the
/// error in the caller's dialect with the target that answered last.
fn fail(gw: &Arc<Gateway>, ctx: &Ctx, held: &mut Held, e: GatewayError) -> Response {
    tracing::info!(request_id = %ctx.id, trace_id = %ctx.trace, status = e.status().as_u16(), error = e.class(), "Request failed");
    let status = e.status().as_u16();
    gw.metrics
        .request(None, None, status, "BYPASS", ctx.started.elapsed(), None);
    if gw.tracer.enabled() {
        let requested = held
            .journal
            .begin()
            .map(|b| b.requested_model.clone())
            .unwrap_or_default();
        super::trace::trace(gw, ctx, &requested, None, status, None, &held.evidence);
    }
    // An attempt cut while it ran: its duration is until now.
    if let Some(a) = held.evidence.attempts.last_mut()
        && a.outcome.is_empty()
    {
        a.duration_ms = (ms(ctx.started.elapsed()) - a.start_ms).max(0.0);
        a.outcome = CUT.to_owned();
        a.error_class = Some(e.class().to_owned());
    }
    // The target that answered last (with the error), if any.
    let last: Option<(String, String)> = held
        .evidence
        .attempts
        .last()
        .and_then(|a| a.target.split_once('/'))
        .map(|(p, m)| (p.to_owned(), m.to_owned()));
    let attempts = held.evidence.attempts.len();
    if held.journal.is_open() {
        held.journal.close(
            &gw.recorder,
            End {
                provider: last.as_ref().map(|l| l.0.clone()),
                model: last.as_ref().map(|l| l.1.clone()),
                status,
                error_class: Some(e.class().to_owned()),
                latency_ms: ms(ctx.started.elapsed()),
                cache: "BYPASS".into(),
                attempts: std::mem::take(&mut held.evidence.attempts),
                excluded: std::mem::take(&mut held.evidence.excluded),
                ..End::default()
            },
        );
    }
    if let Some(p) = held.permit.take() {
        policy::settle(gw, p, None, None, false);
    }
    let mut resp = ctx.error(e);
    let h = resp.headers_mut();
    h.insert(ATTEMPTS, HeaderValue::from(attempts));
    if let Some((p, m)) = last {
        if let Ok(v) = HeaderValue::from_str(&p) {
            h.insert(PROVIDER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&m) {
            h.insert(MODEL, v);
        }
    }
    resp
}
