//! Logging set-up: tracing with a level from config or RUST_LOG, text or JSON,
//! and the `log` records of dependencies (glommio warns through `log`)
//! bridged into the same output. Logs go to stderr.

use crate::config::{LogFormat, LoggingConfig};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; RUST_LOG, when set, wins over `config.level`.
pub fn init(config: &LoggingConfig) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| format!("RUST_LOG={v:?}: {e}"))?
        }
        _ => EnvFilter::try_new(&config.level)
            .map_err(|e| format!("logging.level {:?}: {e}", config.level))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // try_init also installs the log -> tracing bridge (tracing-log).
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| format!("cannot install the log subscriber: {e}"))
}
