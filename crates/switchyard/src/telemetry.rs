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

/// W3C Trace Context for one request: the trace it belongs to (the
/// caller's, from an inbound `traceparent`, else a new one), the span that
/// stands for the request in it, and the caller's `tracestate`, kept as
/// sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The request's span.
    pub span_id: [u8; 8],
    /// The caller's span, when it sent a `traceparent`.
    pub parent: Option<[u8; 8]>,
    /// `trace-flags`: bit 0 is "sampled".
    pub flags: u8,
    pub state: Option<String>,
}

/// W3C allows 32 list members of at most 256 characters each; a longer
/// header is dropped rather than forwarded.
const TRACESTATE_MAX: usize = 512;

impl TraceContext {
    /// A new trace, the request at its root.
    pub fn fresh() -> TraceContext {
        TraceContext {
            trace_id: trace_id(),
            span_id: span_id(),
            parent: None,
            flags: 1,
            state: None,
        }
    }

    /// The caller's trace when its `traceparent` is valid (W3C Trace
    /// Context level 1: version 00 exactly, a higher version read by its
    /// first four fields, all-zero ids and version ff refused), else a new
    /// one; `tracestate` only travels with a valid `traceparent`.
    pub fn from_headers(headers: &http::HeaderMap) -> TraceContext {
        let Some((trace_id, parent, flags)) = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent)
        else {
            return TraceContext::fresh();
        };
        let state = headers
            .get_all("tracestate")
            .iter()
            .map(|v| v.to_str().map(str::trim))
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .map(|parts| parts.join(","))
            .filter(|s| !s.is_empty() && s.len() <= TRACESTATE_MAX);
        TraceContext {
            trace_id,
            span_id: span_id(),
            parent: Some(parent),
            flags,
            state,
        }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The `traceparent` naming `span` (a span of this trace) as parent.
    pub fn traceparent(&self, span: &[u8; 8]) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(span),
            self.flags & 1
        )
    }
}

/// The trace id, for log lines.
impl std::fmt::Display for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.trace_id))
    }
}

fn parse_traceparent(s: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = unhex::<1>(&s[..2])?[0];
    // Version 00 is exactly 55 characters; a later version may append
    // fields after a dash. ff is never valid.
    if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let trace = unhex::<16>(&s[3..35])?;
    let parent = unhex::<8>(&s[36..52])?;
    let flags = unhex::<1>(&s[53..55])?[0];
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace, parent, flags))
}

/// Lowercase hex only, as W3C requires.
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
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

/// Lowercase hex, one allocation (every request's record carries its
/// trace id this way).
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * b.len());
    for x in b {
        out.push(DIGITS[usize::from(x >> 4)] as char);
        out.push(DIGITS[usize::from(x & 0xf)] as char);
    }
    out
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
        crate::config::ProviderKind::Azure => "azure.ai.openai",
        crate::config::ProviderKind::Bedrock => "aws.bedrock",
        crate::config::ProviderKind::Vertex => "gcp.vertex_ai",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_becomes_the_parent() {
        let t = TraceContext::from_headers(&headers(&[
            ("traceparent", TP),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ]));
        assert_eq!(t.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent, Some(*b"\x00\xf0\x67\xaa\x0b\xa9\x02\xb7"));
        assert_eq!(t.flags, 1);
        assert_eq!(
            t.state.as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        assert_ne!(t.span_id, t.parent.unwrap(), "the request is a new span");
        let out = t.traceparent(&t.span_id);
        assert_eq!(&out[..36], &TP[..36]);
        assert_eq!(&out[52..], "-01");
        // Unsampled stays unsampled; unknown flag bits are not forwarded.
        let t = TraceContext::from_headers(&headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe",
        )]));
        assert!(t.traceparent(&t.span_id).ends_with("-00"));
        // A later version is read by its first fields.
        let t = TraceContext::from_headers(&headers(&[(
            "traceparent",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes",
        )]));
        assert_eq!(t.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace_and_drops_tracestate() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            let t = TraceContext::from_headers(&headers(&[
                ("traceparent", bad),
                ("tracestate", "congo=t61rcWkgMzE"),
            ]));
            assert_eq!(t.parent, None, "{bad}");
            assert_eq!(t.state, None, "{bad}");
            assert_ne!(t.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
        }
        let long = "a=".to_owned() + &"b".repeat(600);
        let t = TraceContext::from_headers(&headers(&[("traceparent", TP), ("tracestate", &long)]));
        assert!(t.parent.is_some() && t.state.is_none());
    }
}
