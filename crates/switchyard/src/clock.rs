//! Wall-clock time for records and expiries. Deadlines and timeouts use
//! `tokio::time::Instant` instead, so tests can pause them.

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn unix_s() -> u64 {
    (unix_ms() / 1000) as u64
}
