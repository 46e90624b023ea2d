//! Request records: one per request, never lost, holding only what the log
//! mode allows.
//!
//! At admission a [`Begin`] entry, at the end an [`End`] entry, each
//! appended to the [`spool::Spool`] before the request moves on (see there
//! why that makes records crash-proof). A background [`writer`] moves
//! entries into SQLite or Postgres with idempotent upserts keyed by the
//! request id and advances the spool only after the commit, so a database
//! outage delays records but loses none. Bodies exist only in mode `full`;
//! in modes `metadata` and `none` they are never put into an entry, so they
//! reach neither the spool, nor the database, nor a log line.

mod binary;
pub mod pace;
pub mod partitions;
pub mod query;
pub mod rollup;
pub mod spool;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::config::{LogMode, SpoolFull};
use crate::routing::{Attempt, Excluded};
use spool::Spool;

/// Written before the first upstream call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Begin {
    pub id: String,
    pub time_ms: i64,
    pub instance: String,
    pub key_id: Option<String>,
    pub route: Option<String>,
    pub requested_model: String,
    pub dialect: String,
    pub stream: bool,
    pub log_mode: LogMode,
    pub est_input_tokens: u64,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// The budget held for the call: what it is settled at if its process
    /// dies before it ends (the most it could have cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_usd: Option<f64>,
    /// The W3C trace the call belongs to (32 hex digits): the caller's, or
    /// the one the gateway started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Written when the request is over, whatever the outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct End {
    pub id: String,
    pub time_ms: i64,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: u16,
    pub error_class: Option<String>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    /// `reported` by the provider, or `estimated` by us.
    pub usage_source: Option<String>,
    pub cost_usd: Option<f64>,
    pub saved_usd: Option<f64>,
    pub price_version: Option<String>,
    pub cache: String,
    pub attempts: Vec<Attempt>,
    pub excluded: Vec<Excluded>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// One spool entry. On disk, a call's begin and end and a stored response
/// are binary frames (see [`binary`]); the rarer entries are a line of a
/// one-byte phase (`G`, `D`) and the entry's JSON object. The JSON lines
/// that earlier versions wrote for begins, ends and stored responses (`B`,
/// `E`, `R`, and the internally tagged form `{"phase":...}` before those)
/// are still read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Entry {
    Begin(Begin),
    End(End),
    /// Best-effort mode dropped `dropped` entries while the spool was full.
    Gap {
        time_ms: i64,
        dropped: u64,
    },
    /// A stored Response (`store: true`), with its items.
    Response(Box<crate::conversations::store::Row>),
    /// A stored Response deleted.
    ResponseDeleted {
        id: String,
    },
}

#[derive(Serialize, Deserialize)]
struct DeletedLine {
    id: String,
}

#[derive(Serialize, Deserialize)]
struct GapLine {
    time_ms: i64,
    dropped: u64,
}

/// A spool line: the phase byte, the JSON, the newline.
fn line<T: Serialize>(phase: u8, value: &T) -> serde_json::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(640);
    line.push(phase);
    serde_json::to_writer(&mut line, value)?;
    line.push(b'\n');
    Ok(line)
}

impl Entry {
    /// The spool line for this entry, newline included.
    pub fn encode(&self) -> serde_json::Result<Vec<u8>> {
        match self {
            Entry::Begin(b) => Ok(binary::begin(b)),
            Entry::End(e) => Ok(binary::end(e)),
            Entry::Gap { time_ms, dropped } => line(
                b'G',
                &GapLine {
                    time_ms: *time_ms,
                    dropped: *dropped,
                },
            ),
            Entry::Response(r) => Ok(binary::response(r)),
            Entry::ResponseDeleted { id } => line(b'D', &DeletedLine { id: id.clone() }),
        }
    }

    /// Reads a spool entry (without its newline), in any format.
    pub fn decode(line: &[u8]) -> serde_json::Result<Entry> {
        match line.split_first() {
            Some((&binary::MARKER, _)) => match binary::decode(line) {
                Ok(binary::Decoded::Begin(b)) => Ok(Entry::Begin(b)),
                Ok(binary::Decoded::End(e)) => Ok(Entry::End(e)),
                Ok(binary::Decoded::Response(r)) => Ok(Entry::Response(Box::new(r))),
                Err(e) => Err(serde::de::Error::custom(e)),
            },
            Some((b'B', json)) => serde_json::from_slice(json).map(Entry::Begin),
            Some((b'E', json)) => serde_json::from_slice(json).map(Entry::End),
            Some((b'G', json)) => serde_json::from_slice(json).map(|g: GapLine| Entry::Gap {
                time_ms: g.time_ms,
                dropped: g.dropped,
            }),
            Some((b'R', json)) => {
                serde_json::from_slice(json).map(|r: crate::conversations::StoredResponse| {
                    Entry::Response(Box::new(crate::conversations::store::Row::of(&r)))
                })
            }
            Some((b'D', json)) => serde_json::from_slice(json)
                .map(|d: DeletedLine| Entry::ResponseDeleted { id: d.id }),
            _ => serde_json::from_slice(line),
        }
    }
}

/// The spool is full and the configuration refuses rather than drops.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request log spool is full ({pending} bytes waiting for the database); refusing new requests until it drains"
)]
pub struct SpoolFullError {
    pub pending: u64,
}

/// What the pipeline calls. Cheap to share.
#[derive(Debug)]
pub struct Recorder {
    /// Shared with the blocking threads that read it and move its
    /// checkpoint (file reads and `fdatasync` stay off the runtime).
    pub spool: Arc<Spool>,
    pub instance: String,
    max_bytes: u64,
    on_full: SpoolFull,
    /// New requests kept to the writer's pace.
    pub pace: pace::Pace,
    dropped: AtomicU64,
    /// Entries dropped since the last gap entry was written.
    unreported: AtomicU64,
    pub notify: tokio::sync::Notify,
    /// The records' own connection to SQLite (none on Postgres).
    pub sqlite: Option<writer::Lite>,
}

impl Recorder {
    pub fn new(
        spool: Spool,
        instance: String,
        max_bytes: u64,
        on_full: SpoolFull,
        backlog_bytes: u64,
        sqlite: Option<writer::Lite>,
    ) -> Recorder {
        Recorder {
            spool: Arc::new(spool),
            instance,
            max_bytes,
            on_full,
            pace: pace::Pace::new(backlog_bytes),
            dropped: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
            notify: tokio::sync::Notify::new(),
            sqlite,
        }
    }

    /// Waits while the writer is behind (see [`pace`]).
    pub async fn keep_pace(&self) {
        self.pace.keep(&self.spool).await;
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records a request's start. Refuses (or, best-effort, drops) when the
    /// spool is full: a call that cannot be recorded is not made.
    /// Returns whether the begin was written (the end follows it).
    pub fn begin(&self, b: &Begin) -> Result<bool, SpoolFullError> {
        let pending = self.spool.pending();
        if pending >= self.max_bytes {
            return match self.on_full {
                SpoolFull::Refuse => Err(SpoolFullError { pending }),
                SpoolFull::BestEffort => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.unreported.fetch_add(1, Ordering::Relaxed);
                    Ok(false)
                }
            };
        }
        self.report_gap();
        self.append(Ok(binary::begin(b)));
        Ok(true)
    }

    /// Records a request's end. An admitted request's end is always written
    /// (the spool may pass its bound by what is in flight).
    pub fn end(&self, e: End) {
        self.append(Ok(binary::end(&e)));
    }

    fn report_gap(&self) {
        let n = self.unreported.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.write(&Entry::Gap {
                time_ms: crate::clock::unix_ms(),
                dropped: n,
            });
        }
    }

    pub(crate) fn write(&self, e: &Entry) {
        self.append(e.encode());
    }

    fn append(&self, encoded: serde_json::Result<Vec<u8>>) {
        let line = match encoded {
            Ok(l) => l,
            Err(err) => {
                tracing::error!(error = %err, "Could not encode a log entry");
                return;
            }
        };
        if let Err(err) = self.spool.append(&line) {
            // The disk refused: count it, say so, never take the request down.
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %err, "Could not append to the request log spool");
        }
        self.notify.notify_one();
    }
}

/// One request's record in the making: opened at admission, closed once.
#[derive(Debug, Default)]
pub struct Journal {
    begin: Option<Begin>,
    /// Whether the begin reached the spool (best-effort mode may drop it,
    /// and then the end is dropped with it).
    written: bool,
    closed: bool,
}

impl Journal {
    /// Writes the begin entry; refuses when the spool is full.
    pub fn open(&mut self, rec: &Recorder, b: Begin) -> Result<(), SpoolFullError> {
        self.written = rec.begin(&b)?;
        self.begin = Some(b);
        Ok(())
    }

    /// A request refused before admission: its begin and end together, so
    /// refusals show in the log too.
    pub fn refused(&mut self, rec: &Recorder, b: Begin, end: End) {
        if self.closed || self.begin.is_some() {
            return;
        }
        rec.append(line(b'B', &b));
        self.begin = Some(b);
        self.written = true;
        self.close(rec, end);
    }

    pub fn is_open(&self) -> bool {
        self.begin.is_some() && !self.closed
    }

    pub fn begin(&self) -> Option<&Begin> {
        self.begin.as_ref()
    }

    /// Writes the end entry, once.
    pub fn close(&mut self, rec: &Recorder, mut end: End) {
        if self.closed || self.begin.is_none() {
            return;
        }
        self.closed = true;
        if self.written {
            if let Some(b) = &self.begin {
                end.id.clone_from(&b.id);
                end.time_ms = b.time_ms;
                if b.log_mode != LogMode::Full {
                    end.response_body = None;
                }
            }
            rec.end(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_lines_round_trip_and_old_lines_still_read() {
        let b = Begin {
            id: "r1".into(),
            time_ms: 5,
            instance: "i".into(),
            key_id: None,
            route: None,
            requested_model: "p/m".into(),
            dialect: "openai".into(),
            stream: false,
            log_mode: LogMode::Metadata,
            est_input_tokens: 3,
            metadata: Default::default(),
            request_body: None,
            hold_usd: None,
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        };
        for e in [
            Entry::Begin(b.clone()),
            Entry::End(End {
                id: "r1".into(),
                status: 200,
                cache: "MISS".into(),
                ..End::default()
            }),
            Entry::Gap {
                time_ms: 9,
                dropped: 2,
            },
        ] {
            let encoded = e.encode().unwrap();
            assert_eq!(encoded.last(), Some(&b'\n'));
            let back = Entry::decode(&encoded[..encoded.len() - 1]).unwrap();
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
            // The JSON lines of the version before the binary frames.
            let json = match &e {
                Entry::Begin(b) => Some(line(b'B', b).unwrap()),
                Entry::End(end) => Some(line(b'E', end).unwrap()),
                _ => None,
            };
            if let Some(json) = json {
                assert_eq!(
                    format!("{:?}", Entry::decode(&json[..json.len() - 1]).unwrap()),
                    format!("{e:?}")
                );
            }
            // The internally tagged lines of earlier versions.
            let old = serde_json::to_vec(&e).unwrap();
            assert!(old.starts_with(b"{\"phase\":"));
            assert_eq!(
                format!("{:?}", Entry::decode(&old).unwrap()),
                format!("{e:?}")
            );
        }
        // A stored response goes as a frame; the JSON line of the version
        // before still reads, its items given their ids.
        let line = br#"R{"id":"resp_1","owner":"k","created_ms":1,"expires_ms":2,"previous_id":null,"requested_model":"m","provider":null,"model":null,"request_id":"r1","response":{"id":"resp_1"},"input":[{"id":"in_1","type":"message"}],"output":[{"type":"message"}]}"#;
        let Ok(Entry::Response(r)) = Entry::decode(line) else {
            panic!("an old stored-response line");
        };
        assert_eq!(r.response, r#"{"id":"resp_1"}"#);
        let items: Vec<(&str, bool)> = r
            .items
            .iter()
            .map(|i| (i.item_id.as_str(), i.is_output))
            .collect();
        assert_eq!(items, [("in_1", false), ("", true)]);
        let framed = Entry::Response(r.clone()).encode().unwrap();
        assert_eq!(framed[0], binary::MARKER);
        let Ok(Entry::Response(back)) = Entry::decode(&framed[..framed.len() - 1]) else {
            panic!("a stored-response frame");
        };
        assert_eq!(back, r);
        assert!(Entry::decode(b"Bnot json").is_err());
        assert!(Entry::decode(b"\x01\x02\x00\x00\x00B\x01").is_err());
        assert!(Entry::decode(b"").is_err());
    }
}
