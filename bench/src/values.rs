//! Write values for the load generator: one large buffer of pseudo-random
//! bytes generated once per run, from which every write takes a window at a
//! random offset (a reference-counted slice, no copy). Values therefore
//! differ from write to write and do not compress, unless a compressibility
//! is asked for: then each 256-byte stretch of the buffer ends in a run of
//! zero bytes of that fraction, so any window compresses to about
//! `1 - compressibility` of its size under a general-purpose compressor.

use bytes::Bytes;

/// Smallest buffer windows are cut from; at 1 KiB values that is about 16
/// million distinct offsets, so two writes rarely share bytes.
const MIN_BUFFER_BYTES: usize = 16 * 1024 * 1024;
/// Length of the stretch whose tail is zeroed for compressible values.
const STRETCH_BYTES: usize = 256;

/// Hands out distinct values of one size.
#[derive(Debug, Clone)]
pub struct ValueSource {
    buf: Bytes,
    value_bytes: usize,
}

impl ValueSource {
    /// A source of `value_bytes`-byte values; `compressibility` in [0, 1) is
    /// the fraction of each value that is a run of zeros (0: incompressible).
    pub fn new(value_bytes: usize, compressibility: f64, seed: u64) -> Result<Self, String> {
        if !(0.0..1.0).contains(&compressibility) {
            return Err(format!(
                "value compressibility must be within [0, 1), got {compressibility}"
            ));
        }
        if value_bytes == 0 {
            return Ok(ValueSource {
                buf: Bytes::new(),
                value_bytes,
            });
        }
        let len = MIN_BUFFER_BYTES.max(value_bytes.saturating_mul(2));
        let mut buf = vec![0u8; len];
        fastrand::Rng::with_seed(seed).fill(&mut buf);
        let zeros = (STRETCH_BYTES as f64 * compressibility).round() as usize;
        if zeros > 0 {
            for stretch in buf.chunks_mut(STRETCH_BYTES) {
                let keep = stretch.len().saturating_sub(zeros);
                stretch[keep..].fill(0);
            }
        }
        Ok(ValueSource {
            buf: Bytes::from(buf),
            value_bytes,
        })
    }

    /// The size of every value.
    pub fn value_bytes(&self) -> usize {
        self.value_bytes
    }

    /// The next value: a window of the buffer at a random offset.
    pub fn next(&self, rng: &mut fastrand::Rng) -> Bytes {
        if self.value_bytes == 0 {
            return Bytes::new();
        }
        let offset = rng.usize(0..=self.buf.len() - self.value_bytes);
        self.buf.slice(offset..offset + self.value_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_differ_and_have_the_size() {
        let src = ValueSource::new(1024, 0.0, 1).expect("valid");
        let mut rng = fastrand::Rng::with_seed(2);
        let a = src.next(&mut rng);
        let b = src.next(&mut rng);
        assert_eq!(a.len(), 1024);
        assert_eq!(b.len(), 1024);
        assert_ne!(a, b);
        let zeros = a.iter().filter(|&&x| x == 0).count();
        assert!(zeros < 32, "{zeros} zero bytes in a random value");
    }

    #[test]
    fn compressibility_is_the_zero_fraction() {
        let src = ValueSource::new(4096, 0.5, 3).expect("valid");
        let mut rng = fastrand::Rng::with_seed(4);
        let v = src.next(&mut rng);
        let zeros = v.iter().filter(|&&x| x == 0).count() as f64 / v.len() as f64;
        assert!((0.45..0.55).contains(&zeros), "zero fraction {zeros}");
    }

    #[test]
    fn edge_cases() {
        assert!(ValueSource::new(10, 1.0, 0).is_err());
        assert!(ValueSource::new(10, -0.1, 0).is_err());
        let empty = ValueSource::new(0, 0.0, 0).expect("valid");
        assert!(empty.next(&mut fastrand::Rng::with_seed(0)).is_empty());
        let half = MIN_BUFFER_BYTES / 2 + 1;
        let big = ValueSource::new(half, 0.0, 0).expect("valid");
        assert_eq!(big.next(&mut fastrand::Rng::with_seed(0)).len(), half);
    }
}
