//! Vector clocks on the command line: `node:counter,node:counter`.
//!
//! Pure. Owns [`parse_clock`] and [`show_clock`]; what `show_clock` prints
//! `parse_clock` reads back (a clock `get` prints, one counter increased,
//! is what `put --clock` takes to replace that version). Invariants: a node id is non-empty (it may itself hold
//! `:`, the counter is after the last one); a counter is a non-negative
//! `i64`; a node appears once; an empty text is refused (a blind write
//! omits `--clock`).

use crate::proto;

/// Parses `node:counter[,node:counter...]`.
pub fn parse_clock(text: &str) -> Result<proto::VectorClock, String> {
    let mut entries: Vec<proto::VectorClockEntry> = Vec::new();
    if text.trim().is_empty() {
        return Err("empty clock: omit --clock for a blind write".into());
    }
    for part in text.split(',') {
        let part = part.trim();
        let (node, counter) = part
            .rsplit_once(':')
            .ok_or_else(|| format!("clock entry {part:?}: expected NODE:COUNTER"))?;
        if node.is_empty() {
            return Err(format!("clock entry {part:?}: empty node id"));
        }
        let counter: i64 = counter.parse().ok().filter(|c| *c >= 0).ok_or_else(|| {
            format!("clock entry {part:?}: the counter must be a non-negative integer")
        })?;
        if entries.iter().any(|e| e.coordinator_node_id == node) {
            return Err(format!("clock: node {node:?} appears twice"));
        }
        entries.push(proto::VectorClockEntry {
            coordinator_node_id: node.to_string(),
            logical_timestamp: counter,
        });
    }
    Ok(proto::VectorClock { entries })
}

/// `node:counter,...` in the order given; `-` for an empty clock.
pub fn show_clock(clock: Option<&proto::VectorClock>) -> String {
    match clock {
        Some(c) if !c.entries.is_empty() => c
            .entries
            .iter()
            .map(|e| format!("{}:{}", e.coordinator_node_id, e.logical_timestamp))
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".into(),
    }
}

/// The clock as JSON: an object of node id to counter.
pub fn clock_json(clock: Option<&proto::VectorClock>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for e in clock.map(|c| c.entries.as_slice()).unwrap_or_default() {
        map.insert(
            e.coordinator_node_id.clone(),
            serde_json::Value::from(e.logical_timestamp),
        );
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_back_what_they_print() {
        let c = parse_clock("node-a:3, host:50051:7").expect("valid");
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[1].coordinator_node_id, "host:50051");
        assert_eq!(c.entries[1].logical_timestamp, 7);
        let shown = show_clock(Some(&c));
        assert_eq!(shown, "node-a:3,host:50051:7");
        assert_eq!(parse_clock(&shown), Ok(c.clone()));
        assert_eq!(clock_json(Some(&c))["node-a"], 3);
        assert_eq!(show_clock(None), "-");
    }

    #[test]
    fn bad_clocks_are_refused() {
        for (bad, says) in [
            ("", "empty clock"),
            ("a", "NODE:COUNTER"),
            (":3", "empty node"),
            ("a:-1", "non-negative"),
            ("a:x", "non-negative"),
            ("a:1,a:2", "twice"),
            ("a:1,", "NODE:COUNTER"),
        ] {
            let e = parse_clock(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
