//! `kind = "vertex"`: the Google Cloud project and location, and where the
//! access tokens come from.
//!
//! Tokens, the first that applies (as Google's own libraries look for
//! them): the credentials file the variable `credentials_file_env` names
//! (default `GOOGLE_APPLICATION_CREDENTIALS`: a service-account key or an
//! authorized user's refresh token); else the metadata server of the
//! machine the gateway runs on. Only the path is decided here; the file is
//! read when providers are built.

use serde::Serialize;

use super::providers::{Entry, ProviderKind, RawProvider};
use super::{ConfigError, Env};

/// The variable Google's libraries read the credentials file's path from.
pub const CREDENTIALS_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// Where a Vertex provider's tokens come from. Names files and variables,
/// never their contents.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum GoogleAuth {
    /// A credentials file (service account or authorized user).
    File { path: String },
    /// The metadata server (`GCE_METADATA_HOST` or
    /// `metadata.google.internal`).
    Metadata { host: String },
}

/// What a `vertex` entry resolves to.
pub(super) struct Resolved {
    pub project: Option<String>,
    pub location: Option<String>,
    pub auth: Option<GoogleAuth>,
}

/// The `vertex` settings, refused on other kinds.
pub(super) fn resolve(
    i: usize,
    p: &RawProvider,
    kind: ProviderKind,
    env: &Env,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Resolved, ConfigError> {
    let at = |k: &str| format!("providers[{i}].{k}");
    let entry = Entry { i, err };
    if kind != ProviderKind::Vertex {
        entry.only(
            ProviderKind::Vertex,
            &[
                ("project", p.project.is_some()),
                ("location", p.location.is_some()),
                ("credentials_file_env", p.credentials_file_env.is_some()),
            ],
        )?;
        return Ok(Resolved {
            project: None,
            location: None,
            auth: None,
        });
    }
    if p.api_key_env.is_some() {
        return Err(err(
            &at("api_key_env"),
            "vertex authenticates with Google credentials: use credentials_file_env".into(),
        ));
    }
    let project = p
        .project
        .clone()
        .or_else(|| env.get("GOOGLE_CLOUD_PROJECT").map(str::to_owned));
    let project = match project {
        Some(p) if name_ok(&p) => p,
        Some(p) => {
            return Err(err(
                &at("project"),
                format!("expected a project id such as \"my-project\", got \"{p}\""),
            ));
        }
        None => {
            return Err(err(
                &at("project"),
                "missing; set project or GOOGLE_CLOUD_PROJECT".into(),
            ));
        }
    };
    let location = p
        .location
        .clone()
        .or_else(|| env.get("GOOGLE_CLOUD_LOCATION").map(str::to_owned));
    let location = match location {
        Some(l) if name_ok(&l) => l,
        Some(l) => {
            return Err(err(
                &at("location"),
                format!("expected a location such as \"europe-west4\" or \"global\", got \"{l}\""),
            ));
        }
        None => {
            return Err(err(
                &at("location"),
                "missing; set location (such as \"europe-west4\" or \"global\") or GOOGLE_CLOUD_LOCATION"
                    .into(),
            ));
        }
    };
    let var = entry.variable(
        "credentials_file_env",
        p.credentials_file_env.as_deref().unwrap_or(CREDENTIALS_ENV),
    )?;
    let var = var.as_str();
    let auth = match env.get(var).filter(|v| !v.is_empty()) {
        Some(path) => GoogleAuth::File {
            path: path.to_owned(),
        },
        // A variable the entry named must be set; the default may not be.
        None if p.credentials_file_env.is_some() => {
            return Err(err(
                &at("credentials_file_env"),
                format!("{var} is not set; it must hold the credentials file's path"),
            ));
        }
        None => GoogleAuth::Metadata {
            host: env
                .get("GCE_METADATA_HOST")
                .unwrap_or("metadata.google.internal")
                .to_owned(),
        },
    };
    Ok(Resolved {
        project: Some(project),
        location: Some(location),
        auth: Some(auth),
    })
}

/// Project ids and locations: lower-case letters, digits and dashes.
fn name_ok(s: &str) -> bool {
    (2..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The endpoint of `project` at `location` (`global` has no regional
/// host).
pub(super) fn base_url(project: &str, location: &str) -> String {
    let host = match location {
        "global" => "aiplatform.googleapis.com".to_owned(),
        l => format!("{l}-aiplatform.googleapis.com"),
    };
    format!("https://{host}/v1/projects/{project}/locations/{location}")
}

/// The jurisdiction of a location (`europe-west4` → `eu`, `us-central1`
/// → `us`, `asia-northeast1` → `asia`); none for `global`, which may serve
/// from anywhere.
pub(super) fn jurisdiction_of(location: &str) -> Option<String> {
    match location.split('-').next().unwrap_or(location) {
        "global" => None,
        "europe" => Some("eu".into()),
        other => Some(other.to_owned()),
    }
}

/// Whether the environment holds what the embedded defaults register
/// Vertex with: a project and a credentials file.
pub(super) fn embedded_ready(env: &Env) -> bool {
    env.get("GOOGLE_CLOUD_PROJECT").is_some_and(name_ok)
        && env.get(CREDENTIALS_ENV).is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str, env: &Env) -> Result<Config, ConfigError> {
        Config::parse(text, None, env)
    }

    const ENTRY: &str = "[[providers]]\nname = \"vx\"\nkind = \"vertex\"\n";

    #[test]
    fn project_and_location_name_the_endpoint_and_the_jurisdiction() {
        let c = parse(
            &format!("{ENTRY}project = \"my-project\"\nlocation = \"europe-west4\"\n"),
            &Env::default().with(CREDENTIALS_ENV, "/k.json"),
        )
        .unwrap();
        let p = &c.providers[0];
        assert_eq!(
            p.base_url,
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-project/locations/europe-west4"
        );
        assert_eq!(p.jurisdiction.as_deref(), Some("eu"));
        assert_eq!(
            p.google,
            Some(GoogleAuth::File {
                path: "/k.json".into()
            })
        );
        let c = parse(
            &format!("{ENTRY}location = \"global\"\n"),
            &Env::default().with("GOOGLE_CLOUD_PROJECT", "p-1"),
        )
        .unwrap();
        let p = &c.providers[0];
        assert_eq!(
            p.base_url,
            "https://aiplatform.googleapis.com/v1/projects/p-1/locations/global"
        );
        assert_eq!(p.jurisdiction, None);
        assert_eq!(
            p.google,
            Some(GoogleAuth::Metadata {
                host: "metadata.google.internal".into()
            })
        );
    }

    #[test]
    fn what_is_missing_is_named() {
        let e = parse(&format!("{ENTRY}location = \"global\"\n"), &Env::default()).unwrap_err();
        assert_eq!(e.key, "providers[0].project");
        let e = parse(&format!("{ENTRY}project = \"p-1\"\n"), &Env::default()).unwrap_err();
        assert_eq!(e.key, "providers[0].location");
        let e = parse(
            &format!("{ENTRY}project = \"p-1\"\nlocation = \"global\"\ncredentials_file_env = \"MY_KEY\"\n"),
            &Env::default(),
        )
        .unwrap_err();
        assert_eq!(e.key, "providers[0].credentials_file_env");
        assert!(e.message.contains("MY_KEY"), "{}", e.message);
        let e = parse(
            "[[providers]]\nname = \"o\"\nkind = \"openai\"\nproject = \"p-1\"\n",
            &Env::default(),
        )
        .unwrap_err();
        assert_eq!(e.key, "providers[0].project");
    }

    #[test]
    fn the_embedded_defaults_register_vertex_with_a_project_and_a_key_file() {
        let env = Env::default()
            .with("GOOGLE_CLOUD_PROJECT", "p-1")
            .with(CREDENTIALS_ENV, "/k.json");
        let c = Config::embedded(&env).unwrap();
        let p = c.provider("vertex").unwrap();
        assert!(
            p.base_url.ends_with("/projects/p-1/locations/global"),
            "{}",
            p.base_url
        );
        assert!(
            Config::embedded(&Env::default().with("GOOGLE_CLOUD_PROJECT", "p-1"))
                .unwrap()
                .provider("vertex")
                .is_none()
        );
    }
}
