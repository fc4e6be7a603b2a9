//! Log records and snapshots read back from disk: corrupt bytes must be an error, not a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkherd::server::persist::{decode_entry, decode_snapshot, encode_entry};

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = decode_entry(data) {
        assert_eq!(decode_entry(&encode_entry(&e)).unwrap(), e);
    }
    let _ = decode_snapshot(data, true, None);
});
