//! Any frame body, any opcode: decoding must not panic, and what decodes as a write must
//! re-encode to a request that decodes to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkherd::server::proto::{decode_request, encode_multi, encode_write, write_opcode, Request, Writer};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let opcode = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    // Bias towards real opcodes so the interesting decoders get most of the time.
    let opcode = if opcode.unsigned_abs() > 200 { opcode % 23 } else { opcode };
    let Ok(req) = decode_request(opcode, &data[4..]) else {
        return;
    };
    match &req {
        Request::Write(op) => {
            let mut w = Writer::new();
            encode_write(&mut w, op);
            assert_eq!(decode_request(write_opcode(op), &w.buf).unwrap(), req);
        }
        Request::Multi(ops) => {
            let mut w = Writer::new();
            encode_multi(&mut w, ops);
            assert_eq!(decode_request(14, &w.buf).unwrap(), req);
        }
        _ => {}
    }
});
