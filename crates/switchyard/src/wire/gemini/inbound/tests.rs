//! Decoding recorded google-genai bodies, refusals by name, tool-call ids,
//! and the round trip through the upstream encoder.

use proptest::prelude::*;

use super::*;
use crate::chat::{RawJson, ResponseFormat, Thinking, Tool, ToolChoice};
use crate::wire::gemini::{encode_request, split_signature, thought_signature};

const MODEL: &str = "gemini-2.5-flash";

fn decode(body: &str) -> chat::Request {
    match decode_request(body.as_bytes(), MODEL, false) {
        Ok((r, _)) => r,
        Err(e) => panic!("{e:?}"),
    }
}

fn decode_err(body: &str) -> DecodeError {
    match decode_request(body.as_bytes(), MODEL, false) {
        Ok((r, _)) => panic!("decoded: {r:?}"),
        Err(e) => e,
    }
}

fn text(t: &str) -> Part {
    Part::Text {
        text: t.into(),
        cache_control: None,
    }
}

/// google-genai 3.6 `generate_content` with a system instruction and a
/// config, as recorded (`systemInstruction` has `role: "user"`).
#[test]
fn a_recorded_request_with_config_decodes() {
    let (r, _) = decode_request(
        br#"{"contents": [{"parts": [{"text": "hi"}], "role": "user"}], "systemInstruction": {"parts": [{"text": "be brief"}], "role": "user"}, "generationConfig": {"temperature": 0.2, "maxOutputTokens": 64}}"#,
        MODEL,
        true,
    )
    .unwrap();
    assert_eq!(r.model, MODEL);
    assert!(r.stream && r.include_usage);
    assert_eq!(r.system.len(), 1);
    assert_eq!(r.system[0].text, "be brief");
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].role, Role::User);
    assert_eq!(r.messages[0].parts, [text("hi")]);
    assert_eq!(r.temperature, Some(0.2));
    assert_eq!(r.max_tokens, Some(64));
    assert!(r.unknown_fields.is_empty(), "{:?}", r.unknown_fields);
}

/// The recorded body with snake_case keys and a float `topK`, plus a
/// `responseSchema` in Gemini's upper-case Schema and `safetySettings`.
#[test]
fn snake_case_keys_and_a_float_top_k_decode() {
    let r = decode(
        r#"{"contents": [{"parts": [{"text": "hi"}], "role": "user"}], "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}], "generationConfig": {"topP": 0.9, "topK": 20.0, "candidateCount": 1, "stopSequences": ["END"], "seed": 7, "responseMimeType": "application/json", "responseSchema": {"properties": {"a": {"type": "STRING", "nullable": true}}, "type": "OBJECT"}, "thinkingConfig": {"thinking_budget": 0}}}"#,
    );
    assert_eq!(r.top_p, Some(0.9));
    assert_eq!(r.top_k, Some(20));
    assert_eq!(r.stop, ["END"]);
    assert_eq!(r.seed, Some(7));
    assert_eq!(r.n, None, "one candidate is the default");
    assert_eq!(r.thinking, None, "a budget of 0 is thinking off");
    match &r.response_format {
        Some(ResponseFormat::JsonSchema { name, schema, .. }) => {
            assert_eq!(name, "response");
            assert_eq!(
                schema.get(),
                r#"{"properties":{"a":{"type":["string","null"]}},"type":"object"}"#
            );
        }
        other => panic!("{other:?}"),
    }
    // Gemini's own; a Gemini upstream gets it, others refuse it by name.
    assert_eq!(r.unknown_fields, ["safetySettings"]);

    let r = decode(
        r#"{"contents": [{"parts": [{"inlineData": {"data": "iVBORyBmYWtl", "mime_type": "image/png"}}, {"text": "describe"}], "role": "user"}], "system_instruction": {"parts": [{"text": "s"}]}, "generation_config": {"max_output_tokens": 10, "top_k": 3, "response_mime_type": "application/json", "response_json_schema": {"type": "object"}, "thinking_config": {"thinking_budget": 512, "include_thoughts": true}}}"#,
    );
    assert_eq!(
        r.messages[0].parts,
        [
            Part::Image(Image::Base64 {
                media_type: "image/png".into(),
                data: "iVBORyBmYWtl".into()
            }),
            text("describe")
        ]
    );
    assert_eq!(r.system[0].text, "s");
    assert_eq!((r.max_tokens, r.top_k), (Some(10), Some(3)));
    assert_eq!(r.thinking, Some(Thinking { budget_tokens: 512 }));
    assert!(matches!(
        &r.response_format,
        Some(ResponseFormat::JsonSchema { schema, .. }) if schema.get() == r#"{"type": "object"}"#
    ));
    assert!(r.unknown_fields.is_empty(), "{:?}", r.unknown_fields);
}

/// Manual function calling as recorded: the call has no id, the response
/// names the function. Whatever the target, result and call share an id.
#[test]
fn a_function_call_and_its_response_share_an_id() {
    let r = decode(
        r#"{"contents": [{"parts": [{"text": "weather in Paris?"}], "role": "user"}, {"parts": [{"functionCall": {"args": {"city": "Paris"}, "name": "get_weather"}}], "role": "model"}, {"parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}], "role": "user"}], "tools": [{"functionDeclarations": [{"description": "Get weather for a city", "name": "get_weather", "parameters": {"properties": {"city": {"description": "city", "type": "STRING"}}, "required": ["city"], "type": "OBJECT"}}]}], "generationConfig": {}}"#,
    );
    assert!(r.unknown_fields.is_empty(), "{:?}", r.unknown_fields);
    assert_eq!(
        r.tools[0].parameters.as_ref().unwrap().get(),
        r#"{"properties":{"city":{"description":"city","type":"string"}},"required":["city"],"type":"object"}"#
    );
    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool]);
    let Part::ToolCall { id, arguments, .. } = &r.messages[1].parts[0] else {
        panic!("{:?}", r.messages[1]);
    };
    assert_eq!(arguments, r#"{"city": "Paris"}"#);
    let Part::ToolResult {
        tool_call_id,
        content,
        is_error,
    } = &r.messages[2].parts[0]
    else {
        panic!("{:?}", r.messages[2]);
    };
    assert_eq!(tool_call_id, id);
    assert_eq!(
        content,
        &[ToolResultPart::Text(r#"{"result":"sunny"}"#.into())]
    );
    assert!(!is_error);
    // The Anthropic encoder needs the result's id to be the call's.
    let body: Value = serde_json::from_slice(
        &crate::wire::anthropic::encode_request(&r, "claude-x", 100).unwrap(),
    )
    .unwrap();
    let call = &body["messages"][1]["content"][0];
    let result = &body["messages"][2]["content"][0];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["id"], result["tool_use_id"]);
    assert_eq!(result["content"][0]["text"], r#"{"result":"sunny"}"#);
    // And back to Gemini: the result goes back under the call's name.
    let body: Value = serde_json::from_slice(&encode_request(&r).unwrap()).unwrap();
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );
}

/// Automatic function calling from a Python callable sends the declared
/// return type as `response_json_schema`: it describes the caller's own
/// function, so it is left out for other providers (README's deliberate
/// exceptions), and a Gemini upstream gets it on the same-dialect path.
#[test]
fn a_response_schema_on_a_declaration_is_left_out_for_other_providers() {
    let r = decode(
        r#"{"contents": [{"parts": [{"text": "weather in Paris?"}], "role": "user"}], "tools": [{"functionDeclarations": [{"description": "", "name": "weather", "parameters_json_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "response_json_schema": {"type": "string"}}]}], "generationConfig": {}}"#,
    );
    assert_eq!(
        r.tools[0].parameters.as_ref().unwrap().get(),
        r#"{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}"#
    );
    assert!(r.unknown_fields.is_empty(), "{:?}", r.unknown_fields);
    let body = crate::wire::anthropic::encode_request(&r, "claude-x", 100).unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("response_json_schema"));
}

/// Results without ids answer the calls of the latest model turn by name,
/// in order; an id, when given, decides; a result matching no call gets a
/// stable id of its own.
#[test]
fn results_find_their_calls() {
    let r = decode(
        r#"{"contents": [
            {"role": "user", "parts": [{"text": "two cities"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "w", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "w", "args": {"city": "Oslo"}}},
                {"functionCall": {"name": "t", "args": {}, "id": "abc"}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "w", "response": {"output": "sunny"}}},
                {"functionResponse": {"name": "t", "id": "abc", "response": {"error": "down"}}},
                {"functionResponse": {"name": "w", "response": {"output": {"c": 3}}}},
                {"functionResponse": {"name": "ghost", "response": {}}},
                {"text": "and?"}]}]}"#,
    );
    let ids: Vec<&str> = r.messages[1]
        .parts
        .iter()
        .map(|p| match p {
            Part::ToolCall { id, .. } => id.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, ["call_1_0", "call_1_1", "abc"]);
    let results: Vec<(String, Vec<ToolResultPart>, bool)> = r.messages[2..6]
        .iter()
        .map(|m| match &m.parts[..] {
            [
                Part::ToolResult {
                    tool_call_id,
                    content,
                    is_error,
                },
            ] => (tool_call_id.clone(), content.clone(), *is_error),
            other => panic!("{other:?}"),
        })
        .collect();
    let t = |s: &str| vec![ToolResultPart::Text(s.into())];
    assert_eq!(
        results,
        [
            ("call_1_0".into(), t("sunny"), false),
            ("abc".into(), t("down"), true),
            ("call_1_1".into(), t(r#"{"c":3}"#), false),
            ("call_2_3".into(), t("{}"), false),
        ]
    );
    assert_eq!(r.messages[6].role, Role::User);
    assert_eq!(r.messages[6].parts, [text("and?")]);
    assert_eq!(r.messages[6].origin.parts, [4]);
    assert_eq!(r.messages[3].part_path(0), "messages[2].content[1]");
}

/// A streamed thinking turn as a chat session keeps it: one model turn per
/// chunk, the signature (another provider's, packed by the gateway) on its
/// own part, then a call carrying Gemini's own signature.
#[test]
fn streamed_thoughts_join_up_and_signatures_come_back() {
    let claude_sig = "EqQBCgIYAhIM1gbcDa9GJwZA2b3h";
    let gemini_sig = "CtYBAdHtim8=";
    let body = format!(
        r#"{{"contents": [
            {{"role": "user", "parts": [{{"text": "weather?"}}]}},
            {{"role": "model", "parts": [{{"text": "Let me ", "thought": true}}]}},
            {{"role": "model", "parts": [{{"text": "check.", "thought": true}}]}},
            {{"role": "model", "parts": [{{"text": "", "thought": true, "thoughtSignature": "{}"}}]}},
            {{"role": "model", "parts": [{{"functionCall": {{"name": "w", "args": {{}}}}, "thought_signature": "{}"}}]}},
            {{"role": "user", "parts": [{{"functionResponse": {{"name": "w", "response": {{"output": "sunny"}}}}}}]}}],
          "generationConfig": {{"thinkingConfig": {{"thinkingBudget": 2048, "includeThoughts": true}}}}}}"#,
        thought_signature(claude_sig),
        // As pydantic writes bytes back: URL-safe.
        gemini_sig.replace('+', "-").replace('/', "_"),
    );
    let r = decode(&body);
    assert_eq!(
        r.thinking,
        Some(Thinking {
            budget_tokens: 2048
        })
    );
    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool]);
    let parts = &r.messages[1].parts;
    assert_eq!(
        parts[0],
        Part::Thinking {
            text: "Let me check.".into(),
            signature: Some(claude_sig.into())
        }
    );
    let Part::ToolCall { id, .. } = &parts[1] else {
        panic!("{parts:?}")
    };
    assert_eq!(
        split_signature(id),
        ("call_4_0", Some(gemini_sig.to_owned()))
    );
    // The signed thinking goes back to Anthropic intact, before the call.
    let out: Value = serde_json::from_slice(
        &crate::wire::anthropic::encode_request(&r, "claude-x", 4096).unwrap(),
    )
    .unwrap();
    let blocks = &out["messages"][1]["content"];
    assert_eq!(blocks[0]["type"], "thinking");
    assert_eq!(blocks[0]["thinking"], "Let me check.");
    assert_eq!(blocks[0]["signature"], claude_sig);
    assert_eq!(blocks[1]["id"], "call_4_0");
    assert_eq!(out["messages"][2]["content"][0]["tool_use_id"], "call_4_0");
}

#[test]
fn redacted_thinking_comes_back_from_its_signature() {
    let r = decode(&format!(
        r#"{{"contents": [{{"role": "user", "parts": [{{"text": "q"}}]}}, {{"role": "model", "parts": [{{"text": "", "thought": true, "thoughtSignature": "{}"}}, {{"text": "a"}}]}}]}}"#,
        crate::wire::gemini::redacted_signature("EmwKAhgB")
    ));
    assert_eq!(
        r.messages[1].parts,
        [
            Part::RedactedThinking {
                data: "EmwKAhgB".into()
            },
            text("a")
        ]
    );
}

#[test]
fn what_has_no_canonical_place_is_named() {
    let r = decode(
        r#"{"contents": [{"role": "user", "parts": [
            {"fileData": {"mimeType": "application/pdf", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
            {"file_data": {"mime_type": "image/png", "file_uri": "https://example.com/cat.png"}},
            {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/cat.png"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}},
            {"executableCode": {"language": "PYTHON", "code": "1"}},
            {"text": "hi", "thought": true}]}],
          "tools": [{"googleSearch": {}}, {"codeExecution": {}, "functionDeclarations": [{"name": "f"}]}],
          "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f", "g"]}, "retrievalConfig": {"latLng": {}}},
          "generationConfig": {"candidateCount": 2, "responseModalities": ["TEXT"], "responseLogprobs": true, "mediaResolution": "MEDIA_RESOLUTION_LOW", "responseMimeType": "text/x.enum"},
          "cachedContent": "cachedContents/x", "labels": {}}"#,
    );
    assert_eq!(
        r.messages[0].parts,
        [Part::Image(Image::Url(
            "https://example.com/cat.png".into()
        ))]
    );
    assert_eq!(r.messages[0].origin.parts, [1]);
    assert_eq!(r.tool_choice, Some(ToolChoice::Required));
    assert_eq!(
        r.unknown_fields,
        [
            "tools[0].googleSearch",
            "tools[1].codeExecution",
            "generationConfig.responseLogprobs",
            "generationConfig.mediaResolution",
            "generationConfig.candidateCount",
            "generationConfig.responseMimeType",
            "cachedContent",
            "contents[0].parts[0].fileData",
            "contents[0].parts[2].fileData",
            "contents[0].parts[3].inlineData",
            "contents[0].parts[4].executableCode",
            "contents[0].parts[5].thought",
            "toolConfig.retrievalConfig",
            "toolConfig.functionCallingConfig.allowedFunctionNames",
        ]
    );
    // Refused by the first name when the target is not Gemini.
    let e = crate::wire::openai::encode_request(
        &r,
        "gpt",
        crate::wire::openai::request::MaxTokensField::MaxTokens,
    )
    .unwrap_err();
    assert_eq!(e.field, "tools[0].googleSearch");
}

/// Gemini's document understanding page: a PDF inline, a text file
/// inline; its file input methods page: a document at a public https URL.
#[test]
fn documents_decode_inline_and_by_public_url() {
    let r = decode(
        r#"{"contents": [{"role": "user", "parts": [
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
            {"inline_data": {"mime_type": "text/plain", "data": "aGk="}},
            {"fileData": {"mimeType": "application/pdf", "fileUri": "https://x.example/a.pdf"}},
            {"text": "compare"}]}]}"#,
    );
    assert!(r.unknown_fields.is_empty(), "{:?}", r.unknown_fields);
    let doc = |source, media_type: &str| {
        Part::Document(chat::Document {
            source,
            media_type: Some(media_type.into()),
            filename: None,
        })
    };
    assert_eq!(
        r.messages[0].parts,
        [
            doc(chat::DocSource::Base64("JVBE".into()), "application/pdf"),
            doc(chat::DocSource::Base64("aGk=".into()), "text/plain"),
            doc(
                chat::DocSource::Url("https://x.example/a.pdf".into()),
                "application/pdf"
            ),
            text("compare"),
        ]
    );
    // To Anthropic: a base64 PDF, text as text, a PDF by URL.
    let out: serde_json::Value =
        serde_json::from_slice(&crate::wire::anthropic::encode_request(&r, "claude", 10).unwrap())
            .unwrap();
    let kinds: Vec<&str> = out["messages"][0]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["source"]["type"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(kinds, ["base64", "text", "url", "-"]);
    // Audio and video inline, and an Office file, have no canonical part.
    let r = decode(
        r#"{"contents": [{"parts": [{"inlineData": {"mimeType": "video/mp4", "data": "AAAA"}},
            {"fileData": {"mimeType": "application/msword", "fileUri": "https://x.example/a.doc"}}]}]}"#,
    );
    assert_eq!(
        r.unknown_fields,
        [
            "contents[0].parts[0].inlineData",
            "contents[0].parts[1].fileData"
        ]
    );
}

#[test]
fn malformed_requests_are_refused_with_the_path() {
    let cases = [
        (r#"{"contents": []}"#, "contents"),
        (r#"{"generationConfig": {}}"#, "contents"),
        (
            r#"{"contents": [{"role": "user", "parts": []}]}"#,
            "contents[0].parts",
        ),
        (
            r#"{"contents": [{"role": "system", "parts": [{"text": "x"}]}]}"#,
            "contents[0].role",
        ),
        (r#"{"contents": [{"parts": [{}]}]}"#, "contents[0].parts[0]"),
        (
            r#"{"contents": [{"parts": [{"text": "a", "inlineData": {"mimeType": "image/png", "data": "AA=="}}]}]}"#,
            "contents[0].parts[0]",
        ),
        (
            r#"{"contents": [{"parts": [{"functionCall": {"name": "f"}}]}]}"#,
            "contents[0].parts[0].functionCall",
        ),
        (
            r#"{"contents": [{"parts": [{"text": "q"}]}, {"role": "model", "parts": [{"functionResponse": {"name": "f"}}]}]}"#,
            "contents[1].parts[0].functionResponse",
        ),
        (
            r#"{"contents": [{"parts": [{"inlineData": {"data": "AA=="}}]}]}"#,
            "contents[0].parts[0].inlineData",
        ),
        (
            r#"{"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f"}, "thoughtSignature": "%%"}]}]}"#,
            "contents[0].parts[0].thoughtSignature",
        ),
        (
            r#"{"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"topK": 40.5}}"#,
            "generationConfig.topK",
        ),
        (
            r#"{"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"maxOutputTokens": -1}}"#,
            "generationConfig.maxOutputTokens",
        ),
        (
            r#"{"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": -2}}}"#,
            "generationConfig.thinkingConfig.thinkingBudget",
        ),
        (
            r#"{"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"temperature": "hot"}}"#,
            "generationConfig.temperature",
        ),
        (
            r#"{"contents": [{"parts": [{"text": "q"}]}], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}"#,
            "toolConfig.functionCallingConfig.mode",
        ),
        (
            r#"{"contents": [{"parts": [{"text": "q"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {}, "parametersJsonSchema": {}}]}]}"#,
            "tools[0].functionDeclarations[0].parametersJsonSchema",
        ),
        (
            r#"{"contents": [{"parts": [{"text": "q"}]}], "tools": [{"functionDeclarations": [{"description": "no name"}]}]}"#,
            "tools[0].functionDeclarations[0]",
        ),
        (
            r#"{"contents": [{"parts": [{"text": "q"}]}], "systemInstruction": {"parts": [{"text": "a"}]}, "system_instruction": {"parts": [{"text": "b"}]}}"#,
            "systemInstruction",
        ),
    ];
    for (body, path) in cases {
        let e = decode_err(body);
        assert_eq!(e.field, path, "{body}: {}", e.message);
        assert!(e.message.contains(path), "{body}: {}", e.message);
    }
    let e =
        decode_request(br#"{"contents": [{"parts": [{"text": "q"}]}]}"#, "", false).unwrap_err();
    assert_eq!(e.field, "model");
}

#[test]
fn tool_config_modes_decode() {
    let with = |config: &str| {
        decode(&format!(
            r#"{{"contents": [{{"parts": [{{"text": "q"}}]}}], "tools": [{{"function_declarations": [{{"name": "f"}}, {{"name": "g"}}]}}], "tool_config": {{"function_calling_config": {config}}}}}"#
        ))
    };
    assert_eq!(
        with(r#"{"mode": "AUTO"}"#).tool_choice,
        Some(ToolChoice::Auto)
    );
    assert_eq!(
        with(r#"{"mode": "NONE"}"#).tool_choice,
        Some(ToolChoice::None)
    );
    assert_eq!(
        with(r#"{"mode": "ANY"}"#).tool_choice,
        Some(ToolChoice::Required)
    );
    let named = with(r#"{"mode": "ANY", "allowed_function_names": ["g"]}"#);
    assert_eq!(named.tool_choice, Some(ToolChoice::Named("g".into())));
    assert!(named.unknown_fields.is_empty());
    let validated = with(r#"{"mode": "VALIDATED"}"#);
    assert_eq!(validated.tool_choice, None);
    assert!(validated.tools.iter().all(|t| t.strict == Some(true)));
    let auto_subset = with(r#"{"mode": "AUTO", "allowedFunctionNames": ["f"]}"#);
    assert_eq!(
        auto_subset.unknown_fields,
        ["toolConfig.functionCallingConfig.allowedFunctionNames"]
    );
}

#[test]
fn thinking_levels_are_efforts() {
    let r = decode(
        r#"{"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"thinkingConfig": {"thinkingLevel": "HIGH", "includeThoughts": true}}}"#,
    );
    assert_eq!(r.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(r.thinking, None);
    let r = decode(
        r#"{"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": -1}}}"#,
    );
    assert_eq!((r.thinking, r.reasoning_effort), (None, None));
}

#[test]
fn gemini_schemas_become_json_schema() {
    let s = config::json_schema(serde_json::json!({
        "type": "OBJECT",
        "properties": {
            "type": {"type": "STRING", "enum": ["a", "b"], "format": "enum"},
            "tags": {"type": "ARRAY", "items": {"type": "INTEGER"}, "max_items": 3},
            "when": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER", "nullable": true}]},
        },
        "propertyOrdering": ["when", "type"],
        "required": ["type"],
    }));
    assert_eq!(
        s.to_string(),
        r#"{"type":"object","properties":{"when":{"anyOf":[{"type":"string"},{"type":["number","null"]}]},"type":{"type":"string","enum":["a","b"],"format":"enum"},"tags":{"type":"array","items":{"type":"integer"},"maxItems":3}},"required":["type"]}"#
    );
}

#[test]
fn the_fast_path_forwards_the_body_less_a_model() {
    let body = br#"{"model":"route-x","contents":[{"parts":[{"text":"hi"}]}],"safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}]}"#;
    let (_, fields) = decode_request(body, MODEL, false).unwrap();
    assert_eq!(
        rewrite_request(&fields),
        br#"{"contents":[{"parts":[{"text":"hi"}]}],"safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}]}"#
    );
}

#[test]
fn canonical_field_names_become_gemini_ones() {
    assert_eq!(field_name("top_k"), "generationConfig.topK");
    assert_eq!(field_name("seed"), "generationConfig.seed");
    assert_eq!(field_name("messages[3].content[1]"), "contents[3].parts[1]");
    assert_eq!(field_name("messages[3].role"), "contents[3].role");
    assert_eq!(field_name("safetySettings"), "safetySettings");
    assert_eq!(
        field_name("contents[0].parts[1].fileData"),
        "contents[0].parts[1].fileData"
    );
}

// ------------------------------------------------ round trip with encode_request

/// One stretch of a generated conversation.
#[derive(Debug, Clone)]
enum Turn {
    User(Vec<Part>),
    Assistant(String),
    /// Text, then calls `(name, arguments, explicit id?, signature?)`, each
    /// answered `(text, is_error)` in order, then maybe more user text.
    Exchange {
        text: Option<String>,
        calls: Vec<(String, String, bool, Option<Vec<u8>>)>,
        results: Vec<(String, bool)>,
        after: Option<String>,
    },
}

fn arb_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 é\"\\\\]{0,10}"
}

fn arb_user_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        arb_text().prop_map(|t| text(&t)),
        "[A-Za-z0-9+/]{4,12}".prop_map(|data| Part::Image(Image::Base64 {
            media_type: "image/png".into(),
            data,
        })),
    ]
}

fn arb_arguments() -> impl Strategy<Value = String> {
    proptest::collection::btree_map(
        "[a-z]{1,4}",
        prop_oneof![
            any::<i32>().prop_map(Value::from),
            arb_text().prop_map(Value::from),
        ],
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()).to_string())
}

fn arb_turn() -> impl Strategy<Value = Turn> {
    prop_oneof![
        proptest::collection::vec(arb_user_part(), 1..3).prop_map(Turn::User),
        arb_text().prop_map(Turn::Assistant),
        (
            proptest::option::of(arb_text()),
            proptest::collection::vec(
                (
                    "[fg]",
                    arb_arguments(),
                    any::<bool>(),
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 1..6)),
                    (arb_text(), any::<bool>()),
                ),
                1..3,
            ),
            proptest::option::of(arb_text()),
        )
            .prop_map(|(text, calls, after)| Turn::Exchange {
                text,
                results: calls.iter().map(|c| c.4.clone()).collect(),
                calls: calls.into_iter().map(|c| (c.0, c.1, c.2, c.3)).collect(),
                after,
            }),
    ]
}

/// Hundredths: serde_json reads some longer decimals one unit in the last
/// place off (it is built without `float_roundtrip`), in every dialect.
fn arb_hundredths(range: std::ops::Range<i32>) -> impl Strategy<Value = f64> {
    range.prop_map(|n| f64::from(n) / 100.0)
}

fn arb_request() -> impl Strategy<Value = chat::Request> {
    let sampling = (
        proptest::option::of(arb_hundredths(0..200)),
        proptest::option::of(arb_hundredths(0..100)),
        proptest::option::of(0..100u32),
        proptest::option::of(1..100_000u32),
        proptest::collection::vec("[a-z]{1,5}", 0..3),
        proptest::option::of(any::<i64>()),
        proptest::option::of(arb_hundredths(-200..200)),
        proptest::option::of(arb_hundredths(-200..200)),
    );
    let shape = (
        proptest::collection::vec(arb_text(), 0..3),
        proptest::collection::vec(arb_turn(), 1..6),
        proptest::collection::vec(("[fgh]", proptest::option::of(arb_text())), 0..3),
        0..6u8,
        0..3u8,
        proptest::option::of(1..50_000u32),
        any::<bool>(),
    );
    (sampling, shape).prop_map(
        |(
            (temperature, top_p, top_k, max_tokens, stop, seed, presence, frequency),
            (system, turns, tools, choice, format, budget, stream),
        )| {
            let mut req = chat::Request {
                model: MODEL.into(),
                system: system
                    .into_iter()
                    .map(|text| SystemPart {
                        text,
                        cache_control: None,
                    })
                    .collect(),
                temperature,
                top_p,
                top_k,
                max_tokens,
                stop,
                seed,
                presence_penalty: presence,
                frequency_penalty: frequency,
                thinking: budget.map(|budget_tokens| Thinking { budget_tokens }),
                stream,
                include_usage: stream,
                ..chat::Request::default()
            };
            req.tools = tools
                .into_iter()
                .map(|(name, description)| Tool {
                    name,
                    description,
                    parameters: Some(RawJson(crate::wire::to_raw(
                        &serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}}}),
                    ))),
                    strict: None,
                    cache_control: None,
                origin: Default::default(),
                })
                .collect();
            req.tool_choice = match choice {
                0 => None,
                1 => Some(ToolChoice::Auto),
                2 => Some(ToolChoice::None),
                3 => Some(ToolChoice::Required),
                _ => Some(ToolChoice::Named("f".into())),
            };
            req.response_format = match format {
                0 => None,
                1 => Some(ResponseFormat::JsonObject),
                _ => Some(ResponseFormat::JsonSchema {
                    name: "response".into(),
                    schema: RawJson(crate::wire::to_raw(&serde_json::json!({"type": "object"}))),
                    strict: None,
                }),
            };
            let mut n = 0;
            for turn in turns {
                let i = req.messages.len();
                match turn {
                    Turn::User(parts) => req.messages.push(Message::new(Role::User, parts, i)),
                    Turn::Assistant(t) => {
                        req.messages.push(Message::new(Role::Assistant, vec![text(&t)], i))
                    }
                    Turn::Exchange {
                        text: t,
                        calls,
                        results,
                        after,
                    } => {
                        let mut parts: Vec<Part> = t.iter().map(|t| text(t)).collect();
                        let mut ids = Vec::new();
                        for (name, arguments, explicit, sig) in calls {
                            // Ids the gateway made up (`call_`) do not go to
                            // Gemini; the caller's own do.
                            let plain = if explicit {
                                format!("toolu_{n}")
                            } else {
                                format!("call_{n}")
                            };
                            n += 1;
                            let id = match sig {
                                Some(bytes) => crate::wire::gemini::id_with_signature(
                                    &plain,
                                    &base64::Engine::encode(
                                        &base64::engine::general_purpose::STANDARD,
                                        bytes,
                                    ),
                                ),
                                None => plain,
                            };
                            ids.push(id.clone());
                            parts.push(Part::ToolCall {
                                id,
                                name,
                                arguments,
                            });
                        }
                        req.messages.push(Message::new(Role::Assistant, parts, i));
                        for (id, (t, is_error)) in ids.into_iter().zip(results) {
                            let i = req.messages.len();
                            req.messages.push(Message::new(
                                Role::Tool,
                                vec![Part::ToolResult {
                                    tool_call_id: id,
                                    content: vec![ToolResultPart::Text(t)],
                                    is_error,
                                }],
                                i,
                            ));
                        }
                        if let Some(t) = after {
                            let i = req.messages.len();
                            req.messages.push(Message::new(Role::User, vec![text(&t)], i));
                        }
                    }
                }
            }
            req
        },
    )
}

/// What a round trip through Gemini's wire may change and still mean the
/// same: where messages came from, tool-call ids (the calls are numbered in
/// order, their signatures kept), turns of one role next to each other
/// (Gemini merges them), a result's text split in parts, and how JSON
/// arguments are spaced.
fn normalized(r: &chat::Request) -> chat::Request {
    let mut out = r.clone();
    let mut ids: Vec<(String, String)> = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    for m in &r.messages {
        let mut m = m.clone();
        m.origin = Origin::default();
        for p in &mut m.parts {
            match p {
                Part::ToolCall { id, arguments, .. } => {
                    let (_, sig) = split_signature(id);
                    let new = format!("#{}:{sig:?}", ids.len());
                    ids.push((id.clone(), new.clone()));
                    *id = new;
                    let v: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
                    *arguments = v.to_string();
                }
                Part::ToolResult {
                    tool_call_id,
                    content,
                    ..
                } => {
                    *tool_call_id = ids.iter().find(|(old, _)| old == tool_call_id).map_or_else(
                        || format!("unmatched {tool_call_id}"),
                        |(_, new)| new.clone(),
                    );
                    let joined: String = content
                        .iter()
                        .map(|c| match c {
                            ToolResultPart::Text(t) => t.as_str(),
                            ToolResultPart::Image(_) => "<image>",
                            ToolResultPart::Document(_) => "<document>",
                        })
                        .collect();
                    *content = vec![ToolResultPart::Text(joined)];
                }
                _ => {}
            }
        }
        match messages.last_mut() {
            Some(last) if last.role == m.role && m.role != Role::Tool => last.parts.extend(m.parts),
            _ => messages.push(m),
        }
    }
    out.messages = messages;
    out
}

proptest! {
    #[test]
    fn canonical_requests_survive_the_gemini_wire(req in arb_request()) {
        let body = encode_request(&req).unwrap();
        let (back, _) = decode_request(&body, &req.model, req.stream)
            .map_err(|e| TestCaseError::fail(format!("{e:?} in {}", String::from_utf8_lossy(&body))))?;
        prop_assert_eq!(normalized(&back), normalized(&req));
    }
}
