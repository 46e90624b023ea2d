//! Bearer tokens the gateway fetches for itself: OAuth 2.0 client
//! credentials (Microsoft Entra ID for Azure OpenAI), cached until shortly
//! before they expire and dropped when the provider refuses one.
//!
//! One fetch at a time per provider: callers that find no fresh token wait
//! for the fetch under way rather than each asking the token endpoint. The
//! client secret and the tokens are [`Secret`]s and sensitive header values:
//! no `Debug`, log line or error message shows them. A failed fetch says only
//! the endpoint's OAuth error code (`invalid_client`, ...), never its
//! description, which may quote what was sent.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;

use super::Secret;
use super::client::Client;
use super::errors::{ErrorClass, UpstreamError};

/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// A token is replaced this long before it expires (or at half its life,
/// if that is sooner): calls in flight must not carry one that lapses.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// The most of a token endpoint's answer that is read.
const MAX_ANSWER: usize = 64 * 1024;

/// A token issued to a call: the header to send, and which token it was
/// (to drop exactly that one if the provider refuses it).
#[derive(Clone)]
pub struct Issued {
    pub header: HeaderValue,
    pub generation: u64,
}

struct Cached {
    header: HeaderValue,
    refresh_at: Instant,
    generation: u64,
}

/// Client-credentials tokens for one provider.
pub struct TokenCache {
    provider: String,
    token_url: Uri,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    scope: String,
    current: Mutex<Option<Cached>>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<u64>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("provider", &self.provider)
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    /// Seconds; some endpoints send it as a string.
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
}

impl TokenCache {
    /// `None` when `token_url` is not a URL (configuration checked it).
    pub fn new(
        provider: &str,
        token_url: &str,
        client_id: Option<String>,
        client_secret: Option<Secret>,
        scope: &str,
    ) -> Option<TokenCache> {
        Some(TokenCache {
            provider: provider.to_owned(),
            token_url: token_url.parse().ok()?,
            client_id,
            client_secret,
            scope: scope.to_owned(),
            current: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(0),
        })
    }

    /// Whether the variables holding the client id and secret are set.
    pub fn has_credential(&self) -> bool {
        self.client_id.is_some() && self.client_secret.is_some()
    }

    /// A fresh token, fetched if there is none.
    pub async fn get(&self, client: &Client) -> Result<Issued, UpstreamError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let mut generation = self.fetching.lock().await;
        // Whoever held the lock before may have fetched one.
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let (header, life) = self.fetch(client).await?;
        *generation += 1;
        let ahead = REFRESH_AHEAD.min(life / 2);
        let issued = Issued {
            header: header.clone(),
            generation: *generation,
        };
        *self.lock() = Some(Cached {
            header,
            refresh_at: Instant::now() + life - ahead,
            generation: *generation,
        });
        Ok(issued)
    }

    /// The provider refused the token `generation`: the next call fetches
    /// another (unless one was fetched meanwhile).
    pub fn refused(&self, generation: u64) {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            *current = None;
        }
    }

    fn fresh(&self) -> Option<Issued> {
        let current = self.lock();
        let c = current.as_ref()?;
        (Instant::now() < c.refresh_at).then(|| Issued {
            header: c.header.clone(),
            generation: c.generation,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One client-credentials grant: the `Authorization` value and the
    /// token's life.
    async fn fetch(&self, client: &Client) -> Result<(HeaderValue, Duration), UpstreamError> {
        let name = &self.provider;
        let refuse = |what: String| UpstreamError {
            provider: name.clone(),
            class: ErrorClass::Auth,
            status: 502,
            message: format!("provider {name}: no Entra ID token: {what}"),
            provider_code: None,
            retry_after: None,
        };
        let (Some(id), Some(secret)) = (&self.client_id, &self.client_secret) else {
            return Err(refuse("the client id or secret variable is not set".into()));
        };
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            form_encode(id),
            form_encode(secret.expose()),
            form_encode(&self.scope)
        );
        let mut req = Request::new(Full::new(Bytes::from(form)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.token_url.clone();
        req.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let resp = client
            .raw(req, FETCH_TIMEOUT)
            .await
            .map_err(|e| UpstreamError::connect(name, &format!("token endpoint: {e}")))?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|_| {
                refuse(format!(
                    "the token endpoint's answer broke off (HTTP {status})"
                ))
            })?
            .to_bytes();
        let answer: Option<Answer> = serde_json::from_slice(&body).ok();
        let code = |a: &Option<Answer>| {
            a.as_ref()
                .and_then(|a| a.error.as_deref())
                .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()))
                .map(|c| format!("{c} (HTTP {status})"))
                .unwrap_or_else(|| format!("HTTP {status}"))
        };
        if !status.is_success() {
            return Err(refuse(format!(
                "the token endpoint refused: {}",
                code(&answer)
            )));
        }
        let Some(Answer {
            access_token: Some(token),
            expires_in,
            ..
        }) = answer
        else {
            return Err(refuse(
                "the token endpoint's answer holds no access_token".into(),
            ));
        };
        let secs = match expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        // No lifetime said: an hour, Entra's usual.
        let life = Duration::from_secs(secs.unwrap_or(3600).clamp(1, 24 * 3600));
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| refuse("the access_token is not a valid header value".into()))?;
        header.set_sensitive(true);
        Ok((header, life))
    }
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(
            form_encode("https://cognitiveservices.azure.com/.default"),
            "https%3A%2F%2Fcognitiveservices.azure.com%2F.default"
        );
        assert_eq!(form_encode("a b+c&d=e~"), "a+b%2Bc%26d%3De%7E");
    }

    #[test]
    fn the_cache_never_prints_its_secret() {
        let t = TokenCache::new(
            "az",
            "http://127.0.0.1:9/token",
            Some("app".into()),
            Some(Secret::new("client-secret-canary".into())),
            "s",
        )
        .unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(t.has_credential());
    }

    #[test]
    fn a_refused_token_is_dropped_only_if_still_current() {
        let t = TokenCache::new("az", "http://127.0.0.1:9/token", None, None, "s").unwrap();
        *t.lock() = Some(Cached {
            header: HeaderValue::from_static("Bearer a"),
            refresh_at: Instant::now() + Duration::from_secs(60),
            generation: 2,
        });
        t.refused(1);
        assert_eq!(t.fresh().map(|i| i.generation), Some(2));
        t.refused(2);
        assert!(t.fresh().is_none());
    }
}
