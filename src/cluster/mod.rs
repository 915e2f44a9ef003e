//! The cluster layer: what a node does with other nodes.
//!
//! [`streams`]: range moves, source side (copy passes and live forwarding
//! to a target node). Layering: uses the engine, storage, model and the
//! wire types; the server calls it, and the runtime builds it per core.

pub(crate) mod streams;
