//! Provider adapters: for each configured provider, where a call goes, how it
//! authenticates, what body it carries, and what its errors mean.
//!
//! The adapter is chosen by [`ProviderKind`], a closed set matched in one
//! place; vendors that speak OpenAI's dialect are configuration (base URL,
//! key variable), not code. Building a call is pure: [`client`] is the only
//! code that talks to an upstream, and it adds the credential only once the
//! destination is fixed.

pub mod aws;
pub mod client;
pub mod embeddings;
pub mod errors;
pub mod sigv4;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;

pub use embeddings::{EmbedAnswer, embeddings_call};
pub use errors::{ErrorClass, UpstreamError};

use crate::chat::{self, Untranslatable};
use crate::config::providers::TokenSource;
use crate::config::{Config, Env, ProviderConfig, ProviderKind};
use crate::dialect::Dialect;
use crate::wire::{self, Fields};

/// A credential read from the environment. It has no `Serialize`, and its
/// `Debug` shows nothing, so it cannot leak through a log or a response.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A provider ready to take calls.
#[derive(Debug)]
pub struct Provider {
    pub config: ProviderConfig,
    pub secret: Option<Secret>,
    /// The header that carries the secret upstream, built once.
    pub auth: Option<(http::HeaderName, HeaderValue)>,
    /// Every credential the gateway holds, to scrub from upstream text: an
    /// upstream that echoes any key must not get it to a caller.
    pub all_secrets: Arc<[Secret]>,
    /// Tokens the gateway fetches for this provider (Entra ID client
    /// credentials); when set, they carry the calls instead of `auth`.
    pub tokens: Option<token::TokenCache>,
    /// Bedrock's access keys: each call is signed (SigV4).
    pub signer: Option<aws::Signer>,
}

impl Provider {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn kind(&self) -> ProviderKind {
        self.config.kind
    }

    /// Whether the provider has what its calls need to authenticate.
    pub fn has_credential(&self) -> bool {
        match &self.tokens {
            Some(t) => t.has_credential(),
            None => self.secret.is_some() || self.signer.is_some(),
        }
    }

    /// Where an OpenAI-dialect `path` (`/chat/completions`) of `model` is:
    /// under the base URL, or for Azure's deployment form (an
    /// `api_version` set) under the deployment, with the version.
    fn openai_url(&self, path: &str, model: &str) -> String {
        let base = &self.config.base_url;
        match &self.config.api_version {
            Some(v) if path == "/responses" => format!("{base}{path}?api-version={v}"),
            Some(v) => format!(
                "{base}/deployments/{}{path}?api-version={v}",
                encode_path_segment(model)
            ),
            None => format!("{base}{path}"),
        }
    }

    /// The dialect this provider's API speaks.
    pub fn dialect(&self) -> Dialect {
        match self.config.kind {
            ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::Azure => {
                Dialect::OpenAi
            }
            ProviderKind::Anthropic => Dialect::Anthropic,
            ProviderKind::Gemini => Dialect::Gemini,
            ProviderKind::Bedrock => Dialect::Bedrock,
            // Its own errors are Google's; a model's dialect is
            // [`Provider::dialect_for`].
            ProviderKind::Vertex => Dialect::Gemini,
        }
    }

    /// The dialect `model` is spoken in here: on Vertex, Claude models
    /// speak Anthropic's Messages API (`publishers/anthropic`), the rest
    /// Gemini's.
    pub fn dialect_for(&self, model: &str) -> Dialect {
        match self.config.kind {
            ProviderKind::Vertex if is_claude(model) => Dialect::Anthropic,
            _ => self.dialect(),
        }
    }

    /// An error body's code, message and asked wait. Vertex answers in
    /// Google's shape, or in Anthropic's for a Claude model's own errors.
    pub fn decode_error(&self, body: &[u8]) -> crate::dialect::UpstreamErrorParts {
        let parts = self.dialect().decode_error(body);
        match (self.config.kind, &parts) {
            (ProviderKind::Vertex, (None, None, None)) => Dialect::Anthropic.decode_error(body),
            _ => parts,
        }
    }
}

/// Every configured provider, by name.
#[derive(Debug, Default)]
pub struct Providers {
    pub list: Vec<Arc<Provider>>,
    by_name: HashMap<String, Arc<Provider>>,
}

impl Providers {
    /// Reads each provider's key from the environment snapshot.
    pub fn new(config: &Config, env: &Env) -> Providers {
        let mut out = Providers::default();
        let read = |var: &str| env.get(var).map(|v| Secret(v.to_owned()));
        // The key, or a token some other process keeps in a variable.
        let secret_of = |pc: &ProviderConfig| match &pc.token {
            Some(TokenSource::Variable { env }) => read(env),
            _ => pc.api_key_env.as_deref().and_then(read),
        };
        let client_secret_of = |pc: &ProviderConfig| match &pc.token {
            Some(TokenSource::ClientCredentials {
                client_secret_env, ..
            }) => read(client_secret_env),
            _ => None,
        };
        let aws_of = |pc: &ProviderConfig| {
            let (Some(auth), Some(region)) = (&pc.aws, &pc.region) else {
                return None;
            };
            aws::Auth::read(auth, region, env)
        };
        let mut caches: Vec<Option<token::TokenCache>> = config
            .providers
            .iter()
            .map(|pc| token_cache(pc, env, client_secret_of(pc)))
            .collect();
        let all_secrets: Arc<[Secret]> = config
            .providers
            .iter()
            .zip(&caches)
            .flat_map(|(pc, cache)| {
                let aws = aws_of(pc).map(|a| a.secrets()).unwrap_or_default();
                let fetched = cache.as_ref().map(|c| c.secrets()).unwrap_or_default();
                [secret_of(pc), client_secret_of(pc)]
                    .into_iter()
                    .flatten()
                    .chain(aws)
                    .chain(fetched)
            })
            .collect();
        for (pc, tokens) in config.providers.iter().zip(caches.drain(..)) {
            let (secret, signer, bearer) = match aws_of(pc) {
                Some(aws::Auth::Bearer(key)) => (Some(key), None, true),
                Some(aws::Auth::Sign(signer)) => (None, Some(signer), false),
                None => (
                    secret_of(pc),
                    None,
                    matches!(pc.token, Some(TokenSource::Variable { .. })),
                ),
            };
            let p = Arc::new(Provider {
                config: pc.clone(),
                auth: secret
                    .as_ref()
                    .and_then(|s| client::auth_header(pc.kind, s.expose(), bearer)),
                secret,
                all_secrets: all_secrets.clone(),
                tokens,
                signer,
            });
            out.by_name.insert(pc.name.clone(), p.clone());
            out.list.push(p);
        }
        out
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.by_name.get(name)
    }

    /// Every credential in use, for scrubbing text that must not hold one.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.list
            .iter()
            .filter_map(|p| p.secret.as_ref().map(Secret::expose))
    }
}

/// The token cache of a provider whose calls carry fetched tokens: Entra ID
/// client credentials (`client_secret`: its secret, read), or Vertex's
/// Google credentials (a key file, read now, or the metadata server).
fn token_cache(
    pc: &ProviderConfig,
    env: &Env,
    client_secret: Option<Secret>,
) -> Option<token::TokenCache> {
    use crate::config::vertex::GoogleAuth;
    if let Some(TokenSource::ClientCredentials {
        token_url,
        client_id_env,
        scope,
        ..
    }) = &pc.token
    {
        return token::TokenCache::new(
            &pc.name,
            token_url,
            env.get(client_id_env).map(str::to_owned),
            client_secret,
            scope,
        );
    }
    let grant = match pc.google.as_ref()? {
        GoogleAuth::File { path } => std::fs::read_to_string(path)
            .map_err(|e| format!("the credentials file cannot be read ({})", e.kind()))
            .and_then(|json| token::google_credentials(&json, token::GOOGLE_SCOPE)),
        GoogleAuth::Metadata { host } => token::Grant::metadata(Some(host)),
    };
    match grant {
        Ok(g) => Some(token::TokenCache::with_grant(&pc.name, g)),
        Err(e) => {
            // Its calls fail as unauthenticated; say why once, here.
            tracing::warn!(provider = %pc.name, "no Google credentials: {e}");
            None
        }
    }
}

/// A chat request as it arrived: its dialect, the canonical form, and the
/// caller's own top-level fields for the same-dialect fast path.
pub struct Inbound<'a> {
    pub dialect: Dialect,
    pub request: &'a chat::Request,
    pub fields: &'a Fields<'a>,
    /// Anthropic callers' `anthropic-version` and `anthropic-beta`, passed on
    /// when the upstream is Anthropic too.
    pub anthropic_version: Option<&'a HeaderValue>,
    pub anthropic_beta: Option<&'a HeaderValue>,
    /// What the caller's answers repeat of the request.
    pub echo: &'a crate::dialect::Echo,
    /// Built-in tools dropped, not refused, where a target has no
    /// equivalent (`[responses] drop_unsupported_tools`).
    pub drop_tools: &'a [String],
}

/// One upstream HTTP call, built but not sent. Holds no credential.
#[derive(Debug, Clone)]
pub struct Call {
    pub url: String,
    pub body: Bytes,
    pub stream: bool,
    /// The dialect of the answer.
    pub dialect: Dialect,
    pub headers: Vec<(&'static str, HeaderValue)>,
    /// Whether the body is the caller's own, forwarded (same dialect).
    pub passthrough: bool,
    /// Built-in tools of the caller's left out for this target.
    pub dropped_tools: Vec<String>,
}

const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Builds the call that sends `inbound` to `provider` as `upstream_model`.
pub fn chat_call(
    provider: &Provider,
    inbound: &Inbound<'_>,
    upstream_model: &str,
) -> Result<Call, Untranslatable> {
    build_chat_call(provider, inbound, upstream_model).map_err(|mut u| {
        u.field = inbound.dialect.field_name(&u.field);
        u
    })
}

fn build_chat_call(
    provider: &Provider,
    inbound: &Inbound<'_>,
    upstream_model: &str,
) -> Result<Call, Untranslatable> {
    let base = &provider.config.base_url;
    let stream = inbound.request.stream;
    if inbound.dialect == Dialect::Responses && provider.config.responses {
        return Ok(Call {
            url: provider.openai_url("/responses", upstream_model),
            body: Bytes::from(wire::responses::rewrite_request(
                inbound.fields,
                upstream_model,
            )),
            stream,
            dialect: Dialect::Responses,
            headers: Vec::new(),
            passthrough: true,
            dropped_tools: Vec::new(),
        });
    }
    // Reasoning a Responses caller carried is for the provider that made it.
    let req = match inbound.dialect {
        Dialect::Responses => {
            wire::responses::reasoning::for_provider(inbound.request, provider.name())
        }
        _ => std::borrow::Cow::Borrowed(inbound.request),
    };
    let mut dropped_tools = Vec::new();
    let req = if req
        .builtin_tools
        .iter()
        .any(|b| inbound.drop_tools.contains(&b.kind))
    {
        let mut r = req.into_owned();
        r.builtin_tools.retain(|b| {
            let drop = inbound.drop_tools.contains(&b.kind);
            if drop {
                dropped_tools.push(b.kind.clone());
            }
            !drop
        });
        std::borrow::Cow::Owned(r)
    } else {
        req
    };
    let req = req.as_ref();
    let mut headers = Vec::new();
    let upstream = provider.dialect_for(upstream_model);
    let same = inbound.dialect == upstream;
    let body: Vec<u8> = match provider.config.kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::Azure => {
            if same {
                wire::openai::rewrite_request(inbound.fields, upstream_model, stream)
            } else {
                // OpenAI's reasoning models (also Azure's) take only the
                // newer field; other servers know the older one.
                let field = if provider.config.kind != ProviderKind::OpenaiCompatible {
                    wire::openai::request::MaxTokensField::MaxCompletionTokens
                } else {
                    wire::openai::request::MaxTokensField::MaxTokens
                };
                wire::openai::encode_request(req, upstream_model, field)?
            }
        }
        ProviderKind::Anthropic => {
            let version = match (same, inbound.anthropic_version) {
                (true, Some(v)) => v.clone(),
                _ => HeaderValue::from_static(ANTHROPIC_VERSION),
            };
            headers.push(("anthropic-version", version));
            if same && let Some(beta) = inbound.anthropic_beta {
                headers.push(("anthropic-beta", beta.clone()));
            }
            anthropic_body(provider, inbound, req, upstream_model, same)?
        }
        ProviderKind::Gemini => gemini_body(inbound, req, same)?,
        ProviderKind::Bedrock => {
            wire::bedrock::encode_request(req, provider.config.default_max_tokens)?
        }
        ProviderKind::Vertex if upstream == Dialect::Anthropic => {
            if same && let Some(beta) = inbound.anthropic_beta {
                headers.push(("anthropic-beta", beta.clone()));
            }
            vertex_claude_body(anthropic_body(
                provider,
                inbound,
                req,
                upstream_model,
                same,
            )?)
        }
        ProviderKind::Vertex => gemini_body(inbound, req, same)?,
    };
    let url = match provider.config.kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::Azure => {
            provider.openai_url("/chat/completions", upstream_model)
        }
        ProviderKind::Anthropic => format!("{base}/messages"),
        ProviderKind::Gemini => {
            let model = encode_path_segment(upstream_model);
            if stream {
                format!("{base}/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("{base}/models/{model}:generateContent")
            }
        }
        // The id as one segment, `:` encoded too (`...-v1%3A0`): what the
        // signature covers, encoded once more, is this path.
        ProviderKind::Bedrock => {
            let model = sigv4::encode_path_segment(upstream_model);
            if stream {
                format!("{base}/model/{model}/converse-stream")
            } else {
                format!("{base}/model/{model}/converse")
            }
        }
        ProviderKind::Vertex => {
            let model = encode_path_segment(upstream_model);
            match (upstream, stream) {
                (Dialect::Anthropic, true) => {
                    format!("{base}/publishers/anthropic/models/{model}:streamRawPredict")
                }
                (Dialect::Anthropic, false) => {
                    format!("{base}/publishers/anthropic/models/{model}:rawPredict")
                }
                (_, true) => {
                    format!("{base}/publishers/google/models/{model}:streamGenerateContent?alt=sse")
                }
                (_, false) => format!("{base}/publishers/google/models/{model}:generateContent"),
            }
        }
    };
    Ok(Call {
        url,
        body: Bytes::from(body),
        stream,
        dialect: upstream,
        headers,
        passthrough: same,
        dropped_tools,
    })
}

/// A Messages body: the caller's own, its model replaced (`same`: an
/// Anthropic caller), or `req` translated.
fn anthropic_body(
    provider: &Provider,
    inbound: &Inbound<'_>,
    req: &chat::Request,
    upstream_model: &str,
    same: bool,
) -> Result<Vec<u8>, Untranslatable> {
    if same {
        return Ok(wire::anthropic::rewrite_request(
            inbound.fields,
            upstream_model,
        ));
    }
    wire::anthropic::encode_request(req, upstream_model, provider.config.default_max_tokens)
}

/// A `generateContent` body: the caller's own (`same`: a Gemini caller),
/// or `req` translated.
fn gemini_body(
    inbound: &Inbound<'_>,
    req: &chat::Request,
    same: bool,
) -> Result<Vec<u8>, Untranslatable> {
    if same {
        return Ok(wire::gemini::rewrite_request(inbound.fields));
    }
    wire::gemini::encode_request(req)
}

/// Whether a model is Anthropic's (`claude-sonnet-4@20250514`).
fn is_claude(model: &str) -> bool {
    model.starts_with("claude")
}

/// An Anthropic Messages body as Vertex takes it: the model is in the URL,
/// not the body, and the API version is in the body, not a header.
fn vertex_claude_body(body: Vec<u8>) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice(&body) else {
        return body;
    };
    m.remove("model");
    m.insert(
        "anthropic_version".into(),
        serde_json::Value::String(VERTEX_ANTHROPIC_VERSION.into()),
    );
    serde_json::to_vec(&m).unwrap_or(body)
}

/// The Messages API version Vertex serves Claude under.
const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Percent-encodes what may not appear raw in one URL path segment, so a
/// model name cannot add segments or a query to the destination.
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_cannot_escape_their_path_segment() {
        assert_eq!(encode_path_segment("gemini-2.5-pro"), "gemini-2.5-pro");
        assert_eq!(encode_path_segment("../x?y#z"), "..%2Fx%3Fy%23z");
    }

    #[test]
    fn secrets_do_not_debug_print() {
        assert_eq!(format!("{:?}", Secret("sk-canary".into())), "Secret(***)");
    }
}
