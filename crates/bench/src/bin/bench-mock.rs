//! `bench-mock`: a fast mock upstream for load tests.
//!
//! - `POST …/chat/completions` (OpenAI): a `chat.completion` JSON with usage,
//!   or with `"stream": true` an SSE stream: N content chunks (the first one
//!   also carries the role), a finish chunk, a usage chunk, `data: [DONE]`.
//! - `POST …/messages` (Anthropic): a `message` JSON, or the full event
//!   sequence: `message_start`, `content_block_start`, `ping`, N
//!   `content_block_delta`, `content_block_stop`, `message_delta`,
//!   `message_stop`.
//!
//! Bodies follow the providers' real shapes (ids, dated model names, usage
//! details, `obfuscation` padding on OpenAI chunks) and are rendered once at
//! start. The request body is read but not parsed: the only thing looked for
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

const USAGE: &str = "usage: bench-mock [--listen 127.0.0.1:9000] [--chunks 20] \
[--chunk-delay-us 0] [--latency-us 0] [--threads 1]";

/// Everything the mock answers, rendered once.
struct Canned {
    openai_json: Bytes,
    openai_stream: Arc<[Bytes]>,
    anthropic_json: Bytes,
    anthropic_stream: Arc<[Bytes]>,
    not_found: Bytes,
    chunk_delay: Duration,
    latency: Duration,
}

/// The words the answer is made of; chunk `i` carries word `i % len`.
const WORDS: [&str; 10] = [
    "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".",
];

const OPENAI_ID: &str = "chatcmpl-BenchMock7Xq2Lr9Vd3Kp0Wz";
const OPENAI_MODEL: &str = "gpt-4o-2024-08-06";
const ANTHROPIC_ID: &str = "msg_01BenchMockXk7Qe2Lr9Vd3Kp";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5-20250929";
const CREATED: u64 = 1_741_569_952;
const PROMPT_TOKENS: usize = 25;

fn answer_text(chunks: usize) -> String {
    (0..chunks.max(1)).map(|i| WORDS[i % WORDS.len()]).collect()
}

fn openai_json(chunks: usize) -> Bytes {
    let text = answer_text(chunks);
    let completion = chunks.max(1);
    Bytes::from(format!(
        concat!(
            r#"{{"id":"{id}","object":"chat.completion","created":{created},"model":"{model}","#,
            r#""choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}","refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"#,
            r#""usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t},"#,
            r#""prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"#,
            r#""completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"#,
            r#""service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf"}}"#
        ),
        id = OPENAI_ID,
        created = CREATED,
        model = OPENAI_MODEL,
        text = text,
        p = PROMPT_TOKENS,
        c = completion,
        t = PROMPT_TOKENS + completion,
    ))
}

fn openai_chunk(delta: &str, finish: &str) -> String {
    format!(
        concat!(
            r#"data: {{"id":"{id}","object":"chat.completion.chunk","created":{created},"model":"{model}","#,
            r#""service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","#,
            r#""choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null,"obfuscation":"x3Tq"}}"#,
            "\n\n"
        ),
        id = OPENAI_ID,
        created = CREATED,
        model = OPENAI_MODEL,
        delta = delta,
        finish = finish,
    )
}

fn openai_stream(chunks: usize) -> Arc<[Bytes]> {
    let mut out = Vec::with_capacity(chunks + 3);
    for i in 0..chunks {
        let word = WORDS[i % WORDS.len()];
        let delta = if i == 0 {
            format!(r#"{{"role":"assistant","content":"{word}","refusal":null}}"#)
        } else {
            format!(r#"{{"content":"{word}"}}"#)
        };
        out.push(Bytes::from(openai_chunk(&delta, "null")));
    }
    out.push(Bytes::from(openai_chunk("{}", r#""stop""#)));
    out.push(Bytes::from(format!(
        concat!(
            r#"data: {{"id":"{id}","object":"chat.completion.chunk","created":{created},"model":"{model}","#,
            r#""service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[],"#,
            r#""usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t},"#,
            r#""prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"#,
            r#""completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"obfuscation":"q9"}}"#,
            "\n\n"
        ),
        id = OPENAI_ID,
        created = CREATED,
        model = OPENAI_MODEL,
        p = PROMPT_TOKENS,
        c = chunks,
        t = PROMPT_TOKENS + chunks,
    )));
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out.into()
}

fn anthropic_usage(output: usize) -> String {
    format!(
        concat!(
            r#"{{"input_tokens":{p},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"#,
            r#""cache_creation":{{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}},"#,
            r#""output_tokens":{o},"service_tier":"standard"}}"#
        ),
        p = PROMPT_TOKENS,
        o = output,
    )
}

fn anthropic_json(chunks: usize) -> Bytes {
    Bytes::from(format!(
        concat!(
            r#"{{"id":"{id}","type":"message","role":"assistant","model":"{model}","#,
            r#""content":[{{"type":"text","text":"{text}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{usage}}}"#
        ),
        id = ANTHROPIC_ID,
        model = ANTHROPIC_MODEL,
        text = answer_text(chunks),
        usage = anthropic_usage(chunks.max(1)),
    ))
}

fn anthropic_event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn anthropic_stream(chunks: usize) -> Arc<[Bytes]> {
    let mut out = Vec::with_capacity(chunks + 6);
    out.push(anthropic_event(
        "message_start",
        &format!(
            concat!(
                r#"{{"type":"message_start","message":{{"id":"{id}","type":"message","role":"assistant","model":"{model}","#,
                r#""content":[],"stop_reason":null,"stop_sequence":null,"usage":{usage}}}}}"#
            ),
            id = ANTHROPIC_ID,
            model = ANTHROPIC_MODEL,
            usage = anthropic_usage(1),
        ),
    ));
    out.push(anthropic_event(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    ));
    out.push(anthropic_event("ping", r#"{"type": "ping"}"#));
    for i in 0..chunks {
        out.push(anthropic_event(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{}"}}}}"#,
                WORDS[i % WORDS.len()]
            ),
        ));
    }
    out.push(anthropic_event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    ));
    out.push(anthropic_event(
        "message_delta",
        &format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{chunks}}}}}"#
        ),
    ));
    out.push(anthropic_event(
        "message_stop",
        r#"{"type":"message_stop"}"#,
    ));
    out.into()
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
    }
    let dialect = match (req.method(), req.uri().path()) {
        (&Method::POST, p) if p.ends_with("/chat/completions") => Some(Dialect::OpenAi),
        (&Method::POST, p) if p.ends_with("/messages") => Some(Dialect::Anthropic),
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
    let stream = wants_stream(&body);
    let resp = match (dialect, stream) {
        (Dialect::OpenAi, false) => respond(
            StatusCode::OK,
            "application/json",
            Either::Left(Full::new(c.openai_json.clone())),
        ),
        (Dialect::Anthropic, false) => respond(
            StatusCode::OK,
            "application/json",
            Either::Left(Full::new(c.anthropic_json.clone())),
        ),
        (d, true) => {
            let frames = match d {
                Dialect::OpenAi => c.openai_stream.clone(),
                Dialect::Anthropic => c.anthropic_stream.clone(),
            };
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
        }
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
        openai_json: openai_json(chunks),
        openai_stream: openai_stream(chunks),
        anthropic_json: anthropic_json(chunks),
        anthropic_stream: anthropic_stream(chunks),
        not_found: Bytes::from_static(
            br#"{"error":{"message":"bench-mock serves POST /v1/chat/completions and POST /v1/messages","type":"invalid_request_error","param":null,"code":"not_found"}}"#,
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
        let o = openai_stream(20);
        assert_eq!(o.len(), 23);
        assert!(o[0].starts_with(b"data: {"));
        assert_eq!(&o[22][..], b"data: [DONE]\n\n");
        let a = anthropic_stream(20);
        assert_eq!(a.len(), 26);
        assert!(a[0].starts_with(b"event: message_start\n"));
        assert!(a[25].starts_with(b"event: message_stop\n"));
        for ev in o.iter().chain(a.iter()) {
            assert!(ev.ends_with(b"\n\n"));
        }
    }
}
