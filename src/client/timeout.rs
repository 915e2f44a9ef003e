//! The `grpc-timeout` request header, written from a duration.
//!
//! Owns the formatting: at most 8 ASCII digits and a unit, the finest unit
//! that fits, rounded up so the server's deadline is never shorter than the
//! caller's. Invariant: the output always parses back (with the server's
//! `parse_timeout`) to a duration at least as long as the input, capped at
//! 99999999 hours.

use std::time::Duration;

/// Largest value the header may carry in any unit.
const DIGITS_MAX: u128 = 99_999_999;

/// Formats `timeout` as a `grpc-timeout` value (`"250m"`, `"3S"`, ...).
pub(crate) fn format_timeout(timeout: Duration) -> String {
    let nanos = timeout.as_nanos();
    const UNITS: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per, unit) in UNITS {
        let value = nanos.div_ceil(per);
        if value <= DIGITS_MAX {
            return format!("{value}{unit}");
        }
    }
    format!("{DIGITS_MAX}H")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::grpc::parse_timeout;
    use proptest::prelude::*;

    #[test]
    fn picks_the_finest_unit_that_fits() {
        assert_eq!(format_timeout(Duration::ZERO), "0n");
        assert_eq!(format_timeout(Duration::from_nanos(5)), "5n");
        assert_eq!(format_timeout(Duration::from_millis(50)), "50000000n");
        assert_eq!(format_timeout(Duration::from_millis(100)), "100000u");
        assert_eq!(format_timeout(Duration::from_secs(5)), "5000000u");
        assert_eq!(format_timeout(Duration::from_secs(100)), "100000m");
        assert_eq!(format_timeout(Duration::from_secs(100_000)), "100000S");
        assert_eq!(format_timeout(Duration::MAX), "99999999H");
        // Rounded up, never down.
        assert_eq!(format_timeout(Duration::from_nanos(100_000_001)), "100001u");
    }

    proptest! {
        #[test]
        fn parses_back_to_at_least_the_timeout(nanos in any::<u64>()) {
            let t = Duration::from_nanos(nanos);
            let text = format_timeout(t);
            let back = parse_timeout(&text).expect("parses");
            prop_assert!(back >= t, "{t:?} -> {text} -> {back:?}");
            // Rounding costs less than one unit, and a coarser unit than
            // nanoseconds is taken only for timeouts of ~10^5 units or more.
            prop_assert!(back - t <= t / 50_000 + Duration::from_nanos(1), "{t:?} -> {text}");
        }
    }
}
