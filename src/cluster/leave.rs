//! Departure notices: how the cluster tells "left" from "down".
//!
//! SWIM (and foca) knows only down: a node leaving gracefully declares its
//! own identity down. To tell a graceful leave from a crash, the leaving
//! node first adds a departure notice to foca's custom broadcasts (carried
//! in the same gossip packets as the membership updates and re-broadcast by
//! every receiver like them), then calls `leave_cluster`. Owns the notice's
//! encoding (a tag byte, then the identity as a foca member, postcard) and
//! the [`foca::BroadcastHandler`] that decodes notices into an inbox the
//! gossip loop drains into the roster.
//!
//! Invariants: a notice names one identity (one run of one node), never a
//! node id, so a later run of the same node is never taken for departed;
//! each notice is accepted (and so re-broadcast) once per identity.

use super::identity::NodeIdentity;
use foca::Codec;
use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;

/// First byte of a departure notice (room for other broadcast kinds).
const TAG_LEAVE: u8 = b'L';

/// Notices remembered for deduplication; the set starts over past it
/// (a repeated notice is then merely re-broadcast once more).
const SEEN_MAX: usize = 4096;

/// The notice `id` broadcasts when it leaves.
pub(crate) fn encode(id: &NodeIdentity) -> Result<Vec<u8>, String> {
    let mut buf = vec![TAG_LEAVE];
    foca::PostcardCodec
        .encode_member(&foca::Member::down(id.clone()), &mut buf)
        .map_err(|e| format!("cannot encode the departure notice: {e}"))?;
    Ok(buf)
}

/// The identity a notice names.
pub(crate) fn decode(data: &[u8]) -> Result<NodeIdentity, NoticeError> {
    let Some((&TAG_LEAVE, rest)) = data.split_first() else {
        return Err(NoticeError("not a departure notice".into()));
    };
    let member: foca::Member<NodeIdentity> = foca::PostcardCodec
        .decode_member(rest)
        .map_err(|e| NoticeError(format!("bad departure notice: {e}")))?;
    Ok(member.id().clone())
}

/// A broadcast that is not a valid departure notice.
#[derive(Debug)]
pub(crate) struct NoticeError(String);

impl std::fmt::Display for NoticeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoticeError {}

/// Which notice a broadcast is, for foca's dissemination backlog: a newer
/// run's notice replaces an older one of the same address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NoticeKey {
    gossip: SocketAddr,
    started_us: u64,
    renewals: u16,
}

impl NoticeKey {
    fn of(id: &NodeIdentity) -> Self {
        Self {
            gossip: id.gossip,
            started_us: id.started_us,
            renewals: id.renewals,
        }
    }
}

impl foca::Invalidates for NoticeKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.gossip == other.gossip
            && (self.started_us, self.renewals) >= (other.started_us, other.renewals)
    }
}

/// Foca's custom broadcast handler: accepts each departure notice once and
/// puts the departed identity in the inbox.
pub(crate) struct DepartureNotices {
    inbox: Rc<RefCell<Vec<NodeIdentity>>>,
    seen: HashSet<NoticeKey>,
}

impl DepartureNotices {
    /// A handler and the inbox it fills.
    pub(crate) fn new() -> (Self, Rc<RefCell<Vec<NodeIdentity>>>) {
        let inbox = Rc::new(RefCell::new(Vec::new()));
        (
            Self {
                inbox: Rc::clone(&inbox),
                seen: HashSet::new(),
            },
            inbox,
        )
    }
}

impl foca::BroadcastHandler<NodeIdentity> for DepartureNotices {
    type Key = NoticeKey;
    type Error = NoticeError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&NodeIdentity>,
    ) -> Result<Option<NoticeKey>, NoticeError> {
        let id = decode(data)?;
        let key = NoticeKey::of(&id);
        if self.seen.contains(&key) {
            return Ok(None);
        }
        if self.seen.len() >= SEEN_MAX {
            self.seen.clear();
        }
        self.seen.insert(key);
        self.inbox.borrow_mut().push(id);
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::{BroadcastHandler, Invalidates};

    fn id(started_us: u64) -> NodeIdentity {
        NodeIdentity {
            node_id: "b".into(),
            grpc: "127.0.0.1:7001".into(),
            gossip: "127.0.0.1:7001".parse().unwrap(),
            started_us,
            renewals: 0,
        }
    }

    #[test]
    fn a_notice_round_trips_and_is_accepted_once() {
        let (mut h, inbox) = DepartureNotices::new();
        let notice = encode(&id(5)).unwrap();
        assert_eq!(decode(&notice).unwrap(), id(5));
        assert!(h.receive_item(&notice, None).unwrap().is_some());
        assert!(h.receive_item(&notice, None).unwrap().is_none());
        assert_eq!(*inbox.borrow(), [id(5)]);
        assert!(h.receive_item(b"Lxx", None).is_err());
        assert!(h.receive_item(b"", None).is_err());
        assert!(h.receive_item(b"Q", None).is_err());
    }

    #[test]
    fn a_later_run_replaces_an_earlier_notice() {
        let old = NoticeKey::of(&id(5));
        let new = NoticeKey::of(&id(9));
        assert!(new.invalidates(&old));
        assert!(!old.invalidates(&new));
    }
}
