//! Switchyard: a self-hosted AI inference gateway.
//!
//! Modules in the order a request meets them:
//!
//! - [`wire`]: the providers' wire formats and the conversions between them
//!   and the canonical model, pure (no IO).
//! - [`chat`]: the canonical chat model every dialect converts to and from.

pub mod chat;
pub mod wire;
