//! Response objects: a canonical answer as a Response (the translated
//! path), the pieces streams build theirs from, and the usage of a
//! Response a native upstream sent.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::echo::Echo;
use super::reasoning;
use crate::chat::{self, FinishReason, Part, Usage};

/// How a response ended, for its `status` and `incomplete_details`.
pub fn status_of(finish: Option<&FinishReason>) -> (&'static str, Option<&'static str>) {
    match finish {
        Some(FinishReason::Length) => ("incomplete", Some("max_output_tokens")),
        Some(FinishReason::ContentFilter) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemOut<'a> {
    Message {
        id: String,
        status: &'static str,
        content: Vec<ContentOut<'a>>,
        role: &'static str,
    },
    FunctionCall {
        id: String,
        status: &'static str,
        arguments: Cow<'a, str>,
        call_id: Cow<'a, str>,
        name: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<Cow<'a, str>>,
    },
    CustomToolCall {
        id: String,
        status: &'static str,
        call_id: Cow<'a, str>,
        input: Cow<'a, str>,
        name: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<Cow<'a, str>>,
    },
    Reasoning {
        id: String,
        summary: Vec<SummaryOut<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
    WebSearchCall {
        id: String,
        status: &'static str,
        action: SearchActionOut<'a>,
    },
}

/// A web search call's `action`: `query` is required by strict clients
/// (OpenAI now calls it deprecated, for `queries`), so it is the first
/// query, or empty when the provider said none.
#[derive(Serialize)]
pub struct SearchActionOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub query: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub queries: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceOut<'a>>,
}

#[derive(Serialize)]
pub struct SourceOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub url: &'a str,
}

/// A search the provider ran, as a `web_search_call` item: `failed` when
/// the provider reported an error in place of results.
pub fn web_search_item(id: String, s: &chat::WebSearch) -> ItemOut<'_> {
    ItemOut::WebSearchCall {
        id,
        status: if s.error.is_some() {
            "failed"
        } else {
            "completed"
        },
        action: SearchActionOut {
            kind: "search",
            query: s.queries.first().map_or("", String::as_str),
            queries: &s.queries,
            sources: s
                .sources
                .iter()
                .map(|src| SourceOut {
                    kind: "url",
                    url: &src.url,
                })
                .collect(),
        },
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentOut<'a> {
    OutputText {
        annotations: [(); 0],
        logprobs: [(); 0],
        text: Cow<'a, str>,
    },
    Refusal {
        refusal: Cow<'a, str>,
    },
}

#[derive(Serialize)]
pub struct SummaryOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: Cow<'a, str>,
}

/// A tool call in the caller's terms: a function call, or a freeform
/// tool's input taken back out of its one-argument object.
pub fn call_item<'a>(
    echo: &Echo,
    id: String,
    status: &'static str,
    call_id: &'a str,
    flat_name: &'a str,
    arguments: &'a str,
) -> ItemOut<'a> {
    match echo.tool(flat_name) {
        Some(t) if t.freeform => {
            #[derive(Deserialize)]
            struct Input {
                input: String,
            }
            // A model that broke the one-argument form still gets its
            // text through, as it wrote it.
            let input = serde_json::from_str::<Input>(arguments)
                .map(|i| Cow::Owned(i.input))
                .unwrap_or(Cow::Borrowed(arguments));
            ItemOut::CustomToolCall {
                id,
                status,
                call_id: Cow::Borrowed(call_id),
                input,
                name: Cow::Owned(t.name.clone()),
                namespace: t.namespace.clone().map(Cow::Owned),
            }
        }
        Some(t) => ItemOut::FunctionCall {
            id,
            status,
            arguments: Cow::Borrowed(arguments),
            call_id: Cow::Borrowed(call_id),
            name: Cow::Owned(t.name.clone()),
            namespace: t.namespace.clone().map(Cow::Owned),
        },
        None => ItemOut::FunctionCall {
            id,
            status,
            arguments: Cow::Borrowed(arguments),
            call_id: Cow::Borrowed(call_id),
            name: Cow::Borrowed(flat_name),
            namespace: None,
        },
    }
}

/// A reasoning item for a canonical reasoning part `provider` made, its
/// state sealed in `encrypted_content` whether or not the caller asked
/// (OpenAI's newer models send it by default too): a stored response must
/// hold it for `previous_response_id` to carry reasoning on.
pub fn reasoning_item<'a>(id: String, provider: &str, part: &Part) -> ItemOut<'a> {
    let text = match part {
        Part::Thinking { text, .. } => text.clone(),
        _ => String::new(),
    };
    let sealed = reasoning::seal(provider, part);
    ItemOut::Reasoning {
        id,
        summary: if text.is_empty() {
            Vec::new()
        } else {
            vec![SummaryOut {
                kind: "summary_text",
                text: Cow::Owned(text),
            }]
        },
        encrypted_content: sealed,
    }
}

/// `usage` in a Response's terms.
pub fn usage_json(u: Option<&Usage>) -> String {
    match u {
        None => "null".to_owned(),
        Some(u) => format!(
            r#"{{"input_tokens":{},"input_tokens_details":{{"cached_tokens":{},"cache_write_tokens":{}}},"output_tokens":{},"output_tokens_details":{{"reasoning_tokens":{}}},"total_tokens":{}}}"#,
            u.input_tokens,
            u.cached_input_tokens,
            u.cache_write_tokens,
            u.output_tokens,
            u.reasoning_tokens,
            u.total()
        ),
    }
}

/// Everything a Response object holds that is not the request's echo.
pub struct Object<'a> {
    pub status: &'a str,
    pub model: &'a str,
    pub created_at: u64,
    pub completed_at: Option<u64>,
    /// `error` (rendered JSON), for a failed response.
    pub error: Option<&'a str>,
    pub incomplete: Option<&'a str>,
    /// The output items, rendered, comma-separated.
    pub output: &'a str,
    pub usage: Option<&'a Usage>,
}

/// A whole Response object.
pub fn render(echo: &Echo, o: &Object<'_>) -> String {
    let mut s = String::with_capacity(256 + echo.members().len() + o.output.len());
    s.push_str(r#"{"id":"#);
    s.push_str(&serde_json::to_string(&echo.id).unwrap_or_default());
    s.push_str(&format!(
        r#","object":"response","created_at":{},"status":"{}","completed_at":{},"error":{},"incomplete_details":{},"#,
        o.created_at,
        o.status,
        o.completed_at
            .map_or_else(|| "null".to_owned(), |t| t.to_string()),
        o.error.unwrap_or("null"),
        o.incomplete.map_or_else(
            || "null".to_owned(),
            |r| format!(r#"{{"reason":"{r}"}}"#)
        ),
    ));
    s.push_str(echo.members());
    s.push_str(r#","model":"#);
    s.push_str(&serde_json::to_string(o.model).unwrap_or_default());
    s.push_str(r#","output":["#);
    s.push_str(o.output);
    s.push_str(r#"],"usage":"#);
    s.push_str(&usage_json(o.usage));
    s.push('}');
    s
}

/// A canonical answer as a Response object, from `provider`.
pub fn encode_response(r: &chat::Response, echo: &Echo, provider: &str, now: u64) -> Vec<u8> {
    let mut items: Vec<ItemOut<'_>> = Vec::new();
    let refusal = r.finish == Some(FinishReason::Refusal);
    let (status, incomplete) = status_of(r.finish.as_ref());
    let mut text: Option<String> = None;
    let flush = |text: &mut Option<String>, items: &mut Vec<ItemOut<'_>>| {
        if let Some(t) = text.take() {
            let n = items.len();
            items.push(ItemOut::Message {
                id: echo.item_id("msg", n),
                status: "completed",
                content: vec![if refusal {
                    ContentOut::Refusal {
                        refusal: Cow::Owned(t),
                    }
                } else {
                    ContentOut::OutputText {
                        annotations: [],
                        logprobs: [],
                        text: Cow::Owned(t),
                    }
                }],
                role: "assistant",
            });
        }
    };
    for part in &r.content {
        match part {
            Part::Text { text: t, .. } => text.get_or_insert_with(String::new).push_str(t),
            Part::Thinking { .. } | Part::RedactedThinking { .. } => {
                flush(&mut text, &mut items);
                let id = echo.item_id("rs", items.len());
                items.push(reasoning_item(id, provider, part));
            }
            Part::ToolCall {
                id,
                name,
                arguments,
            } => {
                flush(&mut text, &mut items);
                let prefix = if echo.tool(name).is_some_and(|t| t.freeform) {
                    "ctc"
                } else {
                    "fc"
                };
                let item_id = echo.item_id(prefix, items.len());
                items.push(call_item(echo, item_id, "completed", id, name, arguments));
            }
            Part::WebSearch(search) => {
                flush(&mut text, &mut items);
                let id = echo.item_id("ws", items.len());
                items.push(web_search_item(id, search));
            }
            Part::Image(_) | Part::Document(_) | Part::ToolResult { .. } => {}
        }
    }
    flush(&mut text, &mut items);
    if status == "incomplete"
        && let Some(ItemOut::Message { status, .. }) = items.last_mut()
    {
        *status = "incomplete";
    }
    let output: Vec<String> = items
        .iter()
        .map(|i| String::from_utf8(crate::wire::to_vec(i)).unwrap_or_default())
        .collect();
    render(
        echo,
        &Object {
            status,
            model: &r.model,
            created_at: if r.created == 0 { now } else { r.created },
            completed_at: (status == "completed").then_some(now),
            error: None,
            incomplete,
            output: &output.join(","),
            usage: r.usage.as_ref(),
        },
    )
    .into_bytes()
}

#[derive(Deserialize, Default, Clone, Copy)]
pub struct UsageIn {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: InputDetails,
    #[serde(default)]
    output_tokens_details: OutputDetails,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: u64,
    #[serde(default)]
    cache_write_tokens: u64,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: u64,
}

impl UsageIn {
    pub fn canonical(self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cached_input_tokens: self.input_tokens_details.cached_tokens,
            cache_write_tokens: self.input_tokens_details.cache_write_tokens,
            reasoning_tokens: self.output_tokens_details.reasoning_tokens,
            // OpenAI bills its own search by the call and counts it
            // nowhere in usage.
            web_search_requests: 0,
        }
        .bounded()
    }
}

/// The usage of a Response object a native upstream sent: one walk finds
/// `usage` and serde reads only that (the whole object where the walk
/// declines).
pub fn peek_usage(body: &[u8]) -> Option<Usage> {
    if let Some(usage) = crate::wire::scan::decoded_member::<UsageIn>(body, "usage") {
        return usage.map(UsageIn::canonical);
    }
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        usage: Option<UsageIn>,
    }
    serde_json::from_slice::<Peek>(body)
        .ok()?
        .usage
        .map(UsageIn::canonical)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::chat::{WebSearch, WebSource};

    #[test]
    fn usage_is_read_from_the_object_by_a_walk_or_by_serde() {
        let usage = |b: &str| peek_usage(b.as_bytes()).map(|u| (u.input_tokens, u.output_tokens));
        let body = r#"{"id":"r","output":[{"content":[{"text":"a \"b\" {"}]}],"usage":{"input_tokens":5,"output_tokens":7,"input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":2}}}"#;
        assert_eq!(usage(body), Some((5, 7)));
        assert_eq!(usage(r#"{"id":"r","usage":null}"#), None);
        assert_eq!(usage(r#"{"id":"r"}"#), None);
        // An escaped key: the walk declines, serde reads it.
        assert_eq!(
            usage(r#"{"\u0069d":"r","usage":{"input_tokens":1,"output_tokens":2}}"#),
            Some((1, 2))
        );
        assert_eq!(usage("not json"), None);
    }

    pub(crate) fn echo() -> Echo {
        let (req, fields) = super::super::decode_request(br#"{"model":"m","input":"hi"}"#).unwrap();
        Echo::new("resp_x".into(), &fields, &req, false)
    }

    pub(crate) fn search(error: Option<&str>) -> WebSearch {
        WebSearch {
            id: "srvtoolu_1".into(),
            queries: vec!["euro 2024 winner".into(), "who won euro 2024".into()],
            sources: vec![WebSource {
                url: "https://uefa.com".into(),
                title: Some("UEFA".into()),
            }],
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_search_is_a_web_search_call_item_in_its_place() {
        let text = |t: &str| Part::Text {
            text: t.into(),
            cache_control: None,
        };
        let r = chat::Response {
            id: "msg_1".into(),
            model: "claude-x".into(),
            created: 1,
            content: vec![
                text("Let me look."),
                Part::WebSearch(search(None)),
                Part::WebSearch(search(Some("max_uses_exceeded"))),
                text("Spain won."),
            ],
            finish: Some(FinishReason::Stop),
            stop_sequence: None,
            usage: None,
        };
        let v: serde_json::Value =
            serde_json::from_slice(&encode_response(&r, &echo(), "anthropic", 2)).unwrap();
        let output = v["output"].as_array().unwrap();
        let types: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["message", "web_search_call", "web_search_call", "message"]
        );
        assert_eq!(
            output[1],
            serde_json::json!({
                "type": "web_search_call",
                "id": "ws_x01",
                "status": "completed",
                "action": {
                    "type": "search",
                    "query": "euro 2024 winner",
                    "queries": ["euro 2024 winner", "who won euro 2024"],
                    "sources": [{"type": "url", "url": "https://uefa.com"}],
                },
            })
        );
        assert_eq!(output[2]["status"], "failed");
        // Strict clients need `query` even when the provider said none.
        let bare = to_vec(&web_search_item("ws_1".into(), &WebSearch::default()));
        assert_eq!(
            std::str::from_utf8(&bare).unwrap(),
            r#"{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":""}}"#
        );
    }

    fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
        crate::wire::to_vec(v)
    }
}
