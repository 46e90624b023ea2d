//! `bench-floor`: the physical floor for a proxy written with hyper 1. It
//! forwards every request to `--upstream host:port` unchanged (same method,
//! path, headers and body) and streams the answer back frame by frame. No
//! parsing, no buffering, `TCP_NODELAY` on both sides, a keep-alive pool to
//! the upstream.
//!
//! Options: `--listen ADDR` (default 127.0.0.1:9100), `--upstream HOST:PORT`
//! (required). The runtime is tokio's multi-threaded one, sized by the CPUs
//! the process may run on (one, under `taskset -c 1`), like the gateway's.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchyard_bench::Args;
use tokio::net::TcpListener;

const USAGE: &str = "usage: bench-floor --upstream HOST:PORT [--listen 127.0.0.1:9100]";

type Upstream = Client<HttpConnector, Incoming>;
type FloorBody = Either<Incoming, Full<Bytes>>;

struct Proxy {
    client: Upstream,
    /// `http://host:port`, to which the request's path and query are added.
    base: String,
}

async fn forward(
    mut req: Request<Incoming>,
    proxy: Arc<Proxy>,
) -> Result<Response<FloorBody>, Infallible> {
    let pq = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let uri: Uri = match format!("{}{pq}", proxy.base).parse() {
        Ok(u) => u,
        Err(_) => return Ok(error(StatusCode::BAD_REQUEST)),
    };
    *req.uri_mut() = uri;
    match proxy.client.request(req).await {
        Ok(resp) => Ok(resp.map(Either::Left)),
        Err(e) => {
            eprintln!("bench-floor: upstream: {e}");
            Ok(error(StatusCode::BAD_GATEWAY))
        }
    }
}

fn error(status: StatusCode) -> Response<FloorBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::new())));
    *r.status_mut() = status;
    r
}

async fn serve(listen: String, upstream: String) -> Result<(), String> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector);
    let proxy = Arc::new(Proxy {
        client,
        base: format!("http://{upstream}"),
    });
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!("bench-floor listening on {listen}, forwarding to {upstream}");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bench-floor: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let p = proxy.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| forward(req, p.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn run() -> Result<(), String> {
    let args = Args::from_env(&["help"])?;
    if args.flag("help") {
        println!("{USAGE}");
        return Ok(());
    }
    args.only(&["listen", "upstream", "help"])?;
    let listen = args.get("listen", "127.0.0.1:9100".to_owned())?;
    let upstream = args.required("upstream")?.to_owned();
    if upstream.contains('/') {
        return Err("--upstream is HOST:PORT, without a scheme or path".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(serve(listen, upstream))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-floor: {e}\n{USAGE}");
            std::process::ExitCode::from(2)
        }
    }
}
