//! Reconnect delays: exponential, capped, with jitter. Pure: the random
//! factor is passed in.

use std::time::Duration;

/// First retry delay.
pub const BASE: Duration = Duration::from_secs(1);
/// Longest delay between retries.
pub const CAP: Duration = Duration::from_secs(30);

/// Longest pause before redialling a connection that had served well and
/// was lost (an edge restarted, a path changed): the edge is most likely
/// back or another is up, so the first redial is at once, spread over this
/// much so many connectors do not arrive in one instant.
pub const AFTER_LOSS: Duration = Duration::from_millis(250);

/// Delay before the first redial after losing a connection that had been
/// up for a while; `jitter` in `[0, 1)`.
pub fn after_loss(jitter: f64) -> Duration {
    AFTER_LOSS.mul_f64(jitter.clamp(0.0, 1.0))
}

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
        assert!(after_loss(0.99) < AFTER_LOSS);
        assert_eq!(after_loss(0.0), Duration::ZERO);
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
