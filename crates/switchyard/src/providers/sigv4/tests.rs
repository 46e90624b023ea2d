use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderValue, Method, Uri};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::*;

// ---------------------------------------------------------------------------
// AWS's SigV4 test suite
// ---------------------------------------------------------------------------

/// The header-signing cases of AWS's SigV4 test suite, copied from
/// awslabs/aws-c-auth `tests/aws-signing-test-suite/v4/` (see README.md there).
const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/v4");

/// Every case of the suite applies (none is S3, presigned or SigV4a), so a
/// lower count means the test data went missing.
const SUITE_CASES: usize = 38;

/// How a case's headers were produced.
#[derive(Debug, PartialEq)]
enum Route {
    /// Through the public `sign`, from an `http::Uri`.
    Sign,
    /// Through `Request::sign` with the raw path: the request line holds a
    /// character (a space) that no `http::Uri` can.
    RawPath,
}

#[test]
fn aws_sigv4_test_suite() {
    let mut by_route: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    for dir in suite_cases() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        match check_case(&dir) {
            Ok(route) => by_route.entry(format!("{route:?}")).or_default().push(name),
            Err(why) => failures.push(format!("{name}: {why}")),
        }
    }
    let passed: usize = by_route.values().map(Vec::len).sum();
    println!("SigV4 suite: {passed} passed, {} failed", failures.len());
    for (route, names) in &by_route {
        println!("  {route}: {} ({})", names.len(), names.join(", "));
    }
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    assert_eq!(passed, SUITE_CASES, "cases missing from {SUITE}");
}

fn suite_cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(SUITE)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Check one case: the canonical request, string to sign and signature
/// against the suite's files, then every header of the signed request.
fn check_case(dir: &Path) -> Result<Route, String> {
    let read = |file: &str| fs::read_to_string(dir.join(file)).unwrap();
    let context: Value = serde_json::from_str(&read("context.json")).unwrap();
    let raw = RawRequest::parse(&read("request.txt"));

    // `omit_session_token` (post-sts-header-after): the token is sent but not
    // signed, as STS once required. That is signing without it and adding it
    // afterwards, which is what we do here; `sign` itself always signs it.
    let omit_token = context["omit_session_token"].as_bool().unwrap_or(false);
    let token = context["credentials"]["token"].as_str();
    let creds = Credentials {
        access_key_id: context["credentials"]["access_key_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        secret_access_key: context["credentials"]["secret_access_key"]
            .as_str()
            .unwrap()
            .to_owned(),
        session_token: token.filter(|_| !omit_token).map(str::to_owned),
    };
    let options = Options {
        content_sha256_header: context["sign_body"].as_bool().unwrap(),
        normalize_path: context["normalize"].as_bool().unwrap(),
    };
    let unix_seconds = unix_from_iso(context["timestamp"].as_str().unwrap());
    let region = context["region"].as_str().unwrap();
    let service = context["service"].as_str().unwrap();
    let scope = Scope {
        time: Timestamp::from_unix(unix_seconds),
        region,
        service,
    };

    let headers = raw.header_map();
    let (path, query) = raw.target.split_once('?').unwrap_or((&raw.target, ""));
    let request = Request {
        method: &raw.method,
        path,
        query,
        host: None,
        headers: &headers,
        body: &raw.body,
    };

    let payload_hash = hex(&Sha256::digest(&raw.body));
    let added =
        amz_headers(&creds, &scope.time, &payload_hash, options).map_err(|e| e.to_string())?;
    let canonical = request
        .canonical_request(&added, &payload_hash, options)
        .map_err(|e| e.to_string())?;
    same(
        "canonical request",
        &canonical.text,
        &read("header-canonical-request.txt"),
    )?;
    let string_to_sign = string_to_sign(&scope, &canonical.text);
    same(
        "string to sign",
        &string_to_sign,
        &read("header-string-to-sign.txt"),
    )?;
    let signature = signature(&creds.secret_access_key, &scope, &string_to_sign);
    same("signature", &signature, &read("header-signature.txt"))?;

    let mut signed = headers.clone();
    let route = match raw.target.parse::<Uri>() {
        Ok(uri) => {
            let method = Method::from_bytes(raw.method.as_bytes()).unwrap();
            sign(
                &method,
                &uri,
                &mut signed,
                &raw.body,
                &creds,
                region,
                service,
                unix_seconds,
                options,
            )
            .map_err(|e| e.to_string())?;
            Route::Sign
        }
        Err(_) => {
            signed.extend(
                request
                    .sign(&creds, &scope, options)
                    .map_err(|e| e.to_string())?,
            );
            Route::RawPath
        }
    };
    if let (true, Some(token)) = (omit_token, token) {
        signed.insert(
            "x-amz-security-token",
            HeaderValue::from_str(token).unwrap(),
        );
    }
    let want = RawRequest::parse(&read("header-signed-request.txt")).header_map();
    same(
        "signed headers",
        &format!("{:#?}", sorted(&signed)),
        &format!("{:#?}", sorted(&want)),
    )?;
    Ok(route)
}

fn same(what: &str, got: &str, want: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what} differs\n--- got\n{got}\n--- want\n{want}"))
    }
}

/// A header map as name -> values in order, for comparing two maps.
fn sorted(headers: &HeaderMap) -> BTreeMap<&str, Vec<&[u8]>> {
    let mut out: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for (name, value) in headers {
        out.entry(name.as_str()).or_default().push(value.as_bytes());
    }
    out
}

/// An HTTP/1.1 request as the suite writes it.
struct RawRequest {
    method: String,
    /// The request target as written, which may hold a raw space or UTF-8.
    target: String,
    /// Names as written; values untrimmed, so the signer's trimming is tested.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawRequest {
    fn parse(text: &str) -> RawRequest {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap();
        let (method, rest) = request_line.split_once(' ').unwrap();
        // The target may hold spaces: the version is after the last one.
        let (target, _version) = rest.rsplit_once(' ').unwrap();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // obs-fold: a continuation line, which RFC 9112 replaces by a
                // space. Its own leading spaces are kept, for the signer to
                // collapse.
                let (_, value) = headers.last_mut().unwrap();
                value.push(' ');
                value.push_str(line);
            } else {
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.to_owned(), value.to_owned()));
            }
        }
        RawRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    /// The headers as a client would hold them: names lower-cased, repeats
    /// appended in order.
    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }
}

/// `2015-08-30T12:36:00Z` to unix seconds, through `days_from_civil`.
fn unix_from_iso(iso: &str) -> u64 {
    let number = |range: std::ops::Range<usize>| iso[range].parse::<u64>().unwrap();
    assert_eq!(iso.len(), 20, "{iso}");
    let days = days_from_civil(number(0..4), number(5..7), number(8..10));
    days * 86_400 + number(11..13) * 3600 + number(14..16) * 60 + number(17..19)
}

/// The inverse of `civil_from_days` (Hinnant's `days_from_civil`), written
/// independently of it so the round trip below checks both.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    // Years start in March, so January and February count in the year before.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

// ---------------------------------------------------------------------------
// botocore: the same requests signed by botocore 1.44.18
// (tools/botocore_crosscheck.py prints these Authorization headers).
// ---------------------------------------------------------------------------

/// 2024-11-22T10:30:00Z
const BOTOCORE_TIME: u64 = 1_732_271_400;
const MODEL_ID: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const SESSION_TOKEN: &str =
    "IQoJb3JpZ2luX2VjEXAMPLE/SESSION+TOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==";
const CONVERSE_BODY: &[u8] =
    br#"{"messages":[{"role":"user","content":[{"text":"Hello, Claude"}]}],"inferenceConfig":{"maxTokens":256}}"#;

fn example_creds(session_token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".to_owned(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
        session_token: session_token.map(str::to_owned),
    }
}

fn converse_uri() -> Uri {
    let path = format!("/model/{}/converse", encode_path_segment(MODEL_ID));
    format!("https://bedrock-runtime.us-east-1.amazonaws.com{path}")
        .parse()
        .unwrap()
}

/// Sign a Converse call as the Bedrock adapter would; returns the headers.
fn sign_converse(session_token: Option<&str>, options: Options) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let creds = example_creds(session_token);
    let uri = converse_uri();
    sign(
        &Method::POST,
        &uri,
        &mut headers,
        CONVERSE_BODY,
        &creds,
        "us-east-1",
        "bedrock",
        BOTOCORE_TIME,
        options,
    )
    .unwrap();
    headers
}

fn sign_get(uri: &str, session_token: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let creds = example_creds(session_token);
    let uri: Uri = uri.parse().unwrap();
    sign(
        &Method::GET,
        &uri,
        &mut headers,
        b"",
        &creds,
        "us-east-1",
        "bedrock",
        BOTOCORE_TIME,
        Options::default(),
    )
    .unwrap();
    headers
}

#[test]
fn converse_path_is_encoded_once_on_the_wire_and_twice_when_signed() {
    let uri = converse_uri();
    assert_eq!(
        uri.path(),
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    assert_eq!(
        canonical_uri(uri.path(), true),
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse"
    );
}

#[test]
fn botocore_converse() {
    let headers = sign_converse(None, Options::default());
    assert_eq!(headers["x-amz-date"], "20241122T103000Z");
    assert_eq!(
        headers["authorization"],
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20241122/us-east-1/bedrock/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, \
         Signature=1e1c57f0e81a123efd1ea75e4632a1fb89874910d5bca52a8d6d6bfab0bef373"
    );
    // Signed, but left for the HTTP client to send, as botocore does.
    assert!(!headers.contains_key("host"));
    assert!(!headers.contains_key("x-amz-security-token"));
    assert!(!headers.contains_key("x-amz-content-sha256"));
}

#[test]
fn botocore_converse_with_session_token() {
    let headers = sign_converse(Some(SESSION_TOKEN), Options::default());
    assert_eq!(headers["x-amz-security-token"], SESSION_TOKEN);
    assert!(headers["x-amz-security-token"].is_sensitive());
    assert_eq!(
        headers["authorization"],
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20241122/us-east-1/bedrock/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, \
         Signature=179489dfeec55d82934e71a416037e566798265239b473f6c4bda23ad98735bf"
    );
}

#[test]
fn botocore_converse_with_content_sha256_header() {
    let options = Options {
        content_sha256_header: true,
        ..Options::default()
    };
    let headers = sign_converse(None, options);
    assert_eq!(
        headers["x-amz-content-sha256"],
        "349b54de03dbb5c7f33b55161844c09c9ec81b8f160eeb47b7276beda0180706"
    );
    assert_eq!(
        headers["authorization"],
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20241122/us-east-1/bedrock/aws4_request, \
         SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, \
         Signature=f1d7f2141bd4b37242997ec5483bab404421d3e87e44ebaf49a19f4c69d8d2b8"
    );
}

#[test]
fn botocore_get_foundation_model() {
    let uri = format!(
        "https://bedrock.us-east-1.amazonaws.com/foundation-models/{}",
        encode_path_segment(MODEL_ID)
    );
    let headers = sign_get(&uri, None);
    assert_eq!(
        headers["authorization"],
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20241122/us-east-1/bedrock/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=117e3efda28380e983b6dda0a60fb9700c70115f8799d2c1ea54c54278a97473"
    );
}

#[test]
fn botocore_list_foundation_models_with_query_and_session_token() {
    let headers = sign_get(
        "https://bedrock.us-east-1.amazonaws.com/foundation-models?byProvider=anthropic&byInferenceType=ON_DEMAND",
        Some(SESSION_TOKEN),
    );
    assert_eq!(
        headers["authorization"],
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20241122/us-east-1/bedrock/aws4_request, \
         SignedHeaders=host;x-amz-date;x-amz-security-token, \
         Signature=9fff9ed79e8516e0d906b14d5eab17abd7350853aef4b1da96299d917dc82772"
    );
}

// ---------------------------------------------------------------------------
// Refusals and errors
// ---------------------------------------------------------------------------

#[test]
fn refuses_reserved_headers_and_leaves_the_map_alone() {
    for name in [
        "Authorization",
        "X-Amz-Date",
        "x-amz-security-token",
        "X-Amz-Content-Sha256",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static("caller's"),
        );
        let before = headers.clone();
        let err = sign(
            &Method::POST,
            &converse_uri(),
            &mut headers,
            CONVERSE_BODY,
            &example_creds(Some(SESSION_TOKEN)),
            "us-east-1",
            "bedrock",
            BOTOCORE_TIME,
            Options::default(),
        )
        .unwrap_err();
        let lower = name.to_ascii_lowercase();
        assert_eq!(
            err,
            SignError::ReservedHeader(HeaderName::from_bytes(lower.as_bytes()).unwrap())
        );
        assert_eq!(
            err.to_string(),
            format!("header `{lower}` is set by the SigV4 signer, not the caller")
        );
        assert_eq!(headers, before, "{name}");
    }
}

#[test]
fn refuses_a_request_without_host() {
    let mut headers = HeaderMap::new();
    let err = sign(
        &Method::GET,
        &Uri::from_static("/foundation-models"),
        &mut headers,
        b"",
        &example_creds(None),
        "us-east-1",
        "bedrock",
        BOTOCORE_TIME,
        Options::default(),
    );
    assert_eq!(err, Err(SignError::MissingHost));
    assert!(headers.is_empty());
}

#[test]
fn refuses_a_non_utf8_header_value_and_leaves_the_map_alone() {
    let mut headers = HeaderMap::new();
    headers.insert("x-custom", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    let before = headers.clone();
    let err = sign(
        &Method::POST,
        &converse_uri(),
        &mut headers,
        b"",
        &example_creds(None),
        "us-east-1",
        "bedrock",
        BOTOCORE_TIME,
        Options::default(),
    );
    assert_eq!(
        err,
        Err(SignError::NonUtf8HeaderValue(HeaderName::from_static(
            "x-custom"
        )))
    );
    assert_eq!(headers, before);
}

#[test]
fn refuses_a_session_token_that_cannot_be_a_header_without_echoing_it() {
    let mut headers = HeaderMap::new();
    let err = sign(
        &Method::POST,
        &converse_uri(),
        &mut headers,
        b"",
        &example_creds(Some("secret\ntoken")),
        "us-east-1",
        "bedrock",
        BOTOCORE_TIME,
        Options::default(),
    )
    .unwrap_err();
    assert_eq!(err, SignError::InvalidCredential("session token"));
    assert!(!err.to_string().contains("secret"));
    assert!(headers.is_empty());
}

#[test]
fn debug_redacts_the_secret_and_the_token() {
    let shown = format!("{:?}", example_creds(Some(SESSION_TOKEN)));
    assert_eq!(
        shown,
        r#"Credentials { access_key_id: "AKIDEXAMPLE", secret_access_key: <redacted>, session_token: Some(<redacted>) }"#
    );
    let shown = format!("{:#?}", example_creds(None));
    assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    assert!(shown.contains("session_token: None"), "{shown}");
}

// ---------------------------------------------------------------------------
// Pieces
// ---------------------------------------------------------------------------

#[test]
fn formats_dates_including_leap_days() {
    for (unix, want) in [
        (0, "19700101T000000Z"),
        (951_782_400, "20000229T000000Z"), // 2000 is a leap year: divisible by 400
        (951_868_799, "20000229T235959Z"),
        (1_078_012_800, "20040229T000000Z"),
        (1_440_938_160, "20150830T123600Z"), // the AWS suite's time
        (1_709_251_199, "20240229T235959Z"),
        (1_732_271_400, "20241122T103000Z"), // the botocore cross-check's
        (4_107_456_000, "21000228T000000Z"),
        (4_107_542_400, "21000301T000000Z"), // 2100 is not: divisible by 100
        (253_402_300_799, "99991231T235959Z"),
    ] {
        let time = Timestamp::from_unix(unix);
        assert_eq!(time.date_time, want, "{unix}");
        assert_eq!(time.date, want[..8], "{unix}");
    }
}

#[test]
fn civil_from_days_round_trips_for_eight_thousand_years() {
    let mut previous = (1969, 12, 31);
    for days in 0..3_000_000 {
        let (year, month, day) = civil_from_days(days);
        assert_eq!(days_from_civil(year, month, day), days);
        assert!((1..=12).contains(&month) && (1..=31).contains(&day));
        assert!((year, month, day) > previous, "{days}");
        previous = (year, month, day);
    }
}

#[test]
fn encodes_path_segments_keeping_only_unreserved_characters() {
    assert_eq!(
        encode_path_segment(MODEL_ID),
        "anthropic.claude-3-5-sonnet-20240620-v1%3A0"
    );
    assert_eq!(
        encode_path_segment(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
        ),
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0"
    );
    assert_eq!(encode_path_segment("a b+c%~é"), "a%20b%2Bc%25~%C3%A9");
}

#[test]
fn normalizes_paths_like_the_reference_signer() {
    for (path, want) in [
        ("/", "/"),
        ("//", "/"),
        ("/a/./b/../c", "/a/c"),
        ("/a/b/..", "/a"),
        ("//a//b//", "/a/b/"),
        ("/../..", "/"),
        ("/model/x%3Ay/converse", "/model/x%3Ay/converse"),
    ] {
        assert_eq!(normalize_path(path), want, "{path}");
    }
    assert_eq!(canonical_uri("", true), "/");
    assert_eq!(canonical_uri("//a/", false), "//a/");
}

#[test]
fn canonical_query_sorts_and_reencodes() {
    for (query, want) in [
        ("", ""),
        ("b=2&a=3&a=1", "a=1&a=3&b=2"),
        ("flag&empty=&&x=1", "empty=&flag=&x=1"),
        ("%e1%88%b4=v&k=a%20b", "%E1%88%B4=v&k=a%20b"),
        ("k=a+b&k=%2a", "k=%2A&k=a%2Bb"),
        ("bad=%zz%4", "bad=%25zz%254"),
        ("k=é", "k=%C3%A9"),
    ] {
        assert_eq!(canonical_query(query), want, "{query}");
    }
}

#[test]
fn canonical_header_values_are_trimmed_collapsed_and_joined() {
    let mut signed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    signed.insert("a", vec!["  one   two\t\tthree  "]);
    signed.insert("b", vec!["x", "", " y "]);
    signed.insert("c", vec![""]);
    assert_eq!(canonical_headers(&signed), "a:one two three\nb:x,,y\nc:\n");
    assert_eq!(signed_header_names(&signed), "a;b;c");
}

#[test]
fn host_is_the_authority_without_a_default_port() {
    for (uri, want) in [
        (
            "https://bedrock-runtime.us-east-1.amazonaws.com/x",
            "bedrock-runtime.us-east-1.amazonaws.com",
        ),
        ("https://example.com:443/", "example.com"),
        ("https://example.com:8443/", "example.com:8443"),
        ("http://example.com:80/", "example.com"),
        ("http://example.com:443/", "example.com:443"),
        ("http://user:pw@[::1]:8080/", "[::1]:8080"),
    ] {
        assert_eq!(host_from_uri(&uri.parse().unwrap()).unwrap(), want, "{uri}");
    }
}

#[test]
fn a_host_header_is_signed_as_given() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("proxy.internal:9000"));
    let uri = converse_uri();
    sign(
        &Method::POST,
        &uri,
        &mut headers,
        b"",
        &example_creds(None),
        "us-east-1",
        "bedrock",
        BOTOCORE_TIME,
        Options::default(),
    )
    .unwrap();
    assert_eq!(headers["host"], "proxy.internal:9000");
    let request = Request {
        method: "POST",
        path: uri.path(),
        query: "",
        host: None,
        headers: &headers,
        body: b"",
    };
    let canonical = request.canonical_request(&[], &hex(&Sha256::digest(b"")), Options::default());
    // The headers now include the signer's own; only `host` matters here.
    assert!(
        canonical
            .unwrap()
            .text
            .contains("\nhost:proxy.internal:9000\n")
    );
}

#[test]
fn hex_and_hmac_match_known_vectors() {
    assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    // RFC 4231, test case 2.
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
