//! What each core listens on, and its accept loop.
//!
//! Owns the node's addresses per core: the shared listen address (every
//! core binds it with SO_REUSEPORT) and, with `node.shard_port_base`, each
//! shard's own port (checked free at start-up, within 1..=65535 and apart
//! from the listen port); and the loop that accepts connections until
//! shutdown begins, admitting each (evicting an idle one past the
//! connection limit) and serving it in its own task.

use super::{port, RuntimeError};
use crate::config::Config;
use crate::server::{conn, context::CoreContext};
use futures_lite::future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// Accepts connections on `listener` until shutdown begins, serving each
/// in its own task (past the connection limit an idle one is evicted, or
/// the new one closed).
pub(super) async fn accept_loop(
    listener: glommio::net::TcpListener,
    core: Rc<CoreContext>,
    shard_id: usize,
) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            core.wait_shutdown().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                let core_for_conn = Rc::clone(&core);
                glommio::spawn_local(async move {
                    let Some((_slot, state)) = core_for_conn.admit_connection_evicting().await
                    else {
                        tracing::warn!(
                            limit = core_for_conn.config.limits.connections_max_per_core,
                            "connection limit reached and no connection idle: closing a new connection"
                        );
                        return;
                    };
                    conn::serve(stream, Rc::clone(&core_for_conn), state).await;
                })
                .detach();
            }
            Some(Err(e)) => {
                tracing::warn!(shard = shard_id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The addresses a core listens on: the node's address (every core, with
/// SO_REUSEPORT) and, with `node.shard_port_base`, shard i's own port at
/// index i.
#[derive(Clone)]
pub(super) struct Listen {
    pub addr: SocketAddr,
    pub shard_ports: Vec<SocketAddr>,
    /// The metrics endpoint (served by core 0), if on.
    pub metrics: Option<SocketAddr>,
}

/// The metrics endpoint's address for a node configured to listen on
/// `listen`, checked free (`None`: metrics are off).
pub(super) fn metrics_addr(
    config: &Config,
    listen: SocketAddr,
) -> Result<Option<SocketAddr>, RuntimeError> {
    let Some(addr) = config
        .metrics
        .addr(listen)
        .map_err(|reason| RuntimeError::Config(format!("metrics.listen: {reason}")))?
    else {
        return Ok(None);
    };
    port::probe(addr).map(Some).map_err(RuntimeError::Port)
}

/// The shard-aware addresses (`node.shard_port_base + i` on the listen
/// host), each checked free; empty when the base is 0.
pub(super) fn shard_addrs(
    config: &Config,
    addr: SocketAddr,
    shards: usize,
) -> Result<Vec<SocketAddr>, RuntimeError> {
    let base = config.node.shard_port_base;
    if base == 0 {
        return Ok(Vec::new());
    }
    let last = base as usize + shards - 1;
    if last > u16::MAX as usize {
        return Err(RuntimeError::Config(format!(
            "node.shard_port_base {base}: {shards} shards need ports {base}..={last}, past 65535"
        )));
    }
    if (base as usize..=last).contains(&(addr.port() as usize)) {
        return Err(RuntimeError::Config(format!(
            "node.shard_port_base {base}: the shard ports {base}..={last} include the listen port {}",
            addr.port()
        )));
    }
    (0..shards)
        .map(|i| {
            port::probe(SocketAddr::new(addr.ip(), base + i as u16)).map_err(RuntimeError::Port)
        })
        .collect()
}
