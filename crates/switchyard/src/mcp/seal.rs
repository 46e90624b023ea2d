//! The `requestState` of a 2026-07-28 input-required result: the approval
//! it stands for and when it lapses, with an HMAC-SHA256 over them and the
//! call it belongs to (key, tool, digest of the arguments). The client must
//! echo it unchanged, and a state edited, lapsed, or replayed by another
//! key or with other arguments does not open. It is readable (it holds
//! only an approval id), and it is not what makes it single-use: the
//! approval's claim in the database is.
//!
//! The key is made once per deployment and kept in the database, so every
//! replica opens what another sealed.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::storage::{Storage, pg};

const PREFIX: &str = "sy2.";
const NAME: &str = "mcp_request_state";

#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

/// Why a state does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("requestState is not one this gateway issued for this call")]
    Invalid,
    #[error("requestState has lapsed")]
    Lapsed,
}

impl Sealer {
    #[cfg(test)]
    pub fn with_key(key: [u8; 32]) -> Sealer {
        Sealer { key }
    }

    /// The deployment's key: the stored one, or a new one stored now (the
    /// first replica to store it wins).
    pub async fn load(s: &Storage) -> anyhow::Result<Sealer> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        let fresh = crate::keys::hex(&fresh);
        let insert =
            "INSERT INTO gateway_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING";
        let select = "SELECT value FROM gateway_secrets WHERE name = ?";
        let value: String = match s {
            Storage::Sqlite(p) => {
                sqlx::query(insert)
                    .bind(NAME)
                    .bind(&fresh)
                    .execute(p)
                    .await?;
                sqlx::query_scalar(select).bind(NAME).fetch_one(p).await?
            }
            Storage::Postgres(p) => {
                sqlx::query(&pg(insert))
                    .bind(NAME)
                    .bind(&fresh)
                    .execute(p)
                    .await?;
                sqlx::query_scalar(&pg(select))
                    .bind(NAME)
                    .fetch_one(p)
                    .await?
            }
        };
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = value
                .get(i * 2..i * 2 + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow::anyhow!("the stored {NAME} key is malformed"))?;
        }
        Ok(Sealer { key })
    }

    fn mac(&self, payload: &str, bound_to: &str) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        m.update(b"switchyard mcp request state\n");
        m.update(payload.as_bytes());
        m.update(b"\n");
        m.update(bound_to.as_bytes());
        m
    }

    /// A state for approval `id`, good until `expires_ms`, for the call
    /// `bound_to` names.
    pub fn seal(&self, id: &str, expires_ms: i64, bound_to: &str) -> String {
        let payload = format!("{id}|{expires_ms}");
        let tag = self.mac(&payload, bound_to).finalize().into_bytes();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{PREFIX}{}.{}", b64.encode(&payload), b64.encode(tag))
    }

    /// The approval id a state stands for, if it is ours, unedited, for
    /// this call, and not lapsed at `now_ms`.
    pub fn open(&self, sealed: &str, bound_to: &str, now_ms: i64) -> Result<String, SealError> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (payload, tag) = sealed
            .strip_prefix(PREFIX)
            .and_then(|r| r.split_once('.'))
            .ok_or(SealError::Invalid)?;
        let payload = b64.decode(payload).map_err(|_| SealError::Invalid)?;
        let tag = b64.decode(tag).map_err(|_| SealError::Invalid)?;
        let payload = String::from_utf8(payload).map_err(|_| SealError::Invalid)?;
        self.mac(&payload, bound_to)
            .verify_slice(&tag)
            .map_err(|_| SealError::Invalid)?;
        let (id, expires) = payload.rsplit_once('|').ok_or(SealError::Invalid)?;
        let expires: i64 = expires.parse().map_err(|_| SealError::Invalid)?;
        if expires <= now_ms {
            return Err(SealError::Lapsed);
        }
        Ok(id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_opens_only_unedited_for_its_call_and_in_time() {
        let s = Sealer::with_key([7; 32]);
        let bound = "key_a|jira__delete|abc";
        let state = s.seal("apr_1", 2_000, bound);
        assert_eq!(s.open(&state, bound, 1_000).unwrap(), "apr_1");
        // Another key, tool or arguments.
        assert_eq!(
            s.open(&state, "key_b|jira__delete|abc", 1_000),
            Err(SealError::Invalid)
        );
        assert_eq!(
            s.open(&state, "key_a|jira__delete|abd", 1_000),
            Err(SealError::Invalid)
        );
        // Lapsed.
        assert_eq!(s.open(&state, bound, 2_000), Err(SealError::Lapsed));
        // Edited: another approval id with the old tag.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let tag = state.rsplit_once('.').unwrap().1;
        let forged = format!("{PREFIX}{}.{tag}", b64.encode("apr_2|2000"));
        assert_eq!(s.open(&forged, bound, 1_000), Err(SealError::Invalid));
        // Another deployment's key.
        let other = Sealer::with_key([8; 32]);
        assert_eq!(other.open(&state, bound, 1_000), Err(SealError::Invalid));
        assert_eq!(s.open("rs1.x.y", bound, 1_000), Err(SealError::Invalid));
        assert_eq!(s.open("", bound, 1_000), Err(SealError::Invalid));
    }
}
