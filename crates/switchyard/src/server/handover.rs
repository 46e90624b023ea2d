//! Zero-downtime restarts and upgrades: a new process takes the listening
//! sockets over from the running one, then the old one drains and exits.
//!
//! Why a handover of the sockets themselves (`SCM_RIGHTS` over a Unix
//! socket) rather than `SO_REUSEPORT` or systemd socket activation: with
//! `SO_REUSEPORT` each process has its own accept queue, and the
//! connections waiting in the old process's queue when it closes its socket
//! are reset (unless the machine enables `net.ipv4.tcp_migrate_req`); with
//! socket activation the new process starts only after the old one has
//! stopped, and only under systemd. Passing the sockets keeps one accept
//! queue throughout: both processes accept from it for a moment, then only
//! the new one, and no connection is refused or lost, on any supervisor.
//!
//! The exchange, on the path `serve --handover <path>` names:
//! 1. the new process connects and sends `takeover 1\n`;
//! 2. the old one answers `ok <listen> <admin_listen>\n` with both
//!    listening sockets attached;
//! 3. the new one starts serving on them, then sends `ready\n`;
//! 4. the old one answers `draining\n`, stops accepting and shuts down as
//!    on `SIGTERM` (calls in flight finish within the grace period; a
//!    stream is resumable on the new process through Redis).
//!
//! If the new process fails before step 3, the old one goes on serving.
//! The new process then listens on the path itself, for the next upgrade.

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};
use tokio_util::sync::CancellationToken;

const HELLO: &str = "takeover 1\n";

/// Listening sockets taken over from the running process, and the line to
/// it (to say when this process is ready).
pub struct Taken {
    pub data: std::net::TcpListener,
    pub admin: std::net::TcpListener,
    line: Line,
}

/// The line to the process the sockets came from.
pub struct Line(UnixStream);

/// Asks the process serving `path` for its listening sockets; `None` when
/// no process answers there (the first start, or one that crashed).
pub fn take(path: &Path) -> anyhow::Result<Option<Taken>> {
    let mut line = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).context(format!("cannot reach {}", path.display())),
    };
    line.set_read_timeout(Some(Duration::from_secs(10)))?;
    line.write_all(HELLO.as_bytes())?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut text = [0u8; 512];
    let got = recvmsg(
        &line,
        &mut [IoSliceMut::new(&mut text)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .context("the running process did not hand its sockets over")?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    let answer = String::from_utf8_lossy(&text[..got.bytes]);
    if !answer.starts_with("ok ") || fds.len() != 2 {
        anyhow::bail!(
            "the process at {} refused the takeover: {}",
            path.display(),
            answer.trim()
        );
    }
    let mut fds = fds.into_iter();
    let (Some(data), Some(admin)) = (fds.next(), fds.next()) else {
        anyhow::bail!("two sockets expected");
    };
    tracing::info!(
        from = %path.display(),
        sockets = answer.trim_start_matches("ok ").trim(),
        "Took the listening sockets over from the running process"
    );
    Ok(Some(Taken {
        data: std::net::TcpListener::from(data),
        admin: std::net::TcpListener::from(admin),
        line: Line(line),
    }))
}

impl Taken {
    pub fn into_parts(self) -> (std::net::TcpListener, std::net::TcpListener, Line) {
        (self.data, self.admin, self.line)
    }
}

impl Line {
    /// Tells the old process this one serves now: it stops accepting and
    /// drains.
    pub fn ready(self) -> anyhow::Result<()> {
        let mut line = self.0;
        line.write_all(b"ready\n")?;
        let mut answer = String::new();
        BufReader::new(&line).read_line(&mut answer)?;
        anyhow::ensure!(
            answer == "draining\n",
            "the old process answered {answer:?}"
        );
        Ok(())
    }
}

/// Copies of the data and admin listening sockets, while they may be handed
/// over (`None` once the process stops).
pub type Sockets = std::sync::Arc<std::sync::Mutex<Option<(OwnedFd, OwnedFd)>>>;

/// Offers this process's sockets on `path` to the next process, while
/// `sockets` holds them; `drain` is cancelled once a new process serves on
/// them.
pub fn offer(
    path: PathBuf,
    sockets: Sockets,
    addrs: String,
    drain: CancellationToken,
    handed_over: std::sync::Arc<AtomicBool>,
) -> anyhow::Result<()> {
    // The previous process's path, or a stale one: this process answers
    // there from now on.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context(format!("cannot replace {}", path.display())),
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen for a handover on {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // Only this user may take the sockets over.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    let handed = AtomicBool::new(false);
    std::thread::Builder::new()
        .name("handover".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let refuse = drain.is_cancelled() || handed.load(Ordering::Acquire);
                let held = sockets.lock().unwrap_or_else(|p| p.into_inner());
                let Some((data, admin)) = held.as_ref() else {
                    // Read the request first, so the answer reaches it.
                    let mut hello = String::new();
                    let _ = BufReader::new(&conn).read_line(&mut hello);
                    let _ = (&conn).write_all(b"no: stopping\n");
                    continue;
                };
                let (Ok(data), Ok(admin)) = (data.try_clone(), admin.try_clone()) else {
                    continue;
                };
                drop(held);
                match hand_over(&conn, &data, &admin, &addrs, refuse) {
                    Ok(true) => {
                        handed.store(true, Ordering::Release);
                        handed_over.store(true, Ordering::Relaxed);
                        tracing::info!("A new process serves on the sockets; draining");
                        drain.cancel();
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "A handover failed; still serving"),
                }
            }
        })?;
    Ok(())
}

/// One takeover: `Ok(true)` once the new process said it is ready.
/// `refuse`: this process is draining already (handed over, or stopping).
fn hand_over(
    conn: &UnixStream,
    data: &OwnedFd,
    admin: &OwnedFd,
    addrs: &str,
    refuse: bool,
) -> anyhow::Result<bool> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn);
    let mut hello = String::new();
    reader.read_line(&mut hello)?;
    if hello != HELLO {
        let _ = (&*conn).write_all(b"no: unknown request\n");
        return Ok(false);
    }
    if refuse {
        let _ = (&*conn).write_all(b"no: draining\n");
        return Ok(false);
    }
    let fds = [data.as_fd(), admin.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    let text = format!("ok {addrs}\n");
    sendmsg(
        conn,
        &[IoSlice::new(text.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )?;
    // The new process starts serving, then says so; it may take as long as
    // its start does (migrations, connecting to Redis).
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut ready = String::new();
    reader.read_line(&mut ready)?;
    if ready != "ready\n" {
        return Ok(false);
    }
    (&*conn).write_all(b"draining\n")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_pass_to_the_next_process_and_the_old_one_drains() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handover.sock");
        assert!(take(&path).unwrap().is_none(), "nobody serves yet");
        let data = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = data.local_addr().unwrap();
        let drain = CancellationToken::new();
        let sockets: Sockets = std::sync::Arc::new(std::sync::Mutex::new(Some((
            data.as_fd().try_clone_to_owned().unwrap(),
            admin.as_fd().try_clone_to_owned().unwrap(),
        ))));
        offer(
            path.clone(),
            sockets,
            format!("{addr} {}", admin.local_addr().unwrap()),
            drain.clone(),
            Default::default(),
        )
        .unwrap();
        let taken = take(&path).unwrap().expect("the sockets");
        assert_eq!(taken.data.local_addr().unwrap(), addr);
        assert!(!taken.data.local_addr().unwrap().ip().is_unspecified());
        // A connection waiting in the queue is accepted by the new owner.
        let _client = std::net::TcpStream::connect(addr).unwrap();
        drop(data);
        let (data, _admin, line) = taken.into_parts();
        let (_conn, _) = data.accept().unwrap();
        assert!(!drain.is_cancelled());
        line.ready().unwrap();
        assert!(drain.is_cancelled());
        // A second takeover of a draining process is refused.
        let err = take(&path).err().expect("refused").to_string();
        assert!(err.contains("refused"), "{err}");
    }
}
