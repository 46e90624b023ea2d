//! Backoff between attempts to the same provider: exponential with full
//! jitter (a random wait between zero and the bound), so a fleet of clients
//! that failed together does not retry together.

use std::time::Duration;

use rand::Rng;

const BASE: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(2);

/// The wait before the `n`-th retry (n ≥ 1) of the same provider.
pub fn delay(n: u32, rng: &mut impl Rng) -> Duration {
    let bound = BASE
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)))
        .min(CAP);
    bound.mul_f64(rng.r#gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    proptest! {
        #[test]
        fn stays_within_bounds(n in 1u32..1000, seed in any::<u64>()) {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let d = delay(n, &mut rng);
            let bound = BASE.saturating_mul(2u32.saturating_pow((n - 1).min(16))).min(CAP);
            prop_assert!(d <= bound);
            prop_assert!(d <= CAP);
        }
    }
}
