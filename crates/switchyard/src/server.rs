//! Listeners, connections and shutdown.
//!
//! Our own accept loop rather than `axum::serve`, for the knobs it hides:
//! `TCP_NODELAY` on every accepted socket (without it keep-alive requests
//! stall on Nagle against the client's delayed ACK), a header read timeout
//! (from the connection's first moment), a write timeout ([`stall`]), a
//! deep accept queue, and graceful shutdown that drains connections and
//! tracked tasks.

pub mod handover;
pub mod reload;
mod stall;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Env};
use crate::gateway::Gateway;

/// How long before the end of the shutdown grace period running calls are
/// stopped, so their callers still get the terminal event.
const END_CALLS_BEFORE: Duration = Duration::from_millis(300);

/// A started gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The gateway as started (its shared state is every generation's;
    /// [`Running::current`] is the newest configuration).
    pub gateway: Arc<Gateway>,
    pub reloader: Arc<reload::Reloader>,
    /// Copies of the two listening sockets, to hand to a new process;
    /// dropped as shutdown begins, so a stopping process refuses new
    /// connections at once instead of letting them queue unanswered.
    pub sockets: handover::Sockets,
    /// Set when the sockets were handed over: the listeners then keep their
    /// keep-alive connections a moment longer (see [`DRAIN_LINGER`]).
    pub handed_over: Arc<std::sync::atomic::AtomicBool>,
    shutdown: CancellationToken,
    listeners: Vec<tokio::task::JoinHandle<()>>,
    writer: tokio::task::JoinHandle<()>,
    writer_stop: CancellationToken,
}

impl Running {
    /// Stops accepting, lets in-flight requests and tracked work finish
    /// within the grace period, then closes storage.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        // Our copies of the listening sockets go now: once the accept loops
        // let go of theirs, new connections are refused (a load balancer
        // retries them elsewhere), not queued for nobody.
        drop(
            self.sockets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let grace = self.gateway.config.server.shutdown_grace;
        // Calls and streams still running a moment before the connections'
        // grace is over end then, each with a terminal error its caller can
        // still read, a record and a settled permit.
        let stopping = self.gateway.stopping.clone();
        let end_calls = tokio::spawn(async move {
            tokio::time::sleep(grace.saturating_sub(END_CALLS_BEFORE)).await;
            tracing::info!("Shutdown grace period ending: stopping the calls still running");
            stopping.cancel();
        });
        for l in self.listeners {
            let _ = l.await;
        }
        self.gateway.tasks.close();
        if tokio::time::timeout(grace, self.gateway.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Tracked tasks still running after the grace period; stopping anyway");
        }
        end_calls.abort();
        // Records last: every request's end is in the spool by now.
        self.writer_stop.cancel();
        if tokio::time::timeout(grace, self.writer).await.is_err() {
            tracing::warn!("The log writer did not finish in time; the spool keeps the rest");
        }
        if let Some(lite) = &self.gateway.recorder.sqlite {
            lite.close().await;
        }
        self.gateway.storage.close().await;
    }

    /// The newest generation of the gateway.
    pub fn current(&self) -> Arc<Gateway> {
        self.reloader.live().gateway.clone()
    }

    /// Reads the configuration file again (what `SIGHUP` does).
    pub async fn reload(&self) -> Result<reload::Outcome, reload::ReloadError> {
        self.reloader.reload().await
    }

    /// Resolves once shutdown has been requested.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.shutdown.cancelled()
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Binds both listeners and starts serving.
pub async fn start(config: Config, env: &Env) -> anyhow::Result<Running> {
    start_on(config, env, None).await
}

/// Starts serving on `sockets` (data, admin: taken over from a running
/// process) when given, else on the configured addresses.
pub async fn start_on(
    config: Config,
    env: &Env,
    sockets: Option<(std::net::TcpListener, std::net::TcpListener)>,
) -> anyhow::Result<Running> {
    use std::os::fd::AsFd;
    let gateway = Gateway::new(config, env).await?;
    let reloader = reload::Reloader::new(gateway.clone(), env.clone());
    let cfg = gateway.config.clone();
    let (data, admin) = match sockets {
        Some((data, admin)) => {
            data.set_nonblocking(true)?;
            admin.set_nonblocking(true)?;
            (TcpListener::from_std(data)?, TcpListener::from_std(admin)?)
        }
        None => (
            listen(cfg.server.listen)
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.server.listen))?,
            listen(cfg.server.admin_listen).map_err(|e| {
                anyhow::anyhow!("cannot listen on {} (admin): {e}", cfg.server.admin_listen)
            })?,
        ),
    };
    // Sockets taken over: they may be open to the network only if keys
    // are required, whatever address the configuration names.
    let bound = data.local_addr()?;
    if !cfg.auth.require_keys && !bound.ip().is_loopback() {
        anyhow::bail!(
            "the listening socket is {bound}, not loopback: an open gateway (auth.require_keys = false) may only listen on loopback"
        );
    }
    let sockets = Arc::new(std::sync::Mutex::new(Some((
        data.as_fd().try_clone_to_owned()?,
        admin.as_fd().try_clone_to_owned()?,
    ))));
    let addr = data.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let shutdown = CancellationToken::new();
    let timeouts = Timeouts {
        header: cfg.server.header_read_timeout,
        write: cfg.server.write_timeout,
    };
    tokio::spawn(refresh_keys(gateway.clone(), shutdown.clone()));
    let writer_stop = CancellationToken::new();
    let writer = tokio::spawn(crate::log_store::writer::run(
        gateway.clone(),
        writer_stop.clone(),
    ));
    let handed_over: Arc<std::sync::atomic::AtomicBool> = Default::default();
    let listeners = vec![
        tokio::spawn(serve(
            data,
            Newest {
                reloader: reloader.clone(),
                pick: |live| &live.api,
                draining: Default::default(),
                handed_over: handed_over.clone(),
            },
            timeouts,
            shutdown.clone(),
            cfg.server.shutdown_grace,
        )),
        tokio::spawn(serve(
            admin,
            Newest {
                reloader: reloader.clone(),
                pick: |live| &live.admin,
                draining: Default::default(),
                handed_over: handed_over.clone(),
            },
            timeouts,
            shutdown.clone(),
            cfg.server.shutdown_grace,
        )),
    ];
    Ok(Running {
        addr,
        admin_addr,
        gateway,
        reloader,
        sockets,
        handed_over,
        shutdown,
        listeners,
        writer,
        writer_stop,
    })
}

/// A listening socket with a deep accept queue: a burst of agents
/// connecting at once (a fleet starting, a failover landing here) waits in
/// the kernel rather than having its SYNs dropped and retried a second
/// later, as with the usual 128 (the kernel caps it at `somaxconn`).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// No complete request head this long after the connection opened or
    /// its last answer: closed.
    header: Duration,
    /// A write that makes no progress this long: the connection closed.
    write: Duration,
}

/// A listener's service: each request goes to the router of the newest
/// generation as it arrives (a keep-alive connection included), and runs on
/// that generation to its end.
#[derive(Clone)]
struct Newest {
    reloader: Arc<reload::Reloader>,
    pick: fn(&reload::Live) -> &Router,
    /// Set once this listener stops accepting: each HTTP/1 answer then
    /// closes its connection, so a keep-alive client's next call opens a
    /// new one (to the process that accepts now).
    draining: Arc<std::sync::atomic::AtomicBool>,
    handed_over: Arc<std::sync::atomic::AtomicBool>,
}

type Answer = Result<axum::response::Response, std::convert::Infallible>;

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Newest {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        axum::routing::future::RouteFuture<std::convert::Infallible>,
        std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>,
    >;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        use futures_util::future::Either;
        let mut router = (self.pick)(&self.reloader.live()).clone();
        let closing = self.draining.load(std::sync::atomic::Ordering::Relaxed)
            && req.version() <= http::Version::HTTP_11;
        // A router is always ready (its poll_ready is Ready).
        let answer = tower_service::Service::call(&mut router, req);
        if !closing {
            return Either::Left(answer);
        }
        Either::Right(Box::pin(async move {
            let mut resp = answer.await?;
            // An upgrade (a WebSocket) keeps its `Connection: upgrade`.
            if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok(resp)
        }))
    }
}

/// How long a listener that handed its socket over keeps its idle
/// keep-alive connections open (answering each next call with `Connection:
/// close`) before closing them: a client that sends a call just as its idle
/// connection closes sees it fail, while one told to close reconnects, to
/// the new process. (On a plain stop there is no other process to go to:
/// the connections close at once.)
const DRAIN_LINGER: Duration = Duration::from_millis(1000);

async fn serve(
    listener: TcpListener,
    router: Newest,
    timeouts: Timeouts,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let header_timeout = timeouts.header;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep going.
                tracing::warn!(error = %e, "Accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let svc = router.clone();
        let (builder, watcher, stop) = (builder.clone(), graceful.watcher(), shutdown.clone());
        tokio::spawn(async move {
            // hyper's header timeout starts once the first byte is in (its
            // auto builder first waits, unbounded, to tell HTTP/1 from 2):
            // a connection that sends nothing is closed after the same time.
            let mut first = [0u8; 1];
            tokio::select! {
                r = tokio::time::timeout(header_timeout, stream.peek(&mut first)) => match r {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                },
                () = stop.cancelled() => return,
            }
            let io = TokioIo::new(stall::Stalling::new(stream, timeouts.write));
            let conn = builder.serve_connection_with_upgrades(io, svc);
            let _ = watcher.watch(conn.into_owned()).await;
        });
    }
    drop(listener);
    router
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let linger = if router
        .handed_over
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        DRAIN_LINGER.min(grace / 4)
    } else {
        Duration::ZERO
    };
    let linger_until = tokio::time::Instant::now() + linger;
    while graceful.count() > 0 && tokio::time::Instant::now() < linger_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Connections still open after the grace period; closing them");
    }
}

/// Picks up key changes made by other replicas (or the CLI) within
/// `keys::REFRESH`.
async fn refresh_keys(gw: Arc<Gateway>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(crate::keys::REFRESH) => {}
        }
        if let Err(e) = gw.keys.refresh().await {
            tracing::warn!(error = %e, "Could not refresh keys");
        }
        let delivered = gw.streams.sweep();
        if let Some(conn) = &gw.redis
            && !delivered.is_empty()
        {
            crate::stream::shared::forget(conn, &delivered).await;
        }
    }
}
