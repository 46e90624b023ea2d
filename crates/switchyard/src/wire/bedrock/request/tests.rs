use serde_json::{Value, json};

use super::*;
use crate::chat::{DocSource, Message, SystemPart, Thinking, Tool};

fn encode(req: &chat::Request) -> Value {
    serde_json::from_slice(&encode_request(req, 1000).unwrap()).unwrap()
}

fn refused(req: &chat::Request) -> Untranslatable {
    encode_request(req, 1000).unwrap_err()
}

/// A request as an OpenAI-dialect caller sends it.
fn openai(body: &str) -> chat::Request {
    crate::wire::openai::decode_request(body.as_bytes())
        .unwrap()
        .0
}

fn text(t: &str) -> Part {
    Part::Text {
        text: t.into(),
        cache_control: None,
    }
}

fn raw(v: Value) -> RawJson {
    RawJson(crate::wire::to_raw(&v))
}

fn request(messages: Vec<Message>) -> chat::Request {
    chat::Request {
        model: "m".into(),
        messages,
        ..Default::default()
    }
}

fn result(id: &str, t: &str, is_error: bool) -> Part {
    Part::ToolResult {
        tool_call_id: id.into(),
        content: vec![ToolResultPart::Text(t.into())],
        is_error,
    }
}

fn call(id: &str, name: &str, arguments: &str) -> Part {
    Part::ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
    }
}

/// Consecutive turns of one role become one turn; the conversation
/// alternates user, assistant, user... as Converse requires.
#[test]
fn turns_of_one_role_merge_so_roles_alternate() {
    let r = openai(
        r#"{"model":"m","messages":[
            {"role":"system","content":"Be brief."},
            {"role":"user","content":"a"},
            {"role":"user","content":"b"},
            {"role":"assistant","content":"c"},
            {"role":"assistant","content":"d"},
            {"role":"user","content":"e"}]}"#,
    );
    let out = encode(&r);
    assert_eq!(out["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
            {"role": "assistant", "content": [{"text": "c"}, {"text": "d"}]},
            {"role": "user", "content": [{"text": "e"}]},
        ])
    );
    assert_eq!(out["inferenceConfig"], json!({"maxTokens": 1000}));
    for absent in [
        "toolConfig",
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "outputConfig",
        "requestMetadata",
        "model",
        "stream",
    ] {
        assert!(out.get(absent).is_none(), "{absent}: {out}");
    }
}

/// The OpenAI shape of parallel tool calls: one assistant turn with two
/// calls, then one tool message per result. Converse wants every result
/// of the round in one user turn, before the user's next words.
#[test]
fn parallel_tool_results_share_one_user_turn() {
    let r = openai(
        r#"{"model":"m","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
            "messages":[
            {"role":"user","content":"Weather in Paris and Oslo?"},
            {"role":"assistant","content":null,"tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"18C"},
            {"role":"tool","tool_call_id":"call_2","content":"4C"},
            {"role":"user","content":"Thanks. Which is warmer?"}]}"#,
    );
    let out = encode(&r);
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{out}");
    assert_eq!(
        msgs[1]["content"],
        json!([
            {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "call_2", "name": "get_weather", "input": {"city": "Oslo"}}},
        ])
    );
    assert_eq!(
        msgs[2],
        json!({"role": "user", "content": [
            {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}},
            {"toolResult": {"toolUseId": "call_2", "content": [{"text": "4C"}]}},
            {"text": "Thanks. Which is warmer?"},
        ]})
    );
}

#[test]
fn results_come_first_in_their_turn_and_errors_say_so() {
    let r = request(vec![
        Message::new(Role::User, vec![text("go")], 0),
        Message::new(Role::Assistant, vec![call("t1", "f", "{}")], 1),
        Message::new(Role::User, vec![text("(while you were at it)")], 2),
        Message::new(Role::Tool, vec![result("t1", "boom", true)], 3),
        Message::new(
            Role::Tool,
            vec![Part::ToolResult {
                tool_call_id: "t2".into(),
                content: vec![ToolResultPart::Text(String::new())],
                is_error: false,
            }],
            4,
        ),
    ]);
    let out = encode(&r);
    assert_eq!(
        out["messages"][2]["content"],
        json!([
            {"toolResult": {"toolUseId": "t1", "content": [{"text": "boom"}], "status": "error"}},
            {"toolResult": {"toolUseId": "t2", "content": []}},
            {"text": "(while you were at it)"},
        ])
    );
}

#[test]
fn blank_text_is_left_out_and_empty_turns_with_it() {
    let r = request(vec![
        Message::new(Role::User, vec![text("hi"), text("  \n")], 0),
        Message::new(Role::Assistant, vec![text("\n\n")], 1),
        Message::new(Role::User, vec![text("there?")], 2),
    ]);
    let out = encode(&r);
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [{"text": "hi"}, {"text": "there?"}]}])
    );
}

fn image_part(media_type: &str) -> Part {
    Part::Image(Image::Base64 {
        media_type: media_type.into(),
        data: "iVBORw0KGgo=".into(),
    })
}

#[test]
fn images_go_inline_with_their_format() {
    let r = request(vec![Message::new(
        Role::User,
        vec![
            text("What is this?"),
            image_part("image/png"),
            image_part("image/jpeg"),
            image_part("image/webp"),
        ],
        0,
    )]);
    let out = encode(&r);
    assert_eq!(
        out["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
    assert_eq!(out["messages"][0]["content"][2]["image"]["format"], "jpeg");
    assert_eq!(out["messages"][0]["content"][3]["image"]["format"], "webp");

    let url = request(vec![Message::new(
        Role::User,
        vec![
            text("x"),
            Part::Image(Image::Url("https://x.example/a.png".into())),
        ],
        0,
    )]);
    let e = refused(&url);
    assert_eq!(e.field, "messages[0].content[1]");
    assert!(e.reason.contains("not by URL"), "{}", e.reason);
    let bmp = request(vec![Message::new(
        Role::User,
        vec![image_part("image/bmp")],
        0,
    )]);
    assert!(refused(&bmp).reason.contains("not `image/bmp`"));
}

fn doc(source: DocSource, media_type: Option<&str>, filename: Option<&str>) -> Part {
    Part::Document(Document {
        source,
        media_type: media_type.map(Into::into),
        filename: filename.map(Into::into),
    })
}

/// Documents go inline with Converse's format and a name in its
/// characters, unique in the request.
#[test]
fn documents_go_inline_with_a_format_and_a_unique_name() {
    let r = request(vec![
        Message::new(
            Role::User,
            vec![
                doc(
                    DocSource::Base64("JVBE".into()),
                    Some("application/pdf"),
                    Some("Q3 report.v2.pdf"),
                ),
                doc(
                    DocSource::Base64("JVBE".into()),
                    Some("application/pdf"),
                    None,
                ),
                doc(DocSource::Text("a,b".into()), Some("text/csv"), None),
                text("compare"),
            ],
            0,
        ),
        Message::new(Role::Assistant, vec![text("ok")], 1),
        Message::new(
            Role::User,
            vec![
                doc(DocSource::Base64("JVBE".into()), None, Some("DOCUMENT.pdf")),
                doc(
                    DocSource::Base64("e30=".into()),
                    None,
                    Some("données_2024 (final).json"),
                ),
            ],
            2,
        ),
    ]);
    let out = encode(&r);
    let first = &out["messages"][0]["content"];
    assert_eq!(
        first[0],
        json!({"document": {"format": "pdf", "name": "Q3 report-v2", "source": {"bytes": "JVBE"}}})
    );
    assert_eq!(first[1]["document"]["name"], "document");
    assert_eq!(
        first[2],
        json!({"document": {"format": "csv", "name": "document (2)", "source": {"bytes": "YSxi"}}})
    );
    let later = &out["messages"][2]["content"];
    assert_eq!(later[0]["document"]["name"], "DOCUMENT (3)");
    assert_eq!(later[1]["document"]["name"], "donn-es-2024 (final)");
    assert_eq!(later[1]["document"]["format"], "txt", "JSON is text");
}

#[test]
fn documents_converse_cannot_read_are_refused_by_name() {
    let reason = |part: Part| {
        let e = refused(&request(vec![Message::new(Role::User, vec![part], 3)]));
        assert_eq!(e.field, "messages[3].content[0]");
        e.reason
    };
    assert!(
        reason(doc(
            DocSource::Url("https://x.example/a.pdf".into()),
            None,
            None
        ))
        .contains("not by URL")
    );
    assert!(
        reason(doc(
            DocSource::Base64("UEsDBA==".into()),
            None,
            Some("deck.pptx")
        ))
        .contains("not `application/vnd.openxmlformats-officedocument.presentationml")
    );
    assert!(reason(doc(DocSource::Base64("AAAA".into()), None, None)).contains("unknown"));
}

#[test]
fn names_keep_only_the_characters_converse_allows() {
    assert_eq!(sanitize("a  b\t[c].txt", 100), "a b [c]");
    assert_eq!(sanitize(".env", 100), "-env");
    assert_eq!(sanitize("日本語.pdf", 100), "-");
    assert_eq!(sanitize("   .pdf", 100), "-pdf");
    assert_eq!(sanitize("", 100), "document");
    assert_eq!(sanitize(&"x".repeat(300), 192).len(), 192);
    let mut names = DocNames::default();
    assert_eq!(names.unique("a.pdf"), "a");
    assert_eq!(names.unique("A.docx"), "A (2)");
    assert_eq!(names.unique("a (2).txt"), "a (2) (2)");
}

fn tool(name: &str) -> Tool {
    Tool {
        name: name.into(),
        description: Some(format!("Runs {name}.")),
        parameters: Some(raw(
            json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        )),
        strict: None,
        cache_control: None,
        origin: Default::default(),
    }
}

fn with_tools(choice: Option<ToolChoice>) -> chat::Request {
    let mut bare = tool("now");
    bare.description = None;
    bare.parameters = None;
    bare.strict = Some(true);
    bare.cache_control = Some(raw(json!({"type": "ephemeral"})));
    chat::Request {
        tools: vec![tool("search"), bare],
        tool_choice: choice,
        ..request(vec![Message::new(Role::User, vec![text("hi")], 0)])
    }
}

#[test]
fn tools_become_tool_specs_and_choices_map_one_to_one() {
    let out = encode(&with_tools(None));
    assert_eq!(
        out["toolConfig"],
        json!({"tools": [
            {"toolSpec": {"name": "search", "description": "Runs search.", "inputSchema": {"json": {"type": "object", "properties": {"q": {"type": "string"}}}}}},
            {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}, "strict": true}},
            {"cachePoint": {"type": "default"}},
        ]})
    );
    for (choice, want) in [
        (ToolChoice::Auto, json!({"auto": {}})),
        (ToolChoice::Required, json!({"any": {}})),
        (
            ToolChoice::Named("now".into()),
            json!({"tool": {"name": "now"}}),
        ),
    ] {
        let out = encode(&with_tools(Some(choice)));
        assert_eq!(out["toolConfig"]["toolChoice"], want);
    }
}

/// Converse has no `none`: the tools stay out, unless the conversation
/// holds tool blocks, which Bedrock refuses without a toolConfig.
#[test]
fn tool_choice_none_leaves_the_tools_out_or_is_refused() {
    let out = encode(&with_tools(Some(ToolChoice::None)));
    assert!(out.get("toolConfig").is_none(), "{out}");
    let mut r = with_tools(Some(ToolChoice::None));
    r.messages.push(Message::new(
        Role::Assistant,
        vec![call("t1", "now", "")],
        1,
    ));
    r.messages.push(Message::new(
        Role::Tool,
        vec![result("t1", "noon", false)],
        2,
    ));
    let e = refused(&r);
    assert_eq!(e.field, "tool_choice");
    r.tool_choice = Some(ToolChoice::Auto);
    let out = encode(&r);
    assert_eq!(
        out["messages"][1]["content"][0]["toolUse"]["input"],
        json!({}),
        "no arguments are the empty object"
    );
}

#[test]
fn sampling_thinking_effort_schema_and_user_find_their_fields() {
    let mut r = request(vec![Message::new(Role::User, vec![text("count")], 0)]);
    r.max_tokens = Some(2048);
    r.temperature = Some(0.5);
    r.top_p = Some(0.9);
    r.top_k = Some(40);
    r.stop = vec!["END".into()];
    r.thinking = Some(Thinking {
        budget_tokens: 1024,
    });
    r.reasoning_effort = Some("high".into());
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "count".into(),
        schema: raw(json!({"type": "object", "properties": {"n": {"type": "integer"}}})),
        strict: Some(true),
    });
    r.user = Some("user-42@example.com".into());
    let out = encode(&r);
    assert_eq!(
        out["inferenceConfig"],
        json!({"maxTokens": 2048, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]})
    );
    assert_eq!(
        out["additionalModelRequestFields"],
        json!({"top_k": 40, "thinking": {"type": "enabled", "budget_tokens": 1024}})
    );
    assert_eq!(
        out["additionalModelResponseFieldPaths"],
        json!(["/stop_sequence"])
    );
    assert_eq!(
        out["outputConfig"],
        json!({
            "textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
                "schema": r#"{"type":"object","properties":{"n":{"type":"integer"}}}"#,
                "name": "count",
            }}},
            "effort": "high",
        })
    );
    assert_eq!(
        out["requestMetadata"],
        json!({"user": "user-42@example.com"})
    );
    // A user id outside requestMetadata's characters is dropped, not refused.
    r.user = Some("ユーザー".into());
    assert!(encode(&r).get("requestMetadata").is_none());
}

#[test]
fn what_converse_cannot_say_is_refused_by_name() {
    let base = || request(vec![Message::new(Role::User, vec![text("hi")], 0)]);
    let field = |f: &dyn Fn(&mut chat::Request)| {
        let mut r = base();
        f(&mut r);
        refused(&r).field
    };
    assert_eq!(
        field(&|r| {
            r.unknown_fields = vec!["logprobs".into(), "x".into()];
            r.seed = Some(1);
        }),
        "logprobs"
    );
    assert_eq!(field(&|r| r.n = Some(2)), "n");
    assert_eq!(field(&|r| r.seed = Some(7)), "seed");
    assert_eq!(
        field(&|r| r.presence_penalty = Some(0.5)),
        "presence_penalty"
    );
    assert_eq!(
        field(&|r| r.frequency_penalty = Some(0.5)),
        "frequency_penalty"
    );
    assert_eq!(field(&|r| r.temperature = Some(1.5)), "temperature");
    assert_eq!(field(&|r| r.stop = vec![String::new()]), "stop");
    assert_eq!(
        field(&|r| r.parallel_tool_calls = Some(false)),
        "parallel_tool_calls"
    );
    assert_eq!(
        field(&|r| r.response_format = Some(ResponseFormat::JsonObject)),
        "response_format"
    );
    assert_eq!(
        field(&|r| r.reasoning_effort = Some("minimal".into())),
        "reasoning_effort"
    );
    assert_eq!(
        field(&|r| r
            .messages
            .push(Message::new(Role::System, vec![text("late")], 1))),
        "messages[1].role"
    );
    assert_eq!(
        field(&|r| r
            .messages
            .insert(0, Message::new(Role::Assistant, vec![text("Hello!")], 0))),
        "messages[0].role"
    );
    assert_eq!(
        field(&|r| r.messages.push(Message::new(
            Role::Assistant,
            vec![call("t", "f", "[1]")],
            1
        ))),
        "messages[1].content[0].arguments"
    );
    // What is neutral passes.
    let mut r = base();
    r.n = Some(1);
    r.presence_penalty = Some(0.0);
    r.parallel_tool_calls = Some(true);
    r.response_format = Some(ResponseFormat::Text);
    assert!(encode_request(&r, 1).is_ok());
}

#[test]
fn built_in_tools_are_refused_by_name() {
    let r = crate::wire::responses::decode_request(
        br#"{"model":"m","input":"news","tools":[{"type":"function","name":"f","parameters":{"type":"object"}},{"type":"web_search"}]}"#,
    )
    .unwrap()
    .0;
    let e = refused(&r);
    assert_eq!(e.field, "tools[1]");
    assert!(e.reason.contains("web_search"), "{}", e.reason);
}

/// Reasoning goes back with its signature; unsigned reasoning (another
/// provider's) does not, and a turn left empty by that disappears.
#[test]
fn signed_and_redacted_reasoning_go_back_unsigned_does_not() {
    let r = request(vec![
        Message::new(Role::User, vec![text("q1")], 0),
        Message::new(
            Role::Assistant,
            vec![
                Part::Thinking {
                    text: "Let me think.".into(),
                    signature: Some("ErUBCkYI".into()),
                },
                Part::RedactedThinking {
                    data: "RW5jcnlwdGVk".into(),
                },
                call("tooluse_1", "f", r#"{"a":1}"#),
            ],
            1,
        ),
        Message::new(Role::Tool, vec![result("tooluse_1", "r", false)], 2),
        Message::new(
            Role::Assistant,
            vec![Part::Thinking {
                text: "from elsewhere".into(),
                signature: None,
            }],
            3,
        ),
        Message::new(Role::User, vec![text("q2")], 4),
    ]);
    let out = encode(&r);
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{out}");
    assert_eq!(
        msgs[1]["content"],
        json!([
            {"reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": "ErUBCkYI"}}},
            {"reasoningContent": {"redactedContent": "RW5jcnlwdGVk"}},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "f", "input": {"a": 1}}},
        ])
    );
    assert_eq!(msgs[2]["content"][1], json!({"text": "q2"}));
}

/// Anthropic's cache breakpoints become cache points right after what
/// they close.
#[test]
fn cache_control_becomes_a_cache_point_after_its_block() {
    let mut r = request(vec![Message::new(
        Role::User,
        vec![
            Part::Text {
                text: "long context".into(),
                cache_control: Some(raw(json!({"type": "ephemeral"}))),
            },
            text("question"),
        ],
        0,
    )]);
    r.system = vec![
        SystemPart {
            text: "You are a lawyer.".into(),
            cache_control: Some(raw(json!({"type": "ephemeral", "ttl": "1h"}))),
        },
        SystemPart {
            text: "Today is Monday.".into(),
            cache_control: None,
        },
    ];
    let out = encode(&r);
    assert_eq!(
        out["system"],
        json!([
            {"text": "You are a lawyer."},
            {"cachePoint": {"type": "default", "ttl": "1h"}},
            {"text": "Today is Monday."},
        ])
    );
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"text": "long context"},
            {"cachePoint": {"type": "default"}},
            {"text": "question"},
        ])
    );
}

/// Ids Converse would refuse get a stand-in, the same for the call and
/// its result; a Gemini thought signature packed into an id is taken out.
#[test]
fn tool_ids_converse_refuses_get_a_stable_stand_in() {
    assert_eq!(tool_use_id("call_abc-1.2:3"), "call_abc-1.2:3");
    let odd = tool_use_id("fc/1 x");
    assert!(odd.starts_with("tooluse_sy") && odd.len() == 42, "{odd}");
    assert_eq!(odd, tool_use_id("fc/1 x"));
    assert_ne!(odd, tool_use_id("fc/1 y"));
    assert!(tool_use_id(&"a".repeat(65)).starts_with("tooluse_sy"));
    let signed = crate::wire::gemini::id_with_signature("call_0", "AQID");
    assert_eq!(tool_use_id(&signed), "call_0");
}
