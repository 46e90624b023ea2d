//! The journey of one request, start to finish, as plain calls in order:
//! authenticate, decode, plan, then for each target build the call, send
//! it, and translate the answer, failing over only while nothing has
//! reached the caller.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::Caller;
use crate::chat::{self, Dialect, Usage};
use crate::error::{GatewayError, Result};
use crate::gateway::Gateway;
use crate::log_store::{Begin, End, Journal};
use crate::policy::{self, Permit};
use crate::providers::{self, Inbound, UpstreamError};
use crate::routing::health::Readiness;
use crate::routing::{self, Attempt, Constraints, Evidence, Target};
use crate::stream::{Buffer, Live, StreamOutcome, Translator};
use crate::wire;

/// Upstream non-stream bodies larger than this are refused.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-switchyard-request-id");
pub const PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
pub const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
pub const CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");
pub const COST: HeaderName = HeaderName::from_static("x-switchyard-cost-usd");

/// Per-request state, passed along by reference.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub id: Uuid,
    /// The dialect the caller speaks (and gets errors in).
    pub dialect: Dialect,
    pub started: Instant,
    /// The wall-clock time it started, for records and traces.
    pub wall: std::time::SystemTime,
    /// When the whole call, every attempt included, must be done.
    pub deadline: Instant,
    pub timeout: Duration,
}

impl Ctx {
    pub fn new(gw: &Gateway, dialect: Dialect) -> Ctx {
        let started = Instant::now();
        let timeout = gw.config.server.request_timeout;
        Ctx {
            id: crate::clock::request_id(),
            dialect,
            started,
            wall: std::time::SystemTime::now(),
            deadline: started + timeout,
            timeout,
        }
    }

    /// Applies `x-switchyard-request-timeout` (milliseconds), which may only
    /// shorten the configured deadline.
    pub fn apply_headers(&mut self, headers: &HeaderMap) -> Result<()> {
        if let Some(v) = headers.get("x-switchyard-request-timeout") {
            let ms = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .ok_or_else(|| GatewayError::BadHeader {
                    header: "x-switchyard-request-timeout",
                    message: "expected a whole number of milliseconds greater than zero".into(),
                })?;
            let t = Duration::from_millis(ms);
            if t < self.timeout {
                self.timeout = t;
                self.deadline = self.started + t;
            }
        }
        Ok(())
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// An error response in the caller's dialect, carrying the request id.
    pub fn error(&self, e: GatewayError) -> Response {
        let mut resp = e.into_response_in(self.dialect);
        self.stamp(resp.headers_mut());
        resp
    }

    pub fn stamp(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.id.to_string()) {
            headers.insert(REQUEST_ID, v);
        }
    }
}

/// What a caller holds for the length of a request: who it is and what
/// policy granted. Taken from the extensions the auth layer filled.
pub(crate) fn caller(parts: &Parts) -> Result<Caller> {
    parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or(GatewayError::Unauthorized)
}

/// Input tokens, estimated from the body's size for holds made before the
/// provider has counted: 3 bytes a token, on the high side on purpose.
fn estimate_tokens(body: &[u8]) -> u64 {
    (body.len() as u64).div_ceil(3)
}

/// How long a budget hold outlives the request's deadline before it counts
/// as abandoned.
fn hold_ms(ctx: &Ctx) -> i64 {
    ctx.timeout.as_millis() as i64 + 60_000
}

/// What a request holds while it runs, owned by [`chat`] so that whatever
/// happens (an error, a deadline that drops the work mid-way) the permit is
/// settled and the record closed.
#[derive(Default)]
struct Held {
    journal: Journal,
    permit: Option<Permit>,
    rate: Option<crate::limits::RateHeaders>,
    evidence: Evidence,
    /// Where the answer goes in the cache, when caching is on for it.
    cache: Option<CacheSlot>,
    /// The `Idempotency-Key` this request claimed, resolved with its answer.
    claim: Option<crate::stream::registry::IdemClaim>,
}

/// A cache entry to fill with this request's answer.
#[derive(Debug, Clone)]
struct CacheSlot {
    id: String,
    namespace: String,
    ttl: Duration,
    /// Only the route's first target's answers are stored, unless the route
    /// allows fallback answers too.
    primary: Arc<str>,
    fallback_ok: bool,
    requested_model: String,
    stream: bool,
    dialect: Dialect,
}

/// How long this request's answer may be cached: `x-switchyard-cache-ttl`,
/// else the key's default, else the configured default; `0` is off, and
/// `x-switchyard-skip-cache: true` neither reads nor writes.
fn cache_ttl(gw: &Gateway, caller: &Caller, headers: &HeaderMap) -> Result<Duration> {
    if let Some(v) = headers.get("x-switchyard-skip-cache") {
        match v.to_str().map(str::trim) {
            Ok("true") => return Ok(Duration::ZERO),
            Ok("false") => {}
            _ => {
                return Err(GatewayError::BadHeader {
                    header: "x-switchyard-skip-cache",
                    message: "expected true or false".into(),
                });
            }
        }
    }
    if let Some(v) = headers.get("x-switchyard-cache-ttl") {
        let secs = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s <= crate::cache::MAX_TTL_S)
            .ok_or_else(|| GatewayError::BadHeader {
                header: "x-switchyard-cache-ttl",
                message: format!(
                    "expected whole seconds from 0 (off) to {}",
                    crate::cache::MAX_TTL_S
                ),
            })?;
        return Ok(Duration::from_secs(secs));
    }
    if let Some(s) = caller.key.as_ref().and_then(|k| k.cache_ttl_s) {
        return Ok(Duration::from_secs(s));
    }
    Ok(gw.config.cache.default_ttl)
}

/// `POST /v1/chat/completions` and `POST /v1/messages`.
///
/// The call runs in a tracked task of its own, not in the handler: when a
/// caller goes away, hyper drops the handler's future, and a call cut at an
/// arbitrary await would leave its budget hold, its record and its
/// idempotency claim unsettled. In its own task it finishes (the answer is
/// recorded and billed once, and a retry with the same Idempotency-Key
/// attaches to it) or, with `streams.continue_on_disconnect` off, stops
/// and settles as `client_gone`.
pub async fn chat(gw: Arc<Gateway>, dialect: Dialect, parts: Parts, body: Bytes) -> Response {
    let task_gw = gw.clone();
    in_own_task(&gw, dialect, move |left| {
        chat_here(task_gw, dialect, parts, body, left)
    })
    .await
}

/// The outcome of an attempt the request's deadline (or shutdown, or the
/// caller leaving) cut short while it ran.
const CUT: &str = "cut";

/// What a call still running when shutdown's grace period ends is told.
const SHUTTING_DOWN: &str = "the gateway is shutting down; retry the request";

/// Runs the call `work` makes in a tracked task and waits for its answer.
/// `work` gets a token cancelled when the caller has gone (this future was
/// dropped): it decides whether to stop; nothing is cut short under it.
pub async fn in_own_task<F, Fut>(gw: &Arc<Gateway>, dialect: Dialect, work: F) -> Response
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    match crate::gateway::own_task(&gw.tasks, work).await {
        Some(resp) => resp,
        None => Ctx::new(gw, dialect).error(GatewayError::Internal(
            "the request's task ended without an answer".into(),
        )),
    }
}

async fn chat_here(
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
        let work = chat_planned(&gw, &ctx, &parts, &body, &mut held);
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
        Err(e) => {
            tracing::info!(request_id = %ctx.id, status = e.status().as_u16(), error = e.class(), "Request failed");
            let status = e.status().as_u16();
            gw.metrics
                .request(None, None, status, "BYPASS", ctx.started.elapsed(), None);
            if gw.tracer.enabled() {
                let requested = held
                    .journal
                    .begin()
                    .map(|b| b.requested_model.clone())
                    .unwrap_or_default();
                trace(&gw, &ctx, &requested, None, status, None, &held.evidence);
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
                policy::settle(&gw, p, None, None, false);
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
    };
    if let Some(h) = held.rate {
        crate::limits::write_headers(resp.headers_mut(), &h);
    }
    resp
}

/// `x-switchyard-metadata`: a JSON object of at most 16 string, number or
/// boolean tags, merged over the key's defaults (the request wins). In log
/// mode `none` only the key's own tags are kept.
pub fn metadata(
    headers: &HeaderMap,
    caller: &Caller,
    mode: crate::config::LogMode,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut tags = caller
        .key
        .as_ref()
        .map(|k| k.metadata.clone())
        .unwrap_or_default();
    let Some(v) = headers.get("x-switchyard-metadata") else {
        return Ok(tags);
    };
    let bad = |message: String| GatewayError::BadHeader {
        header: "x-switchyard-metadata",
        message,
    };
    let text = v.to_str().map_err(|_| bad("expected UTF-8 JSON".into()))?;
    let asked: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| bad(format!("expected a JSON object of tags: {e}")))?;
    crate::keys::manage::check_tags(&asked)
        .map_err(|(field, msg)| bad(format!("`{field}`: {msg}")))?;
    if mode == crate::config::LogMode::None {
        return Ok(tags);
    }
    for (k, v) in asked {
        tags.insert(k, v);
    }
    if tags.len() > 16 {
        return Err(bad(format!(
            "with the key's default tags there would be {} tags; at most 16",
            tags.len()
        )));
    }
    Ok(tags)
}

/// Decode, policy, plan, admission and the begin record; then the attempts.
async fn chat_planned(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    parts: &Parts,
    body: &Bytes,
    held: &mut Held,
) -> Result<Response> {
    let caller = caller(parts)?;
    let (request, fields) = match ctx.dialect {
        Dialect::Anthropic => wire::anthropic::decode_request(body)?,
        _ => wire::openai::decode_request(body)?,
    };
    if let Some(key) = parts.headers.get("idempotency-key") {
        let key = key
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 255)
            .ok_or_else(|| GatewayError::BadHeader {
                header: "idempotency-key",
                message: "expected 1 to 255 visible ASCII characters".into(),
            })?;
        let owner = caller.key_id().unwrap_or("anonymous").to_owned();
        let hash = crate::stream::registry::body_hash(body);
        // Shared through Redis when there is one, unless the request keeps
        // nothing (log mode none): its stream never leaves this process.
        let shared = gw.redis.clone().filter(|_| {
            policy::log_mode(gw, &caller, &parts.headers)
                .is_ok_and(|m| m != crate::config::LogMode::None)
        });
        match shared {
            Some(conn) => {
                if let Some(resp) = claim_shared(gw, ctx, &conn, &owner, key, &hash, held).await? {
                    return Ok(resp);
                }
            }
            None => loop {
                use crate::stream::registry::Lookup;
                match gw
                    .streams
                    .idempotent(&owner, key, hash, &ctx.id.to_string())
                {
                    Lookup::Claimed(c) => {
                        held.claim = Some(crate::stream::registry::IdemClaim::Local(c));
                        break;
                    }
                    Lookup::Mismatch => {
                        return Err(GatewayError::Conflict(
                            "this Idempotency-Key was already used with a different request body"
                                .into(),
                        ));
                    }
                    Lookup::Attach(first, mut rx) => {
                        // Wait for the first request's answer; if it failed,
                        // its claim is gone and this request runs instead.
                        let settled = rx
                            .wait_for(|o| !matches!(o, crate::stream::registry::Outcome::Running))
                            .await
                            .map(|o| o.clone());
                        if let Ok(outcome) = settled {
                            return attach(gw, &owner, &first, outcome);
                        }
                    }
                }
            },
        }
    }
    let mut begin = Begin {
        id: ctx.id.to_string(),
        time_ms: crate::clock::unix_ms(),
        instance: gw.recorder.instance.clone(),
        key_id: caller.key_id().map(str::to_owned),
        route: None,
        requested_model: request.model.clone(),
        dialect: ctx.dialect.as_str().to_owned(),
        stream: request.stream,
        log_mode: gw.config.logs.mode,
        est_input_tokens: estimate_tokens(body),
        metadata: Default::default(),
        request_body: None,
        hold_usd: None,
    };
    // Policy refusals are recorded too, with what was known: a request
    // that failed closed on jurisdiction keeps what was excluded and why.
    let refuse = |held: &mut Held, begin: Begin, e: GatewayError| {
        let excluded = match &e {
            GatewayError::NoCompliantProvider { excluded, .. } => excluded.clone(),
            _ => Vec::new(),
        };
        held.journal.refused(
            &gw.recorder,
            begin,
            End {
                status: e.status().as_u16(),
                error_class: Some(e.class().to_owned()),
                latency_ms: ms(ctx.started.elapsed()),
                cache: "BYPASS".into(),
                excluded,
                ..End::default()
            },
        );
        e
    };
    let log_mode = match policy::log_mode(gw, &caller, &parts.headers) {
        Ok(m) => m,
        Err(e) => return Err(refuse(held, begin, e)),
    };
    begin.log_mode = log_mode;
    begin.metadata = match metadata(&parts.headers, &caller, log_mode) {
        Ok(m) => m,
        Err(e) => return Err(refuse(held, begin, e)),
    };
    let ttl = match cache_ttl(gw, &caller, &parts.headers) {
        Ok(t) => t,
        Err(e) => return Err(refuse(held, begin, e)),
    };
    let custom_key = parts
        .headers
        .get("x-switchyard-cache-key")
        .and_then(|v| v.to_str().ok());
    let cache_id = (!ttl.is_zero()).then(|| {
        crate::cache::key(
            caller.namespace(),
            ctx.dialect,
            request.stream,
            &fields,
            custom_key,
        )
    });
    let namespace = caller.namespace().to_owned();
    let plan = match policy::constraints(&caller, &parts.headers, &request.model)
        .and_then(|c| routing::plan(gw, &request.model, &c))
    {
        Ok(p) => p,
        Err(e) => return Err(refuse(held, begin, e)),
    };
    begin.route = plan.route.clone();
    let permit = match policy::admit(
        gw,
        caller,
        log_mode,
        &plan,
        begin.est_input_tokens,
        request.max_tokens,
        hold_ms(ctx),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            if let GatewayError::RateLimited { headers, .. } = &e {
                held.rate = Some(*headers);
            }
            return Err(refuse(held, begin, e));
        }
    };
    held.rate = permit.rate_headers();
    begin.hold_usd = permit.reservation.as_ref().map(|r| r.amount_usd);
    held.permit = Some(permit);
    if log_mode == crate::config::LogMode::Full {
        begin.request_body = Some(String::from_utf8_lossy(body).into_owned());
    }
    // Recorded before any upstream call: a call that cannot be recorded is
    // not made.
    held.journal
        .open(&gw.recorder, begin)
        .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
    held.evidence = Evidence {
        route: plan.route.clone(),
        attempts: Vec::with_capacity(plan.attempts.len()),
        excluded: plan.excluded.clone(),
    };
    if let Some(id) = cache_id {
        if let Some(hit) = gw.cache.get(&id, crate::clock::unix_ms()).await {
            return Ok(serve_hit(gw, ctx, held, hit));
        }
        held.cache = Some(CacheSlot {
            id,
            namespace,
            ttl,
            primary: plan.primary.clone(),
            fallback_ok: plan.cache_fallback,
            requested_model: request.model.clone(),
            stream: request.stream,
            dialect: ctx.dialect,
        });
    }
    let inbound = Inbound {
        dialect: ctx.dialect,
        request: &request,
        fields: &fields,
        anthropic_version: parts.headers.get("anthropic-version"),
        anthropic_beta: parts.headers.get("anthropic-beta"),
    };
    chat_attempts(gw, ctx, &inbound, &plan, held).await
}

/// Claims an idempotency key in Redis, or attaches to the request (on any
/// replica) that holds it. `Ok(None)`: claimed, go ahead.
async fn claim_shared(
    gw: &Gateway,
    ctx: &Ctx,
    conn: &redis::aio::ConnectionManager,
    owner: &str,
    key: &str,
    hash: &[u8; 32],
    held: &mut Held,
) -> Result<Option<Response>> {
    use crate::stream::shared::{self, Claimed};
    let hash = crate::keys::hex(hash);
    let id = ctx.id.to_string();
    let ttl = ctx.timeout + gw.config.streams.retain;
    let unavailable = |e: redis::RedisError| {
        GatewayError::Unavailable(format!("the idempotency store is unavailable: {e}"))
    };
    loop {
        match shared::claim(conn, owner, key, &hash, &id, ttl)
            .await
            .map_err(unavailable)?
        {
            Claimed::Mine => {
                held.claim = Some(crate::stream::registry::IdemClaim::Shared(
                    shared::SharedClaim::new(
                        conn.clone(),
                        gw.tasks.clone(),
                        owner,
                        key,
                        &id,
                        gw.config.streams.retain,
                    ),
                ));
                return Ok(None);
            }
            Claimed::Mismatch => {
                return Err(GatewayError::Conflict(
                    "this Idempotency-Key was already used with a different request body".into(),
                ));
            }
            Claimed::Theirs(first) => {
                // The first request is running somewhere: wait for its
                // stream's mirror or its answer.
                if let Some(meta) = shared::meta(conn, &first).await
                    && meta.owner == owner
                {
                    if meta.overflowed {
                        return Err(GatewayError::Gone(crate::stream::buffer::OUTGROWN.into()));
                    }
                    let mut r = Response::new(Body::from_stream(shared::follow(
                        conn.clone(),
                        first.clone(),
                        0,
                    )));
                    let h = r.headers_mut();
                    h.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("text/event-stream"),
                    );
                    for (name, value) in [
                        (REQUEST_ID, &first),
                        (PROVIDER, &meta.provider),
                        (MODEL, &meta.model),
                    ] {
                        if let Ok(v) = HeaderValue::from_str(value) {
                            h.insert(name, v);
                        }
                    }
                    h.insert(
                        "x-switchyard-idempotent-replay",
                        HeaderValue::from_static("true"),
                    );
                    return Ok(Some(r));
                }
                if let Some((body, provider, model)) = shared::answer(conn, &first).await {
                    let answer = crate::stream::registry::StoredAnswer {
                        body,
                        content_type: "application/json",
                        provider,
                        model,
                        request_id: first.clone(),
                    };
                    return attach(
                        gw,
                        owner,
                        &first,
                        crate::stream::registry::Outcome::Whole(Arc::new(answer)),
                    )
                    .map(Some);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Hands a retry the first request's answer: its stream, replayed from the
/// start and followed live, or its complete answer again. Nothing is sent
/// upstream and nothing is billed.
fn attach(
    gw: &Gateway,
    owner: &str,
    first: &str,
    outcome: crate::stream::registry::Outcome,
) -> Result<Response> {
    use crate::stream::registry::Outcome;
    let mut resp = match outcome {
        Outcome::Stream(id) => {
            let kept = gw.streams.get(&id, owner).ok_or_else(|| {
                GatewayError::NotFound("the first request's stream has expired".into())
            })?;
            if let crate::stream::buffer::Read::Gone = kept.buffer.read_from(0) {
                return Err(GatewayError::Gone(crate::stream::buffer::OUTGROWN.into()));
            }
            let mut r = sse_response(kept.buffer, 0);
            if let Ok(v) = HeaderValue::from_str(&kept.provider) {
                r.headers_mut().insert(PROVIDER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&kept.model) {
                r.headers_mut().insert(MODEL, v);
            }
            r
        }
        Outcome::Whole(a) => {
            let mut r = Response::new(Body::from(a.body.clone()));
            let h = r.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            );
            if let Ok(v) = HeaderValue::from_str(&a.provider) {
                h.insert(PROVIDER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&a.model) {
                h.insert(MODEL, v);
            }
            r
        }
        Outcome::Running => {
            return Err(GatewayError::Internal(
                "an idempotent request never settled".into(),
            ));
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(first) {
        h.insert(REQUEST_ID, v);
    }
    h.insert(
        "x-switchyard-idempotent-replay",
        HeaderValue::from_static("true"),
    );
    Ok(resp)
}

/// Answers from the cache: no upstream call, no cost; the record says what
/// the original call cost (saved).
fn serve_hit(gw: &Arc<Gateway>, ctx: &Ctx, held: &mut Held, hit: crate::cache::Entry) -> Response {
    let meta = hit.meta;
    let hit_body = hit.body;
    let mut resp = Response::new(Body::from(hit_body.clone()));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(if meta.stream {
            "text/event-stream"
        } else {
            "application/json"
        }),
    );
    ctx.stamp(h);
    if let Ok(v) = HeaderValue::from_str(&meta.provider) {
        h.insert(PROVIDER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta.model) {
        h.insert(MODEL, v);
    }
    h.insert(ATTEMPTS, HeaderValue::from(0));
    h.insert(CACHE, HeaderValue::from_static("HIT"));
    if !meta.stream {
        h.insert(COST, HeaderValue::from_static("0"));
    }
    let latency = ctx.started.elapsed();
    gw.metrics.request(
        Some(&meta.provider),
        Some(&meta.model),
        200,
        "HIT",
        latency,
        None,
    );
    held.journal.close(
        &gw.recorder,
        End {
            provider: Some(meta.provider.clone()),
            model: Some(meta.model.clone()),
            status: 200,
            latency_ms: ms(latency),
            cost_usd: Some(0.0),
            saved_usd: meta.cost_usd,
            price_version: Some(gw.prices.version.clone()),
            cache: "HIT".into(),
            ..End::default()
        },
    );
    if let Some(p) = held.permit.take() {
        policy::settle(gw, p, Some(0), Some(0.0), true);
    }
    if let Some(c) = held.claim.take() {
        c.resolve(crate::stream::registry::Outcome::Whole(Arc::new(
            crate::stream::registry::StoredAnswer {
                body: hit_body.clone(),
                content_type: if meta.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
                provider: meta.provider.clone(),
                model: meta.model.clone(),
                request_id: ctx.id.to_string(),
            },
        )));
    }
    resp
}

/// Stores an answer in the cache, in a tracked task (the response never
/// waits for it). Fallback answers are stored only where the route allows.
fn store(
    gw: &Arc<Gateway>,
    slot: CacheSlot,
    target: &Target,
    body: Bytes,
    usage: Option<Usage>,
    cost: Option<f64>,
) {
    if *target.key != *slot.primary && !slot.fallback_ok {
        return;
    }
    let now = crate::clock::unix_ms();
    let entry = crate::cache::Entry {
        meta: crate::cache::EntryMeta {
            id: slot.id.clone(),
            namespace: slot.namespace,
            key_hash: slot.id,
            requested_model: slot.requested_model,
            provider: target.provider.name().to_owned(),
            model: target.model.clone(),
            dialect: slot.dialect.as_str().to_owned(),
            stream: slot.stream,
            size_bytes: body.len() as u64,
            created_at: now,
            expires_at: now + slot.ttl.as_millis() as i64,
            cost_usd: cost,
            input_tokens: usage.map(|u| u.input_tokens),
            output_tokens: usage.map(|u| u.output_tokens),
        },
        body,
    };
    let g = gw.clone();
    gw.spawn(async move { g.cache.put(entry).await });
}

/// What a successful attempt produced.
enum Served {
    /// A complete answer, already in the caller's dialect.
    Whole {
        response: Response,
        usage: Option<Usage>,
        body: Bytes,
    },
    /// A stream whose first bytes are in `buffer`; `live` reads the rest.
    Stream {
        response: Response,
        live: Box<Live>,
        buffer: Arc<Buffer>,
    },
}

async fn chat_attempts(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    inbound: &Inbound<'_>,
    plan: &routing::Plan,
    held: &mut Held,
) -> Result<Response> {
    let mut last_error: Option<GatewayError> = None;
    let mut tries: Vec<(&str, u32)> = Vec::new();
    for target in &plan.attempts {
        let provider = target.provider.name();
        // Backoff with jitter before trying a provider again.
        let n = match tries.iter_mut().find(|(p, _)| *p == provider) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                tries.push((provider, 1));
                0
            }
        };
        if n > 0 {
            let wait = routing::backoff::delay(n, &mut rand::thread_rng());
            if wait >= ctx.remaining() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        // A provider that said Retry-After during this request is not asked
        // again before then.
        if !held.evidence.attempts.is_empty()
            && matches!(
                gw.health.readiness(provider, &target.key, Instant::now()),
                Readiness::NotUntil(_) | Readiness::Blocked(_)
            )
        {
            continue;
        }
        let started = Instant::now();
        gw.health.begin(provider, &target.key, started);
        let attempt = held.evidence.attempts.len() as u32 + 1;
        // In the evidence while it runs, its outcome still empty: if the
        // request's deadline drops this attempt mid-way, the record still
        // shows where it went (the error path marks it cut).
        held.evidence.attempts.push(Attempt {
            target: target.key.to_string(),
            jurisdiction: target.jurisdiction().map(str::to_owned),
            start_ms: ms(started.saturating_duration_since(ctx.started)),
            duration_ms: 0.0,
            outcome: String::new(),
            error_class: None,
            status: None,
        });
        let result = attempt_chat(gw, ctx, inbound, target, attempt).await;
        let took = started.elapsed();
        let mut record = |outcome: &str, class: Option<&str>, status| {
            if let Some(a) = held.evidence.attempts.last_mut() {
                a.duration_ms = ms(took);
                a.outcome = outcome.to_owned();
                a.error_class = class.map(str::to_owned);
                a.status = status;
            }
        };
        match result {
            Ok(served) => {
                gw.health
                    .success(provider, &target.key, took, Instant::now());
                record("ok", None, Some(200));
                gw.metrics.attempts(held.evidence.attempts.len());
                let permit = held
                    .permit
                    .take()
                    .ok_or_else(|| GatewayError::Internal("permit used twice".into()))?;
                let journal = std::mem::take(&mut held.journal);
                let evidence = std::mem::take(&mut held.evidence);
                let slot = held.cache.take();
                let cache_status = if slot.is_some() { "MISS" } else { "BYPASS" };
                let claim = held.claim.take();
                return Ok(match served {
                    Served::Whole {
                        mut response,
                        usage,
                        body,
                    } => {
                        let cost = cost(gw, target, usage.as_ref());
                        if let Some(c) = cost
                            && let Ok(v) = HeaderValue::from_str(&format!("{c:.8}"))
                        {
                            response.headers_mut().insert(COST, v);
                        }
                        response
                            .headers_mut()
                            .insert(CACHE, HeaderValue::from_static(cache_status));
                        if let Some(slot) = slot {
                            store(gw, slot, target, body.clone(), usage, cost);
                        }
                        if let Some(c) = claim {
                            c.resolve(crate::stream::registry::Outcome::Whole(Arc::new(
                                crate::stream::registry::StoredAnswer {
                                    body: body.clone(),
                                    content_type: "application/json",
                                    provider: target.provider.name().to_owned(),
                                    model: target.model.clone(),
                                    request_id: ctx.id.to_string(),
                                },
                            )));
                        }
                        finish(
                            gw,
                            ctx,
                            journal,
                            permit,
                            Finished {
                                target,
                                status: 200,
                                error_class: None,
                                usage,
                                cost,
                                ttft: None,
                                evidence,
                                body: Some(body),
                                cache: cache_status,
                                streamed: false,
                            },
                        );
                        response
                    }
                    Served::Stream {
                        mut response,
                        live,
                        buffer,
                    } => {
                        response
                            .headers_mut()
                            .insert(CACHE, HeaderValue::from_static(cache_status));
                        let ttft = ctx.started.elapsed();
                        // Registered before the response goes out, so a
                        // retry or a resume finds it at once.
                        gw.streams.keep(
                            &ctx.id.to_string(),
                            crate::stream::registry::Kept {
                                buffer: buffer.clone(),
                                owner: permit.caller.key_id().unwrap_or("anonymous").to_owned(),
                                dialect: ctx.dialect,
                                provider: target.provider.name().to_owned(),
                                model: target.model.clone(),
                                ended: None,
                                idempotent: claim.is_some(),
                            },
                        );
                        let idem = match &claim {
                            Some(crate::stream::registry::IdemClaim::Shared(c)) => {
                                Some(c.redis_key())
                            }
                            _ => None,
                        };
                        if let Some(c) = claim {
                            c.resolve(crate::stream::registry::Outcome::Stream(ctx.id.to_string()));
                        }
                        gw.spawn(pump(
                            gw.clone(),
                            ctx.clone(),
                            target.clone(),
                            live,
                            buffer,
                            Box::new(Carried {
                                journal,
                                permit,
                                evidence,
                                slot,
                                idem,
                            }),
                            ttft,
                        ));
                        response
                    }
                });
            }
            Err(GatewayError::Upstream(e)) => {
                gw.health.failure(
                    provider,
                    &target.key,
                    e.class,
                    e.retry_after,
                    Instant::now(),
                );
                record("error", Some(e.class.as_str()), Some(e.status));
                tracing::info!(request_id = %ctx.id, target = %target.key, class = e.class.as_str(), status = e.status, "Attempt failed");
                let retryable = e.class.retryable();
                last_error = Some(GatewayError::Upstream(e));
                if !retryable {
                    break;
                }
            }
            // This target cannot express the request; another may. Nothing
            // was sent: not an attempt.
            Err(GatewayError::Untranslatable(u)) => {
                held.evidence.attempts.pop();
                held.evidence.excluded.push(routing::Excluded {
                    target: target.key.to_string(),
                    jurisdiction: target.jurisdiction().map(str::to_owned),
                    reason: u.to_string(),
                });
                if last_error.is_none() {
                    last_error = Some(GatewayError::Untranslatable(u));
                }
            }
            Err(other) => {
                if matches!(other, GatewayError::DeadlineExceeded(_)) {
                    record("error", Some(other.class()), None);
                } else {
                    held.evidence.attempts.pop();
                }
                last_error = Some(other);
                break;
            }
        }
    }
    gw.metrics.attempts(held.evidence.attempts.len());
    tracing::debug!(request_id = %ctx.id, evidence = ?held.evidence, "No attempt succeeded");
    Err(last_error.unwrap_or_else(|| {
        GatewayError::DeadlineExceeded(crate::config::fmt_duration(ctx.timeout))
    }))
}

/// How a served request ended.
struct Finished<'a> {
    target: &'a Target,
    status: u16,
    error_class: Option<String>,
    usage: Option<Usage>,
    cost: Option<f64>,
    ttft: Option<Duration>,
    evidence: Evidence,
    /// What the caller got, kept only in log mode `full`.
    body: Option<Bytes>,
    cache: &'static str,
    /// A stream whose first events reached the caller: generation began,
    /// whatever ended it.
    streamed: bool,
}

/// Closes a served request: its record, its permit, its metrics.
fn finish(gw: &Arc<Gateway>, ctx: &Ctx, mut journal: Journal, permit: Permit, f: Finished<'_>) {
    let latency = ctx.started.elapsed();
    log_finished(ctx, f.target, f.status, f.usage.as_ref());
    gw.metrics.request(
        Some(f.target.provider.name()),
        Some(&f.target.model),
        f.status,
        f.cache,
        latency,
        f.ttft,
    );
    if let Some(u) = &f.usage {
        gw.metrics
            .tokens(f.target.provider.name(), &f.target.model, u, f.cost);
    }
    let full = journal
        .begin()
        .is_some_and(|b| b.log_mode == crate::config::LogMode::Full);
    if gw.tracer.enabled() {
        let requested = journal
            .begin()
            .map(|b| b.requested_model.as_str())
            .unwrap_or("");
        trace(
            gw,
            ctx,
            requested,
            Some(f.target),
            f.status,
            f.usage.as_ref(),
            &f.evidence,
        );
    }
    // Generation happened if the answer succeeded, usage was reported, or
    // a stream got going (a stream cut short still cost what it used).
    let generated = f.status < 400 || f.usage.is_some() || f.streamed;
    // Nothing said what it cost (no usage reported: a stream cut before its
    // last chunk, a server that never reports it): a budget keeps the whole
    // hold, since it never under-counts, and the record says so.
    let estimated = generated && f.usage.is_none() && f.cost.is_none();
    let cost = if estimated {
        permit.reservation.as_ref().map(|r| r.amount_usd)
    } else {
        f.cost
    };
    journal.close(
        &gw.recorder,
        End {
            provider: Some(f.target.provider.name().to_owned()),
            model: Some(f.target.model.clone()),
            status: f.status,
            error_class: f.error_class,
            latency_ms: ms(latency),
            ttft_ms: f.ttft.map(ms),
            input_tokens: f.usage.map(|u| u.input_tokens),
            output_tokens: f.usage.map(|u| u.output_tokens),
            cached_tokens: f.usage.map(|u| u.cached_input_tokens),
            reasoning_tokens: f.usage.map(|u| u.reasoning_tokens),
            usage_source: if estimated && cost.is_some() {
                Some("estimated".to_owned())
            } else {
                f.usage.map(|_| "reported".to_owned())
            },
            cost_usd: cost,
            saved_usd: None,
            price_version: Some(gw.prices.version.clone()),
            cache: f.cache.into(),
            attempts: f.evidence.attempts,
            excluded: f.evidence.excluded,
            response_body: if full {
                f.body.map(|b| String::from_utf8_lossy(&b).into_owned())
            } else {
                None
            },
            ..End::default()
        },
    );
    policy::settle(gw, permit, f.usage.map(|u| u.total()), cost, generated);
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// What `usage` cost at `target`'s price; `None` when either is unknown.
pub fn cost(gw: &Gateway, target: &Target, usage: Option<&Usage>) -> Option<f64> {
    let p = gw.prices.get(target.provider.name(), &target.model)?;
    usage.map(|u| p.cost(u))
}

/// What the request's headers (and, with keys, the caller's key) allow:
/// jurisdictions and an attempt cap.
pub fn constraints(
    headers: &HeaderMap,
    key_jurisdictions: Option<&[String]>,
) -> Result<Constraints> {
    let header = match headers.get("x-switchyard-jurisdiction") {
        None => None,
        Some(v) => {
            let list = v
                .to_str()
                .map(routing::parse_jurisdictions)
                .unwrap_or_default();
            if list.is_empty() {
                return Err(GatewayError::BadHeader {
                    header: "x-switchyard-jurisdiction",
                    message: "expected a comma-separated list such as `eu` or `eu,us`".into(),
                });
            }
            Some(list)
        }
    };
    let max_attempts = match headers.get("x-switchyard-max-attempts") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| GatewayError::BadHeader {
                    header: "x-switchyard-max-attempts",
                    message: "expected a whole number of at least 1".into(),
                })?,
        ),
    };
    Ok(Constraints {
        jurisdictions: routing::intersect(header, key_jurisdictions),
        max_attempts,
    })
}

async fn attempt_chat(
    gw: &Arc<Gateway>,
    ctx: &Ctx,
    inbound: &Inbound<'_>,
    target: &Target,
    attempt: u32,
) -> Result<Served> {
    let provider = &target.provider;
    let mut call = providers::chat_call(provider, inbound, &target.model)?;
    // The provider may log it: one id ties their records to ours.
    if let Ok(v) = HeaderValue::from_str(&ctx.id.to_string()) {
        call.headers.push(("x-switchyard-request-id", v));
    }
    let resp = send(gw, ctx, provider, &call).await?;
    if call.stream {
        let translator = Translator::new(
            ctx.dialect,
            call.dialect,
            inbound.request.include_usage,
            default_id(ctx),
            target.model.clone(),
            unix_now(),
        );
        let mut live = Live::new(provider.clone(), resp, translator);
        let first_timeout = provider.config.first_chunk_timeout.min(ctx.remaining());
        let first = live.first_output(first_timeout).await?;
        let buffer = Buffer::new(gw.config.streams.max_buffer_bytes as usize);
        buffer.push(first);
        let mut response = sse_response(buffer.clone(), 0);
        served_headers(ctx, response.headers_mut(), target, attempt);
        return Ok(Served::Stream {
            response,
            live: Box::new(live),
            buffer,
        });
    }
    let upstream_body = read_body(provider, resp).await?;
    let (out, usage) =
        translate_response(ctx, call.dialect, call.passthrough, upstream_body, target)?;
    let body = out.clone();
    let mut response = Response::new(Body::from(out));
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    served_headers(ctx, h, target, attempt);
    Ok(Served::Whole {
        response,
        usage,
        body,
    })
}

/// Sends one attempt, bounded by the provider's timeout and the caller's
/// deadline; running out of the latter is the caller's 504, not the
/// provider's fault.
async fn send(
    gw: &Gateway,
    ctx: &Ctx,
    provider: &providers::Provider,
    call: &providers::Call,
) -> Result<providers::client::UpstreamResponse> {
    let remaining = ctx.remaining();
    let bounded_by_deadline = remaining < provider.config.timeout;
    let timeout = provider.config.timeout.min(remaining);
    match gw.client.send(provider, call, timeout).await {
        Err(e)
            if bounded_by_deadline
                && e.class == providers::ErrorClass::Timeout
                && e.status == 504 =>
        {
            Err(GatewayError::DeadlineExceeded(crate::config::fmt_duration(
                ctx.timeout,
            )))
        }
        other => Ok(other?),
    }
}

/// An SSE response that follows `buffer` from event `from`.
pub fn sse_response(buffer: Arc<Buffer>, from: u64) -> Response {
    let mut response = Response::new(Body::from_stream(buffer.follow(from)));
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}

/// Why the gateway stopped a stream before its end.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Its caller left and `streams.continue_on_disconnect` is off.
    ClientGone,
    /// Too many streams were going on with nobody reading them.
    DetachedLimit,
    /// Shutdown's grace period was over.
    ShuttingDown,
}

impl Stop {
    /// The record's error class.
    fn class(self) -> &'static str {
        match self {
            Stop::ClientGone => "client_gone",
            Stop::DetachedLimit => "detached_limit",
            Stop::ShuttingDown => "shutting_down",
        }
    }

    fn status(self) -> u16 {
        match self {
            Stop::ShuttingDown => 503,
            Stop::ClientGone | Stop::DetachedLimit => 499,
        }
    }

    /// The terminal error whoever reads the stream gets.
    fn error(self) -> GatewayError {
        match self {
            Stop::ClientGone => GatewayError::ClientGone,
            Stop::DetachedLimit => GatewayError::Unavailable(
                "the gateway stopped this stream: too many streams were generating with nobody reading them (streams.max_detached)".into(),
            ),
            Stop::ShuttingDown => GatewayError::Unavailable(SHUTTING_DOWN.into()),
        }
    }
}

/// What a stream's pump carries to its end: the request's record, its
/// permit and evidence, its cache slot, and the Redis key of its shared
/// idempotency claim.
struct Carried {
    journal: Journal,
    permit: Permit,
    evidence: Evidence,
    slot: Option<CacheSlot>,
    idem: Option<String>,
}

/// Reads the rest of a stream into its buffer, in a tracked task: the
/// caller may go away, the generation (and its record) still completes,
/// within the detached-stream limit; the buffer stays for re-attachment.
async fn pump(
    gw: Arc<Gateway>,
    ctx: Ctx,
    target: Target,
    mut live: Box<Live>,
    buffer: Arc<Buffer>,
    held: Box<Carried>,
    ttft: Duration,
) {
    let Carried {
        journal,
        permit,
        evidence,
        slot,
        idem,
    } = *held;
    let id = ctx.id.to_string();
    let cache_status = if slot.is_some() { "MISS" } else { "BYPASS" };
    let dialect = ctx.dialect;
    let render = move |e: &UpstreamError| GatewayError::Upstream(e.clone()).body(dialect);
    let cfg = &gw.config.streams;
    // With Redis (and a log mode that keeps anything), the buffer is
    // mirrored there for resumes through other replicas.
    let mut mirror = match (&gw.redis, journal.begin().map(|b| b.log_mode)) {
        (Some(conn), Some(mode)) if mode != crate::config::LogMode::None => {
            let meta = crate::stream::shared::RemoteMeta {
                owner: permit.caller.key_id().unwrap_or("anonymous").to_owned(),
                dialect: ctx.dialect.as_str().to_owned(),
                provider: target.provider.name().to_owned(),
                model: target.model.clone(),
                overflowed: false,
            };
            let mut m = crate::stream::shared::Mirror::start(
                conn.clone(),
                &id,
                &meta,
                cfg.max_buffer_bytes as usize,
                ctx.timeout + cfg.retain,
                idem,
            )
            .await;
            if let crate::stream::buffer::Read::Data(bytes, _) = buffer.read_from(0) {
                let starts = buffer.starts_of_first(bytes.len());
                m.push(&crate::stream::Chunk::new(bytes, starts)).await;
            }
            Some(m)
        }
        _ => None,
    };
    gw.metrics.stream_opened();
    let mut detached = false;
    let mut stopped: Option<Stop> = None;
    loop {
        // Detached: no client attached. Generation goes on, unless too many
        // streams are already going on alone.
        let alone = buffer.followers() == 0;
        if alone != detached {
            detached = alone;
            if alone {
                let n = gw
                    .streams
                    .detached
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
                    + 1;
                if !cfg.continue_on_disconnect {
                    stopped = Some(Stop::ClientGone);
                } else if n > cfg.max_detached as usize {
                    stopped = Some(Stop::DetachedLimit);
                }
            } else {
                gw.streams
                    .detached
                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
        if let Some(why) = stopped {
            tracing::info!(request_id = %ctx.id, reason = why.class(), "Stopping a stream");
            let chunk = live.stop(&why.error().body(ctx.dialect));
            if let Some(m) = mirror.as_mut() {
                m.push(&chunk).await;
            }
            buffer.push(chunk);
            break;
        }
        let next = tokio::select! {
            biased;
            () = gw.stopping.cancelled() => {
                stopped = Some(Stop::ShuttingDown);
                continue;
            }
            next = live.next_output(ctx.deadline, &render) => next,
        };
        match next {
            Some(chunk) => {
                if let Some(m) = mirror.as_mut() {
                    m.push(&chunk).await;
                }
                buffer.push(chunk);
            }
            None => break,
        }
    }
    if detached {
        gw.streams
            .detached
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
    buffer.close();
    buffer.compact();
    gw.streams.ended(&id);
    if let Some(m) = mirror {
        m.end(cfg.retain).await;
    }
    gw.metrics.stream_closed();
    let (status, error_class) = match (&live.outcome, stopped) {
        (Some(StreamOutcome::Complete), _) => (200, None),
        (Some(StreamOutcome::Failed(e)), _) => {
            gw.health.failure(
                target.provider.name(),
                &target.key,
                e.class,
                None,
                Instant::now(),
            );
            (e.status, Some(e.class.as_str().to_owned()))
        }
        (None, Some(why)) => (why.status(), Some(why.class().to_owned())),
        (None, None) => (499, Some("client_gone".to_owned())),
    };
    let usage = live.translator.usage();
    // A stream cut short after generating still cost what it used.
    let cost = cost(&gw, &target, usage.as_ref());
    let full = journal
        .begin()
        .is_some_and(|b| b.log_mode == crate::config::LogMode::Full);
    let everything = if slot.is_some() || full {
        buffer.all()
    } else {
        None
    };
    if let (Some(slot), Some(bytes), 200) = (slot, everything.clone(), status) {
        store(&gw, slot, &target, bytes, usage, cost);
    }
    finish(
        &gw,
        &ctx,
        journal,
        permit,
        Finished {
            target: &target,
            status,
            error_class,
            usage,
            cost,
            ttft: Some(ttft),
            evidence,
            body: everything
                .filter(|_| full)
                .map(|b| b.slice(..b.len().min(MAX_LOGGED_STREAM))),
            cache: cache_status,
            streamed: true,
        },
    );
}

/// One span for the request and one per attempt, GenAI conventions.
fn trace(
    gw: &Gateway,
    ctx: &Ctx,
    requested_model: &str,
    served: Option<&Target>,
    status: u16,
    usage: Option<&Usage>,
    evidence: &Evidence,
) {
    use crate::telemetry::{Span, genai_system, span_id, trace_id};
    use serde_json::json;
    let trace = trace_id();
    let root = span_id();
    let mut attrs = vec![
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.request.model", json!(requested_model)),
        ("http.response.status_code", json!(status)),
        ("switchyard.request_id", json!(ctx.id.to_string())),
        ("switchyard.attempts", json!(evidence.attempts.len())),
    ];
    if let Some(t) = served {
        attrs.push((
            "gen_ai.provider.name",
            json!(genai_system(t.provider.kind())),
        ));
        attrs.push(("gen_ai.system", json!(genai_system(t.provider.kind()))));
        attrs.push(("gen_ai.response.model", json!(t.model)));
    }
    if let Some(u) = usage {
        attrs.push(("gen_ai.usage.input_tokens", json!(u.input_tokens)));
        attrs.push(("gen_ai.usage.output_tokens", json!(u.output_tokens)));
    }
    if let Some(r) = &evidence.route {
        attrs.push(("switchyard.route", json!(r)));
    }
    gw.tracer.record(Span {
        trace_id: trace,
        span_id: root,
        parent: None,
        name: format!("chat {requested_model}"),
        kind: 2,
        start: ctx.wall,
        end: ctx.wall + ctx.started.elapsed(),
        attributes: attrs,
        error: status >= 400,
    });
    for a in &evidence.attempts {
        let (provider, model) = a.target.split_once('/').unwrap_or((&a.target, ""));
        let kind = gw
            .providers
            .get(provider)
            .map(|p| genai_system(p.kind()))
            .unwrap_or("unknown");
        let start = ctx.wall + Duration::from_secs_f64(a.start_ms / 1000.0);
        let mut attrs = vec![
            ("gen_ai.operation.name", json!("chat")),
            ("gen_ai.provider.name", json!(kind)),
            ("gen_ai.system", json!(kind)),
            ("gen_ai.request.model", json!(model)),
            ("switchyard.target", json!(a.target)),
            ("switchyard.outcome", json!(a.outcome)),
        ];
        if let Some(j) = &a.jurisdiction {
            attrs.push(("switchyard.jurisdiction", json!(j)));
        }
        if let Some(s) = a.status {
            attrs.push(("http.response.status_code", json!(s)));
        }
        if let Some(c) = &a.error_class {
            attrs.push(("error.type", json!(c)));
        }
        gw.tracer.record(Span {
            trace_id: trace,
            span_id: span_id(),
            parent: Some(root),
            name: format!("chat {model}"),
            kind: 3,
            start,
            end: start + Duration::from_secs_f64(a.duration_ms / 1000.0),
            attributes: attrs,
            error: a.outcome != "ok",
        });
    }
}

/// The most of a stream kept in a `full` record.
const MAX_LOGGED_STREAM: usize = 1024 * 1024;

/// One line per request at debug level: every request has its record in
/// the database already, and a line per request at `info` costs the hot
/// path a formatted write to stderr.
fn log_finished(ctx: &Ctx, target: &Target, status: u16, usage: Option<&Usage>) {
    tracing::debug!(
        request_id = %ctx.id,
        provider = target.provider.name(),
        model = %target.model,
        status,
        input_tokens = usage.map(|u| u.input_tokens),
        output_tokens = usage.map(|u| u.output_tokens),
        latency_ms = ctx.started.elapsed().as_millis() as u64,
        "Request finished"
    );
}

fn served_headers(ctx: &Ctx, h: &mut HeaderMap, target: &Target, attempts: u32) {
    ctx.stamp(h);
    if let Ok(v) = HeaderValue::from_str(target.provider.name()) {
        h.insert(PROVIDER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&target.model) {
        h.insert(MODEL, v);
    }
    h.insert(ATTEMPTS, HeaderValue::from(attempts));
    h.insert(CACHE, HeaderValue::from_static("BYPASS"));
}

fn default_id(ctx: &Ctx) -> String {
    match ctx.dialect {
        Dialect::Anthropic => format!("msg_{}", ctx.id.simple()),
        _ => format!("chatcmpl-{}", ctx.id.simple()),
    }
}

pub fn unix_now() -> u64 {
    crate::clock::unix_s()
}

/// Reads a 2xx upstream body, bounded.
pub async fn read_body(
    provider: &providers::Provider,
    resp: providers::client::UpstreamResponse,
) -> Result<Bytes> {
    use http_body_util::BodyExt;
    let length = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|n| n > MAX_UPSTREAM_BODY) {
        return Err(too_large(provider));
    }
    let mut body = resp.into_body();
    // One chunk (the usual case for a JSON answer) is passed on as it is.
    let mut first: Option<Bytes> = None;
    let mut out = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(c) = frame.into_data() else { continue };
                let have = first.as_ref().map_or(0, Bytes::len) + out.len();
                if have + c.len() > MAX_UPSTREAM_BODY {
                    return Err(too_large(provider));
                }
                match first.take() {
                    None if out.is_empty() => first = Some(c),
                    None => out.extend_from_slice(&c),
                    Some(f) => {
                        out.reserve(length.unwrap_or(f.len() + c.len()));
                        out.extend_from_slice(&f);
                        out.extend_from_slice(&c);
                    }
                }
            }
            None => return Ok(first.unwrap_or_else(|| out.freeze())),
            Some(Err(e)) => {
                return Err(UpstreamError::broken_stream(provider.name(), &e.to_string()).into());
            }
        }
    }
}

fn too_large(provider: &providers::Provider) -> GatewayError {
    UpstreamError::protocol(provider.name(), "the answer is larger than 64 MiB").into()
}

/// A complete upstream answer in the caller's dialect, and its usage.
fn translate_response(
    ctx: &Ctx,
    upstream: Dialect,
    passthrough: bool,
    body: Bytes,
    target: &Target,
) -> Result<(Bytes, Option<Usage>)> {
    let name = target.provider.name();
    if passthrough {
        let usage = match upstream {
            Dialect::Anthropic => wire::anthropic::response::peek_usage(&body),
            _ => wire::openai::response::peek_usage(&body),
        };
        return Ok((body, usage));
    }
    let decoded = match upstream {
        Dialect::OpenAi => wire::openai::decode_response(&body),
        Dialect::Anthropic => wire::anthropic::decode_response(&body),
        Dialect::Gemini => wire::gemini::decode_response(&body),
    };
    let mut r: chat::Response = decoded.map_err(|e| UpstreamError::protocol(name, &e.message))?;
    if r.id.is_empty() {
        r.id = default_id(ctx);
    }
    if r.model.is_empty() {
        r.model = target.model.clone();
    }
    if r.created == 0 {
        r.created = unix_now();
    }
    let usage = r.usage;
    let out = match ctx.dialect {
        Dialect::Anthropic => wire::anthropic::encode_response(&r)
            .map_err(|e| UpstreamError::protocol(name, &e.message))?,
        _ => wire::openai::encode_response(&r),
    };
    Ok((Bytes::from(out), usage))
}

/// `POST /v1/embeddings`: policy and failover as for chat; no streams. In
/// its own task like [`chat`], always run to the end (one short call).
pub async fn embeddings(gw: Arc<Gateway>, parts: Parts, body: Bytes) -> Response {
    let task_gw = gw.clone();
    in_own_task(&gw, Dialect::OpenAi, move |_| {
        embeddings_here(task_gw, parts, body)
    })
    .await
}

async fn embeddings_here(gw: Arc<Gateway>, parts: Parts, body: Bytes) -> Response {
    let mut ctx = Ctx::new(&gw, Dialect::OpenAi);
    let mut rate = None;
    let mut journal = Journal::default();
    let result = async {
        ctx.apply_headers(&parts.headers)?;
        let caller = caller(&parts)?;
        let (req, fields) = wire::openai::embeddings::decode_embeddings_request(&body)?;
        let constraints = policy::constraints(&caller, &parts.headers, &req.model)?;
        let log_mode = policy::log_mode(&gw, &caller, &parts.headers)?;
        let plan = routing::plan(&gw, &req.model, &constraints)?;
        let metadata = metadata(&parts.headers, &caller, log_mode)?;
        let begin = Begin {
            id: ctx.id.to_string(),
            time_ms: crate::clock::unix_ms(),
            instance: gw.recorder.instance.clone(),
            key_id: caller.key_id().map(str::to_owned),
            route: plan.route.clone(),
            requested_model: req.model.clone(),
            dialect: "openai-embeddings".into(),
            stream: false,
            log_mode,
            est_input_tokens: estimate_tokens(&body),
            metadata,
            request_body: (log_mode == crate::config::LogMode::Full)
                .then(|| String::from_utf8_lossy(&body).into_owned()),
            hold_usd: None,
        };
        let permit = policy::admit(
            &gw,
            caller,
            log_mode,
            &plan,
            estimate_tokens(&body),
            Some(0),
            hold_ms(&ctx),
        )
        .await?;
        rate = permit.rate_headers();
        let mut begin = begin;
        begin.hold_usd = permit.reservation.as_ref().map(|r| r.amount_usd);
        if let Err(e) = journal.open(&gw.recorder, begin) {
            policy::settle(&gw, permit, None, None, false);
            return Err(GatewayError::Unavailable(e.to_string()));
        }
        let mut last = None;
        for (n, target) in plan.attempts.iter().enumerate() {
            let provider = &target.provider;
            let call = match providers::embeddings_call(provider, &req, &fields, &target.model) {
                Ok(c) => c,
                Err(u) => {
                    policy::settle(&gw, permit, None, None, false);
                    return Err(u.into());
                }
            };
            let sent = match send(&gw, &ctx, provider, &call).await {
                Ok(resp) => read_body(provider, resp).await,
                Err(e) => Err(e),
            };
            let upstream_body = match sent {
                Ok(b) => b,
                Err(GatewayError::Upstream(e)) if e.class.retryable() => {
                    last = Some(GatewayError::Upstream(e));
                    continue;
                }
                Err(e) => {
                    policy::settle(&gw, permit, None, None, false);
                    return Err(e);
                }
            };
            let (out, tokens) = if call.passthrough {
                let tokens = wire::openai::embeddings::peek_embedding_tokens(&upstream_body);
                (upstream_body, tokens)
            } else {
                let Some(vectors) = wire::gemini::decode_embeddings(&upstream_body) else {
                    policy::settle(&gw, permit, None, None, false);
                    return Err(UpstreamError::protocol(
                        provider.name(),
                        "not a batchEmbedContents answer",
                    )
                    .into());
                };
                // Gemini reports no token counts: estimate about 4 bytes a token.
                let estimate = (req.input.byte_len() as u64).div_ceil(4);
                let out = wire::openai::embeddings::encode_embeddings_response(
                    vectors,
                    &target.model,
                    req.base64,
                    estimate,
                );
                (Bytes::from(out), Some(estimate))
            };
            let usage = tokens.map(|t| Usage {
                input_tokens: t,
                ..Usage::default()
            });
            let cost = cost(&gw, target, usage.as_ref());
            policy::settle(&gw, permit, tokens, cost, true);
            gw.metrics.request(
                Some(provider.name()),
                Some(&target.model),
                200,
                "BYPASS",
                ctx.started.elapsed(),
                None,
            );
            journal.close(
                &gw.recorder,
                End {
                    provider: Some(provider.name().to_owned()),
                    model: Some(target.model.clone()),
                    status: 200,
                    latency_ms: ms(ctx.started.elapsed()),
                    input_tokens: tokens,
                    output_tokens: tokens.map(|_| 0),
                    usage_source: tokens.map(|_| {
                        if call.passthrough {
                            "reported"
                        } else {
                            "estimated"
                        }
                        .to_owned()
                    }),
                    cost_usd: cost,
                    price_version: Some(gw.prices.version.clone()),
                    cache: "BYPASS".into(),
                    ..End::default()
                },
            );
            let mut resp = Response::new(Body::from(out));
            let h = resp.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            served_headers(&ctx, h, target, n as u32 + 1);
            if let Some(c) = cost
                && let Ok(v) = HeaderValue::from_str(&format!("{c:.8}"))
            {
                h.insert(COST, v);
            }
            return Ok::<_, GatewayError>(resp);
        }
        policy::settle(&gw, permit, None, None, false);
        Err(last.unwrap_or_else(|| GatewayError::Internal("no embeddings target".into())))
    }
    .await;
    let mut resp = result.unwrap_or_else(|e| {
        journal.close(
            &gw.recorder,
            End {
                status: e.status().as_u16(),
                error_class: Some(e.class().to_owned()),
                latency_ms: ms(ctx.started.elapsed()),
                cache: "BYPASS".into(),
                ..End::default()
            },
        );
        ctx.error(e)
    });
    if let Some(h) = rate {
        crate::limits::write_headers(resp.headers_mut(), &h);
    }
    resp
}
