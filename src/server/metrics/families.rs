//! A builder of Prometheus metric families: counters, gauges, `_info`
//! gauges and histograms by name, in the order first seen, encoded in the
//! text exposition format by the prometheus crate's encoder.
//!
//! Owns naming discipline at one place: every family gets its help text
//! once, keeps one type, and holds at least one sample (the encoder refuses
//! empty families), so an encoding failure means a bug here, not bad input.

use crate::histogram::DurationSnapshot;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::Encoder;
use std::collections::HashMap;

/// Label (name, value) pairs of one sample.
pub(crate) type Labels<'a> = &'a [(&'a str, &'a str)];

/// Metric families under construction.
#[derive(Default)]
pub(crate) struct Families {
    list: Vec<MetricFamily>,
    by_name: HashMap<String, usize>,
}

impl Families {
    /// A counter sample (a total that only grows while the node runs).
    pub(crate) fn counter(&mut self, name: &str, help: &str, labels: Labels<'_>, value: f64) {
        debug_assert!(name.ends_with("_total"), "{name}");
        let mut c = Counter::default();
        c.set_value(value);
        let mut m = metric(labels);
        m.set_counter(c);
        self.push(name, help, MetricType::COUNTER, m);
    }

    /// A gauge sample (a level that goes up and down).
    pub(crate) fn gauge(&mut self, name: &str, help: &str, labels: Labels<'_>, value: f64) {
        let mut g = Gauge::default();
        g.set_value(value);
        let mut m = metric(labels);
        m.set_gauge(g);
        self.push(name, help, MetricType::GAUGE, m);
    }

    /// A state as an `_info` gauge of value 1 whose labels say the state.
    pub(crate) fn info(&mut self, name: &str, help: &str, labels: Labels<'_>) {
        debug_assert!(name.ends_with("_info"), "{name}");
        self.gauge(name, help, labels, 1.0);
    }

    /// A duration histogram in seconds.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: Labels<'_>,
        durations: &DurationSnapshot,
    ) {
        debug_assert!(name.ends_with("_seconds"), "{name}");
        let mut h = Histogram::default();
        h.set_sample_count(durations.count());
        h.set_sample_sum(durations.sum_us as f64 / 1e6);
        h.set_bucket(
            durations
                .cumulative_seconds()
                .map(|(upper, count)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(upper);
                    b.set_cumulative_count(count);
                    b
                })
                .collect(),
        );
        let mut m = metric(labels);
        m.set_histogram(h);
        self.push(name, help, MetricType::HISTOGRAM, m);
    }

    /// Families built elsewhere (the process collector's), taken whole.
    pub(crate) fn extend(&mut self, families: Vec<MetricFamily>) {
        for f in families {
            if !f.get_metric().is_empty() && !self.by_name.contains_key(f.name()) {
                self.by_name.insert(f.name().to_string(), self.list.len());
                self.list.push(f);
            }
        }
    }

    /// The names of the families, in order.
    #[cfg(test)]
    pub(crate) fn names(&self) -> Vec<&str> {
        self.list.iter().map(|f| f.name()).collect()
    }

    /// The text exposition format (`text/plain; version=0.0.4`).
    pub(crate) fn encode(&self) -> Result<String, String> {
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.list, &mut out)
            .map_err(|e| format!("encoding metrics: {e}"))?;
        String::from_utf8(out).map_err(|e| format!("encoding metrics: {e}"))
    }

    fn push(&mut self, name: &str, help: &str, kind: MetricType, m: Metric) {
        let i = match self.by_name.get(name) {
            Some(&i) => i,
            None => {
                let mut f = MetricFamily::default();
                f.set_name(name.to_string());
                f.set_help(help.to_string());
                f.set_field_type(kind);
                self.by_name.insert(name.to_string(), self.list.len());
                self.list.push(f);
                self.list.len() - 1
            }
        };
        let f = &mut self.list[i];
        debug_assert_eq!(f.get_field_type(), kind, "{name} changes type");
        f.mut_metric().push(m);
    }
}

fn metric(labels: Labels<'_>) -> Metric {
    Metric::from_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut l = LabelPair::default();
                l.set_name((*name).to_string());
                l.set_value((*value).to_string());
                l
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::DurationHistogram;

    #[test]
    fn families_group_samples_and_encode_as_text() {
        let mut f = Families::default();
        f.counter("pairdb_x_total", "X.", &[("shard", "0")], 3.0);
        f.gauge("pairdb_y_bytes", "Y.", &[], 7.0);
        f.counter("pairdb_x_total", "X.", &[("shard", "1")], 4.0);
        f.info("pairdb_z_info", "Z.", &[("state", "serving \"ok\"")]);
        let h = DurationHistogram::default();
        h.record_us(30);
        h.record_us(2_000_000);
        f.histogram(
            "pairdb_d_seconds",
            "D.",
            &[("method", "Read")],
            &h.snapshot(),
        );
        assert_eq!(
            f.names(),
            [
                "pairdb_x_total",
                "pairdb_y_bytes",
                "pairdb_z_info",
                "pairdb_d_seconds"
            ]
        );
        let text = f.encode().expect("encodes");
        for want in [
            "# TYPE pairdb_x_total counter",
            "pairdb_x_total{shard=\"0\"} 3",
            "pairdb_x_total{shard=\"1\"} 4",
            "# TYPE pairdb_y_bytes gauge",
            "pairdb_y_bytes 7",
            "pairdb_z_info{state=\"serving \\\"ok\\\"\"} 1",
            "# TYPE pairdb_d_seconds histogram",
            "pairdb_d_seconds_bucket{method=\"Read\",le=\"0.00005\"} 1",
            "pairdb_d_seconds_bucket{method=\"Read\",le=\"+Inf\"} 2",
            "pairdb_d_seconds_sum{method=\"Read\"} 2.00003",
            "pairdb_d_seconds_count{method=\"Read\"} 2",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
