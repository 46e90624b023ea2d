//! The canonical chat model: the hub between every inbound dialect and every
//! upstream dialect.
//!
//! Each wire format converts to and from these types, so N dialects need N
//! converters, not N×M. The model is a superset of what the dialects can say;
//! a converter that meets something its dialect cannot express refuses with a
//! [`Untranslatable`] naming the field, it never drops it silently.
//!
//! This module does no IO, no async and no logging.

use serde_json::value::RawValue;

/// A JSON value kept as its text (schemas, cache_control): carried through
/// untouched, compared by text.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct RawJson(pub Box<RawValue>);

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl std::ops::Deref for RawJson {
    type Target = RawValue;
    fn deref(&self) -> &RawValue {
        &self.0
    }
}

/// One chat request, whatever dialect it arrived in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// The `model` as the caller wrote it: `provider/model` or a route name.
    pub model: String,
    /// System instructions, in order. OpenAI `system`/`developer` messages
    /// that appear before the first turn land here; later ones stay in
    /// `messages` with [`Role::System`].
    pub system: Vec<SystemPart>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    /// Tools the provider runs itself (`web_search`, ...), as the caller
    /// defined them: a target maps each to its own equivalent or refuses it
    /// by name.
    pub builtin_tools: Vec<BuiltinTool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub n: Option<u32>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// OpenAI `user` / Anthropic `metadata.user_id`.
    pub user: Option<String>,
    pub thinking: Option<Thinking>,
    pub reasoning_effort: Option<String>,
    pub stream: bool,
    /// The caller asked to see usage in the stream (OpenAI
    /// `stream_options.include_usage`). Upstream usage is always requested;
    /// this only decides whether the caller sees it.
    pub include_usage: bool,
    /// Paths of fields the decoder met but the canonical model has no place
    /// for (`logprobs`, `messages[2].name`). A same-dialect call forwards the
    /// caller's bytes, so these reach the upstream; a cross-dialect call
    /// refuses the first of them by name.
    pub unknown_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemPart {
    pub text: String,
    /// Anthropic `cache_control`, kept so an Anthropic upstream gets it back.
    pub cache_control: Option<RawJson>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    /// The result of one tool call (OpenAI `role: tool`; Anthropic
    /// `tool_result` blocks; Gemini `functionResponse` parts).
    Tool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
    /// Where the caller put this message, so errors name the caller's own
    /// field even after system text and tool results were moved around.
    pub origin: Origin,
}

/// A message's place in the caller's request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The caller's index in `messages`.
    pub message: usize,
    /// The caller's content index of each part; empty when they are the same.
    pub parts: Vec<usize>,
}

impl Message {
    pub fn new(role: Role, parts: Vec<Part>, message: usize) -> Message {
        Message {
            role,
            parts,
            origin: Origin {
                message,
                parts: Vec::new(),
            },
        }
    }

    /// `messages[i]` as the caller numbered it.
    pub fn path(&self) -> String {
        format!("messages[{}]", self.origin.message)
    }

    /// `messages[i].content[j]` as the caller numbered it, for part `j`.
    pub fn part_path(&self, j: usize) -> String {
        let c = self.origin.parts.get(j).copied().unwrap_or(j);
        format!("messages[{}].content[{c}]", self.origin.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text {
        text: String,
        cache_control: Option<RawJson>,
    },
    Image(Image),
    /// A call the assistant made. `arguments` is JSON text, as OpenAI sends it.
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    ToolResult {
        tool_call_id: String,
        content: Vec<ToolResultPart>,
        is_error: bool,
    },
    /// Model reasoning, with the provider's signature when it has one.
    Thinking {
        text: String,
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
    /// A web search the provider ran itself while answering (Anthropic's
    /// web search tool, Gemini's Google Search). Answers carry it so each
    /// caller's dialect can show it; it never goes back upstream: what the
    /// model took from it is in the answer's text.
    WebSearch(WebSearch),
}

/// One search a provider ran on its own behalf, as far as it says.
///
/// `queries` is a list because Gemini reports every query of a grounded
/// answer at once (and the Responses API's `action.queries` can say so);
/// `error` because Anthropic answers a failed search (`max_uses_exceeded`)
/// with an error in place of results, which a caller should see as a
/// failed search, not as a search that found nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebSearch {
    /// The provider's id for it (Anthropic's `srvtoolu_...`); empty when it
    /// gives none (Gemini).
    pub id: String,
    pub queries: Vec<String>,
    /// The pages it found (Anthropic) or that ground the answer (Gemini),
    /// in the provider's order.
    pub sources: Vec<WebSource>,
    /// The provider's error code, when the search failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebSource {
    pub url: String,
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolResultPart {
    Text(String),
    Image(Image),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Image {
    Url(String),
    Base64 { media_type: String, data: String },
}

impl Image {
    /// Parses an OpenAI `image_url.url`, which is either a URL or a
    /// `data:<media type>;base64,<data>` URI.
    pub fn from_url(url: &str) -> Image {
        if let Some(rest) = url.strip_prefix("data:")
            && let Some((media_type, data)) = rest.split_once(";base64,")
        {
            return Image::Base64 {
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            };
        }
        Image::Url(url.to_owned())
    }

    pub fn to_url(&self) -> String {
        match self {
            Image::Url(url) => url.clone(),
            Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Option<RawJson>,
    pub strict: Option<bool>,
    pub cache_control: Option<RawJson>,
    /// What the caller defined, when that was not a plain function.
    pub origin: ToolOrigin,
}

/// A function tool as the caller defined it, so its calls go back in the
/// caller's terms: a Responses `custom` (freeform) tool is sent as a
/// function of one string argument `input`, and a tool inside a
/// `namespace` under the name `{namespace}__{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOrigin {
    pub namespace: Option<String>,
    /// The caller's own name, when `name` was made from it.
    pub name: Option<String>,
    pub freeform: bool,
}

/// A built-in tool the caller asked for (Responses `web_search`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinTool {
    /// Its `type`.
    pub kind: String,
    /// Where the caller put it (`tools[3]`), for errors.
    pub path: String,
    /// The whole definition, as sent.
    pub definition: RawJson,
    /// Its options in canonical terms, when it is a web search tool: the
    /// one built-in tool other providers have an equivalent of.
    pub web_search: Option<WebSearchTool>,
}

/// A web search tool's options (Responses `web_search`,
/// `web_search_preview`). Options the canonical model has no place for
/// are in [`Request::unknown_fields`], as for any other tool.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSearchTool {
    /// Only pages of these domains (and their subdomains).
    pub allowed_domains: Vec<String>,
    /// Where the user roughly is, to localise results.
    pub user_location: Option<UserLocation>,
    /// `low`, `medium` (the default) or `high`: how much of each page goes
    /// into the model's context.
    pub context_size: Option<String>,
    /// `false`: cached and indexed results only, never a live fetch (Codex
    /// sends this by default).
    pub live: bool,
}

impl Default for WebSearchTool {
    fn default() -> Self {
        WebSearchTool {
            allowed_domains: Vec::new(),
            user_location: None,
            context_size: None,
            live: true,
        }
    }
}

/// An approximate location, as OpenAI and Anthropic both take it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLocation {
    pub city: Option<String>,
    pub region: Option<String>,
    /// Two-letter ISO country code.
    pub country: Option<String>,
    /// IANA time zone (`Europe/Paris`).
    pub timezone: Option<String>,
}

impl UserLocation {
    pub fn is_empty(&self) -> bool {
        self.city.is_none()
            && self.region.is_none()
            && self.country.is_none()
            && self.timezone.is_none()
    }
}

impl BuiltinTool {
    /// This tool as a web search for `target`, which runs live searches
    /// at the default context size and nothing else: the checks every
    /// target with a search of its own shares. Anything else is refused
    /// by name.
    pub fn live_web_search(&self, target: &'static str) -> Result<&WebSearchTool, Untranslatable> {
        let Some(ws) = &self.web_search else {
            return Err(self.no_equivalent(target));
        };
        if !ws.live {
            return Err(Untranslatable::new(
                format!("{}.external_web_access", self.path),
                target,
                "`external_web_access: false` asks for cached results only, which only OpenAI's own search offers (this target always searches the live web); an operator may drop the tool: [responses] drop_unsupported_tools",
            ));
        }
        if let Some(size) = ws.context_size.as_deref().filter(|s| *s != "medium") {
            return Err(Untranslatable::new(
                format!("{}.search_context_size", self.path),
                target,
                format!(
                    "its web search has no context size to set; only the default, `medium`, can be sent, not `{size}`"
                ),
            ));
        }
        Ok(ws)
    }

    /// The refusal of a built-in tool `target` has no equivalent of.
    pub fn no_equivalent(&self, target: &'static str) -> Untranslatable {
        Untranslatable::new(
            self.path.clone(),
            target,
            format!(
                "the built-in tool `{}` has no equivalent there (an operator may drop it: [responses] drop_unsupported_tools)",
                self.kind
            ),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// The model must call some tool (OpenAI `required`, Anthropic `any`).
    Required,
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: RawJson,
        strict: Option<bool>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thinking {
    pub budget_tokens: u32,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// A caller-supplied stop sequence matched.
    StopSequence,
    /// Anthropic `pause_turn`: a long server-tool turn was paused.
    PauseTurn,
    Refusal,
}

/// Token counts. `input_tokens` counts every prompt token, cached or not;
/// `output_tokens` counts every generated token, reasoning included. The
/// detail fields say how many of those were cached, written to the cache or
/// spent on reasoning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// Web searches the provider ran and bills by the search (Anthropic's
    /// `server_tool_use.web_search_requests`), priced apart from tokens.
    pub web_search_requests: u64,
}

/// The largest token count taken from an upstream: far past any real
/// call, and small enough that sums over millions of calls stay within the
/// database's 64-bit integers.
pub const MAX_TOKEN_COUNT: u64 = 1 << 40;

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Every count at most [`MAX_TOKEN_COUNT`]: what an upstream reports is
    /// input like any other.
    pub fn bounded(self) -> Usage {
        let b = |n: u64| n.min(MAX_TOKEN_COUNT);
        Usage {
            input_tokens: b(self.input_tokens),
            output_tokens: b(self.output_tokens),
            cached_input_tokens: b(self.cached_input_tokens),
            cache_write_tokens: b(self.cache_write_tokens),
            reasoning_tokens: b(self.reasoning_tokens),
            web_search_requests: b(self.web_search_requests),
        }
    }
}

/// One complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: String,
    /// The model the upstream says served (often a dated snapshot).
    pub model: String,
    pub created: u64,
    /// Text, tool calls and thinking, in the order the model produced them.
    pub content: Vec<Part>,
    pub finish: Option<FinishReason>,
    pub stop_sequence: Option<String>,
    pub usage: Option<Usage>,
}

/// One step of a streamed answer. A stream is `Start`, then any number of
/// deltas, `Usage` whenever the upstream reports it (the last one wins), and
/// `Finish`; the end of the upstream body ends it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Start {
        id: String,
        model: String,
        created: u64,
    },
    TextDelta(String),
    ThinkingDelta(String),
    SignatureDelta(String),
    /// A new tool call. `index` counts tool calls within this answer from 0.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    ToolCallDelta {
        index: u32,
        arguments: String,
    },
    /// A search the provider ran, whole, once its results are known: no
    /// caller dialect shows a search's results before they are in.
    WebSearch(WebSearch),
    Usage(Usage),
    Finish {
        reason: FinishReason,
        stop_sequence: Option<String>,
    },
}

/// A request field the target dialect cannot express. The gateway answers
/// 400 naming `field`; it never drops the field silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` cannot be sent to {target}: {reason}")]
pub struct Untranslatable {
    pub field: String,
    pub target: &'static str,
    pub reason: String,
}

impl Untranslatable {
    pub fn new(field: impl Into<String>, target: &'static str, reason: impl Into<String>) -> Self {
        Untranslatable {
            field: field.into(),
            target,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_become_base64_images_and_back() {
        let img = Image::from_url("data:image/png;base64,AAAA");
        assert_eq!(
            img,
            Image::Base64 {
                media_type: "image/png".into(),
                data: "AAAA".into()
            }
        );
        assert_eq!(img.to_url(), "data:image/png;base64,AAAA");
        assert_eq!(
            Image::from_url("https://x/y.png"),
            Image::Url("https://x/y.png".into())
        );
    }
}
