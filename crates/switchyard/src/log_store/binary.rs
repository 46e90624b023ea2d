//! The binary spool frames of a call's begin and end, and of a stored
//! response: what every call writes on its way, so it costs a few hundred
//! instructions to write and to read back, where a JSON line cost tens of
//! thousands.
//!
//! A frame is `0x01`, the payload's length (4 bytes, little-endian), the
//! payload, and a newline. No JSON line starts with `0x01`, so segments
//! that mix frames and the JSON lines of earlier versions (and of the rarer
//! entries, which stay JSON) read as before; the closing newline tells a
//! torn frame from a whole one as it does for a line.
//!
//! The payload is the phase (`B`, `E` or `R`), a format version, then each field
//! in order: integers as LEB128 (signed ones zigzagged), floats as 8 bytes,
//! strings as a length and their bytes, an `Option` as a 0/1 byte and then
//! its value. The metadata goes as its JSON text (any JSON value may be a
//! tag's), and `{}` is read back without parsing.

use crate::config::LogMode;
use crate::routing::{Attempt, Excluded};

use super::{Begin, End};
use crate::conversations::store::{ItemRow, Row};

/// The first byte of a binary frame.
pub(super) const MARKER: u8 = 0x01;
/// Marker and length.
pub(super) const HEADER: usize = 5;
const VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
#[error("bad binary spool frame: {0}")]
pub(super) struct BadFrame(&'static str);

/// The frame of `b`.
pub(super) fn begin(b: &Begin) -> Vec<u8> {
    let mut w = Writer::frame(
        b'B',
        96 + b.id.len() + b.request_body.as_ref().map_or(0, String::len),
    );
    w.str(&b.id);
    w.int(b.time_ms);
    w.str(&b.instance);
    w.opt(b.key_id.as_deref(), Writer::str);
    w.opt(b.route.as_deref(), Writer::str);
    w.str(&b.requested_model);
    w.str(&b.dialect);
    w.byte(u8::from(b.stream));
    w.byte(match b.log_mode {
        LogMode::None => 0,
        LogMode::Metadata => 1,
        LogMode::Full => 2,
    });
    w.uint(b.est_input_tokens);
    if b.metadata.is_empty() {
        w.str("{}");
    } else {
        // A map of JSON values always serializes.
        w.str(&serde_json::to_string(&b.metadata).unwrap_or_else(|_| "{}".into()));
    }
    w.opt(b.request_body.as_deref(), Writer::str);
    w.opt(b.hold_usd, Writer::float);
    w.opt(b.trace_id.as_deref(), Writer::str);
    w.finish()
}

/// The frame of `e`.
pub(super) fn end(e: &End) -> Vec<u8> {
    let mut w = Writer::frame(b'E', 160 + e.response_body.as_ref().map_or(0, String::len));
    w.str(&e.id);
    w.int(e.time_ms);
    w.opt(e.provider.as_deref(), Writer::str);
    w.opt(e.model.as_deref(), Writer::str);
    w.uint(u64::from(e.status));
    w.opt(e.error_class.as_deref(), Writer::str);
    w.float(e.latency_ms);
    w.opt(e.ttft_ms, Writer::float);
    for n in [
        e.input_tokens,
        e.output_tokens,
        e.cached_tokens,
        e.reasoning_tokens,
    ] {
        w.opt(n, Writer::uint);
    }
    w.opt(e.usage_source.as_deref(), Writer::str);
    w.opt(e.cost_usd, Writer::float);
    w.opt(e.saved_usd, Writer::float);
    w.opt(e.price_version.as_deref(), Writer::str);
    w.str(&e.cache);
    w.uint(e.attempts.len() as u64);
    for a in &e.attempts {
        w.str(&a.target);
        w.opt(a.jurisdiction.as_deref(), Writer::str);
        w.float(a.start_ms);
        w.float(a.duration_ms);
        w.str(&a.outcome);
        w.opt(a.error_class.as_deref(), Writer::str);
        w.opt(a.status.map(u64::from), Writer::uint);
    }
    w.uint(e.excluded.len() as u64);
    for x in &e.excluded {
        w.str(&x.target);
        w.opt(x.jurisdiction.as_deref(), Writer::str);
        w.str(&x.reason);
    }
    w.opt(e.response_body.as_deref(), Writer::str);
    w.finish()
}

/// The frame of a stored response: its items' JSON goes as text, as it
/// was kept (and is stored).
pub(super) fn response(r: &Row) -> Vec<u8> {
    let items: usize = r
        .items
        .iter()
        .map(|i| i.item.len() + i.item_id.len() + 4)
        .sum();
    let mut w = Writer::frame(b'R', 128 + r.response.len() + items);
    w.str(&r.id);
    w.str(&r.owner);
    w.int(r.created_ms);
    w.int(r.expires_ms);
    w.opt(r.previous_id.as_deref(), Writer::str);
    w.str(&r.requested_model);
    w.opt(r.provider.as_deref(), Writer::str);
    w.opt(r.model.as_deref(), Writer::str);
    w.str(&r.request_id);
    w.str(&r.response);
    w.uint(r.items.len() as u64);
    for i in &r.items {
        w.str(&i.item_id);
        w.byte(u8::from(i.is_output));
        w.str(&i.item);
    }
    w.finish()
}

/// What a frame holds.
pub(super) enum Decoded {
    Begin(Begin),
    End(End),
    Response(Row),
}

/// Reads a frame, without its closing newline.
pub(super) fn decode(frame: &[u8]) -> Result<Decoded, BadFrame> {
    let (head, payload) = frame.split_at_checked(HEADER).ok_or(BadFrame("short"))?;
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if head[0] != MARKER || payload.len() != len {
        return Err(BadFrame("length"));
    }
    let mut r = Reader(payload);
    let phase = r.byte()?;
    if r.byte()? != VERSION {
        return Err(BadFrame("unknown version"));
    }
    let out = match phase {
        b'B' => Decoded::Begin(Begin {
            id: r.string()?,
            time_ms: r.int()?,
            instance: r.string()?,
            key_id: r.opt(Reader::string)?,
            route: r.opt(Reader::string)?,
            requested_model: r.string()?,
            dialect: r.string()?,
            stream: r.byte()? != 0,
            log_mode: match r.byte()? {
                0 => LogMode::None,
                1 => LogMode::Metadata,
                2 => LogMode::Full,
                _ => return Err(BadFrame("log mode")),
            },
            est_input_tokens: r.uint()?,
            metadata: match r.str()? {
                "{}" => serde_json::Map::new(),
                json => serde_json::from_str(json).map_err(|_| BadFrame("metadata"))?,
            },
            request_body: r.opt(Reader::string)?,
            hold_usd: r.opt(Reader::float)?,
            trace_id: r.opt(Reader::string)?,
        }),
        b'E' => Decoded::End(End {
            id: r.string()?,
            time_ms: r.int()?,
            provider: r.opt(Reader::string)?,
            model: r.opt(Reader::string)?,
            status: u16::try_from(r.uint()?).map_err(|_| BadFrame("status"))?,
            error_class: r.opt(Reader::string)?,
            latency_ms: r.float()?,
            ttft_ms: r.opt(Reader::float)?,
            input_tokens: r.opt(Reader::uint)?,
            output_tokens: r.opt(Reader::uint)?,
            cached_tokens: r.opt(Reader::uint)?,
            reasoning_tokens: r.opt(Reader::uint)?,
            usage_source: r.opt(Reader::string)?,
            cost_usd: r.opt(Reader::float)?,
            saved_usd: r.opt(Reader::float)?,
            price_version: r.opt(Reader::string)?,
            cache: r.string()?,
            attempts: {
                let n = r.count()?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(Attempt {
                        target: r.string()?,
                        jurisdiction: r.opt(Reader::string)?,
                        start_ms: r.float()?,
                        duration_ms: r.float()?,
                        outcome: r.string()?,
                        error_class: r.opt(Reader::string)?,
                        status: match r.opt(Reader::uint)? {
                            Some(s) => Some(u16::try_from(s).map_err(|_| BadFrame("status"))?),
                            None => None,
                        },
                        span_id: [0; 8],
                    });
                }
                v
            },
            excluded: {
                let n = r.count()?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(Excluded {
                        target: r.string()?,
                        jurisdiction: r.opt(Reader::string)?,
                        reason: r.string()?,
                    });
                }
                v
            },
            response_body: r.opt(Reader::string)?,
        }),
        b'R' => Decoded::Response(Row {
            id: r.string()?,
            owner: r.string()?,
            created_ms: r.int()?,
            expires_ms: r.int()?,
            previous_id: r.opt(Reader::string)?,
            requested_model: r.string()?,
            provider: r.opt(Reader::string)?,
            model: r.opt(Reader::string)?,
            request_id: r.string()?,
            response: r.string()?,
            items: {
                let n = r.count()?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(ItemRow {
                        item_id: r.string()?,
                        is_output: match r.byte()? {
                            0 => false,
                            1 => true,
                            _ => return Err(BadFrame("is_output")),
                        },
                        item: r.string()?,
                    });
                }
                v
            },
        }),
        _ => return Err(BadFrame("phase")),
    };
    if !r.0.is_empty() {
        return Err(BadFrame("trailing bytes"));
    }
    Ok(out)
}

struct Writer(Vec<u8>);

impl Writer {
    fn frame(phase: u8, capacity: usize) -> Writer {
        let mut v = Vec::with_capacity(capacity);
        v.extend_from_slice(&[MARKER, 0, 0, 0, 0, phase, VERSION]);
        Writer(v)
    }

    /// The frame: its length filled in, its newline added.
    fn finish(mut self) -> Vec<u8> {
        let len = (self.0.len() - HEADER) as u32;
        self.0[1..HEADER].copy_from_slice(&len.to_le_bytes());
        self.0.push(b'\n');
        self.0
    }

    fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    fn uint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn int(&mut self, v: i64) {
        self.uint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn float(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.uint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    /// A 0/1 byte, then the value (written by `put`) when there is one.
    fn opt<T>(&mut self, v: Option<T>, put: impl FnOnce(&mut Self, T)) {
        match v {
            Some(v) => {
                self.byte(1);
                put(self, v);
            }
            None => self.byte(0),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadFrame> {
        let (a, b) = self.0.split_at_checked(n).ok_or(BadFrame("truncated"))?;
        self.0 = b;
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8, BadFrame> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self) -> Result<u64, BadFrame> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(BadFrame("varint"))
    }

    fn int(&mut self) -> Result<i64, BadFrame> {
        let u = self.uint()?;
        Ok((u >> 1) as i64 ^ -((u & 1) as i64))
    }

    /// A length that cannot be more than the bytes left.
    fn count(&mut self) -> Result<usize, BadFrame> {
        let n = self.uint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.0.len())
            .ok_or(BadFrame("length"))
    }

    fn float(&mut self) -> Result<f64, BadFrame> {
        let b = self.take(8)?;
        Ok(f64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    fn str(&mut self) -> Result<&'a str, BadFrame> {
        let n = self.count()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| BadFrame("not UTF-8"))
    }

    fn string(&mut self) -> Result<String, BadFrame> {
        self.str().map(str::to_owned)
    }

    /// A 0/1 byte, then the value (read by `get`) when there is one.
    fn opt<T>(
        &mut self,
        get: impl FnOnce(&mut Self) -> Result<T, BadFrame>,
    ) -> Result<Option<T>, BadFrame> {
        match self.byte()? {
            0 => Ok(None),
            1 => get(self).map(Some),
            _ => Err(BadFrame("option")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full_begin() -> Begin {
        let mut metadata = serde_json::Map::new();
        metadata.insert("team".into(), "search".into());
        metadata.insert("n".into(), serde_json::json!([1, {"deep": null}]));
        Begin {
            id: "req_0193\u{e9}".into(),
            time_ms: -5,
            instance: "i-1".into(),
            key_id: Some("key_1".into()),
            route: Some("fast".into()),
            requested_model: "openai/gpt-4o".into(),
            dialect: "anthropic".into(),
            stream: true,
            log_mode: LogMode::Full,
            est_input_tokens: u64::MAX,
            metadata,
            // Bytes a line-based reader would trip on.
            request_body: Some("{\"a\":\"\n\u{1}\"}".into()),
            hold_usd: Some(0.25),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        }
    }

    fn full_end() -> End {
        End {
            id: "req_1".into(),
            time_ms: i64::MAX,
            provider: Some("openai".into()),
            model: Some("gpt-4o".into()),
            status: 529,
            error_class: Some("overloaded".into()),
            latency_ms: 12.5,
            ttft_ms: Some(3.25),
            input_tokens: Some(0),
            output_tokens: Some(300),
            cached_tokens: None,
            reasoning_tokens: Some(1 << 40),
            usage_source: Some("reported".into()),
            cost_usd: Some(1e-9),
            saved_usd: None,
            price_version: Some("2026-12-01".into()),
            cache: "MISS".into(),
            attempts: vec![
                Attempt {
                    target: "a/m".into(),
                    jurisdiction: Some("eu".into()),
                    start_ms: 0.0,
                    duration_ms: 1.5,
                    outcome: "error".into(),
                    error_class: Some("rate_limited".into()),
                    status: Some(429),
                    span_id: [0; 8],
                },
                Attempt {
                    target: "b/m".into(),
                    jurisdiction: None,
                    start_ms: 1.5,
                    duration_ms: 10.0,
                    outcome: "ok".into(),
                    error_class: None,
                    status: None,
                    span_id: [0; 8],
                },
            ],
            excluded: vec![Excluded {
                target: "c/m".into(),
                jurisdiction: Some("us".into()),
                reason: "jurisdiction".into(),
            }],
            response_body: Some("\n".into()),
        }
    }

    fn unframed(mut f: Vec<u8>) -> Vec<u8> {
        assert_eq!(f.pop(), Some(b'\n'));
        f
    }

    #[test]
    fn begins_and_ends_round_trip() {
        let b = full_begin();
        let frame = unframed(begin(&b));
        assert_eq!(frame[0], MARKER);
        match decode(&frame).unwrap() {
            Decoded::Begin(back) => assert_eq!(back, b),
            _ => panic!("phase"),
        }
        let e = full_end();
        match decode(&unframed(end(&e))).unwrap() {
            Decoded::End(back) => assert_eq!(back, e),
            _ => panic!("phase"),
        }
        let empty = End::default();
        match decode(&unframed(end(&empty))).unwrap() {
            Decoded::End(back) => assert_eq!(back, empty),
            _ => panic!("phase"),
        }
    }

    fn full_response() -> Row {
        Row {
            id: "resp_1".into(),
            owner: "key_1".into(),
            created_ms: 1,
            expires_ms: i64::MAX,
            previous_id: Some("resp_0".into()),
            requested_model: "fast".into(),
            provider: Some("openai".into()),
            model: None,
            request_id: "req_1".into(),
            response: r#"{"id":"resp_1","output":[{"id":"msg_1"}],"note":"\n"}"#.into(),
            items: vec![
                ItemRow {
                    item_id: "in_1".into(),
                    is_output: false,
                    item: "{\"id\":\"in_1\",\"text\":\"a\nb\"}".into(),
                },
                ItemRow {
                    item_id: String::new(),
                    is_output: true,
                    item: "{}".into(),
                },
            ],
        }
    }

    #[test]
    fn stored_responses_round_trip() {
        for r in [
            full_response(),
            Row {
                items: Vec::new(),
                previous_id: None,
                ..full_response()
            },
        ] {
            match decode(&unframed(response(&r))).unwrap() {
                Decoded::Response(back) => assert_eq!(back, r),
                _ => panic!("phase"),
            }
        }
    }

    #[test]
    fn a_frame_cut_anywhere_or_padded_is_refused() {
        let frame = unframed(end(&full_end()));
        for n in 0..frame.len() {
            assert!(decode(&frame[..n]).is_err(), "cut at {n}");
        }
        let frame = unframed(response(&full_response()));
        for n in 0..frame.len() {
            assert!(decode(&frame[..n]).is_err(), "cut at {n}");
        }
        let mut long = frame.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        // The length agrees but the payload has a byte too many.
        let mut padded = frame.clone();
        padded.push(0);
        let len = (padded.len() - HEADER) as u32;
        padded[1..HEADER].copy_from_slice(&len.to_le_bytes());
        assert!(decode(&padded).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_err_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut frame = vec![MARKER];
            frame.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            frame.extend_from_slice(&bytes);
            let _ = decode(&frame);
            let _ = decode(&bytes);
        }

        #[test]
        fn integers_round_trip(u in any::<u64>(), i in any::<i64>()) {
            let mut w = Writer(Vec::new());
            w.uint(u);
            w.int(i);
            let mut r = Reader(&w.0);
            prop_assert_eq!(r.uint().unwrap(), u);
            prop_assert_eq!(r.int().unwrap(), i);
            prop_assert!(r.0.is_empty());
        }
    }
}
