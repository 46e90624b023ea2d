use super::*;

use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Decodes a whole stream pushed in one piece, `finish` included.
fn decode_all(stream: &[u8]) -> Result<Vec<Message>, FrameError> {
    decode_chunked(stream.chunks(stream.len().max(1)))
}

/// Decodes a stream pushed as the given reads, taking frames after each
/// read as a caller would, then finishes it.
fn decode_chunked<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Message>, FrameError> {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(message) = decoder.next_frame()? {
            out.push(message);
        }
    }
    decoder.finish()?;
    Ok(out)
}

/// The first error a stream produces, or a panic if it decodes cleanly.
fn decode_err(stream: &[u8]) -> FrameError {
    match decode_all(stream) {
        Ok(messages) => panic!("expected an error, decoded {messages:?}"),
        Err(e) => e,
    }
}

fn hex(lines: &[&str]) -> Vec<u8> {
    let s: String = lines.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// Rewrites both CRCs of a frame to match its (deliberately malformed)
/// contents, so a test reaches the check after them.
/// Bytes past the frame's declared length are left alone.
fn reseal(frame: &mut [u8]) {
    let prelude_crc = crc32(&frame[..8]);
    frame[8..12].copy_from_slice(&prelude_crc.to_be_bytes());
    let total = u32::from_be_bytes(frame[..4].try_into().unwrap());
    let end = usize::try_from(total).unwrap() - 4;
    let message_crc = crc32(&frame[..end]);
    frame[end..end + 4].copy_from_slice(&message_crc.to_be_bytes());
}

/// A frame with valid lengths and CRCs around raw header bytes, which may
/// be malformed.
fn raw_frame(headers: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = 16 + headers.len() + payload.len();
    let mut frame = Vec::with_capacity(total);
    frame.extend_from_slice(&u32::try_from(total).unwrap().to_be_bytes());
    frame.extend_from_slice(&u32::try_from(headers.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(headers);
    frame.extend_from_slice(payload);
    frame.extend_from_slice(&[0; 4]);
    reseal(&mut frame);
    frame
}

/// A prelude (with a valid CRC) claiming the given lengths.
fn prelude(total_len: u32, headers_len: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(PRELUDE_LEN);
    p.extend_from_slice(&total_len.to_be_bytes());
    p.extend_from_slice(&headers_len.to_be_bytes());
    let crc = crc32(&p);
    p.extend_from_slice(&crc.to_be_bytes());
    p
}

fn message(headers: &[(&str, HeaderValue)], payload: &'static [u8]) -> Message {
    Message {
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect(),
        payload: Bytes::from_static(payload),
    }
}

const UUID: [u8; 16] = [
    0xb7, 0x9b, 0xc9, 0x14, 0xde, 0x21, 0x4e, 0x13, 0xb8, 0xb2, 0xbc, 0x47, 0xe8, 0x5b, 0x7f, 0x0b,
];

/// One header of every type, and a payload.
fn all_types_message() -> Message {
    message(
        &[
            ("true", HeaderValue::Bool(true)),
            ("false", HeaderValue::Bool(false)),
            ("byte", HeaderValue::Byte(-50)),
            ("short", HeaderValue::Short(-20_000)),
            ("int", HeaderValue::Integer(500_000)),
            ("long", HeaderValue::Long(-50_000_000_000)),
            (
                "bytes",
                HeaderValue::ByteArray(Bytes::from_static(b"\x00\xffsome bytes")),
            ),
            ("str", HeaderValue::String("some str \u{1F600}".to_owned())),
            ("time", HeaderValue::Timestamp(1_700_000_000_123)),
            ("uuid", HeaderValue::Uuid(UUID)),
        ],
        b"some payload",
    )
}

/// A `ConverseStream` response as Bedrock frames it: each event's JSON
/// carries a `p` field of padding, which Bedrock adds so the frame sizes do
/// not give away the token lengths.
fn converse_stream() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("messageStart", br#"{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGH","role":"assistant"}"#),
        (
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdefghijklmnopqrstuvwxyzABCD"}"#,
        ),
        (
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":", world! \u00e9\u4e16"},"p":"abcdefgh"}"#,
        ),
        ("contentBlockStop", br#"{"contentBlockIndex":0,"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL"}"#),
        ("messageStop", br#"{"p":"abcdefghijklmnop","stopReason":"end_turn"}"#),
        (
            "metadata",
            br#"{"metrics":{"latencyMs":421},"p":"abcdef","usage":{"inputTokens":25,"outputTokens":9,"totalTokens":34}}"#,
        ),
    ]
}

fn converse_stream_bytes() -> Vec<u8> {
    converse_stream()
        .into_iter()
        .flat_map(|(event_type, payload)| encode_event(event_type, payload))
        .collect()
}

/// A multi-frame stream mixing events, every header type, an empty frame
/// and an exception.
fn mixed_stream() -> (Vec<u8>, Vec<Message>) {
    let messages = vec![
        Message::event(
            "messageStart",
            Bytes::from_static(br#"{"role":"assistant"}"#),
        ),
        all_types_message(),
        Message::default(),
        Message::event(
            "contentBlockDelta",
            Bytes::from_static(br#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#),
        ),
        Message::exception(
            "throttlingException",
            Bytes::from_static(br#"{"message":"slow down"}"#),
        ),
    ];
    let bytes = messages.iter().flat_map(encode).collect();
    (bytes, messages)
}

fn json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).unwrap()
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

#[test]
fn each_header_type_round_trips_with_its_wire_type() {
    let cases = [
        (HeaderValue::Bool(true), 0),
        (HeaderValue::Bool(false), 1),
        (HeaderValue::Byte(i8::MIN), 2),
        (HeaderValue::Byte(i8::MAX), 2),
        (HeaderValue::Short(i16::MIN), 3),
        (HeaderValue::Short(i16::MAX), 3),
        (HeaderValue::Integer(i32::MIN), 4),
        (HeaderValue::Integer(-1), 4),
        (HeaderValue::Long(i64::MIN), 5),
        (HeaderValue::Long(i64::MAX), 5),
        (HeaderValue::ByteArray(Bytes::new()), 6),
        (
            HeaderValue::ByteArray(Bytes::from_static(&[0, 1, 2, 0xfe, 0xff])),
            6,
        ),
        (HeaderValue::String(String::new()), 7),
        (
            HeaderValue::String("h\u{e9}llo \u{4e16}\u{754c}".to_owned()),
            7,
        ),
        (HeaderValue::Timestamp(-1), 8),
        (HeaderValue::Timestamp(1_717_000_000_000), 8),
        (HeaderValue::Uuid([0; 16]), 9),
        (HeaderValue::Uuid(UUID), 9),
    ];
    for (value, wire_type) in cases {
        assert_eq!(value.wire_type(), wire_type, "{value:?}");
        let m = Message {
            headers: vec![("h".to_owned(), value.clone())],
            payload: Bytes::from_static(b"x"),
        };
        let frame = encode(&m);
        // prelude, name length, "h", then the type byte
        assert_eq!(frame[PRELUDE_LEN + 2], wire_type, "{value:?}");
        assert_eq!(decode_all(&frame).unwrap(), vec![m], "{value:?}");
    }
}

#[test]
fn every_header_type_in_one_frame_round_trips() {
    let m = all_types_message();
    assert_eq!(decode_all(&encode(&m)).unwrap(), vec![m]);
}

#[test]
fn integers_are_big_endian_on_the_wire() {
    let m = message(
        &[
            ("s", HeaderValue::Short(0x0102)),
            ("i", HeaderValue::Integer(0x0102_0304)),
            ("l", HeaderValue::Long(0x0102_0304_0506_0708)),
            ("t", HeaderValue::Timestamp(0x0A0B)),
        ],
        b"",
    );
    let frame = encode(&m);
    let headers = &frame[PRELUDE_LEN..frame.len() - 4];
    let expected: &[u8] = &[
        1, b's', 3, 0x01, 0x02, //
        1, b'i', 4, 0x01, 0x02, 0x03, 0x04, //
        1, b'l', 5, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, //
        1, b't', 8, 0, 0, 0, 0, 0, 0, 0x0A, 0x0B,
    ];
    assert_eq!(headers, expected);
}

#[test]
fn empty_message_is_the_sixteen_byte_minimum() {
    let frame = encode(&Message::default());
    assert_eq!(frame.len(), MIN_FRAME_LEN);
    // The same bytes as aws-c-event-stream's no-op test vector (below).
    assert_eq!(frame, AWS_C_NO_OP);
    assert_eq!(decode_all(&frame).unwrap(), vec![Message::default()]);
}

#[test]
fn empty_header_names_round_trip() {
    let m = message(
        &[("", HeaderValue::Bool(true)), ("", HeaderValue::Byte(1))],
        b"p",
    );
    assert_eq!(decode_all(&encode(&m)).unwrap(), vec![m]);
}

#[test]
fn longest_name_and_value_round_trip() {
    let name = "n".repeat(MAX_HEADER_NAME_LEN);
    let value = "v".repeat(MAX_ENCODED_HEADER_VALUE_LEN);
    let m = Message {
        headers: vec![
            (name.clone(), HeaderValue::String(value.clone())),
            (
                name,
                HeaderValue::ByteArray(Bytes::from(value.into_bytes())),
            ),
        ],
        payload: Bytes::new(),
    };
    assert_eq!(decode_all(&encode(&m)).unwrap(), vec![m]);
}

#[test]
fn payload_is_opaque_bytes() {
    let payload: Vec<u8> = (0..=255).collect();
    let m = Message {
        headers: vec![],
        payload: Bytes::from(payload),
    };
    assert_eq!(decode_all(&encode(&m)).unwrap(), vec![m]);
}

// ---------------------------------------------------------------------------
// Encoder limits
// ---------------------------------------------------------------------------

#[test]
fn encoder_refuses_a_name_over_255_bytes() {
    let m = Message {
        headers: vec![("n".repeat(256), HeaderValue::Bool(true))],
        payload: Bytes::new(),
    };
    assert_eq!(
        try_encode(&m),
        Err(EncodeError::HeaderNameTooLong { len: 256 })
    );
}

#[test]
fn encoder_refuses_values_over_the_aws_limit() {
    let len = MAX_ENCODED_HEADER_VALUE_LEN + 1;
    for value in [
        HeaderValue::String("v".repeat(len)),
        HeaderValue::ByteArray(Bytes::from(vec![0; len])),
        HeaderValue::String("v".repeat(usize::from(u16::MAX) + 1)),
    ] {
        let too_long = value.clone();
        let m = Message {
            headers: vec![("big".to_owned(), value)],
            payload: Bytes::new(),
        };
        match try_encode(&m) {
            Err(EncodeError::HeaderValueTooLong { name, max, .. }) => {
                assert_eq!(name, "big");
                assert_eq!(max, MAX_ENCODED_HEADER_VALUE_LEN);
            }
            other => panic!("{too_long:?}: {other:?}"),
        }
    }
}

#[test]
fn encoder_refuses_more_headers_than_decoders_accept() {
    let headers = |n| Message {
        headers: (0..n)
            .map(|_| (String::new(), HeaderValue::Bool(true)))
            .collect(),
        payload: Bytes::new(),
    };
    assert_eq!(
        try_encode(&headers(MAX_HEADERS + 1)),
        Err(EncodeError::TooManyHeaders {
            count: MAX_HEADERS + 1,
            max: MAX_HEADERS
        })
    );
    let most = headers(MAX_HEADERS);
    assert_eq!(decode_all(&encode(&most)).unwrap(), vec![most]);
}

#[test]
#[should_panic(expected = "cannot frame event stream message")]
fn encode_panics_where_try_encode_errs() {
    let _ = encode_event(&"e".repeat(40_000), b"{}");
}

// ---------------------------------------------------------------------------
// Lookups and classification
// ---------------------------------------------------------------------------

#[test]
fn header_lookups_take_the_first_match() {
    let m = message(
        &[
            ("a", HeaderValue::Integer(1)),
            ("b", "one".into()),
            ("b", "two".into()),
        ],
        b"",
    );
    assert_eq!(m.header("a"), Some(&HeaderValue::Integer(1)));
    assert_eq!(m.str_header("b"), Some("one"));
    assert_eq!(m.str_header("a"), None, "not a string");
    assert_eq!(m.header("c"), None);
    assert_eq!(m.header("A"), None, "names are case-sensitive");
}

#[test]
fn kind_of_an_event() {
    let m = decode_all(&encode_event("contentBlockDelta", b"{}"))
        .unwrap()
        .remove(0);
    assert_eq!(
        m.kind(),
        MessageKind::Event {
            event_type: "contentBlockDelta"
        }
    );
    assert_eq!(m.str_header(":content-type"), Some("application/json"));
}

#[test]
fn kind_of_an_exception() {
    let m = decode_all(&encode_exception("throttlingException", b"{}"))
        .unwrap()
        .remove(0);
    assert_eq!(
        m.kind(),
        MessageKind::Exception {
            exception_type: "throttlingException"
        }
    );
}

#[test]
fn kind_of_an_error() {
    let m = decode_all(&encode_error("InternalFailure", "it broke"))
        .unwrap()
        .remove(0);
    assert_eq!(
        m.kind(),
        MessageKind::Error {
            code: "InternalFailure",
            message: Some("it broke")
        }
    );
    assert!(m.payload.is_empty());

    let no_message = message(
        &[
            (":message-type", "error".into()),
            (":error-code", "Oops".into()),
        ],
        b"",
    );
    assert_eq!(
        no_message.kind(),
        MessageKind::Error {
            code: "Oops",
            message: None
        }
    );
}

#[test]
fn kind_unrecognized_when_headers_are_missing_or_odd() {
    let cases = [
        (message(&[], b""), None),
        (
            message(&[(":message-type", HeaderValue::Integer(1))], b""),
            None,
        ),
        (
            message(&[(":message-type", "event".into())], b""),
            Some("event"),
        ),
        (
            message(
                &[
                    (":message-type", "event".into()),
                    (
                        ":event-type",
                        HeaderValue::ByteArray(Bytes::from_static(b"x")),
                    ),
                ],
                b"",
            ),
            Some("event"),
        ),
        (
            message(&[(":message-type", "exception".into())], b""),
            Some("exception"),
        ),
        (
            message(
                &[
                    (":message-type", "error".into()),
                    (":error-message", "m".into()),
                ],
                b"",
            ),
            Some("error"),
        ),
        (
            message(
                &[
                    (":message-type", "Event".into()),
                    (":event-type", "x".into()),
                ],
                b"",
            ),
            Some("Event"),
        ),
    ];
    for (m, message_type) in cases {
        assert_eq!(
            m.kind(),
            MessageKind::Unrecognized { message_type },
            "{m:?}"
        );
    }
}

#[test]
fn helper_encoders_write_the_headers_bedrock_sends() {
    let event = decode_all(&encode_event("messageStop", b"{}"))
        .unwrap()
        .remove(0);
    assert_eq!(
        event,
        message(
            &[
                (":event-type", "messageStop".into()),
                (":content-type", "application/json".into()),
                (":message-type", "event".into()),
            ],
            b"{}",
        )
    );
    let exception = decode_all(&encode_exception(
        "validationException",
        b"{\"message\":\"m\"}",
    ))
    .unwrap()
    .remove(0);
    assert_eq!(
        exception,
        message(
            &[
                (":exception-type", "validationException".into()),
                (":content-type", "application/json".into()),
                (":message-type", "exception".into()),
            ],
            b"{\"message\":\"m\"}",
        )
    );
    let error = decode_all(&encode_error("E", "m")).unwrap().remove(0);
    assert_eq!(
        error,
        message(
            &[
                (":message-type", "error".into()),
                (":error-code", "E".into()),
                (":error-message", "m".into()),
            ],
            b"",
        )
    );
}

// ---------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------

#[test]
fn split_at_every_byte_boundary() {
    let (stream, expected) = mixed_stream();
    for i in 0..=stream.len() {
        let (a, b) = stream.split_at(i);
        assert_eq!(decode_chunked([a, b]).unwrap(), expected, "split at {i}");
    }
}

#[test]
fn split_at_every_pair_of_boundaries() {
    // Small enough for all pairs: AWS C runtime's two-message vector.
    let stream = [AWS_C_NO_OP, AWS_C_ONE_HEADER].concat();
    let expected = decode_all(&stream).unwrap();
    assert_eq!(expected.len(), 2);
    for i in 0..=stream.len() {
        for j in i..=stream.len() {
            let chunks = [&stream[..i], &stream[i..j], &stream[j..]];
            assert_eq!(
                decode_chunked(chunks).unwrap(),
                expected,
                "split at {i}, {j}"
            );
        }
    }
}

#[test]
fn every_chunk_size_decodes_the_same() {
    let (stream, expected) = mixed_stream();
    for size in 1..=stream.len() {
        assert_eq!(
            decode_chunked(stream.chunks(size)).unwrap(),
            expected,
            "chunk size {size}"
        );
    }
}

#[test]
fn byte_at_a_time_yields_each_frame_on_its_last_byte() {
    let (stream, expected) = mixed_stream();
    let ends: Vec<usize> = expected
        .iter()
        .scan(0, |end, m| {
            *end += encode(m).len();
            Some(*end)
        })
        .collect();
    let mut decoder = Decoder::new();
    let mut got = Vec::new();
    for (i, byte) in stream.iter().enumerate() {
        decoder.push(std::slice::from_ref(byte));
        let next = decoder.next_frame().unwrap();
        assert_eq!(next.is_some(), ends.contains(&(i + 1)), "byte {i}");
        got.extend(next);
        assert_eq!(
            decoder.next_frame().unwrap(),
            None,
            "one frame per byte at most"
        );
    }
    assert_eq!(got, expected);
    decoder.finish().unwrap();
}

#[test]
fn many_frames_in_one_push() {
    let (stream, expected) = mixed_stream();
    let mut decoder = Decoder::new();
    decoder.push(&stream);
    assert_eq!(decoder.buffered_len(), stream.len());
    for m in &expected {
        assert_eq!(decoder.next_frame().unwrap().as_ref(), Some(m));
    }
    assert_eq!(decoder.next_frame().unwrap(), None);
    assert_eq!(decoder.buffered_len(), 0);
    decoder.finish().unwrap();
}

#[test]
fn buffered_len_counts_what_awaits_a_frame() {
    let frame = encode_event("e", b"payload");
    let mut decoder = Decoder::default();
    assert_eq!(decoder.buffered_len(), 0);
    assert_eq!(decoder.next_frame().unwrap(), None);
    decoder.push(&frame[..5]);
    assert_eq!(decoder.buffered_len(), 5);
    assert_eq!(decoder.next_frame().unwrap(), None);
    decoder.push(&frame[5..]);
    decoder.push(&frame[..3]);
    assert_eq!(decoder.buffered_len(), frame.len() + 3);
    assert!(decoder.next_frame().unwrap().is_some());
    assert_eq!(decoder.buffered_len(), 3);
    assert_eq!(
        decoder.finish(),
        Err(FrameError::Incomplete { buffered: 3 })
    );
}

#[test]
fn empty_pushes_change_nothing() {
    let mut decoder = Decoder::new();
    decoder.push(&[]);
    assert_eq!(decoder.next_frame().unwrap(), None);
    decoder.finish().unwrap();
}

// ---------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

#[test]
fn every_bit_flip_in_the_prelude_is_a_prelude_crc_error() {
    let frame = encode(&all_types_message());
    let stored = u32::from_be_bytes(frame[8..12].try_into().unwrap());
    for bit in 0..PRELUDE_LEN * 8 {
        let bad = flip(&frame, bit);
        // Reported once the prelude is in, before the rest of the frame.
        let mut decoder = Decoder::new();
        decoder.push(&bad[..PRELUDE_LEN]);
        let err = decoder.next_frame().unwrap_err();
        let FrameError::PreludeCrcMismatch { expected, actual } = err else {
            panic!("bit {bit}: {err:?}");
        };
        assert_ne!(expected, actual);
        if bit >= 64 {
            // The CRC itself was hit: the lengths still check out to it.
            assert_eq!(expected, stored, "bit {bit}");
            assert_eq!(actual, u32::from_be_bytes(bad[8..12].try_into().unwrap()));
        } else {
            assert_eq!(actual, stored, "bit {bit}");
        }
    }
}

#[test]
fn every_bit_flip_after_the_prelude_is_a_message_crc_error() {
    let frame = encode(&all_types_message());
    let stored = u32::from_be_bytes(frame[frame.len() - 4..].try_into().unwrap());
    for bit in PRELUDE_LEN * 8..frame.len() * 8 {
        let err = decode_err(&flip(&frame, bit));
        let FrameError::MessageCrcMismatch { expected, actual } = err else {
            panic!("bit {bit}: {err:?}");
        };
        assert_ne!(expected, actual, "bit {bit}");
        if bit < (frame.len() - 4) * 8 {
            assert_eq!(actual, stored, "bit {bit}");
        } else {
            assert_eq!(expected, stored, "bit {bit}");
        }
    }
}

#[test]
fn corruption_in_a_later_frame_keeps_the_frames_before_it() {
    let first = encode_event("messageStart", b"{}");
    let mut second = encode_event("contentBlockDelta", b"{\"x\":1}");
    let at = second.len() - 6;
    second[at] ^= 0x40;
    let mut decoder = Decoder::new();
    decoder.push(&[first.clone(), second].concat());
    assert_eq!(
        decoder.next_frame().unwrap(),
        Some(decode_all(&first).unwrap().remove(0))
    );
    assert!(matches!(
        decoder.next_frame(),
        Err(FrameError::MessageCrcMismatch { .. })
    ));
}

#[test]
fn a_failed_decoder_stays_failed() {
    let good = encode_event("e", b"{}");
    let bad = flip(&good, 20 * 8);
    let mut decoder = Decoder::new();
    decoder.push(&bad);
    let err = decoder.next_frame().unwrap_err();
    assert!(matches!(err, FrameError::MessageCrcMismatch { .. }));
    assert_eq!(decoder.buffered_len(), 0, "the buffer is dropped");
    decoder.push(&good);
    assert_eq!(decoder.buffered_len(), 0, "later input is dropped");
    assert_eq!(decoder.next_frame(), Err(err.clone()));
    assert_eq!(decoder.next_frame(), Err(err.clone()));
    assert_eq!(decoder.finish(), Err(err));
}

#[test]
fn a_prelude_error_is_found_on_push() {
    let mut decoder = Decoder::new();
    decoder.push(&flip(&encode_event("e", b"{}"), 3));
    assert_eq!(decoder.buffered_len(), 0);
    assert!(matches!(
        decoder.finish(),
        Err(FrameError::PreludeCrcMismatch { .. })
    ));
    assert!(matches!(
        decoder.next_frame(),
        Err(FrameError::PreludeCrcMismatch { .. })
    ));
}

// ---------------------------------------------------------------------------
// Lengths
// ---------------------------------------------------------------------------

#[test]
fn a_frame_over_the_limit_is_refused_before_it_is_buffered() {
    let mut decoder = Decoder::with_max_frame_len(1024);
    decoder.push(&prelude(1 << 30, 0));
    assert_eq!(decoder.buffered_len(), 0);
    let err = FrameError::TooLong {
        total_len: 1 << 30,
        max: 1024,
    };
    assert_eq!(decoder.next_frame(), Err(err.clone()));
    decoder.push(&[0; 4096]);
    assert_eq!(decoder.buffered_len(), 0);
    assert_eq!(decoder.finish(), Err(err));
}

#[test]
fn the_default_limit_is_16_mib() {
    let max = 16 * 1024 * 1024;
    assert_eq!(DEFAULT_MAX_FRAME_LEN, max);
    let mut decoder = Decoder::new();
    decoder.push(&prelude(u32::try_from(max).unwrap() + 1, 0));
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::TooLong {
            total_len: u32::try_from(max).unwrap() + 1,
            max
        })
    );
    // Exactly at the limit is waited for, not refused.
    let mut decoder = Decoder::new();
    decoder.push(&prelude(u32::try_from(max).unwrap(), 0));
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(decoder.buffered_len(), PRELUDE_LEN);
}

#[test]
fn a_frame_exactly_at_the_limit_is_accepted() {
    let frame = encode_event("e", &[b'x'; 100]);
    let mut decoder = Decoder::with_max_frame_len(frame.len());
    decoder.push(&frame);
    assert!(decoder.next_frame().unwrap().is_some());
    let mut decoder = Decoder::with_max_frame_len(frame.len() - 1);
    decoder.push(&frame);
    assert!(matches!(
        decoder.next_frame(),
        Err(FrameError::TooLong { .. })
    ));
}

#[test]
fn a_frame_under_16_bytes_is_too_short() {
    for total in [0, 1, 12, 15] {
        let mut stream = prelude(total, 0);
        stream.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode_err(&stream),
            FrameError::TooShort { total_len: total }
        );
    }
}

#[test]
fn headers_longer_than_the_frame_are_refused() {
    // 20-byte frame: room for 4 bytes of headers.
    assert!(matches!(
        decode_all(&prelude(20, 4)),
        Err(FrameError::Incomplete { .. })
    ));
    for headers_len in [5, 20, u32::MAX] {
        assert_eq!(
            decode_err(&prelude(20, headers_len)),
            FrameError::HeadersLengthExceedsTotal {
                headers_len,
                total_len: 20
            }
        );
    }
}

#[test]
fn a_truncated_stream_fails_finish() {
    let (stream, expected) = mixed_stream();
    let boundaries: Vec<usize> = expected
        .iter()
        .scan(0, |end, m| {
            *end += encode(m).len();
            Some(*end)
        })
        .collect();
    for cut in 1..stream.len() {
        let result = decode_all(&stream[..cut]);
        if boundaries.contains(&cut) {
            assert!(result.is_ok(), "cut at {cut}");
        } else {
            let frame_start = boundaries
                .iter()
                .copied()
                .filter(|&b| b < cut)
                .max()
                .unwrap_or(0);
            assert_eq!(
                result,
                Err(FrameError::Incomplete {
                    buffered: cut - frame_start
                }),
                "cut at {cut}"
            );
        }
    }
}

#[test]
fn a_stream_cut_inside_the_prelude_fails_finish() {
    let mut decoder = Decoder::new();
    decoder.push(&encode_event("e", b"{}")[..11]);
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(
        decoder.finish(),
        Err(FrameError::Incomplete { buffered: 11 })
    );
}

// ---------------------------------------------------------------------------
// Malformed headers (CRCs valid, so the header checks are reached)
// ---------------------------------------------------------------------------

#[test]
fn a_header_running_past_its_section_is_truncated() {
    let cases: &[(&str, &[u8])] = &[
        ("name longer than the section", &[5, b'a', b'b']),
        ("no type byte", &[1, b'a']),
        ("short value cut", &[1, b'a', 3, 0x01]),
        ("integer value cut", &[1, b'a', 4, 0, 0, 0]),
        ("long value cut", &[1, b'a', 5, 0, 0, 0, 0, 0, 0, 0]),
        ("timestamp value cut", &[1, b'a', 8, 0]),
        (
            "uuid value cut",
            &[
                1, b'a', 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
            ],
        ),
        ("byte value missing", &[1, b'a', 2]),
        ("string length cut", &[1, b'a', 7, 0]),
        (
            "string longer than the section",
            &[1, b'a', 7, 0, 3, b'x', b'y'],
        ),
        (
            "byte array longer than the section",
            &[1, b'a', 6, 0xff, 0xff, 0],
        ),
    ];
    for (what, headers) in cases {
        // The payload after the section must not be read as header bytes.
        let frame = raw_frame(headers, b"payload bytes that must not be read");
        assert_eq!(
            decode_err(&frame),
            FrameError::TruncatedHeader {
                offset: PRELUDE_LEN
            },
            "{what}"
        );
    }
}

#[test]
fn a_truncated_second_header_names_its_offset() {
    let frame = raw_frame(&[1, b'a', 0, 1, b'b', 4, 0], b"");
    assert_eq!(
        decode_err(&frame),
        FrameError::TruncatedHeader {
            offset: PRELUDE_LEN + 3
        }
    );
}

#[test]
fn an_unknown_header_type_is_refused() {
    for type_byte in [10, 0x60, 0xff] {
        let frame = raw_frame(&[3, b'a', b'b', b'c', type_byte], b"");
        assert_eq!(
            decode_err(&frame),
            FrameError::BadHeaderType {
                name: "abc".to_owned(),
                type_byte
            }
        );
    }
}

#[test]
fn non_utf8_names_and_strings_are_refused() {
    let bad_name = raw_frame(&[1, b'a', 0, 2, 0xc3, 0x28, 0], b"");
    assert_eq!(
        decode_err(&bad_name),
        FrameError::HeaderNameNotUtf8 {
            offset: PRELUDE_LEN + 3
        }
    );
    let bad_string = raw_frame(&[1, b's', 7, 0, 3, b'a', 0xff, b'b'], b"");
    assert_eq!(
        decode_err(&bad_string),
        FrameError::HeaderValueNotUtf8 {
            name: "s".to_owned()
        }
    );
    // Byte arrays are not UTF-8 checked.
    let bytes = raw_frame(&[1, b'b', 6, 0, 2, 0xff, 0xfe], b"");
    assert_eq!(
        decode_all(&bytes).unwrap()[0].header("b"),
        Some(&HeaderValue::ByteArray(Bytes::from_static(&[0xff, 0xfe])))
    );
}

#[test]
fn more_than_1024_headers_are_refused() {
    // Each [0, 0] is a header with an empty name and the value true.
    let at_limit = raw_frame(&[0; 2 * MAX_HEADERS], b"");
    assert_eq!(decode_all(&at_limit).unwrap()[0].headers.len(), MAX_HEADERS);
    let over = raw_frame(&[0; 2 * (MAX_HEADERS + 1)], b"");
    assert_eq!(
        decode_err(&over),
        FrameError::TooManyHeaders { max: MAX_HEADERS }
    );
}

#[test]
fn the_decoder_accepts_values_up_to_the_wire_limit() {
    // The encoder stops at 32,767 bytes (AWS's runtimes' limit); the
    // decoder reads all a u16 length can say.
    let len = usize::from(u16::MAX);
    let mut headers = vec![1, b's', 7, 0xff, 0xff];
    headers.extend(std::iter::repeat_n(b'x', len));
    let m = decode_all(&raw_frame(&headers, b"")).unwrap().remove(0);
    assert_eq!(m.str_header("s").map(str::len), Some(len));
}

// ---------------------------------------------------------------------------
// AWS's published test vectors
// ---------------------------------------------------------------------------

// From awslabs/aws-c-event-stream, tests/message_deserializer_test.c and
// tests/message_streaming_decoder_test.c (commit d47b14c6ef0cc5170167).

/// `test_outgoing_no_op_valid`: no headers, no payload.
const AWS_C_NO_OP: &[u8] = &[
    0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff,
];

/// `test_outgoing_application_data_no_headers_valid`.
const AWS_C_NO_HEADERS: &[u8] = &[
    0x00, 0x00, 0x00, 0x1D, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x52, 0x8c, 0x5a, 0x7b, 0x27, 0x66, 0x6f,
    0x6f, 0x27, 0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0xc3, 0x65, 0x39, 0x36,
];

/// `test_outgoing_application_one_compressed_header_pair_valid`.
const AWS_C_ONE_HEADER: &[u8] = &[
    0x00, 0x00, 0x00, 0x3D, 0x00, 0x00, 0x00, 0x20, 0x07, 0xFD, 0x83, 0x96, 0x0C, b'c', b'o', b'n',
    b't', b'e', b'n', b't', b'-', b't', b'y', b'p', b'e', 0x07, 0x00, 0x10, b'a', b'p', b'p', b'l',
    b'i', b'c', b'a', b't', b'i', b'o', b'n', b'/', b'j', b's', b'o', b'n', 0x7b, 0x27, 0x66, 0x6f,
    0x6f, 0x27, 0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0x8D, 0x9C, 0x08, 0xB1,
];

/// `test_streaming_decoder_incoming_application_one_int32_header_pair_valid`.
const AWS_C_INT32_HEADER: &[u8] = &[
    0x00, 0x00, 0x00, 0x1b, 0x00, 0x00, 0x00, 0x0b, 0xe5, 0xc0, 0xa0, 0x72, 0x05, b'e', b'v', b'e',
    b'n', b't', 0x04, 0x00, 0x00, 0x00, 0x20, 0x04, 0xa1, 0xd4, 0x7c,
];

/// `..._variable_headers_with_empty_length_pair_valid`: an empty byte
/// array and an empty string.
const AWS_C_EMPTY_VALUES: &[u8] = &[
    0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x12, 0x2D, 0x9A, 0xD2, 0x45, 0x04, b'b', b'u', b'f',
    b'f', 0x06, 0x00, 0x00, 0x06, b's', b't', b'r', b'i', b'n', b'g', 0x07, 0x00, 0x00, 0xC8, 0x4C,
    0xF8, 0x53,
];

/// `test_streaming_decoder_incoming_application_one_bool_header_pair_valid`.
const AWS_C_BOOL_HEADER: &[u8] = &[
    0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x07, 0x29, 0x86, 0x01, 0x58, 0x05, b'e', b'v', b'e',
    b'n', b't', 0x00, 0x4b, 0x4d, 0x2b, 0xe7,
];

/// `test_streaming_decoder_incoming_illegal_header_length_relationship_fails`:
/// 8 bytes of headers in a 20-byte frame.
const AWS_C_ILLEGAL_HEADERS_LEN: &[u8] = &[
    0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x08, 0xfe, 0x99, 0x66, 0x19, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00,
];

/// `test_streaming_decoder_incoming_message_too_short`: total length 12.
const AWS_C_TOO_SHORT: &[u8] = &[
    0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00, 0xa0, 0xd2, 0x32, 0x68, 0x00,
];

#[test]
fn aws_c_valid_vectors_decode() {
    let foo_bar = Bytes::from_static(b"{'foo':'bar'}");
    let cases: [(&[u8], Message); 6] = [
        (AWS_C_NO_OP, Message::default()),
        (
            AWS_C_NO_HEADERS,
            Message {
                headers: vec![],
                payload: foo_bar.clone(),
            },
        ),
        (
            AWS_C_ONE_HEADER,
            Message {
                headers: vec![("content-type".to_owned(), "application/json".into())],
                payload: foo_bar,
            },
        ),
        (
            AWS_C_INT32_HEADER,
            message(&[("event", HeaderValue::Integer(0x20))], b""),
        ),
        (
            AWS_C_EMPTY_VALUES,
            message(
                &[
                    ("buff", HeaderValue::ByteArray(Bytes::new())),
                    ("string", HeaderValue::String(String::new())),
                ],
                b"",
            ),
        ),
        (
            AWS_C_BOOL_HEADER,
            message(&[("event", HeaderValue::Bool(true))], b""),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode_all(bytes).unwrap(), vec![expected.clone()]);
        // And our encoder reproduces the vector byte for byte.
        assert_eq!(encode(&expected), bytes, "{expected:?}");
    }
}

#[test]
fn aws_c_multiple_messages_in_seven_byte_reads() {
    // `test_streaming_decoder_incoming_multiple_messages`: the no-op and
    // one-header messages back to back, fed 7 bytes at a time so reads end
    // inside preludes and across the frame boundary.
    let stream = [AWS_C_NO_OP, AWS_C_ONE_HEADER].concat();
    let messages = decode_chunked(stream.chunks(7)).unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0], Message::default());
    assert_eq!(
        messages[1].str_header("content-type"),
        Some("application/json")
    );
    assert_eq!(&messages[1].payload[..], b"{'foo':'bar'}");
}

#[test]
fn aws_c_invalid_vectors_fail() {
    assert_eq!(
        decode_err(AWS_C_ILLEGAL_HEADERS_LEN),
        FrameError::HeadersLengthExceedsTotal {
            headers_len: 8,
            total_len: 20
        }
    );
    assert_eq!(
        decode_err(AWS_C_TOO_SHORT),
        FrameError::TooShort { total_len: 12 }
    );
}

// From smithy-lang/smithy-rs, rust-runtime/aws-smithy-eventstream/test_data/
// (commit 56ee88c5c6edd967967656f1e29f46b229105e79), as hex.

/// `valid_with_all_headers_and_payload`.
const SMITHY_ALL_HEADERS: &[&str] = &[
    "000000960000007a8bb495fb0474727565000566616c73650104627974650232",
    "0573686f7274034e2003696e74040007a120046c6f6e67050000000ba43b7400",
    "05627974657306000a736f6d6520627974657303737472070008736f6d652073",
    "74720474696d6508000000012a05f200047575696409b79bc914de214e13b8b2",
    "bc47e85b7f0b736f6d65207061796c6f616401a05860",
];
/// `valid_empty_payload`.
const SMITHY_EMPTY_PAYLOAD: &[&str] =
    &["0000001f0000000f172dc2ab0b736f6d652d6865616465720301f4933c5cad"];
/// `valid_no_headers`.
const SMITHY_NO_HEADERS: &[&str] = &[
    "0000002400000000516356ad616e6f746865722074657374207061796c6f6164",
    "8df80e65",
];
/// `invalid_prelude_checksum`: the valid frame with `deadbeef` as its
/// prelude CRC.
const SMITHY_BAD_PRELUDE_CRC: &[&str] = &[
    "000000960000007adeadbeef0474727565000566616c73650104627974650232",
    "0573686f7274034e2003696e74040007a120046c6f6e67050000000ba43b7400",
    "05627974657306000a736f6d6520627974657303737472070008736f6d652073",
    "74720474696d6508000000012a05f200047575696409b79bc914de214e13b8b2",
    "bc47e85b7f0b736f6d65207061796c6f616401a05860",
];
/// `invalid_message_checksum`: `deadbeef` as the message CRC.
const SMITHY_BAD_MESSAGE_CRC: &[&str] = &[
    "000000960000007a8bb495fb0474727565000566616c73650104627974650232",
    "0573686f7274034e2003696e74040007a120046c6f6e67050000000ba43b7400",
    "05627974657306000a736f6d6520627974657303737472070008736f6d652073",
    "74720474696d6508000000012a05f200047575696409b79bc914de214e13b8b2",
    "bc47e85b7f0b736f6d65207061796c6f6164deadbeef",
];
/// `invalid_header_value_type`: the `byte` header's type is 0x60.
const SMITHY_BAD_VALUE_TYPE: &[&str] = &[
    "000000960000007a8bb495fb0474727565000566616c73650104627974656032",
    "0573686f7274034e2003696e74040007a120046c6f6e67050000000ba43b7400",
    "05627974657306000a736f6d6520627974657303737472070008736f6d652073",
    "74720474696d6508000000012a05f200047575696409b79bc914de214e13b8b2",
    "bc47e85b7f0b736f6d65207061796c6f616401a05860",
];
/// `invalid_header_string_value_length`: the `str` value claims 0xffff.
const SMITHY_BAD_STRING_LEN: &[&str] = &[
    "000000960000007a8bb495fb0474727565000566616c73650104627974650232",
    "0573686f7274034e2003696e74040007a120046c6f6e67050000000ba43b7400",
    "05627974657306000a736f6d652062797465730373747207ffff736f6d652073",
    "74720474696d6508000000012a05f200047575696409b79bc914de214e13b8b2",
    "bc47e85b7f0b736f6d65207061796c6f616401a05860",
];
/// `invalid_header_name_length`: a name length of 0xff.
const SMITHY_BAD_NAME_LEN: &[&str] = &[
    "000000960000007a8bb495fb0474727565000566616c736501ff627974650232",
    "0573686f7274034e2003696e74040007a120046c6f6e67050000000ba43b7400",
    "05627974657306000a736f6d6520627974657303737472070008736f6d652073",
    "74720474696d6508000000012a05f200047575696409b79bc914de214e13b8b2",
    "bc47e85b7f0b736f6d65207061796c6f616401a05860",
];
/// `invalid_headers_length`: 77 bytes of headers in an 89-byte frame.
const SMITHY_BAD_HEADERS_LEN: &[&str] = &[
    "000000590000004d584c4ffe0474727565000566616c73650104627974650232",
    "0573686f7274034e2003696e74040007a120046c6f6e67050000000ba43b7400",
    "05627974657306000a736f6d652062797465730373747207ff",
];
/// `invalid_header_string_length_cut_off`: the `str` value runs past the
/// headers section.
const SMITHY_STRING_CUT_OFF: &[&str] = &[
    "0000005d0000004dadcce93e0474727565000566616c73650104627974650232",
    "0573686f7274034e2003696e74040007a120046c6f6e67050000000ba43b7400",
    "05627974657306000a736f6d652062797465730373747207ff00000000",
];
/// `invalid_header_name_length_too_long`: a mangled frame whose name
/// length (0x66) runs past the headers section.
const SMITHY_NAME_TOO_LONG: &[&str] = &[
    "0000005d0000004dadcce93e0474727565006605616c73650104627974650232",
    "0573685d0ba43b740005627974657306000a736f6d6520627974657303737472",
    "0705616c736501046279746502320573686f7274034e2003696e74040007a120",
    "046c6f6e670500005d0ba43b74000562797465730600ff00000000",
];

fn smithy_all_headers_message() -> Message {
    message(
        &[
            ("true", HeaderValue::Bool(true)),
            ("false", HeaderValue::Bool(false)),
            ("byte", HeaderValue::Byte(50)),
            ("short", HeaderValue::Short(20_000)),
            ("int", HeaderValue::Integer(500_000)),
            ("long", HeaderValue::Long(50_000_000_000)),
            (
                "bytes",
                HeaderValue::ByteArray(Bytes::from_static(b"some bytes")),
            ),
            ("str", "some str".into()),
            ("time", HeaderValue::Timestamp(5_000_000_000)),
            ("uuid", HeaderValue::Uuid(UUID)),
        ],
        b"some payload",
    )
}

#[test]
fn smithy_valid_vectors_decode_and_reencode() {
    let cases = [
        (SMITHY_ALL_HEADERS, smithy_all_headers_message()),
        (
            SMITHY_EMPTY_PAYLOAD,
            message(&[("some-header", HeaderValue::Short(500))], b""),
        ),
        (SMITHY_NO_HEADERS, message(&[], b"another test payload")),
    ];
    for (vector, expected) in cases {
        let bytes = hex(vector);
        assert_eq!(decode_all(&bytes).unwrap(), vec![expected.clone()]);
        assert_eq!(encode(&expected), bytes, "{expected:?}");
    }
}

#[test]
fn smithy_three_frames_in_every_chunk_size() {
    // As smithy-rs's `multiple_streaming_messages` test feeds them.
    let stream = [SMITHY_ALL_HEADERS, SMITHY_EMPTY_PAYLOAD, SMITHY_NO_HEADERS]
        .iter()
        .flat_map(|v| hex(v))
        .collect::<Vec<_>>();
    let expected = decode_all(&stream).unwrap();
    assert_eq!(expected.len(), 3);
    for size in 1..=stream.len() {
        assert_eq!(
            decode_chunked(stream.chunks(size)).unwrap(),
            expected,
            "{size}"
        );
    }
}

#[test]
fn smithy_checksum_vectors_fail_with_the_same_values() {
    assert_eq!(
        decode_err(&hex(SMITHY_BAD_PRELUDE_CRC)),
        FrameError::PreludeCrcMismatch {
            expected: 0x8BB4_95FB,
            actual: 0xDEAD_BEEF
        }
    );
    assert_eq!(
        decode_err(&hex(SMITHY_BAD_MESSAGE_CRC)),
        FrameError::MessageCrcMismatch {
            expected: 0x01a0_5860,
            actual: 0xDEAD_BEEF
        }
    );
    assert_eq!(
        decode_err(&hex(SMITHY_BAD_HEADERS_LEN)),
        FrameError::HeadersLengthExceedsTotal {
            headers_len: 77,
            total_len: 89
        }
    );
}

#[test]
fn smithy_malformed_header_vectors() {
    // These vectors corrupt a header but keep the original CRCs (smithy-rs
    // parses headers before checking the message CRC). Checking the CRC
    // first, we report them as corruption; resealed with valid CRCs, they
    // reach the header checks.
    let bad_type = FrameError::BadHeaderType {
        name: "byte".to_owned(),
        type_byte: 0x60,
    };
    // "true", "false" (6 + 7 bytes) precede the cut header in the first
    // two; "true" .. "bytes" (77 bytes) in the third.
    let cases = [
        (SMITHY_BAD_VALUE_TYPE, bad_type),
        (
            SMITHY_BAD_NAME_LEN,
            FrameError::TruncatedHeader {
                offset: PRELUDE_LEN + 13,
            },
        ),
        (
            SMITHY_BAD_STRING_LEN,
            FrameError::TruncatedHeader {
                offset: PRELUDE_LEN + 71,
            },
        ),
        (
            SMITHY_STRING_CUT_OFF,
            FrameError::TruncatedHeader {
                offset: PRELUDE_LEN + 71,
            },
        ),
        (
            SMITHY_NAME_TOO_LONG,
            FrameError::TruncatedHeader {
                offset: PRELUDE_LEN + 6,
            },
        ),
    ];
    for (vector, resealed_error) in cases {
        let mut bytes = hex(vector);
        assert!(
            matches!(decode_err(&bytes), FrameError::MessageCrcMismatch { .. }),
            "{:?}",
            decode_err(&bytes)
        );
        reseal(&mut bytes);
        assert_eq!(decode_err(&bytes), resealed_error);
    }
}

// ---------------------------------------------------------------------------
// Bedrock
// ---------------------------------------------------------------------------

#[test]
fn a_converse_stream_response_decodes_in_order() {
    let stream = converse_stream_bytes();
    // Reads of 13 bytes: never aligned with a frame.
    let messages = decode_chunked(stream.chunks(13)).unwrap();
    let kinds: Vec<MessageKind<'_>> = messages.iter().map(Message::kind).collect();
    let event = |event_type| MessageKind::Event { event_type };
    assert_eq!(
        kinds,
        [
            event("messageStart"),
            event("contentBlockDelta"),
            event("contentBlockDelta"),
            event("contentBlockStop"),
            event("messageStop"),
            event("metadata"),
        ]
    );
    for m in &messages {
        assert_eq!(m.str_header(":content-type"), Some("application/json"));
    }
    assert_eq!(json(&messages[0].payload)["role"], "assistant");
    let text: String = messages[1..3]
        .iter()
        .map(|m| {
            json(&m.payload)["delta"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "Hello, world! \u{e9}\u{4e16}");
    assert_eq!(json(&messages[3].payload)["contentBlockIndex"], 0);
    assert_eq!(json(&messages[4].payload)["stopReason"], "end_turn");
    let metadata = json(&messages[5].payload);
    assert_eq!(
        metadata["usage"],
        json!({"inputTokens": 25, "outputTokens": 9, "totalTokens": 34})
    );
    assert_eq!(metadata["metrics"]["latencyMs"], 421);
}

#[test]
fn bedrock_exceptions_decode_mid_stream() {
    let throttling = encode_exception(
        "throttlingException",
        br#"{"message":"Too many requests, please wait before trying again."}"#,
    );
    let model_error = encode_exception(
        "modelStreamErrorException",
        br#"{"message":"Model stream failed","originalMessage":"upstream overloaded","originalStatusCode":529}"#,
    );
    let stream = [
        encode_event("messageStart", br#"{"role":"assistant"}"#),
        throttling,
        model_error,
    ]
    .concat();
    let messages = decode_chunked(stream.chunks(5)).unwrap();
    assert_eq!(
        messages[1].kind(),
        MessageKind::Exception {
            exception_type: "throttlingException"
        }
    );
    assert_eq!(
        json(&messages[1].payload)["message"],
        "Too many requests, please wait before trying again."
    );
    assert_eq!(
        messages[2].kind(),
        MessageKind::Exception {
            exception_type: "modelStreamErrorException"
        }
    );
    let body = json(&messages[2].payload);
    assert_eq!(body["originalStatusCode"], 529);
    assert_eq!(body["originalMessage"], "upstream overloaded");
}

#[test]
fn an_unmodeled_error_frame_decodes() {
    let messages = decode_all(&encode_error(
        "InternalServerException",
        "An internal error occurred",
    ))
    .unwrap();
    assert_eq!(
        messages[0].kind(),
        MessageKind::Error {
            code: "InternalServerException",
            message: Some("An internal error occurred"),
        }
    );
}

#[test]
fn bedrock_frame_layout_is_exact() {
    // The frame for one small event, worked by hand: prelude, three string
    // headers in order, payload, CRC.
    let frame = encode_event("messageStop", b"{}");
    let headers: Vec<u8> = [
        &[11][..],
        b":event-type",
        &[7, 0, 11],
        b"messageStop",
        &[13],
        b":content-type",
        &[7, 0, 16],
        b"application/json",
        &[13],
        b":message-type",
        &[7, 0, 5],
        b"event",
    ]
    .concat();
    let total = 16 + headers.len() + 2;
    assert_eq!(frame.len(), total);
    assert_eq!(frame[..4], u32::try_from(total).unwrap().to_be_bytes());
    assert_eq!(
        frame[4..8],
        u32::try_from(headers.len()).unwrap().to_be_bytes()
    );
    assert_eq!(frame[8..12], crc32(&frame[..8]).to_be_bytes());
    assert_eq!(frame[12..12 + headers.len()], headers[..]);
    assert_eq!(&frame[12 + headers.len()..total - 4], b"{}");
    assert_eq!(frame[total - 4..], crc32(&frame[..total - 4]).to_be_bytes());
}

#[test]
fn errors_say_what_went_wrong() {
    let cases = [
        (
            FrameError::PreludeCrcMismatch {
                expected: 0x8BB4_95FB,
                actual: 0xDEAD_BEEF,
            },
            "event stream prelude CRC mismatch: computed 0x8bb495fb, frame has 0xdeadbeef",
        ),
        (
            FrameError::TooLong {
                total_len: 1 << 30,
                max: 1024,
            },
            "event stream frame claims 1073741824 bytes, over the 1024-byte limit",
        ),
        (
            FrameError::Incomplete { buffered: 7 },
            "event stream ended inside a frame (7 bytes left over)",
        ),
    ];
    for (e, text) in cases {
        assert_eq!(e.to_string(), text);
    }
    assert_eq!(
        EncodeError::HeaderNameTooLong { len: 300 }.to_string(),
        "event stream header name of 300 bytes exceeds 255"
    );
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        any::<bool>().prop_map(HeaderValue::Bool),
        any::<i8>().prop_map(HeaderValue::Byte),
        any::<i16>().prop_map(HeaderValue::Short),
        any::<i32>().prop_map(HeaderValue::Integer),
        any::<i64>().prop_map(HeaderValue::Long),
        proptest::collection::vec(any::<u8>(), 0..300)
            .prop_map(|v| HeaderValue::ByteArray(Bytes::from(v))),
        ".{0,40}".prop_map(HeaderValue::String),
        any::<i64>().prop_map(HeaderValue::Timestamp),
        any::<[u8; 16]>().prop_map(HeaderValue::Uuid),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        proptest::collection::vec(("[:a-zA-Z0-9_\u{e9}-]{0,30}", header_value()), 0..12),
        proptest::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(headers, payload)| Message {
            headers,
            payload: Bytes::from(payload),
        })
}

/// Cuts `bytes` at the given points (taken modulo its length, sorted).
fn cut<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in points {
        chunks.push(&bytes[start..p]);
        start = p;
    }
    chunks.push(&bytes[start..]);
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_messages_round_trip_however_split(
        messages in proptest::collection::vec(arb_message(), 1..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let stream: Vec<u8> = messages.iter().flat_map(|m| try_encode(m).unwrap()).collect();
        prop_assert_eq!(decode_chunked(cut(&stream, &cuts)).unwrap(), messages);
    }

    #[test]
    fn prop_any_single_bit_flip_is_caught(m in arb_message(), bit in any::<usize>()) {
        let frame = encode(&m);
        let bad = flip(&frame, bit % (frame.len() * 8));
        let result = decode_all(&bad);
        prop_assert!(
            matches!(
                result,
                Err(FrameError::PreludeCrcMismatch { .. } | FrameError::MessageCrcMismatch { .. })
            ),
            "{:?}",
            result
        );
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut decoder = Decoder::with_max_frame_len(4096);
        for chunk in cut(&bytes, &cuts) {
            decoder.push(chunk);
            while let Ok(Some(_)) = decoder.next_frame() {}
        }
        let _ = decoder.finish();
    }

    #[test]
    fn prop_resealed_garbage_never_panics(
        headers in proptest::collection::vec(any::<u8>(), 0..256),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        // Valid CRCs around random header bytes: the header parser sees
        // arbitrary input, and must report rather than panic.
        let frame = raw_frame(&headers, &payload);
        match decode_all(&frame) {
            Ok(messages) => {
                prop_assert_eq!(messages.len(), 1);
                prop_assert_eq!(&messages[0].payload[..], &payload[..]);
            }
            Err(e) => {
                let crc_error = matches!(
                    e,
                    FrameError::PreludeCrcMismatch { .. } | FrameError::MessageCrcMismatch { .. }
                );
                prop_assert!(!crc_error, "{:?}", e);
            }
        }
    }
}
