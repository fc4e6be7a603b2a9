//! What arrives on the quorum and election ports (peer messages and replies, bincode) and what
//! is read back from a Raft log file: never a panic; whatever decodes re-encodes and decodes to
//! the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkherd::server::consensus::{log_store, network};

fuzz_target!(|data: &[u8]| {
    network::fuzz_peer_payload(data);
    log_store::fuzz_log_file(data);
});
