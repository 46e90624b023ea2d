//! `kind = "azure"`: Azure OpenAI / AI Foundry's settings (the deployment
//! form's `api_version`) and where its bearer tokens come from (Microsoft
//! Entra ID: a token in a variable, or client credentials).

use serde::Serialize;

use super::providers::{Entry, ProviderKind, RawProvider, check_base_url};
use super::{ConfigError, Env};

/// The variable Azure's own SDKs read the resource key from.
pub const AZURE_KEY_ENV: &str = "AZURE_OPENAI_API_KEY";
/// What an Entra ID token for Azure OpenAI is asked for.
pub const AZURE_SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// A bearer token's source. Names variables and URLs, never values.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum TokenSource {
    /// A token some other process keeps fresh in a variable.
    Variable { env: String },
    /// OAuth 2.0 client credentials against `token_url`.
    ClientCredentials {
        token_url: String,
        client_id_env: String,
        client_secret_env: String,
        scope: String,
    },
}

/// The `azure` settings (`api_version`, Entra ID credentials), refused on
/// other kinds.
pub(super) fn azure(
    i: usize,
    p: &RawProvider,
    kind: ProviderKind,
    env: &Env,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(Option<String>, Option<TokenSource>), ConfigError> {
    let at = |k: &str| format!("providers[{i}].{k}");
    let entry = Entry { i, err };
    if kind != ProviderKind::Azure {
        entry.only(
            ProviderKind::Azure,
            &[
                ("api_version", p.api_version.is_some()),
                ("entra_token_env", p.entra_token_env.is_some()),
                ("entra", p.entra.is_some()),
            ],
        )?;
        return Ok((None, None));
    }
    if let Some(v) = &p.api_version
        && !api_version_ok(v)
    {
        return Err(err(
            &at("api_version"),
            format!(
                "expected a date version such as \"2024-10-21\" or \"2025-04-01-preview\", got \"{v}\""
            ),
        ));
    }
    let variable = |key: &str, v: &str| entry.variable(key, v);
    let token = match (&p.entra_token_env, &p.entra) {
        (Some(_), Some(_)) => {
            return Err(err(
                &at("entra"),
                "set entra_token_env or [providers.entra], not both".into(),
            ));
        }
        (Some(v), None) => Some(TokenSource::Variable {
            env: variable("entra_token_env", v)?,
        }),
        (None, Some(e)) => {
            let token_url = match &e.token_url {
                Some(u) => check_base_url(u).map_err(|m| err(&at("entra.token_url"), m))?,
                None => {
                    let var = e.tenant_id_env.as_deref().unwrap_or("AZURE_TENANT_ID");
                    let tenant = env.get(var).map(str::trim).unwrap_or_default();
                    if tenant.is_empty()
                        || !tenant
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                    {
                        return Err(err(
                            &at("entra.tenant_id_env"),
                            format!("{var} must hold the tenant id (or set entra.token_url)"),
                        ));
                    }
                    format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
                }
            };
            Some(TokenSource::ClientCredentials {
                token_url,
                client_id_env: variable(
                    "entra.client_id_env",
                    e.client_id_env.as_deref().unwrap_or("AZURE_CLIENT_ID"),
                )?,
                client_secret_env: variable(
                    "entra.client_secret_env",
                    e.client_secret_env
                        .as_deref()
                        .unwrap_or("AZURE_CLIENT_SECRET"),
                )?,
                scope: e.scope.clone().unwrap_or_else(|| AZURE_SCOPE.to_owned()),
            })
        }
        (None, None) => None,
    };
    if token.is_some() && p.api_key_env.is_some() {
        return Err(err(
            &at("api_key_env"),
            "an Entra ID token replaces the api-key: set one of the two".into(),
        ));
    }
    Ok((p.api_version.clone(), token))
}

/// `2024-10-21` or `2025-04-01-preview`.
fn api_version_ok(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    let b = date.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::providers::ProviderKind;

    fn parse(text: &str, env: &Env) -> Result<Config, ConfigError> {
        Config::parse(text, None, env)
    }

    fn azure(extra: &str) -> String {
        format!(
            "[[providers]]\nname = \"az\"\nkind = \"azure\"\nbase_url = \"https://r.openai.azure.com/openai/v1\"\n{extra}"
        )
    }

    #[test]
    fn azure_takes_a_key_by_default_and_the_deployment_form_with_a_version() {
        let c = parse(&azure(""), &Env::default()).unwrap();
        let p = &c.providers[0];
        assert_eq!(p.api_key_env.as_deref(), Some(AZURE_KEY_ENV));
        assert_eq!((p.api_version.as_deref(), &p.token), (None, &None));
        assert!(!p.responses);
        let c = parse(
            &azure("api_version = \"2025-04-01-preview\"\nresponses = true\n"),
            &Env::default(),
        )
        .unwrap();
        assert_eq!(
            c.providers[0].api_version.as_deref(),
            Some("2025-04-01-preview")
        );
        assert!(c.providers[0].responses);
        let e = parse(&azure("api_version = \"latest\"\n"), &Env::default()).unwrap_err();
        assert_eq!(e.key, "providers[0].api_version");
        let e = parse(
            "[[providers]]\nname = \"az\"\nkind = \"azure\"\n",
            &Env::default(),
        )
        .unwrap_err();
        assert_eq!(e.key, "providers[0].base_url");
    }

    #[test]
    fn entra_credentials_resolve_their_token_endpoint() {
        let env = Env::default().with("AZURE_TENANT_ID", "contoso-tenant");
        let c = parse(&azure("[providers.entra]\n"), &env).unwrap();
        let p = &c.providers[0];
        assert_eq!(p.api_key_env, None);
        assert_eq!(
            p.token,
            Some(TokenSource::ClientCredentials {
                token_url: "https://login.microsoftonline.com/contoso-tenant/oauth2/v2.0/token"
                    .into(),
                client_id_env: "AZURE_CLIENT_ID".into(),
                client_secret_env: "AZURE_CLIENT_SECRET".into(),
                scope: AZURE_SCOPE.into(),
            })
        );
        let e = parse(&azure("[providers.entra]\n"), &Env::default()).unwrap_err();
        assert_eq!(e.key, "providers[0].entra.tenant_id_env");
        assert!(e.message.contains("AZURE_TENANT_ID"), "{}", e.message);
        let c = parse(
            &azure("[providers.entra]\ntoken_url = \"http://127.0.0.1:9/token\"\nclient_secret_env = \"S\"\n"),
            &Env::default(),
        )
        .unwrap();
        assert!(matches!(
            &c.providers[0].token,
            Some(TokenSource::ClientCredentials { token_url, client_secret_env, .. })
                if token_url == "http://127.0.0.1:9/token" && client_secret_env == "S"
        ));
        let c = parse(&azure("entra_token_env = \"AZ_TOKEN\"\n"), &Env::default()).unwrap();
        assert_eq!(
            c.providers[0].token,
            Some(TokenSource::Variable {
                env: "AZ_TOKEN".into()
            })
        );
    }

    #[test]
    fn azure_keys_are_refused_where_they_mean_nothing_or_conflict() {
        let e = parse(
            "[[providers]]\nname = \"o\"\nkind = \"openai\"\napi_version = \"2024-10-21\"\n",
            &Env::default(),
        )
        .unwrap_err();
        assert_eq!(e.key, "providers[0].api_version");
        let e = parse(
            &azure("entra_token_env = \"T\"\n[providers.entra]\ntoken_url = \"http://h/t\"\n"),
            &Env::default(),
        )
        .unwrap_err();
        assert_eq!(e.key, "providers[0].entra");
        let e = parse(
            &azure("api_key_env = \"K\"\nentra_token_env = \"T\"\n"),
            &Env::default(),
        )
        .unwrap_err();
        assert_eq!(e.key, "providers[0].api_key_env");
        let e = parse(&azure("[providers.entra]\nbogus = 1\n"), &Env::default()).unwrap_err();
        assert!(e.key.starts_with("providers"), "{}", e.key);
    }

    #[test]
    fn the_azure_endpoint_variables_register_a_provider() {
        let env = Env::default()
            .with("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com/")
            .with(AZURE_KEY_ENV, "k");
        let c = Config::embedded(&env).unwrap();
        let p = c.provider("azure").unwrap();
        assert_eq!(p.base_url, "https://r.openai.azure.com/openai/v1");
        assert_eq!(p.kind, ProviderKind::Azure);
        let none =
            Config::embedded(&Env::default().with("AZURE_OPENAI_ENDPOINT", "https://r")).unwrap();
        assert!(none.provider("azure").is_none());
    }
}
