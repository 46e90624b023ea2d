//! Group commit for the audit chain: records that arrive while a
//! transaction is being written go into the next one together.
//!
//! Every tool call appends its record before it answers. Appended one
//! transaction each, concurrent calls queued on the database's write lock
//! (on SQLite, one writer): at 32 connections a tool read cost ten times
//! the floor's CPU and tens of milliseconds of waiting. Here the first
//! caller with nothing being written starts a writer task; callers that
//! come meanwhile add their record to the queue and wait for its number,
//! and the writer takes the whole queue (up to [`MAX_BATCH`]) per
//! transaction. A caller still answers only once its record is committed.
//! The writer is a task of its own, so a caller that goes away does not
//! cancel the records of the others.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::New;
use crate::storage::Storage;

/// Records per transaction at most.
const MAX_BATCH: usize = 256;

type Done = oneshot::Sender<Result<i64, String>>;

#[derive(Default)]
struct Queue {
    records: Vec<(New, Done)>,
    writing: bool,
}

/// The audit chain's appender for the hot paths (tool calls).
#[derive(Default)]
pub struct Group {
    queue: Mutex<Queue>,
    /// Held while a batch is written (see `Gateway::db_writes`).
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

impl Group {
    /// A group that writes while it holds `gate`.
    pub fn new(gate: Arc<tokio::sync::Mutex<()>>) -> Group {
        Group {
            queue: Mutex::default(),
            gate,
        }
    }

    /// Appends a record (with those that arrive meanwhile); returns its
    /// number once it is committed.
    pub async fn append<T: serde::Serialize>(
        self: &Arc<Self>,
        s: &Storage,
        kind: &str,
        record: &T,
    ) -> anyhow::Result<i64> {
        let new = New::of(kind, record)?;
        let (done, answer) = oneshot::channel();
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.records.push((new, done));
            !std::mem::replace(&mut q.writing, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).write(s.clone()));
        }
        match answer.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(e)) => Err(anyhow::anyhow!(e)),
            Err(_) => Err(anyhow::anyhow!("the audit writer stopped")),
        }
    }

    /// Writes batches until the queue is empty.
    async fn write(self: Arc<Self>, s: Storage) {
        // Should this task panic, the next caller starts another.
        struct Idle<'a>(&'a Group);
        impl Drop for Idle<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0
                        .queue
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .writing = false;
                }
            }
        }
        let _idle = Idle(&self);
        loop {
            let batch: Vec<(New, Done)> = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if q.records.is_empty() {
                    q.writing = false;
                    return;
                }
                let n = q.records.len().min(MAX_BATCH);
                q.records.drain(..n).collect()
            };
            let (new, done): (Vec<New>, Vec<Done>) = batch.into_iter().unzip();
            let written = {
                let _turn = self.gate.lock().await;
                super::append_all(&s, &new).await
            };
            match written {
                Ok(seqs) => {
                    for (d, seq) in done.into_iter().zip(seqs) {
                        let _ = d.send(Ok(seq));
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    for d in done {
                        let _ = d.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends from many tasks at once land in one unbroken chain, each
    /// caller told its own record's number.
    #[tokio::test]
    async fn concurrent_appends_make_one_valid_chain() {
        let (_dir, s, p) = crate::storage::scratch_sqlite().await;
        let g = Arc::new(Group::default());
        let calls = (0..100).map(|i| {
            let (g, s) = (g.clone(), s.clone());
            tokio::spawn(async move {
                let seq = g
                    .append(&s, "tool_call", &serde_json::json!({"n": i}))
                    .await
                    .unwrap();
                (i, seq)
            })
        });
        let mut seqs = Vec::new();
        for c in calls {
            seqs.push(c.await.unwrap());
        }
        let v = super::super::verify(&s).await.unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.records, 100);
        let mut numbers: Vec<i64> = seqs.iter().map(|(_, s)| *s).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=100).collect::<Vec<_>>());
        // Each caller got the number of its own record.
        for (i, seq) in seqs {
            let record: String = sqlx::query_scalar("SELECT record FROM audit WHERE seq = ?")
                .bind(seq)
                .fetch_one(&p)
                .await
                .unwrap();
            assert_eq!(record, format!(r#"{{"n":{i}}}"#));
        }
        // A direct append after the group's goes on from its head.
        assert_eq!(super::super::append(&s, "k", &1).await.unwrap(), 101);
        assert!(super::super::verify(&s).await.unwrap().ok);
    }

    /// A batch the database refuses fails each of its callers, and the
    /// next append starts a writer again.
    #[tokio::test]
    async fn a_refused_batch_fails_its_callers_and_the_next_append_goes_on() {
        let (_dir, s, p) = crate::storage::scratch_sqlite().await;
        sqlx::query("ALTER TABLE audit RENAME TO audit_away")
            .execute(&p)
            .await
            .unwrap();
        let g = Arc::new(Group::default());
        let wait = std::time::Duration::from_secs(10);
        let refused = tokio::time::timeout(wait, g.append(&s, "tool_call", &1)).await;
        assert!(refused.expect("no answer").is_err());
        sqlx::query("ALTER TABLE audit_away RENAME TO audit")
            .execute(&p)
            .await
            .unwrap();
        let seq = tokio::time::timeout(wait, g.append(&s, "tool_call", &2)).await;
        assert_eq!(seq.expect("no answer").unwrap(), 1);
        assert!(super::super::verify(&s).await.unwrap().ok);
    }
}
