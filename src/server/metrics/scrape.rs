//! One scrape: gathers the figures of every core (shard stats, request
//! metrics, streams), the membership and the data volume, adds the
//! `process_*` families, and encodes the text exposition format.
//!
//! Owns [`Scraper`], which lives on the core that serves `/metrics` and
//! keeps the process collector (its CPU counter accumulates between
//! scrapes). A scrape reads state only; it never waits on a shard's I/O.

use super::families::Families;
use super::node_figures::{self, NodeFigures};
use super::shard_figures;
use crate::cluster::streams::spec::StreamId;
use crate::cluster::streams::status::ShardStatus;
use crate::cluster::streams::{StreamsOp, StreamsReply};
use crate::server::context::CoreContext;
use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;
use std::collections::BTreeMap;

/// Builds the exposition on request.
pub(crate) struct Scraper {
    process: ProcessCollector,
}

impl Default for Scraper {
    fn default() -> Self {
        Self::new()
    }
}

impl Scraper {
    pub(crate) fn new() -> Self {
        Self {
            process: ProcessCollector::for_self(),
        }
    }

    /// The node's metrics in the text exposition format, or why they could
    /// not be gathered (a core that does not answer).
    pub(crate) async fn scrape(&self, core: &CoreContext) -> Result<String, String> {
        let router = &core.router;
        let stats = router
            .all_stats()
            .await
            .map_err(|e| format!("shard figures: {e}"))?;
        let rpc = router
            .all_rpc_metrics()
            .await
            .map_err(|e| format!("request metrics: {e}"))?;
        let mut streams: BTreeMap<StreamId, Vec<ShardStatus>> = BTreeMap::new();
        for reply in router.broadcast_streams(StreamsOp::List).await {
            if let StreamsReply::List(parts) = reply {
                for (id, s) in parts {
                    streams.entry(id).or_default().push(s);
                }
            }
        }
        let streams: Vec<(StreamId, Vec<ShardStatus>)> = streams.into_iter().collect();
        let members = core.members.snapshot();
        let volume = crate::storage::disk::space(&core.config.node.data_dir)
            .ok()
            .map(|s| (s.total_bytes, s.free_bytes));
        let mut f = Families::default();
        node_figures::add(
            &mut f,
            &NodeFigures {
                node_id: &core.config.node.node_id,
                shards: router.shards(),
                uptime_s: core.started.elapsed().as_secs_f64(),
                node_state: router.node.state().name(),
                members: &members,
                streams: &streams,
                volume,
                stats: &stats,
                rpc: &rpc,
            },
        );
        for s in &stats {
            shard_figures::add(&mut f, s);
        }
        f.extend(self.process.collect());
        f.encode()
    }
}
