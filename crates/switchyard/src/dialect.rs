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

use crate::chat::{self, Event, FinishReason, Usage};
use crate::wire::{self, DecodeError, Fields, StreamError, sse};

/// Which wire format a caller or an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
        }
    }

    /// The dialect [`Dialect::as_str`] named (as records and Redis keep it);
    /// anything unknown reads as OpenAI, the gateway's default.
    pub fn parse(name: &str) -> Dialect {
        match name {
            "anthropic" => Dialect::Anthropic,
            "gemini" => Dialect::Gemini,
            _ => Dialect::OpenAi,
        }
    }

    // The caller's side.

    /// A caller's request: the canonical form, and its own top-level fields
    /// for the same-dialect fast path and the cache key.
    pub fn decode_request(self, body: &[u8]) -> Result<(chat::Request, Fields<'_>), DecodeError> {
        match self {
            Dialect::Anthropic => wire::anthropic::decode_request(body),
            Dialect::OpenAi | Dialect::Gemini => wire::openai::decode_request(body),
        }
    }

    /// A complete answer in this caller's dialect.
    pub fn encode_response(self, r: &chat::Response) -> Result<Vec<u8>, DecodeError> {
        match self {
            Dialect::Anthropic => wire::anthropic::encode_response(r),
            Dialect::OpenAi | Dialect::Gemini => Ok(wire::openai::encode_response(r)),
        }
    }

    /// The id an answer carries when its upstream gave none.
    pub fn answer_id(self, request_id: &uuid::Uuid) -> String {
        match self {
            Dialect::Anthropic => format!("msg_{}", request_id.simple()),
            Dialect::OpenAi | Dialect::Gemini => format!("chatcmpl-{}", request_id.simple()),
        }
    }

    /// Writes canonical stream events in this caller's dialect. `id` and
    /// `model` name the answer until the upstream names it.
    pub fn stream_encoder(
        self,
        id: String,
        model: String,
        created: u64,
        include_usage: bool,
    ) -> Encoder {
        match self {
            Dialect::Anthropic => {
                Encoder::Anthropic(wire::anthropic::StreamEncoder::new(id, model))
            }
            Dialect::OpenAi | Dialect::Gemini => Encoder::OpenAi(wire::openai::StreamEncoder::new(
                id,
                model,
                created,
                include_usage,
            )),
        }
    }

    /// Ends a stream with the terminal error `body` (already rendered by
    /// [`Dialect::error_body`]).
    pub fn write_stream_error(self, w: &mut sse::Writer, body: &[u8]) {
        match self {
            Dialect::Anthropic => wire::anthropic::stream::write_error(w, body),
            Dialect::OpenAi | Dialect::Gemini => wire::openai::stream::write_error(w, body),
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
            Dialect::OpenAi | Dialect::Gemini => wire::openai::encode_error(
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
        if self != Dialect::Anthropic {
            return canonical.to_owned();
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
        }
    }

    /// The usage of an answer relayed as it came (same dialect), read
    /// without decoding the rest.
    pub fn peek_usage(self, body: &[u8]) -> Option<Usage> {
        match self {
            Dialect::Anthropic => wire::anthropic::response::peek_usage(body),
            Dialect::OpenAi | Dialect::Gemini => wire::openai::response::peek_usage(body),
        }
    }

    /// An upstream error body: its code (or type), its message, and how
    /// long it asked to wait (Gemini's `RetryInfo`), as far as it says.
    pub fn decode_error(self, body: &[u8]) -> UpstreamErrorParts {
        match self {
            Dialect::OpenAi => {
                wire::openai::decode_error(body).map_or((None, None, None), |(c, m)| (c, m, None))
            }
            Dialect::Anthropic => wire::anthropic::decode_error(body)
                .map_or((None, None, None), |(c, m)| (c, m, None)),
            Dialect::Gemini => wire::gemini::decode_error(body).unwrap_or((None, None, None)),
        }
    }

    /// Reads this upstream's stream events as canonical events.
    pub fn stream_decoder(self) -> Decoder {
        match self {
            Dialect::OpenAi => Decoder::OpenAi(Default::default()),
            Dialect::Anthropic => Decoder::Anthropic(Default::default()),
            Dialect::Gemini => Decoder::Gemini(Default::default()),
        }
    }

    /// How a stream from `upstream` reaches a `caller` of the same dialect
    /// untranslated; `None` when the two differ (or no relay exists).
    pub fn relay(caller: Dialect, upstream: Dialect, include_usage: bool) -> Option<Relay> {
        match (caller, upstream) {
            (Dialect::OpenAi, Dialect::OpenAi) => Some(Relay::OpenAi(
                wire::openai::stream::Relay::new(include_usage),
            )),
            (Dialect::Anthropic, Dialect::Anthropic) => {
                Some(Relay::Anthropic(wire::anthropic::stream::Relay::default()))
            }
            _ => None,
        }
    }
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
}

impl Relay {
    pub fn relay(&mut self, ev: &sse::Event, w: &mut sse::Writer) -> Result<(), StreamError> {
        match self {
            Relay::OpenAi(r) => r.relay(ev, w),
            Relay::Anthropic(r) => r.relay(ev, w),
        }
    }

    /// Whether the upstream said its answer is complete.
    pub fn complete(&self) -> bool {
        match self {
            Relay::OpenAi(r) => r.done || r.finish.is_some(),
            Relay::Anthropic(r) => r.done || r.finish.is_some(),
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
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Relay::OpenAi(_) => Dialect::OpenAi,
            Relay::Anthropic(_) => Dialect::Anthropic,
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            Relay::OpenAi(r) => r.usage,
            Relay::Anthropic(r) => r.usage(),
        }
    }

    pub fn finish_reason(&self) -> Option<&FinishReason> {
        match self {
            Relay::OpenAi(r) => r.finish.as_ref(),
            Relay::Anthropic(r) => r.finish.as_ref(),
        }
    }
}

/// An upstream stream read as canonical events.
#[derive(Debug)]
pub enum Decoder {
    OpenAi(wire::openai::StreamDecoder),
    Anthropic(wire::anthropic::StreamDecoder),
    Gemini(wire::gemini::StreamDecoder),
}

impl Decoder {
    pub fn decode(&mut self, ev: &sse::Event, out: &mut Vec<Event>) -> Result<(), StreamError> {
        match self {
            Decoder::OpenAi(d) => d.decode(ev, out),
            Decoder::Anthropic(d) => d.decode(ev, out),
            Decoder::Gemini(d) => d.decode(ev, out),
        }
    }

    /// Whether the upstream sent its terminal marker (`[DONE]`,
    /// `message_stop`); Gemini has none, its body just ends.
    pub fn done(&self) -> bool {
        match self {
            Decoder::OpenAi(d) => d.done,
            Decoder::Anthropic(d) => d.done,
            Decoder::Gemini(_) => false,
        }
    }
}

/// Canonical stream events written in a caller's dialect.
#[derive(Debug)]
pub enum Encoder {
    OpenAi(wire::openai::StreamEncoder),
    Anthropic(wire::anthropic::StreamEncoder),
}

impl Encoder {
    pub fn encode(&mut self, ev: &Event, w: &mut sse::Writer) {
        match self {
            Encoder::OpenAi(e) => e.encode(ev, w),
            Encoder::Anthropic(e) => e.encode(ev, w),
        }
    }

    /// The closing events after the last canonical event.
    pub fn finish(&mut self, w: &mut sse::Writer) {
        match self {
            Encoder::OpenAi(e) => e.finish(w),
            Encoder::Anthropic(e) => e.finish(w),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Encoder::OpenAi(_) => Dialect::OpenAi,
            Encoder::Anthropic(_) => Dialect::Anthropic,
        }
    }
}
