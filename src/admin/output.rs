//! What a command prints: a text form for people and a JSON form for
//! scripts (`--json`), and the text tables.
//!
//! Pure. Owns [`Report`] and [`table`]. Invariants: the JSON form is one
//! JSON document on stdout, whatever the outcome once the node answered
//! (`"ok": false` with `"error"` when it answered an error); tables pad
//! every column to its widest cell, numbers right-aligned.

use serde_json::Value;

/// A command's outcome once the node answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Printed without `--json`.
    pub text: String,
    /// Printed with `--json`.
    pub json: Value,
    /// The node answered an error (`success = false`, or a state the
    /// command treats as failure): the cause, printed on stderr; exit 1.
    pub failure: Option<String>,
}

impl Report {
    pub fn ok(text: String, json: Value) -> Report {
        Report {
            text,
            json,
            failure: None,
        }
    }

    /// A failure the node answered: `json` gets `"ok": false` and
    /// `"error"`.
    pub fn failed(text: String, mut json: Value, failure: String) -> Report {
        if let Value::Object(obj) = &mut json {
            obj.insert("ok".into(), false.into());
            obj.insert("error".into(), failure.clone().into());
        }
        Report {
            text,
            json,
            failure: Some(failure),
        }
    }
}

/// A text table: a header line, then one line per row; cells that parse
/// as numbers are right-aligned, others left-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            } else {
                widths.push(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                out.push_str("  ");
            }
            let numeric = !cell.is_empty()
                && cell
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '/');
            if numeric {
                out.push_str(&format!("{cell:>w$}"));
            } else {
                out.push_str(&format!("{cell:<w$}"));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(&mut headers.iter().copied());
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// `n` bytes in a short human form (B, KiB, MiB, GiB).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS.get(unit).copied().unwrap_or("TiB"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["shard", "state", "keys"],
            &[
                vec!["0".into(), "writing".into(), "12".into()],
                vec!["10".into(), "disk_full".into(), "3".into()],
            ],
        );
        assert_eq!(
            t,
            "shard  state      keys\n    0  writing      12\n   10  disk_full     3\n"
        );
    }

    #[test]
    fn failed_reports_carry_the_error_in_json() {
        let r = Report::failed("x".into(), json!({"node": "n:1"}), "boom".into());
        assert_eq!(r.json["ok"], false);
        assert_eq!(r.json["error"], "boom");
        assert_eq!(r.failure.as_deref(), Some("boom"));
        assert_eq!(Report::ok("y".into(), json!({})).failure, None);
    }

    #[test]
    fn byte_counts_read_short() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 20), "5.0 MiB");
        assert_eq!(bytes(u64::MAX), "16777216.0 TiB");
    }
}
