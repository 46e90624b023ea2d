//! Temporary AWS credentials: a web identity token exchanged at STS
//! (`AssumeRoleWithWebIdentity`, as on EKS with IRSA), a role assumed with
//! a profile's keys (`AssumeRole`, signed), a profile's
//! `credential_process`, or the container's credentials endpoint (ECS, EKS
//! Pod Identity). Cached until shortly
//! before they expire (five minutes, or half their life if that is
//! sooner), fetched once for however many calls wait for them.
//!
//! The token file and the container's authorization token are read at each
//! fetch: whoever provides them rotates them. Errors say the endpoint's
//! error code only, never a token or a key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;

use super::super::client::Client;
use super::super::errors::{ErrorClass, UpstreamError};
use super::super::sigv4::{self, Credentials};
use crate::config::Env;
use crate::config::bedrock::AwsAuth;

const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
const REFRESH_AHEAD: Duration = Duration::from_secs(300);
const MAX_ANSWER: usize = 64 * 1024;

/// Where temporary credentials come from.
pub(super) enum Source {
    WebIdentity {
        token_file: String,
        role_arn: String,
        session_name: String,
        sts: Uri,
    },
    AssumeRole {
        role_arn: String,
        session_name: String,
        sts: Uri,
        region: String,
        /// The source profile's keys, which sign the request.
        source: Credentials,
    },
    /// A command that prints credentials as JSON (`Version: 1`).
    Process { command: String },
    Container {
        url: Uri,
        /// The authorization token's value (from a variable) or file.
        token: Option<String>,
        token_file: Option<String>,
    },
}

/// Temporary credentials, cached.
pub(super) struct Cache {
    source: Source,
    current: Mutex<Option<(Arc<Credentials>, Instant)>>,
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.source {
            Source::WebIdentity { .. } => "web identity",
            Source::AssumeRole { .. } => "assumed role",
            Source::Process { .. } => "credential process",
            Source::Container { .. } => "container",
        };
        f.debug_struct("TemporaryCredentials")
            .field("source", &what)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// `None` for a source that is not temporary, or a URL that does not
    /// parse.
    pub(super) fn new(auth: &AwsAuth, env: &Env) -> Option<Cache> {
        let source = match auth {
            AwsAuth::WebIdentity {
                token_file,
                role_arn,
                session_name,
                sts_url,
            } => Source::WebIdentity {
                token_file: token_file.clone(),
                role_arn: role_arn.clone(),
                session_name: session_name.clone(),
                sts: format!("{}/", sts_url.trim_end_matches('/')).parse().ok()?,
            },
            AwsAuth::Container {
                url,
                token_env,
                token_file,
            } => Source::Container {
                url: url.parse().ok()?,
                token: token_env
                    .as_deref()
                    .and_then(|v| env.get(v))
                    .map(str::to_owned),
                token_file: token_file.clone(),
            },
            _ => return None,
        };
        Some(Cache::with_source(source))
    }

    pub(super) fn with_source(source: Source) -> Cache {
        Cache {
            source,
            current: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Credentials good for a call now.
    pub(super) async fn get(
        &self,
        client: &Client,
        provider: &str,
    ) -> Result<Arc<Credentials>, UpstreamError> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _one = self.fetching.lock().await;
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let (creds, life) = self.fetch(client).await.map_err(|m| UpstreamError {
            provider: provider.to_owned(),
            class: ErrorClass::Auth,
            status: 502,
            message: format!("provider {provider}: no AWS credentials: {m}"),
            provider_code: None,
            retry_after: None,
        })?;
        let creds = Arc::new(creds);
        let refresh_at = Instant::now() + life - REFRESH_AHEAD.min(life / 2);
        *self.lock() = Some((creds.clone(), refresh_at));
        Ok(creds)
    }

    /// What of these credentials an upstream must never echo to a caller:
    /// the last fetched secret key and session token, and what fetches
    /// them (an assumed role's source keys, the container's token). Read
    /// when an upstream error is scrubbed, so keys fetched since start-up
    /// are covered.
    pub(super) fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((c, _)) = self.lock().as_ref() {
            out.push(c.secret_access_key.clone());
            out.extend(c.session_token.clone());
        }
        match &self.source {
            Source::AssumeRole { source, .. } => {
                out.push(source.secret_access_key.clone());
                out.extend(source.session_token.clone());
            }
            Source::Container { token, .. } => out.extend(token.clone()),
            Source::WebIdentity { .. } | Source::Process { .. } => {}
        }
        out
    }

    fn fresh(&self) -> Option<Arc<Credentials>> {
        let current = self.lock();
        let (c, refresh_at) = current.as_ref()?;
        (Instant::now() < *refresh_at).then(|| c.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Arc<Credentials>, Instant)>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One fetch: the credentials and how long they live.
    async fn fetch(&self, client: &Client) -> Result<(Credentials, Duration), String> {
        if let Source::Process { command } = &self.source {
            let (creds, expiration) = run_process(command).await?;
            return Ok((creds, life_of(expiration.as_deref())));
        }
        let req = match &self.source {
            Source::WebIdentity {
                token_file,
                role_arn,
                session_name,
                sts,
            } => {
                let token = std::fs::read_to_string(token_file).map_err(|e| {
                    format!("the web identity token file cannot be read ({})", e.kind())
                })?;
                let form = format!(
                    "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
                    sigv4::encode_path_segment(role_arn),
                    sigv4::encode_path_segment(session_name),
                    sigv4::encode_path_segment(token.trim())
                );
                let mut req = Request::new(Full::new(Bytes::from(form)));
                *req.method_mut() = Method::POST;
                *req.uri_mut() = sts.clone();
                req.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                req
            }
            Source::AssumeRole {
                role_arn,
                session_name,
                sts,
                region,
                source,
            } => {
                let form = format!(
                    "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={}",
                    sigv4::encode_path_segment(role_arn),
                    sigv4::encode_path_segment(session_name)
                );
                let mut req = Request::new(Full::new(Bytes::from(form.clone())));
                *req.method_mut() = Method::POST;
                *req.uri_mut() = sts.clone();
                req.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                sigv4::sign(
                    &Method::POST,
                    sts,
                    req.headers_mut(),
                    form.as_bytes(),
                    source,
                    region,
                    "sts",
                    crate::clock::unix_s(),
                    sigv4::Options::default(),
                )
                .map_err(|e| format!("the AssumeRole request could not be signed: {e}"))?;
                req
            }
            Source::Process { .. } => return Err("a credential process is run, not asked".into()),
            Source::Container {
                url,
                token,
                token_file,
            } => {
                let mut req = Request::new(Full::new(Bytes::new()));
                *req.uri_mut() = url.clone();
                let token = match (token_file, token) {
                    (Some(f), _) => Some(std::fs::read_to_string(f).map_err(|e| {
                        format!("the container token file cannot be read ({})", e.kind())
                    })?),
                    (None, t) => t.clone(),
                };
                if let Some(t) = token {
                    let mut v = HeaderValue::from_str(t.trim())
                        .map_err(|_| "the container token is not a valid header value")?;
                    v.set_sensitive(true);
                    req.headers_mut().insert(AUTHORIZATION, v);
                }
                req
            }
        };
        let mut req = req;
        // Not signed (nor needed to be): added after an AssumeRole's
        // signature.
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let resp = client.raw(req, FETCH_TIMEOUT).await?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|_| format!("the answer broke off (HTTP {status})"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        let (creds, expiration) = match &self.source {
            Source::WebIdentity { .. } | Source::AssumeRole { .. } => {
                if !status.is_success() {
                    let code = tag(&text, "Code").filter(|c| plain(c));
                    return Err(format!(
                        "STS refused: {} (HTTP {status})",
                        code.unwrap_or("no error code")
                    ));
                }
                sts_credentials(&text).ok_or("STS's answer holds no credentials")?
            }
            Source::Process { .. } => return Err("a credential process is run, not asked".into()),
            Source::Container { .. } => {
                if !status.is_success() {
                    return Err(format!("the container endpoint refused (HTTP {status})"));
                }
                container_credentials(&body)
                    .ok_or("the container endpoint's answer holds no credentials")?
            }
        };
        Ok((creds, life_of(expiration.as_deref())))
    }
}

/// How long credentials expiring at `expiration` (ISO 8601) live from now;
/// an hour when it is not said.
fn life_of(expiration: Option<&str>) -> Duration {
    let now = crate::clock::unix_s();
    let secs = expiration
        .and_then(unix_of)
        .map_or(3600, |t| t.saturating_sub(now))
        .clamp(1, 12 * 3600);
    Duration::from_secs(secs)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessAnswer {
    version: u32,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expiration: Option<String>,
}

/// Runs a `credential_process` (through `sh -c`, as the SDKs do on Unix)
/// and reads the credentials it prints. Its error output is not shown: it
/// may hold what it was handling.
async fn run_process(command: &str) -> Result<(Credentials, Option<String>), String> {
    let command = command.to_owned();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .stdin(std::process::Stdio::null())
            .output()
    });
    let out = tokio::time::timeout(FETCH_TIMEOUT, run)
        .await
        .map_err(|_| "the credential process did not finish in time".to_owned())?
        .map_err(|_| "the credential process could not be waited for".to_owned())?
        .map_err(|e| format!("the credential process could not start ({})", e.kind()))?;
    if !out.status.success() {
        return Err(format!("the credential process failed ({})", out.status));
    }
    let a: ProcessAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| "the credential process printed no credentials".to_owned())?;
    if a.version != 1 {
        return Err(format!(
            "the credential process printed Version {}",
            a.version
        ));
    }
    Ok((
        Credentials {
            access_key_id: a.access_key_id,
            secret_access_key: a.secret_access_key,
            session_token: a.session_token,
        },
        a.expiration,
    ))
}

/// The text of the first `<name>` element (STS answers in XML, with no
/// attributes or nesting where these are read).
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim())
}

/// An error code fit to show: short, without markup.
fn plain(s: &str) -> bool {
    s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

/// `AssumeRoleWithWebIdentityResult/Credentials`: the keys and when they
/// expire.
fn sts_credentials(xml: &str) -> Option<(Credentials, Option<String>)> {
    let c = tag(xml, "Credentials")?;
    Some((
        Credentials {
            access_key_id: tag(c, "AccessKeyId")?.to_owned(),
            secret_access_key: tag(c, "SecretAccessKey")?.to_owned(),
            session_token: tag(c, "SessionToken").map(str::to_owned),
        },
        tag(c, "Expiration").map(str::to_owned),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerAnswer {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    expiration: Option<String>,
}

/// The container endpoint's JSON: the keys and when they expire.
fn container_credentials(body: &[u8]) -> Option<(Credentials, Option<String>)> {
    let a: ContainerAnswer = serde_json::from_slice(body).ok()?;
    Some((
        Credentials {
            access_key_id: a.access_key_id,
            secret_access_key: a.secret_access_key,
            session_token: a.token,
        },
        a.expiration,
    ))
}

/// Seconds since the epoch of `2026-12-06T03:00:00Z` (fractions allowed).
fn unix_of(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days = crate::clock::days_from_civil(y, m, d);
    u64::try_from(days * 86_400 + h * 3600 + min * 60 + sec).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(secret: &str, token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: secret.into(),
            session_token: token.map(str::to_owned),
        }
    }

    #[test]
    fn the_secrets_to_scrub_are_the_ones_held_now_and_the_sources() {
        let cache = Cache::with_source(Source::AssumeRole {
            role_arn: "arn:aws:iam::1:role/r".into(),
            session_name: "s".into(),
            sts: Uri::from_static("http://127.0.0.1/"),
            region: "us-east-1".into(),
            source: creds("source-secret", Some("source-token")),
        });
        assert_eq!(cache.secrets(), ["source-secret", "source-token"]);
        *cache.lock() = Some((Arc::new(creds("s1", Some("t1"))), Instant::now()));
        *cache.lock() = Some((Arc::new(creds("s2", Some("t2"))), Instant::now()));
        assert_eq!(
            cache.secrets(),
            ["s2", "t2", "source-secret", "source-token"],
            "the keys fetched last, even once stale"
        );
        let container = Cache::with_source(Source::Container {
            url: Uri::from_static("http://127.0.0.1/creds"),
            token: Some("container-token".into()),
            token_file: None,
        });
        assert_eq!(container.secrets(), ["container-token"]);
    }

    #[test]
    fn sts_answers_are_read() {
        let xml = "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>s3cr3t</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>2026-12-06T03:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        let (c, exp) = sts_credentials(xml).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("ASIAEXAMPLE", Some("tok"))
        );
        assert_eq!(exp.as_deref().and_then(unix_of), Some(1_796_526_000));
        let err = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>token: eyJhbGc...</Message></Error></ErrorResponse>";
        assert_eq!(
            tag(err, "Code").filter(|c| plain(c)),
            Some("InvalidIdentityToken")
        );
        assert_eq!(unix_of("1970-01-01T00:00:01.500Z"), Some(1));
        assert_eq!(unix_of("not a time"), None);
    }

    #[test]
    fn container_answers_are_read() {
        let body = br#"{"AccessKeyId":"ASIAC","SecretAccessKey":"k","Token":"t","Expiration":"2026-12-06T03:00:00Z","RoleArn":"arn:aws:iam::1:role/x"}"#;
        let (c, exp) = container_credentials(body).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), exp.as_deref()),
            ("ASIAC", Some("2026-12-06T03:00:00Z"))
        );
        assert!(container_credentials(b"{}").is_none());
    }
}
