//! The I/O rate limit of compaction.
//!
//! Owns [`RateLimiter`]: a running budget of bytes per second over one
//! compaction. After each chunk of I/O the caller reports the bytes; when the
//! total is ahead of `rate x elapsed` the limiter sleeps the difference, so
//! the compaction's average rate stays at or below the budget. The pure part
//! ([`delay_for`]) is unit tested without I/O. Invariant: a rate of 0 never
//! delays; [`RateLimiter::restart`] forgets earlier I/O, so a period without
//! the limit is not paid back with a long sleep afterwards.

use std::time::{Duration, Instant};

/// How long to wait so that `bytes` done since the start, `elapsed` ago,
/// does not exceed `bytes_per_s` (0 = unlimited).
pub(crate) fn delay_for(bytes: u64, elapsed: Duration, bytes_per_s: u64) -> Duration {
    if bytes_per_s == 0 {
        return Duration::ZERO;
    }
    let due = Duration::from_secs_f64(bytes as f64 / bytes_per_s as f64);
    due.saturating_sub(elapsed)
}

pub(crate) struct RateLimiter {
    bytes_per_s: u64,
    started: Instant,
    bytes: u64,
    /// Time spent sleeping for the limit.
    throttled: Duration,
}

impl RateLimiter {
    /// A limiter at `mb_s` MB/s (10^6 bytes; 0 = unlimited).
    pub(crate) fn new(mb_s: u64) -> Self {
        Self::with_bytes_per_s(mb_s.saturating_mul(1_000_000))
    }

    /// A limiter at `bytes_per_s` (0 = unlimited).
    pub(crate) fn with_bytes_per_s(bytes_per_s: u64) -> Self {
        Self {
            bytes_per_s,
            started: Instant::now(),
            bytes: 0,
            throttled: Duration::ZERO,
        }
    }

    /// Forgets the I/O done so far: the budget starts again from now. Used
    /// while the limit is lifted, so lifting it is not paid back later.
    pub(crate) fn restart(&mut self) {
        self.started = Instant::now();
        self.bytes = 0;
    }

    /// Accounts `bytes` of I/O and sleeps while ahead of the budget.
    pub(crate) async fn consume(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        let wait = delay_for(self.bytes, self.started.elapsed(), self.bytes_per_s);
        // Sleeping for less than a millisecond costs more than it saves.
        if wait >= Duration::from_millis(1) {
            glommio::timer::sleep(wait).await;
            self.throttled += wait;
        }
    }

    pub(crate) fn throttled(&self) -> Duration {
        self.throttled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits() {
        assert_eq!(delay_for(u64::MAX, Duration::ZERO, 0), Duration::ZERO);
    }

    #[test]
    fn waits_exactly_the_lead_over_the_budget() {
        // 10 MB at 10 MB/s is due at 1 s; after 0.25 s, wait 0.75 s.
        let d = delay_for(10_000_000, Duration::from_millis(250), 10_000_000);
        assert_eq!(d, Duration::from_millis(750));
        // Behind the budget: no wait.
        assert_eq!(
            delay_for(1_000_000, Duration::from_secs(1), 10_000_000),
            Duration::ZERO
        );
    }

    #[test]
    fn limiter_holds_the_average_rate() {
        crate::engine::shard::tests::with_executor(|_| async move {
            let mut limiter = RateLimiter::new(10); // 10 MB/s
            let started = Instant::now();
            for _ in 0..10 {
                limiter.consume(200_000).await; // 2 MB in total
            }
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(190), "{took:?}");
            assert!(limiter.throttled() > Duration::ZERO);
        });
    }
}
