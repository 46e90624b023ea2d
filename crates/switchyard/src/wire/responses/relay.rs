//! A native Responses upstream's stream relayed to a Responses caller
//! event by event: read on the way for its id, usage, finish reason and
//! terminal event, its Response objects corrected by the request's echo.
//!
//! Each event is walked once for the members the relay reads
//! ([`scan::Walker`]), and a corrected Response object is spliced in where
//! the walk found it; serde reads only the small `usage` and
//! `incomplete_details` objects, and whatever the walk leaves to it (an
//! `error` event's message, escaped or repeated keys).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::echo::Echo;
use super::response;
use super::stream::error_of;
use crate::chat::{FinishReason, Usage};
use crate::wire::template::{Holes, Template};
use crate::wire::{StreamError, scan, sse};

/// A native Responses upstream's stream relayed to a Responses caller.
#[derive(Debug, Default)]
pub struct Relay {
    echo: Option<Arc<Echo>>,
    pub usage: Option<Usage>,
    pub finish: Option<FinishReason>,
    /// A terminal event was relayed.
    pub done: bool,
    /// The upstream's response id.
    pub response_id: Option<String>,
    /// The last sequence number relayed, to continue from on a failure.
    last_seq: Option<u64>,
    /// `response.created`'s object, to build `response.failed` from.
    created: Option<String>,
    /// The terminal Response object.
    pub terminal: Option<String>,
    /// `response.created` and `in_progress`, held back until the answer
    /// begins: an error straight after them can still fail over.
    held: Vec<(Option<String>, Vec<u8>)>,
    begun: bool,
    /// The last event relayed as it came, for the next (see [`Template`]).
    template: Template,
}

/// What a relayed event's template leaves as it is (its `type`, and any
/// nested one) and what it reads from a chunk that fills it.
const EVENT_HOLES: Holes = Holes::Counted {
    fixed: b"type",
    counter: b"sequence_number",
};

/// What the relay reads of one event.
#[derive(Default)]
struct Peek<'a> {
    kind: Cow<'a, str>,
    sequence_number: Option<u64>,
    /// The Response object, and where it starts in the event when the
    /// walk found it (a corrected object is spliced in there).
    response: Option<&'a [u8]>,
    response_at: Option<usize>,
    error: Option<&'a [u8]>,
    message: Option<Cow<'a, str>>,
    code: Option<Cow<'a, str>>,
}

/// serde's reading of an event, where the walk declines.
#[derive(Deserialize)]
struct PeekIn<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(default, borrow)]
    response: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
}

/// `null` is no value, as serde reads an `Option`.
fn present(raw: &[u8]) -> Option<&[u8]> {
    (raw != b"null").then_some(raw)
}

impl<'a> Peek<'a> {
    fn read(data: &'a [u8]) -> Result<Peek<'a>, StreamError> {
        if let Some(p) = Peek::walk(data) {
            return Ok(p);
        }
        let p: PeekIn = serde_json::from_slice(data)
            .map_err(|e| StreamError::Malformed(format!("not a Responses event: {e}")))?;
        Ok(Peek {
            kind: p.kind.unwrap_or_default(),
            sequence_number: p.sequence_number,
            response: p.response.map(|r| r.get().as_bytes()),
            response_at: None,
            error: p.error.map(|e| e.get().as_bytes()),
            message: p.message,
            code: p.code,
        })
    }

    fn walk(data: &'a [u8]) -> Option<Peek<'a>> {
        let mut p = Peek::default();
        let mut seen = 0u8;
        let mut w = scan::Walker::new(data);
        w.object(|k, w| {
            let bit = match k {
                b"type" => 1,
                b"sequence_number" => 2,
                b"response" => 4,
                b"error" => 8,
                // An error event's text: serde reads it (with its escapes).
                b"message" | b"code" => return None,
                _ => return w.skip(),
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            let (at, raw) = w.raw_at()?;
            match bit {
                1 => p.kind = Cow::Borrowed(scan::plain_str(raw)?),
                2 => p.sequence_number = Some(std::str::from_utf8(raw).ok()?.parse().ok()?),
                4 => {
                    p.response = present(raw);
                    p.response_at = Some(at);
                }
                _ => p.error = present(raw),
            }
            Some(())
        })?;
        w.at_end().then_some(p)
    }
}

/// What the relay reads of a Response object.
#[derive(Default)]
struct Facts<'a> {
    id: Option<Cow<'a, str>>,
    usage: Option<response::UsageIn>,
    incomplete_reason: Option<Cow<'a, str>>,
    error: Option<&'a [u8]>,
}

#[derive(Deserialize)]
struct FactsIn<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<response::UsageIn>,
    #[serde(default, borrow)]
    incomplete_details: Option<IncompleteIn<'a>>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct IncompleteIn<'a> {
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
}

impl<'a> Facts<'a> {
    fn read(object: &'a [u8]) -> Option<Facts<'a>> {
        Facts::walk(object).or_else(|| {
            let f: FactsIn = serde_json::from_slice(object).ok()?;
            Some(Facts {
                id: f.id,
                usage: f.usage,
                incomplete_reason: f.incomplete_details.and_then(|d| d.reason),
                error: f.error.map(|e| e.get().as_bytes()),
            })
        })
    }

    fn walk(object: &'a [u8]) -> Option<Facts<'a>> {
        let mut f = Facts::default();
        let mut w = scan::Walker::new(object);
        w.object(|k, w| {
            match k {
                b"id" => {
                    f.id = match present(w.raw()?) {
                        Some(raw) => Some(Cow::Borrowed(scan::plain_str(raw)?)),
                        None => None,
                    }
                }
                b"usage" => f.usage = serde_json::from_slice(w.raw()?).ok()?,
                b"incomplete_details" => {
                    let d: Option<IncompleteIn> = serde_json::from_slice(w.raw()?).ok()?;
                    f.incomplete_reason = d.and_then(|d| d.reason);
                }
                b"error" => f.error = present(w.raw()?),
                _ => return w.skip(),
            }
            Some(())
        })?;
        w.at_end().then_some(f)
    }
}

#[derive(Deserialize)]
struct ErrorIn<'a> {
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

/// What an upstream reported before the answer began (so the call can
/// still fail over): its `error` object's code (or type) and message, else
/// the event's own, else `otherwise`.
fn upstream_error<'a>(
    error: Option<&'a [u8]>,
    code: Option<Cow<'a, str>>,
    message: Option<Cow<'a, str>>,
    otherwise: &str,
) -> StreamError {
    let e = error.and_then(|e| serde_json::from_slice::<ErrorIn>(e).ok());
    let code = e
        .as_ref()
        .and_then(|e| e.code.clone().or(e.kind.clone()))
        .or(code)
        .map(Cow::into_owned);
    let message = e
        .and_then(|e| e.message)
        .or(message)
        .map_or_else(|| otherwise.to_owned(), Cow::into_owned);
    StreamError::Upstream {
        status: code.as_deref().map_or(500, status_for),
        kind: code,
        message,
    }
}

/// The HTTP status an in-stream error code means.
fn status_for(code: &str) -> u16 {
    match code {
        "rate_limit_exceeded" | "insufficient_quota" | "rate_limit_error" => 429,
        "server_is_overloaded" | "overloaded" => 503,
        "invalid_prompt" | "invalid_request_error" => 400,
        _ => 500,
    }
}

impl Relay {
    pub fn new(echo: Option<Arc<Echo>>) -> Relay {
        Relay {
            echo,
            ..Relay::default()
        }
    }

    /// A lifecycle event with its Response object corrected, and that
    /// object.
    fn corrected(&self, data: &[u8], p: &Peek<'_>) -> Option<(Vec<u8>, Vec<u8>)> {
        let echo = self.echo.as_ref()?;
        let object = p.response?;
        let fixed = echo.correct_bytes(object)?;
        if let Some(at) = p.response_at {
            let end = at + object.len();
            let mut event = Vec::with_capacity(data.len() + fixed.len() - object.len());
            event.extend_from_slice(&data[..at]);
            event.extend_from_slice(&fixed);
            event.extend_from_slice(&data[end..]);
            return Some((event, fixed));
        }
        let mut m: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(data).ok()?;
        m.insert("response".into(), serde_json::from_slice(&fixed).ok()?);
        Some((serde_json::to_vec(&m).ok()?, fixed))
    }

    pub fn relay(&mut self, ev: &sse::Event, w: &mut sse::Writer) -> Result<(), StreamError> {
        if ev.data[..] == *b"[DONE]" {
            return Ok(());
        }
        // Most events of an answer (its text deltas) are the one before
        // with other strings and the next sequence number: of the same
        // kind, relayed as they came.
        if self.begun
            && let Some(seq) = self.template.fill(&ev.data)
        {
            if let Some(n) = std::str::from_utf8(seq).ok().and_then(|s| s.parse().ok()) {
                self.last_seq = Some(n);
            }
            w.event(ev.name(), &ev.data);
            return Ok(());
        }
        let p = Peek::read(&ev.data)?;
        let kind = &*p.kind;
        let lifecycle = match kind {
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(r) = p.response {
                    if let Some(f) = Facts::read(r) {
                        self.response_id = f.id.map(Cow::into_owned);
                    }
                    if kind == "response.created" {
                        self.created = std::str::from_utf8(r).ok().map(str::to_owned);
                    }
                }
                true
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let facts = p.response.and_then(Facts::read);
                if kind == "response.failed" && !self.begun {
                    let error = facts.as_ref().and_then(|f| f.error);
                    return Err(upstream_error(error, None, None, "the response failed"));
                }
                if let Some(f) = facts {
                    self.usage = f.usage.map(response::UsageIn::canonical);
                    self.finish = Some(match f.incomplete_reason.as_deref() {
                        Some("max_output_tokens") => FinishReason::Length,
                        Some("content_filter") => FinishReason::ContentFilter,
                        _ => FinishReason::Stop,
                    });
                }
                self.terminal = p
                    .response
                    .and_then(|r| std::str::from_utf8(r).ok())
                    .map(str::to_owned);
                self.done = true;
                true
            }
            "error" if !self.begun => {
                return Err(upstream_error(
                    p.error,
                    p.code.clone(),
                    p.message.clone(),
                    "the upstream reported an error",
                ));
            }
            _ => false,
        };
        if let Some(n) = p.sequence_number {
            self.last_seq = Some(n);
        }
        let data = match lifecycle.then(|| self.corrected(&ev.data, &p)).flatten() {
            Some((d, object)) => {
                if self.done {
                    self.terminal = String::from_utf8(object).ok();
                }
                Cow::Owned(d)
            }
            None => Cow::Borrowed(&ev.data[..]),
        };
        if !self.begun {
            if matches!(
                kind,
                "response.created" | "response.in_progress" | "response.queued"
            ) {
                self.held
                    .push((ev.name().map(str::to_owned), data.into_owned()));
                return Ok(());
            }
            self.begun = true;
            for (name, data) in self.held.drain(..) {
                w.event(name.as_deref(), &data);
            }
        }
        // Deltas come many in a row, the other events once each: only a
        // delta is worth a template.
        if !lifecycle && kind.ends_with(".delta") {
            self.template.set(&ev.data, None, EVENT_HOLES);
        }
        w.event(ev.name(), &data);
        Ok(())
    }

    /// The stream failed after it began: an `error` event and
    /// `response.failed`, numbered on from the upstream's last event.
    pub fn fail(&mut self, w: &mut sse::Writer, body: &[u8]) {
        for (name, data) in self.held.drain(..) {
            w.event(name.as_deref(), &data);
        }
        let mut seq = self.last_seq.map_or(0, |n| n + 1);
        let error = error_of(body);
        w.event(
            Some("error"),
            format!(r#"{{"type":"error","error":{error},"sequence_number":{seq}}}"#).as_bytes(),
        );
        seq += 1;
        let mut object: serde_json::Value = self
            .created
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_else(
                || serde_json::json!({"id": self.response_id, "object": "response", "output": []}),
            );
        object["status"] = "failed".into();
        object["error"] = serde_json::from_str(&error).unwrap_or(serde_json::Value::Null);
        let o = object.to_string();
        let o = self.echo.as_ref().and_then(|e| e.correct(&o)).unwrap_or(o);
        w.event(
            Some("response.failed"),
            format!(r#"{{"type":"response.failed","response":{o},"sequence_number":{seq}}}"#)
                .as_bytes(),
        );
        self.terminal = Some(o);
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> Relay {
        let body = br#"{"model":"m","input":"hi"}"#;
        let (req, fields) = super::super::decode_request(body).unwrap();
        Relay::new(Some(Arc::new(Echo::new(
            "resp_ours".into(),
            &fields,
            &req,
            true,
        ))))
    }

    fn event(data: &str) -> sse::Event {
        let mut p = sse::Parser::new(1 << 20);
        let mut out = Vec::new();
        p.feed(format!("data: {data}\n\n").as_bytes(), &mut out)
            .unwrap();
        out.pop().unwrap()
    }

    /// An event the walk declines (an escaped key) is read by serde and
    /// relayed with the same correction.
    #[test]
    fn escaped_keys_are_read_by_serde_and_corrected_alike() {
        let mut written = Vec::new();
        for key in ["type", "\\u0074ype"] {
            let mut r = relay();
            let mut w = sse::Writer::new(0);
            let created = format!(
                r#"{{"{key}":"response.created","response":{{"id":"resp_up","status":"in_progress"}},"sequence_number":0}}"#
            );
            r.relay(&event(&created), &mut w).unwrap();
            r.relay(
                &event(r#"{"type":"response.output_text.delta","delta":"a","sequence_number":1}"#),
                &mut w,
            )
            .unwrap();
            assert_eq!(r.response_id.as_deref(), Some("resp_up"));
            let out = String::from_utf8(w.take().to_vec()).unwrap();
            let first = out.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let v: serde_json::Value = serde_json::from_str(first).unwrap();
            assert_eq!(v["response"]["id"], "resp_ours");
            assert_eq!(v["response"]["store"], true);
            written.push(v);
        }
        assert_eq!(written[0]["response"], written[1]["response"]);
    }

    /// Errors before the answer began come back as the upstream's, with
    /// the status their code means; after it began, they are relayed.
    #[test]
    fn errors_before_the_answer_are_the_upstreams() {
        let failed = |data: &str| match relay().relay(&event(data), &mut sse::Writer::new(0)) {
            Err(StreamError::Upstream {
                status,
                kind,
                message,
            }) => (status, kind, message),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            failed(
                r#"{"type":"error","code":"rate_limit_exceeded","message":"slow \"down\"","sequence_number":2}"#
            ),
            (
                429,
                Some("rate_limit_exceeded".into()),
                "slow \"down\"".into()
            )
        );
        assert_eq!(
            failed(r#"{"type":"error","error":{"type":"server_is_overloaded","message":"busy"}}"#),
            (503, Some("server_is_overloaded".into()), "busy".into())
        );
        assert_eq!(
            failed(
                r#"{"type":"response.failed","response":{"id":"r","error":{"code":"invalid_prompt","message":"no"}}}"#
            ),
            (400, Some("invalid_prompt".into()), "no".into())
        );
        assert_eq!(
            failed(r#"{"type":"response.failed","response":{"id":"r","error":null}}"#),
            (500, None, "the response failed".into())
        );
        assert!(matches!(
            relay().relay(&event("[1]"), &mut sse::Writer::new(0)),
            Err(StreamError::Malformed(_))
        ));
        let mut r = relay();
        let mut w = sse::Writer::new(0);
        r.relay(
            &event(r#"{"type":"response.output_text.delta","delta":"a","sequence_number":0}"#),
            &mut w,
        )
        .unwrap();
        r.relay(
            &event(r#"{"type":"error","code":"x","message":"late"}"#),
            &mut w,
        )
        .unwrap();
        assert!(
            String::from_utf8(w.take().to_vec())
                .unwrap()
                .contains("late")
        );
    }

    /// Text deltas like the one before are relayed as they came, their
    /// sequence numbers counted; the events around them are read as
    /// before.
    #[test]
    fn deltas_like_the_last_are_relayed_as_they_came_and_counted() {
        let delta = |seq: u32, text: &str, pad: &str| {
            format!(
                r#"{{"type":"response.output_text.delta","sequence_number":{seq},"item_id":"msg_1","output_index":0,"content_index":0,"delta":"{text}","logprobs":[],"obfuscation":"{pad}"}}"#
            )
        };
        let mut r = relay();
        let mut w = sse::Writer::new(0);
        let created = r#"{"type":"response.created","response":{"id":"resp_up","status":"in_progress"},"sequence_number":0}"#;
        r.relay(&event(created), &mut w).unwrap();
        let deltas = [
            delta(1, "Hel", "a"),
            delta(2, "lo", "bcd"),
            delta(3, r#"\"q\""#, ""),
            delta(4, " there", "Zz9"),
            delta(5, "!", "Q"),
        ];
        for d in &deltas {
            r.relay(&event(d), &mut w).unwrap();
        }
        assert_eq!(r.last_seq, Some(5));
        // The last delta is the template the next fills, its number read.
        assert_eq!(
            r.template.fill(delta(6, "x", "y").as_bytes()),
            Some(&b"6"[..])
        );
        let completed = r#"{"type":"response.completed","response":{"id":"resp_up","status":"completed","usage":{"input_tokens":5,"output_tokens":4,"total_tokens":9}},"sequence_number":6}"#;
        r.relay(&event(completed), &mut w).unwrap();
        assert_eq!(r.last_seq, Some(6));
        assert!(r.done);
        assert_eq!(r.usage.map(|u| u.output_tokens), Some(4));
        let out = String::from_utf8(w.take().to_vec()).unwrap();
        for d in &deltas {
            assert!(out.contains(&format!("data: {d}\n")), "{d} in {out}");
        }
    }

    proptest::proptest! {
        /// An event that fills the template of a delta is read as one of
        /// its kind with the number in its hole, whatever its strings hold
        /// or wherever it differs by a byte.
        #[test]
        fn a_template_fill_is_what_the_peek_reads(
            text in "[a-z :{}\",\\\\\né]{0,6}",
            seq in "[0-9a-]{0,4}",
            mutation in crate::wire::template::mutation(),
        ) {
            let delta = |seq: &str, text: &str| {
                format!(r#"{{"type":"response.output_text.delta","sequence_number":{seq},"item_id":"msg_1","delta":"{text}","obfuscation":"x"}}"#)
            };
            let base = delta("7", "Hi");
            let t = Template::of(base.as_bytes(), None, EVENT_HOLES).unwrap();
            let c = crate::wire::template::mutated(delta(&seq, &text), mutation);
            if let Some(n) = t.fill(&c) {
                let p = Peek::read(&c).unwrap();
                proptest::prop_assert_eq!(&*p.kind, "response.output_text.delta");
                let n: u64 = std::str::from_utf8(n).unwrap().parse().unwrap();
                proptest::prop_assert_eq!(p.sequence_number, Some(n));
                proptest::prop_assert!(p.response.is_none() && p.error.is_none());
            }
        }
    }
}
