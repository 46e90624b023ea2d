//! A stream after its first event: a tracked task reads the rest of the
//! upstream into the buffer the caller follows, mirrors it to Redis for
//! other replicas, stops it when nobody may be reading it any more, and
//! records the call when it ends.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::HeaderValue;
use tokio::time::Instant;

use super::cached::CacheSlot;
use super::ctx::Ctx;
use super::finish::{Finished, cost, finish};
use super::run::SHUTTING_DOWN;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::log_store::Journal;
use crate::policy::Permit;
use crate::providers::UpstreamError;
use crate::routing::{Evidence, Target};
use crate::stream::{Buffer, Live, StreamOutcome};

/// The most of a stream kept in a `full` record.
const MAX_LOGGED_STREAM: usize = 1024 * 1024;

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
pub(super) struct Carried {
    pub journal: Journal,
    pub permit: Permit,
    pub evidence: Evidence,
    pub slot: Option<CacheSlot>,
    pub idem: Option<String>,
    pub turn: Option<super::conversation::Turn>,
}

/// Reads the rest of a stream into its buffer, in a tracked task: the
/// caller may go away, the generation (and its record) still completes,
/// within the detached-stream limit; the buffer stays for re-attachment.
pub(super) async fn pump(
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
        turn,
    } = *held;
    let id = ctx.id.to_string();
    let cache_status = if slot.is_some() { "MISS" } else { "BYPASS" };
    let dialect = ctx.dialect;
    let render = move |e: &UpstreamError| GatewayError::Upstream(e.clone()).body(dialect);
    let cfg = &gw.config.streams;
    let idempotent = idem.is_some();
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
            tracing::info!(request_id = %ctx.id, trace_id = %ctx.trace, reason = why.class(), "Stopping a stream");
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
    // The mirror ends first, as each event went to it first: a stream read
    // to its end here may be forgotten, its mirror with it, at once.
    if let Some(m) = mirror {
        m.end(cfg.retain).await;
    }
    buffer.close();
    // Kept past its end (detached, under an Idempotency-Key, or retained
    // after delivery), a stream's chunks are gathered into one allocation.
    // One whose caller is reading it to the end is forgotten as the caller
    // gets there: gathering it would be a copy of it for nothing.
    let forgotten_on_delivery =
        buffer.followers() > 0 && !idempotent && cfg.delivered_retain.is_zero();
    if !forgotten_on_delivery {
        buffer.compact();
    }
    gw.streams.ended(&id);
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
    if let Some(t) = turn {
        let requested = journal.begin().map_or("", |b| b.requested_model.as_str());
        t.finish(&gw, &ctx, requested, &target, live.translator.terminal());
    }
    if let (Some(slot), Some(bytes), 200) = (slot, everything.clone(), status) {
        super::cached::store(&gw, slot, &target, bytes, usage, cost);
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
