//! TLS on the secure client port with unmodified real clients, on the builtin server (a
//! 3-node ensemble, through every member) and on Apache ZooKeeper: kazoo with a client
//! certificate, zkCli.sh with what `zkherd env` prints, the `zookeeper-client` crate. A
//! certificate of another CA, and no certificate, are refused on both. With `secure_only`
//! nothing listens in clear, and `status`/`wait` still work. (Debian's C client, cli_mt, is
//! built without TLS.) The wire-level x509 comparison with Apache is in tests/differential.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn tls_dir(c: &Cluster) -> PathBuf {
    c.dir().join("tls")
}

/// Certificates of a CA the cluster does not trust.
fn foreign_ca(c: &Cluster) -> PathBuf {
    let dir = c.tmp.path().join("foreign");
    zkherd::server::tls::mint(&dir, &["127.0.0.1".parse().unwrap()], "foreign").unwrap();
    dir
}

fn kazoo_tls(c: &Cluster, hosts: &str, prefix: &str, refusals: bool) -> String {
    let t = tls_dir(c);
    let f = foreign_ca(c);
    let files = [
        t.join("ca.pem"),
        t.join("client-cert.pem"),
        t.join("client-key.pem"),
        f.join("client-cert.pem"),
        f.join("client-key.pem"),
    ];
    let mut args: Vec<&std::ffi::OsStr> = vec![hosts.as_ref(), prefix.as_ref()];
    args.extend(files.iter().map(|p| p.as_os_str()));
    if refusals {
        args.push("refusals".as_ref());
    }
    client_script("kazoo_tls.py", &args)
}

#[test]
fn kazoo_with_a_client_certificate_on_builtin_and_apache() {
    if !kazoo_available("kazoo_with_a_client_certificate_on_builtin_and_apache") {
        return;
    }
    let builtin = Cluster::with_tls(3, "builtin", "");
    // Every member serves TLS itself; the refusals (which wait out kazoo's timeout) on one.
    let b = &kazoo_tls(&builtin, &builtin.secure_addr(1), "/kt", true);
    for i in 2..=3 {
        let out = kazoo_tls(&builtin, &builtin.secure_addr(i), &format!("/kt{i}"), false);
        assert!(
            b.starts_with(&out.replace(&format!("/kt{i}"), "/kt")),
            "member {i}:\n{out}\nvs member 1:\n{b}"
        );
    }
    for expected in [
        "create with the x509 ACL ok '/kt'",
        "read it ok b'v'",
        "acl ok [('x509', 'CN=zkherd-client,O=zkherd')]",
        "auth acl ok [('x509', 'CN=zkherd-client,O=zkherd')]",
        "invalid x509 id InvalidACLError",
        "a certificate of another CA KazooTimeoutError",
        "no certificate KazooTimeoutError",
    ] {
        assert!(b.contains(expected), "missing {expected:?} in:\n{b}");
    }
    if !apache_available("kazoo_with_a_client_certificate_on_builtin_and_apache") {
        return;
    }
    let apache = Cluster::with_tls(1, "apache", "");
    assert_eq!(kazoo_tls(&apache, &apache.secure_addr(1), "/kt", true), *b);
}

/// zkCli.sh over TLS with what `zkherd env` prints, then `extra`, piped commands.
fn zkcli_tls(c: &Cluster, extra: &str) -> String {
    c.zkcli_with_env(
        &c.secure_addr(1),
        extra,
        "whoami\ncreate /cli-tls x\nget /cli-tls\n",
    )
}

#[test]
fn zkcli_over_tls_with_what_zkherd_env_prints() {
    if !zkcli_available("zkcli_over_tls_with_what_zkherd_env_prints") {
        return;
    }
    let mut clusters = vec![("builtin", Cluster::with_tls(3, "builtin", ""))];
    if apache_available("zkcli_over_tls_with_what_zkherd_env_prints") {
        clusters.push(("apache", Cluster::with_tls(1, "apache", "")));
    }
    for (backend, c) in &clusters {
        let out = zkcli_tls(c, "");
        for expected in [
            "state:SyncConnected",
            "x509: CN=zkherd-client,O=zkherd",
            "Created /cli-tls",
        ] {
            assert!(
                out.contains(expected),
                "{backend}: missing {expected:?}:\n{out}"
            );
        }
        // The same client with a certificate of another CA.
        let f = foreign_ca(c);
        let out = zkcli_tls(
            c,
            &format!(
                "CLIENT_JVMFLAGS=\"$(echo \"$CLIENT_JVMFLAGS\" | sed 's#{}#{}#')\"",
                tls_dir(c).join("client.pem").display(),
                f.join("client.pem").display()
            ),
        );
        assert!(!out.contains("state:SyncConnected"), "{backend}:\n{out}");
        assert!(!out.contains("Created /cli-tls"), "{backend}:\n{out}");
    }
}

#[test]
fn the_rust_client_connects_with_a_client_certificate() {
    use zookeeper_client as zk;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut clusters = vec![("builtin", Cluster::with_tls(3, "builtin", ""))];
    if apache_available("the_rust_client_connects_with_a_client_certificate") {
        clusters.push(("apache", Cluster::with_tls(1, "apache", "")));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (backend, c) in &clusters {
        let t = tls_dir(c);
        let f = foreign_ca(c);
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        let ca = read(t.join("ca.pem"));
        let addr = c.secure_addr(c.nodes);
        rt.block_on(async {
            let connect = |cert: String, key: String| {
                let ca = ca.clone();
                let addr = addr.clone();
                async move {
                    let tls = zk::TlsOptions::new()
                        .with_pem_ca(&ca)
                        .unwrap()
                        .with_pem_identity(&cert, &key)
                        .unwrap();
                    tokio::time::timeout(
                        Duration::from_secs(20),
                        zk::Client::connector()
                            .with_session_timeout(Duration::from_secs(6))
                            .with_connection_timeout(Duration::from_secs(3))
                            .with_tls(tls)
                            .secure_connect(&addr),
                    )
                    .await
                }
            };
            let client = connect(
                read(t.join("client-cert.pem")),
                read(t.join("client-key.pem")),
            )
            .await
            .expect("connect in time")
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
            let acl = [zk::Acl::new(
                zk::Permission::ALL,
                zk::AuthId::new("x509", zkherd::server::tls::Minted::CLIENT_ID),
            )];
            let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl));
            client.create("/rust-tls", b"v", &opts).await.unwrap();
            assert_eq!(client.get_data("/rust-tls").await.unwrap().0, b"v");
            let refused = connect(
                read(f.join("client-cert.pem")),
                read(f.join("client-key.pem")),
            )
            .await;
            assert!(
                !matches!(refused, Ok(Ok(_))),
                "{backend}: a certificate of another CA was let in"
            );
        });
    }
}

/// The listening TCP ports of `pid` (from /proc/<pid>/net/tcp and its fds).
fn listening_ports(pid: i32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("socket:[")?
                        .strip_suffix(']')
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                if let Some(p) = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                {
                    ports.push(p);
                }
            }
        }
    }
    ports.sort();
    ports
}

#[test]
fn secure_only_listens_on_nothing_in_clear_and_status_still_works() {
    let spec = "[security]\ntls = true\nsecure_only = true\n";
    let mut backends = vec!["builtin"];
    if apache_available("secure_only_listens_on_nothing_in_clear_and_status_still_works") {
        backends.push("apache");
    }
    for backend in backends {
        let c = Cluster::with_tls(3, backend, spec);
        let (v, rc) = c.status_json();
        assert_eq!(rc, 0, "{backend}: {v}");
        assert!(v["leader"].is_number(), "{backend}: {v}");
        let wait = c.run(&["wait", "--timeout", "30"], 60);
        assert!(wait.status.success(), "{backend}: {}", stderr(&wait));
        for n in v["nodes"].as_array().unwrap() {
            let node = n["id"].as_u64().unwrap() as u16;
            let pid = n["pid"].as_i64().unwrap() as i32;
            let ports = listening_ports(pid);
            let secure = c.base + 100 + node - 1;
            assert!(ports.contains(&secure), "{backend} node {node}: {ports:?}");
            // Only the secure client port and the quorum/election ports (and, for Java,
            // nothing else either): no plaintext client port.
            for p in &ports {
                assert!(
                    *p == secure || *p == c.base + 700 + node - 1 || *p == c.base + 1700 + node - 1,
                    "{backend} node {node} (pid {pid}) listens on {p}: {ports:?}"
                );
            }
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", c.base + node - 1)).is_err(),
                "{backend}: the plaintext port of node {node} accepts"
            );
        }
        let env = stdout(&c.run(&["env"], 30));
        assert!(
            env.contains(&format!("export ZK_CONNECT=127.0.0.1:{}", c.base + 100)),
            "{backend}: {env}"
        );
        // zkherd's own shell goes over TLS by itself.
        let sh = c.run(&["shell", "create", "/via-shell", "x"], 60);
        assert!(
            sh.status.success(),
            "{backend}: {}{}",
            stdout(&sh),
            stderr(&sh)
        );
        let sh = c.run(&["shell", "whoami"], 60);
        assert!(
            stdout(&sh).contains("x509: CN=zkherd-client,O=zkherd"),
            "{backend}: {}{}",
            stdout(&sh),
            stderr(&sh)
        );
    }
}

/// A command that must succeed.
fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pkcs12_stores_made_by_openssl_and_keytool_serve_on_both_backends() {
    let test = "pkcs12_stores_made_by_openssl_and_keytool_serve_on_both_backends";
    let have = |t: &str| Command::new(t).arg("-help").output().is_ok();
    if !tool_available(
        test,
        "openssl and keytool",
        have("openssl") && have("keytool"),
        "`apt-get install openssl default-jre-headless`",
    ) {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let own = tempfile::tempdir().unwrap();
    let d = own.path();
    let m = zkherd::server::tls::mint(d, &["127.0.0.1".parse().unwrap()], "own").unwrap();
    sh(Command::new("openssl")
        .args([
            "pkcs12",
            "-export",
            "-name",
            "server",
            "-passout",
            "pass:storepass",
            "-in",
        ])
        .arg(&m.server)
        .arg("-out")
        .arg(d.join("server-openssl.p12")));
    sh(Command::new("keytool")
        .args([
            "-importkeystore",
            "-noprompt",
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass",
            "storepass",
        ])
        .args([
            "-deststoretype",
            "PKCS12",
            "-deststorepass",
            "javapass",
            "-srckeystore",
        ])
        .arg(d.join("server-openssl.p12"))
        .arg("-destkeystore")
        .arg(d.join("server-java.p12")));
    sh(Command::new("keytool")
        .args([
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-storetype",
            "PKCS12",
            "-storepass",
            "trustpass",
            "-file",
        ])
        .arg(&m.ca)
        .arg("-keystore")
        .arg(d.join("trust-java.p12")));
    let stores = [
        ("openssl key store", "server-openssl.p12", "storepass"),
        ("keytool key store", "server-java.p12", "javapass"),
    ];
    let mut backends = vec!["builtin"];
    if apache_available(test) {
        backends.push("apache");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    for backend in &backends {
        for (what, file, pass) in stores {
            let spec = format!(
                "[zookeeper.extra]\n\
                 \"ssl.keyStore.location\" = \"{}\"\n\"ssl.keyStore.type\" = \"PKCS12\"\n\
                 \"ssl.keyStore.password\" = \"{pass}\"\n\
                 \"ssl.trustStore.location\" = \"{}\"\n\"ssl.trustStore.type\" = \"PKCS12\"\n\
                 \"ssl.trustStore.password\" = \"trustpass\"\n",
                d.join(file).display(),
                d.join("trust-java.p12").display()
            );
            let c = Cluster::with_tls(1, backend, &spec);
            let addr = c.secure_addr(1);
            let tls = zookeeper_client::TlsOptions::new()
                .with_pem_ca(&read(&m.ca))
                .unwrap()
                .with_pem_identity(&read(&m.client_cert), &read(&m.client_key))
                .unwrap();
            rt.block_on(async {
                let client = tokio::time::timeout(
                    Duration::from_secs(20),
                    zookeeper_client::Client::connector()
                        .with_tls(tls)
                        .secure_connect(&addr),
                )
                .await
                .unwrap_or_else(|_| panic!("{backend}, {what}: no session in time"))
                .unwrap_or_else(|e| panic!("{backend}, {what}: {e}"));
                let (data, _) = client.get_data("/zookeeper").await.unwrap();
                assert!(data.is_empty(), "{backend}, {what}");
            });
        }
    }
}
