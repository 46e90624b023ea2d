//! Mutators for the stable-toolchain fuzzer: raw bytes, JSON documents
//! (kept structurally plausible so decoders get past the parse and into
//! their translation code), SSE bodies (events kept, their data mutated),
//! and URL paths. Deterministic from the RNG they are given.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

/// Byte strings that tend to find bugs in parsers and normalisers.
const INTERESTING: &[&str] = &[
    "",
    "\0",
    "\r",
    "\n",
    "\r\n\r\n",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "data: ",
    "event: ",
    "id: ",
    "retry: ",
    ": ping",
    "[DONE]",
    "%",
    "%2e",
    "%2E%2e",
    "%2f",
    "%5c",
    "%00",
    "%25",
    "..",
    "/",
    "//",
    "\\\\",
    "@",
    "?",
    "#",
    "é",
    "\u{202e}",
    "\u{fffd}",
    "𝕏",
    "\u{ff0e}",
    "1e999",
    "-0",
    "18446744073709551616",
    "-9223372036854775809",
    "NaN",
    "null",
    "true",
    "mutation",
    "subscription",
    "query",
    "{ a }",
    "...F",
];

/// Field names the dialects read, so mutated documents hit their code.
pub const FIELDS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tools",
    "tool_choice",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "parameters",
    "input",
    "output",
    "system",
    "stream",
    "max_tokens",
    "max_output_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "stop_sequences",
    "n",
    "seed",
    "user",
    "metadata",
    "response_format",
    "json_schema",
    "schema",
    "strict",
    "reasoning",
    "reasoning_effort",
    "thinking",
    "budget_tokens",
    "effort",
    "image_url",
    "url",
    "detail",
    "source",
    "media_type",
    "data",
    "file",
    "file_data",
    "file_id",
    "filename",
    "document",
    "cache_control",
    "tool_use",
    "tool_result",
    "tool_use_id",
    "tool_call_id",
    "is_error",
    "id",
    "call_id",
    "status",
    "usage",
    "input_tokens",
    "output_tokens",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "choices",
    "delta",
    "index",
    "finish_reason",
    "stop_reason",
    "candidates",
    "parts",
    "functionCall",
    "functionResponse",
    "inlineData",
    "mimeType",
    "fileData",
    "fileUri",
    "thought",
    "thoughtSignature",
    "generationConfig",
    "systemInstruction",
    "contents",
    "safetySettings",
    "toolConfig",
    "functionDeclarations",
    "googleSearch",
    "usageMetadata",
    "promptTokenCount",
    "candidatesTokenCount",
    "previous_response_id",
    "store",
    "instructions",
    "include",
    "encrypted_content",
    "summary",
    "item_reference",
    "function_call",
    "function_call_output",
    "web_search",
    "web_search_call",
    "parallel_tool_calls",
    "stream_options",
    "include_usage",
    "signature",
    "redacted_thinking",
    "error",
    "message",
    "code",
    "param",
    "choices",
    "logprobs",
    "annotations",
    "refusal",
    "audio",
    "modalities",
    "prediction",
    "service_tier",
];

pub fn bytes(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = out.len();
        match rng.gen_range(0..7) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                out[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => {
                let i = rng.gen_range(0..=len);
                out.insert(i, rng.r#gen());
            }
            2 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                out.drain(a..b);
            }
            3 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                let piece = out[a..b].to_vec();
                let at = rng.gen_range(0..=out.len());
                out.splice(at..at, piece);
            }
            4 => {
                let s = INTERESTING[rng.gen_range(0..INTERESTING.len())];
                let at = rng.gen_range(0..=len);
                out.splice(at..at, s.bytes());
            }
            5 if len > 0 => out.truncate(rng.gen_range(0..len)),
            _ => {
                let i = rng.gen_range(0..=len);
                let byte = [0u8, 0x7f, 0x80, 0xc0, 0xff, b'"', b'\\'][rng.gen_range(0..7)];
                out.insert(i, byte);
            }
        }
    }
    out
}

fn small_string(rng: &mut StdRng) -> String {
    match rng.gen_range(0..5) {
        0 => String::new(),
        1 => INTERESTING[rng.gen_range(0..INTERESTING.len())].to_owned(),
        2 => FIELDS[rng.gen_range(0..FIELDS.len())].to_owned(),
        3 => "x".repeat(rng.gen_range(0..5000)),
        _ => (0..rng.gen_range(0..12))
            .map(|_| char::from_u32(rng.gen_range(0..0x3000)).unwrap_or('?'))
            .collect(),
    }
}

/// A value of any JSON type, sometimes odd (deep, huge, empty).
pub fn any_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..11) {
        0 => Value::Null,
        1 => json!(rng.gen_bool(0.5)),
        2 => json!(rng.gen_range(-3i64..3)),
        3 => [
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1e308),
            json!(-1e-308),
            json!(0.5),
        ][rng.gen_range(0..6)]
        .clone(),
        4 => json!(small_string(rng)),
        5 if depth < 3 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| any_value(rng, depth + 1))
                .collect(),
        ),
        6 if depth < 3 => {
            let mut m = Map::new();
            for _ in 0..rng.gen_range(0..4) {
                m.insert(
                    FIELDS[rng.gen_range(0..FIELDS.len())].to_owned(),
                    any_value(rng, depth + 1),
                );
            }
            Value::Object(m)
        }
        7 => {
            // Deeply nested, to find recursion without a bound.
            let mut v = json!("deep");
            for _ in 0..rng.gen_range(10..200) {
                v = json!([v]);
            }
            v
        }
        8 => json!([]),
        9 => json!({}),
        _ => json!(FIELDS[rng.gen_range(0..FIELDS.len())]),
    }
}

/// Every node of `v`, as JSON pointers.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A JSON document with a few structural changes: a node replaced by a
/// value of another type, a member dropped or added, an array element
/// doubled, a string swapped for a known field name.
pub fn json(rng: &mut StdRng, seed: &Value) -> Value {
    let mut v = seed.clone();
    for _ in 0..rng.gen_range(1..=3) {
        let mut all = Vec::new();
        pointers(&v, String::new(), &mut all);
        let at = all[rng.gen_range(0..all.len())].clone();
        let op = rng.gen_range(0..6);
        let Some(node) = v.pointer_mut(&at) else {
            continue;
        };
        match (op, node) {
            (0, node) => *node = any_value(rng, 0),
            (1, Value::Object(m)) if !m.is_empty() => {
                let k = m
                    .keys()
                    .nth(rng.gen_range(0..m.len()))
                    .cloned()
                    .unwrap_or_default();
                m.remove(&k);
            }
            (2, Value::Object(m)) => {
                m.insert(
                    FIELDS[rng.gen_range(0..FIELDS.len())].to_owned(),
                    any_value(rng, 1),
                );
            }
            (3, Value::Array(a)) if !a.is_empty() => {
                let i = rng.gen_range(0..a.len());
                let x = a[i].clone();
                a.insert(i, x);
            }
            (4, Value::String(s)) => *s = small_string(rng),
            (5, node) => *node = json!([node.clone()]),
            (_, node) => *node = any_value(rng, 1),
        }
    }
    v
}

/// A document's bytes: mostly a JSON mutation, sometimes raw byte damage.
pub fn document(rng: &mut StdRng, seed: &Value) -> Vec<u8> {
    let v = json(rng, seed);
    let text = serde_json::to_vec(&v).unwrap_or_default();
    if rng.gen_bool(0.15) {
        bytes(rng, &text)
    } else {
        text
    }
}

/// An SSE body: events kept, some data mutated as JSON, some dropped,
/// doubled or cut; sometimes raw byte damage across it.
pub fn sse(rng: &mut StdRng, seed: &str) -> Vec<u8> {
    let mut events: Vec<String> = seed
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(str::to_owned)
        .collect();
    for _ in 0..rng.gen_range(1..=3) {
        if events.is_empty() {
            break;
        }
        let i = rng.gen_range(0..events.len());
        match rng.gen_range(0..5) {
            0 => {
                events.remove(i);
            }
            1 => {
                let e = events[i].clone();
                events.insert(i, e);
            }
            2 => {
                let j = rng.gen_range(0..events.len());
                events.swap(i, j);
            }
            _ => {
                let e = &events[i];
                let (head, data) = match e.find("data: ") {
                    Some(p) => (&e[..p], &e[p + 6..]),
                    None => ("", e.as_str()),
                };
                let mutated = match serde_json::from_str::<Value>(data) {
                    Ok(v) => serde_json::to_string(&json(rng, &v)).unwrap_or_default(),
                    Err(_) => String::from_utf8_lossy(&bytes(rng, data.as_bytes())).into_owned(),
                };
                events[i] = format!("{head}data: {mutated}");
            }
        }
    }
    let mut out = events.join("\n\n").into_bytes();
    out.extend_from_slice(b"\n\n");
    if rng.gen_bool(0.1) {
        out = bytes(rng, &out);
    }
    out
}
