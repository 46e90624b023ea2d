//! OpenAI embeddings ↔ Gemini `batchEmbedContents`.
//!
//! Gemini returns no token counts for embeddings; the caller estimates them.

use serde::{Deserialize, Serialize};

use crate::chat::Untranslatable;

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
