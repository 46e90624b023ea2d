//! AWS event stream framing (`application/vnd.amazon.eventstream`): the
//! binary frames Bedrock's streaming APIs (`ConverseStream`,
//! `InvokeModelWithResponseStream`) send instead of server-sent events.
//!
//! A frame, all integers big-endian:
//!
//! ```text
//! total length   u32  the whole frame, these 4 bytes and the final CRC included
//! headers length u32  bytes of the headers section
//! prelude CRC    u32  CRC-32 of the 8 bytes above
//! headers        ...  name length u8, name (UTF-8), type u8, value; repeated
//! payload        ...  total - headers - 16 bytes, opaque (JSON for Bedrock)
//! message CRC    u32  CRC-32 of every byte before it, prelude CRC included
//! ```
//!
//! The CRC is the zlib / ISO-HDLC CRC-32. The prelude has its own CRC so a
//! corrupted length is caught before anything trusts it: the decoder never
//! waits for, or buffers towards, a length it has not verified.
//!
//! Like `wire::sse`, everything here is pure: bytes in, values out.
//! Nothing in the decoder panics on any input; the encoder exists for tests
//! and mock upstreams.

use bytes::{Bytes, BytesMut};
use crc::{CRC_32_ISO_HDLC, Crc, Table};

#[cfg(test)]
mod tests;

/// The zlib CRC-32, which both checksums of a frame use. Every byte
/// received passes through it, so it takes the 16-lane table (16 KiB,
/// built at compile time) over the default byte-at-a-time one.
static CRC32: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISO_HDLC);

/// Total length, headers length and prelude CRC.
pub const PRELUDE_LEN: usize = 12;
/// The message CRC that ends every frame.
const MESSAGE_CRC_LEN: usize = 4;
/// A frame with no headers and an empty payload: prelude plus message CRC.
pub const MIN_FRAME_LEN: usize = PRELUDE_LEN + MESSAGE_CRC_LEN;
/// The default ceiling on one frame. AWS services send far smaller frames
/// (the service-side cap is 24 MiB and Bedrock's chunks are kilobytes); the
/// ceiling bounds what a misbehaving upstream can make us buffer.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
/// Headers allowed in one frame. Not part of the format: like HTTP header
/// limits, it bounds the work a hostile frame can cause. 1024 is the limit
/// the AWS C runtime applies.
pub const MAX_HEADERS: usize = 1024;
/// Longest header name: its length is one byte on the wire.
pub const MAX_HEADER_NAME_LEN: usize = u8::MAX as usize;
/// Longest string or byte-array value the encoder writes. The wire has room
/// for 65,535 bytes, but the AWS Java and C runtimes refuse more than
/// 32,767, so frames we send stay within that. The decoder accepts the full
/// 65,535 the wire can carry.
pub const MAX_ENCODED_HEADER_VALUE_LEN: usize = i16::MAX as usize;

/// Wire type codes of header values.
mod wire_type {
    pub(super) const TRUE: u8 = 0;
    pub(super) const FALSE: u8 = 1;
    pub(super) const BYTE: u8 = 2;
    pub(super) const SHORT: u8 = 3;
    pub(super) const INTEGER: u8 = 4;
    pub(super) const LONG: u8 = 5;
    pub(super) const BYTE_ARRAY: u8 = 6;
    pub(super) const STRING: u8 = 7;
    pub(super) const TIMESTAMP: u8 = 8;
    pub(super) const UUID: u8 = 9;
}

/// Header names with a meaning to the protocol.
pub mod names {
    pub const MESSAGE_TYPE: &str = ":message-type";
    pub const EVENT_TYPE: &str = ":event-type";
    pub const EXCEPTION_TYPE: &str = ":exception-type";
    pub const CONTENT_TYPE: &str = ":content-type";
    pub const ERROR_CODE: &str = ":error-code";
    pub const ERROR_MESSAGE: &str = ":error-message";
}

/// A header's value. The ten wire types map onto nine variants: types 0
/// and 1 are `true` and `false`, carried in the type byte alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false); no value bytes follow.
    Bool(bool),
    /// Type 2: one signed byte.
    Byte(i8),
    /// Type 3: i16.
    Short(i16),
    /// Type 4: i32.
    Integer(i32),
    /// Type 5: i64.
    Long(i64),
    /// Type 6: u16 length, then the bytes.
    ByteArray(Bytes),
    /// Type 7: u16 length, then UTF-8.
    String(String),
    /// Type 8: milliseconds since the Unix epoch, i64.
    Timestamp(i64),
    /// Type 9: 16 bytes.
    Uuid([u8; 16]),
}

impl HeaderValue {
    /// The type byte this value is written with.
    pub fn wire_type(&self) -> u8 {
        match self {
            HeaderValue::Bool(true) => wire_type::TRUE,
            HeaderValue::Bool(false) => wire_type::FALSE,
            HeaderValue::Byte(_) => wire_type::BYTE,
            HeaderValue::Short(_) => wire_type::SHORT,
            HeaderValue::Integer(_) => wire_type::INTEGER,
            HeaderValue::Long(_) => wire_type::LONG,
            HeaderValue::ByteArray(_) => wire_type::BYTE_ARRAY,
            HeaderValue::String(_) => wire_type::STRING,
            HeaderValue::Timestamp(_) => wire_type::TIMESTAMP,
            HeaderValue::Uuid(_) => wire_type::UUID,
        }
    }

    /// The value when it is a string: every header AWS gives a meaning to
    /// (`:message-type`, `:event-type`, ...) is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for HeaderValue {
    fn from(s: &str) -> Self {
        HeaderValue::String(s.to_owned())
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// In wire order. The format says a name appears once per frame; the
    /// decoder does not enforce it, and the lookups take the first.
    pub headers: Vec<(String, HeaderValue)>,
    /// Shares the decoder's buffer: no copy is made of the payload.
    pub payload: Bytes,
}

/// What a frame carries, from its `:message-type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind<'a> {
    /// `:message-type: event`: a modeled event, named by `:event-type`
    /// (`contentBlockDelta`, `metadata`, ...); the payload is its body.
    Event { event_type: &'a str },
    /// `:message-type: exception`: a modeled error, named by
    /// `:exception-type` (`throttlingException`, ...); the payload is its
    /// body, usually `{"message": "..."}`.
    Exception { exception_type: &'a str },
    /// `:message-type: error`: an unmodeled error, described by headers
    /// alone.
    Error {
        code: &'a str,
        message: Option<&'a str>,
    },
    /// No `:message-type` string, an unknown one, or one whose naming
    /// header (`:event-type`, `:exception-type`, `:error-code`) is missing.
    /// The caller decides whether that is a protocol error.
    Unrecognized { message_type: Option<&'a str> },
}

impl Message {
    /// An event frame as Bedrock sends it: `:event-type`, a JSON
    /// `:content-type`, and `:message-type: event`.
    pub fn event(event_type: &str, payload: impl Into<Bytes>) -> Message {
        Message {
            headers: vec![
                (names::EVENT_TYPE.to_owned(), event_type.into()),
                (names::CONTENT_TYPE.to_owned(), "application/json".into()),
                (names::MESSAGE_TYPE.to_owned(), "event".into()),
            ],
            payload: payload.into(),
        }
    }

    /// A modeled exception frame: `:exception-type`, a JSON
    /// `:content-type`, and `:message-type: exception`.
    pub fn exception(exception_type: &str, payload: impl Into<Bytes>) -> Message {
        Message {
            headers: vec![
                (names::EXCEPTION_TYPE.to_owned(), exception_type.into()),
                (names::CONTENT_TYPE.to_owned(), "application/json".into()),
                (names::MESSAGE_TYPE.to_owned(), "exception".into()),
            ],
            payload: payload.into(),
        }
    }

    /// An unmodeled error frame: `:message-type: error` with `:error-code`
    /// and `:error-message`, and no payload.
    pub fn error(code: &str, message: &str) -> Message {
        Message {
            headers: vec![
                (names::MESSAGE_TYPE.to_owned(), "error".into()),
                (names::ERROR_CODE.to_owned(), code.into()),
                (names::ERROR_MESSAGE.to_owned(), message.into()),
            ],
            payload: Bytes::new(),
        }
    }

    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find_map(|(n, v)| (n == name).then_some(v))
    }

    /// The first header of that name, when it is a string.
    pub fn str_header(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(HeaderValue::as_str)
    }

    /// Classifies the frame by `:message-type`, with the header that names
    /// what it carries.
    pub fn kind(&self) -> MessageKind<'_> {
        let message_type = self.str_header(names::MESSAGE_TYPE);
        let unrecognized = MessageKind::Unrecognized { message_type };
        match message_type {
            Some("event") => self
                .str_header(names::EVENT_TYPE)
                .map_or(unrecognized, |event_type| MessageKind::Event { event_type }),
            Some("exception") => self
                .str_header(names::EXCEPTION_TYPE)
                .map_or(unrecognized, |exception_type| MessageKind::Exception {
                    exception_type,
                }),
            Some("error") => self
                .str_header(names::ERROR_CODE)
                .map_or(unrecognized, |code| MessageKind::Error {
                    code,
                    message: self.str_header(names::ERROR_MESSAGE),
                }),
            _ => unrecognized,
        }
    }
}

/// Why a stream could not be decoded. Every variant is final: once a
/// length or checksum is wrong, where the next frame starts is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The 8 length bytes do not match their CRC: the lengths cannot be
    /// trusted, so nothing after them is read.
    #[error(
        "event stream prelude CRC mismatch: computed {expected:#010x}, frame has {actual:#010x}"
    )]
    PreludeCrcMismatch { expected: u32, actual: u32 },
    /// The frame's bytes do not match its closing CRC.
    #[error(
        "event stream message CRC mismatch: computed {expected:#010x}, frame has {actual:#010x}"
    )]
    MessageCrcMismatch { expected: u32, actual: u32 },
    /// The total length is below the 16 bytes of an empty frame.
    #[error("event stream frame claims {total_len} bytes, less than the 16-byte minimum")]
    TooShort { total_len: u32 },
    /// The total length is over the decoder's ceiling; refused before any
    /// of it is buffered.
    #[error("event stream frame claims {total_len} bytes, over the {max}-byte limit")]
    TooLong { total_len: u32, max: usize },
    /// The headers section would not fit in the frame.
    #[error("event stream headers length {headers_len} does not fit a {total_len}-byte frame")]
    HeadersLengthExceedsTotal { headers_len: u32, total_len: u32 },
    /// A header runs past the end of the headers section.
    #[error("event stream header at frame offset {offset} is truncated")]
    TruncatedHeader { offset: usize },
    /// A header's type byte is not one of the ten defined.
    #[error("event stream header {name:?} has unknown value type {type_byte}")]
    BadHeaderType { name: String, type_byte: u8 },
    /// A header name is not UTF-8.
    #[error("event stream header name at frame offset {offset} is not UTF-8")]
    HeaderNameNotUtf8 { offset: usize },
    /// A string header's value is not UTF-8.
    #[error("event stream header {name:?} has a string value that is not UTF-8")]
    HeaderValueNotUtf8 { name: String },
    /// More headers than [`MAX_HEADERS`].
    #[error("event stream frame has more than {max} headers")]
    TooManyHeaders { max: usize },
    /// The stream ended inside a frame.
    #[error("event stream ended inside a frame ({buffered} bytes left over)")]
    Incomplete { buffered: usize },
}

/// Incremental frame decoder. Feed it reads as they come, however they
/// split the frames, and take the frames it completes:
///
/// ```text
/// decoder.push(&chunk);
/// while let Some(message) = decoder.next_frame()? { ... }
/// // at end of body:
/// decoder.finish()?;
/// ```
///
/// After an error the decoder keeps returning it and drops further input:
/// a corrupted stream cannot be resynchronised, as frames carry no marker
/// to find the next one by.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_frame_len: usize,
    /// The prelude of the frame at the front of `buf`, once it has been
    /// read and verified (once per frame).
    front: Option<Prelude>,
    failed: Option<FrameError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder refusing frames over [`DEFAULT_MAX_FRAME_LEN`].
    pub fn new() -> Decoder {
        Decoder::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A decoder refusing frames over `max` bytes (below 16, every frame).
    pub fn with_max_frame_len(max: usize) -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            max_frame_len: max,
            front: None,
            failed: None,
        }
    }

    /// Appends a read. The front frame's prelude is checked as soon as it
    /// is complete, so a bad or oversized length fails here, before more of
    /// its frame is buffered; [`Decoder::next_frame`] reports the error.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.buf.extend_from_slice(chunk);
        if let Err(e) = self.front_prelude() {
            self.fail(e);
        }
    }

    /// The next complete frame: `Ok(None)` until more input completes one.
    pub fn next_frame(&mut self) -> Result<Option<Message>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.decode_front().inspect_err(|e| self.fail(e.clone()))
    }

    /// Ends the stream: an error when a frame was left unfinished (or the
    /// stream had already failed). Frames not yet taken with
    /// [`Decoder::next_frame`] count as unfinished.
    pub fn finish(&self) -> Result<(), FrameError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None if self.buf.is_empty() => Ok(()),
            None => Err(FrameError::Incomplete {
                buffered: self.buf.len(),
            }),
        }
    }

    /// Bytes held, waiting to complete a frame (none once failed).
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Records the failure and frees the buffer: nothing in it is usable.
    fn fail(&mut self, e: FrameError) {
        self.failed = Some(e);
        self.buf = BytesMut::new();
        self.front = None;
    }

    /// Splits off and decodes the front frame, if it is all here.
    fn decode_front(&mut self) -> Result<Option<Message>, FrameError> {
        let Some(prelude) = self.front_prelude()? else {
            return Ok(None);
        };
        if self.buf.len() < prelude.total_len {
            return Ok(None);
        }
        self.front = None;
        let frame = self.buf.split_to(prelude.total_len).freeze();
        decode_frame(&frame, prelude).map(Some)
    }

    /// The front frame's prelude, once it is buffered and verified.
    fn front_prelude(&mut self) -> Result<Option<Prelude>, FrameError> {
        if self.front.is_none() {
            let Some(prelude) = self.buf.first_chunk::<PRELUDE_LEN>() else {
                return Ok(None);
            };
            self.front = Some(verify_prelude(prelude, self.max_frame_len)?);
        }
        Ok(self.front)
    }
}

/// The lengths a verified prelude gives: `headers_len + 16 <= total_len`.
#[derive(Debug, Clone, Copy)]
struct Prelude {
    total_len: usize,
    headers_len: usize,
}

/// Checks the prelude CRC first, so no check below reads a corrupted
/// length, then the lengths against each other and the ceiling.
fn verify_prelude(
    prelude: &[u8; PRELUDE_LEN],
    max_frame_len: usize,
) -> Result<Prelude, FrameError> {
    let [lengths @ .., c0, c1, c2, c3] = *prelude;
    let expected = CRC32.checksum(&lengths);
    let actual = u32::from_be_bytes([c0, c1, c2, c3]);
    if expected != actual {
        return Err(FrameError::PreludeCrcMismatch { expected, actual });
    }
    let [t0, t1, t2, t3, h0, h1, h2, h3] = lengths;
    let total = u32::from_be_bytes([t0, t1, t2, t3]);
    let headers = u32::from_be_bytes([h0, h1, h2, h3]);

    let too_long = || FrameError::TooLong {
        total_len: total,
        max: max_frame_len,
    };
    let total_len = usize::try_from(total).map_err(|_| too_long())?;
    if total_len < MIN_FRAME_LEN {
        return Err(FrameError::TooShort { total_len: total });
    }
    if total_len > max_frame_len {
        return Err(too_long());
    }
    match usize::try_from(headers) {
        Ok(headers_len) if headers_len <= total_len - MIN_FRAME_LEN => Ok(Prelude {
            total_len,
            headers_len,
        }),
        _ => Err(FrameError::HeadersLengthExceedsTotal {
            headers_len: headers,
            total_len: total,
        }),
    }
}

/// Decodes one whole frame (`frame.len() == prelude.total_len`) whose
/// prelude [`verify_prelude`] accepted. The message CRC is checked before
/// any header is parsed, so corruption is reported as such rather than as
/// whatever malformed header it happens to produce.
fn decode_frame(frame: &Bytes, prelude: Prelude) -> Result<Message, FrameError> {
    // Cannot happen for a frame of its verified length; an error all the
    // same, rather than a panic.
    let short = || FrameError::Incomplete {
        buffered: frame.len(),
    };
    let (body, crc) = frame
        .split_last_chunk::<MESSAGE_CRC_LEN>()
        .ok_or_else(short)?;
    let expected = CRC32.checksum(body);
    let actual = u32::from_be_bytes(*crc);
    if expected != actual {
        return Err(FrameError::MessageCrcMismatch { expected, actual });
    }
    let headers_end = PRELUDE_LEN + prelude.headers_len;
    let section = |range| frame.get(range).map(|part| frame.slice_ref(part));
    let headers = section(PRELUDE_LEN..headers_end).ok_or_else(short)?;
    let payload = section(headers_end..body.len()).ok_or_else(short)?;
    Ok(Message {
        headers: decode_headers(headers)?,
        payload,
    })
}

/// Parses the headers section, which must hold whole headers exactly.
fn decode_headers(section: Bytes) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    let mut reader = HeaderReader {
        section,
        pos: 0,
        header_start: 0,
    };
    let mut headers = Vec::new();
    while !reader.at_end() {
        if headers.len() == MAX_HEADERS {
            return Err(FrameError::TooManyHeaders { max: MAX_HEADERS });
        }
        headers.push(reader.header()?);
    }
    Ok(headers)
}

/// A cursor over the headers section. Every read is bounds-checked: one
/// past the end is a [`FrameError::TruncatedHeader`] naming where the
/// header began.
struct HeaderReader {
    section: Bytes,
    pos: usize,
    /// Where the header being read began, in `section`.
    header_start: usize,
}

impl HeaderReader {
    fn at_end(&self) -> bool {
        self.pos >= self.section.len()
    }

    /// One header: name length, name, type byte, value.
    fn header(&mut self) -> Result<(String, HeaderValue), FrameError> {
        self.header_start = self.pos;
        let [name_len] = self.array()?;
        let name = self.take(usize::from(name_len))?;
        let name = std::str::from_utf8(&name)
            .map_err(|_| FrameError::HeaderNameNotUtf8 {
                offset: self.frame_offset(),
            })?
            .to_owned();
        let [type_byte] = self.array()?;
        let value = self.value(type_byte, &name)?;
        Ok((name, value))
    }

    fn value(&mut self, type_byte: u8, name: &str) -> Result<HeaderValue, FrameError> {
        Ok(match type_byte {
            wire_type::TRUE => HeaderValue::Bool(true),
            wire_type::FALSE => HeaderValue::Bool(false),
            wire_type::BYTE => HeaderValue::Byte(i8::from_be_bytes(self.array()?)),
            wire_type::SHORT => HeaderValue::Short(i16::from_be_bytes(self.array()?)),
            wire_type::INTEGER => HeaderValue::Integer(i32::from_be_bytes(self.array()?)),
            wire_type::LONG => HeaderValue::Long(i64::from_be_bytes(self.array()?)),
            wire_type::BYTE_ARRAY => HeaderValue::ByteArray(self.length_prefixed()?),
            wire_type::STRING => {
                let bytes = self.length_prefixed()?;
                let s =
                    std::str::from_utf8(&bytes).map_err(|_| FrameError::HeaderValueNotUtf8 {
                        name: name.to_owned(),
                    })?;
                HeaderValue::String(s.to_owned())
            }
            wire_type::TIMESTAMP => HeaderValue::Timestamp(i64::from_be_bytes(self.array()?)),
            wire_type::UUID => HeaderValue::Uuid(self.array()?),
            type_byte => {
                return Err(FrameError::BadHeaderType {
                    name: name.to_owned(),
                    type_byte,
                });
            }
        })
    }

    /// A u16 length, then that many bytes.
    fn length_prefixed(&mut self) -> Result<Bytes, FrameError> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let array = self
            .section
            .get(self.pos..)
            .and_then(<[u8]>::first_chunk::<N>)
            .copied()
            .ok_or_else(|| self.truncated())?;
        self.pos += N;
        Ok(array)
    }

    /// The next `n` bytes, shared with the frame rather than copied.
    fn take(&mut self, n: usize) -> Result<Bytes, FrameError> {
        let part = self
            .pos
            .checked_add(n)
            .and_then(|end| self.section.get(self.pos..end))
            .ok_or_else(|| self.truncated())?;
        self.pos += n;
        Ok(self.section.slice_ref(part))
    }

    fn truncated(&self) -> FrameError {
        FrameError::TruncatedHeader {
            offset: self.frame_offset(),
        }
    }

    /// Where the current header began, counted from the start of the frame.
    fn frame_offset(&self) -> usize {
        PRELUDE_LEN + self.header_start
    }
}

/// Why a message could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A name over 255 bytes: its length is one byte on the wire.
    #[error("event stream header name of {len} bytes exceeds {max}", max = MAX_HEADER_NAME_LEN)]
    HeaderNameTooLong { len: usize },
    /// A string or byte-array value over [`MAX_ENCODED_HEADER_VALUE_LEN`].
    #[error("event stream header {name:?} has a {len}-byte value, over the {max}-byte limit")]
    HeaderValueTooLong {
        name: String,
        len: usize,
        max: usize,
    },
    /// More than [`MAX_HEADERS`] headers, which decoders refuse.
    #[error("event stream message has {count} headers, over the limit of {max}")]
    TooManyHeaders { count: usize, max: usize },
    /// The frame would not fit the u32 total length.
    #[error("event stream frame of {len} bytes exceeds the u32 length field")]
    FrameTooLong { len: usize },
}

/// Frames a message; an error when the wire (or AWS's decoders) could not
/// carry it.
pub fn try_encode(message: &Message) -> Result<Vec<u8>, EncodeError> {
    if message.headers.len() > MAX_HEADERS {
        return Err(EncodeError::TooManyHeaders {
            count: message.headers.len(),
            max: MAX_HEADERS,
        });
    }
    let mut out =
        Vec::with_capacity(MIN_FRAME_LEN + 64 * message.headers.len() + message.payload.len());
    out.resize(PRELUDE_LEN, 0);
    for (name, value) in &message.headers {
        write_header(&mut out, name, value)?;
    }
    let headers_len = out.len() - PRELUDE_LEN;
    out.extend_from_slice(&message.payload);
    let total_len = out.len() + MESSAGE_CRC_LEN;
    let too_long = || EncodeError::FrameTooLong { len: total_len };
    let total = u32::try_from(total_len).map_err(|_| too_long())?;
    let headers = u32::try_from(headers_len).map_err(|_| too_long())?;

    out[..4].copy_from_slice(&total.to_be_bytes());
    out[4..8].copy_from_slice(&headers.to_be_bytes());
    let prelude_crc = CRC32.checksum(&out[..8]);
    out[8..PRELUDE_LEN].copy_from_slice(&prelude_crc.to_be_bytes());
    let message_crc = CRC32.checksum(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    Ok(out)
}

/// Frames a message built from known-good parts.
///
/// # Panics
///
/// When [`try_encode`] fails: a name over 255 bytes, a value over 32,767,
/// more than 1024 headers or a frame over 4 GiB. Meant for tests and mock
/// upstreams, whose messages are literals; anything sized by outside input
/// goes through [`try_encode`].
pub fn encode(message: &Message) -> Vec<u8> {
    match try_encode(message) {
        Ok(frame) => frame,
        Err(e) => panic!("cannot frame event stream message: {e}"),
    }
}

/// Frames [`Message::event`]. Panics as [`encode`] does.
pub fn encode_event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(&Message::event(event_type, Bytes::copy_from_slice(payload)))
}

/// Frames [`Message::exception`]. Panics as [`encode`] does.
pub fn encode_exception(exception_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(&Message::exception(
        exception_type,
        Bytes::copy_from_slice(payload),
    ))
}

/// Frames [`Message::error`]. Panics as [`encode`] does.
pub fn encode_error(code: &str, message: &str) -> Vec<u8> {
    encode(&Message::error(code, message))
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &HeaderValue) -> Result<(), EncodeError> {
    let name_len =
        u8::try_from(name.len()).map_err(|_| EncodeError::HeaderNameTooLong { len: name.len() })?;
    out.push(name_len);
    out.extend_from_slice(name.as_bytes());
    out.push(value.wire_type());
    match value {
        HeaderValue::Bool(_) => {}
        HeaderValue::Byte(v) => out.extend_from_slice(&v.to_be_bytes()),
        HeaderValue::Short(v) => out.extend_from_slice(&v.to_be_bytes()),
        HeaderValue::Integer(v) => out.extend_from_slice(&v.to_be_bytes()),
        HeaderValue::Long(v) | HeaderValue::Timestamp(v) => out.extend_from_slice(&v.to_be_bytes()),
        HeaderValue::ByteArray(bytes) => write_length_prefixed(out, name, bytes)?,
        HeaderValue::String(s) => write_length_prefixed(out, name, s.as_bytes())?,
        HeaderValue::Uuid(uuid) => out.extend_from_slice(uuid),
    }
    Ok(())
}

fn write_length_prefixed(out: &mut Vec<u8>, name: &str, value: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(value.len())
        .ok()
        .filter(|&len| usize::from(len) <= MAX_ENCODED_HEADER_VALUE_LEN)
        .ok_or_else(|| EncodeError::HeaderValueTooLong {
            name: name.to_owned(),
            len: value.len(),
            max: MAX_ENCODED_HEADER_VALUE_LEN,
        })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}
