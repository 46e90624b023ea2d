//! `[[providers]]`: what a provider entry may say, and what it resolves to
//! (its kind, base URL, credential variables and the kinds' own settings).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::azure::azure;
pub use super::azure::{AZURE_KEY_ENV, AZURE_SCOPE, TokenSource};
use super::{ConfigError, DEFAULT_MAX_TOKENS, Env, Millis, ser_duration};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub kind: Option<ProviderKind>,
    pub preset: Option<String>,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub jurisdiction: Option<String>,
    pub timeout_ms: Option<Millis>,
    pub first_chunk_timeout_ms: Option<Millis>,
    #[serde(default)]
    pub models: Vec<String>,
    pub default_max_tokens: Option<u32>,
    /// The server also speaks the Responses API (`/responses`): Responses
    /// callers are forwarded natively. Default: true for `openai`.
    pub responses: Option<bool>,
    /// Send the caller's W3C `traceparent`/`tracestate` upstream (with the
    /// attempt's span as parent). Off by default: a provider should not
    /// learn a customer's trace ids unless the operator says so.
    #[serde(default)]
    pub propagate_trace: bool,
    /// `azure`, deployment form: the `api-version` query of every call
    /// (`{base_url}/deployments/{model}/...`). Unset: the v1 API
    /// (`{base_url}/chat/completions`, the model names the deployment).
    pub api_version: Option<String>,
    /// `azure`: a variable holding a Microsoft Entra ID access token, sent
    /// as a bearer token instead of an `api-key`.
    pub entra_token_env: Option<String>,
    /// `azure`: Entra ID tokens fetched with a client secret (client
    /// credentials), cached and fetched again before they expire.
    pub entra: Option<RawEntra>,
    /// `bedrock`: the AWS region (default `AWS_REGION`); signs the calls
    /// and names the endpoint.
    pub region: Option<String>,
    /// `bedrock`: variables holding access keys (SigV4).
    pub aws_access_key_id_env: Option<String>,
    pub aws_secret_access_key_env: Option<String>,
    pub aws_session_token_env: Option<String>,
    /// `bedrock`: a variable holding a Bedrock API key (a bearer token).
    pub bearer_token_env: Option<String>,
    /// `vertex`: the Google Cloud project (default `GOOGLE_CLOUD_PROJECT`).
    pub project: Option<String>,
    /// `vertex`: `europe-west4`, `us-central1`, `global`, ... (default
    /// `GOOGLE_CLOUD_LOCATION`).
    pub location: Option<String>,
    /// `vertex`: the variable holding the credentials file's path
    /// (default `GOOGLE_APPLICATION_CREDENTIALS`; unset: the metadata
    /// server).
    pub credentials_file_env: Option<String>,
}

/// `[providers.entra]`: the app registration whose tokens a provider uses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntra {
    /// Default `AZURE_TENANT_ID`.
    pub tenant_id_env: Option<String>,
    /// Default `AZURE_CLIENT_ID`.
    pub client_id_env: Option<String>,
    /// Default `AZURE_CLIENT_SECRET`.
    pub client_secret_env: Option<String>,
    /// Default `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`
    /// (another cloud's authority, or a local mock in tests).
    pub token_url: Option<String>,
    /// Default `https://cognitiveservices.azure.com/.default`.
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Gemini,
    OpenaiCompatible,
    /// Azure OpenAI / AI Foundry: OpenAI's dialect behind Azure's paths,
    /// `api-key` or Entra ID credentials and content filters.
    Azure,
    /// AWS Bedrock's Converse API: SigV4 or a Bedrock API key, binary
    /// event streams.
    Bedrock,
    /// Google Vertex AI: Gemini (`publishers/google`) and Claude
    /// (`publishers/anthropic`) with Google credentials.
    Vertex,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::OpenaiCompatible => "openai-compatible",
            ProviderKind::Azure => "azure",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Vertex => "vertex",
        }
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    /// The variable that holds the key; `None` for keyless servers (Ollama).
    /// The admin API shows it as `api_key`: the variable and whether it is
    /// set, never the value.
    #[schemars(rename = "api_key", with = "crate::admin::ApiKeyView")]
    pub api_key_env: Option<String>,
    pub jurisdiction: Option<String>,
    /// Bound on each attempt's time to response headers.
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Bound on a stream's time from headers to its first event.
    #[serde(serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub first_chunk_timeout: Duration,
    pub models: Vec<String>,
    pub default_max_tokens: u32,
    /// Responses callers go to `{base_url}/responses` as they came.
    pub responses: bool,
    /// `traceparent`/`tracestate` go upstream.
    pub propagate_trace: bool,
    /// `azure`, deployment form: each call's `api-version`.
    pub api_version: Option<String>,
    /// Where a bearer token comes from, for kinds that take one instead of
    /// `api_key_env` (`azure` with Entra ID).
    pub token: Option<TokenSource>,
    /// `bedrock`: the region its calls are signed for.
    pub region: Option<String>,
    /// `bedrock`: where its AWS credentials come from.
    pub aws: Option<super::bedrock::AwsAuth>,
    /// `vertex`: where its Google tokens come from.
    pub google: Option<super::vertex::GoogleAuth>,
}

/// A built-in provider preset (data/presets.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key_env: Vec<String>,
    #[serde(default)]
    pub host_env: Option<String>,
    pub jurisdiction: String,
}

pub fn presets() -> &'static [Preset] {
    #[derive(Deserialize)]
    struct File {
        preset: Vec<Preset>,
    }
    static PRESETS: std::sync::OnceLock<Vec<Preset>> = std::sync::OnceLock::new();
    PRESETS.get_or_init(|| {
        toml::from_str::<File>(include_str!("../../data/presets.toml"))
            .map(|f| f.preset)
            .expect("data/presets.toml is valid (checked by a unit test)")
    })
}

/// Checks the `i`th provider entry and resolves it (its preset, defaults
/// and credential variables). `err` builds an error naming the file.
pub(super) fn validate(
    i: usize,
    p: RawProvider,
    env: &Env,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<ProviderConfig, ConfigError> {
    let at = |k: &str| format!("providers[{i}].{k}");
    let preset_name = p.preset.as_deref().unwrap_or(&p.name);
    let preset = presets().iter().find(|x| x.name == preset_name);
    if p.preset.is_some() && preset.is_none() {
        let known: Vec<&str> = presets().iter().map(|x| x.name.as_str()).collect();
        return Err(err(
            &at("preset"),
            format!(
                "unknown preset \"{preset_name}\"; expected one of {}",
                known.join(", ")
            ),
        ));
    }
    let kind = match (p.kind, preset) {
        (Some(k), _) => k,
        (None, Some(pr)) => pr.kind,
        (None, None) => {
            return Err(err(
                &at("kind"),
                "missing; expected one of openai, anthropic, gemini, openai-compatible, azure, bedrock, vertex"
                    .into(),
            ));
        }
    };
    let (api_version, token) = azure(i, &p, kind, env, err)?;
    let aws = super::bedrock::resolve(i, &p, kind, env, err)?;
    let gcp = super::vertex::resolve(i, &p, kind, env, err)?;
    let base_url = match (p.base_url, preset, kind) {
        (Some(u), _, _) => u,
        (None, Some(pr), _) if pr.kind == kind => pr.base_url.clone(),
        (None, _, ProviderKind::Openai) => "https://api.openai.com/v1".into(),
        (None, _, ProviderKind::Anthropic) => "https://api.anthropic.com/v1".into(),
        (None, _, ProviderKind::Gemini) => {
            "https://generativelanguage.googleapis.com/v1beta".into()
        }
        (None, _, ProviderKind::OpenaiCompatible) => {
            return Err(err(
                &at("base_url"),
                "required for kind openai-compatible".into(),
            ));
        }
        (None, _, ProviderKind::Bedrock) => {
            super::bedrock::base_url(aws.region.as_deref().unwrap_or_default())
        }
        (None, _, ProviderKind::Vertex) => super::vertex::base_url(
            gcp.project.as_deref().unwrap_or_default(),
            gcp.location.as_deref().unwrap_or_default(),
        ),
        (None, _, ProviderKind::Azure) => {
            return Err(err(
                &at("base_url"),
                "required for kind azure: https://{resource}.openai.azure.com/openai/v1 \
                 (or .../openai with api_version)"
                    .into(),
            ));
        }
    };
    let base_url = check_base_url(&base_url).map_err(|m| err(&at("base_url"), m))?;
    let api_key_env = p.api_key_env.clone().or_else(|| {
        preset.and_then(|pr| {
            pr.api_key_env
                .iter()
                .find(|v| env.get(v).is_some())
                .or(pr.api_key_env.first())
                .cloned()
        })
    });
    // Azure's usual variable, unless its calls carry Entra tokens.
    let api_key_env = match (kind, &api_key_env, &token) {
        (ProviderKind::Azure, None, None) => Some(AZURE_KEY_ENV.to_owned()),
        _ => api_key_env,
    };
    if let Some(v) = &api_key_env {
        Entry { i, err }.variable("api_key_env", v)?;
    }
    let jurisdiction = p
        .jurisdiction
        .or_else(|| preset.map(|pr| pr.jurisdiction.clone()))
        .or_else(|| aws.region.as_deref().map(super::bedrock::jurisdiction_of))
        .or_else(|| {
            gcp.location
                .as_deref()
                .and_then(super::vertex::jurisdiction_of)
        })
        .map(|j| j.trim().to_ascii_lowercase());
    if let Some(j) = &jurisdiction
        && (j.is_empty() || j.contains(','))
    {
        return Err(err(
            &at("jurisdiction"),
            format!("expected one tag such as \"eu\" or \"us\", got \"{j}\""),
        ));
    }
    let timeout = p.timeout_ms.map(|m| m.0).unwrap_or(Duration::from_secs(60));
    if timeout.is_zero() {
        return Err(err(&at("timeout_ms"), "must be greater than zero".into()));
    }
    let first_chunk_timeout = p.first_chunk_timeout_ms.map(|m| m.0).unwrap_or(timeout);
    let default_max_tokens = p.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if default_max_tokens == 0 {
        return Err(err(
            &at("default_max_tokens"),
            "must be greater than zero".into(),
        ));
    }
    let responses = match (kind, p.responses) {
        (ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::Azure, r) => {
            r.unwrap_or(kind == ProviderKind::Openai)
        }
        (_, Some(true)) => {
            return Err(err(
                &at("responses"),
                "only openai, openai-compatible and azure servers speak the Responses API".into(),
            ));
        }
        (_, _) => false,
    };
    Ok(ProviderConfig {
        name: p.name,
        kind,
        base_url,
        api_key_env,
        jurisdiction,
        timeout,
        first_chunk_timeout,
        models: p.models,
        default_max_tokens,
        responses,
        propagate_trace: p.propagate_trace,
        api_version,
        token,
        region: aws.region,
        aws: aws.auth,
        google: gcp.auth,
    })
}

/// One `[[providers]]` entry's place, for errors that name its keys.
pub(super) struct Entry<'a> {
    pub(super) i: usize,
    pub(super) err: &'a dyn Fn(&str, String) -> ConfigError,
}

impl Entry<'_> {
    /// An error about `key` of this entry.
    pub(super) fn error(&self, key: &str, message: String) -> ConfigError {
        (self.err)(&format!("providers[{}].{key}", self.i), message)
    }

    /// `v`, the name of an environment variable that `key` gave.
    pub(super) fn variable(&self, key: &str, v: &str) -> Result<String, ConfigError> {
        if v.is_empty() || v.contains('=') {
            return Err(self.error(
                key,
                format!("expected an environment variable name, got \"{v}\""),
            ));
        }
        Ok(v.to_owned())
    }

    /// Refuses the first of `keys` that is set: they belong to `kind` only.
    pub(super) fn only(
        &self,
        kind: ProviderKind,
        keys: &[(&str, bool)],
    ) -> Result<(), ConfigError> {
        match keys.iter().find(|(_, set)| *set) {
            Some((key, _)) => {
                Err(self.error(key, format!("only kind {} takes this key", kind.as_str())))
            }
            None => Ok(()),
        }
    }
}

/// Destinations come from configuration only, so this is where they are
/// checked: an absolute http(s) URL without credentials, query or fragment.
pub fn check_base_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim_end_matches('/');
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return Err(format!(
            "expected an http:// or https:// URL, got \"{url}\""
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "expected an http:// or https:// URL, got \"{url}\""
        ));
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("the URL has no host: \"{url}\""));
    }
    if host.contains('@') {
        return Err("credentials do not belong in base_url; use api_key_env".into());
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(format!(
            "base_url must not have a query or fragment: \"{url}\""
        ));
    }
    Ok(trimmed.to_owned())
}

/// The providers registered with no config file: each preset whose key
/// variable is set, and Ollama when OLLAMA_HOST is.
pub(super) fn embedded(env: &Env) -> Vec<ProviderConfig> {
    let mut out = Vec::new();
    for p in presets() {
        let (base_url, api_key_env) = if let Some(host_var) = &p.host_env {
            let Some(host) = env.get(host_var) else {
                continue;
            };
            let host = host.trim_end_matches('/');
            let base = if host.starts_with("http://") || host.starts_with("https://") {
                format!("{host}/v1")
            } else {
                format!("http://{host}/v1")
            };
            (base, None)
        } else {
            match p.api_key_env.iter().find(|v| env.get(v).is_some()) {
                Some(var) => (p.base_url.clone(), Some(var.clone())),
                None => continue,
            }
        };
        out.push(ProviderConfig {
            name: p.name.clone(),
            kind: p.kind,
            base_url,
            api_key_env,
            jurisdiction: Some(p.jurisdiction.clone()),
            timeout: Duration::from_secs(60),
            first_chunk_timeout: Duration::from_secs(60),
            models: Vec::new(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
            responses: p.kind == ProviderKind::Openai,
            propagate_trace: false,
            api_version: None,
            token: None,
            region: None,
            aws: None,
            google: None,
        });
    }
    // The cloud kinds, from the variables their own SDKs read, checked as
    // a config entry would be.
    let mut clouds = Vec::new();
    if let (Some(endpoint), Some(_)) = (env.get("AZURE_OPENAI_ENDPOINT"), env.get(AZURE_KEY_ENV))
        && let Ok(endpoint) = check_base_url(endpoint)
    {
        let base_url = if endpoint.ends_with("/openai/v1") {
            endpoint
        } else {
            format!("{}/openai/v1", endpoint.trim_end_matches("/openai"))
        };
        clouds.push(RawProvider {
            name: "azure".into(),
            kind: Some(ProviderKind::Azure),
            base_url: Some(base_url),
            ..RawProvider::default()
        });
    }
    if super::bedrock::embedded_ready(env) {
        clouds.push(RawProvider {
            name: "bedrock".into(),
            kind: Some(ProviderKind::Bedrock),
            ..RawProvider::default()
        });
    }
    if super::vertex::embedded_ready(env) {
        clouds.push(RawProvider {
            name: "vertex".into(),
            kind: Some(ProviderKind::Vertex),
            location: Some(
                env.get("GOOGLE_CLOUD_LOCATION")
                    .unwrap_or("global")
                    .to_owned(),
            ),
            ..RawProvider::default()
        });
    }
    let err = |key: &str, message: String| ConfigError {
        file: None,
        key: key.to_owned(),
        message,
    };
    out.extend(
        clouds
            .into_iter()
            .filter_map(|raw| validate(0, raw, env, &err).ok()),
    );
    out
}
