//! The SASL handshake path: a client's DIGEST-MD5 tokens (any bytes, as the first token or as
//! the digest-response after the challenge) and JAAS file text. Nothing may panic; an exchange
//! only succeeds for a user in the JAAS file, and only once.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use zkherd::server::sasl::{parse_directives, DigestMd5, Jaas, SaslStep, SaslUsers};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let users = SaslUsers(Arc::new(BTreeMap::from([(
                "bob".to_string(),
                "bobsecret".to_string(),
            )])));
            let mut s = DigestMd5::new(users, "bm9uY2U=".into());
            if let Ok(SaslStep::Continue(_)) = s.step(b"") {
                if let Ok(SaslStep::Done { id, token }) = s.step(rest) {
                    assert_eq!(id, "bob");
                    assert!(token.starts_with(b"rspauth="));
                }
            }
            assert!(s.step(rest).is_err(), "an exchange ends after the response");
        }
        1 => {
            let _ = parse_directives(rest);
            let mut s = DigestMd5::new(SaslUsers::default(), "n".into());
            let _ = s.step(rest);
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            match Jaas::parse(&text, Path::new("fuzz/jaas.conf")) {
                Ok(j) => {
                    for name in j.sections.keys() {
                        let _ = j.digest_users(name, Path::new("fuzz/jaas.conf"));
                    }
                }
                Err(e) => assert!(e.to_string().starts_with("fuzz/jaas.conf"), "{e}"),
            }
        }
    }
});
