//! Node configuration: the schema of shards.toml, its defaults and checks.
//!
//! Owns parsing (unknown keys are errors, every key has a default) and
//! validation (each error names the key and the reason). The file shipped at
//! the repository root, shards.toml, is embedded in the binary as the default
//! configuration and must parse to exactly [`Config::default`] (a unit test
//! keeps the two in step). Also owns making path settings absolute
//! ([`Config::resolve_paths`]) against a working directory the caller reads.
//! Pure: no I/O beyond reading the named file.

mod cluster;
mod metrics;
mod tuning;

pub use cluster::{is_wildcard, split_host_port, ClusterConfig};
pub use metrics::{MetricsConfig, METRICS_PORT_OFFSET};
pub use tuning::{CacheConfig, CompactionConfig, FlowControlConfig, LEVELS};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The shipped shards.toml, used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../shards.toml");

/// Largest count the on-disk encodings carry for clock entries and for
/// versions per key (16-bit fields).
const FORMAT_COUNT_MAX: usize = u16::MAX as usize;

/// Most counters a shard's hot-keys sketch may have.
const HOT_KEYS_TRACKED_MAX: usize = 1024;

/// A configuration problem, naming where it is and why.
#[derive(Debug)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        reason: String,
    },
    Parse {
        source: String,
        reason: String,
    },
    Invalid {
        source: String,
        key: &'static str,
        reason: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Read { path, reason } => {
                write!(f, "cannot read config file {}: {reason}", path.display())
            }
            ConfigError::Parse { source, reason } => write!(f, "config {source}: {reason}"),
            ConfigError::Invalid {
                source,
                key,
                reason,
            } => write!(f, "config {source}: key `{key}`: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub limits: LimitsConfig,
    pub storage: StorageConfig,
    pub runtime: RuntimeConfig,
    pub cluster: ClusterConfig,
    pub metrics: MetricsConfig,
    pub logging: LoggingConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub node_id: String,
    pub listen: String,
    pub data_dir: PathBuf,
    /// 0 means one shard per CPU the process may run on.
    pub shards: usize,
    /// Shard-aware ports: shard i also listens on `shard_port_base + i`
    /// (same host as `listen`), so a client that knows the key's shard
    /// skips the cross-core hop. 0 = off.
    pub shard_port_base: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub message_bytes_max: usize,
    pub tenant_id_bytes_max: usize,
    pub key_bytes_max: usize,
    pub value_bytes_max: usize,
    pub clock_entries_max: usize,
    /// Distinct coordinator ids over every version of one key (client puts).
    pub key_clock_ids_max: usize,
    /// Versions (siblings) one key may hold after a client put.
    pub versions_per_key_max: usize,
    /// Versions one key may hold after any put, Repair included.
    pub versions_per_key_hard_max: usize,
    /// How long a request body may take to arrive, from the request headers.
    pub request_body_timeout_ms: u64,
    /// How long a unary request may take in all, when the client sets no
    /// shorter grpc-timeout.
    pub request_timeout_ms: u64,
    pub inflight_requests_max_per_core: usize,
    pub inflight_bytes_max_per_core: usize,
    pub connections_max_per_core: usize,
    pub h2_streams_max_per_connection: u32,
    pub drain_timeout_ms: u64,
    /// Most keys one GetKeyRange answers (a larger max_keys is clamped).
    pub key_range_keys_max: usize,
}

/// When a write is acknowledged relative to its WAL record reaching disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalSync {
    /// Answer only after the record's batch is fdatasync'ed (group commit).
    Always,
    /// Like `always`, but the committer waits `wal_batch_window_us` after the
    /// first record so more writes join the batch.
    Batch,
    /// Answer at once; the committer syncs every `wal_periodic_interval_ms`.
    /// A crash can lose the last interval of acknowledged writes.
    Periodic,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub wal_sync: WalSync,
    pub wal_batch_window_us: u64,
    pub wal_periodic_interval_ms: u64,
    pub wal_segment_bytes_max: u64,
    pub wal_pending_bytes_max: usize,
    pub wal_replay_skip_corruption: bool,
    pub memtable_bytes_max: usize,
    pub wal_bytes_per_memtable_max: u64,
    pub immutable_memtables_max: usize,
    pub write_stall_timeout_ms: u64,
    pub sstable_block_bytes: usize,
    /// Counters of each shard's hot-keys sketch (0: keys are neither
    /// tracked nor reported).
    pub hot_keys_tracked: usize,
    pub compaction: CompactionConfig,
    pub flow_control: FlowControlConfig,
    pub cache: CacheConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            wal_sync: WalSync::Always,
            wal_batch_window_us: 200,
            wal_periodic_interval_ms: 100,
            wal_segment_bytes_max: 64 * 1024 * 1024,
            wal_pending_bytes_max: 64 * 1024 * 1024,
            wal_replay_skip_corruption: false,
            memtable_bytes_max: 64 * 1024 * 1024,
            wal_bytes_per_memtable_max: 256 * 1024 * 1024,
            immutable_memtables_max: 2,
            write_stall_timeout_ms: 2000,
            sstable_block_bytes: 16 * 1024,
            hot_keys_tracked: 32,
            compaction: CompactionConfig::default(),
            flow_control: FlowControlConfig::default(),
            cache: CacheConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    pub io_memory_bytes: usize,
    pub spin_before_park_us: u64,
    pub mesh_channel_capacity: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub level: String,
    pub format: LogFormat,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            node_id: "pairdb-local".into(),
            listen: "127.0.0.1:50051".into(),
            data_dir: PathBuf::from("pairdb-data"),
            shards: 0,
            shard_port_base: 0,
        }
    }
}

impl LimitsConfig {
    /// The per-key bounds every shard checks puts against.
    pub fn key_bounds(&self) -> crate::model::KeyBounds {
        crate::model::KeyBounds {
            clock_entries_max: self.clock_entries_max,
            key_clock_ids_max: self.key_clock_ids_max,
            versions_per_key_max: self.versions_per_key_max,
            versions_per_key_hard_max: self.versions_per_key_hard_max,
            answer_bytes_max: self.message_bytes_max,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            message_bytes_max: 16 * 1024 * 1024,
            tenant_id_bytes_max: 256,
            key_bytes_max: 8 * 1024,
            value_bytes_max: 8 * 1024 * 1024,
            clock_entries_max: 64,
            key_clock_ids_max: 62,
            versions_per_key_max: 100,
            versions_per_key_hard_max: 200,
            request_body_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            inflight_requests_max_per_core: 4096,
            inflight_bytes_max_per_core: 256 * 1024 * 1024,
            connections_max_per_core: 1024,
            h2_streams_max_per_connection: 1024,
            drain_timeout_ms: 10_000,
            key_range_keys_max: 10_000,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            io_memory_bytes: 2 * 1024 * 1024,
            spin_before_park_us: 0,
            mesh_channel_capacity: 1024,
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Config {
    /// Parses and validates TOML text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            source: source.to_string(),
            reason: e.to_string(),
        })?;
        config.validate(source)?;
        Ok(config)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::parse(EMBEDDED_DEFAULT, "<embedded shards.toml>")
    }

    /// Checks every cross-field and range rule; the first failure is returned.
    pub fn validate(&self, source: &str) -> Result<(), ConfigError> {
        let bad = |key: &'static str, reason: String| {
            Err(ConfigError::Invalid {
                source: source.to_string(),
                key,
                reason,
            })
        };
        let l = &self.limits;
        if self.node.node_id.is_empty()
            || self.node.node_id.len() > crate::model::clock::NODE_ID_BYTES_MAX
        {
            return bad("node.node_id", "must be 1 to 256 bytes".into());
        }
        if self.node.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "node.listen",
                format!("{:?} is not HOST:PORT with an IP address", self.node.listen),
            );
        }
        if l.key_range_keys_max == 0 {
            return bad("limits.key_range_keys_max", "must be at least 1".into());
        }
        if self.node.data_dir.as_os_str().is_empty() {
            return bad("node.data_dir", "must not be empty".into());
        }
        if self.node.shards > 1024 {
            return bad(
                "node.shards",
                format!("{} is more than 1024", self.node.shards),
            );
        }
        if l.message_bytes_max < 1024 || l.message_bytes_max > 1 << 30 {
            return bad(
                "limits.message_bytes_max",
                "must be between 1 KiB and 1 GiB".into(),
            );
        }
        if l.tenant_id_bytes_max == 0
            || l.tenant_id_bytes_max > crate::model::key::TENANT_ID_BYTES_LIMIT
        {
            return bad(
                "limits.tenant_id_bytes_max",
                "must be between 1 and 65535".into(),
            );
        }
        if l.key_bytes_max == 0 {
            return bad("limits.key_bytes_max", "must be at least 1".into());
        }
        if l.value_bytes_max >= l.message_bytes_max {
            return bad(
                "limits.value_bytes_max",
                format!(
                    "{} must be below limits.message_bytes_max ({})",
                    l.value_bytes_max, l.message_bytes_max
                ),
            );
        }
        // The WAL and SSTable encodings count clock entries and versions
        // per key in 16 bits: every figure the limits allow must fit.
        if l.clock_entries_max < 3 || l.clock_entries_max > FORMAT_COUNT_MAX {
            return bad(
                "limits.clock_entries_max",
                format!("must be between 3 and {FORMAT_COUNT_MAX}"),
            );
        }
        if l.key_clock_ids_max == 0 || l.key_clock_ids_max + 2 > l.clock_entries_max {
            return bad(
                "limits.key_clock_ids_max",
                format!(
                    "{} must be between 1 and limits.clock_entries_max - 2 ({}): a write-back \
                     adds the coordinator's id and this node's stamp to the clock a Read answers",
                    l.key_clock_ids_max,
                    l.clock_entries_max.saturating_sub(2)
                ),
            );
        }
        if l.versions_per_key_max == 0 {
            return bad("limits.versions_per_key_max", "must be at least 1".into());
        }
        if l.versions_per_key_hard_max < l.versions_per_key_max
            || l.versions_per_key_hard_max > FORMAT_COUNT_MAX
        {
            return bad(
                "limits.versions_per_key_hard_max",
                format!(
                    "{} must be between limits.versions_per_key_max ({}) and {FORMAT_COUNT_MAX}",
                    l.versions_per_key_hard_max, l.versions_per_key_max
                ),
            );
        }
        if l.request_body_timeout_ms == 0 || l.request_timeout_ms == 0 {
            return bad(
                "limits.request_timeout_ms",
                "request_timeout_ms and request_body_timeout_ms must be at least 1".into(),
            );
        }
        if l.inflight_requests_max_per_core == 0 {
            return bad(
                "limits.inflight_requests_max_per_core",
                "must be at least 1".into(),
            );
        }
        if l.inflight_bytes_max_per_core < l.message_bytes_max {
            return bad(
                "limits.inflight_bytes_max_per_core",
                "must be at least limits.message_bytes_max, or no full-size message could be read"
                    .into(),
            );
        }
        if l.connections_max_per_core == 0 {
            return bad(
                "limits.connections_max_per_core",
                "must be at least 1".into(),
            );
        }
        if l.h2_streams_max_per_connection == 0 {
            return bad(
                "limits.h2_streams_max_per_connection",
                "must be at least 1".into(),
            );
        }
        let st = &self.storage;
        if st.wal_segment_bytes_max < 2 * (l.message_bytes_max as u64) + 8192 {
            return bad(
                "storage.wal_segment_bytes_max",
                "must hold at least two full-size messages (2 x limits.message_bytes_max + 8 KiB)"
                    .into(),
            );
        }
        if st.wal_pending_bytes_max < l.message_bytes_max {
            return bad(
                "storage.wal_pending_bytes_max",
                "must be at least limits.message_bytes_max".into(),
            );
        }
        if st.memtable_bytes_max < 64 * 1024 {
            return bad(
                "storage.memtable_bytes_max",
                "must be at least 64 KiB".into(),
            );
        }
        if st.wal_bytes_per_memtable_max < st.memtable_bytes_max as u64 {
            return bad(
                "storage.wal_bytes_per_memtable_max",
                "must be at least storage.memtable_bytes_max".into(),
            );
        }
        if st.immutable_memtables_max == 0 {
            return bad(
                "storage.immutable_memtables_max",
                "must be at least 1".into(),
            );
        }
        if st.sstable_block_bytes < 1024 || st.sstable_block_bytes > 4 * 1024 * 1024 {
            return bad(
                "storage.sstable_block_bytes",
                "must be between 1 KiB and 4 MiB".into(),
            );
        }
        if st.hot_keys_tracked > HOT_KEYS_TRACKED_MAX {
            return bad(
                "storage.hot_keys_tracked",
                format!(
                    "{} is more than {HOT_KEYS_TRACKED_MAX} (a key not tracked costs a scan of the counters)",
                    st.hot_keys_tracked
                ),
            );
        }
        if st.wal_periodic_interval_ms == 0 {
            return bad(
                "storage.wal_periodic_interval_ms",
                "must be at least 1".into(),
            );
        }
        if let Err((key, reason)) = tuning::validate(&st.compaction, &st.flow_control) {
            return bad(key, reason);
        }
        if self.runtime.mesh_channel_capacity == 0 {
            return bad("runtime.mesh_channel_capacity", "must be at least 1".into());
        }
        if self.runtime.io_memory_bytes < 64 * 1024 {
            return bad("runtime.io_memory_bytes", "must be at least 64 KiB".into());
        }
        if let Err((key, reason)) = cluster::validate(&self.cluster, &self.node.listen) {
            return bad(key, reason);
        }
        if let Ok(grpc) = self.node.listen.parse::<SocketAddr>() {
            if let Err(reason) = self.metrics.addr(grpc) {
                return bad("metrics.listen", reason);
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.logging.level).is_err() {
            return bad(
                "logging.level",
                format!(
                    "{:?} is not a level or filter directive",
                    self.logging.level
                ),
            );
        }
        Ok(())
    }

    /// Makes every path setting absolute against `cwd`, the working directory
    /// at start-up, so nothing later depends on (or changes with) it. Call it
    /// after [`Config::validate`], which rejects empty paths.
    pub fn resolve_paths(&mut self, cwd: &Path) {
        self.node.data_dir = absolute_path(cwd, &self.node.data_dir);
    }

    /// The listen address (validated in [`Config::validate`]).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.node.listen.parse().map_err(|_| ConfigError::Invalid {
            source: "command line".into(),
            key: "node.listen",
            reason: format!("{:?} is not HOST:PORT", self.node.listen),
        })
    }
}

/// `path` made absolute against `cwd` (an absolute `path` is kept). `.`
/// components and trailing slashes are dropped; `..` is kept, since the
/// component before it may be a symbolic link.
pub fn absolute_path(cwd: &Path, path: &Path) -> PathBuf {
    cwd.join(path).components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        let cwd = Path::new("/srv/node");
        for (given, want) in [
            ("d", "/srv/node/d"),
            ("./d", "/srv/node/d"),
            ("./pairdb-data/", "/srv/node/pairdb-data"),
            ("a/./b", "/srv/node/a/b"),
            ("../d", "/srv/node/../d"),
            (".", "/srv/node"),
            ("/var/lib/pairdb", "/var/lib/pairdb"),
            ("/var/./lib/", "/var/lib"),
        ] {
            assert_eq!(
                absolute_path(cwd, Path::new(given)),
                PathBuf::from(want),
                "{given}"
            );
        }
        let mut config = Config::default();
        assert_eq!(config.node.data_dir, PathBuf::from("pairdb-data"));
        config.resolve_paths(cwd);
        assert_eq!(config.node.data_dir, PathBuf::from("/srv/node/pairdb-data"));
        // Resolving twice changes nothing.
        config.resolve_paths(Path::new("/elsewhere"));
        assert_eq!(config.node.data_dir, PathBuf::from("/srv/node/pairdb-data"));
    }

    #[test]
    fn shipped_file_equals_code_defaults() {
        assert_eq!(Config::embedded_default().unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[node]\nnode_idd = \"x\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.toml") && err.contains("node_idd"), "{err}");
    }

    #[test]
    fn bad_value_names_key_and_reason() {
        let err = Config::parse("[limits]\nvalue_bytes_max = 99999999999\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.value_bytes_max"), "{err}");
        let err = Config::parse("[node]\nlisten = \"nowhere\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("node.listen"), "{err}");
        let err = Config::parse("[storage]\nhot_keys_tracked = 1025\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.hot_keys_tracked"), "{err}");
        let off = Config::parse("[storage]\nhot_keys_tracked = 0\n", "f.toml").unwrap();
        assert_eq!(off.storage.hot_keys_tracked, 0);
        let err = Config::parse("[logging]\nformat = \"xml\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("xml"), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let err = Config::load(Path::new("/nonexistent/shards.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/shards.toml"), "{err}");
    }
}
