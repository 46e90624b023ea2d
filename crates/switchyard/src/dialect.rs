//! Dialects: the wire formats callers and upstreams speak, and the one table
//! of what the gateway does differently for each.
//!
//! A caller's dialect is a decoder for its requests and encoders for its
//! answers, its stream events and its errors, and nothing else: the request
//! path ([`crate::pipeline`]) asks this module and never matches on a
//! dialect itself. An upstream's dialect is the reverse: decoders for its
//! answers, streams and errors. Adding a dialect means adding its arms
//! here (and its `wire` module); nothing else in the journey changes.
//!
//! Pure, like [`crate::wire`]: no IO, no clock, no logging.

use std::sync::Arc;

use crate::chat::{self, Event, FinishReason, Usage};
use crate::wire::{self, DecodeError, Fields, StreamError, sse};

/// Which wire format a caller or an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Chat Completions.
    OpenAi,
    Anthropic,
    Gemini,
    /// OpenAI's Responses API.
    Responses,
    /// AWS Bedrock's Converse API: an upstream's dialect only. No route
    /// takes callers in it, so the caller's side refuses or, where it must
    /// answer something, answers as Bedrock would (`{"message": ...}`).
    Bedrock,
}

/// What an answer in the caller's dialect needs of its request beyond the
/// canonical answer: a Response object repeats its request's settings and
/// gives freeform and namespaced tools back in the caller's terms.
#[derive(Debug, Clone, Default)]
pub enum Echo {
    #[default]
    None,
    Responses(Arc<wire::responses::Echo>),
}

impl Echo {
    /// A native upstream's whole answer as the caller gets it.
    pub fn correct(&self, body: bytes::Bytes) -> bytes::Bytes {
        match self {
            Echo::Responses(e) => std::str::from_utf8(&body)
                .ok()
                .and_then(|s| e.correct(s))
                .map_or(body, bytes::Bytes::from),
            Echo::None => body,
        }
    }
}

/// What a request's path says that its body does not: a Gemini caller
/// names the model and the method (streaming or not) in the URL.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub model: String,
    pub stream: bool,
    /// The method the caller called (`generateContent`, `embedContent`...).
    pub method: String,
}

/// How an answer starts, before the upstream names it.
pub struct Start<'a> {
    pub id: String,
    pub model: String,
    pub created: u64,
    pub include_usage: bool,
    pub echo: &'a Echo,
    /// The provider serving it (sealed reasoning names it).
    pub provider: &'a str,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
            Dialect::Responses => "responses",
            Dialect::Bedrock => "bedrock",
        }
    }

    /// The dialect [`Dialect::as_str`] named (as records and Redis keep it);
    /// anything unknown reads as OpenAI, the gateway's default.
    pub fn parse(name: &str) -> Dialect {
        match name {
            "anthropic" => Dialect::Anthropic,
            "gemini" => Dialect::Gemini,
            "responses" => Dialect::Responses,
            "bedrock" => Dialect::Bedrock,
            _ => Dialect::OpenAi,
        }
    }

    // The caller's side.

    /// Whether this dialect's stream events carry an `id:` line (for
    /// `Last-Event-ID`): Google's SDKs read `data:` lines only, and fail on
    /// any other.
    pub fn sse_ids(self) -> bool {
        self != Dialect::Gemini
    }

    /// Whether this dialect's answers may be stored and continued
    /// (`store`, `previous_response_id`): the Responses API's.
    pub fn keeps_conversations(self) -> bool {
        self == Dialect::Responses
    }

    /// A caller's request: the canonical form, and its own top-level fields
    /// for the same-dialect fast path and the cache key.
    /// `envelope`: what the request's path said (a Gemini caller names
    /// the model and whether it streams there, not in the body).
    pub fn decode_request<'b>(
        self,
        body: &'b [u8],
        envelope: Option<&Envelope>,
    ) -> Result<(chat::Request, Fields<'b>), DecodeError> {
        match self {
            Dialect::Anthropic => wire::anthropic::decode_request(body),
            Dialect::Responses => wire::responses::decode_request(body),
            Dialect::OpenAi => wire::openai::decode_request(body),
            Dialect::Gemini => match envelope {
                Some(e) => wire::gemini::decode_request(body, &e.model, e.stream),
                None => Err(DecodeError::missing("model")),
            },
            Dialect::Bedrock => Err(not_a_caller()),
        }
    }

    /// What this caller's answers repeat of its request. `store`: whether
    /// the gateway keeps the answer.
    pub fn echo(
        self,
        request_id: &uuid::Uuid,
        fields: &Fields<'_>,
        request: &chat::Request,
        store: bool,
    ) -> Echo {
        match self {
            Dialect::Responses => Echo::Responses(Arc::new(wire::responses::Echo::new(
                self.answer_id(request_id),
                fields,
                request,
                store,
            ))),
            _ => Echo::None,
        }
    }

    /// A complete answer in this caller's dialect, from `provider`.
    pub fn encode_response(
        self,
        r: &chat::Response,
        echo: &Echo,
        provider: &str,
    ) -> Result<Vec<u8>, DecodeError> {
        match (self, echo) {
            (Dialect::Anthropic, _) => wire::anthropic::encode_response(r),
            (Dialect::Responses, Echo::Responses(e)) => Ok(wire::responses::encode_response(
                r,
                e,
                provider,
                crate::clock::unix_s(),
            )),
            (Dialect::Responses, Echo::None) => Err(DecodeError::new(
                "",
                "a Responses answer needs its request's echo",
            )),
            (Dialect::Gemini, _) => wire::gemini::encode_response(r),
            (Dialect::OpenAi, _) => Ok(wire::openai::encode_response(r)),
            (Dialect::Bedrock, _) => Err(not_a_caller()),
        }
    }

    /// The id an answer carries when its upstream gave none (a Responses
    /// answer always carries this one: it is stored and resumed by it).
    pub fn answer_id(self, request_id: &uuid::Uuid) -> String {
        match self {
            Dialect::Anthropic => format!("msg_{}", request_id.simple()),
            Dialect::Responses => format!("resp_{}", request_id.simple()),
            Dialect::Gemini | Dialect::Bedrock => format!("sy-{}", request_id.simple()),
            Dialect::OpenAi => format!("chatcmpl-{}", request_id.simple()),
        }
    }

    /// Writes canonical stream events in this caller's dialect.
    pub fn stream_encoder(self, s: Start<'_>) -> Encoder {
        match (self, s.echo) {
            (Dialect::Anthropic, _) => {
                Encoder::Anthropic(wire::anthropic::StreamEncoder::new(s.id, s.model))
            }
            (Dialect::Gemini, _) => {
                Encoder::Gemini(Box::new(wire::gemini::StreamEncoder::new(s.id, s.model)))
            }
            (Dialect::Responses, Echo::Responses(e)) => {
                Encoder::Responses(Box::new(wire::responses::StreamEncoder::new(
                    e.clone(),
                    s.provider.to_owned(),
                    s.model,
                    s.created,
                )))
            }
            _ => Encoder::OpenAi(wire::openai::StreamEncoder::new(
                s.id,
                s.model,
                s.created,
                s.include_usage,
            )),
        }
    }

    /// An error body in this caller's dialect.
    pub fn error_body(self, e: &ErrorParts<'_>) -> Vec<u8> {
        match self {
            Dialect::Anthropic => {
                let kind = if e.overloaded {
                    "overloaded_error"
                } else {
                    wire::anthropic::error_type_for_status(e.status)
                };
                wire::anthropic::encode_error(kind, e.message)
            }
            Dialect::Gemini => wire::gemini::encode_error(e.status, e.message),
            Dialect::Bedrock => serde_json::json!({ "message": e.message })
                .to_string()
                .into_bytes(),
            Dialect::OpenAi | Dialect::Responses => wire::openai::encode_error(
                e.message,
                openai_error_type(e.status),
                e.param,
                Some(e.code),
            ),
        }
    }

    /// The caller's own name for a canonical request field, for errors: an
    /// Anthropic caller never sent `parallel_tool_calls`, it sent
    /// `tool_choice.disable_parallel_tool_use`.
    pub fn field_name(self, canonical: &str) -> String {
        match self {
            Dialect::Anthropic => {}
            Dialect::Responses => {
                if let Some(rest) = canonical.strip_prefix("messages[") {
                    return format!("input[{rest}");
                }
                return match canonical {
                    "max_tokens" => "max_output_tokens",
                    "response_format" => "text.format",
                    "reasoning_effort" => "reasoning.effort",
                    other => other,
                }
                .to_owned();
            }
            Dialect::Gemini => return wire::gemini::field_name(canonical),
            Dialect::OpenAi | Dialect::Bedrock => return canonical.to_owned(),
        }
        match canonical {
            "parallel_tool_calls" => "tool_choice.disable_parallel_tool_use",
            "user" => "metadata.user_id",
            "reasoning_effort" => "output_config.effort",
            "response_format" => "output_config.format",
            "stop" => "stop_sequences",
            other => other,
        }
        .to_owned()
    }

    // The upstream's side.

    /// A complete upstream answer, decoded.
    pub fn decode_response(self, body: &[u8]) -> Result<chat::Response, DecodeError> {
        match self {
            Dialect::OpenAi => wire::openai::decode_response(body),
            Dialect::Anthropic => wire::anthropic::decode_response(body),
            Dialect::Gemini => wire::gemini::decode_response(body),
            Dialect::Bedrock => wire::bedrock::decode_response(body),
            // A native Responses upstream serves only Responses callers,
            // whose answers pass as they came.
            Dialect::Responses => Err(DecodeError::new(
                "",
                "a Responses answer is only ever relayed, never translated",
            )),
        }
    }

    /// The usage of an answer relayed as it came (same dialect), read
    /// without decoding the rest.
    pub fn peek_usage(self, body: &[u8]) -> Option<Usage> {
        match self {
            Dialect::Anthropic => wire::anthropic::response::peek_usage(body),
            Dialect::Responses => wire::responses::peek_usage(body),
            Dialect::Gemini => wire::gemini::response::peek_usage(body),
            Dialect::OpenAi => wire::openai::response::peek_usage(body),
            Dialect::Bedrock => wire::bedrock::peek_usage(body),
        }
    }

    /// An upstream error body: its code (or type), its message, and how
    /// long it asked to wait (Gemini's `RetryInfo`), as far as it says.
    pub fn decode_error(self, body: &[u8]) -> UpstreamErrorParts {
        match self {
            Dialect::OpenAi | Dialect::Responses => {
                wire::openai::decode_error(body).map_or((None, None, None), |(c, m)| (c, m, None))
            }
            Dialect::Anthropic => wire::anthropic::decode_error(body)
                .map_or((None, None, None), |(c, m)| (c, m, None)),
            Dialect::Gemini => wire::gemini::decode_error(body).unwrap_or((None, None, None)),
            Dialect::Bedrock => {
                wire::bedrock::decode_error(body).map_or((None, None, None), |(c, m)| (c, m, None))
            }
        }
    }

    /// Reads this upstream's stream events as canonical events.
    pub fn stream_decoder(self) -> Decoder {
        match self {
            Dialect::OpenAi => Decoder::OpenAi(Default::default()),
            Dialect::Anthropic => Decoder::Anthropic(Default::default()),
            Dialect::Gemini => Decoder::Gemini(Default::default()),
            Dialect::Bedrock => Decoder::Bedrock(Default::default()),
            Dialect::Responses => Decoder::Unrelayed,
        }
    }

    /// How a stream from `upstream` reaches a `caller` of the same dialect
    /// untranslated; `None` when the two differ (or no relay exists).
    pub fn relay(caller: Dialect, upstream: Dialect, start: &Start<'_>) -> Option<Relay> {
        match (caller, upstream) {
            (Dialect::OpenAi, Dialect::OpenAi) => Some(Relay::OpenAi(
                wire::openai::stream::Relay::new(start.include_usage),
            )),
            (Dialect::Anthropic, Dialect::Anthropic) => {
                Some(Relay::Anthropic(wire::anthropic::stream::Relay::default()))
            }
            (Dialect::Gemini, Dialect::Gemini) => Some(Relay::Gemini(Box::default())),
            (Dialect::Responses, Dialect::Responses) => {
                let echo = match start.echo {
                    Echo::Responses(e) => Some(e.clone()),
                    Echo::None => None,
                };
                Some(Relay::Responses(Box::new(wire::responses::Relay::new(
                    echo,
                ))))
            }
            _ => None,
        }
    }
}

/// What a caller in an upstream-only dialect is told (none can be one).
fn not_a_caller() -> DecodeError {
    DecodeError::new("", "Bedrock's Converse API is spoken to upstreams only")
}

/// An upstream error's code, message and requested wait in seconds.
pub type UpstreamErrorParts = (Option<String>, Option<String>, Option<f64>);

/// What an error body says, whatever the dialect renders it as.
#[derive(Debug, Clone, Copy)]
pub struct ErrorParts<'a> {
    pub status: u16,
    pub message: &'a str,
    /// A stable machine-readable code (`budget_exceeded`).
    pub code: &'a str,
    /// The request field at fault, when one is.
    pub param: Option<&'a str>,
    /// An upstream that said it is overloaded (Anthropic's 529).
    pub overloaded: bool,
}

/// OpenAI's `error.type` for a status.
fn openai_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// A same-dialect stream relay: events pass as they came, read on the way
/// for usage and the finish reason.
#[derive(Debug)]
pub enum Relay {
    OpenAi(wire::openai::stream::Relay),
    Anthropic(wire::anthropic::stream::Relay),
    Responses(Box<wire::responses::Relay>),
    Gemini(Box<wire::gemini::Relay>),
}

impl Relay {
    pub fn relay(&mut self, ev: &sse::Event, w: &mut sse::Writer) -> Result<(), StreamError> {
        match self {
            Relay::OpenAi(r) => r.relay(ev, w),
            Relay::Anthropic(r) => r.relay(ev, w),
            Relay::Responses(r) => r.relay(ev, w),
            Relay::Gemini(r) => r.relay(ev, w),
        }
    }

    /// Whether the upstream said its answer is complete.
    pub fn complete(&self) -> bool {
        match self {
            Relay::OpenAi(r) => r.done || r.finish.is_some(),
            Relay::Anthropic(r) => r.done || r.finish.is_some(),
            Relay::Responses(r) => r.done,
            Relay::Gemini(r) => r.done(),
        }
    }

    /// The upstream body ended after a complete answer: write the closing
    /// event it left out, if it did.
    pub fn finish(&mut self, w: &mut sse::Writer) {
        match self {
            Relay::OpenAi(r) => {
                if !r.done {
                    w.event(None, b"[DONE]");
                }
            }
            Relay::Anthropic(r) => {
                if !r.done {
                    w.event(Some("message_stop"), br#"{"type":"message_stop"}"#);
                }
            }
            // Complete means its terminal event was relayed; Gemini has
            // no closing marker.
            Relay::Responses(_) | Relay::Gemini(_) => {}
        }
    }

    /// Ends the stream with the terminal error `body` (rendered by
    /// [`Dialect::error_body`]).
    pub fn fail(&mut self, w: &mut sse::Writer, body: &[u8]) {
        match self {
            Relay::OpenAi(_) => wire::openai::stream::write_error(w, body),
            Relay::Anthropic(_) => wire::anthropic::stream::write_error(w, body),
            Relay::Responses(r) => r.fail(w, body),
            Relay::Gemini(_) => wire::gemini::answer::write_error(w, body),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            Relay::OpenAi(r) => r.usage,
            Relay::Anthropic(r) => r.usage(),
            Relay::Responses(r) => r.usage,
            Relay::Gemini(r) => r.usage,
        }
    }

    pub fn finish_reason(&self) -> Option<&FinishReason> {
        match self {
            Relay::OpenAi(r) => r.finish.as_ref(),
            Relay::Anthropic(r) => r.finish.as_ref(),
            Relay::Responses(r) => r.finish.as_ref(),
            Relay::Gemini(r) => r.finish.as_ref(),
        }
    }

    /// The answer's final object, for dialects whose streams end with one
    /// (a Responses stream's terminal Response).
    pub fn terminal(&self) -> Option<&str> {
        match self {
            Relay::Responses(r) => r.terminal.as_deref(),
            _ => None,
        }
    }
}

/// An upstream stream read as canonical events.
#[derive(Debug)]
pub enum Decoder {
    OpenAi(wire::openai::StreamDecoder),
    Anthropic(wire::anthropic::StreamDecoder),
    Gemini(wire::gemini::StreamDecoder),
    Bedrock(wire::bedrock::StreamDecoder),
    /// A dialect whose streams are only relayed (Responses).
    Unrelayed,
}

impl Decoder {
    pub fn decode(&mut self, ev: &sse::Event, out: &mut Vec<Event>) -> Result<(), StreamError> {
        match self {
            Decoder::OpenAi(d) => d.decode(ev, out),
            Decoder::Anthropic(d) => d.decode(ev, out),
            Decoder::Gemini(d) => d.decode(ev, out),
            Decoder::Bedrock(d) => d.decode(ev, out),
            Decoder::Unrelayed => {
                let _ = (ev, out);
                Err(StreamError::Malformed(
                    "this stream can only be relayed to a caller of its own dialect".into(),
                ))
            }
        }
    }

    /// Whether the upstream sent its terminal marker (`[DONE]`,
    /// `message_stop`); Gemini has none, its body just ends.
    pub fn done(&self) -> bool {
        match self {
            Decoder::OpenAi(d) => d.done,
            Decoder::Anthropic(d) => d.done,
            Decoder::Bedrock(d) => d.done,
            Decoder::Gemini(_) | Decoder::Unrelayed => false,
        }
    }
}

/// Canonical stream events written in a caller's dialect.
#[derive(Debug)]
pub enum Encoder {
    OpenAi(wire::openai::StreamEncoder),
    Anthropic(wire::anthropic::StreamEncoder),
    Responses(Box<wire::responses::StreamEncoder>),
    Gemini(Box<wire::gemini::StreamEncoder>),
}

impl Encoder {
    pub fn encode(&mut self, ev: &Event, w: &mut sse::Writer) {
        match self {
            Encoder::OpenAi(e) => e.encode(ev, w),
            Encoder::Anthropic(e) => e.encode(ev, w),
            Encoder::Responses(e) => e.encode(ev, w),
            Encoder::Gemini(e) => e.encode(ev, w),
        }
    }

    /// The closing events after the last canonical event.
    pub fn finish(&mut self, w: &mut sse::Writer) {
        match self {
            Encoder::OpenAi(e) => e.finish(w),
            Encoder::Anthropic(e) => e.finish(w),
            Encoder::Responses(e) => e.finish(w),
            Encoder::Gemini(e) => e.finish(w),
        }
    }

    /// Ends the stream with the terminal error `body` (rendered by
    /// [`Dialect::error_body`]).
    pub fn fail(&mut self, w: &mut sse::Writer, body: &[u8]) {
        match self {
            Encoder::OpenAi(_) => wire::openai::stream::write_error(w, body),
            Encoder::Anthropic(_) => wire::anthropic::stream::write_error(w, body),
            Encoder::Responses(e) => e.fail(w, body),
            Encoder::Gemini(_) => wire::gemini::answer::write_error(w, body),
        }
    }

    /// The answer's final object, for dialects whose streams end with one.
    pub fn terminal(&self) -> Option<&str> {
        match self {
            Encoder::Responses(e) => e.terminal(),
            _ => None,
        }
    }
}
