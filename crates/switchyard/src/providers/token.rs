//! Bearer tokens the gateway fetches for itself, cached until shortly
//! before they expire and dropped when the provider refuses one. Each cache
//! holds one [`Grant`]: OAuth 2.0 client credentials (Microsoft Entra ID for
//! Azure OpenAI), or for Vertex AI a Google service account's signed JWT, an
//! authorized user's refresh token, or the metadata server of a Google
//! Cloud machine (see [`google`]).
//!
//! One fetch at a time per provider: callers that find no fresh token wait
//! for the fetch under way rather than each asking the token endpoint. The
//! client secret, the private key, the refresh token and the tokens are
//! [`Secret`]s, redacted keys and sensitive header values: no `Debug`, log
//! line or error message shows them. A failed fetch says which grant failed
//! and only the endpoint's OAuth error code (`invalid_client`,
//! `invalid_grant`, ...), never its description, which may quote what was
//! sent.

pub mod google;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;

pub use google::{GOOGLE_SCOPE, PrivateKey, google_credentials};

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

/// How a cache gets its tokens. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub enum Grant {
    /// OAuth 2.0 client credentials (Entra ID). The id and secret are
    /// `None` when their variables are not set: every fetch then fails.
    ClientCredentials {
        token_url: Uri,
        client_id: Option<String>,
        client_secret: Option<Secret>,
        scope: String,
    },
    /// A Google service account: a JWT signed with its key, exchanged
    /// under the JWT bearer grant (RFC 7523) at `token_uri`.
    ServiceAccount {
        client_email: String,
        private_key: PrivateKey,
        /// The JWT's `kid`, if the credentials file names one.
        private_key_id: Option<String>,
        token_uri: Uri,
        scope: String,
    },
    /// A Google user's refresh token (`gcloud auth application-default
    /// login`); its scopes are the ones it was granted with.
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        token_uri: Uri,
    },
    /// The metadata server of a Google Cloud machine: a token for the
    /// machine's service account ([`Grant::metadata`] builds the URL).
    Metadata { url: Uri },
}

impl Grant {
    /// The grant's name in configuration and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Grant::ClientCredentials { .. } => "client_credentials",
            Grant::ServiceAccount { .. } => "service_account",
            Grant::AuthorizedUser { .. } => "authorized_user",
            Grant::Metadata { .. } => "metadata",
        }
    }

    /// The secrets the grant holds, to scrub from upstream text: the
    /// client secret, the refresh token, or the private key's PEM and
    /// each line of its body.
    pub fn secrets(&self) -> Vec<Secret> {
        match self {
            Grant::ClientCredentials { client_secret, .. } => {
                client_secret.iter().cloned().collect()
            }
            Grant::ServiceAccount { private_key, .. } => private_key.secrets().to_vec(),
            Grant::AuthorizedUser {
                client_secret,
                refresh_token,
                ..
            } => vec![client_secret.clone(), refresh_token.clone()],
            Grant::Metadata { .. } => Vec::new(),
        }
    }

    /// Whether the grant has what a fetch needs (only client credentials
    /// can lack it: their variables may be unset).
    pub fn has_credential(&self) -> bool {
        match self {
            Grant::ClientCredentials {
                client_id,
                client_secret,
                ..
            } => client_id.is_some() && client_secret.is_some(),
            _ => true,
        }
    }

    /// What a failed fetch did not get.
    fn token_name(&self) -> &'static str {
        match self {
            Grant::ClientCredentials { .. } => "Entra ID token",
            Grant::ServiceAccount { .. } => "Google service-account token",
            Grant::AuthorizedUser { .. } => "Google authorized-user token",
            Grant::Metadata { .. } => "Google metadata-server token",
        }
    }

    /// Who is asked for tokens.
    fn endpoint_name(&self) -> &'static str {
        match self {
            Grant::Metadata { .. } => "metadata server",
            _ => "token endpoint",
        }
    }

    /// The request for one token, at `now` (Unix seconds, for a JWT).
    fn request(&self, now: u64) -> Result<Request<Full<Bytes>>, String> {
        match self {
            Grant::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let (Some(id), Some(secret)) = (client_id, client_secret) else {
                    return Err("the client id or secret variable is not set".into());
                };
                Ok(post_form(
                    token_url,
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_id", id),
                        ("client_secret", secret.expose()),
                        ("scope", scope),
                    ],
                ))
            }
            Grant::ServiceAccount {
                client_email,
                private_key,
                private_key_id,
                token_uri,
                scope,
            } => {
                let jwt = google::assertion(
                    client_email,
                    private_key,
                    private_key_id.as_deref(),
                    token_uri,
                    scope,
                    now,
                )?;
                Ok(post_form(
                    token_uri,
                    &[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                        ("assertion", &jwt),
                    ],
                ))
            }
            Grant::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            } => Ok(post_form(
                token_uri,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id),
                    ("client_secret", client_secret.expose()),
                    ("refresh_token", refresh_token.expose()),
                ],
            )),
            Grant::Metadata { url } => {
                let mut req = Request::new(Full::new(Bytes::new()));
                *req.method_mut() = Method::GET;
                *req.uri_mut() = url.clone();
                req.headers_mut().insert(
                    HeaderName::from_static("metadata-flavor"),
                    HeaderValue::from_static("Google"),
                );
                req.headers_mut()
                    .insert(ACCEPT, HeaderValue::from_static("application/json"));
                Ok(req)
            }
        }
    }
}

/// A form POST of `fields` to `uri`.
fn post_form(uri: &Uri, fields: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let form = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut req = Request::new(Full::new(Bytes::from(form)));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri.clone();
    req.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    req.headers_mut()
        .insert(ACCEPT, HeaderValue::from_static("application/json"));
    req
}

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

/// The tokens of one provider, fetched under one [`Grant`].
pub struct TokenCache {
    provider: String,
    grant: Grant,
    current: Mutex<Option<Cached>>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<u64>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("provider", &self.provider)
            .field("grant", &self.grant)
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
    /// Client credentials (Entra ID); `None` when `token_url` is not a URL
    /// (configuration checked it).
    pub fn new(
        provider: &str,
        token_url: &str,
        client_id: Option<String>,
        client_secret: Option<Secret>,
        scope: &str,
    ) -> Option<TokenCache> {
        Some(TokenCache::with_grant(
            provider,
            Grant::ClientCredentials {
                token_url: token_url.parse().ok()?,
                client_id,
                client_secret,
                scope: scope.to_owned(),
            },
        ))
    }

    /// Tokens for `provider` fetched under `grant`.
    pub fn with_grant(provider: &str, grant: Grant) -> TokenCache {
        TokenCache {
            provider: provider.to_owned(),
            grant,
            current: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(0),
        }
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// The grant's secrets, to scrub from upstream text.
    pub fn secrets(&self) -> Vec<Secret> {
        self.grant.secrets()
    }

    /// The token held now (without its `Bearer `), to scrub from upstream
    /// text: it changes as tokens are fetched, so it is read when needed.
    pub fn live_token(&self) -> Option<String> {
        let current = self.lock();
        let value = current.as_ref()?.header.to_str().ok()?;
        let token = value.strip_prefix("Bearer ").unwrap_or(value);
        Some(token.to_owned())
    }

    /// Whether the grant has what a fetch needs (for client credentials:
    /// whether the variables holding the id and secret are set).
    pub fn has_credential(&self) -> bool {
        self.grant.has_credential()
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

    /// One grant: the `Authorization` value and the token's life.
    async fn fetch(&self, client: &Client) -> Result<(HeaderValue, Duration), UpstreamError> {
        let name = &self.provider;
        let token = self.grant.token_name();
        let endpoint = self.grant.endpoint_name();
        let refuse = |what: String| UpstreamError {
            provider: name.clone(),
            class: ErrorClass::Auth,
            status: 502,
            message: format!("provider {name}: no {token}: {what}"),
            provider_code: None,
            retry_after: None,
        };
        let req = self.grant.request(crate::clock::unix_s()).map_err(refuse)?;
        let resp = client
            .raw(req, FETCH_TIMEOUT)
            .await
            .map_err(|e| UpstreamError::connect(name, &format!("{token}: {endpoint}: {e}")))?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|_| refuse(format!("the {endpoint}'s answer broke off (HTTP {status})")))?
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
            return Err(refuse(format!("the {endpoint} refused: {}", code(&answer))));
        }
        let Some(Answer {
            access_token: Some(token),
            expires_in,
            ..
        }) = answer
        else {
            return Err(refuse(format!(
                "the {endpoint}'s answer holds no access_token"
            )));
        };
        let secs = match expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        // No lifetime said: an hour, Entra's and Google's usual.
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

    #[test]
    fn the_token_held_now_is_named_for_scrubbing() {
        let t = TokenCache::new("az", "http://127.0.0.1:9/token", None, None, "s").unwrap();
        assert_eq!(t.live_token(), None);
        *t.lock() = Some(Cached {
            header: HeaderValue::from_static("Bearer eyJ0eXAi.fetched"),
            refresh_at: Instant::now(),
            generation: 1,
        });
        assert_eq!(t.live_token().as_deref(), Some("eyJ0eXAi.fetched"));
    }

    const SERVICE_ACCOUNT: &str = include_str!("../../testdata/google/service_account.json");
    const PUBLIC: &[u8] = include_bytes!("../../testdata/google/service_account_pub.der");

    fn body_of(req: &Request<Full<Bytes>>) -> String {
        use http_body_util::BodyExt as _;
        let bytes = futures_util::FutureExt::now_or_never(req.body().clone().collect())
            .unwrap()
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn form_of(body: &str) -> Vec<(String, String)> {
        body.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    fn verifies(jwt: &str) -> bool {
        use base64::Engine;
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            PUBLIC,
        )
        .verify(input.as_bytes(), &sig)
        .is_ok()
    }

    fn service_account(token_uri: &str) -> Grant {
        let mut v: serde_json::Value = serde_json::from_str(SERVICE_ACCOUNT).unwrap();
        v["token_uri"] = token_uri.into();
        google_credentials(&v.to_string(), GOOGLE_SCOPE).unwrap()
    }

    #[test]
    fn each_grant_asks_as_it_should() {
        let cc = TokenCache::new(
            "az",
            "http://127.0.0.1:9/token",
            Some("app".into()),
            Some(Secret::new("s&cret".into())),
            "api://x/.default",
        )
        .unwrap();
        let req = cc.grant().request(0).unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(
            body_of(&req),
            "grant_type=client_credentials&client_id=app&client_secret=s%26cret\
             &scope=api%3A%2F%2Fx%2F.default"
        );
        assert_eq!(cc.secrets().len(), 1);

        let sa = service_account("https://oauth2.googleapis.com/token");
        let req = sa.request(1_700_000_000).unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "https://oauth2.googleapis.com/token");
        assert_eq!(
            req.headers()[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        let form = form_of(&body_of(&req));
        assert_eq!(form.len(), 2);
        assert_eq!(form[0].0, "grant_type");
        assert_eq!(
            form[0].1,
            "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
        );
        assert_eq!(form[1].0, "assertion");
        // base64url and dots: nothing to encode.
        assert_eq!(form[1].1.split('.').count(), 3);
        assert!(verifies(&form[1].1));

        let user = google_credentials(
            r#"{"type":"authorized_user","client_id":"c.apps","client_secret":"cs",
                "refresh_token":"1//rt"}"#,
            GOOGLE_SCOPE,
        )
        .unwrap();
        let req = user.request(0).unwrap();
        assert_eq!(req.uri(), google::GOOGLE_TOKEN_URI);
        assert_eq!(
            body_of(&req),
            "grant_type=refresh_token&client_id=c.apps&client_secret=cs\
             &refresh_token=1%2F%2Frt"
        );

        let md = Grant::metadata(Some("127.0.0.1:9")).unwrap();
        let req = md.request(0).unwrap();
        assert_eq!(req.method(), Method::GET);
        assert_eq!(
            req.uri(),
            "http://127.0.0.1:9/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(req.headers()["metadata-flavor"], "Google");
        assert!(body_of(&req).is_empty());
        assert!(md.secrets().is_empty() && md.has_credential());
    }

    #[test]
    fn client_credentials_without_variables_do_not_ask() {
        let t = TokenCache::new("az", "http://127.0.0.1:9/token", None, None, "s").unwrap();
        assert!(!t.has_credential());
        let e = t.grant().request(0).unwrap_err();
        assert!(e.contains("not set"), "{e}");
    }

    #[test]
    fn debug_shows_no_key_material() {
        let t = TokenCache::with_grant("vx", service_account("http://127.0.0.1:9/token"));
        let shown = format!("{t:?}");
        assert!(shown.contains("service_account") || shown.contains("ServiceAccount"));
        for s in t.secrets() {
            assert!(!shown.contains(s.expose()), "{shown}");
        }
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        let t = TokenCache::with_grant(
            "vx",
            google_credentials(
                r#"{"type":"authorized_user","client_id":"c","client_secret":"cs-canary",
                    "refresh_token":"rt-canary"}"#,
                GOOGLE_SCOPE,
            )
            .unwrap(),
        );
        let shown = format!("{t:?}");
        assert!(!shown.contains("canary"), "{shown}");
    }

    /// Answers one request on a local port with `status` and `body`; gives
    /// the port and the request as received.
    async fn answer_once(
        status: &'static str,
        body: &'static str,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = conn.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + length || n == 0 {
                        break;
                    }
                } else if n == 0 {
                    break;
                }
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(answer.as_bytes()).await.unwrap();
            conn.shutdown().await.ok();
            String::from_utf8(seen).unwrap()
        });
        (port, task)
    }

    #[tokio::test]
    async fn a_service_account_token_is_fetched_and_cached() {
        let client = Client::new().unwrap();
        let (port, seen) = answer_once(
            "200 OK",
            r#"{"access_token":"ya29.sa-token","expires_in":3599,"token_type":"Bearer"}"#,
        )
        .await;
        let t = TokenCache::with_grant(
            "vx",
            service_account(&format!("http://127.0.0.1:{port}/token")),
        );
        let issued = t.get(&client).await.unwrap();
        assert_eq!(issued.header, "Bearer ya29.sa-token");
        assert!(issued.header.is_sensitive());
        let seen = seen.await.unwrap();
        assert!(seen.starts_with("POST /token HTTP/1.1\r\n"), "{seen}");
        let (_, body) = seen.split_once("\r\n\r\n").unwrap();
        let form = form_of(body);
        assert_eq!(form[1].0, "assertion");
        assert!(verifies(&form[1].1));
        // Cached: no second request (the port no longer answers).
        assert_eq!(t.get(&client).await.unwrap().generation, issued.generation);
    }

    #[tokio::test]
    async fn a_refusal_names_the_grant_and_the_code_only() {
        let client = Client::new().unwrap();
        let (port, _seen) = answer_once(
            "400 Bad Request",
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature. canary"}"#,
        )
        .await;
        let t = TokenCache::with_grant(
            "vx",
            service_account(&format!("http://127.0.0.1:{port}/token")),
        );
        let e = t.get(&client).await.err().unwrap();
        assert_eq!(e.class, ErrorClass::Auth);
        assert_eq!(
            e.message,
            "provider vx: no Google service-account token: \
             the token endpoint refused: invalid_grant (HTTP 400 Bad Request)"
        );

        let (port, seen) = answer_once(
            "401 Unauthorized",
            r#"{"error":"unauthorized_client","error_description":"rt-canary"}"#,
        )
        .await;
        let user = google_credentials(
            &format!(
                r#"{{"type":"authorized_user","client_id":"c","client_secret":"cs-canary",
                    "refresh_token":"rt-canary","token_uri":"http://127.0.0.1:{port}/token"}}"#
            ),
            GOOGLE_SCOPE,
        )
        .unwrap();
        let e = TokenCache::with_grant("vx", user)
            .get(&client)
            .await
            .err()
            .unwrap();
        assert!(
            e.message.contains("no Google authorized-user token"),
            "{}",
            e.message
        );
        assert!(e.message.contains("unauthorized_client"), "{}", e.message);
        assert!(!e.message.contains("canary"), "{}", e.message);
        let seen = seen.await.unwrap();
        assert!(seen.contains("refresh_token=rt-canary"), "{seen}");
    }

    #[tokio::test]
    async fn the_metadata_server_is_asked_with_its_header() {
        let client = Client::new().unwrap();
        let (port, seen) = answer_once(
            "200 OK",
            r#"{"access_token":"ya29.md","expires_in":"1800","token_type":"Bearer"}"#,
        )
        .await;
        let t = TokenCache::with_grant(
            "vx",
            Grant::metadata(Some(&format!("127.0.0.1:{port}"))).unwrap(),
        );
        let issued = t.get(&client).await.unwrap();
        assert_eq!(issued.header, "Bearer ya29.md");
        let seen = seen.await.unwrap().to_ascii_lowercase();
        assert!(
            seen.starts_with(
                "get /computemetadata/v1/instance/service-accounts/default/token http/1.1\r\n"
            ),
            "{seen}"
        );
        assert!(seen.contains("\r\nmetadata-flavor: google\r\n"), "{seen}");

        let (port, _seen) = answer_once("404 Not Found", "not found").await;
        let e = TokenCache::with_grant(
            "vx",
            Grant::metadata(Some(&format!("127.0.0.1:{port}"))).unwrap(),
        )
        .get(&client)
        .await
        .err()
        .unwrap();
        assert_eq!(
            e.message,
            "provider vx: no Google metadata-server token: \
             the metadata server refused: HTTP 404 Not Found"
        );
    }
}
