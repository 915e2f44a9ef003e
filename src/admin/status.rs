//! `status`: the node's HealthCheck figures as a summary and a per-shard
//! table.
//!
//! Pure. Owns [`status_report`]. It reads the documented HealthCheck
//! metric names (`node_id`, `node.state`, `cluster.member.<id>`,
//! `stream.<source>.<target>.<figure>`, `shard.<i>.<figure>`), so it works
//! against any node that answers HealthCheck. Invariants: a figure the
//! node does not report shows as `-` (text) or is left out (JSON), never
//! as 0; the JSON form also carries the whole metric map unchanged.

use super::output::{bytes, table, Report};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// The per-shard figures of the table, in column order: (header, metric
/// suffix, shown as bytes).
const SHARD_COLUMNS: [(&str, &str, bool); 7] = [
    ("keys", "keys", false),
    ("memtable", "memtable_bytes", true),
    ("immutable", "immutable_memtables", false),
    ("sstables", "sstables", false),
    ("sst_bytes", "sstable_bytes", true),
    ("cache", "cache_bytes", true),
    ("hit_ratio", "cache_hit_ratio", false),
];

/// The status report of `node` from its HealthCheck answer.
pub fn status_report(
    node: &str,
    healthy: bool,
    status: &str,
    metrics: &HashMap<String, String>,
) -> Report {
    let get = |k: &str| metrics.get(k).map(String::as_str);
    let shown = |k: &str| get(k).unwrap_or("-").to_string();
    let shards: usize = get("shards").and_then(|s| s.parse().ok()).unwrap_or(0);
    let members: BTreeMap<&str, &str> = metrics
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("cluster.member.")?, v.as_str())))
        .collect();
    let mut streams: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (k, v) in metrics {
        if let Some(rest) = k.strip_prefix("stream.") {
            if let Some((id, figure)) = rest.rsplit_once('.') {
                streams
                    .entry(id.to_string())
                    .or_default()
                    .insert(figure.to_string(), number_or_text(v));
            }
        }
    }

    let mut text = format!(
        "node {node} (id {}): {status}, {}, state {}, uptime {} s\n",
        shown("node_id"),
        if healthy { "healthy" } else { "NOT healthy" },
        shown("node.state"),
        shown("uptime_s"),
    );
    text.push_str(&format!(
        "keys {}, disk full {}, data volume {} free of {}\n",
        shown("keys"),
        shown("disk_full"),
        get("data_volume_free_bytes")
            .and_then(|v| v.parse().ok())
            .map_or("-".into(), bytes),
        get("data_volume_bytes")
            .and_then(|v| v.parse().ok())
            .map_or("-".into(), bytes),
    ));
    text.push_str(&format!(
        "members alive: {}\n",
        shown("cluster.members_alive")
    ));
    for (id, v) in &members {
        text.push_str(&format!("  {id}  {v}\n"));
    }
    text.push_str(&format!("streams: {}\n", shown("streams")));
    for (id, figures) in &streams {
        let f = |name: &str| figures.get(name).map_or("-".into(), ToString::to_string);
        text.push_str(&format!(
            "  {id}  {}  keys copied {}, streamed {}\n",
            f("state").trim_matches('"'),
            f("keys_copied"),
            f("keys_streamed")
        ));
    }

    let mut headers = vec!["shard"];
    headers.extend(SHARD_COLUMNS.iter().map(|c| c.0));
    headers.extend(["levels (tables L0/L1/..)", "write_state"]);
    let mut rows = Vec::new();
    let mut shard_json = Vec::new();
    for i in 0..shards {
        let p = format!("shard.{i}.");
        let mut row = vec![i.to_string()];
        let mut obj = Map::new();
        obj.insert("shard".into(), i.into());
        for (_, suffix, as_bytes) in SHARD_COLUMNS {
            let v = get(&format!("{p}{suffix}"));
            row.push(match (v, as_bytes) {
                (Some(v), true) => v.parse().map_or(v.to_string(), bytes),
                (Some(v), false) => v.to_string(),
                (None, _) => "-".into(),
            });
            if let Some(v) = v {
                obj.insert(suffix.into(), number_or_text(v));
            }
        }
        let levels: Vec<u64> = (0..)
            .map_while(|l| get(&format!("{p}level.{l}.tables")).and_then(|v| v.parse().ok()))
            .collect();
        row.push(if levels.is_empty() {
            "-".into()
        } else {
            levels
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("/")
        });
        obj.insert("level_tables".into(), json!(levels));
        let state = get(&format!("{p}write_state"));
        row.push(state.unwrap_or("-").to_string());
        if let Some(s) = state {
            obj.insert("write_state".into(), s.into());
        }
        rows.push(row);
        shard_json.push(Value::Object(obj));
    }
    text.push_str(&table(&headers, &rows));

    let metrics_json: BTreeMap<&String, &String> = metrics.iter().collect();
    let json = json!({
        "ok": true,
        "node": node,
        "node_id": get("node_id"),
        "healthy": healthy,
        "status": status,
        "state": get("node.state"),
        "members": members,
        "streams": streams,
        "shards": shard_json,
        "metrics": metrics_json,
    });
    Report::ok(text, json)
}

/// A metric value as a JSON number when it reads as one.
fn number_or_text(v: &str) -> Value {
    if let Ok(n) = v.parse::<u64>() {
        return n.into();
    }
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() => json!(f),
        _ => v.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_levels_members_and_streams_are_read_from_the_map() {
        let mut m = HashMap::new();
        for (k, v) in [
            ("node_id", "n1"),
            ("shards", "2"),
            ("node.state", "serving"),
            ("cluster.member.n1", "alive 127.0.0.1:1"),
            ("streams", "1"),
            ("stream.n1.n2.state", "copying"),
            ("stream.n1.n2.keys_copied", "5"),
            ("shard.0.keys", "7"),
            ("shard.0.memtable_bytes", "2048"),
            ("shard.0.level.0.tables", "2"),
            ("shard.0.level.1.tables", "1"),
            ("shard.0.cache_hit_ratio", "0.5000"),
            ("shard.0.write_state", "writing"),
        ] {
            m.insert(k.to_string(), v.to_string());
        }
        let r = status_report("h:1", true, "SERVING", &m);
        assert_eq!(r.failure, None);
        assert!(
            r.text.contains("node h:1 (id n1): SERVING, healthy"),
            "{}",
            r.text
        );
        assert!(r.text.contains("n1.n2  copying"), "{}", r.text);
        let row0 = r
            .text
            .lines()
            .find(|l| l.trim_start().starts_with("0 "))
            .expect("row 0");
        assert!(row0.contains("2/1") && row0.contains("2.0 KiB"), "{row0}");
        let row1 = r
            .text
            .lines()
            .find(|l| l.trim_start().starts_with("1 "))
            .expect("row 1");
        assert!(row1.contains('-'), "missing figures show as -: {row1}");
        let j = &r.json;
        assert_eq!(j["shards"][0]["keys"], 7);
        assert_eq!(j["shards"][0]["level_tables"], json!([2, 1]));
        assert_eq!(j["shards"][0]["cache_hit_ratio"], 0.5);
        assert!(j["shards"][1].get("keys").is_none());
        assert_eq!(j["streams"]["n1.n2"]["keys_copied"], 5);
        assert_eq!(j["members"]["n1"], "alive 127.0.0.1:1");
        assert_eq!(j["metrics"]["shards"], "2");
    }
}
