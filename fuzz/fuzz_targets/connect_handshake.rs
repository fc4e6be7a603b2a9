//! The first frame of a connection: never panics; what decodes re-encodes identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkherd::server::proto::ConnectRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = ConnectRequest::decode(data) {
        let again = ConnectRequest::decode(&req.encode()).expect("re-encoded request decodes");
        assert_eq!(again, req);
    }
});
