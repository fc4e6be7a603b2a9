//! The TLS handshake path of the secure client port: any bytes as a client's first TLS
//! records into a server built as the secure port builds it (zkherd's minted key and CA,
//! client certificates required), the client-certificate subject reader that names the
//! `x509` id, and the X.500 name check of `x509` ACL ids. Nothing may panic.
#![no_main]

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use zkherd::server::tls::{self, ClientAuth, Minted, Store};

fn server() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("zkherd-fuzz-tls-{}", std::process::id()));
            let m: Minted = tls::mint(&dir, &["127.0.0.1".parse().unwrap()], "fuzz").unwrap();
            let pem = |p: &std::path::Path| Store {
                location: p.to_path_buf(),
                kind: None,
                password: None,
            };
            tls::server_config(&pem(&m.server), Some(&pem(&m.ca)), ClientAuth::Need).unwrap()
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let mut conn = rustls::ServerConnection::new(server()).unwrap();
            let mut input = Cursor::new(rest);
            while (input.position() as usize) < rest.len() {
                match conn.read_tls(&mut input) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if conn.process_new_packets().is_err() {
                    break;
                }
            }
            let mut out = Vec::new();
            while conn.wants_write() {
                if conn.write_tls(&mut out).is_err() {
                    break;
                }
            }
            if let Some(certs) = conn.peer_certificates() {
                let _ = certs.first().map(|c| tls::x509_id(c));
            }
        }
        1 => {
            let _ = tls::x509_id(rest);
        }
        _ => {
            let _ = tls::valid_x500_name(&String::from_utf8_lossy(rest));
        }
    }
});
