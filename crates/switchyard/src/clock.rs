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

/// A new time-ordered id (UUIDv7: milliseconds, then 74 random bits) for a
/// request. The random bits come from the thread's CSPRNG, not from a
/// `getrandom` system call per id as `Uuid::now_v7` makes them.
pub fn request_id() -> uuid::Uuid {
    use rand::RngCore;
    let mut random = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut random);
    uuid::Builder::from_unix_timestamp_millis(unix_ms().max(0) as u64, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_v7_and_ordered_by_millisecond() {
        let a = super::request_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::request_id();
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b, "{a} then {b}");
        assert_ne!(super::request_id(), super::request_id());
    }
}
