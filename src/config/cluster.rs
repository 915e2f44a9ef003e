//! The `[cluster]` section of the configuration: gossip membership and
//! range-move streams.
//!
//! Owns the schema, defaults and validation of the settings the cluster
//! layer (`crate::cluster`) runs with: the seeds a node announces itself to,
//! the gRPC address other nodes should use (`advertise`), the UDP address
//! gossip binds (`gossip_listen`) and the SWIM timings. Pure: no I/O, no
//! name resolution (host names in `seeds` and `advertise` are resolved at
//! start-up by the cluster layer).
//!
//! Invariants after [`validate`]: every seed and a non-empty `advertise` are
//! `HOST:PORT` with a non-zero port; `advertise` is not a wildcard address
//! and is set whenever `node.listen` is one; the probe round trip is below
//! the probe period; every period and the retention are non-zero.

use serde::Deserialize;
use std::net::SocketAddr;

/// Bounds of `cluster.stream_batch_bytes`: at most half the default
/// message limit, so a batch (and one large version beside it) fits any
/// target's.
pub(super) const STREAM_BATCH_BYTES_MIN: usize = 4096;
pub(super) const STREAM_BATCH_BYTES_MAX: usize = 8 << 20;

/// Gossip membership and streams (`[cluster]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Gossip addresses (`HOST:PORT`, UDP) of nodes to join through. A node
    /// announces itself to every seed at start-up and again whenever it
    /// knows no live member. Its own address may be listed (it is skipped),
    /// so every node of a cluster can share one list.
    pub seeds: Vec<String>,
    /// The gRPC address (`HOST:PORT`) other nodes and coordinators should
    /// use for this node. Empty: `node.listen` (which must then not be a
    /// wildcard address).
    pub advertise: String,
    /// UDP address gossip binds (`IP:PORT`). Empty: the host and port number
    /// of `node.listen`.
    pub gossip_listen: String,
    /// How often this node probes one random member (SWIM protocol period).
    pub gossip_probe_period_ms: u64,
    /// How long a direct probe waits for its answer before other members are
    /// asked to probe indirectly; below `gossip_probe_period_ms`.
    pub gossip_probe_rtt_ms: u64,
    /// How long a member stays suspect (unanswered probe, not refuted)
    /// before it is declared down.
    pub gossip_suspect_to_down_ms: u64,
    /// How often membership updates are pushed to a few members besides
    /// the probes that carry them.
    pub gossip_interval_ms: u64,
    /// While this node knows no live member, how often it announces itself
    /// to the seeds again.
    pub gossip_rejoin_interval_ms: u64,
    /// How long a member that went down or left stays listed (seconds).
    pub members_retention_s: u64,
    /// Stream targets ("HOST:PORT") accepted besides live gossip members;
    /// a StartStreaming naming any other address is refused.
    pub stream_targets_allowed: Vec<String>,
    /// Copy rate of all streams of the node together, MB/s (10^6 bytes;
    /// 0: unlimited). Live forwards are not paced.
    pub stream_rate_mb_s: u64,
    /// Wire bytes per batch a stream sends (about).
    pub stream_batch_bytes: usize,
    /// Forwards one stream may hold per shard before it drops them and
    /// runs another copy pass.
    pub stream_backlog_bytes_max: usize,
    /// How long the target may take to acknowledge one batch (ms).
    pub stream_batch_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            seeds: Vec::new(),
            advertise: String::new(),
            gossip_listen: String::new(),
            gossip_probe_period_ms: 1000,
            gossip_probe_rtt_ms: 400,
            gossip_suspect_to_down_ms: 4000,
            gossip_interval_ms: 200,
            gossip_rejoin_interval_ms: 1000,
            members_retention_s: 3600,
            stream_targets_allowed: Vec::new(),
            stream_rate_mb_s: 64,
            stream_batch_bytes: 1 << 20,
            stream_backlog_bytes_max: 64 << 20,
            stream_batch_timeout_ms: 30_000,
        }
    }
}

/// Whether `addr` (a `node.listen` value) binds every interface, which no
/// other node can use to reach this one.
pub fn is_wildcard(addr: &SocketAddr) -> bool {
    addr.ip().is_unspecified()
}

/// `HOST:PORT` split into host and port: an IP address (IPv6 in brackets)
/// or a host name, and a port. `None` if it is not of that form.
pub fn split_host_port(text: &str) -> Option<(&str, u16)> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        let host_len = text.rfind(':')?;
        return Some((text.get(..host_len)?, addr.port()));
    }
    let (host, port) = text.rsplit_once(':')?;
    let name_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !name_ok {
        return None;
    }
    Some((host, port.parse().ok()?))
}

/// Checks the section against `listen` (`node.listen`, already checked to
/// be an IP socket address). Returns the key at fault and why.
pub(super) fn validate(c: &ClusterConfig, listen: &str) -> Result<(), (&'static str, String)> {
    for seed in &c.seeds {
        match split_host_port(seed) {
            Some((_, port)) if port != 0 => {}
            _ => {
                return Err((
                    "cluster.seeds",
                    format!("{seed:?} is not HOST:PORT with a non-zero port"),
                ))
            }
        }
    }
    let listen_wildcard = listen.parse::<SocketAddr>().is_ok_and(|a| is_wildcard(&a));
    if c.advertise.is_empty() {
        if listen_wildcard {
            return Err((
                "cluster.advertise",
                format!(
                    "node.listen {listen} is a wildcard address, which other nodes cannot \
                     reach: set cluster.advertise (or --advertise) to the HOST:PORT they \
                     should use for this node"
                ),
            ));
        }
    } else {
        match split_host_port(&c.advertise) {
            Some((_, 0)) | None => {
                return Err((
                    "cluster.advertise",
                    format!("{:?} is not HOST:PORT with a non-zero port", c.advertise),
                ))
            }
            Some(_) => {}
        }
        if c.advertise
            .parse::<SocketAddr>()
            .is_ok_and(|a| is_wildcard(&a))
        {
            return Err((
                "cluster.advertise",
                format!(
                    "{} is a wildcard address; other nodes need one they can reach",
                    c.advertise
                ),
            ));
        }
    }
    if !c.gossip_listen.is_empty() {
        match c.gossip_listen.parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => {}
            _ => {
                return Err((
                    "cluster.gossip_listen",
                    format!(
                        "{:?} is not IP:PORT with a non-zero port (empty: the address of \
                         node.listen)",
                        c.gossip_listen
                    ),
                ))
            }
        }
    }
    let positive = [
        ("cluster.gossip_probe_period_ms", c.gossip_probe_period_ms),
        ("cluster.gossip_probe_rtt_ms", c.gossip_probe_rtt_ms),
        (
            "cluster.gossip_suspect_to_down_ms",
            c.gossip_suspect_to_down_ms,
        ),
        ("cluster.gossip_interval_ms", c.gossip_interval_ms),
        (
            "cluster.gossip_rejoin_interval_ms",
            c.gossip_rejoin_interval_ms,
        ),
        ("cluster.members_retention_s", c.members_retention_s),
        ("cluster.stream_batch_timeout_ms", c.stream_batch_timeout_ms),
    ];
    for (key, value) in positive {
        if value == 0 {
            return Err((key, "must be at least 1".into()));
        }
    }
    for t in &c.stream_targets_allowed {
        match split_host_port(t) {
            Some((_, port)) if port != 0 => {}
            _ => {
                return Err((
                    "cluster.stream_targets_allowed",
                    format!("{t:?} is not HOST:PORT with a non-zero port"),
                ))
            }
        }
    }
    if !(STREAM_BATCH_BYTES_MIN..=STREAM_BATCH_BYTES_MAX).contains(&c.stream_batch_bytes) {
        return Err((
            "cluster.stream_batch_bytes",
            format!(
                "{} is outside {STREAM_BATCH_BYTES_MIN}..={STREAM_BATCH_BYTES_MAX} (a batch must \
                 fit the target's message limit)",
                c.stream_batch_bytes
            ),
        ));
    }
    if c.stream_backlog_bytes_max < c.stream_batch_bytes {
        return Err((
            "cluster.stream_backlog_bytes_max",
            format!(
                "{} is below cluster.stream_batch_bytes ({})",
                c.stream_backlog_bytes_max, c.stream_batch_bytes
            ),
        ));
    }
    if c.gossip_probe_rtt_ms >= c.gossip_probe_period_ms {
        return Err((
            "cluster.gossip_probe_rtt_ms",
            format!(
                "{} must be below cluster.gossip_probe_period_ms ({}): the indirect probes \
                 run in the rest of the period",
                c.gossip_probe_rtt_ms, c.gossip_probe_period_ms
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(c: &ClusterConfig, listen: &str) -> Result<(), (&'static str, String)> {
        validate(c, listen)
    }

    #[test]
    fn defaults_are_valid_and_detect_a_dead_node_within_ten_seconds() {
        let c = ClusterConfig::default();
        assert!(check(&c, "127.0.0.1:50051").is_ok());
        // Worst case in a small cluster: a probe period until someone
        // probes the dead node, a period until the probe fails, then the
        // suspicion timeout and a few gossip rounds to spread "down".
        let worst =
            2 * c.gossip_probe_period_ms + c.gossip_suspect_to_down_ms + 3 * c.gossip_interval_ms;
        assert!(worst < 10_000, "{worst} ms");
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("10.0.0.1:7000"), Some(("10.0.0.1", 7000)));
        assert_eq!(split_host_port("[::1]:7000"), Some(("[::1]", 7000)));
        assert_eq!(
            split_host_port("node-a.example:7000"),
            Some(("node-a.example", 7000))
        );
        for bad in [
            "",
            "node-a",
            ":7000",
            "node a:1",
            "::1:7000x",
            "host:port",
            "h:70000",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn wildcard_listen_needs_advertise_and_names_both_keys() {
        let c = ClusterConfig::default();
        for listen in ["0.0.0.0:50051", "[::]:50051"] {
            let (key, reason) = check(&c, listen).unwrap_err();
            assert_eq!(key, "cluster.advertise");
            assert!(
                reason.contains("node.listen") && reason.contains(listen),
                "{reason}"
            );
        }
        let c = ClusterConfig {
            advertise: "node-a:50051".into(),
            ..ClusterConfig::default()
        };
        assert!(check(&c, "0.0.0.0:50051").is_ok());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(ClusterConfig, &str)> = vec![
            (
                ClusterConfig {
                    seeds: vec!["127.0.0.1:1".into(), "nohost".into()],
                    ..ClusterConfig::default()
                },
                "cluster.seeds",
            ),
            (
                ClusterConfig {
                    seeds: vec!["127.0.0.1:0".into()],
                    ..ClusterConfig::default()
                },
                "cluster.seeds",
            ),
            (
                ClusterConfig {
                    advertise: "0.0.0.0:50051".into(),
                    ..ClusterConfig::default()
                },
                "cluster.advertise",
            ),
            (
                ClusterConfig {
                    advertise: "node-a".into(),
                    ..ClusterConfig::default()
                },
                "cluster.advertise",
            ),
            (
                ClusterConfig {
                    gossip_listen: "node-a:7000".into(),
                    ..ClusterConfig::default()
                },
                "cluster.gossip_listen",
            ),
            (
                ClusterConfig {
                    gossip_listen: "127.0.0.1:0".into(),
                    ..ClusterConfig::default()
                },
                "cluster.gossip_listen",
            ),
            (
                ClusterConfig {
                    gossip_probe_rtt_ms: 1000,
                    ..ClusterConfig::default()
                },
                "cluster.gossip_probe_rtt_ms",
            ),
            (
                ClusterConfig {
                    gossip_suspect_to_down_ms: 0,
                    ..ClusterConfig::default()
                },
                "cluster.gossip_suspect_to_down_ms",
            ),
            (
                ClusterConfig {
                    members_retention_s: 0,
                    ..ClusterConfig::default()
                },
                "cluster.members_retention_s",
            ),
        ];
        for (c, want) in cases {
            let (key, reason) = check(&c, "127.0.0.1:50051").unwrap_err();
            assert_eq!(key, want, "{reason}");
        }
    }
}
