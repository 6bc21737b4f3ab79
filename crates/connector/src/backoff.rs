//! Reconnect delays: exponential, capped, with jitter. Pure: the random
//! factor is passed in.

use std::time::Duration;

/// First retry delay.
pub const BASE: Duration = Duration::from_secs(1);
/// Longest delay between retries.
pub const CAP: Duration = Duration::from_secs(30);

/// Delay before retry number `attempt` (0-based). `jitter` in `[0, 1)`
/// scales the delay into `[d/2, d)` so that many connectors that lost the
/// same edge do not come back in lock-step.
pub fn delay(attempt: u32, jitter: f64) -> Duration {
    let exp = BASE.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
    let d = exp.min(CAP);
    let j = jitter.clamp(0.0, 1.0);
    d.mul_f64(0.5 + j / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_then_caps() {
        assert_eq!(delay(0, 1.0), Duration::from_secs(1));
        assert_eq!(delay(1, 1.0), Duration::from_secs(2));
        assert_eq!(delay(3, 1.0), Duration::from_secs(8));
        assert_eq!(delay(40, 1.0), CAP);
        assert_eq!(delay(0, 0.0), Duration::from_millis(500));
    }

    proptest! {
        #[test]
        fn always_within_bounds(attempt in any::<u32>(), j in 0.0f64..1.0) {
            let d = delay(attempt, j);
            prop_assert!(d >= BASE / 2);
            prop_assert!(d <= CAP);
        }
    }
}
