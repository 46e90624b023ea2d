//! The mock OpenAI upstream's Responses API (`/v1/responses`), in OpenAI's
//! shapes (openai-python 3.57 types and live captures): what the request
//! asks, read from its items, and the Response object or the event stream
//! that answers it.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Answer, Ask, thirds, words};

fn text_of(v: &Value) -> String {
    super::text_of(v)
}

/// What a Responses request asks.
pub(super) fn read_ask(body: &Value) -> Ask {
    let items: Vec<Value> = match &body["input"] {
        Value::String(s) => vec![json!({"role": "user", "content": s})],
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    };
    let last = items.last().cloned().unwrap_or(Value::Null);
    let kind = last["type"].as_str().unwrap_or("message");
    let tool_result = matches!(kind, "function_call_output" | "custom_tool_call_output")
        .then(|| text_of(&last["output"]));
    let user_text = if kind == "message" && last["role"] == "user" {
        text_of(&last["content"])
    } else {
        String::new()
    };
    Ask {
        model: body["model"].as_str().unwrap_or("").into(),
        stream: body["stream"].as_bool().unwrap_or(false),
        include_usage: true,
        tools: body["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter(|t| t["type"] == "function")
                    .filter_map(|t| t["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        tool_result,
        user_text,
    }
}

fn usage() -> Value {
    json!({"input_tokens": 11, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
           "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 18})
}

fn object(ask: &Ask, status: &str, output: Value, usage: Value) -> Value {
    json!({"id": "resp_mock0001", "object": "response", "created_at": 1_700_000_000, "status": status,
           "background": false, "completed_at": if status == "completed" { json!(1_700_000_001) } else { Value::Null },
           "error": null, "incomplete_details": null, "instructions": null, "max_output_tokens": null,
           "max_tool_calls": null, "model": ask.model, "output": output, "parallel_tool_calls": true,
           "previous_response_id": null, "prompt_cache_key": null, "reasoning": {"effort": null, "summary": null},
           "safety_identifier": null, "service_tier": "default", "store": true, "temperature": 1.0,
           "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto", "tools": [],
           "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": null, "metadata": {}})
}

fn items(ans: &Answer, status: &str) -> Vec<Value> {
    match ans {
        Answer::Text(t) => vec![json!({"id": "msg_mock0", "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": t}]})],
        Answer::Calls(calls) => calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| {
                json!({"id": format!("fc_mock{i}"), "type": "function_call", "status": status,
                       "arguments": if status == "in_progress" { String::new() } else { args.to_string() },
                       "call_id": format!("call_mock_{i}"), "name": name})
            })
            .collect(),
    }
}

/// A whole Response object.
pub(super) fn message(ask: &Ask, ans: &Answer) -> Value {
    object(ask, "completed", json!(items(ans, "completed")), usage())
}

/// The event stream, in OpenAI's order.
pub(super) fn stream(ask: &Ask, ans: &Answer) -> Vec<(Duration, String)> {
    let mut seq = 0;
    let mut out = Vec::new();
    let mut ev = |mut v: Value| {
        v["sequence_number"] = json!(seq);
        seq += 1;
        let kind = v["type"].as_str().unwrap_or("").to_owned();
        out.push((Duration::ZERO, format!("event: {kind}\ndata: {v}\n\n")));
    };
    let start = object(ask, "in_progress", json!([]), Value::Null);
    ev(json!({"type": "response.created", "response": start}));
    ev(json!({"type": "response.in_progress", "response": start}));
    match ans {
        Answer::Text(t) => {
            let added = items(ans, "in_progress").remove(0);
            let mut added = added;
            added["content"] = json!([]);
            ev(json!({"type": "response.output_item.added", "output_index": 0, "item": added}));
            ev(
                json!({"type": "response.content_part.added", "item_id": "msg_mock0", "output_index": 0, "content_index": 0,
                      "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}}),
            );
            for w in words(t) {
                ev(
                    json!({"type": "response.output_text.delta", "item_id": "msg_mock0", "output_index": 0, "content_index": 0,
                          "delta": w, "logprobs": [], "obfuscation": "xyz"}),
                );
            }
            ev(
                json!({"type": "response.output_text.done", "item_id": "msg_mock0", "output_index": 0, "content_index": 0, "text": t, "logprobs": []}),
            );
            ev(
                json!({"type": "response.content_part.done", "item_id": "msg_mock0", "output_index": 0, "content_index": 0,
                      "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": t}}),
            );
            ev(
                json!({"type": "response.output_item.done", "output_index": 0, "item": items(ans, "completed")[0]}),
            );
        }
        Answer::Calls(calls) => {
            let done = items(ans, "completed");
            for (i, (_, args)) in calls.iter().enumerate() {
                let id = format!("fc_mock{i}");
                ev(
                    json!({"type": "response.output_item.added", "output_index": i, "item": items(ans, "in_progress")[i]}),
                );
                for frag in thirds(&args.to_string()) {
                    ev(
                        json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": i, "delta": frag}),
                    );
                }
                ev(
                    json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": i, "arguments": args.to_string()}),
                );
                ev(
                    json!({"type": "response.output_item.done", "output_index": i, "item": done[i]}),
                );
            }
        }
    }
    ev(
        json!({"type": "response.completed", "response": object(ask, "completed", json!(items(ans, "completed")), usage())}),
    );
    out
}
