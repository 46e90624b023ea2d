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

/// Days from 1970-01-01 to the proleptic Gregorian date `y-m-d` (Howard
/// Hinnant's `days_from_civil`): what dates in HTTP headers and AWS
/// answers are read with.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// A new time-ordered id (UUIDv7) for a request: 48 bits of milliseconds,
/// a 12-bit sequence that orders ids made in the same millisecond by this
/// process (RFC 9562 §6.2, method 1), then 62 random bits. Records list
/// newest first by (time, id), so two calls in one millisecond keep the
/// order they were made in. The random bits come from the thread's CSPRNG,
/// not from a `getrandom` system call per id as `Uuid::now_v7` makes them.
pub fn request_id() -> uuid::Uuid {
    use rand::RngCore;
    use std::sync::atomic::{AtomicU64, Ordering};
    // Milliseconds << 12 | sequence, of the last id made. A sequence that
    // overflows carries into the millisecond: ids stay unique and ordered,
    // a burst of more than 4096 ids in one millisecond runs a little ahead.
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = (unix_ms().max(0) as u64) << 12;
    let mut last = LAST.load(Ordering::Relaxed);
    let stamp = loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    let ms = stamp >> 12;
    let seq = (stamp & 0xfff) as u16;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70 | (seq >> 8) as u8;
    bytes[7] = seq as u8;
    rand::thread_rng().fill_bytes(&mut bytes[8..]);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    uuid::Uuid::from_bytes(bytes)
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

    #[test]
    fn request_ids_made_in_one_millisecond_keep_their_order() {
        let ids: Vec<_> = (0..10_000).map(|_| super::request_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let id = ids[0];
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        let (secs, _) = id.get_timestamp().unwrap().to_unix();
        assert!(secs.abs_diff(super::unix_s()) < 5);
    }
}
