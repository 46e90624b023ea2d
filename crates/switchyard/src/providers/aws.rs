//! AWS credentials for Bedrock: read once when providers are built (from
//! the variables or the shared credentials file the configuration named),
//! or fetched as temporary credentials (web identity at STS, or the
//! container's endpoint) and fetched again before they expire; and the
//! SigV4 signature each call gets from them.

use std::sync::Arc;

use http::{HeaderMap, Method, Uri};

use super::Secret;
use super::client::Client;
use super::errors::{ErrorClass, UpstreamError};
use super::sigv4::{self, Credentials};
use crate::config::Env;
use crate::config::bedrock::AwsAuth;

mod profile;
mod temporary;

/// The service name Bedrock's runtime signs for.
const SERVICE: &str = "bedrock";

/// Access keys and the region they sign for.
#[derive(Debug)]
pub struct Signer {
    creds: Keys,
    region: String,
}

#[derive(Debug)]
enum Keys {
    Fixed(Arc<Credentials>),
    Temporary(Box<temporary::Cache>),
}

/// What a Bedrock provider authenticates with.
pub enum Auth {
    /// A Bedrock API key: a bearer token.
    Bearer(Secret),
    Sign(Signer),
}

impl Auth {
    /// The credential `auth` names, read now; `None` when its variables
    /// are unset or its profile has no keys.
    pub fn read(auth: &AwsAuth, region: &str, env: &Env) -> Option<Auth> {
        let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).map(str::to_owned);
        let creds = match auth {
            AwsAuth::Bearer { env } => return var(env).map(|k| Auth::Bearer(Secret::new(k))),
            AwsAuth::Keys {
                access_key_id_env,
                secret_access_key_env,
                session_token_env,
            } => Credentials {
                access_key_id: var(access_key_id_env)?,
                secret_access_key: var(secret_access_key_env)?,
                session_token: session_token_env.as_deref().and_then(var),
            },
            AwsAuth::Profile { name, file, config } => {
                let read = |path: &str| std::fs::read_to_string(path).ok();
                let sts = sts_url(env, region)?;
                let found = profile::resolve(
                    name,
                    read(file).as_deref(),
                    config.as_deref().and_then(read).as_deref(),
                    &sts,
                    region,
                )?;
                match found {
                    profile::Found::Keys(k) => k,
                    profile::Found::Temporary(source) => {
                        return Some(Auth::Sign(Signer {
                            creds: Keys::Temporary(Box::new(temporary::Cache::with_source(source))),
                            region: region.to_owned(),
                        }));
                    }
                }
            }
            AwsAuth::WebIdentity { .. } | AwsAuth::Container { .. } => {
                return Some(Auth::Sign(Signer {
                    creds: Keys::Temporary(Box::new(temporary::Cache::new(auth, env)?)),
                    region: region.to_owned(),
                }));
            }
        };
        Some(Auth::Sign(Signer {
            creds: Keys::Fixed(Arc::new(creds)),
            region: region.to_owned(),
        }))
    }

    /// The secrets to scrub from upstream text.
    pub fn secrets(&self) -> Vec<Secret> {
        match self {
            Auth::Bearer(s) => vec![s.clone()],
            // Temporary keys change as they are fetched: the signer names
            // them when asked (`Signer::live_secrets`).
            Auth::Sign(Signer {
                creds: Keys::Fixed(c),
                ..
            }) => std::iter::once(&c.secret_access_key)
                .chain(&c.session_token)
                .map(|v| Secret::new(v.clone()))
                .collect(),
            Auth::Sign(_) => Vec::new(),
        }
    }
}

impl Signer {
    /// The temporary credentials held now (see `temporary::Cache::secrets`);
    /// fixed keys are in the provider's list already.
    pub fn live_secrets(&self) -> Vec<String> {
        match &self.creds {
            Keys::Fixed(_) => Vec::new(),
            Keys::Temporary(cache) => cache.secrets(),
        }
    }

    /// Signs a call whose headers are final (`x-amz-*` and `authorization`
    /// the caller may have sent are dropped first: the gateway's own
    /// credential is the one that counts).
    pub async fn sign(
        &self,
        client: &Client,
        provider: &str,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), UpstreamError> {
        for reserved in [
            "authorization",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-content-sha256",
        ] {
            headers.remove(reserved);
        }
        let creds = match &self.creds {
            Keys::Fixed(c) => c.clone(),
            Keys::Temporary(cache) => cache.get(client, provider).await?,
        };
        sigv4::sign(
            method,
            uri,
            headers,
            body,
            &creds,
            &self.region,
            SERVICE,
            crate::clock::unix_s(),
            sigv4::Options::default(),
        )
        .map_err(|e| UpstreamError {
            provider: provider.to_owned(),
            class: ErrorClass::Auth,
            status: 502,
            message: format!("provider {provider}: the call could not be signed: {e}"),
            provider_code: None,
            retry_after: None,
        })
    }
}

/// STS of `region` (or `AWS_ENDPOINT_URL_STS`), where roles are assumed.
fn sts_url(env: &Env, region: &str) -> Option<Uri> {
    let base = env
        .get("AWS_ENDPOINT_URL_STS")
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
    format!("{base}/").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_named_variables() {
        let env = Env::default()
            .with("K", "AKIDEXAMPLE")
            .with("S", "secret-canary")
            .with("T", "token-canary");
        let auth = AwsAuth::Keys {
            access_key_id_env: "K".into(),
            secret_access_key_env: "S".into(),
            session_token_env: Some("T".into()),
        };
        let a = Auth::read(&auth, "us-east-1", &env).unwrap();
        let shown: Vec<String> = a.secrets().iter().map(|s| s.expose().to_owned()).collect();
        assert_eq!(shown, ["secret-canary", "token-canary"]);
        let Auth::Sign(s) = a else {
            panic!("keys sign")
        };
        assert!(!format!("{s:?}").contains("canary"));
        assert!(Auth::read(&auth, "us-east-1", &Env::default()).is_none());
    }
}
