//! Token ranges on the command line: `start:end`, each bound a `u64` in
//! decimal or `0x` hex.
//!
//! Pure. Owns [`parse_range`] and [`show_range`]. Invariants: a range
//! parses only when both bounds are complete `u64` tokens (no sign, no
//! blanks inside, no overflow, exactly one `:`); the range means the
//! node's `(start, end]`, wrapping, and `start == end` is the whole ring.

/// One `(start, end]` token range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeArg {
    pub start: u64,
    pub end: u64,
}

/// Parses `start:end` (see the module documentation); the error says what
/// is wrong with which part.
pub fn parse_range(text: &str) -> Result<RangeArg, String> {
    let (start, end) = text.split_once(':').ok_or_else(|| {
        format!("{text:?} is not a range: expected START:END (decimal or 0x-hex u64 tokens)")
    })?;
    if end.contains(':') {
        return Err(format!(
            "{text:?} is not a range: more than one ':' (expected START:END)"
        ));
    }
    Ok(RangeArg {
        start: parse_token(start).map_err(|e| format!("start of {text:?}: {e}"))?,
        end: parse_token(end).map_err(|e| format!("end of {text:?}: {e}"))?,
    })
}

/// One bound: decimal, or hex after `0x`/`0X`.
fn parse_token(token: &str) -> Result<u64, String> {
    let t = token.trim();
    if t.is_empty() {
        return Err("empty token (expected a u64, decimal or 0x-hex)".into());
    }
    let (digits, radix) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (t, 10),
    };
    // from_str_radix accepts a leading '+': refuse every sign.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(format!(
            "{token:?} is not a u64 ({})",
            if radix == 16 {
                "hex digits expected after 0x"
            } else {
                "decimal digits or 0x-hex expected"
            }
        ));
    }
    u64::from_str_radix(digits, radix).map_err(|_| format!("{token:?} is larger than a u64"))
}

/// `0x<start>:0x<end>`, 16 hex digits each (as the tokens print).
pub fn show_range(start: u64, end: u64) -> String {
    format!("0x{start:016x}:0x{end:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_hex_bounds_parse() {
        assert_eq!(parse_range("0:0"), Ok(RangeArg { start: 0, end: 0 }));
        assert_eq!(parse_range("10:0x20"), Ok(RangeArg { start: 10, end: 32 }));
        assert_eq!(
            parse_range("0X8000000000000000:18446744073709551615"),
            Ok(RangeArg {
                start: 1 << 63,
                end: u64::MAX
            })
        );
        assert_eq!(
            parse_range("0xffffffffffffffff:0xFF"),
            Ok(RangeArg {
                start: u64::MAX,
                end: 255
            })
        );
        assert_eq!(parse_range(" 1 : 2 "), Ok(RangeArg { start: 1, end: 2 }));
    }

    #[test]
    fn bad_ranges_are_refused_with_the_reason() {
        for (bad, says) in [
            ("", "not a range"),
            ("12", "not a range"),
            ("1:2:3", "more than one"),
            (":5", "start"),
            ("5:", "end"),
            ("-1:5", "not a u64"),
            ("+1:5", "not a u64"),
            ("1:0x", "hex digits"),
            ("1:0xg1", "hex digits"),
            ("1.5:2", "not a u64"),
            ("18446744073709551616:0", "larger than a u64"),
            ("0:0x10000000000000000", "larger than a u64"),
            ("a:b", "not a u64"),
        ] {
            let e = parse_range(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn ranges_show_as_fixed_width_hex() {
        assert_eq!(
            show_range(1, u64::MAX),
            "0x0000000000000001:0xffffffffffffffff"
        );
        let shown = show_range(42, 7);
        assert_eq!(parse_range(&shown), Ok(RangeArg { start: 42, end: 7 }));
    }
}
