//! The one HTTP client that calls upstreams (and the trace collector).
//!
//! hyper's pooled client, used directly: keep-alive connections, HTTP/2
//! where the upstream offers it over TLS (rustls with the platform's
//! verifier), `TCP_NODELAY`. No redirects are followed (a redirect could
//! take a prompt and a credential somewhere the configuration never named)
//! and no proxy is taken from the environment. URLs come from configuration
//! and are parsed as `http::Uri` (no IDNA work per request). The credential
//! is added here, after the destination is fixed, and nowhere else.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::errors::{UpstreamError, classify};
use super::{Call, Provider};
use crate::config::ProviderKind;

/// Error bodies past this size are cut before classification.
const MAX_ERROR_BODY: usize = 64 * 1024;

const AGENT: HeaderValue =
    HeaderValue::from_static(concat!("switchyard/", env!("CARGO_PKG_VERSION")));

/// An upstream's answer: status, headers and a body still to be read.
pub type UpstreamResponse = http::Response<hyper::body::Incoming>;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Debug, Clone)]
pub struct Client {
    http: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
}

impl Client {
    pub fn new() -> anyhow::Result<Client> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        // Whoever else builds a TLS config (sqlx, Redis) gets ring too.
        let _ = (*provider).clone().install_default();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider)?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .http2_adaptive_window(true)
            .build(https);
        Ok(Client { http })
    }

    /// Sends a built call. `timeout` bounds the time to response headers.
    /// A non-2xx answer is read (bounded) and classified.
    pub async fn send(
        &self,
        provider: &Provider,
        call: &Call,
        timeout: Duration,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let uri = parse_uri(provider, &call.url)?;
        let mut req = Request::new(Full::new(call.body.clone()));
        *req.method_mut() = Method::POST;
        let h = req.headers_mut();
        h.reserve(call.headers.len() + 4);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            ACCEPT,
            HeaderValue::from_static(match (call.stream, provider.kind()) {
                (true, ProviderKind::Bedrock) => "application/vnd.amazon.eventstream",
                (true, _) => "text/event-stream",
                (false, _) => "application/json",
            }),
        );
        h.insert(USER_AGENT, AGENT);
        for (name, value) in &call.headers {
            h.insert(HeaderName::from_static(name), value.clone());
        }
        let issued = self
            .authenticate(h, provider, &Method::POST, &uri, &call.body)
            .await?;
        // A fetched token may be refused (revoked, or the clocks disagree on
        // its expiry): then one fresh token and one more try. Only calls
        // carrying such a token keep their headers for it.
        let again = issued.map(|generation| (generation, req.headers().clone(), uri.clone()));
        *req.uri_mut() = uri;
        let mut resp = self.execute(provider, req, timeout).await?;
        if resp.status() == http::StatusCode::UNAUTHORIZED
            && let (Some((generation, mut headers, uri)), Some(tokens)) = (again, &provider.tokens)
        {
            tokens.refused(generation);
            self.authenticate(&mut headers, provider, &Method::POST, &uri, &call.body)
                .await?;
            let mut req = Request::new(Full::new(call.body.clone()));
            *req.method_mut() = Method::POST;
            *req.uri_mut() = uri;
            *req.headers_mut() = headers;
            resp = self.execute(provider, req, timeout).await?;
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(read_error(provider, resp).await)
    }

    /// Forwards a provider-native request as-is (passthrough), with the
    /// stored credential. Any status comes back as a response.
    pub async fn forward(
        &self,
        provider: &Provider,
        method: Method,
        url: &str,
        mut headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<UpstreamResponse, UpstreamError> {
        if provider.kind() == ProviderKind::Anthropic && !headers.contains_key("anthropic-version")
        {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(super::ANTHROPIC_VERSION),
            );
        }
        headers.entry(USER_AGENT).or_insert(AGENT);
        let uri = parse_uri(provider, url)?;
        self.authenticate(&mut headers, provider, &method, &uri, &body)
            .await?;
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        self.execute(provider, req, timeout).await
    }

    /// Sends a credentialed tool call to `url` (already checked to lie
    /// under the tool's `base_url`); the tool's credential is added here.
    /// Any status comes back as a response.
    pub async fn tool(
        &self,
        tool: &crate::tools::Tool,
        method: Method,
        url: &str,
        mut headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<UpstreamResponse, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| "the tool's base_url and path do not form a valid URL".to_owned())?;
        headers.entry(USER_AGENT).or_insert(AGENT);
        if let Some((name, value)) = &tool.auth {
            headers.insert(name.clone(), value.clone());
        }
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        self.raw(req, timeout).await
    }

    /// POSTs JSON to a URL of the operator's (the trace collector) and
    /// returns the status, reading and dropping the answer.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: String,
        timeout: Duration,
    ) -> Result<u16, String> {
        let uri: Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(USER_AGENT, AGENT);
        for (k, v) in headers {
            h.insert(k.clone(), v.clone());
        }
        let work = async {
            let resp = self.http.request(req).await.map_err(|e| describe(&e))?;
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            Ok(status)
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    /// Sends a request of the gateway's own (a token endpoint's grant) as
    /// it is; any status comes back as a response.
    pub async fn raw(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<UpstreamResponse, String> {
        match tokio::time::timeout(timeout, self.http.request(req)).await {
            Err(_) => Err(format!(
                "no answer within {}",
                crate::config::fmt_duration(timeout)
            )),
            Ok(Err(e)) => Err(describe(&e)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Adds the provider's credential: its fixed header, a token from its
    /// cache (whose generation is returned), or a signature of the call
    /// (`method`, `uri`, the headers so far and `body`).
    async fn authenticate(
        &self,
        h: &mut HeaderMap,
        provider: &Provider,
        method: &Method,
        uri: &Uri,
        body: &[u8],
    ) -> Result<Option<u64>, UpstreamError> {
        if let Some(signer) = &provider.signer {
            signer
                .sign(self, provider.name(), method, uri, h, body)
                .await?;
            return Ok(None);
        }
        if let Some(tokens) = &provider.tokens {
            let issued = tokens.get(self).await?;
            h.insert(http::header::AUTHORIZATION, issued.header);
            return Ok(Some(issued.generation));
        }
        if let Some((name, value)) = &provider.auth {
            h.insert(name.clone(), value.clone());
        }
        Ok(None)
    }

    async fn execute(
        &self,
        provider: &Provider,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<UpstreamResponse, UpstreamError> {
        match tokio::time::timeout(timeout, self.http.request(req)).await {
            Err(_) => Err(UpstreamError::timeout(
                provider.name(),
                "response headers",
                timeout,
            )),
            Ok(Err(e)) => Err(UpstreamError::connect(provider.name(), &describe(&e))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

/// The URL a call goes to, built from configuration; one that does not
/// parse is the operator's mistake, said without the URL itself.
fn parse_uri(provider: &Provider, url: &str) -> Result<Uri, UpstreamError> {
    url.parse().map_err(|_| {
        UpstreamError::connect(
            provider.name(),
            "the provider's base_url and path do not form a valid URL",
        )
    })
}

/// Reads a failed answer's body (bounded) and classifies it.
pub async fn read_error(provider: &Provider, resp: UpstreamResponse) -> UpstreamError {
    let status = resp.status().as_u16();
    let (parts, mut body) = resp.into_parts();
    let mut text = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(chunk) = frame.data_ref() {
            text.extend_from_slice(chunk);
            if text.len() >= MAX_ERROR_BODY {
                text.truncate(MAX_ERROR_BODY);
                break;
            }
        }
    }
    classify(provider, status, &parts.headers, &text)
}

/// The header that carries `secret` for an adapter kind (`bearer`: the
/// secret is a bearer token, such as an Entra ID token for Azure), marked
/// sensitive (never printed by `Debug`, kept out of HPACK tables). Built
/// once per provider at start.
pub fn auth_header(
    kind: ProviderKind,
    secret: &str,
    bearer: bool,
) -> Option<(HeaderName, HeaderValue)> {
    let (name, text) = match kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
            (http::header::AUTHORIZATION, format!("Bearer {secret}"))
        }
        ProviderKind::Azure if bearer => (http::header::AUTHORIZATION, format!("Bearer {secret}")),
        ProviderKind::Azure => (HeaderName::from_static("api-key"), secret.to_owned()),
        // A Bedrock API key (access keys sign each call instead); Vertex's
        // tokens come from its cache, never from here.
        ProviderKind::Bedrock | ProviderKind::Vertex => {
            (http::header::AUTHORIZATION, format!("Bearer {secret}"))
        }
        ProviderKind::Anthropic => (HeaderName::from_static("x-api-key"), secret.to_owned()),
        ProviderKind::Gemini => (HeaderName::from_static("x-goog-api-key"), secret.to_owned()),
    };
    let mut value = HeaderValue::from_str(&text).ok()?;
    value.set_sensitive(true);
    Some((name, value))
}

/// A connection error in a few words, without the URL (which is the
/// operator's business, not the caller's).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    let detail = last.unwrap_or_else(|| "request failed".into());
    if e.is_connect() {
        format!("connection failed ({detail})")
    } else {
        detail
    }
}
