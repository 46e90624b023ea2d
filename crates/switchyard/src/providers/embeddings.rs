//! Embeddings calls, for each provider kind: where they go, what body they
//! carry, and what shape their answer comes back in ([`EmbedAnswer`]).
//! Anthropic has no embeddings API.

use bytes::Bytes;

use super::{Call, Provider, encode_path_segment, is_claude, sigv4};
use crate::chat::Untranslatable;
use crate::config::ProviderKind;
use crate::dialect::Dialect;
use crate::wire::{self, Fields};

/// The shape of an upstream's embeddings answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedAnswer {
    /// OpenAI's list.
    OpenAi,
    /// Gemini's, to the method a Gemini caller called (its own body sent).
    GeminiNative,
    /// Gemini's `batchEmbedContents`.
    GeminiBatch,
    /// Vertex AI's `:predict`.
    VertexPredict,
    /// Bedrock's `InvokeModel` (Titan or Cohere).
    Bedrock,
}

/// Builds an embeddings call. `caller`: the caller's dialect and its own
/// fields; its body goes upstream as it came when the upstream speaks it
/// too (`method`: the Gemini method it called).
pub fn embeddings_call(
    provider: &Provider,
    req: &wire::openai::embeddings::EmbeddingsRequest,
    caller: (Dialect, &Fields<'_>, &str),
    upstream_model: &str,
) -> Result<(Call, EmbedAnswer), Untranslatable> {
    let base = &provider.config.base_url;
    let (dialect, fields, method) = caller;
    let call = |url: String, body: Vec<u8>, dialect: Dialect, passthrough: bool| Call {
        url,
        body: Bytes::from(body),
        stream: false,
        dialect,
        headers: Vec::new(),
        passthrough,
        dropped_tools: Vec::new(),
    };
    match provider.config.kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::Azure => {
            let body = if dialect == Dialect::OpenAi {
                wire::openai::rewrite_request(fields, upstream_model, false)
            } else {
                let texts = req.input.texts().unwrap_or_default();
                wire::openai::embeddings::encode_request(upstream_model, &texts, req.dimensions)
            };
            let url = provider.openai_url("/embeddings", upstream_model);
            Ok((call(url, body, Dialect::OpenAi, true), EmbedAnswer::OpenAi))
        }
        ProviderKind::Gemini if dialect == Dialect::Gemini => {
            let url = format!(
                "{base}/models/{}:{method}",
                encode_path_segment(upstream_model)
            );
            let body = wire::gemini::embeddings::rewrite_embed_request(fields, upstream_model);
            Ok((
                call(url, body, Dialect::Gemini, true),
                EmbedAnswer::GeminiNative,
            ))
        }
        ProviderKind::Gemini => {
            let texts = texts_for(req, "a Gemini provider")?;
            let model_path = format!("models/{upstream_model}");
            let body = wire::gemini::encode_embeddings(&texts, &model_path, req.dimensions)?;
            let url = format!(
                "{base}/models/{}:batchEmbedContents",
                encode_path_segment(upstream_model)
            );
            Ok((
                call(url, body, Dialect::Gemini, false),
                EmbedAnswer::GeminiBatch,
            ))
        }
        ProviderKind::Vertex if is_claude(upstream_model) => Err(anthropic_has_none()),
        ProviderKind::Vertex => {
            let texts = texts_for(req, "a Vertex provider")?;
            let body = wire::gemini::embeddings::encode_predict(&texts, req.dimensions)?;
            let url = format!(
                "{base}/publishers/google/models/{}:predict",
                encode_path_segment(upstream_model)
            );
            Ok((
                call(url, body, Dialect::Gemini, false),
                EmbedAnswer::VertexPredict,
            ))
        }
        ProviderKind::Bedrock => {
            let texts = texts_for(req, "a Bedrock provider")?;
            let family = wire::bedrock::embeddings::Family::of(upstream_model)?;
            let body = wire::bedrock::embeddings::encode_request(family, &texts, req.dimensions)?;
            let url = format!(
                "{base}/model/{}/invoke",
                sigv4::encode_path_segment(upstream_model)
            );
            Ok((
                call(url, body, Dialect::Bedrock, false),
                EmbedAnswer::Bedrock,
            ))
        }
        ProviderKind::Anthropic => Err(anthropic_has_none()),
    }
}

/// The texts of a request going to another dialect: fields it has no
/// place for, and token ids, are refused by name.
fn texts_for(
    req: &wire::openai::embeddings::EmbeddingsRequest,
    target: &'static str,
) -> Result<Vec<String>, Untranslatable> {
    if let Some(f) = req.unknown_fields.first() {
        return Err(Untranslatable::new(
            f.clone(),
            target,
            "the field has no equivalent there",
        ));
    }
    req.input.texts().ok_or_else(|| {
        Untranslatable::new(
            "input",
            target,
            "token-id input only makes sense to the tokenizer that made it; send text",
        )
    })
}

fn anthropic_has_none() -> Untranslatable {
    Untranslatable::new(
        "model",
        "an Anthropic model",
        "Anthropic offers no embeddings API",
    )
}
