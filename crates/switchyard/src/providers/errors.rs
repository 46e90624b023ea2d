//! What an upstream failure means: its class (which decides retry and
//! failover), the status to show, and a message safe to show.
//!
//! Messages come from the provider's error body but never carry a
//! credential: authentication failures get a fixed message, and everything
//! else is scrubbed of the provider's key and of anything shaped like one.

use std::time::Duration;

use http::HeaderMap;

use super::Provider;
use crate::wire;

/// Kinds of upstream failure. Routing decides from these, never from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The connection could not be made (refused, DNS, TLS).
    Connect,
    /// No response headers (or no first stream event) in time, or 408.
    Timeout,
    /// 429 rate limiting.
    RateLimited,
    /// Out of credit or quota (`insufficient_quota`, Gemini 402, Anthropic's
    /// "credit balance is too low"): another provider may serve, this key
    /// will not.
    Quota,
    /// 503, Anthropic 529 / overloaded_error.
    Overloaded,
    /// Other 5xx.
    Server,
    /// The provider rejected the gateway's credential (401/403, Gemini
    /// API_KEY_INVALID).
    Auth,
    /// 400/422: the request itself is wrong; no provider will take it.
    BadRequest,
    /// The provider's content filter refused the prompt (Azure's 400 with
    /// code `content_filter`): the operator chose that filter, so another
    /// provider is not asked to judge the same prompt.
    ContentFilter,
    /// 404: unknown model or path.
    NotFound,
    /// Any other 4xx.
    Client,
    /// The upstream answered with something that is not its dialect.
    Protocol,
    /// The stream broke (reset, error event) after it started.
    Stream,
}

impl ErrorClass {
    /// Whether another attempt (the next target) may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Connect
                | ErrorClass::Timeout
                | ErrorClass::RateLimited
                | ErrorClass::Quota
                | ErrorClass::Overloaded
                | ErrorClass::Server
                | ErrorClass::Protocol
                | ErrorClass::Stream
        )
    }

    /// A short, stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Quota => "quota",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::Server => "server",
            ErrorClass::Auth => "auth",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::ContentFilter => "content_filter",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Client => "client",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Stream => "stream",
        }
    }
}

/// One failed upstream attempt.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct UpstreamError {
    pub provider: String,
    pub class: ErrorClass,
    /// The status the caller sees: the upstream's own, or 502/504 when there
    /// was none.
    pub status: u16,
    /// Safe to show: names the provider, holds no credential.
    pub message: String,
    /// The provider's own error type or code, when it gave one.
    pub provider_code: Option<String>,
    pub retry_after: Option<Duration>,
}

impl UpstreamError {
    pub fn connect(provider: &str, detail: &str) -> UpstreamError {
        UpstreamError {
            provider: provider.to_owned(),
            class: ErrorClass::Connect,
            status: 502,
            message: format!("provider {provider} could not be reached: {detail}"),
            provider_code: None,
            retry_after: None,
        }
    }

    pub fn timeout(provider: &str, what: &str, after: Duration) -> UpstreamError {
        UpstreamError {
            provider: provider.to_owned(),
            class: ErrorClass::Timeout,
            status: 504,
            message: format!(
                "provider {provider} sent no {what} within {}",
                crate::config::fmt_duration(after)
            ),
            provider_code: None,
            retry_after: None,
        }
    }

    pub fn protocol(provider: &str, detail: &str) -> UpstreamError {
        UpstreamError {
            provider: provider.to_owned(),
            class: ErrorClass::Protocol,
            status: 502,
            message: format!(
                "provider {provider} sent an answer the gateway cannot read: {detail}"
            ),
            provider_code: None,
            retry_after: None,
        }
    }

    /// A failure the upstream reported inside its stream.
    pub fn in_stream(provider: &Provider, err: &wire::StreamError) -> UpstreamError {
        match err {
            wire::StreamError::Upstream {
                status,
                kind,
                message,
            } => {
                let class = match *status {
                    400 | 422 => ErrorClass::BadRequest,
                    408 => ErrorClass::Timeout,
                    429 => ErrorClass::RateLimited,
                    503 | 529 => ErrorClass::Overloaded,
                    s if s >= 500 => ErrorClass::Server,
                    _ => ErrorClass::Stream,
                };
                UpstreamError {
                    provider: provider.name().to_owned(),
                    class,
                    status: *status,
                    message: format!("provider {}: {}", provider.name(), scrub(message, provider)),
                    provider_code: kind.clone(),
                    retry_after: None,
                }
            }
            wire::StreamError::Malformed(detail) => {
                UpstreamError::protocol(provider.name(), detail)
            }
        }
    }

    /// The upstream's body ended, or its connection broke, mid-stream.
    pub fn broken_stream(provider: &str, detail: &str) -> UpstreamError {
        UpstreamError {
            provider: provider.to_owned(),
            class: ErrorClass::Stream,
            status: 502,
            message: format!("provider {provider} stream broke off: {detail}"),
            provider_code: None,
            retry_after: None,
        }
    }
}

/// Classifies a non-2xx upstream answer.
pub fn classify(
    provider: &Provider,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> UpstreamError {
    let (code, message, retry_info) = provider.decode_error(body);
    // Bedrock names the error in a header: `ThrottlingException:http://...`.
    let code = code.or_else(|| {
        headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(':').next())
            .filter(|c| !c.is_empty() && c.len() <= 64)
            .map(str::to_owned)
    });
    let code_is = |c: &str| code.as_deref() == Some(c);
    let message_has = |s: &str| {
        message
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().contains(s))
    };
    let class = match status {
        401 | 403 => ErrorClass::Auth,
        400 if code_is("API_KEY_INVALID") => ErrorClass::Auth,
        402 => ErrorClass::Quota,
        429 if code_is("insufficient_quota") => ErrorClass::Quota,
        400 if message_has("credit balance") => ErrorClass::Quota,
        408 => ErrorClass::Timeout,
        429 => ErrorClass::RateLimited,
        503 | 529 => ErrorClass::Overloaded,
        _ if code_is("overloaded_error") => ErrorClass::Overloaded,
        500..=599 => ErrorClass::Server,
        404 => ErrorClass::NotFound,
        400 if code_is("content_filter") => ErrorClass::ContentFilter,
        400 | 422 => ErrorClass::BadRequest,
        _ => ErrorClass::Client,
    };
    let name = provider.name();
    let message = match (class, message) {
        (ErrorClass::Auth, _) => {
            format!(
                "provider {name} rejected the gateway's credential for it (HTTP {status}); check its api_key_env"
            )
        }
        (ErrorClass::ContentFilter, m) => {
            let m = m
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "content filtered".into());
            match filtered_categories(body) {
                Some(c) => format!("provider {name}: {} (filtered: {c})", scrub(&m, provider)),
                None => format!("provider {name}: {}", scrub(&m, provider)),
            }
        }
        (_, Some(m)) if !m.is_empty() => format!("provider {name}: {}", scrub(&m, provider)),
        _ => format!("provider {name} answered HTTP {status}"),
    };
    let retry_after = retry_after(headers).or(retry_info.and_then(wait_of));
    UpstreamError {
        provider: name.to_owned(),
        class,
        status,
        message,
        provider_code: code,
        retry_after,
    }
}

/// What Azure's content filter caught, from `innererror.content_filter_result`:
/// `hate (high), jailbreak` (category, and severity where it says one).
fn filtered_categories(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let result = v
        .pointer("/error/innererror/content_filter_result")?
        .as_object()?;
    let caught: Vec<String> = result
        .iter()
        .filter(|(_, r)| r.get("filtered").and_then(|f| f.as_bool()) == Some(true))
        .map(|(category, r)| {
            let category: String = category
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(40)
                .collect();
            match r.get("severity").and_then(|s| s.as_str()) {
                Some(sev) if sev.len() <= 16 && sev.chars().all(|c| c.is_ascii_alphabetic()) => {
                    format!("{category} ({sev})")
                }
                _ => category,
            }
        })
        .take(12)
        .collect();
    (!caught.is_empty()).then(|| caught.join(", "))
}

/// The longest an upstream's Retry-After blocks it: past this the gateway
/// tries again anyway (a provider's "wait a year" is more likely a bug than
/// a plan, and a block cannot be lifted short of a restart).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A wait of `secs` seconds as the upstream said it, capped at
/// [`MAX_RETRY_AFTER`]; nothing for a negative or non-finite value.
fn wait_of(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// `retry-after-ms`, or `retry-after` in seconds or as an HTTP date,
/// capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(wait) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|ms| wait_of(ms / 1000.0))
    {
        return Some(wait);
    }
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return wait_of(secs);
    }
    let when = httpdate_to_unix(v)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(when.saturating_sub(now)).min(MAX_RETRY_AFTER))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_to_unix(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == mon)? as i64
        + 1;
    let t: Vec<u64> = time.split(':').filter_map(|x| x.parse().ok()).collect();
    let [h, m, sec] = t.as_slice() else {
        return None;
    };
    let days = crate::clock::days_from_civil(year, mon, day as i64);
    u64::try_from(days)
        .ok()
        .map(|d| d * 86400 + h * 3600 + m * 60 + sec)
}

/// Removes the provider's key, and anything shaped like a provider key,
/// from text that came from upstream; caps its length.
pub fn scrub(text: &str, provider: &Provider) -> String {
    let mut out = text.to_owned();
    for secret in provider.secret.iter().chain(provider.all_secrets.iter()) {
        let s = secret.expose();
        if s.len() >= 4 {
            out = out.replace(s, "[redacted]");
        }
    }
    // Credentials fetched while running (AWS temporary keys, OAuth tokens).
    let live = provider
        .signer
        .as_ref()
        .map(super::aws::Signer::live_secrets)
        .unwrap_or_default()
        .into_iter()
        .chain(provider.tokens.as_ref().and_then(|t| t.live_token()));
    for s in live {
        if s.len() >= 4 {
            out = out.replace(&s, "[redacted]");
        }
    }
    const PREFIXES: [&str; 6] = ["sk-", "sk_", "AIza", "gsk_", "xai-", "sk-ant-"];
    let mut cleaned = String::with_capacity(out.len());
    for (i, word) in out.split(' ').enumerate() {
        if i > 0 {
            cleaned.push(' ');
        }
        let bare = word
            .trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '*');
        if bare.len() >= 12 && PREFIXES.iter().any(|p| bare.starts_with(p)) {
            cleaned.push_str(&word.replace(bare, "[redacted]"));
        } else {
            cleaned.push_str(word);
        }
    }
    if cleaned.len() > 600 {
        let mut cut = 600;
        while !cleaned.is_char_boundary(cut) {
            cut -= 1;
        }
        cleaned.truncate(cut);
        cleaned.push('…');
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProviderConfig, ProviderKind};

    fn provider(kind: ProviderKind) -> Provider {
        Provider {
            config: ProviderConfig {
                name: "p".into(),
                kind,
                base_url: "http://x".into(),
                api_key_env: None,
                jurisdiction: None,
                timeout: Duration::from_secs(1),
                first_chunk_timeout: Duration::from_secs(1),
                models: vec![],
                default_max_tokens: 1,
                responses: false,
                propagate_trace: false,
                api_version: None,
                token: None,
                region: None,
                aws: None,
                google: None,
            },
            auth: None,
            tokens: None,
            signer: None,
            secret: Some(super::super::Secret("sk-canary-123456789".into())),
            all_secrets: std::sync::Arc::from(vec![super::super::Secret(
                "other-provider-secret".into(),
            )]),
        }
    }

    #[test]
    fn classes_follow_the_documented_mapping() {
        let o = provider(ProviderKind::Openai);
        let a = provider(ProviderKind::Anthropic);
        let g = provider(ProviderKind::Gemini);
        let h = HeaderMap::new();
        let quota = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert_eq!(classify(&o, 429, &h, quota).class, ErrorClass::Quota);
        assert_eq!(classify(&o, 429, &h, b"{}").class, ErrorClass::RateLimited);
        let over =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = classify(&a, 529, &h, over);
        assert_eq!((e.class, e.status), (ErrorClass::Overloaded, 529));
        assert!(
            e.message.starts_with("provider p: Overloaded"),
            "{}",
            e.message
        );
        let badkey = br#"{"error":{"code":400,"message":"API key not valid. key=sk-canary-123456789","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#;
        let e = classify(&g, 400, &h, badkey);
        assert_eq!(e.class, ErrorClass::Auth);
        assert!(!e.message.contains("canary"));
        assert!(classify(&o, 400, &h, b"{}").class == ErrorClass::BadRequest);
        assert!(!ErrorClass::BadRequest.retryable());
        assert!(ErrorClass::Overloaded.retryable());
    }

    #[test]
    fn azure_content_filters_say_what_they_caught_and_are_not_failed_over() {
        let az = provider(ProviderKind::Azure);
        let body = br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"},"jailbreak":{"filtered":true,"detected":true},"self_harm":{"filtered":false,"severity":"safe"}}}}}"#;
        let e = classify(&az, 400, &HeaderMap::new(), body);
        assert_eq!((e.class, e.status), (ErrorClass::ContentFilter, 400));
        assert!(!e.class.retryable());
        assert!(
            e.message.ends_with("(filtered: hate (high), jailbreak)"),
            "{}",
            e.message
        );
        assert_eq!(e.provider_code.as_deref(), Some("content_filter"));
    }

    #[test]
    fn messages_never_carry_keys() {
        let o = provider(ProviderKind::Openai);
        let body = br#"{"error":{"message":"bad thing near sk-canary-123456789 and sk-proj-abcdefghijklmnop. other-provider-secret","type":"server_error"}}"#;
        let e = classify(&o, 500, &HeaderMap::new(), body);
        assert!(!e.message.contains("canary"), "{}", e.message);
        assert!(
            !e.message.contains("other-provider-secret"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("sk-proj"), "{}", e.message);
        let e = classify(
            &o,
            401,
            &HeaderMap::new(),
            br#"{"error":{"message":"Incorrect API key provided: sk-can*****6789"}}"#,
        );
        assert!(!e.message.contains("sk-"), "{}", e.message);
    }

    #[test]
    fn retry_after_reads_seconds_ms_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        assert_eq!(
            httpdate_to_unix("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
    }

    /// Whatever an upstream says, the wait is a real duration no longer
    /// than the cap: no panic on huge, negative or non-finite values.
    #[test]
    fn absurd_waits_are_capped_or_ignored() {
        for (name, value, want) in [
            ("retry-after", "1e20", Some(MAX_RETRY_AFTER)),
            ("retry-after", "9300000000000000000", Some(MAX_RETRY_AFTER)),
            ("retry-after", "-5", None),
            ("retry-after", "inf", None),
            ("retry-after", "NaN", None),
            ("retry-after-ms", "1e300", Some(MAX_RETRY_AFTER)),
            (
                "retry-after",
                "Fri, 31 Dec 9999 23:59:59 GMT",
                Some(MAX_RETRY_AFTER),
            ),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, value.parse().unwrap());
            assert_eq!(retry_after(&h), want, "{name}: {value}");
        }
        let g = provider(ProviderKind::Gemini);
        for delay in ["-1s", "infs", "NaNs", "1e20s"] {
            let body = format!(
                r#"{{"error":{{"code":429,"message":"Quota","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}"#
            );
            let e = classify(&g, 429, &HeaderMap::new(), body.as_bytes());
            assert!(
                e.retry_after.is_none_or(|d| d <= MAX_RETRY_AFTER),
                "{delay}: {:?}",
                e.retry_after
            );
        }
    }
}
