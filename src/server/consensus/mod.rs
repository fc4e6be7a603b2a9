//! Replication on openraft, pinned to `=0.10.0-alpha.37` and wrapped here so an upgrade
//! touches this module only.
//!
//! The Raft log holds [`Proposal`]s: a ZooKeeper write (the same jute entry the standalone log
//! stores, without its zxid) and the node/connection that waits for its outcome. The state
//! machine assigns the zxid at apply time — `(Raft term << 32) | counter within the term`, so
//! Raft's own blank and membership entries take none — and runs the same pure
//! [`State::apply`](super::tree::State::apply) as the standalone server.
//!
//! Membership follows `/zookeeper/config`: a reconfig commits the new config text as a
//! ZooKeeper txn, and the leader then moves openraft's membership to it (see
//! `server::ensemble::reconcile`).

pub mod codec;
pub mod log_store;
pub mod network;
pub mod state_machine;

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who waits for a proposal's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// myid of the node that owns the client connection.
    pub node: u64,
    /// A random number per process start, so a restarted node never answers an old request.
    pub incarnation: u64,
    pub conn: u64,
    pub xid: i32,
}

/// One replicated ZooKeeper transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub origin: Option<Origin>,
    /// `persist::encode_entry` of the entry, with zxid 0 (assigned at apply). Serialized as
    /// bytes, not as a sequence of numbers (the same bincode, a copy instead of a loop: the
    /// loop was 4.5% of a follower's samples under write load).
    #[serde(with = "serde_bytes")]
    pub entry: Vec<u8>,
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proposal({} bytes)", self.entry.len())
    }
}

/// A client's `reconfig`, on its way to the leader, which checks it against the committed
/// config and proposes the outcome (the new config, or an error txn) as this origin's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconfigJob {
    pub origin: Origin,
    pub session: i64,
    /// The connection's auth ids, as (scheme, id).
    pub auth: Vec<(String, String)>,
    pub time_ms: i64,
    pub request: crate::server::dynconfig::ReconfigRequest,
    /// Whether the caller holds WRITE on `/zookeeper/config` (or is super), checked where its
    /// auth ids are known; Apache checks it last, after the quorum check.
    pub allowed: bool,
}

/// What the state machine answers the proposer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ApplyAck {
    pub zxid: i64,
}

openraft::declare_raft_types!(
    /// openraft's type configuration for zkherd.
    pub ZkRaft:
        D = Proposal,
        R = ApplyAck,
);

pub type LogId = openraft::LogId<openraft::impls::leader_id_adv::LeaderId<u64, u64>>;

/// zxid of the `counter`-th ZooKeeper entry in `term`.
pub fn zxid(term: u64, counter: u32) -> i64 {
    ((term as i64) << 32) | i64::from(counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_encode_as_before_their_bytes_were_serialized_as_bytes() {
        // Logs written before `serde_bytes` must still decode: bincode writes a byte sequence
        // and a byte string alike (a length, then the bytes).
        #[derive(Serialize)]
        struct Before {
            origin: Option<Origin>,
            entry: Vec<u8>,
        }
        let origin = Some(Origin {
            node: 2,
            incarnation: 7,
            conn: 9,
            xid: -3,
        });
        let entry: Vec<u8> = (0..=255).chain(0..40).collect();
        let now = codec::encode(&Proposal {
            origin,
            entry: entry.clone(),
        })
        .unwrap();
        assert_eq!(
            now,
            codec::encode(&Before {
                origin,
                entry: entry.clone()
            })
            .unwrap()
        );
        let back: Proposal = codec::decode(&now).unwrap();
        assert_eq!(back.entry, entry);
    }

    #[test]
    fn zxid_epoch_is_the_raft_term() {
        assert_eq!(zxid(2, 7), 0x2_0000_0007);
        assert_eq!(zxid(2, 7) >> 32, 2);
    }
}
