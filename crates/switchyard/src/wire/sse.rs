//! Server-sent events: an incremental parser for upstream streams and a
//! writer for the streams we send.
//!
//! The parser follows the WHATWG event-stream rules that matter here: lines
//! end in LF, CRLF or a lone CR (even split across reads); `:` starts a
//! comment; `data` lines join with LF; a blank line dispatches. It yields the
//! same events however the bytes are split into reads.

use bytes::{BufMut, Bytes, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` name, when the stream names its events (Anthropic), as
    /// the read holds it (see [`Event::name`]).
    pub event: Option<Bytes>,
    /// The joined `data:` lines: a slice of the read itself when the event
    /// has one data line that one read holds whole (the usual case), so
    /// most events are neither copied nor allocated.
    pub data: Bytes,
    pub id: Option<String>,
}

impl Event {
    /// The `event:` name; `None` for none, or for one that is not UTF-8
    /// (which no dialect's names are).
    pub fn name(&self) -> Option<&str> {
        self.event
            .as_deref()
            .and_then(|n| std::str::from_utf8(n).ok())
    }

    pub fn data_str(&self) -> &str {
        std::str::from_utf8(&self.data).unwrap_or("")
    }
}

/// The longest `id:` value kept.
const MAX_ID_BYTES: usize = 256;

/// The data of the event being read.
#[derive(Debug, Default)]
enum Data {
    /// No `data:` line yet.
    #[default]
    None,
    /// One line, a slice of the read it came in.
    Shared(Bytes),
    /// Lines joined, or a line that came in pieces.
    Owned(Vec<u8>),
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::None => 0,
            Data::Shared(b) => b.len(),
            Data::Owned(v) => v.len(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of a line not yet terminated.
    line: Vec<u8>,
    /// The previous read ended in CR: a LF at the start of the next read
    /// belongs to that line ending.
    after_cr: bool,
    event: Option<Bytes>,
    data: Data,
    id: Option<String>,
    /// Total bytes buffered in `line` and `data`, checked against `limit`.
    limit: usize,
}

/// An event grew past the parser's limit: the upstream is misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an upstream SSE event exceeded {0} bytes")]
pub struct TooLarge(pub usize);

impl Parser {
    /// A parser that refuses events larger than `limit` bytes.
    pub fn new(limit: usize) -> Parser {
        Parser {
            limit,
            ..Parser::default()
        }
    }

    /// Feeds one read; complete events are appended to `out`. Their data is
    /// copied: [`Parser::feed_bytes`] takes a read it can slice instead.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), TooLarge> {
        self.feed_in(chunk, None, out)
    }

    /// [`Parser::feed`] for a read held in [`Bytes`]: an event's data that
    /// this read holds whole is a slice of it, not a copy.
    pub fn feed_bytes(&mut self, chunk: &Bytes, out: &mut Vec<Event>) -> Result<(), TooLarge> {
        self.feed_in(chunk, Some(chunk), out)
    }

    /// `whole`, when given, is the `Bytes` that `chunk` is: lines read from
    /// it whole are sliced from it.
    fn feed_in(
        &mut self,
        mut chunk: &[u8],
        whole: Option<&Bytes>,
        out: &mut Vec<Event>,
    ) -> Result<(), TooLarge> {
        if self.after_cr {
            self.after_cr = false;
            if let [b'\n', rest @ ..] = chunk {
                chunk = rest;
            }
        }
        while !chunk.is_empty() {
            match memchr::memchr2(b'\n', b'\r', chunk) {
                Some(i) => {
                    let ending = chunk[i];
                    if self.line.is_empty() {
                        self.line_done(&chunk[..i], whole, out);
                    } else {
                        self.line.extend_from_slice(&chunk[..i]);
                        let line = std::mem::take(&mut self.line);
                        self.line_done(&line, None, out);
                        self.line = line;
                        self.line.clear();
                    }
                    chunk = &chunk[i + 1..];
                    if ending == b'\r' {
                        match chunk.first() {
                            Some(b'\n') => chunk = &chunk[1..],
                            Some(_) => {}
                            None => self.after_cr = true,
                        }
                    }
                }
                None => {
                    self.line.extend_from_slice(chunk);
                    chunk = &[];
                }
            }
            if self.limit > 0 && self.line.len() + self.data.len() > self.limit {
                return Err(TooLarge(self.limit));
            }
        }
        Ok(())
    }

    /// The stream ended. An event with data but no closing blank line is
    /// still dispatched: some servers end the body right after the last
    /// `data:` line.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, None, out);
        }
        self.dispatch(out);
    }

    /// One line, without its ending; `whole` is the read it is a slice of,
    /// if it is one.
    fn line_done(&mut self, line: &[u8], whole: Option<&Bytes>, out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                self.data = match std::mem::take(&mut self.data) {
                    Data::None => match whole {
                        Some(b) => Data::Shared(b.slice_ref(value)),
                        None => Data::Owned(value.to_vec()),
                    },
                    Data::Shared(first) => {
                        let mut joined = Vec::with_capacity(first.len() + 1 + value.len());
                        joined.extend_from_slice(&first);
                        joined.push(b'\n');
                        joined.extend_from_slice(value);
                        Data::Owned(joined)
                    }
                    Data::Owned(mut joined) => {
                        joined.push(b'\n');
                        joined.extend_from_slice(value);
                        Data::Owned(joined)
                    }
                };
            }
            b"event" => {
                self.event = Some(match whole {
                    Some(b) => b.slice_ref(value),
                    None => Bytes::copy_from_slice(value),
                });
            }
            // The last id is repeated on every event after it, so a long
            // one is not kept (nothing here resumes an upstream by it).
            b"id" if !value.contains(&0) && value.len() <= MAX_ID_BYTES => {
                self.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let data = match std::mem::take(&mut self.data) {
            // An event with no data is not dispatched, but its name is
            // forgotten with it.
            Data::None => {
                self.event = None;
                return;
            }
            Data::Shared(b) => b,
            Data::Owned(v) => Bytes::from(v),
        };
        out.push(Event {
            event: self.event.take(),
            data,
            id: self.id.clone(),
        });
    }
}

/// Writes outgoing events, numbering each with an `id:` so a client can
/// resume after the last one it saw.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: BytesMut,
    /// The id the next event gets.
    pub next_id: u64,
    /// Whether events carry their `id:` line (Google's SDKs read only
    /// `data:` lines and fail on any other).
    pub ids: bool,
    /// Where each event written since the last take starts in `buf`.
    starts: Vec<u32>,
}

impl Writer {
    pub fn new(first_id: u64) -> Writer {
        Writer {
            buf: BytesMut::with_capacity(1024),
            next_id: first_id,
            ids: true,
            starts: Vec::new(),
        }
    }

    pub fn event(&mut self, name: Option<&str>, data: &[u8]) {
        self.starts.push(self.buf.len() as u32);
        let id = self.ids.then_some(self.next_id);
        write_event(&mut self.buf, id, name, data);
        self.next_id += 1;
    }

    /// Takes what has been written so far.
    pub fn take(&mut self) -> bytes::Bytes {
        self.starts.clear();
        self.buf.split().freeze()
    }

    /// Takes what has been written so far, with where each event starts
    /// (so a reader can resume after any one of them). The first event's
    /// id is `next_id - starts.len()`.
    pub fn take_events(&mut self) -> (bytes::Bytes, Vec<u32>) {
        let starts = std::mem::take(&mut self.starts);
        (self.buf.split().freeze(), starts)
    }
}

/// Appends one event in wire form. `data` must not contain newlines (JSON
/// from serde never does).
pub fn write_event(buf: &mut BytesMut, id: Option<u64>, event: Option<&str>, data: &[u8]) {
    if let Some(id) = id {
        buf.put_slice(b"id: ");
        buf.put_slice(digits(id).as_bytes());
        buf.put_u8(b'\n');
    }
    if let Some(event) = event {
        buf.put_slice(b"event: ");
        buf.put_slice(event.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_slice(b"data: ");
    buf.put_slice(data);
    buf.put_slice(b"\n\n");
}

/// A number's decimal digits, written without allocating.
pub(crate) struct Digits {
    bytes: [u8; 20],
    start: usize,
}

impl Digits {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

pub(crate) fn digits(mut n: u64) -> Digits {
    let mut bytes = [0u8; 20];
    let mut i = bytes.len();
    loop {
        i -= 1;
        bytes[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { bytes, start: i }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        p.finish(&mut out);
        out
    }

    const SAMPLE: &[u8] = b"event: message_start\r\ndata: {\"a\":1}\r\n\r\n: comment\n\nevent: ping\ndata: {}\n\ndata: line1\ndata: line2\nid: 7\n\ndata:[DONE]\r\rdata: x";

    #[test]
    fn parses_named_events_comments_multiline_and_mixed_endings() {
        let out = parse_all(&[SAMPLE]);
        let got: Vec<_> = out
            .iter()
            .map(|e| (e.name(), e.data_str(), e.id.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("message_start"), "{\"a\":1}", None),
                (Some("ping"), "{}", None),
                (None, "line1\nline2", Some("7")),
                (None, "[DONE]", Some("7")),
                (None, "x", Some("7")),
            ]
        );
    }

    #[test]
    fn a_long_id_is_not_repeated_on_every_event() {
        let long = format!("id: {}\n", "9".repeat(MAX_ID_BYTES + 1));
        let input = format!("id: 1\ndata: a\n\n{long}data: b\n\ndata: c\n\n");
        let out = parse_all(&[input.as_bytes()]);
        let ids: Vec<_> = out.iter().map(|e| e.id.as_deref()).collect();
        assert_eq!(ids, [Some("1"), Some("1"), Some("1")]);
    }

    #[test]
    fn writes_events_that_parse_back() {
        let mut buf = BytesMut::new();
        write_event(
            &mut buf,
            Some(42),
            Some("message_stop"),
            b"{\"type\":\"message_stop\"}",
        );
        write_event(&mut buf, None, None, b"[DONE]");
        assert_eq!(
            &buf[..],
            b"id: 42\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\ndata: [DONE]\n\n"
        );
        let out = parse_all(&[&buf]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].id.as_deref(), Some("42"));
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut p = Parser::new(16);
        let mut out = Vec::new();
        assert_eq!(p.feed(&[b'x'; 64], &mut out), Err(TooLarge(16)));
    }

    /// `bytes` cut at `cuts` (any order, repeats allowed) into reads.
    fn split(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
        cuts.sort_unstable();
        cuts.dedup();
        let mut chunks = Vec::new();
        let mut last = 0;
        for c in cuts {
            chunks.push(&bytes[last..c]);
            last = c;
        }
        chunks.push(&bytes[last..]);
        chunks
    }

    /// The same events through `feed_bytes`, each read a `Bytes`.
    fn parse_all_bytes(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed_bytes(&Bytes::copy_from_slice(c), &mut out).unwrap();
        }
        p.finish(&mut out);
        out
    }

    #[test]
    fn an_event_read_whole_is_a_slice_of_its_read() {
        let read = Bytes::from_static(b"event: a\ndata: {\"x\":1}\n\ndata: p\ndata: q\n\n");
        let mut p = Parser::new(0);
        let mut out = Vec::new();
        p.feed_bytes(&read, &mut out).unwrap();
        assert_eq!(out[0].data, &b"{\"x\":1}"[..]);
        let inside = read.as_ptr_range();
        assert!(inside.contains(&out[0].data.as_ptr()), "not copied");
        assert_eq!(out[1].data, &b"p\nq"[..], "two lines joined");
        assert!(!inside.contains(&out[1].data.as_ptr()));
        // Empty values slice to nothing.
        let mut out = Vec::new();
        p.feed_bytes(&Bytes::from_static(b"event:\ndata:\n\n"), &mut out)
            .unwrap();
        assert_eq!((out[0].name(), &out[0].data[..]), (Some(""), &b""[..]));
    }

    proptest! {
        #[test]
        fn slices_and_copies_read_the_same_events(cuts in proptest::collection::vec(0usize..SAMPLE.len(), 0..12), bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            prop_assert_eq!(parse_all_bytes(&split(SAMPLE, cuts)), parse_all(&[SAMPLE]));
            let half = bytes.len() / 2;
            prop_assert_eq!(parse_all_bytes(&[&bytes[..half], &bytes[half..]]), parse_all(&[&bytes]));
        }

        #[test]
        fn same_events_however_the_bytes_are_split(cuts in proptest::collection::vec(0usize..SAMPLE.len(), 0..12)) {
            prop_assert_eq!(parse_all(&split(SAMPLE, cuts)), parse_all(&[SAMPLE]));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_split_invariantly(bytes in proptest::collection::vec(any::<u8>(), 0..256), cut in 0usize..256) {
            let cut = cut.min(bytes.len());
            prop_assert_eq!(parse_all(&[&bytes[..cut], &bytes[cut..]]), parse_all(&[&bytes]));
        }
    }
}
