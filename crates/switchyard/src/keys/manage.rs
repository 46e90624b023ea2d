//! Creating, changing and revoking keys: one set of rules shared by the
//! admin API and the `switchyard keys` command.
//!
//! A key's settings arrive as a JSON object with the names DESIGN.md fixes
//! (`name`, `models`, `rpm`, `tpm`, `budget_usd`, `budget_period`,
//! `metadata`, `log`, `jurisdictions`, `cache_namespace`, `cache_ttl_s`).
//! Unknown or privileged fields (`id`, `key`, `hash`, `created_at`...) are
//! refused by name, never ignored. On update a field set to `null` is
//! cleared and an absent one is left as it was.

use serde::{Deserialize, Deserializer};

use super::{BudgetPeriod, KeyRecord, hash, new_secret, store};
use crate::config::LogMode;
use crate::storage::Storage;

/// A settings field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Present-and-null is `Some(None)`; absent is `None`.
fn double<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A key's settings as `POST` and `PATCH /admin/v1/keys` take them: a
/// field left out keeps its value, `null` clears it.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double")]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double")]
    pub tools: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double")]
    pub rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double")]
    pub tpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double")]
    pub max_concurrent: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double")]
    pub budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "double")]
    pub budget_period: Option<Option<BudgetPeriod>>,
    #[serde(default, deserialize_with = "double")]
    pub metadata: Option<Option<serde_json::Map<String, serde_json::Value>>>,
    #[serde(default, deserialize_with = "double")]
    pub log: Option<Option<LogMode>>,
    #[serde(default, deserialize_with = "double")]
    pub jurisdictions: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double")]
    pub cache_namespace: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    pub cache_ttl_s: Option<Option<u64>>,
}

impl KeySpec {
    /// Parses a JSON body, naming the field at fault.
    pub fn parse(body: &[u8]) -> Result<KeySpec, FieldError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let msg = match inner.rfind(" at line ") {
                Some(i) => inner[..i].to_owned(),
                None => inner,
            };
            // serde names an unknown field in the message, not the path.
            let field = match msg.strip_prefix("unknown field `") {
                Some(rest) => rest.split('`').next().unwrap_or("").to_owned(),
                None if path == "." => String::new(),
                None => path,
            };
            FieldError {
                field,
                message: msg,
            }
        })
    }

    /// Applies these settings to `k`, checking each one.
    pub fn apply(self, k: &mut KeyRecord) -> Result<(), FieldError> {
        if let Some(name) = self.name {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(bad("name", "expected 1 to 100 characters"));
            }
            k.name = name;
        }
        if let Some(models) = self.models {
            let models = models.unwrap_or_default();
            for (i, m) in models.iter().enumerate() {
                if m.is_empty() || m.len() > 200 || m.chars().any(char::is_whitespace) {
                    return Err(bad(
                        &format!("models[{i}]"),
                        "expected a model or route glob such as `openai/*` or `smart`",
                    ));
                }
            }
            k.models = models;
        }
        if let Some(tools) = self.tools {
            let tools = tools.unwrap_or_default();
            for (i, t) in tools.iter().enumerate() {
                if t.is_empty() || t.len() > 200 || t.chars().any(char::is_whitespace) {
                    return Err(bad(
                        &format!("tools[{i}]"),
                        "expected a tool glob such as `github` or `jira__search_*`",
                    ));
                }
            }
            k.tools = tools;
        }
        if let Some(rpm) = self.rpm {
            if rpm == Some(0) {
                return Err(bad("rpm", "must be at least 1 (or null for no limit)"));
            }
            k.rpm = rpm;
        }
        if let Some(tpm) = self.tpm {
            if tpm == Some(0) {
                return Err(bad("tpm", "must be at least 1 (or null for no limit)"));
            }
            k.tpm = tpm;
        }
        if let Some(n) = self.max_concurrent {
            if n == Some(0) {
                return Err(bad(
                    "max_concurrent",
                    "must be at least 1 (or null for no bound)",
                ));
            }
            k.max_concurrent = n;
        }
        if let Some(b) = self.budget_usd {
            if let Some(v) = b
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(bad("budget_usd", "expected an amount of US dollars >= 0"));
            }
            k.budget_usd = b;
        }
        if let Some(p) = self.budget_period {
            k.budget_period = p;
        }
        if k.budget_usd.is_some() && k.budget_period.is_none() {
            k.budget_period = Some(BudgetPeriod::Month);
        }
        if k.budget_usd.is_none() && k.budget_period.is_some() {
            return Err(bad("budget_period", "only means something with budget_usd"));
        }
        if let Some(m) = self.metadata {
            let m = m.unwrap_or_default();
            check_tags(&m).map_err(|(field, msg)| bad(&field, msg))?;
            k.metadata = m;
        }
        if let Some(l) = self.log {
            k.log = l;
        }
        if let Some(j) = self.jurisdictions {
            if let Some(list) = &j {
                if list.is_empty() {
                    return Err(bad(
                        "jurisdictions",
                        "an empty list would allow nothing; use null for any",
                    ));
                }
                for (i, t) in list.iter().enumerate() {
                    if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                        return Err(bad(
                            &format!("jurisdictions[{i}]"),
                            "expected a tag such as `eu` or `us`",
                        ));
                    }
                }
            }
            k.jurisdictions = j.map(|l| l.into_iter().map(|t| t.to_ascii_lowercase()).collect());
        }
        if let Some(ns) = self.cache_namespace {
            if let Some(n) = &ns
                && (n.is_empty()
                    || n.len() > 64
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
            {
                return Err(bad(
                    "cache_namespace",
                    "expected 1 to 64 letters, digits, '-', '_' or '.'",
                ));
            }
            k.cache_namespace = ns;
        }
        if let Some(t) = self.cache_ttl_s {
            if t.is_some_and(|t| t > crate::cache::MAX_TTL_S) {
                return Err(bad(
                    "cache_ttl_s",
                    format!(
                        "expected whole seconds from 0 (off) to {}",
                        crate::cache::MAX_TTL_S
                    ),
                ));
            }
            k.cache_ttl_s = t;
        }
        Ok(())
    }
}

/// Metadata tags: at most 16, string/number/bool values, short keys.
pub fn check_tags(m: &serde_json::Map<String, serde_json::Value>) -> Result<(), (String, String)> {
    if m.len() > 16 {
        return Err((
            "metadata".into(),
            format!("at most 16 entries, got {}", m.len()),
        ));
    }
    for (k, v) in m {
        if k.is_empty() || k.len() > 64 {
            return Err((
                format!("metadata.{k}"),
                "tag names are 1 to 64 characters".into(),
            ));
        }
        match v {
            serde_json::Value::String(s) if s.len() <= 256 => {}
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {}
            serde_json::Value::String(_) => {
                return Err((
                    format!("metadata.{k}"),
                    "string values are at most 256 bytes".into(),
                ));
            }
            _ => {
                return Err((
                    format!("metadata.{k}"),
                    "values must be strings, numbers or booleans, not objects, arrays or null"
                        .into(),
                ));
            }
        }
    }
    Ok(())
}

/// Creates a key; returns it and its secret, which is not stored.
pub async fn create(s: &Storage, spec: KeySpec) -> Result<(KeyRecord, String), ManageError> {
    if spec.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(ManageError::Field(bad("name", "required")));
    }
    let secret = new_secret();
    let now = crate::clock::unix_ms();
    let mut k = KeyRecord {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        name: String::new(),
        hash: hash(&secret),
        last4: secret[secret.len() - 4..].to_owned(),
        models: Vec::new(),
        tools: Vec::new(),
        rpm: None,
        tpm: None,
        max_concurrent: None,
        budget_usd: None,
        budget_period: None,
        metadata: Default::default(),
        log: None,
        jurisdictions: None,
        cache_namespace: None,
        cache_ttl_s: None,
        created_at: now,
        updated_at: now,
        revoked_at: None,
    };
    spec.apply(&mut k).map_err(ManageError::Field)?;
    store::insert(s, &k).await?;
    Ok((k, secret))
}

/// Changes a key's settings.
pub async fn update(s: &Storage, id: &str, spec: KeySpec) -> Result<KeyRecord, ManageError> {
    let Some(mut k) = store::get(s, id).await? else {
        return Err(ManageError::NotFound);
    };
    if k.revoked_at.is_some() {
        return Err(ManageError::Revoked);
    }
    spec.apply(&mut k).map_err(ManageError::Field)?;
    // Strictly later, so every replica's change stamp moves.
    k.updated_at = crate::clock::unix_ms().max(k.updated_at + 1);
    store::update(s, &k).await?;
    Ok(k)
}

/// Revokes a key at once.
pub async fn revoke(s: &Storage, id: &str) -> Result<KeyRecord, ManageError> {
    let Some(mut k) = store::get(s, id).await? else {
        return Err(ManageError::NotFound);
    };
    if k.revoked_at.is_none() {
        let now = crate::clock::unix_ms().max(k.updated_at + 1);
        k.revoked_at = Some(now);
        k.updated_at = now;
        store::update(s, &k).await?;
    }
    Ok(k)
}

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{0}")]
    Field(FieldError),
    #[error("no key with that id")]
    NotFound,
    #[error("the key is revoked")]
    Revoked,
    #[error("storage: {0}")]
    Store(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_privileged_fields_are_refused_by_name() {
        for (body, field) in [
            (r#"{"name":"a","hash":"x"}"#, "hash"),
            (r#"{"name":"a","id":"key_1"}"#, "id"),
            (r#"{"name":"a","rpm":"fast"}"#, "rpm"),
            (r#"{"name":"a","budget_period":"week"}"#, "budget_period"),
            (r#"{"name":"a","models":["ok", 3]}"#, "models[1]"),
        ] {
            let e = KeySpec::parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.field, field, "{body}: {e}");
        }
    }

    #[test]
    fn values_are_checked() {
        let mut k = KeyRecord {
            id: "k".into(),
            name: "n".into(),
            hash: [0; 32],
            last4: "abcd".into(),
            models: vec![],
            tools: vec![],
            rpm: None,
            tpm: None,
            max_concurrent: None,
            budget_usd: None,
            budget_period: None,
            metadata: Default::default(),
            log: None,
            jurisdictions: None,
            cache_namespace: None,
            cache_ttl_s: None,
            created_at: 0,
            updated_at: 0,
            revoked_at: None,
        };
        for (body, field) in [
            (r#"{"rpm":0}"#, "rpm"),
            (r#"{"budget_usd":-1}"#, "budget_usd"),
            (r#"{"metadata":{"a":{"b":1}}}"#, "metadata.a"),
            (r#"{"jurisdictions":[]}"#, "jurisdictions"),
            (r#"{"cache_namespace":"a b"}"#, "cache_namespace"),
            (r#"{"name":"  "}"#, "name"),
        ] {
            let e = KeySpec::parse(body.as_bytes())
                .unwrap()
                .apply(&mut k.clone())
                .unwrap_err();
            assert_eq!(e.field, field, "{body}");
        }
        KeySpec::parse(br#"{"budget_usd":5,"rpm":10,"jurisdictions":["EU"]}"#)
            .unwrap()
            .apply(&mut k)
            .unwrap();
        assert_eq!(k.budget_period, Some(BudgetPeriod::Month));
        assert_eq!(k.jurisdictions, Some(vec!["eu".to_string()]));
        KeySpec::parse(br#"{"rpm":null}"#)
            .unwrap()
            .apply(&mut k)
            .unwrap();
        assert_eq!(
            (k.rpm, k.budget_usd),
            (None, Some(5.0)),
            "null clears, absent keeps"
        );
    }
}
