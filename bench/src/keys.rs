//! Key choice for the load generator: the key naming scheme, a uniform
//! distribution and a YCSB-style scrambled zipfian distribution over
//! `0..n` (Gray et al., "Quickly generating billion-record synthetic
//! databases"), so hot keys are spread over the key space instead of being
//! the first few indices. Also the set of key indices written so far
//! (`KeyTracker`), for the count of distinct keys a run stored.

use std::sync::atomic::{AtomicU64, Ordering};

/// The key string for key index `i` (fixed width, so all keys have the same
/// length).
pub fn key_name(i: u64) -> String {
    format!("key{i:012}")
}

/// How keys are drawn.
#[derive(Debug, Clone)]
pub enum KeyChooser {
    /// Every key index equally likely.
    Uniform { n: u64 },
    /// Zipfian popularity, scrambled by a bijection of `0..n`.
    Zipfian(Zipfian),
}

impl KeyChooser {
    /// A uniform chooser over `0..n` (`n >= 1`).
    pub fn uniform(n: u64) -> Self {
        KeyChooser::Uniform { n: n.max(1) }
    }

    /// A scrambled zipfian chooser over `0..n` with skew `theta` in (0, 1).
    pub fn zipfian(n: u64, theta: f64) -> Result<Self, String> {
        Ok(KeyChooser::Zipfian(Zipfian::new(n, theta)?))
    }

    /// Draws one key index.
    pub fn next(&self, rng: &mut fastrand::Rng) -> u64 {
        match self {
            KeyChooser::Uniform { n } => rng.u64(0..*n),
            KeyChooser::Zipfian(z) => z.next_scrambled(rng),
        }
    }
}

/// Largest key count whose written set is tracked (an 8 MiB bitmap).
pub const MAX_TRACKED_KEYS: u64 = 1 << 26;

/// Which key indices of `0..n` were written, shared by all load tasks.
#[derive(Debug)]
pub struct KeyTracker {
    words: Vec<AtomicU64>,
}

impl KeyTracker {
    /// A tracker of `0..n`, or None when `n` exceeds [`MAX_TRACKED_KEYS`].
    pub fn new(n: u64) -> Option<Self> {
        if n > MAX_TRACKED_KEYS {
            return None;
        }
        let words = n.div_ceil(64) as usize;
        Some(KeyTracker {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Marks key index `i` written (indices out of range are ignored).
    pub fn mark(&self, i: u64) {
        let bit = 1u64 << (i % 64);
        if let Some(w) = self.words.get((i / 64) as usize) {
            if w.load(Ordering::Relaxed) & bit == 0 {
                w.fetch_or(bit, Ordering::Relaxed);
            }
        }
    }

    /// Distinct indices marked so far.
    pub fn count(&self) -> u64 {
        self.words
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as u64)
            .sum()
    }
}

/// YCSB zipfian generator; index 0 is the most popular before scrambling.
#[derive(Debug, Clone)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    mult: u64,
    offset: u64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Zipfian {
    /// Precomputes the constants (O(n) once).
    pub fn new(n: u64, theta: f64) -> Result<Self, String> {
        if n == 0 {
            return Err("zipfian needs at least one key".into());
        }
        if !(theta > 0.0 && theta < 1.0) {
            return Err(format!("zipf theta must be in (0, 1), got {theta}"));
        }
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2.min(n), theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = if n > 1 {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            1.0
        };
        // Multiplier coprime with n, so i -> (i * mult + offset) mod n is a
        // bijection.
        let mut mult = 0x9E37_79B9_7F4A_7C15_u64 % n;
        while n > 1 && (mult == 0 || gcd(mult, n) != 1) {
            mult = (mult + 1) % n;
        }
        let offset = 0x5851_F42D_4C95_7F2D_u64 % n;
        Ok(Zipfian {
            n,
            theta,
            alpha,
            zetan,
            eta,
            mult,
            offset,
        })
    }

    /// Draws a popularity rank: 0 is the hottest.
    pub fn next_rank(&self, rng: &mut fastrand::Rng) -> u64 {
        let u = rng.f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if self.n > 1 && uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let v = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.n - 1)
    }

    /// Draws a key index: a rank mapped through the bijection.
    pub fn next_scrambled(&self, rng: &mut fastrand::Rng) -> u64 {
        let r = self.next_rank(rng) as u128;
        ((r * self.mult as u128 + self.offset as u128) % self.n as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn zipfian_is_skewed_and_in_range() {
        let z = Zipfian::new(1000, 0.99).expect("valid");
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            let r = z.next_rank(&mut rng);
            counts[r as usize] += 1;
        }
        // Rank 0 carries far more than a uniform share (100).
        assert!(counts[0] > 5_000, "rank 0 drew {}", counts[0]);
        assert!(counts[0] > counts[10]);
    }

    #[test]
    fn scramble_is_a_bijection() {
        for n in [1u64, 2, 10, 97, 1000, 4096] {
            let z = Zipfian::new(n, 0.5).expect("valid");
            let image: HashSet<u64> = (0..n)
                .map(|r| ((r as u128 * z.mult as u128 + z.offset as u128) % n as u128) as u64)
                .collect();
            assert_eq!(image.len() as u64, n);
        }
    }

    #[test]
    fn tracker_counts_distinct() {
        let t = KeyTracker::new(130).expect("small");
        for i in [0, 1, 1, 63, 64, 129, 129, 500] {
            t.mark(i);
        }
        assert_eq!(t.count(), 5);
        assert!(KeyTracker::new(MAX_TRACKED_KEYS + 1).is_none());
    }

    #[test]
    fn rejects_bad_theta() {
        assert!(Zipfian::new(10, 1.0).is_err());
        assert!(Zipfian::new(10, 0.0).is_err());
        assert!(Zipfian::new(0, 0.5).is_err());
    }
}
