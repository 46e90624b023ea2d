//! AWS Signature Version 4 for requests signed in headers (Bedrock and every
//! other AWS service except S3), written against AWS's published rules and
//! test suite so the gateway needs no AWS SDK.
//!
//! [`sign`] adds `x-amz-date`, `x-amz-security-token` (temporary credentials
//! only), optionally `x-amz-content-sha256`, and `authorization` to a request
//! whose other headers are final. Every header in the map is signed, and so is
//! `host`; a header added after signing is simply not covered by it.
//!
//! # Paths are encoded twice
//!
//! The canonical URI is the path *as sent on the wire*, each segment
//! URI-encoded once more. That is the rule for every service but S3, and the
//! one AWS's servers check. A Bedrock model id such as
//! `anthropic.claude-3-5-sonnet-20240620-v1:0` is one path segment, so:
//!
//! | where            | holds                                                           |
//! | ---------------- | --------------------------------------------------------------- |
//! | the model id     | `anthropic.claude-3-5-sonnet-20240620-v1:0`                     |
//! | the request path | `/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse`   |
//! | canonical URI    | `/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse` |
//!
//! Callers build the path with [`encode_path_segment`]; [`sign`] does the
//! second encoding. Sending the id raw (`v1:0`) is the classic cause of
//! Bedrock's 403 "signature does not match": client and service then disagree
//! on the canonical URI.
//!
//! The path is also normalised as the service does it: empty and `.` segments
//! dropped, `..` resolved (see [`Options::normalize_path`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use sha2::{Digest, Sha256};

/// AWS credentials. Only the access key id shows in `Debug`: the secret and
/// the session token are redacted, so logging a provider config leaks neither.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Present for temporary credentials (STS, SSO, instance roles); sent as
    /// `x-amz-security-token` and signed.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &Redacted)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| Redacted),
            )
            .finish()
    }
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The choices SigV4 leaves to the signer. `Default` is what AWS's SDKs do
/// for services other than S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Also send (and sign) `x-amz-content-sha256`, the hex SHA-256 of the
    /// body. S3 requires it; Bedrock accepts it but does not need it, and
    /// botocore does not send it. Default: off.
    pub content_sha256_header: bool,
    /// Normalise the path in the canonical URI: drop empty and `.` segments,
    /// let `..` remove the segment before it, keep a trailing `/`. Services
    /// other than S3 normalise before checking, so the default is on; off
    /// signs the path exactly as sent.
    pub normalize_path: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            content_sha256_header: false,
            normalize_path: true,
        }
    }
}

/// Why a request could not be signed. None of these carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The caller set a header that the signer owns (`authorization`,
    /// `x-amz-date`, `x-amz-security-token`, `x-amz-content-sha256`): a
    /// stale or second value would go out beside the signed one.
    ReservedHeader(HeaderName),
    /// No `host` header, and the URI has no authority to derive one from.
    MissingHost,
    /// A header value is not UTF-8, so its canonical form is undefined.
    NonUtf8HeaderValue(HeaderName),
    /// The access key id or session token cannot go in a header value (it
    /// holds a control character); names the field, never its value.
    InvalidCredential(&'static str),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::ReservedHeader(name) => {
                write!(
                    f,
                    "header `{name}` is set by the SigV4 signer, not the caller"
                )
            }
            SignError::MissingHost => {
                f.write_str("request has neither a host header nor a URI authority")
            }
            SignError::NonUtf8HeaderValue(name) => {
                write!(f, "header `{name}` has a value that is not UTF-8")
            }
            SignError::InvalidCredential(field) => {
                write!(f, "the AWS {field} is not a valid header value")
            }
        }
    }
}

impl std::error::Error for SignError {}

/// Sign a request for `service` in `region` at `unix_seconds`, adding the
/// SigV4 headers to `headers`. Call it last, once every other header is
/// final, with the exact body that will be sent; the path in `uri` must be
/// as sent on the wire (see the module docs on double encoding).
///
/// `host` is signed from the header map if present, else from the URI
/// authority (port dropped when it is the scheme's default, as hyper writes
/// it); it is not added to `headers`, since the HTTP client derives the same
/// value (HTTP/1 `Host`, HTTP/2 `:authority`).
///
/// On error `headers` is left unchanged.
#[expect(
    clippy::too_many_arguments,
    reason = "each argument is a separate SigV4 input; a struct would only rename them"
)]
pub fn sign(
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    service: &str,
    unix_seconds: u64,
    options: Options,
) -> Result<(), SignError> {
    let host = if headers.contains_key(HOST) {
        None
    } else {
        Some(host_from_uri(uri)?)
    };
    let request = Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        host: host.as_deref(),
        headers,
        body,
    };
    let scope = Scope {
        time: Timestamp::from_unix(unix_seconds),
        region,
        service,
    };
    for (name, value) in request.sign(creds, &scope, options)? {
        headers.insert(name, value);
    }
    Ok(())
}

/// Percent-encode one path segment for the request path: everything but the
/// unreserved characters `A-Z a-z 0-9 - . _ ~` (so `:` becomes `%3A` and `/`
/// becomes `%2F`). Build a Bedrock path with it, e.g.
/// `format!("/model/{}/converse", encode_path_segment(model_id))`.
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_uri_encoded(&mut out, s.as_bytes());
    out
}

/// Headers the signer writes; a caller's copy is refused.
const RESERVED: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The request as SigV4 sees it. `sign` fills it from a `Uri`; the tests
/// also fill it directly, for paths an `http::Uri` cannot hold.
struct Request<'a> {
    method: &'a str,
    /// As sent on the wire (already percent-encoded once).
    path: &'a str,
    /// Without the `?`; empty when there is none.
    query: &'a str,
    /// Set when `headers` has no `host`: the value the client will send.
    host: Option<&'a str>,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// Where and when the signature is valid: the credential scope.
struct Scope<'a> {
    time: Timestamp,
    region: &'a str,
    service: &'a str,
}

impl Scope<'_> {
    /// `20150830/us-east-1/service/aws4_request`
    fn credential_scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.time.date, self.region, self.service
        )
    }
}

/// The canonical request, and the `SignedHeaders` list it ends up naming.
struct CanonicalRequest {
    text: String,
    signed_headers: String,
}

impl Request<'_> {
    /// The headers to add: the `x-amz-*` ones, then `authorization`.
    fn sign(
        &self,
        creds: &Credentials,
        scope: &Scope<'_>,
        options: Options,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
        refuse_reserved(self.headers)?;
        let payload_hash = hex(&Sha256::digest(self.body));
        let mut added = amz_headers(creds, &scope.time, &payload_hash, options)?;
        let canonical = self.canonical_request(&added, &payload_hash, options)?;
        let string_to_sign = string_to_sign(scope, &canonical.text);
        let signature = signature(&creds.secret_access_key, scope, &string_to_sign);
        let authorization = authorization(creds, scope, &canonical.signed_headers, &signature)?;
        added.push((AUTHORIZATION, authorization));
        Ok(added)
    }

    /// Method, canonical URI, canonical query, canonical headers, signed
    /// header names and payload hash, one per line.
    fn canonical_request(
        &self,
        added: &[(HeaderName, HeaderValue)],
        payload_hash: &str,
        options: Options,
    ) -> Result<CanonicalRequest, SignError> {
        let headers = self.headers_to_sign(added)?;
        let signed_headers = signed_header_names(&headers);
        let text = [
            self.method,
            &canonical_uri(self.path, options.normalize_path),
            &canonical_query(self.query),
            &canonical_headers(&headers),
            &signed_headers,
            payload_hash,
        ]
        .join("\n");
        Ok(CanonicalRequest {
            text,
            signed_headers,
        })
    }

    /// Every header to sign, by lower-case name (sorted, as the canonical
    /// request lists them), each with its values in the order sent.
    fn headers_to_sign<'a>(
        &'a self,
        added: &'a [(HeaderName, HeaderValue)],
    ) -> Result<BTreeMap<&'a str, Vec<&'a str>>, SignError> {
        let mut signed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, value) in self.headers.iter().chain(added.iter().map(|(n, v)| (n, v))) {
            let value = std::str::from_utf8(value.as_bytes())
                .map_err(|_| SignError::NonUtf8HeaderValue(name.clone()))?;
            signed.entry(name.as_str()).or_default().push(value);
        }
        if let Some(host) = self.host {
            signed.insert("host", vec![host]);
        }
        Ok(signed)
    }
}

/// `AWS4-HMAC-SHA256`, the time, the credential scope and the hash of the
/// canonical request, one per line.
fn string_to_sign(scope: &Scope<'_>, canonical_request: &str) -> String {
    [
        ALGORITHM,
        &scope.time.date_time,
        &scope.credential_scope(),
        &hex(&Sha256::digest(canonical_request.as_bytes())),
    ]
    .join("\n")
}

/// The hex HMAC of the string to sign under the derived signing key.
fn signature(secret: &str, scope: &Scope<'_>, string_to_sign: &str) -> String {
    hex(&hmac_sha256(
        &signing_key(secret, scope),
        string_to_sign.as_bytes(),
    ))
}

fn authorization(
    creds: &Credentials,
    scope: &Scope<'_>,
    signed_headers: &str,
    signature: &str,
) -> Result<HeaderValue, SignError> {
    let value = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id,
        scope.credential_scope(),
    );
    let mut value =
        HeaderValue::try_from(value).map_err(|_| SignError::InvalidCredential("access key id"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn refuse_reserved(headers: &HeaderMap) -> Result<(), SignError> {
    match RESERVED.iter().find(|name| headers.contains_key(**name)) {
        Some(&name) => Err(SignError::ReservedHeader(HeaderName::from_static(name))),
        None => Ok(()),
    }
}

/// The `x-amz-*` headers that are signed along with the caller's.
fn amz_headers(
    creds: &Credentials,
    time: &Timestamp,
    payload_hash: &str,
    options: Options,
) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
    // Digits and letters only, always a valid header value.
    let ascii =
        |s: &str| HeaderValue::try_from(s).expect("hex digits and a date are valid header values");
    let mut headers = vec![(
        HeaderName::from_static("x-amz-date"),
        ascii(&time.date_time),
    )];
    if options.content_sha256_header {
        headers.push((
            HeaderName::from_static("x-amz-content-sha256"),
            ascii(payload_hash),
        ));
    }
    if let Some(token) = &creds.session_token {
        let mut value = HeaderValue::try_from(token.as_str())
            .map_err(|_| SignError::InvalidCredential("session token"))?;
        value.set_sensitive(true);
        headers.push((HeaderName::from_static("x-amz-security-token"), value));
    }
    Ok(headers)
}

/// The `host` value an HTTP client sends for `uri`: the host, plus the port
/// unless it is the scheme's default (hyper-util's rule, so they agree).
fn host_from_uri(uri: &Uri) -> Result<String, SignError> {
    let host = uri.host().ok_or(SignError::MissingHost)?;
    let default_port = match uri.scheme_str() {
        Some("https" | "wss") => 443,
        _ => 80,
    };
    Ok(match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    })
}

/// The canonical URI: the (optionally normalised) wire path with each
/// segment URI-encoded again, so `%3A` becomes `%253A`.
fn canonical_uri(path: &str, normalize: bool) -> String {
    let path: Cow<'_, str> = if path.is_empty() {
        Cow::Borrowed("/")
    } else if normalize {
        Cow::Owned(normalize_path(path))
    } else {
        Cow::Borrowed(path)
    };
    let mut out = String::with_capacity(path.len() + 16);
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        push_uri_encoded(&mut out, segment.as_bytes());
    }
    out
}

/// Remove empty and `.` segments and resolve `..`, keeping the leading `/`
/// and a trailing one: `//a/./b/../c/` becomes `/a/c/`. This is what AWS's
/// reference signer (aws-c-auth) and botocore do for non-S3 services.
fn normalize_path(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            _ => kept.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    out.push('/');
    out.push_str(&kept.join("/"));
    if path.ends_with('/') && !kept.is_empty() {
        out.push('/');
    }
    out
}

/// The canonical query: each name and value percent-decoded, then encoded
/// the SigV4 way (so a wire `%e1` and a raw byte both become `%E1`), pairs
/// sorted by name then value, and `=` present even when the value is empty.
///
/// A `+` is kept as a literal plus (`%2B`), not read as a space: write
/// spaces as `%20` in query strings to be signed.
fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (reencode(name), reencode(value))
        })
        .collect();
    params.sort_unstable();
    let pairs: Vec<String> = params
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    pairs.join("&")
}

fn reencode(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    push_uri_encoded(&mut out, &percent_decode(component));
    out
}

/// Decode `%XX` escapes; a `%` not followed by two hex digits stays as is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex_value(*hi).zip(hex_value(*lo)),
            _ => None,
        };
        if let Some((hi, lo)) = escaped {
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// `name:value\n` per header, values trimmed, inner runs of spaces and tabs
/// collapsed to one space, repeated headers joined with `,` in sent order.
/// The trailing newline is part of the block; `join` adds the blank line.
fn canonical_headers(headers: &BTreeMap<&str, Vec<&str>>) -> String {
    let mut out = String::new();
    for (name, values) in headers {
        out.push_str(name);
        out.push(':');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_trimmed_value(&mut out, value);
        }
        out.push('\n');
    }
    out
}

fn push_trimmed_value(out: &mut String, value: &str) {
    for (i, word) in value
        .split([' ', '\t'])
        .filter(|word| !word.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// `content-type;host;x-amz-date`: the names, sorted, `;`-separated.
fn signed_header_names(headers: &BTreeMap<&str, Vec<&str>>) -> String {
    headers.keys().copied().collect::<Vec<_>>().join(";")
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
/// "aws4_request"): a key bound to one day, region and service, so a leaked
/// signature says nothing about the secret.
fn signing_key(secret: &str, scope: &Scope<'_>) -> [u8; 32] {
    let k_date = hmac_sha256(
        format!("AWS4{secret}").as_bytes(),
        scope.time.date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, scope.region.as_bytes());
    let k_service = hmac_sha256(&k_region, scope.service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex, as SigV4 writes hashes and signatures.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Append `bytes` URI-encoded the SigV4 way: unreserved characters as they
/// are, every other byte as `%XX` with upper-case hex.
fn push_uri_encoded(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
    }
}

/// A UTC instant in SigV4's two spellings.
struct Timestamp {
    /// `20150830`, the credential scope's date.
    date: String,
    /// `20150830T123600Z`, the `x-amz-date` value.
    date_time: String,
}

impl Timestamp {
    fn from_unix(unix_seconds: u64) -> Timestamp {
        let (year, month, day) = civil_from_days(unix_seconds / 86_400);
        let secs = unix_seconds % 86_400;
        let date = format!("{year:04}{month:02}{day:02}");
        let date_time = format!(
            "{date}T{:02}{:02}{:02}Z",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        );
        Timestamp { date, date_time }
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// Counts from 0000-03-01 instead, so the leap day is the last day of its
/// year, and splits the count into 400-year eras of 146 097 days, within
/// which the leap rule is a fixed pattern; months then start on fixed
/// offsets (153 days per 5 months from March). Hinnant's `civil_from_days`,
/// restricted to non-negative days since `unix_seconds` is unsigned.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    const DAYS_PER_ERA: u64 = 146_097;
    // From 0000-03-01 to 1970-01-01.
    let shifted = days + 719_468;
    let era = shifted / DAYS_PER_ERA;
    let day_of_era = shifted % DAYS_PER_ERA;
    // One fewer day every 4 years, one more every 100, one fewer at 400.
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524
        - day_of_era / (DAYS_PER_ERA - 1))
        / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // 0 = March ... 11 = February.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let (month, year_offset) = match month_from_march {
        0..=9 => (month_from_march + 3, 0),
        _ => (month_from_march - 9, 1),
    };
    (era * 400 + year_of_era + year_offset, month, day)
}

#[cfg(test)]
mod tests;
