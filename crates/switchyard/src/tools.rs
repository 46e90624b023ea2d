//! Credentialed tools (DESIGN §8): agents call third-party APIs through
//! the gateway with their Switchyard key; the gateway fixes the
//! destination from configuration ([`path`]), classifies the call read or
//! write ([`classify`]), holds writes for a person's approval
//! ([`crate::approvals`]), injects the credential only then
//! ([`crate::providers::client`]), and audits everything
//! ([`crate::audit`]).

pub mod classify;
pub mod path;
