//! `kind = "bedrock"`: the region and where the AWS credentials come from.
//!
//! Credentials, the first that applies (as AWS's own SDKs look for them):
//! the variables the entry names (`aws_access_key_id_env` and
//! `aws_secret_access_key_env`, or `bearer_token_env` for a Bedrock API
//! key); else `AWS_BEARER_TOKEN_BEDROCK`; else `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`; else web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`, exchanged at STS);
//! else the profile `AWS_PROFILE` (or `default`) of the shared credentials
//! file; else container credentials (`AWS_CONTAINER_CREDENTIALS_FULL_URI`
//! or `..._RELATIVE_URI`). Only names, paths and URLs are decided here; the
//! values are read when providers are built, and temporary credentials are
//! fetched, and fetched again before they expire, as calls need them.

use serde::Serialize;

use super::providers::{Entry, ProviderKind, RawProvider};
use super::{ConfigError, Env};

/// The variable AWS's SDKs read a Bedrock API key from.
pub const BEARER_ENV: &str = "AWS_BEARER_TOKEN_BEDROCK";

/// Where a Bedrock provider's credentials come from. Names variables and
/// files, never values.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum AwsAuth {
    /// A Bedrock API key, sent as a bearer token.
    Bearer { env: String },
    /// Access keys (and a session token) in variables: SigV4.
    Keys {
        access_key_id_env: String,
        secret_access_key_env: String,
        session_token_env: Option<String>,
    },
    /// A profile of the shared credentials file (and config file): SigV4,
    /// with its keys or a role they (or a web identity) assume, or its
    /// `credential_process`.
    Profile {
        name: String,
        file: String,
        config: Option<String>,
    },
    /// A web identity token (a file Kubernetes keeps fresh) exchanged at
    /// STS for temporary credentials (`AssumeRoleWithWebIdentity`).
    WebIdentity {
        token_file: String,
        role_arn: String,
        session_name: String,
        sts_url: String,
    },
    /// Temporary credentials from the container's credentials endpoint
    /// (ECS, EKS Pod Identity), with its authorization token.
    Container {
        url: String,
        token_env: Option<String>,
        token_file: Option<String>,
    },
}

/// What a `bedrock` entry resolves to: its region and credentials.
pub(super) struct Resolved {
    pub region: Option<String>,
    pub auth: Option<AwsAuth>,
}

/// The `bedrock` settings, refused on other kinds.
pub(super) fn resolve(
    i: usize,
    p: &RawProvider,
    kind: ProviderKind,
    env: &Env,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Resolved, ConfigError> {
    let at = |k: &str| format!("providers[{i}].{k}");
    let own = [
        ("region", p.region.is_some()),
        ("aws_access_key_id_env", p.aws_access_key_id_env.is_some()),
        (
            "aws_secret_access_key_env",
            p.aws_secret_access_key_env.is_some(),
        ),
        ("aws_session_token_env", p.aws_session_token_env.is_some()),
        ("bearer_token_env", p.bearer_token_env.is_some()),
    ];
    let entry = Entry { i, err };
    if kind != ProviderKind::Bedrock {
        entry.only(ProviderKind::Bedrock, &own)?;
        return Ok(Resolved {
            region: None,
            auth: None,
        });
    }
    let region = p
        .region
        .clone()
        .or_else(|| env.get("AWS_REGION").map(str::to_owned))
        .or_else(|| env.get("AWS_DEFAULT_REGION").map(str::to_owned))
        .map(|r| r.trim().to_owned());
    let region = match region {
        Some(r) if region_ok(&r) => r,
        Some(r) => {
            return Err(err(
                &at("region"),
                format!("expected an AWS region such as \"us-east-1\", got \"{r}\""),
            ));
        }
        None => {
            return Err(err(
                &at("region"),
                "missing; set region (such as \"us-east-1\") or AWS_REGION".into(),
            ));
        }
    };
    if p.api_key_env.is_some() {
        return Err(err(
            &at("api_key_env"),
            "bedrock takes aws_access_key_id_env and aws_secret_access_key_env, or bearer_token_env"
                .into(),
        ));
    }
    let variable = |key: &str, v: &str| entry.variable(key, v);
    let auth = match (
        &p.bearer_token_env,
        &p.aws_access_key_id_env,
        &p.aws_secret_access_key_env,
    ) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(err(
                &at("bearer_token_env"),
                "a Bedrock API key replaces the access keys: set one or the other".into(),
            ));
        }
        (Some(b), None, None) => Some(AwsAuth::Bearer {
            env: variable("bearer_token_env", b)?,
        }),
        (None, Some(id), Some(secret)) => Some(AwsAuth::Keys {
            access_key_id_env: variable("aws_access_key_id_env", id)?,
            secret_access_key_env: variable("aws_secret_access_key_env", secret)?,
            session_token_env: p
                .aws_session_token_env
                .as_deref()
                .map(|t| variable("aws_session_token_env", t))
                .transpose()?,
        }),
        (None, Some(_), None) => {
            return Err(err(
                &at("aws_secret_access_key_env"),
                "missing; the access key id needs its secret".into(),
            ));
        }
        (None, None, Some(_)) => {
            return Err(err(
                &at("aws_access_key_id_env"),
                "missing; the secret needs its access key id".into(),
            ));
        }
        (None, None, None) => from_environment(env, &region),
    };
    Ok(Resolved {
        region: Some(region),
        auth,
    })
}

/// The standard chain, for an entry that names no variables.
fn from_environment(env: &Env, region: &str) -> Option<AwsAuth> {
    if env.get(BEARER_ENV).is_some() {
        return Some(AwsAuth::Bearer {
            env: BEARER_ENV.into(),
        });
    }
    if env.get("AWS_ACCESS_KEY_ID").is_some() {
        return Some(AwsAuth::Keys {
            access_key_id_env: "AWS_ACCESS_KEY_ID".into(),
            secret_access_key_env: "AWS_SECRET_ACCESS_KEY".into(),
            session_token_env: Some("AWS_SESSION_TOKEN".into()),
        });
    }
    if let (Some(token_file), Some(role_arn)) = (
        env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
        env.get("AWS_ROLE_ARN"),
    ) {
        let sts_url = env
            .get("AWS_ENDPOINT_URL_STS")
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
        return Some(AwsAuth::WebIdentity {
            token_file: token_file.to_owned(),
            role_arn: role_arn.to_owned(),
            session_name: env
                .get("AWS_ROLE_SESSION_NAME")
                .unwrap_or("switchyard")
                .to_owned(),
            sts_url,
        });
    }
    let home = |rest: &str| env.get("HOME").map(|h| format!("{h}/.aws/{rest}"));
    let file = env
        .get("AWS_SHARED_CREDENTIALS_FILE")
        .map(str::to_owned)
        .or_else(|| home("credentials"));
    let config = env
        .get("AWS_CONFIG_FILE")
        .map(str::to_owned)
        .or_else(|| home("config"));
    let exists = |p: &Option<String>| {
        p.as_deref()
            .is_some_and(|p| std::path::Path::new(p).is_file())
    };
    if let Some(file) = &file
        && (env.get("AWS_PROFILE").is_some() || exists(&Some(file.clone())) || exists(&config))
    {
        let name = env.get("AWS_PROFILE").unwrap_or("default").to_owned();
        return Some(AwsAuth::Profile {
            name,
            file: file.clone(),
            config,
        });
    }
    let url = env
        .get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .map(str::to_owned)
        .or_else(|| {
            env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                .map(|r| format!("http://169.254.170.2{r}"))
        })?;
    Some(AwsAuth::Container {
        url,
        token_env: env
            .get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
            .map(|_| "AWS_CONTAINER_AUTHORIZATION_TOKEN".to_owned()),
        token_file: env
            .get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
            .map(str::to_owned),
    })
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`: lower-case letters,
/// digits and dashes, starting with a letter.
fn region_ok(r: &str) -> bool {
    (3..=32).contains(&r.len())
        && r.starts_with(|c: char| c.is_ascii_lowercase())
        && r.contains('-')
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The region's jurisdiction by its prefix (`eu-west-1` → `eu`), the
/// default when the entry names none.
pub(super) fn jurisdiction_of(region: &str) -> String {
    region.split('-').next().unwrap_or(region).to_owned()
}

/// Whether the environment holds credentials the embedded defaults can
/// register Bedrock with (a key, or access keys, and a region).
pub(super) fn embedded_ready(env: &Env) -> bool {
    let region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"));
    region.is_some_and(region_ok)
        && (env.get(BEARER_ENV).is_some()
            || (env.get("AWS_ACCESS_KEY_ID").is_some()
                && env.get("AWS_SECRET_ACCESS_KEY").is_some()))
}

/// The base URL of `region`'s runtime endpoint.
pub(super) fn base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str, env: &Env) -> Result<Config, ConfigError> {
        Config::parse(text, None, env)
    }

    const ENTRY: &str = "[[providers]]\nname = \"br\"\nkind = \"bedrock\"\n";

    #[test]
    fn the_region_names_the_endpoint_and_the_jurisdiction() {
        let c = parse(
            &format!("{ENTRY}region = \"eu-central-1\"\n"),
            &Env::default(),
        )
        .unwrap();
        let p = &c.providers[0];
        assert_eq!(
            p.base_url,
            "https://bedrock-runtime.eu-central-1.amazonaws.com"
        );
        assert_eq!(p.jurisdiction.as_deref(), Some("eu"));
        assert_eq!(p.region.as_deref(), Some("eu-central-1"));
        assert_eq!(p.aws, None, "no credentials anywhere");
        let c = parse(ENTRY, &Env::default().with("AWS_REGION", "us-west-2")).unwrap();
        assert_eq!(c.providers[0].jurisdiction.as_deref(), Some("us"));
        let e = parse(ENTRY, &Env::default()).unwrap_err();
        assert_eq!(e.key, "providers[0].region");
        let e = parse(&format!("{ENTRY}region = \"US East\"\n"), &Env::default()).unwrap_err();
        assert_eq!(e.key, "providers[0].region");
    }

    #[test]
    fn credentials_follow_the_documented_order() {
        let entry = format!("{ENTRY}region = \"us-east-1\"\n");
        let env = Env::default()
            .with(BEARER_ENV, "k")
            .with("AWS_ACCESS_KEY_ID", "a");
        let c = parse(&entry, &env).unwrap();
        assert_eq!(
            c.providers[0].aws,
            Some(AwsAuth::Bearer {
                env: BEARER_ENV.into()
            })
        );
        let c = parse(&entry, &Env::default().with("AWS_ACCESS_KEY_ID", "a")).unwrap();
        assert!(matches!(c.providers[0].aws, Some(AwsAuth::Keys { .. })));
        let c = parse(
            &format!("{entry}aws_access_key_id_env = \"K\"\naws_secret_access_key_env = \"S\"\n"),
            &env,
        )
        .unwrap();
        assert_eq!(
            c.providers[0].aws,
            Some(AwsAuth::Keys {
                access_key_id_env: "K".into(),
                secret_access_key_env: "S".into(),
                session_token_env: None,
            }),
            "named variables first"
        );
        let c = parse(
            &entry,
            &Env::default()
                .with("AWS_PROFILE", "work")
                .with("HOME", "/h"),
        )
        .unwrap();
        assert_eq!(
            c.providers[0].aws,
            Some(AwsAuth::Profile {
                name: "work".into(),
                file: "/h/.aws/credentials".into(),
                config: Some("/h/.aws/config".into()),
            })
        );
    }

    #[test]
    fn temporary_credentials_come_after_keys_and_profiles_before_containers() {
        let entry = format!("{ENTRY}region = \"eu-west-1\"\n");
        let wi = Env::default()
            .with("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token")
            .with("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")
            .with("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds");
        let c = parse(&entry, &wi).unwrap();
        assert_eq!(
            c.providers[0].aws,
            Some(AwsAuth::WebIdentity {
                token_file: "/var/run/token".into(),
                role_arn: "arn:aws:iam::1:role/r".into(),
                session_name: "switchyard".into(),
                sts_url: "https://sts.eu-west-1.amazonaws.com".into(),
            })
        );
        let c = parse(
            &entry,
            &Env::default().with("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds"),
        )
        .unwrap();
        assert_eq!(
            c.providers[0].aws,
            Some(AwsAuth::Container {
                url: "http://169.254.170.2/v2/creds".into(),
                token_env: None,
                token_file: None,
            })
        );
    }

    #[test]
    fn conflicting_or_foreign_keys_are_refused() {
        let entry = format!("{ENTRY}region = \"us-east-1\"\n");
        for (extra, key) in [
            (
                "bearer_token_env = \"B\"\naws_access_key_id_env = \"K\"\n",
                "bearer_token_env",
            ),
            (
                "aws_access_key_id_env = \"K\"\n",
                "aws_secret_access_key_env",
            ),
            ("api_key_env = \"K\"\n", "api_key_env"),
        ] {
            let e = parse(&format!("{entry}{extra}"), &Env::default()).unwrap_err();
            assert_eq!(e.key, format!("providers[0].{key}"), "{extra}");
        }
        let e = parse(
            "[[providers]]\nname = \"o\"\nkind = \"openai\"\nregion = \"us-east-1\"\n",
            &Env::default(),
        )
        .unwrap_err();
        assert_eq!(e.key, "providers[0].region");
    }

    #[test]
    fn the_embedded_defaults_register_bedrock_with_a_region_and_a_credential() {
        let env = Env::default()
            .with("AWS_REGION", "eu-west-1")
            .with(BEARER_ENV, "k");
        let c = Config::embedded(&env).unwrap();
        let p = c.provider("bedrock").unwrap();
        assert_eq!(
            p.base_url,
            "https://bedrock-runtime.eu-west-1.amazonaws.com"
        );
        assert_eq!(p.jurisdiction.as_deref(), Some("eu"));
        let none = Config::embedded(&Env::default().with(BEARER_ENV, "k")).unwrap();
        assert!(none.provider("bedrock").is_none(), "no region, no Bedrock");
    }
}
