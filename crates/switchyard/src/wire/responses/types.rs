//! Serde types of the Responses API, in OpenAI's own names. Inbound types
//! are lenient the way clients are (an input message may omit `type`, an
//! assistant message its id and status, an image its `detail`).

use serde::Deserialize;

use crate::chat::RawJson;
use crate::wire::{TextOrList, UnknownKeys};

/// One item of `input` (or of `additional_tools`'s neighbours): every
/// field any item type has, read by `type`.
#[derive(Debug, Deserialize)]
pub struct ItemIn {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<TextOrList<PartIn>>,
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub output: Option<TextOrList<PartIn>>,
    #[serde(default)]
    pub summary: Option<Vec<SummaryIn>>,
    #[serde(default)]
    pub encrypted_content: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<ToolIn>>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

/// A content part of a message or of a tool output.
#[derive(Debug, Deserialize)]
pub struct PartIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub file_data: Option<String>,
    #[serde(default)]
    pub file_url: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Debug, Deserialize)]
pub struct SummaryIn {
    #[serde(default)]
    pub text: String,
}

/// A tool definition: function, custom (freeform), namespace (a group of
/// them), or a built-in tool (`web_search`, ...), kept raw.
#[derive(Debug, Deserialize)]
pub struct ToolIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<RawJson>,
    #[serde(default)]
    pub strict: Option<bool>,
    #[serde(default)]
    pub format: Option<CustomFormatIn>,
    #[serde(default)]
    pub tools: Option<Vec<ToolIn>>,
    /// Every other member, with its value: a built-in tool's options
    /// (`filters`, `user_location`...) are read from here, and forwarded
    /// as they came on the native path.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct CustomFormatIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub syntax: Option<String>,
    #[serde(default)]
    pub definition: Option<String>,
}

/// `tool_choice`: a mode, or an object by `type`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ToolChoiceIn {
    Mode(String),
    Object(ToolChoiceObjectIn),
}

#[derive(Debug, Deserialize)]
pub struct ToolChoiceObjectIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<AllowedToolIn>>,
}

#[derive(Debug, Deserialize)]
pub struct AllowedToolIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TextConfigIn {
    #[serde(default)]
    pub format: Option<FormatIn>,
    #[serde(default)]
    pub verbosity: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Debug, Deserialize)]
pub struct FormatIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub schema: Option<RawJson>,
    #[serde(default)]
    pub strict: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ReasoningIn {
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub generate_summary: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Debug, Deserialize)]
pub struct StreamOptionsIn {
    #[serde(flatten)]
    pub keys: UnknownKeys,
}
