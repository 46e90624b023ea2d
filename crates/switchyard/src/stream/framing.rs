//! How an upstream's stream body is cut into events: SSE lines for most,
//! AWS event stream frames for Bedrock. Either way the translator gets
//! [`sse::Event`]s: a Bedrock frame becomes one named by its `:event-type`,
//! its JSON payload as the data; an exception frame (which Bedrock sends
//! inside a 200) becomes the stream's error.

use bytes::Bytes;

use crate::dialect::Dialect;
use crate::wire::bedrock::eventstream::{self, MessageKind};
use crate::wire::{StreamError, sse};

/// Largest single upstream event (SSE event or frame) accepted.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug)]
pub enum Framing {
    Sse(sse::Parser),
    EventStream(eventstream::Decoder),
}

impl Framing {
    /// The framing of `upstream`'s streams.
    pub fn of(upstream: Dialect) -> Framing {
        match upstream {
            Dialect::Bedrock => {
                Framing::EventStream(eventstream::Decoder::with_max_frame_len(MAX_EVENT_BYTES))
            }
            _ => Framing::Sse(sse::Parser::new(MAX_EVENT_BYTES)),
        }
    }

    /// Adds the events `bytes` complete to `out`; an error after the ones
    /// before it.
    pub fn feed(&mut self, bytes: &Bytes, out: &mut Vec<sse::Event>) -> Result<(), StreamError> {
        match self {
            Framing::Sse(p) => p
                .feed_bytes(bytes, out)
                .map_err(|e| StreamError::Malformed(e.to_string())),
            Framing::EventStream(d) => {
                d.push(bytes);
                while let Some(m) = d
                    .next_frame()
                    .map_err(|e| StreamError::Malformed(e.to_string()))?
                {
                    if let Some(ev) = event_of(m)? {
                        out.push(ev);
                    }
                }
                Ok(())
            }
        }
    }

    /// The body ended: what the last bytes complete, or an error for a
    /// frame cut short.
    pub fn finish(&mut self, out: &mut Vec<sse::Event>) -> Result<(), StreamError> {
        match self {
            Framing::Sse(p) => {
                p.finish(out);
                Ok(())
            }
            Framing::EventStream(d) => d
                .finish()
                .map_err(|e| StreamError::Malformed(e.to_string())),
        }
    }
}

/// One frame as an event, or the error it reports; `None` for a frame of a
/// kind that carries nothing for the caller.
fn event_of(m: eventstream::Message) -> Result<Option<sse::Event>, StreamError> {
    match m.kind() {
        MessageKind::Event { event_type } => Ok(Some(sse::Event {
            event: Some(Bytes::copy_from_slice(event_type.as_bytes())),
            data: m.payload.clone(),
            id: None,
        })),
        MessageKind::Exception { exception_type } => Err(StreamError::Upstream {
            status: exception_status(exception_type),
            kind: Some(exception_type.to_owned()),
            message: payload_message(&m.payload)
                .unwrap_or_else(|| format!("the stream reported {exception_type}")),
        }),
        MessageKind::Error { code, message } => Err(StreamError::Upstream {
            status: 500,
            kind: Some(code.to_owned()),
            message: message.map_or_else(|| format!("the stream reported {code}"), str::to_owned),
        }),
        MessageKind::Unrecognized { .. } => Ok(None),
    }
}

/// The HTTP status Bedrock gives each exception when it is not in a stream
/// (which decides whether it fails over before the caller saw anything).
fn exception_status(exception_type: &str) -> u16 {
    match exception_type {
        "throttlingException" => 429,
        "serviceUnavailableException" => 503,
        "modelTimeoutException" => 408,
        "validationException" => 400,
        "modelStreamErrorException" => 424,
        _ => 500,
    }
}

/// `{"message": "..."}` (or `Message`), as Bedrock's exceptions carry it.
fn payload_message(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("message")
        .or_else(|| v.get("Message"))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_named_events_and_exceptions_errors() {
        let mut f = Framing::of(Dialect::Bedrock);
        let mut bytes = eventstream::encode_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        );
        bytes.extend(eventstream::encode_exception(
            "throttlingException",
            br#"{"message":"Too many tokens, please wait before trying again."}"#,
        ));
        let mut out = Vec::new();
        // Split mid-frame: nothing until the first frame is whole.
        f.feed(&Bytes::copy_from_slice(&bytes[..10]), &mut out)
            .unwrap();
        assert!(out.is_empty());
        let err = f
            .feed(&Bytes::copy_from_slice(&bytes[10..]), &mut out)
            .unwrap_err();
        assert_eq!(out.len(), 1, "the event before the exception is kept");
        assert_eq!(out[0].name(), Some("contentBlockDelta"));
        assert!(matches!(
            err,
            StreamError::Upstream { status: 429, ref kind, ref message }
                if kind.as_deref() == Some("throttlingException") && message.starts_with("Too many tokens")
        ));
    }

    #[test]
    fn a_corrupt_or_cut_frame_is_malformed() {
        let mut bytes = eventstream::encode_event("messageStop", br#"{"stopReason":"end_turn"}"#);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let mut out = Vec::new();
        let mut f = Framing::of(Dialect::Bedrock);
        assert!(matches!(
            f.feed(&Bytes::from(bytes), &mut out),
            Err(StreamError::Malformed(_))
        ));
        let whole = eventstream::encode_event("messageStop", br#"{"stopReason":"end_turn"}"#);
        let mut f = Framing::of(Dialect::Bedrock);
        f.feed(&Bytes::copy_from_slice(&whole[..whole.len() - 3]), &mut out)
            .unwrap();
        assert!(matches!(f.finish(&mut out), Err(StreamError::Malformed(_))));
    }
}
