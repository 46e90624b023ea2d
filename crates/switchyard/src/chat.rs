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
    /// A file given with the request (a PDF, a text file...): see
    /// [`Document`].
    Document(Document),
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
    /// A file a tool returned (Anthropic `document` blocks and Responses
    /// `input_file` parts may stand in a tool's output).
    Document(Document),
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

/// A file given with the request (a PDF, a text file, a spreadsheet...):
/// a Responses `input_file`, a Chat Completions `file` part, an Anthropic
/// `document` block, a Gemini `inlineData` or `fileData` part of a
/// document type. Images are not documents: they stay [`Part::Image`],
/// which every dialect has a form for.
///
/// Why this shape:
/// - [`DocSource`] says where the bytes are, because that is where the
///   dialects differ: Chat Completions takes files inline only, Anthropic
///   fetches PDFs by URL and no other type, Gemini fetches public https
///   URLs, and only Anthropic has a form for plain text as text. An
///   encoder that has no form for a source refuses it by name.
/// - `media_type` is optional because a Responses `file_url` (or a bare
///   base64 `file_data`) carries none; [`Document::media_type`] then takes
///   one from the extension of the file's name or URL, and a target that
///   needs one refuses the document when neither says.
/// - `filename` is the name the caller gave (OpenAI's `filename`), a label
///   the model sees beside the file. Anthropic's `title` is not read as
///   one (OpenAI reads a file's type from its name's extension, which a
///   title need not have): it stays an unknown field, like `context`.
/// - A file stored at a provider (an OpenAI `file_id`, an Anthropic `file`
///   source, a Gemini Files API or `gs://` URI) has no place here: only
///   that provider can read it, so it stays an unknown field, forwarded by
///   the same-dialect path and refused by every other target.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub source: DocSource,
    /// The IANA media type as the caller gave it (`application/pdf`).
    pub media_type: Option<String>,
    pub filename: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DocSource {
    /// The file's bytes in base64, as every dialect sends them inline.
    Base64(String),
    /// A URL the provider fetches the file from.
    Url(String),
    /// Plain text given as text (Anthropic's `text` source); targets
    /// without such a form take it as a `text/plain` file in base64.
    Text(String),
}

/// What a document is, as far as a target's rules go: Anthropic reads PDF
/// and text, Gemini PDF and text, OpenAI almost anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Pdf,
    /// `text/*`, JSON, XML: text a model reads as it is.
    Text,
    /// Anything else: Office files, spreadsheets, archives...
    Other,
}

impl DocKind {
    /// The kind of a media type (its parameters and case aside).
    pub fn of(media_type: &str) -> DocKind {
        let essence = media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/pdf" => DocKind::Pdf,
            "application/json" | "application/xml" => DocKind::Text,
            t if t.starts_with("text/") => DocKind::Text,
            _ => DocKind::Other,
        }
    }
}

/// File name extensions and the media types they stand for: the documents
/// OpenAI lists for `input_file`, and PDF and text for the others.
const EXTENSIONS: &[(&str, &str)] = &[
    ("pdf", "application/pdf"),
    ("txt", "text/plain"),
    ("md", "text/markdown"),
    ("markdown", "text/markdown"),
    ("csv", "text/csv"),
    ("tsv", "text/tab-separated-values"),
    ("html", "text/html"),
    ("htm", "text/html"),
    ("json", "application/json"),
    ("xml", "application/xml"),
    ("rtf", "application/rtf"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
];

/// The media type a file name's extension stands for, if it is one of
/// [`EXTENSIONS`].
fn type_for_name(name: &str) -> Option<&'static str> {
    let (_, ext) = name.rsplit_once('.')?;
    EXTENSIONS
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map(|(_, t)| *t)
}

impl Document {
    /// A `file_data` of OpenAI's dialects: a `data:<type>;base64,` URL, as
    /// OpenAI documents it, or bare base64. `None` for a data URL that is
    /// not base64.
    pub fn from_file_data(file_data: &str, filename: Option<String>) -> Option<Document> {
        let (media_type, data) = match file_data.strip_prefix("data:") {
            Some(rest) => {
                let (media_type, data) = rest.split_once(";base64,")?;
                (Some(media_type.to_owned()), data)
            }
            None => (None, file_data),
        };
        Some(Document {
            source: DocSource::Base64(data.to_owned()),
            media_type,
            filename,
        })
    }

    /// The document's media type: as the caller gave it, else `text/plain`
    /// for text, else read from the extension of its name or its URL's
    /// path. `None` when nothing says.
    pub fn media_type(&self) -> Option<&str> {
        if let Some(m) = self.media_type.as_deref().filter(|m| !m.is_empty()) {
            return Some(m);
        }
        let from_url = || match &self.source {
            DocSource::Url(url) => {
                let path = url.split(['?', '#']).next().unwrap_or_default();
                let last = path.rsplit('/').next().unwrap_or_default();
                type_for_name(last)
            }
            DocSource::Text(_) => Some("text/plain"),
            DocSource::Base64(_) => None,
        };
        self.filename
            .as_deref()
            .and_then(type_for_name)
            .or_else(from_url)
    }

    pub fn kind(&self) -> Option<DocKind> {
        self.media_type().map(DocKind::of)
    }

    /// The bytes in base64, when the document holds them (not a URL).
    pub fn base64(&self) -> Option<std::borrow::Cow<'_, str>> {
        use base64::Engine;
        match &self.source {
            DocSource::Base64(data) => Some(std::borrow::Cow::Borrowed(data)),
            DocSource::Text(text) => Some(std::borrow::Cow::Owned(
                base64::engine::general_purpose::STANDARD.encode(text),
            )),
            DocSource::Url(_) => None,
        }
    }

    /// The document as a `data:` URL, when it holds its bytes and its
    /// media type is known.
    pub fn data_url(&self) -> Option<String> {
        let media_type = self.media_type()?;
        Some(format!("data:{media_type};base64,{}", self.base64()?))
    }

    /// The document's text: text as given, or base64 that decodes to
    /// UTF-8. `None` for a URL and for bytes that are not text.
    pub fn text(&self) -> Option<std::borrow::Cow<'_, str>> {
        use base64::Engine;
        match &self.source {
            DocSource::Text(text) => Some(std::borrow::Cow::Borrowed(text)),
            DocSource::Base64(data) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .ok()?;
                String::from_utf8(bytes).ok().map(std::borrow::Cow::Owned)
            }
            DocSource::Url(_) => None,
        }
    }

    /// Its name, or one made from its media type (`document.pdf`) for a
    /// target that needs a name (OpenAI refuses inline files without).
    pub fn name_or_default(&self) -> std::borrow::Cow<'_, str> {
        if let Some(name) = self.filename.as_deref().filter(|n| !n.is_empty()) {
            return std::borrow::Cow::Borrowed(name);
        }
        let ext = self.media_type().and_then(|m| {
            let essence = m.split(';').next().unwrap_or_default().trim();
            EXTENSIONS
                .iter()
                .find(|(_, t)| t.eq_ignore_ascii_case(essence))
                .map(|(e, _)| *e)
        });
        match ext {
            Some(ext) => std::borrow::Cow::Owned(format!("document.{ext}")),
            None => std::borrow::Cow::Borrowed("document"),
        }
    }

    /// About how many bytes the file is (nothing known of a URL's).
    pub fn size(&self) -> usize {
        match &self.source {
            DocSource::Base64(data) => data.len() / 4 * 3,
            DocSource::Text(text) => text.len(),
            DocSource::Url(_) => 0,
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

/// The texts of the `TextDelta`s among `events`, in order (for tests).
#[cfg(test)]
pub fn texts(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
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

    fn doc(source: DocSource, media_type: Option<&str>, filename: Option<&str>) -> Document {
        Document {
            source,
            media_type: media_type.map(Into::into),
            filename: filename.map(Into::into),
        }
    }

    #[test]
    fn file_data_is_a_base64_data_url_or_bare_base64() {
        let d = Document::from_file_data("data:application/pdf;base64,JVBE", Some("a.pdf".into()))
            .unwrap();
        assert_eq!(
            d,
            doc(
                DocSource::Base64("JVBE".into()),
                Some("application/pdf"),
                Some("a.pdf")
            )
        );
        assert_eq!(d.data_url().unwrap(), "data:application/pdf;base64,JVBE");
        let bare = Document::from_file_data("JVBE", None).unwrap();
        assert_eq!(bare.media_type, None);
        assert_eq!(bare.media_type(), None);
        assert_eq!(bare.data_url(), None);
        // A data URL that is not base64 is no file_data OpenAI documents.
        assert_eq!(Document::from_file_data("data:text/plain,hi", None), None);
    }

    #[test]
    fn a_missing_media_type_is_read_from_the_name_or_the_url() {
        let named = doc(DocSource::Base64("AA==".into()), None, Some("Report.PDF"));
        assert_eq!(named.media_type(), Some("application/pdf"));
        assert_eq!(named.kind(), Some(DocKind::Pdf));
        let url = doc(
            DocSource::Url("https://x.example/files/notes.md?sig=1#top".into()),
            None,
            None,
        );
        assert_eq!(url.media_type(), Some("text/markdown"));
        assert_eq!(url.kind(), Some(DocKind::Text));
        let unknown = doc(
            DocSource::Url("https://x.example/get?id=7".into()),
            None,
            None,
        );
        assert_eq!(unknown.media_type(), None);
        // What the caller said wins over any extension.
        let given = doc(
            DocSource::Base64("AA==".into()),
            Some("text/csv"),
            Some("a.pdf"),
        );
        assert_eq!(given.media_type(), Some("text/csv"));
        let text = doc(DocSource::Text("hi".into()), None, None);
        assert_eq!(text.media_type(), Some("text/plain"));
    }

    #[test]
    fn kinds_follow_the_media_type() {
        assert_eq!(DocKind::of("application/pdf"), DocKind::Pdf);
        assert_eq!(DocKind::of("Text/Plain; charset=utf-8"), DocKind::Text);
        assert_eq!(DocKind::of("application/json"), DocKind::Text);
        assert_eq!(
            DocKind::of("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            DocKind::Other
        );
        assert_eq!(DocKind::of("audio/wav"), DocKind::Other);
    }

    #[test]
    fn text_is_read_from_text_or_utf8_base64() {
        let t = doc(DocSource::Text("héllo".into()), None, None);
        assert_eq!(t.text().unwrap(), "héllo");
        assert_eq!(t.base64().unwrap(), "aMOpbGxv");
        assert_eq!(t.data_url().unwrap(), "data:text/plain;base64,aMOpbGxv");
        let b = doc(
            DocSource::Base64("aMOpbGxv".into()),
            Some("text/plain"),
            None,
        );
        assert_eq!(b.text().unwrap(), "héllo");
        let binary = doc(DocSource::Base64("/w==".into()), Some("text/plain"), None);
        assert_eq!(binary.text(), None);
        assert_eq!(b.size(), 6);
    }

    #[test]
    fn a_name_is_made_from_the_media_type_when_none_was_given() {
        let pdf = doc(
            DocSource::Base64("AA==".into()),
            Some("application/pdf"),
            None,
        );
        assert_eq!(pdf.name_or_default(), "document.pdf");
        let named = doc(DocSource::Base64("AA==".into()), None, Some("x.txt"));
        assert_eq!(named.name_or_default(), "x.txt");
        let odd = doc(
            DocSource::Base64("AA==".into()),
            Some("application/x-odd"),
            None,
        );
        assert_eq!(odd.name_or_default(), "document");
    }
}
