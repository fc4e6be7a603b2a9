//! zkherd.toml: any bytes must load or give an error naming the file, never panic; a spec that
//! loads has a consistent port plan.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use zkherd::spec::EnsembleSpec;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match EnsembleSpec::parse(&text, Path::new("fuzz/zkherd.toml"), Path::new("/base")) {
        Ok(spec) => {
            assert!(spec.nodes >= 1);
            assert!(spec.dir.is_absolute());
            let _ = zkherd::ports::PortPlan::new(&spec);
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains("fuzz/zkherd.toml") || m.contains("--"), "{m}");
        }
    }
});
