//! The store replicas share: one Redis or Valkey server, or a cluster of
//! them (`[redis] cluster = true`).
//!
//! [`Kv`] is a connection to either, for every user of Redis here (limits,
//! budgets, the cache, stream buffers, idempotency keys). A cluster runs the
//! same commands as one server because every operation that touches several
//! keys at once (a script, an atomic pipeline) keeps them in one hash slot:
//! the part of each key name between `{` and `}` is what the slot is
//! computed from, and it is the same for all the keys of one operation (a
//! key's rate-limit window, a budget account, a stream, the cache).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::config::RedisConfig;

/// A connection to the shared store; cheap to clone (one multiplexed
/// connection per server underneath, reconnected when lost).
///
/// Once a command fails because the store cannot be reached, every command
/// fails at once for [`BACK_OFF`] (then one tries again): while the store is
/// away, calls do not each wait out a timeout before their limits and
/// budgets refuse or count locally.
#[derive(Clone)]
pub struct Kv {
    conn: Conn,
    /// Unix milliseconds until which the store counts as away.
    away_until: Arc<AtomicI64>,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// How long the store counts as away after a command could not reach it.
pub const BACK_OFF: Duration = Duration::from_millis(1000);

impl Kv {
    fn new(conn: Conn) -> Kv {
        Kv {
            conn,
            away_until: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Whether the store counts as away now.
    pub fn is_away(&self) -> bool {
        crate::clock::unix_ms() < self.away_until.load(Ordering::Relaxed)
    }

    fn away_error() -> RedisError {
        RedisError::from((
            ErrorKind::IoError,
            "Redis is unreachable",
            "backing off before the next attempt".to_owned(),
        ))
    }

    /// Notes a failure that says the store is unreachable (a lost or
    /// refused connection; not a slow answer, which may be one large
    /// command's and says nothing of the others).
    fn observe<T>(away_until: &AtomicI64, r: &RedisResult<T>) {
        if let Err(e) = r
            && !e.is_timeout()
            && (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal())
        {
            let until = crate::clock::unix_ms() + BACK_OFF.as_millis() as i64;
            away_until.store(until, Ordering::Relaxed);
        }
    }
}

impl ConnectionLike for Kv {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if self.is_away() {
            return Box::pin(async { Err(Kv::away_error()) });
        }
        let away_until = &self.away_until;
        let sent = match &mut self.conn {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        };
        Box::pin(async move {
            let r = sent.await;
            Kv::observe(away_until, &r);
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        if self.is_away() {
            return Box::pin(async { Err(Kv::away_error()) });
        }
        let away_until = &self.away_until;
        let sent = match &mut self.conn {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        };
        Box::pin(async move {
            let r = sent.await;
            Kv::observe(away_until, &r);
            r
        })
    }

    fn get_db(&self) -> i64 {
        match &self.conn {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.conn {
            Conn::Single(_) => "Kv::Single",
            Conn::Cluster(_) => "Kv::Cluster",
        })
    }
}

/// How long connecting (at start) may take before the gateway gives up.
const CONNECT: Duration = Duration::from_secs(5);

/// Connects to the configured server or cluster.
pub async fn connect(cfg: &RedisConfig) -> anyhow::Result<Kv> {
    let url = crate::config::redact_url(&cfg.url);
    let connecting = async {
        if cfg.cluster {
            let client = redis::cluster::ClusterClient::builder(vec![cfg.url.as_str()])
                .connection_timeout(CONNECT)
                .response_timeout(Duration::from_secs(2))
                .build()?;
            client
                .get_async_connection()
                .await
                .map(|c| Kv::new(Conn::Cluster(c)))
        } else {
            let client = redis::Client::open(cfg.url.as_str())?;
            // Bounded everywhere: a server that went away fails calls
            // within a second (the limits and budgets then refuse or count
            // locally, as configured) instead of holding them, and the
            // next command after a failed reconnection starts another.
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_millis(500))
                .set_response_timeout(Duration::from_secs(1))
                .set_number_of_retries(2)
                .set_factor(50)
                .set_max_delay(500);
            ConnectionManager::new_with_config(client, config)
                .await
                .map(|c| Kv::new(Conn::Single(c)))
        }
    };
    match tokio::time::timeout(CONNECT, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => anyhow::bail!("Redis at {url}: {e}"),
        Err(_) => anyhow::bail!("Redis at {url} did not answer within 5s"),
    }
}

/// The hash slot a key is stored in (CRC16 of its tag), as Redis Cluster
/// computes it; for tests and checks.
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = key
        .find('{')
        .and_then(|open| {
            let close = key[open + 1..].find('}')?;
            (close > 0).then(|| &bytes[open + 1..open + 1 + close])
        })
        .unwrap_or(bytes);
    crc16_xmodem(tagged) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_spec() {
        // The examples of the Redis Cluster specification.
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo{}{bar}"), crc16_xmodem(b"foo{}{bar}") % 16384);
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
        assert_eq!(slot("foo{bar}{zap}"), slot("bar"));
    }
}
