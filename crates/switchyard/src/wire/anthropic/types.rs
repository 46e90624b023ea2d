//! Serde types in Anthropic's own names.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::wire::UnknownKeys;

// ---------------------------------------------------------------- requests

pub type SystemIn = crate::wire::TextOrList<BlockIn>;

#[derive(Debug, Deserialize)]
pub struct MessageIn {
    pub role: String,
    pub content: ContentIn,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

pub type ContentIn = crate::wire::TextOrList<BlockIn>;

/// Every block type in one struct: which fields matter depends on `type`.
#[derive(Debug, Deserialize)]
pub struct BlockIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub source: Option<SourceIn>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub input: Option<Box<RawValue>>,
    #[serde(default)]
    pub tool_use_id: Option<String>,
    #[serde(default)]
    pub content: Option<ContentIn>,
    #[serde(default)]
    pub is_error: Option<bool>,
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub cache_control: Option<crate::chat::RawJson>,
    #[serde(default)]
    pub citations: Option<Box<RawValue>>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Debug, Deserialize)]
pub struct SourceIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ToolIn {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<crate::chat::RawJson>,
    #[serde(default)]
    pub strict: Option<bool>,
    #[serde(default)]
    pub cache_control: Option<crate::chat::RawJson>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Debug, Deserialize)]
pub struct ToolChoiceIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct ThinkingIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub budget_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct MetadataIn {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Debug, Deserialize)]
pub struct OutputConfigIn {
    #[serde(default)]
    pub format: Option<OutputFormatIn>,
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Debug, Deserialize)]
pub struct OutputFormatIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub schema: Option<crate::chat::RawJson>,
}

#[derive(Debug, Serialize)]
pub struct RequestOut<'a> {
    pub model: &'a str,
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<TextBlockOut<'a>>,
    pub messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<AnyToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfigOut<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

#[derive(Debug, Serialize)]
pub struct TextBlockOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
}

#[derive(Debug, Serialize)]
pub struct MessageOut<'a> {
    pub role: &'static str,
    pub content: Vec<BlockOut<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockOut<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Image {
        source: ImageSourceOut<'a>,
    },
    Document {
        source: DocSourceOut<'a>,
        /// The caller's file name: the label the model sees beside it.
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<&'a str>,
    },
    ToolUse {
        id: std::borrow::Cow<'a, str>,
        name: &'a str,
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: std::borrow::Cow<'a, str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<BlockOut<'a>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSourceOut<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

/// A document block's source: a base64 PDF, a PDF by URL, or plain text.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DocSourceOut<'a> {
    Base64 {
        media_type: &'static str,
        data: &'a str,
    },
    Url {
        url: &'a str,
    },
    Text {
        media_type: &'static str,
        data: std::borrow::Cow<'a, str>,
    },
}

#[derive(Debug, Serialize)]
pub struct ToolOut<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub input_schema: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
}

/// A tool the model may call: the caller's own, or a server tool
/// Anthropic runs.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum AnyToolOut<'a> {
    Custom(ToolOut<'a>),
    WebSearch(WebSearchToolOut<'a>),
}

/// The web search server tool (`web_search_20250305`).
#[derive(Debug, Serialize)]
pub struct WebSearchToolOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub allowed_domains: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_location: Option<UserLocationOut<'a>>,
}

#[derive(Debug, Serialize)]
pub struct UserLocationOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct ToolChoiceOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct MetadataOut<'a> {
    pub user_id: &'a str,
}

#[derive(Debug, Serialize)]
pub struct ThinkingOut {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub budget_tokens: u32,
}

#[derive(Debug, Serialize)]
pub struct OutputConfigOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<OutputFormatOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct OutputFormatOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: &'a RawValue,
}

// --------------------------------------------------------------- responses

#[derive(Debug, Deserialize)]
pub struct ResponseIn {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub content: Vec<ResponseBlockIn>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: Option<UsageIn>,
}

/// A block of an answer. Apart from request blocks: server-tool blocks
/// carry a `content` that is no list of blocks (a search error is an
/// object), read only where it is understood.
#[derive(Debug, Deserialize)]
pub struct ResponseBlockIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub input: Option<Box<RawValue>>,
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub tool_use_id: Option<String>,
    #[serde(default)]
    pub content: Option<Box<RawValue>>,
}

/// A `web_search_tool_result`'s `content`: the results, or an error.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SearchResultsIn {
    Results(Vec<SearchResultIn>),
    Error(SearchErrorIn),
}

#[derive(Debug, Deserialize)]
pub struct SearchResultIn {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SearchErrorIn {
    #[serde(default)]
    pub error_code: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct UsageIn {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub server_tool_use: Option<ServerToolUseIn>,
}

/// Server tools run, billed by the call.
#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct ServerToolUseIn {
    #[serde(default)]
    pub web_search_requests: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ResponseOut<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: &'a str,
    pub content: Vec<ResponseBlockOut<'a>>,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<&'a str>,
    pub usage: UsageOut,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBlockOut<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a RawValue,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

#[derive(Debug, Serialize, Clone, Copy)]
pub struct UsageOut {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

// ------------------------------------------------------------------ errors

#[derive(Debug, Deserialize)]
pub struct ErrorEnvelopeIn {
    pub error: ErrorIn,
}

#[derive(Debug, Deserialize)]
pub struct ErrorIn {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}
