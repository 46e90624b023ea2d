//! Google OAuth 2.0 access tokens (Vertex AI): the grants a credentials file
//! names, and the metadata server of a Google Cloud machine.
//!
//! - `service_account`: a JWT the gateway signs (RS256) with the account's
//!   private key, exchanged at the file's `token_uri` under the JWT bearer
//!   grant (RFC 7523).
//! - `authorized_user` (what `gcloud auth application-default login`
//!   writes): a refresh token exchanged for an access token.
//! - The metadata server (`GCE_METADATA_HOST`, else
//!   `metadata.google.internal`): a token for the machine's own service
//!   account, asked for with `Metadata-Flavor: Google`.
//!
//! The private key, client secret and refresh token are never shown: not by
//! `Debug`, not in an error message. A credentials file that cannot be used
//! is named by what it lacks, never by what it holds.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::Uri;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::Value;

use super::Grant;
use crate::providers::Secret;

/// The scope that covers Vertex AI (and every other Google Cloud API).
pub const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, for credentials files that do not name one.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The variable that names the metadata server's host (`host[:port]`).
pub const METADATA_HOST_ENV: &str = "GCE_METADATA_HOST";
/// The metadata server's host when [`METADATA_HOST_ENV`] is not set.
pub const METADATA_HOST: &str = "metadata.google.internal";
/// Where on the metadata server the default service account's token is.
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
/// How long a signed assertion asks for (Google's most).
const ASSERTION_LIFE: u64 = 3600;

const PKCS8_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PKCS8_END: &str = "-----END PRIVATE KEY-----";

/// A service account's RSA private key, read from PKCS#8 PEM. Its `Debug`
/// shows nothing of it.
#[derive(Clone)]
pub struct PrivateKey {
    pair: Arc<RsaKeyPair>,
    /// The PEM as given, and each line of its body: what an upstream that
    /// echoed the key would show, to scrub.
    secrets: Arc<[Secret]>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(***)")
    }
}

impl PrivateKey {
    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as Google's
    /// service-account files hold it. Newlines written as `\n` (a PEM put
    /// in an environment variable) are taken as newlines. The error says
    /// what is wrong with the key, never any of it.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, String> {
        let text = pem.replace("\\n", "\n");
        if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            return Err(
                "the private key is PKCS#1 (BEGIN RSA PRIVATE KEY); a PKCS#8 key \
                 (BEGIN PRIVATE KEY) is needed: convert it with \
                 `openssl pkcs8 -topk8 -nocrypt -in key.pem`"
                    .into(),
            );
        }
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err("the private key is encrypted; an unencrypted PKCS#8 key \
                 (BEGIN PRIVATE KEY) is needed"
                .into());
        }
        let start = text
            .find(PKCS8_BEGIN)
            .map(|i| i + PKCS8_BEGIN.len())
            .ok_or("the private key has no \"-----BEGIN PRIVATE KEY-----\" line")?;
        let end = text[start..]
            .find(PKCS8_END)
            .map(|i| start + i)
            .ok_or("the private key has no \"-----END PRIVATE KEY-----\" line")?;
        let body = &text[start..end];
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| "the private key's body is not base64".to_owned())?;
        let pair = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("the private key is not an RSA key that can sign RS256: {e}"))?;
        let mut secrets = vec![Secret::new(pem.to_owned())];
        secrets.extend(
            body.lines()
                .map(str::trim)
                .filter(|l| l.len() >= 16)
                .map(|l| Secret::new(l.to_owned())),
        );
        Ok(PrivateKey {
            pair: Arc::new(pair),
            secrets: secrets.into(),
        })
    }

    /// The PEM and its body's lines, to scrub from upstream text.
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 of `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| "signing the assertion failed".to_owned())?;
        Ok(signature)
    }
}

/// The signed JWT a service account sends for a token, issued at `now`
/// (Unix seconds): header `{"alg":"RS256","typ":"JWT","kid":...}`, claims
/// `iss`, `scope`, `aud` (the token endpoint), `iat` and `exp` (an hour on).
pub(super) fn assertion(
    client_email: &str,
    key: &PrivateKey,
    key_id: Option<&str>,
    token_uri: &Uri,
    scope: &str,
    now: u64,
) -> Result<String, String> {
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = key_id {
        header["kid"] = Value::from(kid);
    }
    let claims = serde_json::json!({
        "iss": client_email,
        "scope": scope,
        "aud": token_uri.to_string(),
        "iat": now,
        "exp": now + ASSERTION_LIFE,
    });
    let mut jwt = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(jwt.as_bytes())?;
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(jwt)
}

/// The grant a Google credentials file (its text) names: a
/// `service_account` (its tokens for `scope`) or an `authorized_user`
/// (whose refresh token carries its own scopes). The error names the field
/// that is missing or wrong, never a value.
pub fn google_credentials(json: &str, scope: &str) -> Result<Grant, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| {
        format!(
            "the credentials are not JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let fields = v
        .as_object()
        .ok_or("the credentials are not a JSON object")?;
    let optional = |k: &str| -> Result<Option<&str>, String> {
        match fields.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("the credentials' \"{k}\" is not a string")),
        }
    };
    let field = |k: &str| -> Result<&str, String> {
        optional(k)?.ok_or_else(|| format!("the credentials have no \"{k}\""))
    };
    let url = |k: &str, s: &str| -> Result<Uri, String> {
        s.trim()
            .parse::<Uri>()
            .ok()
            .filter(|u| matches!(u.scheme_str(), Some("https" | "http")) && u.authority().is_some())
            .ok_or_else(|| format!("the credentials' \"{k}\" is not an http(s) URL"))
    };
    match field("type")? {
        "service_account" => {
            let client_email = field("client_email")?.trim().to_owned();
            let private_key = PrivateKey::from_pem(field("private_key")?)?;
            let private_key_id = optional("private_key_id")?.map(|s| s.trim().to_owned());
            let token_uri = url("token_uri", field("token_uri")?)?;
            Ok(Grant::ServiceAccount {
                client_email,
                private_key,
                private_key_id,
                token_uri,
                scope: scope.to_owned(),
            })
        }
        "authorized_user" => {
            let client_id = field("client_id")?.trim().to_owned();
            let client_secret = Secret::new(field("client_secret")?.trim().to_owned());
            let refresh_token = Secret::new(field("refresh_token")?.trim().to_owned());
            let token_uri = url(
                "token_uri",
                optional("token_uri")?.unwrap_or(GOOGLE_TOKEN_URI),
            )?;
            Ok(Grant::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            })
        }
        other => {
            let shown: String = other
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(40)
                .collect();
            Err(format!(
                "credentials of type \"{shown}\" are not supported \
                 (expected \"service_account\" or \"authorized_user\")"
            ))
        }
    }
}

/// The metadata server's token URL on `host` (`host[:port]`; the value of
/// [`METADATA_HOST_ENV`] if set), else on [`METADATA_HOST`].
pub fn metadata_url(host: Option<&str>) -> Result<Uri, String> {
    let host = host.map(str::trim).filter(|h| !h.is_empty());
    let name = host.unwrap_or(METADATA_HOST);
    let ok = name.parse::<http::uri::Authority>().is_ok() && !name.contains('@');
    ok.then(|| {
        format!("http://{name}{METADATA_TOKEN_PATH}")
            .parse::<Uri>()
            .ok()
    })
    .flatten()
    .ok_or_else(|| format!("{METADATA_HOST_ENV} must be a host[:port], got \"{name}\""))
}

impl Grant {
    /// The metadata server's token for the machine's service account;
    /// `host` is the value of [`METADATA_HOST_ENV`], if set.
    pub fn metadata(host: Option<&str>) -> Result<Grant, String> {
        Ok(Grant::Metadata {
            url: metadata_url(host)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    const FILE: &str = include_str!("../../../testdata/google/service_account.json");
    const PUBLIC: &[u8] = include_bytes!("../../../testdata/google/service_account_pub.der");

    fn key_pem() -> String {
        let v: Value = serde_json::from_str(FILE).unwrap();
        v["private_key"].as_str().unwrap().to_owned()
    }

    fn part(b64: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).unwrap()).unwrap()
    }

    fn verify(jwt: &str) -> bool {
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, PUBLIC)
            .verify(input.as_bytes(), &sig)
            .is_ok()
    }

    #[test]
    fn the_assertion_is_a_signed_jwt() {
        let key = PrivateKey::from_pem(&key_pem()).unwrap();
        let aud: Uri = "https://oauth2.googleapis.com/token".parse().unwrap();
        let jwt = assertion(
            "sa@p.iam.gserviceaccount.com",
            &key,
            Some("kid-1"),
            &aud,
            GOOGLE_SCOPE,
            1_700_000_000,
        )
        .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!jwt.contains('=') && !jwt.contains('+') && !jwt.contains('/'));
        assert_eq!(
            part(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"})
        );
        assert_eq!(
            part(parts[1]),
            serde_json::json!({
                "iss": "sa@p.iam.gserviceaccount.com",
                "scope": GOOGLE_SCOPE,
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
        assert!(verify(&jwt));

        // Another claim under the same signature does not verify.
        let mut claims = part(parts[1]);
        claims["scope"] = Value::from("https://www.googleapis.com/auth/everything");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        assert!(!verify(&forged));
        // Nor does a flipped signature bit.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert!(!verify(&flipped));
    }

    #[test]
    fn no_kid_without_a_key_id() {
        let key = PrivateKey::from_pem(&key_pem()).unwrap();
        let aud: Uri = GOOGLE_TOKEN_URI.parse().unwrap();
        let jwt = assertion("a@b", &key, None, &aud, "s", 1).unwrap();
        let header = part(jwt.split('.').next().unwrap());
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT"}));
        assert!(verify(&jwt));
    }

    #[test]
    fn a_service_account_file_is_read() {
        let g = google_credentials(FILE, GOOGLE_SCOPE).unwrap();
        let Grant::ServiceAccount {
            client_email,
            private_key_id,
            token_uri,
            scope,
            private_key,
        } = &g
        else {
            panic!("{g:?}");
        };
        assert_eq!(
            client_email,
            "switchyard-test@example-project.iam.gserviceaccount.com"
        );
        assert!(private_key_id.as_deref().is_some_and(|k| k.len() == 40));
        assert_eq!(token_uri, "http://127.0.0.1:9/token");
        assert_eq!(scope, GOOGLE_SCOPE);
        // The PEM and its lines, for scrubbing.
        let pem = key_pem();
        let secrets = g.secrets();
        assert_eq!(secrets[0].expose(), pem);
        assert!(secrets.len() > 20);
        assert!(secrets.iter().all(|s| pem.contains(s.expose())));
        assert_eq!(private_key.secrets().len(), secrets.len());
        // Nothing of the key in Debug.
        let shown = format!("{g:?}");
        assert!(!shown.contains(&pem[40..60]), "{shown}");
        assert!(!shown.contains("BEGIN"), "{shown}");
        assert!(shown.contains("PrivateKey(***)"), "{shown}");
    }

    #[test]
    fn an_authorized_user_file_is_read() {
        let file = r#"{
            "type": "authorized_user",
            "client_id": "123.apps.googleusercontent.com",
            "client_secret": "secret-canary-1",
            "refresh_token": "1//refresh-canary-2",
            "quota_project_id": "example-project"
        }"#;
        let g = google_credentials(file, GOOGLE_SCOPE).unwrap();
        let Grant::AuthorizedUser {
            client_id,
            token_uri,
            ..
        } = &g
        else {
            panic!("{g:?}");
        };
        assert_eq!(client_id, "123.apps.googleusercontent.com");
        assert_eq!(token_uri, GOOGLE_TOKEN_URI);
        let secrets: Vec<String> = g.secrets().iter().map(|s| s.expose().to_owned()).collect();
        assert_eq!(secrets, ["secret-canary-1", "1//refresh-canary-2"]);
        let shown = format!("{g:?}");
        assert!(!shown.contains("canary"), "{shown}");

        let with_uri = file.replace(
            "\"quota_project_id\"",
            "\"token_uri\": \"http://127.0.0.1:9/t\", \"x\"",
        );
        let Grant::AuthorizedUser { token_uri, .. } =
            google_credentials(&with_uri, GOOGLE_SCOPE).unwrap()
        else {
            panic!()
        };
        assert_eq!(token_uri, "http://127.0.0.1:9/t");
    }

    #[test]
    fn a_missing_field_is_named() {
        let full: Value = serde_json::from_str(FILE).unwrap();
        for k in ["type", "client_email", "private_key", "token_uri"] {
            let mut v = full.clone();
            v.as_object_mut().unwrap().remove(k);
            let e = google_credentials(&v.to_string(), GOOGLE_SCOPE).unwrap_err();
            assert!(e.contains(&format!("\"{k}\"")), "{k}: {e}");
            assert!(!e.contains("PRIVATE KEY"), "{e}");
        }
        // No key id: a JWT without `kid`.
        let mut v = full.clone();
        v.as_object_mut().unwrap().remove("private_key_id");
        assert!(matches!(
            google_credentials(&v.to_string(), GOOGLE_SCOPE),
            Ok(Grant::ServiceAccount {
                private_key_id: None,
                ..
            })
        ));

        let user = serde_json::json!({
            "type": "authorized_user",
            "client_id": "c",
            "client_secret": "s-canary",
            "refresh_token": "r-canary",
        });
        for k in ["client_id", "client_secret", "refresh_token"] {
            let mut v = user.clone();
            v.as_object_mut().unwrap().remove(k);
            let e = google_credentials(&v.to_string(), GOOGLE_SCOPE).unwrap_err();
            assert!(e.contains(&format!("\"{k}\"")), "{k}: {e}");
            assert!(!e.contains("canary"), "{e}");
        }
        let mut v = user.clone();
        v["refresh_token"] = Value::from(7);
        let e = google_credentials(&v.to_string(), GOOGLE_SCOPE).unwrap_err();
        assert!(e.contains("\"refresh_token\" is not a string"), "{e}");

        let mut v = full.clone();
        v["token_uri"] = Value::from("not a url");
        let e = google_credentials(&v.to_string(), GOOGLE_SCOPE).unwrap_err();
        assert!(e.contains("\"token_uri\""), "{e}");

        let e = google_credentials(r#"{"type":"external_account"}"#, "s").unwrap_err();
        assert!(e.contains("\"external_account\" are not supported"), "{e}");
        let e = google_credentials("[1]", "s").unwrap_err();
        assert!(e.contains("not a JSON object"), "{e}");
        let e = google_credentials(r#"{"private_key": "-----BEGIN"#, "s").unwrap_err();
        assert!(e.starts_with("the credentials are not JSON"), "{e}");
        assert!(!e.contains("BEGIN"), "{e}");
    }

    #[test]
    fn bad_keys_are_refused_without_showing_them() {
        let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAcanary\n-----END RSA PRIVATE KEY-----\n";
        let e = PrivateKey::from_pem(pkcs1).unwrap_err();
        assert!(e.contains("PKCS#1") && e.contains("PKCS#8"), "{e}");
        assert!(!e.contains("canary"), "{e}");
        let mut v: Value = serde_json::from_str(FILE).unwrap();
        v["private_key"] = Value::from(pkcs1);
        let e = google_credentials(&v.to_string(), GOOGLE_SCOPE).unwrap_err();
        assert!(e.contains("PKCS#1"), "{e}");

        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIcanary\n-----END ENCRYPTED PRIVATE KEY-----";
        let e = PrivateKey::from_pem(encrypted).unwrap_err();
        assert!(e.contains("encrypted") && !e.contains("canary"), "{e}");

        for (pem, says) in [
            ("MIIcanary", "BEGIN PRIVATE KEY"),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIcanary\n",
                "END PRIVATE KEY",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n!!canary!!\n-----END PRIVATE KEY-----",
                "base64",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nY2FuYXJ5Y2FuYXJ5\n-----END PRIVATE KEY-----",
                "not an RSA key",
            ),
        ] {
            let e = PrivateKey::from_pem(pem).unwrap_err();
            assert!(e.contains(says), "{says}: {e}");
            assert!(!e.contains("canary") && !e.contains("Y2Fu"), "{e}");
        }
    }

    #[test]
    fn escaped_newlines_are_read() {
        let escaped = key_pem().replace('\n', "\\n");
        let key = PrivateKey::from_pem(&escaped).unwrap();
        let aud: Uri = GOOGLE_TOKEN_URI.parse().unwrap();
        assert!(verify(&assertion("a@b", &key, None, &aud, "s", 1).unwrap()));
    }

    #[test]
    fn the_metadata_url() {
        assert_eq!(
            metadata_url(None).unwrap(),
            "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(
            metadata_url(Some("127.0.0.1:8080")).unwrap(),
            "http://127.0.0.1:8080/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(metadata_url(Some(" ")).unwrap().host(), Some(METADATA_HOST));
        for bad in ["a/b", "user@host", "http://x", "a b"] {
            let e = metadata_url(Some(bad)).unwrap_err();
            assert!(e.contains(METADATA_HOST_ENV), "{bad}: {e}");
        }
        assert!(matches!(Grant::metadata(None), Ok(Grant::Metadata { .. })));
    }
}
