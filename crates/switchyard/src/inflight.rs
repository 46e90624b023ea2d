//! The bounds on calls in flight: in this process (`[server]
//! max_concurrent`, model and tool calls) and per key (`max_concurrent` on
//! the key, every request the key makes). A call past a bound waits up to
//! `queue_timeout_ms` for room, then is refused with 503 and `Retry-After`
//! in the caller's dialect. A call holds its place until its answer's body
//! has been sent or dropped, so a stream counts until its end. Per key the
//! bound is this process's: replicas each allow the key's number.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServerConfig;
use crate::error::GatewayError;

#[derive(Debug)]
pub struct InFlight {
    places: Option<Arc<Semaphore>>,
    limit: u32,
    wait: Duration,
    /// Per key: its bound as last seen, and its places.
    keys: Mutex<HashMap<String, (u32, Arc<Semaphore>)>>,
}

impl InFlight {
    pub fn new(c: &ServerConfig) -> InFlight {
        InFlight {
            places: (c.max_concurrent > 0)
                .then(|| Arc::new(Semaphore::new(c.max_concurrent as usize))),
            limit: c.max_concurrent,
            wait: c.queue_timeout,
            keys: Mutex::default(),
        }
    }

    /// A place among the key's requests in flight, when it has a bound.
    pub async fn admit_key(
        &self,
        key: &crate::keys::KeyRecord,
    ) -> Result<Option<OwnedSemaphorePermit>, GatewayError> {
        let Some(limit) = key.max_concurrent else {
            return Ok(None);
        };
        let places = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            let slot = keys
                .entry(key.id.clone())
                .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit as usize))));
            // A changed bound starts afresh (places held go back to the old).
            if slot.0 != limit {
                *slot = (limit, Arc::new(Semaphore::new(limit as usize)));
            }
            slot.1.clone()
        };
        take(places, self.wait)
            .await
            .map(Some)
            .ok_or(GatewayError::Overloaded {
                limit,
                per_key: true,
            })
    }

    /// A place for one call (`None` when unbounded), or `Overloaded`.
    pub async fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, GatewayError> {
        let Some(places) = &self.places else {
            return Ok(None);
        };
        take(places.clone(), self.wait)
            .await
            .map(Some)
            .ok_or(GatewayError::Overloaded {
                limit: self.limit,
                per_key: false,
            })
    }

    /// Places taken now.
    pub fn taken(&self) -> usize {
        self.places
            .as_ref()
            .map_or(0, |p| self.limit as usize - p.available_permits())
    }
}

/// A place at once, or within `wait`.
async fn take(places: Arc<Semaphore>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = places.clone().try_acquire_owned() {
        return Some(p);
    }
    tokio::time::timeout(wait, places.acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
}

/// The answer, holding `place` until its body is done.
pub fn hold(resp: Response, place: Option<OwnedSemaphorePermit>) -> Response {
    match place {
        None => resp,
        Some(place) => resp.map(|inner| {
            Body::new(Holding {
                inner,
                _place: place,
            })
        }),
    }
}

struct Holding {
    inner: Body,
    _place: OwnedSemaphorePermit,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
