//! `bench-mock`: a fast mock upstream for load tests.
//!
//! - `POST …/chat/completions` (OpenAI): a `chat.completion` JSON with usage,
//!   or with `"stream": true` an SSE stream: N content chunks (the first one
//!   also carries the role), a finish chunk, a usage chunk, `data: [DONE]`.
//! - `POST …/messages` (Anthropic): a `message` JSON, or the full event
//!   sequence: `message_start`, `content_block_start`, `ping`, N
//!   `content_block_delta`, `content_block_stop`, `message_delta`,
//!   `message_stop`.
//! - `POST …/responses` (OpenAI Responses): a Response object, or its event
//!   stream (`response.created` … N `response.output_text.delta` …
//!   `response.completed`), each answer with its own `resp_…` id.
//! - `GET /repos/{owner}/{repo}`: a GitHub repository, for the gateway's
//!   HTTP tool proxy.
//!
//! Bodies follow the providers' real shapes (ids, dated model names, usage
//! details, `obfuscation` padding on OpenAI chunks) and are rendered once at
//! start (a Responses answer's id is stamped in per answer). The request body is read but not parsed: the only thing looked for
//! is a `"stream": true` member.
//!
//! Options: `--listen ADDR` (default 127.0.0.1:9000), `--chunks N` (20),
//! `--chunk-delay-us D` (0: chunks are ready back to back; otherwise D µs
//! between SSE events), `--latency-us L` (0; added before answering),
//! `--threads T` (1: a current-thread runtime). tokio's timer rounds delays
//! up to whole milliseconds.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchyard_bench::Args;
use tokio::net::TcpListener;

mod canned;
use canned::Stamped;

const USAGE: &str = "usage: bench-mock [--listen 127.0.0.1:9000] [--chunks 20] \
[--chunk-delay-us 0] [--latency-us 0] [--threads 1]";

/// Everything the mock answers, rendered once.
struct Canned {
    openai_json: Bytes,
    openai_stream: Arc<[Bytes]>,
    anthropic_json: Bytes,
    anthropic_stream: Arc<[Bytes]>,
    responses_json: Stamped,
    responses_stream: Box<[Stamped]>,
    /// The id of the next Responses answer.
    responses_made: AtomicU64,
    tool_json: Bytes,
    not_found: Bytes,
    chunk_delay: Duration,
    latency: Duration,
}

/// Whether the body has a `"stream"` member set to `true`. Not a JSON
/// parser: it looks for the name followed by `:` and `true`, so a quoted
/// `\"stream\"` inside a string does not count.
fn wants_stream(body: &[u8]) -> bool {
    const NAME: &[u8] = b"\"stream\"";
    let mut rest = body;
    while let Some(at) = rest.windows(NAME.len()).position(|w| w == NAME) {
        let preceded_by_escape = at > 0 && rest[at - 1] == b'\\';
        rest = &rest[at + NAME.len()..];
        if preceded_by_escape {
            continue;
        }
        let after = rest.trim_ascii_start();
        if let Some(value) = after.strip_prefix(b":") {
            return value.trim_ascii_start().starts_with(b"true");
        }
    }
    false
}

/// SSE frames handed out one at a time, optionally paced.
struct Chunks {
    frames: Arc<[Bytes]>,
    next: usize,
    delay: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let Some(frame) = this.frames.get(this.next) else {
            return Poll::Ready(None);
        };
        if this.next > 0 && !this.delay.is_zero() {
            let delay = this.delay;
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        let frame = frame.clone();
        this.next += 1;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.frames.len()
    }

    fn size_hint(&self) -> SizeHint {
        let rest: usize = self.frames[self.next.min(self.frames.len())..]
            .iter()
            .map(Bytes::len)
            .sum();
        let mut hint = SizeHint::new();
        hint.set_lower(rest as u64);
        hint
    }
}

type MockBody = Either<Full<Bytes>, Chunks>;

fn respond(status: StatusCode, content_type: &'static str, body: MockBody) -> Response<MockBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert("x-request-id", HeaderValue::from_static("req_benchmock"));
    resp
}

async fn handle(req: Request<Incoming>, c: Arc<Canned>) -> Result<Response<MockBody>, Infallible> {
    #[derive(Clone, Copy)]
    enum Dialect {
        OpenAi,
        Anthropic,
        Responses,
        Tool,
    }
    let dialect = match (req.method(), req.uri().path()) {
        (&Method::POST, p) if p.ends_with("/chat/completions") => Some(Dialect::OpenAi),
        (&Method::POST, p) if p.ends_with("/messages") => Some(Dialect::Anthropic),
        (&Method::POST, p) if p.ends_with("/responses") => Some(Dialect::Responses),
        (&Method::GET, p) if p.starts_with("/repos/") => Some(Dialect::Tool),
        _ => None,
    };
    // Read the whole request, as an upstream does, before answering.
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let Some(dialect) = dialect else {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            "application/json",
            Either::Left(Full::new(c.not_found.clone())),
        ));
    };
    if !c.latency.is_zero() {
        tokio::time::sleep(c.latency).await;
    }
    let json = |body: Bytes| {
        respond(
            StatusCode::OK,
            "application/json",
            Either::Left(Full::new(body)),
        )
    };
    let sse = |frames: Arc<[Bytes]>| {
        let mut r = respond(
            StatusCode::OK,
            "text/event-stream",
            Either::Right(Chunks {
                frames,
                next: 0,
                delay: c.chunk_delay,
                sleep: None,
            }),
        );
        r.headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-cache"));
        r
    };
    let resp = match (dialect, wants_stream(&body)) {
        (Dialect::OpenAi, false) => json(c.openai_json.clone()),
        (Dialect::OpenAi, true) => sse(c.openai_stream.clone()),
        (Dialect::Anthropic, false) => json(c.anthropic_json.clone()),
        (Dialect::Anthropic, true) => sse(c.anthropic_stream.clone()),
        (Dialect::Responses, false) => json(
            c.responses_json
                .stamp(c.responses_made.fetch_add(1, Ordering::Relaxed)),
        ),
        (Dialect::Responses, true) => {
            let id = c.responses_made.fetch_add(1, Ordering::Relaxed);
            sse(c.responses_stream.iter().map(|f| f.stamp(id)).collect())
        }
        (Dialect::Tool, _) => respond(
            StatusCode::OK,
            "application/json; charset=utf-8",
            Either::Left(Full::new(c.tool_json.clone())),
        ),
    };
    Ok(resp)
}

async fn serve(listen: String, canned: Arc<Canned>) -> Result<(), String> {
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!("bench-mock listening on {listen}");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bench-mock: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let c = canned.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, c.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn run() -> Result<(), String> {
    let args = Args::from_env(&["help"])?;
    if args.flag("help") {
        println!("{USAGE}");
        return Ok(());
    }
    args.only(&[
        "listen",
        "chunks",
        "chunk-delay-us",
        "latency-us",
        "threads",
        "help",
    ])?;
    let listen = args.get("listen", "127.0.0.1:9000".to_owned())?;
    let chunks: usize = args.get("chunks", 20)?;
    let chunk_delay = Duration::from_micros(args.get("chunk-delay-us", 0)?);
    let latency = Duration::from_micros(args.get("latency-us", 0)?);
    let threads: usize = args.get("threads", 1)?;
    if chunks == 0 {
        return Err("--chunks must be at least 1".into());
    }
    let canned = Arc::new(Canned {
        openai_json: canned::openai_json(chunks),
        openai_stream: canned::openai_stream(chunks),
        anthropic_json: canned::anthropic_json(chunks),
        anthropic_stream: canned::anthropic_stream(chunks),
        responses_json: canned::responses_json(chunks),
        responses_stream: canned::responses_stream(chunks),
        responses_made: AtomicU64::new(1),
        tool_json: canned::tool_json(),
        not_found: Bytes::from_static(
            br#"{"error":{"message":"bench-mock serves POST /v1/chat/completions, /v1/messages and /v1/responses, and GET /repos/{owner}/{repo}","type":"invalid_request_error","param":null,"code":"not_found"}}"#,
        ),
        chunk_delay,
        latency,
    });
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(serve(listen, canned))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-mock: {e}\n{USAGE}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_stream_true_only_as_a_member() {
        assert!(wants_stream(br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(br#"{"stream" : true,"model":"m"}"#));
        assert!(!wants_stream(br#"{"stream":false}"#));
        assert!(!wants_stream(br#"{"model":"m"}"#));
        assert!(!wants_stream(
            br#"{"messages":[{"content":"say \"stream\": true"}],"stream_options":{}}"#
        ));
        assert!(wants_stream(
            br#"{"stream_options":{"include_usage":true},"stream":true}"#
        ));
    }

    #[test]
    fn streams_have_the_documented_shape() {
        let o = canned::openai_stream(20);
        assert_eq!(o.len(), 23);
        assert!(o[0].starts_with(b"data: {"));
        assert_eq!(&o[22][..], b"data: [DONE]\n\n");
        let a = canned::anthropic_stream(20);
        assert_eq!(a.len(), 26);
        assert!(a[0].starts_with(b"event: message_start\n"));
        assert!(a[25].starts_with(b"event: message_stop\n"));
        for ev in o.iter().chain(a.iter()) {
            assert!(ev.ends_with(b"\n\n"));
        }
    }

    #[test]
    fn responses_answers_each_have_their_own_id() {
        let json = canned::responses_json(20);
        let (one, two) = (json.stamp(1), json.stamp(2));
        assert!(one.starts_with(br#"{"id":"resp_0000000000000001","object":"response""#));
        assert!(two.starts_with(br#"{"id":"resp_0000000000000002","#));
        let text = std::str::from_utf8(&one).unwrap();
        assert!(text.contains(r#""id":"msg_0000000000000001""#));
        assert!(text.contains(r#""usage":{"input_tokens":25,"#));
        let s = canned::responses_stream(20);
        assert_eq!(s.len(), 28);
        let frames: Vec<String> = s
            .iter()
            .map(|f| String::from_utf8(f.stamp(7).to_vec()).unwrap())
            .collect();
        assert!(frames[0].starts_with(
            "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,"
        ));
        assert!(frames[4].contains(r#""delta":"The""#));
        assert!(frames[27].starts_with("event: response.completed\n"));
        assert!(frames[27].contains(r#""sequence_number":27,"#));
        assert!(frames[27].contains(r#""id":"resp_0000000000000007""#));
        assert!(
            frames
                .iter()
                .all(|f| f.ends_with("\n\n") && !f.contains('@'))
        );
    }
}
