//! Named profiles of the shared credentials file (`[name]`) and config file
//! (`[profile name]`, `[default]`), as AWS's SDKs read them: static keys,
//! a role assumed with another profile's keys (`role_arn` +
//! `source_profile`), a role assumed with a web identity token
//! (`role_arn` + `web_identity_token_file`), or a `credential_process`.

use std::collections::HashMap;

use super::super::sigv4::Credentials;
use super::temporary::Source;

/// What a profile gives.
pub(super) enum Found {
    Keys(Credentials),
    Temporary(Source),
}

type Sections = HashMap<String, HashMap<String, String>>;

/// INI sections by profile name. In the config file a section is
/// `[profile name]` (or `[default]`); in the credentials file, `[name]`.
fn sections(text: &str, config: bool, into: &mut Sections) {
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            current = match (config, section.strip_prefix("profile ")) {
                (true, Some(name)) => Some(name.trim().to_owned()),
                (true, None) if section == "default" => Some(section.to_owned()),
                (true, None) => None,
                (false, _) => Some(section.to_owned()),
            };
            continue;
        }
        let (Some(name), Some((key, value))) = (&current, line.split_once('=')) else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        // The credentials file's keys win over the config file's: it is
        // read last, and overwrites.
        into.entry(name.clone())
            .or_default()
            .insert(key.trim().to_owned(), value.to_owned());
    }
}

/// The profile `name` of the two files' texts; `sts` and `region` are
/// where a role is assumed.
pub(super) fn resolve(
    name: &str,
    credentials: Option<&str>,
    config: Option<&str>,
    sts: &http::Uri,
    region: &str,
) -> Option<Found> {
    let mut all = Sections::new();
    if let Some(c) = config {
        sections(c, true, &mut all);
    }
    if let Some(c) = credentials {
        sections(c, false, &mut all);
    }
    found(&all, name, sts, region, 0)
}

fn found(all: &Sections, name: &str, sts: &http::Uri, region: &str, depth: u8) -> Option<Found> {
    let p = all.get(name)?;
    let get = |k: &str| p.get(k).cloned();
    let session_name = get("role_session_name").unwrap_or_else(|| "switchyard".into());
    if let Some(role_arn) = get("role_arn") {
        if let Some(token_file) = get("web_identity_token_file") {
            return Some(Found::Temporary(Source::WebIdentity {
                token_file,
                role_arn,
                session_name,
                sts: sts.clone(),
            }));
        }
        // A chain of roles: the source's own keys sign the request. A
        // chain deeper than a few profiles is a loop.
        let source = get("source_profile")?;
        if depth > 4 {
            return None;
        }
        let source = match found(all, &source, sts, region, depth + 1)? {
            Found::Keys(k) => k,
            Found::Temporary(_) => return None,
        };
        return Some(Found::Temporary(Source::AssumeRole {
            role_arn,
            session_name,
            sts: sts.clone(),
            region: region.to_owned(),
            source,
        }));
    }
    if let Some(command) = get("credential_process") {
        return Some(Found::Temporary(Source::Process { command }));
    }
    Some(Found::Keys(Credentials {
        access_key_id: get("aws_access_key_id")?,
        secret_access_key: get("aws_secret_access_key")?,
        session_token: get("aws_session_token"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts() -> http::Uri {
        "https://sts.eu-west-1.amazonaws.com/".parse().unwrap()
    }

    #[test]
    fn keys_roles_and_processes_by_name() {
        let credentials = "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n\
                           # a comment\n[base]\naws_access_key_id=AKIDBASE\naws_secret_access_key=s2\naws_session_token = t2\n";
        let config = "[default]\nregion = eu-west-1\n[profile dev]\nrole_arn = arn:aws:iam::1:role/dev\nsource_profile = base\n\
                      [profile ci]\nrole_arn = arn:aws:iam::1:role/ci\nweb_identity_token_file = /t\n\
                      [profile tool]\ncredential_process = /usr/bin/creds --json\n[profile loop]\nrole_arn = r\nsource_profile = loop\n\
                      [base]\naws_access_key_id = NOT-A-PROFILE\n";
        let r = |name: &str| resolve(name, Some(credentials), Some(config), &sts(), "eu-west-1");
        assert!(matches!(r("default"), Some(Found::Keys(k)) if k.access_key_id == "AKIDDEFAULT"));
        assert!(
            matches!(r("base"), Some(Found::Keys(k)) if k.access_key_id == "AKIDBASE" && k.session_token.as_deref() == Some("t2")),
            "[base] in the config file is not a profile"
        );
        assert!(matches!(
            r("dev"),
            Some(Found::Temporary(Source::AssumeRole { role_arn, source, .. }))
                if role_arn == "arn:aws:iam::1:role/dev" && source.access_key_id == "AKIDBASE"
        ));
        assert!(matches!(
            r("ci"),
            Some(Found::Temporary(Source::WebIdentity { token_file, .. })) if token_file == "/t"
        ));
        assert!(matches!(
            r("tool"),
            Some(Found::Temporary(Source::Process { command })) if command == "/usr/bin/creds --json"
        ));
        assert!(r("loop").is_none());
        assert!(r("missing").is_none());
    }
}
