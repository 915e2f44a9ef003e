//! Hill climber that sizes the admission window from observed hit ratios.
//!
//! Owns the per-sample hit and miss counts and the current step. At the end
//! of each sample period it compares the period's hit ratio with the previous
//! period's: if the ratio did not drop it keeps moving the window in the same
//! direction, otherwise it reverses. The step starts at
//! `STEP_FRACTION × capacity`, decays by `STEP_DECAY` each period as the
//! climber converges, and restarts at full size when the hit ratio changes by
//! at least `RESTART_THRESHOLD` (the workload shifted). This follows
//! Caffeine's `determineAdjustment`.
//!
//! Invariants: the sample counts cover only lookups since the last
//! adjustment; the first step is negative (a fresh cache first tries a smaller
//! window, which suits frequency-skewed workloads).

const STEP_FRACTION: f64 = 0.0625;
const STEP_DECAY: f64 = 0.98;
const RESTART_THRESHOLD: f64 = 0.05;

pub(super) struct HillClimber {
    hits_in_sample: u64,
    misses_in_sample: u64,
    previous_hit_ratio: f64,
    /// Signed: positive grows the window, negative shrinks it.
    step_bytes: f64,
    full_step_bytes: f64,
}

impl HillClimber {
    pub(super) fn new(capacity_bytes: u64) -> Self {
        let full_step_bytes = STEP_FRACTION * capacity_bytes as f64;
        Self {
            hits_in_sample: 0,
            misses_in_sample: 0,
            previous_hit_ratio: 0.0,
            step_bytes: -full_step_bytes,
            full_step_bytes,
        }
    }

    pub(super) fn record(&mut self, hit: bool) {
        if hit {
            self.hits_in_sample += 1;
        } else {
            self.misses_in_sample += 1;
        }
    }

    /// Once `sample_lookups` lookups have been recorded since the last
    /// adjustment, returns the signed change to the window size in bytes and
    /// starts a new sample; before that, returns `None`.
    pub(super) fn adjustment(&mut self, sample_lookups: u64) -> Option<i64> {
        let lookups = self.hits_in_sample + self.misses_in_sample;
        if lookups < sample_lookups.max(1) {
            return None;
        }
        let hit_ratio = self.hits_in_sample as f64 / lookups as f64;
        let change = hit_ratio - self.previous_hit_ratio;
        let amount = if change >= 0.0 {
            self.step_bytes
        } else {
            -self.step_bytes
        };
        self.step_bytes = if change.abs() >= RESTART_THRESHOLD {
            self.full_step_bytes.copysign(amount)
        } else {
            STEP_DECAY * amount
        };
        self.previous_hit_ratio = hit_ratio;
        self.hits_in_sample = 0;
        self.misses_in_sample = 0;
        // `amount` is at most `STEP_FRACTION × capacity` in magnitude, so the
        // float-to-int conversion cannot saturate.
        Some(amount as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(climber: &mut HillClimber, hits: u64, misses: u64) -> Option<i64> {
        for _ in 0..hits {
            climber.record(true);
        }
        for _ in 0..misses {
            climber.record(false);
        }
        climber.adjustment(hits + misses)
    }

    #[test]
    fn waits_for_a_full_sample() {
        let mut climber = HillClimber::new(1600);
        climber.record(true);
        assert_eq!(climber.adjustment(2), None);
        climber.record(false);
        assert_eq!(climber.adjustment(2), Some(-100));
    }

    #[test]
    fn keeps_direction_while_improving_and_reverses_on_a_drop() {
        let mut climber = HillClimber::new(1600);
        // First sample: the ratio rises from 0, so the initial shrink is kept.
        assert_eq!(sample(&mut climber, 50, 50), Some(-100));
        // A small improvement keeps the direction; the next step decays.
        assert_eq!(sample(&mut climber, 51, 49), Some(-100));
        // A small drop reverses it.
        assert_eq!(sample(&mut climber, 50, 50), Some(98));
        // A sharp change moves on and restarts the next step at full size.
        assert_eq!(sample(&mut climber, 90, 10), Some(96));
        assert_eq!(sample(&mut climber, 90, 10), Some(100));
        assert_eq!(sample(&mut climber, 90, 10), Some(98));
    }
}
