//! The binary encoding of Raft log records and peer messages: bincode (varint integers,
//! little-endian), which openraft's types support (they avoid `deserialize_any`). With JSON,
//! serde functions were 8% of a node's samples under write load (a fifth of its user-space
//! time, before the allocations they caused), much of it byte vectors written as arrays of
//! numbers.

use std::io;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
}

pub fn encode<T: Serialize + ?Sized>(v: &T) -> io::Result<Vec<u8>> {
    options().serialize(v).map_err(io::Error::other)
}

/// Decode `bytes`, all of them; anything left over is an error. Lengths inside are bounded by
/// the input, so a hostile length cannot allocate more than the input's size.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    options()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
