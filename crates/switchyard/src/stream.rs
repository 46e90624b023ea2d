//! Streams: an upstream SSE body read incrementally, translated into the
//! caller's dialect, and written to a [`Buffer`] that the caller's response
//! follows.
//!
//! The split matters: the upstream read runs in a tracked task that fills
//! the buffer, and the client only follows the buffer. A disconnect drops
//! the follower, not the generation, and whatever the upstream already sent
//! is coalesced into one write when the client catches up.

pub mod buffer;
pub mod framing;
pub mod registry;
pub mod shared;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};

pub use buffer::{Buffer, Chunk};

use crate::chat::{Event, FinishReason, Usage};
use crate::dialect::{Decoder, Dialect, Encoder, Relay, Start};
use crate::providers::{Provider, UpstreamError};
use crate::wire::{StreamError, sse};

/// Turns upstream events into caller-dialect bytes.
#[derive(Debug)]
pub enum Translator {
    /// Same dialect both sides: events pass as they came.
    Relay(Relay),
    /// Different dialects: decode to canonical events, encode again.
    Cross(Box<Cross>),
}

#[derive(Debug)]
pub struct Cross {
    decoder: Decoder,
    encoder: Encoder,
    events: Vec<Event>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
}

impl Translator {
    /// `start` names the answer until the upstream names it.
    pub fn new(caller: Dialect, upstream: Dialect, start: Start<'_>) -> Translator {
        if let Some(relay) = Dialect::relay(caller, upstream, &start) {
            return Translator::Relay(relay);
        }
        Translator::Cross(Box::new(Cross {
            decoder: upstream.stream_decoder(),
            encoder: caller.stream_encoder(start),
            events: Vec::new(),
            usage: None,
            finish: None,
        }))
    }

    pub fn feed(&mut self, ev: &sse::Event, w: &mut sse::Writer) -> Result<(), StreamError> {
        match self {
            Translator::Relay(r) => r.relay(ev, w),
            Translator::Cross(c) => {
                let Cross {
                    decoder,
                    encoder,
                    events,
                    usage,
                    finish,
                } = &mut **c;
                events.clear();
                decoder.decode(ev, events)?;
                for e in events.iter() {
                    match e {
                        Event::Usage(u) => *usage = Some(*u),
                        Event::Finish { reason, .. } => *finish = Some(reason.clone()),
                        _ => {}
                    }
                    encoder.encode(e, w);
                }
                Ok(())
            }
        }
    }

    /// Whether the upstream said its answer is complete: a terminal marker
    /// (`[DONE]`, `message_stop`) or a finish reason.
    pub fn complete(&self) -> bool {
        match self {
            Translator::Relay(r) => r.complete(),
            Translator::Cross(c) => c.finish.is_some() || c.decoder.done(),
        }
    }

    /// The upstream body ended after a complete answer: write the caller's
    /// closing events.
    pub fn finish(&mut self, w: &mut sse::Writer) {
        match self {
            Translator::Relay(r) => r.finish(w),
            Translator::Cross(c) => c.encoder.finish(w),
        }
    }

    /// Ends the stream with a terminal error in the caller's dialect.
    pub fn fail(&mut self, w: &mut sse::Writer, error_body: &[u8]) {
        match self {
            Translator::Relay(r) => r.fail(w, error_body),
            Translator::Cross(c) => c.encoder.fail(w, error_body),
        }
    }

    /// The answer's final object, for dialects whose streams end with one
    /// (a Responses stream's terminal Response).
    pub fn terminal(&self) -> Option<&str> {
        match self {
            Translator::Relay(r) => r.terminal(),
            Translator::Cross(c) => c.encoder.terminal(),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            Translator::Relay(r) => r.usage(),
            Translator::Cross(c) => c.usage,
        }
    }

    pub fn finish_reason(&self) -> Option<&FinishReason> {
        match self {
            Translator::Relay(r) => r.finish_reason(),
            Translator::Cross(c) => c.finish.as_ref(),
        }
    }
}

/// Past this many bytes waiting for the caller, they are sent without
/// looking for more.
const COALESCE_BYTES: usize = 64 * 1024;

/// An upstream stream being read: body, SSE parser, translator, writer.
pub struct Live {
    pub provider: Arc<Provider>,
    body: http_body_util::BodyDataStream<hyper::body::Incoming>,
    framing: framing::Framing,
    pub translator: Translator,
    writer: sse::Writer,
    events: Vec<sse::Event>,
    /// Set once the stream has ended, normally or not.
    pub outcome: Option<StreamOutcome>,
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamOutcome {
    Complete,
    Failed(UpstreamError),
}

impl Live {
    pub fn new(
        provider: Arc<Provider>,
        resp: crate::providers::client::UpstreamResponse,
        translator: Translator,
    ) -> Live {
        let frames = framing::Framing::of(provider.dialect());
        Live {
            provider,
            body: http_body_util::BodyDataStream::new(resp.into_body()),
            framing: frames,
            translator,
            writer: sse::Writer::new(0),
            events: Vec::new(),
            outcome: None,
        }
    }

    /// Reads until the translator has written something for the caller, the
    /// stream fails, or `timeout` passes. Nothing has reached the caller yet,
    /// so a failure here may still fail over.
    pub async fn first_output(&mut self, timeout: Duration) -> Result<Chunk, UpstreamError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => {
                    return Err(UpstreamError::timeout(
                        self.provider.name(),
                        "stream event",
                        timeout,
                    ));
                }
                Ok(n) => n,
            };
            match next {
                Some(Ok(bytes)) => {
                    self.ingest(&bytes)
                        .map_err(|e| UpstreamError::in_stream(&self.provider, &e))?;
                    if !self.writer.buf.is_empty() {
                        return Ok(self.take());
                    }
                }
                Some(Err(e)) => {
                    return Err(UpstreamError::broken_stream(
                        self.provider.name(),
                        &e.to_string(),
                    ));
                }
                None => {
                    let framed = self.framing.finish(&mut self.events);
                    framed
                        .and(self.translate())
                        .map_err(|e| UpstreamError::in_stream(&self.provider, &e))?;
                    if self.translator.complete() {
                        self.translator.finish(&mut self.writer);
                        self.outcome = Some(StreamOutcome::Complete);
                        return Ok(self.take());
                    }
                    return Err(UpstreamError::broken_stream(
                        self.provider.name(),
                        "the stream ended before any event",
                    ));
                }
            }
        }
    }

    /// Whether the events written for the caller carry `id:` lines (see
    /// [`Dialect::sse_ids`]).
    pub fn sse_ids(&mut self, on: bool) {
        self.writer.ids = on;
    }

    /// Frames `bytes` into events and translates them; a framing error
    /// (Bedrock's exception frames included) after the events before it.
    fn ingest(&mut self, bytes: &bytes::Bytes) -> Result<(), StreamError> {
        let framed = self.framing.feed(bytes, &mut self.events);
        let translated = self.translate();
        framed.and(translated)
    }

    fn translate(&mut self) -> Result<(), StreamError> {
        let mut result = Ok(());
        for ev in self.events.drain(..) {
            if result.is_ok() {
                result = self.translator.feed(&ev, &mut self.writer);
            }
        }
        result
    }

    /// The next bytes for the caller, coalescing every upstream read that is
    /// already available. `None` once the stream has ended. Failures become
    /// a terminal error event rendered by `render_error`.
    pub async fn next_output(
        &mut self,
        deadline: tokio::time::Instant,
        render_error: &(dyn Fn(&UpstreamError) -> Vec<u8> + Send + Sync),
    ) -> Option<Chunk> {
        if self.outcome.is_some() {
            return None;
        }
        loop {
            // An upstream silent for as long as it may take to answer at
            // all (the provider's `timeout_ms`) has stalled: the stream ends
            // with an error rather than hanging until the whole deadline.
            let idle = self.provider.config.timeout;
            let bound = (tokio::time::Instant::now() + idle).min(deadline);
            let next = match tokio::time::timeout_at(bound, self.body.next()).await {
                Ok(n) => n,
                Err(_) => {
                    let err = if bound < deadline {
                        UpstreamError::timeout(self.provider.name(), "next stream event", idle)
                    } else {
                        UpstreamError::timeout(
                            self.provider.name(),
                            "end of stream before the deadline",
                            Duration::ZERO,
                        )
                    };
                    return Some(self.end_with(err, render_error));
                }
            };
            let mut next = next;
            loop {
                match next {
                    Some(Ok(bytes)) => {
                        if let Err(e) = self.ingest(&bytes) {
                            let err = UpstreamError::in_stream(&self.provider, &e);
                            return Some(self.end_with(err, render_error));
                        }
                    }
                    Some(Err(e)) => {
                        let err =
                            UpstreamError::broken_stream(self.provider.name(), &e.to_string());
                        return Some(self.end_with(err, render_error));
                    }
                    None => {
                        let framed = self.framing.finish(&mut self.events);
                        if let Err(e) = framed.and(self.translate()) {
                            let err = UpstreamError::in_stream(&self.provider, &e);
                            return Some(self.end_with(err, render_error));
                        }
                        if self.translator.complete() {
                            self.translator.finish(&mut self.writer);
                            self.outcome = Some(StreamOutcome::Complete);
                            return Some(self.take());
                        }
                        let err = UpstreamError::broken_stream(
                            self.provider.name(),
                            "the upstream ended the stream before its answer was complete",
                        );
                        return Some(self.end_with(err, render_error));
                    }
                }
                // Coalesce: take whatever else is already readable. The
                // connection task hands over one HTTP chunk at a time, so
                // let it run (a yield) and look again, for as long as that
                // brings more: an upstream that writes events back to back
                // then reaches the caller in one write, while a paced one
                // costs a single yield per event.
                if self.writer.buf.len() >= COALESCE_BYTES {
                    break;
                }
                match self.body.next().now_or_never() {
                    Some(more) => next = more,
                    None => {
                        tokio::task::yield_now().await;
                        match self.body.next().now_or_never() {
                            Some(more) => next = more,
                            None => break,
                        }
                    }
                }
            }
            if !self.writer.buf.is_empty() {
                return Some(self.take());
            }
        }
    }

    /// Ends a stream the gateway stops (nobody is reading it) with a
    /// terminal error `error_body`, so whoever re-attaches sees it was cut,
    /// never a clean end.
    pub fn stop(&mut self, error_body: &[u8]) -> Chunk {
        self.translator.fail(&mut self.writer, error_body);
        self.take()
    }

    fn end_with(
        &mut self,
        err: UpstreamError,
        render_error: &(dyn Fn(&UpstreamError) -> Vec<u8> + Send + Sync),
    ) -> Chunk {
        let body = render_error(&err);
        self.translator.fail(&mut self.writer, &body);
        self.outcome = Some(StreamOutcome::Failed(err));
        self.take()
    }

    fn take(&mut self) -> Chunk {
        let (bytes, starts) = self.writer.take_events();
        Chunk::new(bytes, starts)
    }
}
