//! `bench-ttfb`: time to first byte of streamed answers, as a client sees it.
//!
//! Sends the same POST again and again over ONE keep-alive connection
//! (`TCP_NODELAY`), one request at a time, and records for each the time
//! from sending to the first body byte (the first SSE event) and to the end
//! of the body. Prints one JSON object with nearest-rank p50/p90/p99 in
//! milliseconds. Any status other than 200 is an error (exit 1).
//!
//! Options: `--url http://HOST:PORT/PATH` (required), `--body-file FILE`
//! (required), `--header 'name: value'` (repeatable), `--duration-ms D`
//! (default 2000) or `--requests N` (stop after N), `--warmup N` (default 50,
//! not recorded).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use switchyard_bench::{Args, percentile};
use tokio::net::TcpStream;

const USAGE: &str = "usage: bench-ttfb --url http://HOST:PORT/PATH --body-file FILE \
[--header 'name: value']... [--duration-ms 2000 | --requests N] [--warmup 50]";

struct Sample {
    ttfb: Duration,
    total: Duration,
}

async fn one(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    template: &Request<Full<Bytes>>,
    body: &Bytes,
) -> Result<Sample, String> {
    let mut req = Request::new(Full::new(body.clone()));
    *req.method_mut() = template.method().clone();
    *req.uri_mut() = template.uri().clone();
    *req.headers_mut() = template.headers().clone();
    sender
        .ready()
        .await
        .map_err(|e| format!("connection closed: {e}"))?;
    let start = Instant::now();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut ttfb = None;
    let mut text = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body failed: {e}"))?;
        if let Some(d) = frame.data_ref() {
            if ttfb.is_none() && !d.is_empty() {
                ttfb = Some(start.elapsed());
            }
            if !status.is_success() && text.len() < 2048 {
                text.extend_from_slice(d);
            }
        }
    }
    let total = start.elapsed();
    if status != hyper::StatusCode::OK {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&text)
        ));
    }
    Ok(Sample {
        ttfb: ttfb.unwrap_or(total),
        total,
    })
}

fn ms(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (
        percentile(&v, 50.0),
        percentile(&v, 90.0),
        percentile(&v, 99.0),
    )
}

async fn probe(args: Args) -> Result<String, String> {
    let url: Uri = args
        .required("url")?
        .parse()
        .map_err(|e| format!("--url: {e}"))?;
    if url.scheme_str() != Some("http") {
        return Err("--url must be http://".into());
    }
    let authority = url
        .authority()
        .ok_or("--url needs a host and port")?
        .clone();
    let file = args.required("body-file")?;
    let body = Bytes::from(std::fs::read(file).map_err(|e| format!("--body-file {file}: {e}"))?);
    let duration = Duration::from_millis(args.get("duration-ms", 2000)?);
    let max_requests: Option<usize> = match args.value("requests") {
        Some(_) => Some(args.get("requests", 0)?),
        None => None,
    };
    let warmup: usize = args.get("warmup", 50)?;

    let mut template = Request::new(Full::new(Bytes::new()));
    *template.method_mut() = Method::POST;
    *template.uri_mut() = url
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|e| format!("--url: {e}"))?;
    let h = template.headers_mut();
    h.insert(
        HOST,
        HeaderValue::from_str(authority.as_str()).map_err(|e| format!("--url: {e}"))?,
    );
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for raw in args.values("header") {
        let (name, value) = raw
            .split_once(':')
            .ok_or_else(|| format!("--header `{raw}`: expected `name: value`"))?;
        let name: HeaderName = name
            .trim()
            .parse()
            .map_err(|e| format!("--header `{raw}`: {e}"))?;
        let value =
            HeaderValue::from_str(value.trim()).map_err(|e| format!("--header `{raw}`: {e}"))?;
        h.insert(name, value);
    }

    let stream = TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| format!("connect {authority}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);

    for _ in 0..warmup {
        one(&mut sender, &template, &body).await?;
    }
    let mut ttfb = Vec::new();
    let mut total = Vec::new();
    let started = Instant::now();
    loop {
        if let Some(n) = max_requests {
            if ttfb.len() >= n {
                break;
            }
        } else if started.elapsed() >= duration {
            break;
        }
        let s = one(&mut sender, &template, &body).await?;
        ttfb.push(s.ttfb.as_secs_f64() * 1000.0);
        total.push(s.total.as_secs_f64() * 1000.0);
    }
    let n = ttfb.len();
    let (t50, t90, t99) = ms(ttfb);
    let (a50, a90, a99) = ms(total);
    Ok(format!(
        concat!(
            r#"{{"requests":{n},"ttfb_ms":{{"p50":{t50:.4},"p90":{t90:.4},"p99":{t99:.4}}},"#,
            r#""total_ms":{{"p50":{a50:.4},"p90":{a90:.4},"p99":{a99:.4}}}}}"#
        ),
        n = n,
        t50 = t50,
        t90 = t90,
        t99 = t99,
        a50 = a50,
        a90 = a90,
        a99 = a99,
    ))
}

fn main() -> std::process::ExitCode {
    let result = Args::from_env(&["help"]).and_then(|args| {
        if args.flag("help") {
            return Ok(USAGE.to_owned());
        }
        args.only(&[
            "url",
            "body-file",
            "header",
            "duration-ms",
            "requests",
            "warmup",
            "help",
        ])?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?
            .block_on(probe(args))
    });
    match result {
        Ok(out) => {
            println!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-ttfb: {e}\n{USAGE}");
            std::process::ExitCode::from(1)
        }
    }
}
