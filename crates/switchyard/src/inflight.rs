//! The bound on calls in flight in this process (`[server] max_concurrent`):
//! a call past it waits up to `queue_timeout_ms` for room, then is refused
//! with 503 and `Retry-After` in the caller's dialect. A call holds its
//! place until its answer's body has been sent or dropped, so a stream
//! counts until its end.

use std::pin::Pin;
use std::sync::Arc;
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
}

impl InFlight {
    pub fn new(c: &ServerConfig) -> InFlight {
        InFlight {
            places: (c.max_concurrent > 0)
                .then(|| Arc::new(Semaphore::new(c.max_concurrent as usize))),
            limit: c.max_concurrent,
            wait: c.queue_timeout,
        }
    }

    /// A place for one call (`None` when unbounded), or `Overloaded`.
    pub async fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, GatewayError> {
        let Some(places) = &self.places else {
            return Ok(None);
        };
        if let Ok(p) = places.clone().try_acquire_owned() {
            return Ok(Some(p));
        }
        match tokio::time::timeout(self.wait, places.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(Some(p)),
            _ => Err(GatewayError::Overloaded { limit: self.limit }),
        }
    }

    /// Places taken now.
    pub fn taken(&self) -> usize {
        self.places
            .as_ref()
            .map_or(0, |p| self.limit as usize - p.available_permits())
    }
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
