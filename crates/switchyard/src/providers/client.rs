//! The one HTTP client that calls upstreams.
//!
//! Pooled keep-alive connections (HTTP/2 where the upstream offers it over
//! TLS), `TCP_NODELAY`, no redirects followed (a redirect could take a
//! prompt and a credential somewhere the configuration never named), no
//! proxy from the environment. The credential is added here, after the
//! destination is fixed, and nowhere else.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};

use super::errors::{UpstreamError, classify};
use super::{Call, Provider};
use crate::config::ProviderKind;

/// Error bodies past this size are cut before classification.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    pub fn new() -> Result<Client, reqwest::Error> {
        // reqwest is built without a bundled crypto provider; ours is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .http2_adaptive_window(true)
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client { http })
    }

    /// Sends a built call. `timeout` bounds the time to response headers.
    /// A non-2xx answer is read (bounded) and classified.
    pub async fn send(
        &self,
        provider: &Provider,
        call: &Call,
        timeout: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut rb = self
            .http
            .post(&call.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(call.body.clone());
        rb = rb.header(
            http::header::ACCEPT,
            if call.stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        );
        for (name, value) in &call.headers {
            rb = rb.header(*name, value.clone());
        }
        rb = authenticate(rb, provider);
        let resp = self.execute(provider, rb, timeout).await?;
        let status = resp.status();
        if status.is_success() {
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
        headers: HeaderMap,
        body: bytes::Bytes,
        timeout: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        let needs_version = provider.kind() == ProviderKind::Anthropic
            && !headers.contains_key("anthropic-version");
        let mut rb = self.http.request(method, url).headers(headers).body(body);
        if needs_version {
            rb = rb.header("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }
        rb = authenticate(rb, provider);
        self.execute(provider, rb, timeout).await
    }

    async fn execute(
        &self,
        provider: &Provider,
        rb: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        match tokio::time::timeout(timeout, rb.send()).await {
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

/// Reads a failed answer's body (bounded) and classifies it.
pub async fn read_error(provider: &Provider, mut resp: reqwest::Response) -> UpstreamError {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            body.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    classify(provider, status, &headers, &body)
}

fn authenticate(rb: reqwest::RequestBuilder, provider: &Provider) -> reqwest::RequestBuilder {
    let Some(secret) = &provider.secret else {
        return rb;
    };
    let Ok(mut value) = HeaderValue::from_str(secret.expose()) else {
        return rb;
    };
    value.set_sensitive(true);
    match provider.kind() {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
            let Ok(mut bearer) = HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
            else {
                return rb;
            };
            bearer.set_sensitive(true);
            rb.header(http::header::AUTHORIZATION, bearer)
        }
        ProviderKind::Anthropic => rb.header("x-api-key", value),
        ProviderKind::Gemini => rb.header("x-goog-api-key", value),
    }
}

/// A connection error in a few words, without the URL (which is the
/// operator's business, not the caller's).
fn describe(e: &reqwest::Error) -> String {
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
