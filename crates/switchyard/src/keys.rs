//! Switchyard keys: what an agent presents instead of a provider key, and
//! what its holder may do and spend.
//!
//! A secret is `sk-sy-` + 32 random bytes in base62, shown once at creation
//! and stored only as its SHA-256 (the secret has 256 bits of entropy, so a
//! fast hash is enough). Lookups hit an in-memory cache of every live key;
//! a poll of the keys table's change stamp every [`REFRESH`] reloads it, so a
//! revocation made on any replica takes effect everywhere within a second.

pub mod manage;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::LogMode;
use crate::storage::Storage;

/// How often each process looks for key changes made elsewhere.
pub const REFRESH: Duration = Duration::from_millis(400);

pub const SECRET_PREFIX: &str = "sk-sy-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    Day,
    Month,
    Total,
}

impl BudgetPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
            BudgetPeriod::Total => "total",
        }
    }

    pub fn parse(s: &str) -> Option<BudgetPeriod> {
        match s {
            "day" => Some(BudgetPeriod::Day),
            "month" => Some(BudgetPeriod::Month),
            "total" => Some(BudgetPeriod::Total),
            _ => None,
        }
    }
}

/// Everything a key allows; the stored row minus nothing secret.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub hash: [u8; 32],
    /// The last four characters of the secret, to tell keys apart.
    pub last4: String,
    /// Model and route globs; empty allows every model.
    pub models: Vec<String>,
    /// HTTP tool and MCP tool globs (`github`, `jira__search_*`); empty
    /// allows none.
    pub tools: Vec<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    /// Requests in flight at once (a stream until its end).
    pub max_concurrent: Option<u32>,
    pub budget_usd: Option<f64>,
    pub budget_period: Option<BudgetPeriod>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub log: Option<LogMode>,
    pub jurisdictions: Option<Vec<String>>,
    pub cache_namespace: Option<String>,
    pub cache_ttl_s: Option<u64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
}

impl KeyRecord {
    /// Whether the key's globs allow `model` (a route name or
    /// `provider/model`).
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|g| glob(g, model))
    }

    /// Whether the key's globs allow tool `name` (an HTTP tool, or an MCP
    /// tool as `{server}__{tool}`).
    pub fn allows_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|g| glob(g, name))
    }

    /// The cache namespace: the key's own, or one per key.
    pub fn namespace(&self) -> &str {
        self.cache_namespace.as_deref().unwrap_or(&self.id)
    }
}

/// `*` matches any run of characters (slashes included); everything else
/// matches itself. Compared byte by byte: UTF-8 is self-synchronising, so a
/// literal character can only match whole characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// A fresh secret: `sk-sy-` + 32 random bytes from the OS, in base62.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", base62(&bytes))
}

fn base62(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut num = bytes.to_vec();
    let mut out = Vec::new();
    while num.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        out.push(ALPHABET[rem as usize]);
    }
    // Fixed width, so every secret is the same length.
    while out.len() < 43 {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Live keys, by hash, kept fresh from storage.
#[derive(Debug)]
pub struct Keys {
    storage: Storage,
    by_hash: RwLock<HashMap<[u8; 32], Arc<KeyRecord>>>,
    /// The change stamp the cache was loaded at.
    stamp: RwLock<(i64, i64)>,
}

impl Keys {
    pub async fn load(storage: Storage) -> anyhow::Result<Keys> {
        let keys = Keys {
            storage,
            by_hash: RwLock::new(HashMap::new()),
            stamp: RwLock::new((-1, -1)),
        };
        keys.refresh().await?;
        Ok(keys)
    }

    /// Reloads every live key if anything changed since the last load.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let stamp = store::change_stamp(&self.storage).await?;
        if *self.stamp.read().unwrap_or_else(|p| p.into_inner()) == stamp {
            return Ok(());
        }
        let live = store::list(&self.storage, false).await?;
        let map = live.into_iter().map(|k| (k.hash, Arc::new(k))).collect();
        *self.by_hash.write().unwrap_or_else(|p| p.into_inner()) = map;
        *self.stamp.write().unwrap_or_else(|p| p.into_inner()) = stamp;
        Ok(())
    }

    /// The live key a presented secret belongs to. Looks in the cache, then
    /// (for a key created on another replica in the last moments) in storage.
    pub async fn authenticate(&self, presented: &str) -> Option<Arc<KeyRecord>> {
        if !presented.starts_with(SECRET_PREFIX) || presented.len() > 128 {
            return None;
        }
        let h = hash(presented);
        let cached = self
            .by_hash
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&h)
            .cloned();
        let found = match cached {
            Some(k) => Some(k),
            None => {
                let k = store::find_by_hash(&self.storage, &h)
                    .await
                    .ok()
                    .flatten()?;
                let k = Arc::new(k);
                self.by_hash
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(h, k.clone());
                Some(k)
            }
        }?;
        // The map lookup found it by hash; confirm in constant time.
        (bool::from(found.hash.ct_eq(&h)) && found.revoked_at.is_none()).then_some(found)
    }

    /// Drops a key from the cache at once (this process's own revocation).
    pub fn forget(&self, id: &str) {
        self.by_hash
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, k| k.id != id);
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_prefix_and_256_bits() {
        let a = new_secret();
        let b = new_secret();
        assert!(a.starts_with("sk-sy-"));
        assert_eq!(a.len(), 6 + 43);
        assert_ne!(a, b);
        assert!(a[6..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(base62(&[0xff; 32]).len(), 43);
        assert_eq!(base62(&[0; 32]), "0".repeat(43));
    }

    #[test]
    fn globs() {
        assert!(glob("openai/*", "openai/gpt-5"));
        assert!(!glob("openai/*", "anthropic/claude"));
        assert!(glob("*", "anything/at/all"));
        assert!(glob("smart", "smart"));
        assert!(!glob("smart", "smarter"));
        assert!(glob("*/gpt-*-mini", "openai/gpt-5-mini"));
        assert!(!glob("*/gpt-*-mini", "openai/gpt-5"));
    }
}
