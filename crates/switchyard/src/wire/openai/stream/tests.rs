//! The Chat Completions stream's decoder, encoder and relay, against
//! serde's reading and the documented chunks.

use super::*;

/// Plain text chunks are walked; every other chunk is left to serde,
/// and what the two read agrees.
#[test]
fn plain_content_chunks_are_walked_and_everything_else_left_to_serde() {
    const RAW_NEWLINE: &str = "{\"choices\":[{\"delta\":{\"content\":\"a\nb\"}}]}";
    fn walked(s: &str) -> Option<Option<&str>> {
        plain_content_chunk(s.as_bytes())
    }
    let bench = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" quick"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x3Tq"}"#;
    assert_eq!(walked(bench), Some(Some(" quick")));
    assert_eq!(
        walked(
            r#"{"choices":[{"delta":{"role":"assistant","content":null,"refusal":null},"content_filter_results":{}}]}"#
        ),
        Some(None)
    );
    assert_eq!(walked(r#"{"choices":[{"delta":null}]}"#), Some(None));
    for other in [
        r#"{"choices":[{"delta":{"content":"a\nb"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
        r#"{"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":1}}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#,
        r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#,
        r#"{"choices":[]}"#,
        r#"{"choices":[{"delta":{"content":"a"}}],"choices":[]}"#,
        r#"{"id":"a","id":"b","choices":[{"delta":{"content":"a"}}]}"#,
        r#"{"created":"soon","choices":[{"delta":{"content":"a"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a"}}],"x_groq":{"id":"x"}}"#,
        r#"{"choices":[{"delta":{"content":"a"}}],"error":null}"#,
        r#"{"choices":[{"delta":{"content":7}}]}"#,
        r#"{"usage":null}"#,
        r#"{"choices":[{"delta":{"content":"a"}}]} x"#,
        // What the walk would skip without checking is not taken.
        r#"{"choices":[{"delta":{"content":"a"},"logprobs":{"x" 1}}]}"#,
        r#"{"service_tier":1.2.3,"choices":[{"delta":{"content":"a"}}]}"#,
        r#"{"unknown":[,],"choices":[{"delta":{"content":"a"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a","extra":1}}]}"#,
        r#"{"choices":[{"delta":{"content":"a"},"content_filter_results":{"hate":{}}}]}"#,
        // A raw control character, a leading zero.
        RAW_NEWLINE,
        r#"{"created":0123,"choices":[{"delta":{"content":"a"}}]}"#,
        r#"{"choices":[{"index":01,"delta":{"content":"a"}}]}"#,
    ] {
        assert_eq!(walked(other), None, "{other}");
    }
    // Once started, the walked chunks and serde's give the same events.
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for c in [
        r#"{"id":"c1","model":"m","created":1,"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
        bench,
        r#"{"choices":[{"delta":{"content":"esc\"aped"}}]}"#,
        r#"{"choices":[{"delta":{"content":""}}]}"#,
        r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
    ] {
        d.decode(&sse(c), &mut out).unwrap();
    }
    let texts = crate::chat::texts(&out);
    assert_eq!(texts, [" quick", "esc\"aped"]);
    assert!(
        matches!(&out[0], Event::Start { id, model, created: 1 } if id == "c1" && model == "m"),
        "{out:?}"
    );
    // A chunk serde refuses is refused, not walked past.
    assert!(d.decode(&sse(RAW_NEWLINE), &mut Vec::new()).is_err());
    assert!(matches!(
        out.last(),
        Some(Event::Finish {
            reason: FinishReason::Stop,
            ..
        })
    ));
}

/// A chunk written from its shared head is byte for byte what serde
/// writes for the whole [`ChunkOut`], for every kind of delta, finish
/// and usage setting, and after the upstream renames the answer.
#[test]
fn a_chunk_from_its_head_is_what_serde_writes() {
    let tool = |id: Option<&'static str>, name: Option<&'static str>| ToolCallDeltaOut {
        index: 2,
        id,
        kind: id.map(|_| "function"),
        function: FunctionDeltaOut {
            name,
            arguments: "{\"q\":\"é\\n\"}",
        },
    };
    let deltas = || {
        vec![
            (
                DeltaOut {
                    role: Some("assistant"),
                    content: Some(""),
                    ..DeltaOut::default()
                },
                None,
            ),
            (
                DeltaOut {
                    content: Some("a \"quoted\"\n\u{1}line ✓"),
                    ..DeltaOut::default()
                },
                None,
            ),
            (
                DeltaOut {
                    reasoning_content: Some("hm"),
                    ..DeltaOut::default()
                },
                None,
            ),
            (
                DeltaOut {
                    tool_calls: vec![tool(Some("call_1"), Some("f"))],
                    ..DeltaOut::default()
                },
                None,
            ),
            (
                DeltaOut {
                    tool_calls: vec![tool(None, None)],
                    ..DeltaOut::default()
                },
                None,
            ),
            (DeltaOut::default(), Some(FinishReason::Stop)),
            (DeltaOut::default(), Some(FinishReason::ToolCalls)),
        ]
    };
    for include_usage in [false, true] {
        let mut e = StreamEncoder::new("chatcmpl-\"x\"".into(), "m/ü".into(), 7, include_usage);
        for rename in [false, true] {
            if rename {
                let start = Event::Start {
                    id: "id2".into(),
                    model: "m2".into(),
                    created: 9,
                };
                e.encode(&start, &mut sse::Writer::new(0));
            }
            for ((delta, finish), (copy, _)) in deltas().into_iter().zip(deltas()) {
                let expected = crate::wire::to_vec(&ChunkOut {
                    id: &e.id,
                    object: "chat.completion.chunk",
                    created: e.created,
                    model: &e.model,
                    choices: vec![ChunkChoiceOut {
                        index: 0,
                        finish_reason: finish.as_ref().map(encode_finish),
                        delta: copy,
                        logprobs: None,
                    }],
                    usage: include_usage.then_some(None),
                });
                let mut w = sse::Writer::new(0);
                e.chunk(&mut w, delta, finish.as_ref());
                let mut want = sse::Writer::new(0);
                want.event(None, &expected);
                assert_eq!(
                    String::from_utf8_lossy(&w.buf),
                    String::from_utf8_lossy(&want.buf)
                );
            }
        }
    }
}

fn sse(data: &str) -> sse::Event {
    sse::Event {
        event: None,
        data: data.as_bytes().to_vec().into(),
        id: None,
    }
}

fn finishes(chunks: &[&str]) -> Vec<FinishReason> {
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for c in chunks {
        d.decode(&sse(c), &mut out).unwrap();
    }
    out.into_iter()
        .filter_map(|e| match e {
            Event::Finish { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

/// Azure's first chunk carries only its prompt filter's results; the
/// answer (and its id) starts with the next, and a filtered answer ends
/// as a content filter.
#[test]
fn azure_prompt_filter_chunk_is_not_the_start() {
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for c in [
        r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}"#,
        r#"{"choices":[{"content_filter_results":{},"delta":{"content":"Hi","role":"assistant"},"finish_reason":null,"index":0}],"created":1733000000,"id":"chatcmpl-az1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_1"}"#,
        r#"{"choices":[{"content_filter_results":{"hate":{"filtered":true,"severity":"high"}},"delta":{},"finish_reason":"content_filter","index":0}],"created":1733000000,"id":"chatcmpl-az1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk"}"#,
    ] {
        d.decode(&sse(c), &mut out).unwrap();
    }
    assert!(
        matches!(&out[0], Event::Start { id, model, .. } if id == "chatcmpl-az1" && model == "gpt-4o-2024-11-20"),
        "{out:?}"
    );
    assert!(matches!(&out[1], Event::TextDelta(t) if t == "Hi"));
    assert!(matches!(
        &out[2],
        Event::Finish {
            reason: FinishReason::ContentFilter,
            ..
        }
    ));
    let mut r = Relay::new(false);
    let mut w = sse::Writer::new(0);
    r.relay(&sse(r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}"#), &mut w).unwrap();
    r.relay(
        &sse(
            r#"{"choices":[{"delta":{"content":"Hi"},"index":0}],"id":"chatcmpl-az1","model":"m"}"#,
        ),
        &mut w,
    )
    .unwrap();
    assert_eq!(
        r.first_id,
        Some(("chatcmpl-az1".to_owned(), "m".to_owned()))
    );
}

/// Forced tool calls and refusals both end with `stop`; what reaches
/// another dialect says what they were.
#[test]
fn stop_after_tool_calls_or_a_refusal_says_so() {
    let called = finishes(&[
        r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    ]);
    assert_eq!(called, [FinishReason::ToolCalls]);
    let refused = finishes(&[
        r#"{"id":"c","choices":[{"index":0,"delta":{"refusal":"I can't help with that."},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    ]);
    assert_eq!(refused, [FinishReason::Refusal]);
    let plain = finishes(&[
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}"#,
    ]);
    assert_eq!(plain, [FinishReason::Stop]);
    let r = super::super::response::decode_response(
        br#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"stop"}]}"#,
    )
    .unwrap();
    assert_eq!(r.finish, Some(FinishReason::ToolCalls));
}

/// A server that sends no `index`, one parallel call per chunk: each
/// `id` opens a call of its own, argument chunks go to the last one.
#[test]
fn calls_without_an_index_stay_apart() {
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for c in [
        r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_a","type":"function","function":{"name":"a","arguments":""}}]},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"{\"x\":1}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_b","type":"function","function":{"name":"b","arguments":"{\"y\":2}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
    ] {
        d.decode(&sse(c), &mut out).unwrap();
    }
    let calls: Vec<String> = out
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallStart { index, id, name } => Some(format!("start {index} {id} {name}")),
            Event::ToolCallDelta { index, arguments } => Some(format!("args {index} {arguments}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            "start 0 call_a a",
            r#"args 0 {"x":1}"#,
            "start 1 call_b b",
            r#"args 1 {"y":2}"#
        ]
    );
}

#[test]
fn the_role_chunk_waits_for_the_answer() {
    let mut e = StreamEncoder::new("id".into(), "m".into(), 1, false);
    let mut w = sse::Writer::new(0);
    e.encode(
        &Event::Start {
            id: "chatcmpl-1".into(),
            model: "m2".into(),
            created: 2,
        },
        &mut w,
    );
    assert!(w.buf.is_empty(), "nothing before the answer begins");
    e.encode(&Event::TextDelta("hi".into()), &mut w);
    let text = String::from_utf8_lossy(&w.buf).into_owned();
    let role = text.find(r#""role":"assistant""#).unwrap();
    let hi = text.find(r#""content":"hi""#).unwrap();
    assert!(role < hi && text.contains("chatcmpl-1"), "{text}");
    // An empty answer still opens with the role chunk.
    let mut e = StreamEncoder::new("id".into(), "m".into(), 1, false);
    let mut w = sse::Writer::new(0);
    e.finish(&mut w);
    assert!(String::from_utf8_lossy(&w.buf).contains("assistant"));
}

#[test]
fn the_walk_and_serde_relay_alike() {
    let chunks = [
        r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"say \"hi\" {"},"finish_reason":null}]}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":null}"#,
        r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"usage":{"prompt_tokens":9,"completion_tokens":1}}}"#,
    ];
    for include_usage in [false, true] {
        let (mut fast, mut slow) = (Relay::new(include_usage), Relay::new(include_usage));
        let (mut wf, mut ws) = (sse::Writer::new(0), sse::Writer::new(0));
        for c in chunks {
            assert!(FastPeek::of(c.as_bytes(), true).is_some(), "{c}");
            fast.relay(&sse(c), &mut wf).unwrap();
            slow.relay_decoded(&sse(c), &mut ws).unwrap();
        }
        assert_eq!(wf.take(), ws.take());
        assert_eq!(fast.usage, slow.usage);
        assert_eq!(fast.finish, slow.finish);
        assert_eq!(fast.first_id, slow.first_id);
        assert_eq!(fast.usage.map(|u| u.input_tokens), Some(9));
    }
    // Errors and what the walk refuses go the decoding way.
    let mut r = Relay::new(false);
    let mut w = sse::Writer::new(0);
    assert!(FastPeek::of(br#"{"error":{"message":"boom"}}"#, true).is_none());
    assert!(
        r.relay(&sse(r#"{"error":{"message":"boom"}}"#), &mut w)
            .is_err()
    );
    assert!(r.relay(&sse(r#"{"id":"c1","choices":[}"#), &mut w).is_err());
    assert!(FastPeek::of(br#"{"id":"c\u0031","choices":[]}"#, true).is_none());
}

/// A chunk relayed unread has nothing serde would read in it; every
/// way of writing a member the relay reads sends the chunk to be read.
#[test]
fn a_chunk_relayed_unread_has_nothing_to_read() {
    let unread = [
        r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-x","choices":[{"index":0,"delta":{"content":" quick"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"choices":[{"delta":{"content":"say \"usage\": {1}"},"finish_reason" : null}], "usage" :null, "error":null}"#,
        r#"{"choices":[{"delta":{"content":"error"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a \"usage"}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"usage\":1}"}}]}}]}"#,
    ];
    let read = [
        r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"choices":[{"delta":{},"finish_reason" :	"length"}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
        r#"{"choices":[],"usage":null,"usage":{"prompt_tokens":1}}"#,
        r#"{"choices":[{"delta":{"content":"a"}}],"x_groq":{"usage":{"prompt_tokens":9}}}"#,
        r#"{"error":{"message":"boom"}}"#,
        r#"{"choices":[{"delta":{"content":"a"}}],"\u0075sage":{"prompt_tokens":1}}"#,
        r#"{"choices":[{"delta":{"content":"caf\u00e9"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a"},"logprobs":{"usage":1}}]}"#,
    ];
    for c in unread {
        assert!(walk::reads_nothing(c.as_bytes()), "{c}");
        let peek: Peek = serde_json::from_str(c).unwrap();
        assert!(
            peek.usage.is_none() && peek.x_groq.is_none() && peek.error.is_none(),
            "{c}"
        );
        assert!(
            peek.choices.iter().all(|c| c.finish_reason.is_none()),
            "{c}"
        );
    }
    for c in read {
        assert!(!walk::reads_nothing(c.as_bytes()), "{c}");
    }
    // Wherever the eight-byte words fall.
    for pad in 0..17 {
        let pad = " ".repeat(pad);
        let chunk = |usage: &str| format!(r#"{pad}{{"a":1,"usage":{usage}}}"#);
        assert!(walk::reads_nothing(chunk("null").as_bytes()), "{pad:?}");
        assert!(
            !walk::reads_nothing(chunk(r#"{"x":1}"#).as_bytes()),
            "{pad:?}"
        );
        let escaped = format!(r#"{pad}{{"a":"\u00e9"}}"#);
        assert!(!walk::reads_nothing(escaped.as_bytes()), "{pad:?}");
    }
    // Once the stream has its id, a chunk with nothing to read goes
    // out as the upstream wrote it, unchecked, as through any proxy;
    // before, it is read (and refused if it is not JSON).
    let mut r = Relay::new(false);
    let mut w = sse::Writer::new(0);
    assert!(r.relay(&sse(r#"{"id":"c1","choices":[}"#), &mut w).is_err());
    r.relay(&sse(unread[0]), &mut w).unwrap();
    r.relay(&sse(r#"{"id":"c1","choices":[}"#), &mut w).unwrap();
    let text = String::from_utf8(w.take().to_vec()).unwrap();
    assert!(
        text.ends_with("data: {\"id\":\"c1\",\"choices\":[}\n\n"),
        "{text}"
    );
}

#[test]
fn tool_call_deltas_decode_in_order() {
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for c in [
        r#"{"id":"c1","model":"m","created":5,"choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}}]}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":"{}"}}]}}]}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}"#,
        r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
        "[DONE]",
    ] {
        d.decode(&sse(c), &mut out).unwrap();
    }
    assert!(d.done);
    assert_eq!(
        out,
        vec![
            Event::Start {
                id: "c1".into(),
                model: "m".into(),
                created: 5
            },
            Event::ToolCallStart {
                index: 0,
                id: "call_a".into(),
                name: "f".into()
            },
            Event::ToolCallDelta {
                index: 0,
                arguments: "{\"x\":".into()
            },
            Event::ToolCallStart {
                index: 1,
                id: "call_b".into(),
                name: "g".into()
            },
            Event::ToolCallDelta {
                index: 1,
                arguments: "{}".into()
            },
            Event::ToolCallDelta {
                index: 0,
                arguments: "1}".into()
            },
            Event::Finish {
                reason: FinishReason::ToolCalls,
                stop_sequence: None
            },
            Event::Usage(Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            }),
        ]
    );
}

#[test]
fn error_chunks_become_stream_errors() {
    let mut d = StreamDecoder::default();
    let e = d
        .decode(
            &sse(r#"{"error":{"message":"boom","type":"server_error"}}"#),
            &mut Vec::new(),
        )
        .unwrap_err();
    assert_eq!(
        e,
        StreamError::Upstream {
            status: 500,
            kind: Some("server_error".into()),
            message: "boom".into()
        }
    );
}

#[test]
fn relay_holds_back_only_the_usage_chunk_nobody_asked_for() {
    let mut r = Relay::new(false);
    let mut w = sse::Writer::new(0);
    r.relay(
        &sse(r#"{"id":"a","choices":[{"delta":{"content":"hi"}}]}"#),
        &mut w,
    )
    .unwrap();
    r.relay(
        &sse(r#"{"id":"a","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#),
        &mut w,
    )
    .unwrap();
    r.relay(&sse("[DONE]"), &mut w).unwrap();
    let text = String::from_utf8(w.take().to_vec()).unwrap();
    assert!(!text.contains("prompt_tokens"), "{text}");
    assert!(text.contains("data: [DONE]"));
    assert_eq!(r.usage.unwrap().output_tokens, 2);
}

/// The bench's chunk shape, as OpenAI writes it: every chunk of an
/// answer the same but for its text and its random padding.
fn plain(content: &str, padding: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o","service_tier":"default","system_fingerprint":"fp_1","choices":[{{"index":0,"delta":{{"content":"{content}"}},"logprobs":null,"finish_reason":null}}],"usage":null,"obfuscation":"{padding}"}}"#
    )
}

/// A chunk like the last but for its strings is relayed and decoded
/// without a walk; one that differs anywhere else is read as before.
#[test]
fn a_chunk_like_the_last_is_known_by_its_bytes() {
    let first = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#;
    let last = plain("", "x").replace(r#""finish_reason":null"#, r#""finish_reason":"length""#);
    let usage = plain("", "x").replace(
        r#""usage":null"#,
        r#""usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}"#,
    );
    let chunks = [
        first.to_owned(),
        plain("Hello", "x3Tq"),
        plain(" there, café", "Q"),
        plain(r#"say \"hi\""#, "abcdef"),
        plain("", ""),
        plain(" again", "zz"),
        last,
        usage,
    ];
    let mut r = Relay::new(true);
    let mut w = sse::Writer::new(0);
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for c in &chunks {
        r.relay(&sse(c), &mut w).unwrap();
        d.decode(&sse(c), &mut out).unwrap();
    }
    // Every chunk relayed as it came, and the finish and usage read
    // from chunks shaped like the template.
    let relayed: Vec<String> = (chunks.iter().enumerate())
        .map(|(i, c)| format!("id: {i}\ndata: {c}\n\n"))
        .collect();
    assert_eq!(
        String::from_utf8(w.take().to_vec()).unwrap(),
        relayed.concat()
    );
    assert_eq!(r.finish, Some(FinishReason::Length));
    assert_eq!(r.usage.map(|u| u.output_tokens), Some(4));
    let texts: Vec<&str> = out
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["Hello", " there, café", "say \"hi\"", " again"]);
    // The text chunks after the first were known by the template of
    // the one before, which both still hold.
    let next = plain(" more", "pad");
    assert!(r.template.fill(next.as_bytes()).is_some());
    assert_eq!(d.template.fill(next.as_bytes()), Some(&b" more"[..]));
    assert!(
        out.iter().any(|e| matches!(
            e,
            Event::Finish {
                reason: FinishReason::Length,
                ..
            }
        )),
        "{out:?}"
    );
}

proptest::proptest! {
    /// A chunk that fills the template of one the walks vouched for
    /// is one they vouch for too, with the same text: whatever bytes
    /// its strings hold or wherever it differs by a byte.
    #[test]
    fn a_template_fill_is_what_the_walks_find(
        content in "[a-z :{}\",\\\\\né]{0,6}",
        padding in "[a-zA-Z0-9\":]{0,5}",
        mutation in crate::wire::template::mutation(),
    ) {
        let base = plain("Hello", "x3Tq");
        let mark = base.find("Hello").unwrap();
        let decoding = Template::of(base.as_bytes(), Some(mark), Holes::Values).unwrap();
        let relaying = Template::of(base.as_bytes(), None, Holes::Values).unwrap();
        proptest::prop_assert!(reads_nothing(base.as_bytes()));
        let c = crate::wire::template::mutated(plain(&content, &padding), mutation);
        if relaying.fill(&c).is_some() {
            proptest::prop_assert!(reads_nothing(&c));
        }
        if let Some(Ok(text)) = decoding.fill(&c).map(std::str::from_utf8) {
            proptest::prop_assert_eq!(plain_content_chunk(&c), Some(Some(text)));
        }
    }
}
