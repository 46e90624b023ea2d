use super::*;

/// The last usage the decoder emitted.
fn last_usage(out: &[Event]) -> crate::chat::Usage {
    out.iter()
        .rev()
        .find_map(|e| match e {
            Event::Usage(u) => Some(*u),
            _ => None,
        })
        .expect("a usage event")
}

#[test]
fn text_deltas_are_walked_and_everything_else_left_to_serde() {
    fn walked(s: &str) -> Option<&str> {
        plain_text_delta(s.as_bytes())
    }
    assert_eq!(
        walked(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello ✓"}}"#
        ),
        Some("Hello ✓")
    );
    assert_eq!(
        walked(
            r#" { "delta" : { "text" : "" , "type" : "text_delta" } , "type" : "content_block_delta" } "#
        ),
        Some("")
    );
    for other in [
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\nb"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","text":"b"}}"#,
        r#"{"type":"content_block_delta","type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}"#,
        r#"{"type":"content_block_delta","index":"0","delta":{"type":"text_delta","text":"a"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"},"usage":{}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}} x"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"},"delta":{}}"#,
        r#"{"type":"message_stop"}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":7}}"#,
        r#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"a"}}"#,
        "{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"a\nb\"}}",
    ] {
        assert_eq!(walked(other), None, "{other}");
    }
    // What the walk declines, serde reads the same way it always did.
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for data in [
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"plain"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"esc\"aped"}}"#,
    ] {
        let ev = sse::Event {
            event: Some("content_block_delta".into()),
            data: data.as_bytes().to_vec().into(),
            id: None,
        };
        d.decode(&ev, &mut out).unwrap();
    }
    let texts = crate::chat::texts(&out);
    assert_eq!(texts, ["plain", "esc\"aped"]);
}

fn ev(name: &str, data: &str) -> sse::Event {
    sse::Event {
        event: Some(bytes::Bytes::copy_from_slice(name.as_bytes())),
        data: data.as_bytes().to_vec().into(),
        id: None,
    }
}

/// The streamed search of Anthropic's web search tool documentation:
/// the query streams as a server_tool_use block, the results arrive
/// whole; one canonical search comes out when they do, and the count
/// in the cumulative usage is kept.
#[test]
fn a_streamed_search_becomes_one_event_with_its_results() {
    let events = [
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_abc123","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":10,"output_tokens":1}}}"#,
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_xyz789","name":"web_search"}}"#,
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"latest quantum "}}"#,
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"computing breakthroughs 2025\"}"}}"#,
        ),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_xyz789","content":[{"type":"web_search_result","title":"Quantum Computing Breakthroughs in 2025","url":"https://example.com"}]}}"#,
        ),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":20,"server_tool_use":{"web_search_requests":1}}}"#,
        ),
    ];
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for e in &events {
        d.decode(e, &mut out).unwrap();
    }
    let searches: Vec<&WebSearch> = out
        .iter()
        .filter_map(|e| match e {
            Event::WebSearch(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(
        searches,
        [&WebSearch {
            id: "srvtoolu_xyz789".into(),
            queries: vec!["latest quantum computing breakthroughs 2025".into()],
            sources: vec![crate::chat::WebSource {
                url: "https://example.com".into(),
                title: Some("Quantum Computing Breakthroughs in 2025".into()),
            }],
            error: None,
        }]
    );
    assert!(
        !out.iter()
            .any(|e| matches!(e, Event::ToolCallStart { .. } | Event::ToolCallDelta { .. })),
        "a server tool is no tool call of the caller's: {out:?}"
    );
    let last = last_usage(&out);
    assert_eq!((last.output_tokens, last.web_search_requests), (20, 1));

    // A search the turn left unanswered still comes out, without results.
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for e in &events[..5] {
        d.decode(e, &mut out).unwrap();
    }
    d.decode(
        &ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"pause_turn"},"usage":{"output_tokens":3}}"#,
        ),
        &mut out,
    )
    .unwrap();
    assert!(
        out.iter().any(
            |e| matches!(e, Event::WebSearch(s) if s.sources.is_empty() && s.queries.len() == 1)
        )
    );
}

#[test]
fn decodes_the_documented_tool_use_sequence() {
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for (n, data) in [
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ("ping", r#"{"type":"ping"}"#),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":20}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ] {
        d.decode(&ev(n, data), &mut out).unwrap();
    }
    assert!(d.done);
    let last_usage = last_usage(&out);
    assert_eq!(last_usage.input_tokens, 15);
    assert_eq!(last_usage.cached_input_tokens, 5);
    assert_eq!(last_usage.output_tokens, 20);
    assert!(out.contains(&Event::ToolCallDelta {
        index: 0,
        arguments: "{\"a\":1}".into()
    }));
    assert!(out.contains(&Event::Finish {
        reason: FinishReason::ToolCalls,
        stop_sequence: None
    }));
}

#[test]
fn a_tool_called_without_arguments_gets_the_empty_object() {
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for (name, data) in [
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"now","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_2","name":"f","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
    ] {
        d.decode(&ev(name, data), &mut out).unwrap();
    }
    let args: Vec<(u32, String)> = out
        .into_iter()
        .filter_map(|e| match e {
            Event::ToolCallDelta { index, arguments } => Some((index, arguments)),
            _ => None,
        })
        .collect();
    assert_eq!(args, [(0, "{}".to_owned()), (1, r#"{"a":1}"#.to_owned())]);
}

#[test]
fn overloaded_error_event_is_529() {
    let mut d = StreamDecoder::default();
    let e = d
        .decode(
            &ev(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(matches!(e, StreamError::Upstream { status: 529, .. }));
}

proptest::proptest! {
    /// A delta that fills the template of a text delta the walk
    /// vouched for is one it vouches for too, with the same text.
    #[test]
    fn a_template_fill_is_what_the_walk_finds(
        text in "[a-z :{}\",\\\\\né]{0,6}",
        mutation in crate::wire::template::mutation(),
    ) {
        let delta = |text: &str| {
            format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#)
        };
        let base = delta("Hello");
        let t = Template::of(base.as_bytes(), base.find("Hello"), Holes::Marked).unwrap();
        let c = crate::wire::template::mutated(delta(&text), mutation);
        if let Some(Ok(text)) = t.fill(&c).map(std::str::from_utf8) {
            proptest::prop_assert_eq!(plain_text_delta(&c), Some(text));
        }
    }
}

/// Text deltas after the first are known by their bytes; the events
/// are those serde would give, and other events still are read.
#[test]
fn text_deltas_like_the_last_decode_alike() {
    let delta = |text: &str| {
        format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#
        )
    };
    let thinking = r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#;
    let mut d = StreamDecoder::default();
    let mut out = Vec::new();
    for data in [
        delta("Hello"),
        delta(" wor"),
        delta(r#"ld \"x\""#),
        delta(""),
        thinking.to_owned(),
        delta("!"),
    ] {
        d.decode(&ev("content_block_delta", &data), &mut out)
            .unwrap();
    }
    assert_eq!(
        out,
        [
            Event::TextDelta("Hello".into()),
            Event::TextDelta(" wor".into()),
            Event::TextDelta("ld \"x\"".into()),
            Event::TextDelta("".into()),
            Event::ThinkingDelta("hm".into()),
            Event::TextDelta("!".into()),
        ]
    );
    // The last text delta is the template the next fills.
    assert_eq!(d.template.fill(delta("?").as_bytes()), Some(&b"?"[..]));
}
