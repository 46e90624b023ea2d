//! The spool: an append-only, segmented file of log entries between a
//! request and the database.
//!
//! Appending is one `write(2)` of one line into the current segment, done
//! before the request goes upstream (`begin`) and before its response is
//! released (`end`). The kernel's page cache makes that write survive the
//! process being killed, which is what lets every acknowledged response and
//! every upstream call keep its record; the database write happens later,
//! off the request path. The writer reads forward from a checkpoint that it
//! moves only after the database committed what it read.
//!
//! One process owns a spool directory at a time (an exclusive lock on
//! `LOCK`). A process that takes over a directory knows the previous owner
//! is gone, drains what it left and settles its unfinished requests.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::binary::{HEADER, MARKER};

/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    _lock: File,
    current: Mutex<Segment>,
    /// Bytes appended and not yet committed to the database.
    pending: AtomicU64,
    /// The instances that owned this spool before us and whose unfinished
    /// requests are not settled yet (a process killed before it settled
    /// its own predecessors passes them on), oldest first.
    pub previous_owners: Vec<String>,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    file: File,
    size: u64,
}

/// An entry read, with where it starts.
pub type Placed = (Checkpoint, Vec<u8>);

/// A place in the spool: segment and byte offset (ordered as the spool is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Checkpoint {
    pub seq: u64,
    pub offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "another switchyard process owns the spool at {0}; give each process its own logs.spool_dir"
    )]
    Locked(PathBuf),
    #[error("spool I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Spool {
    /// Opens (creating) the spool in `dir` for `instance`.
    pub fn open(dir: &Path, instance: &str) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked(dir.to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        // OWNER lists every owner not yet settled, ourselves last: until we
        // have settled those before us, they stay listed for whoever
        // comes next.
        let owner_file = dir.join("OWNER");
        let previous_owners: Vec<String> = std::fs::read_to_string(&owner_file)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != instance)
            .map(str::to_owned)
            .collect();
        let mut owners = previous_owners.join("\n");
        if !owners.is_empty() {
            owners.push('\n');
        }
        owners.push_str(instance);
        write_atomic(&owner_file, owners.as_bytes())?;
        // Always start a fresh segment: older ones are never written again,
        // so a torn last line in one of them is known to be garbage.
        let seq = segments(dir)?.last().map_or(1, |s| s + 1);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, seq))?;
        let spool = Spool {
            dir: dir.to_owned(),
            _lock: lock,
            current: Mutex::new(Segment { seq, file, size: 0 }),
            pending: AtomicU64::new(0),
            previous_owners,
        };
        let cp = spool.checkpoint();
        let mut pending = 0;
        for s in segments(dir)? {
            if s >= cp.seq {
                let len = std::fs::metadata(segment_path(dir, s))
                    .map(|m| m.len())
                    .unwrap_or(0);
                pending += if s == cp.seq {
                    len.saturating_sub(cp.offset)
                } else {
                    len
                };
            }
        }
        spool.pending.store(pending, Ordering::Release);
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The owners before us are settled: only we remain in OWNER.
    pub fn previous_owners_settled(&self, instance: &str) -> std::io::Result<()> {
        write_atomic(&self.dir.join("OWNER"), instance.as_bytes())
    }

    /// Bytes written and not yet in the database.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Appends one line, which ends with its newline. One write call: a
    /// reader never sees half a line except after a crash mid-write.
    pub fn append(&self, buf: &[u8]) -> std::io::Result<()> {
        debug_assert_eq!(buf.last(), Some(&b'\n'));
        let mut seg = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if seg.size >= SEGMENT_BYTES {
            let seq = seg.seq + 1;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, seq))?;
            *seg = Segment { seq, file, size: 0 };
        }
        seg.file.write_all(buf)?;
        seg.size += buf.len() as u64;
        self.pending.fetch_add(buf.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    /// Appends bytes that need not end an entry: half a write, for tests.
    #[cfg(test)]
    fn append_unchecked(&self, buf: &[u8]) {
        let mut seg = self.current.lock().unwrap_or_else(|p| p.into_inner());
        seg.file.write_all(buf).unwrap();
        seg.size += buf.len() as u64;
        self.pending.fetch_add(buf.len() as u64, Ordering::AcqRel);
    }

    /// Forces what was appended to stable storage (used at shutdown).
    pub fn sync(&self) -> std::io::Result<()> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .file
            .sync_data()
    }

    pub fn checkpoint(&self) -> Checkpoint {
        let text = std::fs::read_to_string(self.dir.join("CHECKPOINT")).unwrap_or_default();
        let mut parts = text.split_whitespace().map(|p| p.parse::<u64>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(seq), Some(offset)) => Checkpoint { seq, offset },
            _ => Checkpoint {
                seq: segments(&self.dir)
                    .ok()
                    .and_then(|s| s.first().copied())
                    .unwrap_or(1),
                offset: 0,
            },
        }
    }

    /// [`Spool::read_placed`] without the places, for tests.
    #[cfg(test)]
    pub fn read(
        &self,
        from: Checkpoint,
        max: usize,
    ) -> std::io::Result<(Vec<Vec<u8>>, Checkpoint)> {
        let (entries, to) = self.read_placed(from, max)?;
        Ok((entries.into_iter().map(|(_, e)| e).collect(), to))
    }

    /// Reads up to `max` complete entries (lines, or binary frames) after
    /// `from`, each with where it starts (the writer keeps the checkpoint
    /// from passing an entry it holds back). Returns them, without their
    /// newlines, with the place just past the last one.
    pub fn read_placed(
        &self,
        from: Checkpoint,
        max: usize,
    ) -> std::io::Result<(Vec<Placed>, Checkpoint)> {
        let current_seq = self.current.lock().unwrap_or_else(|p| p.into_inner()).seq;
        let mut lines = Vec::new();
        let mut at = from;
        for seq in segments(&self.dir)?.into_iter().filter(|s| *s >= from.seq) {
            if seq != at.seq {
                at = Checkpoint { seq, offset: 0 };
            }
            let mut f = File::open(segment_path(&self.dir, seq))?;
            f.seek(SeekFrom::Start(at.offset))?;
            let mut r = BufReader::new(f);
            loop {
                if lines.len() >= max {
                    return Ok((lines, at));
                }
                let mut line = Vec::new();
                let (n, whole) = match r.fill_buf()?.first() {
                    None => break,
                    Some(&MARKER) => read_frame(&mut r, &mut line)?,
                    Some(_) => {
                        let n = r.read_until(b'\n', &mut line)?;
                        (n, line.last() == Some(&b'\n'))
                    }
                };
                if !whole {
                    // A torn write. In the live segment it may still be
                    // completing; in an older one it never will.
                    if seq == current_seq {
                        return Ok((lines, at));
                    }
                    at.offset += n as u64;
                    break;
                }
                let start = at;
                at.offset += n as u64;
                line.pop();
                if !line.is_empty() {
                    lines.push((start, line));
                }
            }
            if seq == current_seq {
                break;
            }
        }
        Ok((lines, at))
    }

    /// Records that everything before `cp` is in the database (the writer
    /// holding nothing back), for tests.
    #[cfg(test)]
    pub fn commit(&self, from: Checkpoint, cp: Checkpoint) -> std::io::Result<()> {
        self.advance(from, cp, Some(cp))
    }

    /// Records that what was read from `from` to `to` is taken care of
    /// (no longer pending), and, when `durable` is given, that everything
    /// before it is in the database: the checkpoint moves there
    /// (atomically) and segments wholly behind it are deleted. The two
    /// differ while the writer holds entries back (see `writer::hold`).
    pub fn advance(
        &self,
        from: Checkpoint,
        to: Checkpoint,
        durable: Option<Checkpoint>,
    ) -> std::io::Result<()> {
        if let Some(cp) = durable {
            write_atomic(
                &self.dir.join("CHECKPOINT"),
                format!("{} {}", cp.seq, cp.offset).as_bytes(),
            )?;
        }
        if to > from {
            let mut consumed = 0u64;
            for seq in segments(&self.dir)? {
                if seq < from.seq {
                    continue;
                }
                let len = std::fs::metadata(segment_path(&self.dir, seq))
                    .map(|m| m.len())
                    .unwrap_or(0);
                let start = if seq == from.seq { from.offset } else { 0 };
                if seq < to.seq {
                    consumed += len.saturating_sub(start);
                } else if seq == to.seq {
                    consumed += to.offset.saturating_sub(start);
                }
            }
            self.pending
                .fetch_sub(consumed.min(self.pending()), Ordering::AcqRel);
        }
        let Some(durable) = durable else {
            return Ok(());
        };
        let current_seq = self.current.lock().unwrap_or_else(|p| p.into_inner()).seq;
        for seq in segments(&self.dir)? {
            if seq < durable.seq && seq < current_seq {
                let _ = std::fs::remove_file(segment_path(&self.dir, seq));
            }
        }
        Ok(())
    }

    /// Every byte of every segment, for tests that look for what must not
    /// be there.
    pub fn raw_bytes(dir: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in segments(dir).unwrap_or_default() {
            if let Ok(mut f) = File::open(segment_path(dir, seq)) {
                let _ = f.read_to_end(&mut out);
            }
        }
        out
    }
}

/// Reads one binary frame (see [`super::binary`]) into `into`, as much of
/// it as there is. Returns the bytes read and whether the frame is whole: a
/// frame cut short (its writer still writing, or killed) is not, even when
/// the bytes it has so far end in a newline (a payload may hold newlines).
fn read_frame(r: &mut impl BufRead, into: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
    into.resize(HEADER, 0);
    let got = read_full(r, into)?;
    if got < HEADER {
        into.truncate(got);
        return Ok((got, false));
    }
    let len = u32::from_le_bytes([into[1], into[2], into[3], into[4]]) as usize;
    // Payload and newline. The length is trusted no further than the file
    // goes: a frame can only be as long as what was written.
    let n = (&mut *r).take(len as u64 + 1).read_to_end(into)?;
    if n < len + 1 {
        return Ok((HEADER + n, false));
    }
    if into.last() != Some(&b'\n') {
        // Whole but not closed by its newline: not a frame we wrote. Skip
        // to the next newline, so what follows still reads.
        let mut skipped = Vec::new();
        let more = r.read_until(b'\n', &mut skipped)?;
        into.clear();
        into.push(b'\n');
        return Ok((HEADER + n + more, skipped.last() == Some(&b'\n')));
    }
    Ok((HEADER + n, true))
}

/// Fills `buf` from `r` or up to the end of the file; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:012}.jsonl"))
}

fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut out: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".jsonl")?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owners not yet settled pass down the chain: a process killed before
    /// it settled its predecessors leaves them to the next.
    #[test]
    fn unsettled_owners_pass_to_the_next_owner() {
        let dir = tempfile::tempdir().unwrap();
        drop(Spool::open(dir.path(), "a").unwrap());
        let b = Spool::open(dir.path(), "b").unwrap();
        assert_eq!(b.previous_owners, ["a"]);
        drop(b);
        let c = Spool::open(dir.path(), "c").unwrap();
        assert_eq!(c.previous_owners, ["a", "b"]);
        c.previous_owners_settled("c").unwrap();
        drop(c);
        assert_eq!(Spool::open(dir.path(), "d").unwrap().previous_owners, ["c"]);
    }

    #[test]
    fn appends_reads_commits_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Spool::open(dir.path(), "a").unwrap();
            assert!(matches!(
                Spool::open(dir.path(), "b"),
                Err(SpoolError::Locked(_))
            ));
            for i in 0..5 {
                s.append(format!("line {i}\n").as_bytes()).unwrap();
            }
            let from = s.checkpoint();
            let (lines, cp) = s.read(from, 3).unwrap();
            assert_eq!(
                lines,
                [b"line 0".to_vec(), b"line 1".to_vec(), b"line 2".to_vec()]
            );
            s.commit(from, cp).unwrap();
            assert_eq!(s.pending(), 14);
        }
        // A torn line at the end of the dead owner's segment.
        let last = segments(dir.path()).unwrap().pop().unwrap();
        OpenOptions::new()
            .append(true)
            .open(segment_path(dir.path(), last))
            .unwrap()
            .write_all(b"{\"torn")
            .unwrap();
        let s = Spool::open(dir.path(), "b").unwrap();
        assert_eq!(s.previous_owners, ["a"]);
        s.append(b"line 5\n").unwrap();
        let from = s.checkpoint();
        let (lines, cp) = s.read(from, 100).unwrap();
        assert_eq!(
            lines,
            [b"line 3".to_vec(), b"line 4".to_vec(), b"line 5".to_vec()]
        );
        s.commit(from, cp).unwrap();
        assert_eq!(s.pending(), 0);
        assert_eq!(
            segments(dir.path()).unwrap().len(),
            1,
            "consumed segments are deleted"
        );
    }

    /// A binary frame of `payload`, as [`super::super::binary`] writes them.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![MARKER];
        f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(payload);
        f.push(b'\n');
        f
    }

    #[test]
    fn frames_with_newlines_inside_read_whole_beside_lines() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), "a").unwrap();
        let a = frame(b"E\x01\n\n\x01");
        s.append(&a).unwrap();
        s.append(b"Gline\n").unwrap();
        let b = frame(b"");
        s.append(&b).unwrap();
        // Written in two halves: the reader sees the first half alone.
        let c = frame(b"B\x01 a longer payload\n");
        let (head, tail) = c.split_at(7);
        s.append_unchecked(head);
        let from = s.checkpoint();
        let (got, cp) = s.read(from, 100).unwrap();
        let whole = |f: &[u8]| f[..f.len() - 1].to_vec();
        assert_eq!(got, [whole(&a), b"Gline".to_vec(), whole(&b)]);
        s.commit(from, cp).unwrap();
        s.append(tail).unwrap();
        let (got, cp) = s.read(cp, 100).unwrap();
        assert_eq!(got, [whole(&c)]);
        s.commit(cp, cp).unwrap();
        // Cut just before its closing newline, the frame's bytes so far end
        // in the newline its payload ends with: still not read until whole.
        let (head, tail) = c.split_at(c.len() - 1);
        assert_eq!(head.last(), Some(&b'\n'));
        s.append_unchecked(head);
        let (got, torn_at) = s.read(cp, 100).unwrap();
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(torn_at, cp);
        s.append(tail).unwrap();
        let (got, cp) = s.read(cp, 100).unwrap();
        assert_eq!(got, [whole(&c)]);
        s.commit(cp, cp).unwrap();
        drop(s);
        // A frame torn in the dead owner's segment, another whose length
        // lies, then what the next owner writes: still read.
        let last = segments(dir.path()).unwrap().pop().unwrap();
        let mut lying = frame(b"E\x01xyz");
        lying[1] = 2;
        let mut f = OpenOptions::new()
            .append(true)
            .open(segment_path(dir.path(), last))
            .unwrap();
        f.write_all(&lying).unwrap();
        f.write_all(b"Gafter\n").unwrap();
        f.write_all(&frame(b"torn")[..6]).unwrap();
        let s = Spool::open(dir.path(), "b").unwrap();
        s.append(&a).unwrap();
        let from = s.checkpoint();
        let (got, _) = s.read(from, 100).unwrap();
        assert_eq!(got, [b"Gafter".to_vec(), whole(&a)]);
    }
}
