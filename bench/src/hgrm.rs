//! The HdrHistogram percentile distribution text (`.hgrm`): writing it from
//! a latency histogram and parsing its percentile table back.
//!
//! The written text is the classic layout of HdrHistogram's
//! `outputPercentileDistribution`: a `Value Percentile TotalCount
//! 1/(1-Percentile)` header, one row per quantile step of
//! `iter_quantiles(TICKS_PER_HALF_DISTANCE)` (the last row, percentile 1.0,
//! has no `1/(1-Percentile)` column), and the `#[Mean ...]`, `#[Max ...]`,
//! `#[Buckets ...]` footer. Histograms here record microseconds; the text
//! is in milliseconds (values divided by `US_PER_MS`), with as many decimals
//! as the histogram has significant digits.
//!
//! Invariants of a parsed distribution (`parse` rejects anything else):
//! at least one row; every latency finite and >= 0; quantiles within
//! [0, 1]; latency, quantile and total count never decrease from one row to
//! the next.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Quantile steps per half distance to 100%, HdrHistogram's customary 5.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Histogram units (microseconds) per unit of the text (milliseconds).
pub const US_PER_MS: f64 = 1000.0;

/// One row of the percentile table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PercentileRow {
    /// The highest latency equivalent to the row's value, milliseconds.
    pub latency_ms: f64,
    /// The quantile iterated to, in [0, 1].
    pub quantile: f64,
    /// Operations at or below `latency_ms`.
    pub total_count: u64,
}

/// The percentile table of a microsecond histogram in milliseconds: one row
/// per step of `iter_quantiles(TICKS_PER_HALF_DISTANCE)`, the last at
/// quantile 1.0; empty for an empty histogram.
pub fn rows(hist: &Histogram<u64>) -> Vec<PercentileRow> {
    if hist.is_empty() {
        return Vec::new();
    }
    let mut total_count = 0u64;
    hist.iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|v| {
            total_count += v.count_since_last_iteration();
            PercentileRow {
                latency_ms: v.value_iterated_to() as f64 / US_PER_MS,
                quantile: v.quantile_iterated_to(),
                total_count,
            }
        })
        .collect()
}

/// The percentile distribution of a microsecond histogram as `.hgrm` text
/// in milliseconds. An empty histogram gives the header and footer only.
pub fn write_distribution(hist: &Histogram<u64>) -> String {
    let decimals = usize::from(hist.sigfig());
    let mut out = String::new();
    // Writing into a String cannot fail; the results are ignored.
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for r in rows(hist) {
        let (latency_ms, q, total) = (r.latency_ms, r.quantile, r.total_count);
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{latency_ms:>12.decimals$} {q:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{latency_ms:>12.decimals$} {q:>2.12} {total:>10}");
        }
    }
    let (mean_ms, stdev_ms, max_ms) = if hist.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            hist.mean() / US_PER_MS,
            hist.stdev() / US_PER_MS,
            hist.max() as f64 / US_PER_MS,
        )
    };
    // HdrHistogram's sub-bucket count: the power of two covering
    // 2 * 10^sigfig values at unit resolution.
    let sub_buckets = (2 * 10u64.pow(u32::from(hist.sigfig()))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Mean    = {mean_ms:>12.decimals$}, StdDeviation   = {stdev_ms:>12.decimals$}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max_ms:>12.decimals$}, Total count    = {:>12}]",
        hist.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {sub_buckets:>12}]",
        hist.buckets()
    );
    out
}

/// Why a `.hgrm` text was rejected; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

fn err(line: usize, reason: impl Into<String>) -> ParseError {
    ParseError {
        line,
        reason: reason.into(),
    }
}

/// One table row: `value percentile total_count [1/(1-percentile)]`.
fn parse_row(line_no: usize, line: &str) -> Result<PercentileRow, ParseError> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if !(3..=4).contains(&fields.len()) {
        return Err(err(
            line_no,
            format!(
                "expected 3 or 4 columns (Value Percentile TotalCount [1/(1-Percentile)]), found {}",
                fields.len()
            ),
        ));
    }
    let number = |i: usize, name: &str| -> Result<f64, ParseError> {
        fields
            .get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| err(line_no, format!("{name} is not a finite number")))
    };
    let latency_ms = number(0, "Value")?;
    let quantile = number(1, "Percentile")?;
    let total_count = fields
        .get(2)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| err(line_no, "TotalCount is not a whole number"))?;
    if fields.len() == 4 {
        number(3, "1/(1-Percentile)")?;
    }
    if latency_ms < 0.0 {
        return Err(err(line_no, "Value is negative"));
    }
    if !(0.0..=1.0).contains(&quantile) {
        return Err(err(line_no, "Percentile is outside [0, 1]"));
    }
    Ok(PercentileRow {
        latency_ms,
        quantile,
        total_count,
    })
}

/// Parses the percentile table of a `.hgrm` text (header, blank lines and
/// `#` footer lines are skipped).
pub fn parse(text: &str) -> Result<Vec<PercentileRow>, ParseError> {
    let mut rows: Vec<PercentileRow> = Vec::new();
    let mut header_seen = false;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("Value") {
            if header_seen || !rows.is_empty() {
                return Err(err(line_no, "a second header inside the table"));
            }
            header_seen = true;
            continue;
        }
        let row = parse_row(line_no, line)?;
        if let Some(prev) = rows.last() {
            if row.latency_ms < prev.latency_ms
                || row.quantile < prev.quantile
                || row.total_count < prev.total_count
            {
                return Err(err(
                    line_no,
                    "Value, Percentile and TotalCount must not decrease down the table",
                ));
            }
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(err(
            text.lines().count().max(1),
            "no percentile rows (expected HdrHistogram percentile distribution text)",
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in 1..=10_000u64 {
            h.record(100 + us * us / 1000).unwrap();
        }
        h.record(55_000).unwrap();
        h
    }

    #[test]
    fn round_trip() {
        let h = sample();
        let text = write_distribution(&h);
        let rows = parse(&text).unwrap();
        let expected: Vec<_> = h.iter_quantiles(TICKS_PER_HALF_DISTANCE).collect();
        assert_eq!(rows.len(), expected.len());
        for (row, v) in rows.iter().zip(&expected) {
            let want_ms = v.value_iterated_to() as f64 / US_PER_MS;
            assert!((row.latency_ms - want_ms).abs() < 0.0005, "{row:?}");
            assert!((row.quantile - v.quantile_iterated_to()).abs() < 1e-12);
        }
        let last = rows.last().unwrap();
        assert_eq!(last.quantile, 1.0);
        assert_eq!(last.total_count, h.len());
        assert!((last.latency_ms - h.max() as f64 / US_PER_MS).abs() < 0.0005);
        let median = rows.iter().find(|r| r.quantile >= 0.5).unwrap();
        assert!((median.latency_ms - h.value_at_quantile(0.5) as f64 / US_PER_MS).abs() < 0.0005);
    }

    #[test]
    fn layout_matches_hdrhistogram() {
        let text = write_distribution(&sample());
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines.next().unwrap(), "");
        let first = lines.next().unwrap();
        assert_eq!(first.split_whitespace().count(), 4, "{first}");
        assert!(first.contains(" 0.000000000000 "), "{first}");
        assert!(text.contains("#[Mean    = "));
        assert!(text.contains(", Total count    =        10001]"));
        assert!(text.contains(", SubBuckets     =         2048]"));
        let last_row = text.lines().rfind(|l| !l.starts_with('#')).unwrap();
        assert_eq!(last_row.split_whitespace().count(), 3, "{last_row}");
        // The maximum, 100 100 us, is reported as the highest value
        // equivalent to it (resolution 64 us from 65 536 to 131 071 us).
        assert!(
            last_row.starts_with("     100.159 1.000000000000"),
            "{last_row}"
        );
    }

    #[test]
    fn empty_histogram_has_no_rows() {
        let h = Histogram::<u64>::new_with_bounds(1, 1000, 3).unwrap();
        let text = write_distribution(&h);
        assert!(text.contains("#[Max     =        0.000"));
        assert!(parse(&text)
            .unwrap_err()
            .reason
            .contains("no percentile rows"));
    }

    #[test]
    fn parse_errors_name_the_line() {
        let bad_number = "Value Percentile TotalCount 1/(1-Percentile)\n\n 1.0 0.5 x 2.0\n";
        assert_eq!(
            parse(bad_number).unwrap_err(),
            err(3, "TotalCount is not a whole number")
        );
        let columns = " 1.0 0.5\n";
        assert_eq!(parse(columns).unwrap_err().line, 1);
        let quantile = " 1.0 0.1 1 1.1\n 2.0 1.5 2\n";
        let e = parse(quantile).unwrap_err();
        assert_eq!(
            (e.line, e.reason.as_str()),
            (2, "Percentile is outside [0, 1]")
        );
        let decreasing = " 2.0 0.1 1 1.1\n 1.0 0.5 2 2.0\n";
        assert_eq!(parse(decreasing).unwrap_err().line, 2);
        let not_finite = " NaN 0.1 1 1.1\n";
        assert!(parse(not_finite).unwrap_err().reason.contains("Value"));
        assert_eq!(parse("").unwrap_err().line, 1);
        assert!(parse("Value\nValue\n").is_err());
    }
}
