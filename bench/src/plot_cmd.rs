//! `pairdb-bench plot`: draws several `.hgrm` percentile distributions
//! (e.g. our node's and the reference server's run of one workload) on one
//! SVG chart, one line per `LABEL=PATH` input, in the order given.
//!
//! Every input is read and parsed before anything is written; a malformed
//! file is an error naming the file and line, and no chart is written.

use std::fs;
use std::path::Path;

use crate::hgrm;
use crate::plot::{self, Series};

/// Splits one `LABEL=PATH` input at its first `=`.
pub fn parse_input(spec: &str) -> Result<(&str, &str), String> {
    match spec.split_once('=') {
        Some((label, path)) if !label.is_empty() && !path.is_empty() => Ok((label, path)),
        _ => Err(format!("input {spec:?} is not LABEL=PATH")),
    }
}

/// Reads one `.hgrm` file as a series labelled `label`.
fn load(label: &str, path: &str) -> Result<Series, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let rows = hgrm::parse(&text).map_err(|e| format!("{path}: {e}"))?;
    Ok(Series {
        label: label.to_string(),
        rows,
    })
}

/// Draws the `LABEL=PATH` inputs into the SVG file `out`.
pub fn run(out: &Path, title: &str, inputs: &[String]) -> Result<(), String> {
    if inputs.is_empty() {
        return Err("no LABEL=PATH input to plot".into());
    }
    let mut series = Vec::with_capacity(inputs.len());
    for spec in inputs {
        let (label, path) = parse_input(spec)?;
        series.push(load(label, path)?);
    }
    let svg = plot::render_svg(title, &series)?;
    fs::write(out, svg).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_and_errors() {
        assert_eq!(parse_input("ours=a/b=c.hgrm"), Ok(("ours", "a/b=c.hgrm")));
        assert!(parse_input("no-equals").is_err());
        assert!(parse_input("=path").is_err());
        let dir = std::env::temp_dir().join(format!("pairdb-plot-cmd-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.hgrm");
        fs::write(&good, " 0.100 0.0 1 1.00\n 0.200 1.0 2\n").unwrap();
        let bad = dir.join("bad.hgrm");
        fs::write(&bad, " 0.100 0.0 1 1.00\n oops\n").unwrap();
        let out = dir.join("chart.svg");
        let err = run(
            &out,
            "t",
            &[
                format!("a={}", good.display()),
                format!("b={}", bad.display()),
            ],
        )
        .unwrap_err();
        assert!(err.contains("bad.hgrm: line 2:"), "{err}");
        assert!(!out.exists());
        run(&out, "t", &[format!("ours={}", good.display())]).unwrap();
        assert!(fs::read_to_string(&out).unwrap().contains("ours"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
