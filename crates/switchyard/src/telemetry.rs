//! OpenTelemetry traces, exported as OTLP/HTTP JSON when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.
//!
//! One span per request and one per upstream attempt, with the GenAI
//! semantic-convention attributes (operation, provider, request and
//! response model, token usage). No body and no tag ever goes into a span.
//! Spans are queued in a bounded channel and posted in batches by a
//! background task; a full queue drops spans (and counts them) rather than
//! slow a request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rand::RngCore;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::Env;

const QUEUE: usize = 4096;
const BATCH: usize = 512;

/// A finished span, ready to encode.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: String,
    /// 2 = server, 3 = client (OTLP SpanKind).
    pub kind: u8,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    pub error: bool,
}

#[derive(Debug)]
pub struct Tracer {
    tx: Option<mpsc::Sender<Span>>,
    pub dropped: AtomicU64,
}

impl Tracer {
    /// A tracer that exports to the configured endpoint, or does nothing.
    pub fn from_env(env: &Env, client: crate::providers::client::Client) -> Tracer {
        let url = env
            .get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .map(str::to_owned)
            .or_else(|| {
                env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .map(|e| format!("{}/v1/traces", e.trim_end_matches('/')))
            });
        let Some(url) = url else {
            return Tracer {
                tx: None,
                dropped: AtomicU64::new(0),
            };
        };
        let service = env
            .get("OTEL_SERVICE_NAME")
            .unwrap_or("switchyard")
            .to_owned();
        // `key=value,key=value`; a pair that is not a valid header is skipped.
        let headers: Vec<(http::HeaderName, http::HeaderValue)> = env
            .get("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|h| {
                h.split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .filter_map(|(k, v)| {
                        let name = http::HeaderName::from_bytes(k.trim().as_bytes()).ok()?;
                        let mut value = http::HeaderValue::from_str(v.trim()).ok()?;
                        value.set_sensitive(true);
                        Some((name, value))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(export(rx, client, url, service, headers));
        Tracer {
            tx: Some(tx),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn record(&self, span: Span) {
        if let Some(tx) = &self.tx
            && tx.try_send(span).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub fn trace_id() -> [u8; 16] {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

pub fn span_id() -> [u8; 8] {
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string()
}

fn value(v: &Value) -> Value {
    match v {
        Value::String(s) => json!({"stringValue": s}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        other => json!({"stringValue": other.to_string()}),
    }
}

/// OTLP JSON for a batch of spans.
pub fn encode(service: &str, spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": hex(&s.trace_id),
                "spanId": hex(&s.span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": s.attributes.iter().map(|(k, v)| json!({"key": k, "value": value(v)})).collect::<Vec<_>>(),
                "status": {"code": if s.error { 2 } else { 1 }},
            });
            if let Some(p) = s.parent {
                span["parentSpanId"] = json!(hex(&p));
            }
            span
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "switchyard", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
    }]})
}

async fn export(
    mut rx: mpsc::Receiver<Span>,
    client: crate::providers::client::Client,
    url: String,
    service: String,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = match rx.recv().await {
            Some(s) => s,
            None => return,
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        let body = encode(&service, &batch);
        match client
            .post_json(&url, &headers, body.to_string(), Duration::from_secs(10))
            .await
        {
            Ok(status) if (200..300).contains(&status) => {}
            Ok(status) => tracing::warn!(
                status,
                spans = batch.len(),
                "The trace collector refused a batch"
            ),
            Err(e) => tracing::warn!(error = %e, spans = batch.len(), "Could not export traces"),
        }
        batch.clear();
    }
}

/// The `gen_ai.provider.name` for an adapter kind.
pub fn genai_system(kind: crate::config::ProviderKind) -> &'static str {
    match kind {
        crate::config::ProviderKind::Openai => "openai",
        crate::config::ProviderKind::Anthropic => "anthropic",
        crate::config::ProviderKind::Gemini => "gcp.gemini",
        crate::config::ProviderKind::OpenaiCompatible => "openai_compatible",
    }
}
