//! Gemini embeddings both ways: an OpenAI-dialect request for a Gemini
//! upstream (`batchEmbedContents`), and a Gemini caller's `embedContent` /
//! `batchEmbedContents` with the answers it expects.
//!
//! Gemini returns no token counts for embeddings; the caller estimates them.
//! google-genai's `embed_content` always posts `batchEmbedContents`, even
//! for one text.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::chat::Untranslatable;
use crate::wire::openai::embeddings::MAX_INPUTS;
use crate::wire::{DecodeError, Fields, UnknownKeys, field, is_neutral, opt_field};

const TARGET: &str = "a Gemini provider";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchOut<'a> {
    requests: Vec<EmbedOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedOut<'a> {
    model: &'a str,
    content: ContentOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

#[derive(Serialize)]
struct ContentOut<'a> {
    parts: [TextOut<'a>; 1],
}

#[derive(Serialize)]
struct TextOut<'a> {
    text: &'a str,
}

/// `inputs` are the texts to embed; `model_path` is `models/<name>`.
pub fn encode_embeddings(
    inputs: &[String],
    model_path: &str,
    dimensions: Option<u32>,
) -> Result<Vec<u8>, Untranslatable> {
    if inputs.is_empty() {
        return Err(Untranslatable::new("input", TARGET, "nothing to embed"));
    }
    let out = BatchOut {
        requests: inputs
            .iter()
            .map(|t| EmbedOut {
                model: model_path,
                content: ContentOut {
                    parts: [TextOut { text: t }],
                },
                output_dimensionality: dimensions,
            })
            .collect(),
    };
    Ok(crate::wire::to_vec(&out))
}

#[derive(Deserialize)]
struct BatchIn {
    #[serde(default)]
    embeddings: Vec<EmbeddingIn>,
}

#[derive(Deserialize)]
struct EmbeddingIn {
    #[serde(default)]
    values: Vec<f64>,
}

/// The vectors, in request order.
pub fn decode_embeddings(body: &[u8]) -> Option<Vec<Vec<f64>>> {
    let b: BatchIn = serde_json::from_slice(body).ok()?;
    Some(b.embeddings.into_iter().map(|e| e.values).collect())
}

/// A Vertex AI `:predict` body embedding `inputs` (Vertex serves Google's
/// embedding models through `predict`, not `batchEmbedContents`).
pub fn encode_predict(
    inputs: &[String],
    dimensions: Option<u32>,
) -> Result<Vec<u8>, Untranslatable> {
    if inputs.is_empty() {
        return Err(Untranslatable::new(
            "input",
            "a Vertex provider",
            "nothing to embed",
        ));
    }
    let mut v = serde_json::json!({
        "instances": inputs.iter().map(|t| serde_json::json!({ "content": t })).collect::<Vec<_>>(),
    });
    if let Some(d) = dimensions {
        v["parameters"] = serde_json::json!({ "outputDimensionality": d });
    }
    Ok(crate::wire::to_vec(&v))
}

/// A `:predict` answer's vectors, in input order, and the tokens its
/// statistics count.
pub fn decode_predict(body: &[u8]) -> Option<(Vec<Vec<f64>>, Option<u64>)> {
    #[derive(Deserialize)]
    struct Answer {
        predictions: Vec<Prediction>,
    }
    #[derive(Deserialize)]
    struct Prediction {
        embeddings: Embedding,
    }
    #[derive(Deserialize)]
    struct Embedding {
        values: Vec<f64>,
        #[serde(default)]
        statistics: Option<Statistics>,
    }
    #[derive(Deserialize)]
    struct Statistics {
        token_count: Option<f64>,
    }
    let a: Answer = serde_json::from_slice(body).ok()?;
    let mut tokens = Some(0u64);
    let vectors = a
        .predictions
        .into_iter()
        .map(|p| {
            let counted = p.embeddings.statistics.and_then(|s| s.token_count);
            tokens = match (tokens, counted) {
                (Some(t), Some(c)) if c.is_finite() && c >= 0.0 => Some(t.saturating_add(c as u64)),
                _ => None,
            };
            p.embeddings.values
        })
        .collect();
    Some((vectors, tokens))
}

/// What a Gemini caller asked to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedRequest {
    /// One text per embedding, in order.
    pub texts: Vec<String>,
    /// `outputDimensionality`, the same for every text.
    pub dimensions: Option<u32>,
    /// Asked by `batchEmbedContents` (answered `{embeddings:[…]}`, see
    /// [`encode_batch_embed_response`]) rather than `embedContent`
    /// (`{embedding:{…}}`, [`encode_embed_response`]).
    pub batch: bool,
    /// Members with no place in an OpenAI-dialect request (`taskType`,
    /// `title`, parts that are not text): a Gemini upstream gets them on the
    /// same-dialect path, other targets refuse them by name.
    pub unknown_fields: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmbedIn {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Option<EmbedContentIn>,
    #[serde(default, alias = "output_dimensionality")]
    output_dimensionality: Option<u32>,
    /// taskType, title...
    #[serde(flatten)]
    unknown: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct EmbedContentIn {
    #[serde(default)]
    parts: Vec<EmbedPartIn>,
    /// Any role, as in generateContent.
    #[serde(default, rename = "role")]
    _role: Option<serde::de::IgnoredAny>,
    #[serde(flatten)]
    unknown: UnknownKeys,
}

#[derive(Deserialize)]
struct EmbedPartIn {
    #[serde(default)]
    text: Option<String>,
    #[serde(flatten)]
    unknown: UnknownKeys,
}

/// Decodes an `embedContent` body for the model the URL names.
pub fn decode_embed_request<'b>(
    body: &'b [u8],
    model: &str,
) -> Result<(EmbedRequest, Fields<'b>), DecodeError> {
    crate::wire::check_model(Some(model))?;
    let fields = Fields::parse(body)?;
    let mut one = EmbedIn {
        model: None,
        content: None,
        output_dimensionality: None,
        unknown: serde_json::Map::new(),
    };
    for (key, raw) in &fields.0 {
        let raw: &RawValue = raw;
        match key.as_ref() {
            "model" => one.model = opt_field("model", raw)?,
            "content" => one.content = opt_field("content", raw)?,
            "outputDimensionality" | "output_dimensionality" => {
                one.output_dimensionality = opt_field("outputDimensionality", raw)?;
            }
            other => {
                // Valid JSON already: Fields parsed it.
                let v = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                one.unknown.insert(other.to_owned(), v);
            }
        }
    }
    let mut req = EmbedRequest {
        texts: Vec::with_capacity(1),
        dimensions: None,
        batch: false,
        unknown_fields: Vec::new(),
    };
    embed_one(one, "", model, &mut req)?;
    Ok((req, fields))
}

/// Decodes a `batchEmbedContents` body for the model the URL names.
pub fn decode_batch_embed_request<'b>(
    body: &'b [u8],
    model: &str,
) -> Result<(EmbedRequest, Fields<'b>), DecodeError> {
    crate::wire::check_model(Some(model))?;
    let fields = Fields::parse(body)?;
    let mut req = EmbedRequest {
        texts: Vec::new(),
        dimensions: None,
        batch: true,
        unknown_fields: Vec::new(),
    };
    let mut requests = None;
    for (key, raw) in &fields.0 {
        match key.as_ref() {
            "requests" => requests = Some(field::<Vec<EmbedIn>>("requests", raw)?),
            other => {
                if !is_neutral(raw) {
                    req.unknown_fields.push(other.to_owned());
                }
            }
        }
    }
    let requests = requests.ok_or_else(|| DecodeError::missing("requests"))?;
    if requests.is_empty() {
        return Err(DecodeError::new("requests", "`requests` must not be empty"));
    }
    if requests.len() > MAX_INPUTS {
        return Err(DecodeError::new(
            "requests",
            format!("at most {MAX_INPUTS} requests per batch"),
        ));
    }
    req.texts.reserve(requests.len());
    for (i, r) in requests.into_iter().enumerate() {
        embed_one(r, &format!("requests[{i}]"), model, &mut req)?;
    }
    Ok((req, fields))
}

/// One `EmbedContentRequest`; `at` is its path (empty for the whole body).
fn embed_one(r: EmbedIn, at: &str, model: &str, req: &mut EmbedRequest) -> Result<(), DecodeError> {
    let path = |f: &str| {
        if at.is_empty() {
            f.to_owned()
        } else {
            format!("{at}.{f}")
        }
    };
    for (k, v) in &r.unknown {
        let neutral = match v {
            Value::Null => true,
            Value::String(s) => s.is_empty() || s == "TASK_TYPE_UNSPECIFIED",
            _ => false,
        };
        if !neutral {
            req.unknown_fields.push(path(k));
        }
    }
    // The URL names the model; a request naming another is a mistake
    // Gemini refuses too.
    if let Some(m) = r.model.as_deref().filter(|m| !m.is_empty()) {
        let bare = |m: &str| m.strip_prefix("models/").unwrap_or(m).to_owned();
        if bare(m) != bare(model) {
            let p = path("model");
            return Err(DecodeError::new(
                p.clone(),
                format!("`{p}` is `{m}`, but the URL names `{model}`"),
            ));
        }
    }
    let Some(content) = r.content else {
        return Err(DecodeError::missing(&path("content")));
    };
    let content_at = path("content");
    for k in &content.unknown.0 {
        req.unknown_fields.push(format!("{content_at}.{k}"));
    }
    if content.parts.is_empty() {
        let p = format!("{content_at}.parts");
        return Err(DecodeError::new(
            p.clone(),
            format!("`{p}` must not be empty"),
        ));
    }
    let mut text = None;
    for (j, p) in content.parts.into_iter().enumerate() {
        let at = format!("{content_at}.parts[{j}]");
        for k in &p.unknown.0 {
            req.unknown_fields.push(format!("{at}.{k}"));
        }
        match (p.text, &text) {
            (Some(t), None) => text = Some(t),
            // Gemini embeds several parts as one text; how it joins them is
            // its own business, so they go to Gemini only.
            (Some(_), Some(_)) => req.unknown_fields.push(at),
            (None, _) => {}
        }
    }
    req.texts.push(text.unwrap_or_default());
    match (req.dimensions, r.output_dimensionality) {
        (_, None) => {}
        (None, Some(d)) if req.texts.len() == 1 => req.dimensions = Some(d),
        (Some(a), Some(d)) if a == d => {}
        // One size for all is all an OpenAI-dialect request can ask for.
        _ => req.unknown_fields.push(path("outputDimensionality")),
    }
    Ok(())
}

#[derive(Serialize)]
struct EmbeddingOut<'a> {
    embedding: ValuesOut<'a>,
}

#[derive(Serialize)]
struct BatchEmbedOut<'a> {
    embeddings: Vec<ValuesOut<'a>>,
}

#[derive(Serialize)]
struct ValuesOut<'a> {
    values: &'a [f64],
}

/// A Gemini caller's embedding body for a Gemini upstream: as it came
/// (`taskType`, `title` and all), each request of a batch naming the
/// upstream's model (Gemini wants it equal to the URL's), a body `model`
/// left out.
pub fn rewrite_embed_request(fields: &Fields<'_>, upstream_model: &str) -> Vec<u8> {
    let mut out = serde_json::Map::new();
    for (k, v) in &fields.0 {
        if k == "model" {
            continue;
        }
        let mut value: Value = serde_json::from_str(v.get()).unwrap_or(Value::Null);
        if k == "requests"
            && let Some(list) = value.as_array_mut()
        {
            for r in list.iter_mut() {
                if let Some(m) = r.as_object_mut() {
                    m.insert("model".into(), format!("models/{upstream_model}").into());
                }
            }
        }
        out.insert(k.to_string(), value);
    }
    crate::wire::to_vec(&out)
}

/// The `embedContent` answer: `{"embedding":{"values":[…]}}`.
pub fn encode_embed_response(values: &[f64]) -> Vec<u8> {
    crate::wire::to_vec(&EmbeddingOut {
        embedding: ValuesOut { values },
    })
}

/// The `batchEmbedContents` answer: `{"embeddings":[{"values":[…]}, …]}`,
/// in request order.
pub fn encode_batch_embed_response(vectors: &[Vec<f64>]) -> Vec<u8> {
    crate::wire::to_vec(&BatchEmbedOut {
        embeddings: vectors.iter().map(|v| ValuesOut { values: v }).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vertex_predict_bodies_and_answers() {
        let b: Value = serde_json::from_slice(
            &encode_predict(&["a".to_owned(), "b".to_owned()], Some(8)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            b,
            serde_json::json!({"instances": [{"content": "a"}, {"content": "b"}], "parameters": {"outputDimensionality": 8}})
        );
        let answer = br#"{"predictions":[{"embeddings":{"values":[0.1],"statistics":{"token_count":3,"truncated":false}}},{"embeddings":{"values":[0.2],"statistics":{"token_count":2,"truncated":false}}}],"metadata":{"billableCharacterCount":9}}"#;
        assert_eq!(
            decode_predict(answer),
            Some((vec![vec![0.1], vec![0.2]], Some(5)))
        );
    }

    const MODEL: &str = "text-embedding-004";

    /// google-genai's `embed_content(["hello", "world"])` and with a config,
    /// as recorded.
    #[test]
    fn recorded_batches_decode() {
        let (r, _) = decode_batch_embed_request(
            br#"{"requests": [{"content": {"parts": [{"text": "hello"}], "role": "user"}, "model": "models/text-embedding-004"}, {"content": {"parts": [{"text": "world"}], "role": "user"}, "model": "models/text-embedding-004"}]}"#,
            MODEL,
        )
        .unwrap();
        assert_eq!(r.texts, ["hello", "world"]);
        assert!(r.batch && r.unknown_fields.is_empty() && r.dimensions.is_none());

        let (r, _) = decode_batch_embed_request(
            br#"{"requests": [{"content": {"parts": [{"text": "hello"}], "role": "user"}, "taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 4, "model": "models/text-embedding-004"}]}"#,
            MODEL,
        )
        .unwrap();
        assert_eq!(r.dimensions, Some(4));
        // OpenAI-dialect embeddings have no task types.
        assert_eq!(r.unknown_fields, ["requests[0].taskType"]);
    }

    #[test]
    fn one_content_decodes_and_what_does_not_fit_is_named() {
        let (r, _) = decode_embed_request(
            br#"{"content": {"parts": [{"text": "hi"}]}, "output_dimensionality": 8, "title": "t"}"#,
            MODEL,
        )
        .unwrap();
        assert_eq!(
            r,
            EmbedRequest {
                texts: vec!["hi".into()],
                dimensions: Some(8),
                batch: false,
                unknown_fields: vec!["title".into()],
            }
        );
        let (r, _) = decode_batch_embed_request(
            br#"{"requests": [{"content": {"parts": [{"text": "a"}, {"text": "b"}]}, "outputDimensionality": 4}, {"content": {"parts": [{"text": "c"}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}, "outputDimensionality": 8}]}"#,
            MODEL,
        )
        .unwrap();
        assert_eq!(r.texts, ["a", "c"]);
        assert_eq!(
            r.unknown_fields,
            [
                "requests[0].content.parts[1]",
                "requests[1].content.parts[1].inlineData",
                "requests[1].outputDimensionality"
            ]
        );
        for (body, path) in [
            (r#"{"requests": []}"#, "requests"),
            (r#"{}"#, "requests"),
            (
                r#"{"requests": [{"model": "models/other", "content": {"parts": [{"text": "a"}]}}]}"#,
                "requests[0].model",
            ),
            (
                r#"{"requests": [{"content": {"parts": []}}]}"#,
                "requests[0].content.parts",
            ),
            (
                r#"{"requests": [{"taskType": "CLUSTERING"}]}"#,
                "requests[0].content",
            ),
        ] {
            let e = decode_batch_embed_request(body.as_bytes(), MODEL).unwrap_err();
            assert_eq!(e.field, path, "{body}: {}", e.message);
        }
        let e = decode_embed_request(br#"{"content": {"parts": "x"}}"#, MODEL).unwrap_err();
        assert_eq!(e.field, "content.parts");
    }

    #[test]
    fn answers_have_gemini_shapes() {
        assert_eq!(
            encode_embed_response(&[0.5, -1.0]),
            br#"{"embedding":{"values":[0.5,-1.0]}}"#
        );
        let out = encode_batch_embed_response(&[vec![1.0], vec![2.0, 3.0]]);
        assert_eq!(
            out,
            br#"{"embeddings":[{"values":[1.0]},{"values":[2.0,3.0]}]}"#
        );
        // What the upstream decoder reads back.
        assert_eq!(
            decode_embeddings(&out),
            Some(vec![vec![1.0], vec![2.0, 3.0]])
        );
    }
}
