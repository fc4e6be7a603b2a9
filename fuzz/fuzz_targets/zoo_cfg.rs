//! zoo.cfg text as a user (or another tool) might write it: any bytes must parse or give an
//! error naming a line, never panic. Server lines that parse keep their invariants.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use zkherd::server::config::ZooCfg;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match ZooCfg::parse(&text, Path::new("fuzz/zoo.cfg")) {
        Ok(cfg) => {
            assert!(cfg.tick_time > 0);
            assert!(cfg.servers.windows(2).all(|w| w[0].id <= w[1].id));
            let _ = cfg.client_addr();
            let _ = cfg.is_standalone();
        }
        Err(e) => {
            assert!(e.to_string().starts_with("fuzz/zoo.cfg"), "{e}");
        }
    }
});
