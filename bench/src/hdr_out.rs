//! `--hdr-out DIR`: the measured window's full latency distribution of each
//! operation type, written as `DIR/<op>.hgrm` (HdrHistogram percentile
//! text, see `hgrm`) and `DIR/<op>.svg` (its percentile plot, see `plot`).
//!
//! `prepare` runs before any load: it creates DIR and proves a file can be
//! written there, so a bad path fails at start-up rather than after the
//! run. `write_op` then writes both files of one operation; an operation
//! with no answered request writes nothing.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use crate::hgrm;
use crate::plot::{self, Series};

/// Name of the short-lived file `prepare` writes and removes.
const PROBE_FILE: &str = ".pairdb-bench-write-probe";

/// Creates `dir` if missing and checks that files can be written in it.
pub fn prepare(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    fs::create_dir_all(dir).map_err(|e| format!("--hdr-out {shown}: cannot create: {e}"))?;
    let probe = dir.join(PROBE_FILE);
    fs::File::create(&probe)
        .and_then(|mut f| f.write_all(b"probe\n"))
        .map_err(|e| format!("--hdr-out {shown}: cannot write a file there: {e}"))?;
    fs::remove_file(&probe)
        .map_err(|e| format!("--hdr-out {shown}: cannot remove {}: {e}", probe.display()))?;
    Ok(())
}

/// Writes `dir/<op>.hgrm` and `dir/<op>.svg` from a microsecond histogram
/// (titled `title`); returns the paths written, none for an empty histogram.
pub fn write_op(
    dir: &Path,
    op: &str,
    title: &str,
    hist: &Histogram<u64>,
) -> Result<Vec<PathBuf>, String> {
    if hist.is_empty() {
        return Ok(Vec::new());
    }
    let hgrm_path = dir.join(format!("{op}.hgrm"));
    fs::write(&hgrm_path, hgrm::write_distribution(hist))
        .map_err(|e| format!("cannot write {}: {e}", hgrm_path.display()))?;
    let series = Series {
        label: op.to_string(),
        rows: hgrm::rows(hist),
    };
    let svg = plot::render_svg(title, &[series])
        .map_err(|e| format!("cannot draw {op} latency plot: {e}"))?;
    let svg_path = dir.join(format!("{op}.svg"));
    fs::write(&svg_path, svg).map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    Ok(vec![hgrm_path, svg_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_then_write() {
        let base = std::env::temp_dir().join(format!("pairdb-hdr-out-{}", std::process::id()));
        let dir = base.join("nested/run");
        prepare(&dir).unwrap();
        assert!(!dir.join(PROBE_FILE).exists());
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        assert!(write_op(&dir, "read", "t", &h).unwrap().is_empty());
        for us in [120, 150, 180, 900, 4_000] {
            h.record(us).unwrap();
        }
        let written = write_op(&dir, "read", "read latency", &h).unwrap();
        assert_eq!(written, [dir.join("read.hgrm"), dir.join("read.svg")]);
        let text = fs::read_to_string(dir.join("read.hgrm")).unwrap();
        assert_eq!(hgrm::parse(&text).unwrap().last().unwrap().total_count, 5);
        assert!(fs::read_to_string(dir.join("read.svg"))
            .unwrap()
            .starts_with("<svg"));
        // A path below a regular file cannot be created.
        let err = prepare(&dir.join("read.hgrm").join("x")).unwrap_err();
        assert!(err.starts_with("--hdr-out "), "{err}");
        fs::remove_dir_all(&base).unwrap();
    }
}
