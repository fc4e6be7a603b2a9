//! SASL DIGEST-MD5 with unmodified real clients, on the builtin server (a 3-node ensemble,
//! through every member) and on Apache ZooKeeper: kazoo with pure-sasl, zkCli.sh with the
//! JAAS file and flags `zkherd env` prints, and the `zookeeper-client` crate. A wrong password
//! is refused on both. (Debian's C client, cli_mt, is built without SASL: it has no option for
//! it and links no libsasl.) The wire-level comparison with Apache is in tests/differential.rs.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const SPEC: &str = r#"[security]
sasl_users = { bob = "bobsecret", alice = "alicesecret", super = "adminsecret" }
sasl_client = "bob"
"#;

fn pure_sasl_available(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import kazoo, puresasl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    tool_available(
        test,
        "python3 with kazoo and pure-sasl",
        ok,
        "`pip install kazoo pure-sasl`",
    )
}

fn kazoo_lines(hosts: &str, prefix: &str) -> String {
    client_script("kazoo_sasl.py", &[hosts.as_ref(), prefix.as_ref()])
}

#[test]
fn kazoo_authenticates_with_sasl_on_builtin_and_apache() {
    if !pure_sasl_available("kazoo_authenticates_with_sasl_on_builtin_and_apache") {
        return;
    }
    let builtin = Cluster::with_spec(3, 3, "builtin", SPEC);
    // Every member answers SASL itself; the ACL'd writes go through the leader's log.
    let mut lines = Vec::new();
    for i in 1..=3 {
        lines.push(kazoo_lines(&builtin.connect_to(i), &format!("/k{i}")));
    }
    for l in &lines[1..] {
        assert_eq!(l.replace("/k2", "/k1").replace("/k3", "/k1"), lines[0]);
    }
    let b = &lines[0];
    for expected in [
        "bob creates ok '/k1-bob'",
        "bob reads ok b'v'",
        "auth acl reads back ok [('sasl', 'bob', 31)]",
        "invalid sasl id InvalidACLError",
        "alice reads bob's node NoAuthError",
        "super reads bob's node ok b'v'",
        "wrong password refused",
    ] {
        assert!(b.contains(expected), "missing {expected:?} in:\n{b}");
    }
    if !apache_available("kazoo_authenticates_with_sasl_on_builtin_and_apache") {
        return;
    }
    let apache = Cluster::with_spec(1, 1, "apache", SPEC);
    assert_eq!(kazoo_lines(&apache.connect_to(1), "/k1"), *b);
}

/// zkCli.sh with what `zkherd env` prints, piped commands; `jaas` overrides the JAAS file.
fn zkcli_session(c: &Cluster, node: u16, jaas: Option<&Path>) -> String {
    let extra = jaas
        .map(|p| {
            format!(
                "export CLIENT_JVMFLAGS=\"-Djava.security.auth.login.config={}\"",
                p.display()
            )
        })
        .unwrap_or_default();
    c.zkcli_with_env(
        &c.connect_to(node),
        &extra,
        "whoami\ncreate /cli x sasl:bob:cdrwa\ngetAcl /cli\nget /cli\n",
    )
}

#[test]
fn zkcli_authenticates_with_what_zkherd_env_prints() {
    if !zkcli_available("zkcli_authenticates_with_what_zkherd_env_prints") {
        return;
    }
    let mut clusters = vec![("builtin", Cluster::with_spec(3, 3, "builtin", SPEC))];
    if apache_available("zkcli_authenticates_with_what_zkherd_env_prints") {
        clusters.push(("apache", Cluster::with_spec(1, 1, "apache", SPEC)));
    }
    for (backend, c) in &clusters {
        let out = zkcli_session(c, 1, None);
        for expected in [
            "SaslAuthenticated",
            "sasl: bob",
            "Created /cli",
            "'sasl,'bob",
        ] {
            assert!(
                out.contains(expected),
                "{backend}: missing {expected:?}:\n{out}"
            );
        }
        // The same client with a wrong password in its JAAS file.
        let bad = c.tmp.path().join("bad-jaas.conf");
        let good = std::fs::read_to_string(c.dir().join("client-jaas.conf")).unwrap();
        std::fs::write(&bad, good.replace("bobsecret", "wrong")).unwrap();
        let out = zkcli_session(c, 1, Some(&bad));
        assert!(out.contains("state:AuthFailed"), "{backend}:\n{out}");
        assert!(!out.contains("sasl: bob"), "{backend}:\n{out}");
    }
}

#[test]
fn the_rust_client_authenticates_with_digest_md5() {
    use zookeeper_client as zk;
    let mut clusters = vec![("builtin", Cluster::with_spec(3, 3, "builtin", SPEC))];
    if apache_available("the_rust_client_authenticates_with_digest_md5") {
        clusters.push(("apache", Cluster::with_spec(1, 1, "apache", SPEC)));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (backend, c) in &clusters {
        let addr = c.connect_to(c.nodes);
        rt.block_on(async {
            let connect = |user: &'static str, password: &'static str| {
                let addr = addr.clone();
                async move {
                    zk::Client::connector()
                        .with_session_timeout(Duration::from_secs(10))
                        .with_sasl(zk::SaslOptions::digest_md5(user, password))
                        .connect(&addr)
                        .await
                }
            };
            let bob = tokio::time::timeout(Duration::from_secs(30), connect("bob", "bobsecret"))
                .await
                .expect("connect in time")
                .unwrap_or_else(|e| panic!("{backend}: bob: {e}"));
            let acl = [zk::Acl::new(
                zk::Permission::ALL,
                zk::AuthId::new("sasl", "bob"),
            )];
            let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl));
            bob.create("/rust-bob", b"v", &opts)
                .await
                .unwrap_or_else(|e| panic!("{backend}: create: {e}"));
            let (data, _) = bob.get_data("/rust-bob").await.unwrap();
            assert_eq!(data, b"v");
            let alice = connect("alice", "alicesecret").await.unwrap();
            assert_eq!(
                alice.get_data("/rust-bob").await.unwrap_err(),
                zk::Error::NoAuth,
                "{backend}"
            );
            let wrong = tokio::time::timeout(Duration::from_secs(30), connect("bob", "wrong"))
                .await
                .expect("a refusal in time");
            assert!(
                matches!(wrong, Err(zk::Error::AuthFailed)),
                "{backend}: a wrong password gave {:?}",
                wrong.map(|_| ())
            );
        });
    }
}
