//! The builtin server against a real third-party client (the `zookeeper-client` crate), plus raw
//! protocol checks for what no well-behaved client sends.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use zkherd::server::proto::{self, op, Writer};
use zookeeper_client::{
    Acls, AddWatchMode, Client, CreateMode, Error, EventType, MultiWriteError, MultiWriteResult,
};

/// A builtin server on a free loopback port with its own data dir; stopped on drop.
/// Builtin server(s) from `zkherd::testing` with a short tickTime (fast session expiry); clients
/// talk to node 1. Stopped on drop.
struct Server {
    addr: SocketAddr,
    cluster: zkherd::testing::TestingCluster,
}

impl Server {
    /// One standalone node.
    async fn start(extra: &str) -> Server {
        Self::start_nodes(extra, 1).await
    }

    /// Three nodes replicating through Raft; node 1 is normally a follower (the highest myid
    /// campaigns first on a fresh ensemble).
    async fn ensemble(extra: &str) -> Server {
        Self::start_nodes(extra, 3).await
    }

    async fn start_nodes(extra: &str, n: u64) -> Server {
        let cluster =
            zkherd::testing::TestingCluster::start_with(n, &format!("tickTime=100\n{extra}"))
                .await
                .expect("cluster starts");
        Server {
            addr: cluster.client_addr(1).expect("node 1"),
            cluster,
        }
    }

    async fn client(&self) -> Client {
        Client::connector()
            .with_session_timeout(Duration::from_secs(4))
            .connect(&self.addr.to_string())
            .await
            .unwrap()
    }

    async fn shutdown(mut self) {
        for id in 1..=3 {
            self.cluster.kill(id).await;
        }
    }
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

async fn timeout<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("no answer within 10 s")
}

async fn create_get_set_delete_follow_zookeepers_stat_rules_on(s: Server) {
    let c = s.client().await;
    let (stat, _) = c.create("/a", b"one", &persistent()).await.unwrap();
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    let (data, got) = c.get_data("/a").await.unwrap();
    assert_eq!(data, b"one");
    assert_eq!(got.data_length, 3);
    assert_eq!(
        c.create("/a", b"", &persistent()).await.unwrap_err(),
        Error::NodeExists
    );
    let st = c.set_data("/a", b"two", Some(0)).await.unwrap();
    assert_eq!(st.version, 1);
    assert!(st.mzxid > stat.mzxid);
    assert_eq!(
        c.set_data("/a", b"x", Some(0)).await.unwrap_err(),
        Error::BadVersion
    );
    c.create("/a/b", b"", &persistent()).await.unwrap();
    assert_eq!(c.delete("/a", None).await.unwrap_err(), Error::NotEmpty);
    let (_, parent) = c.get_children("/a").await.unwrap();
    assert_eq!((parent.num_children, parent.cversion), (1, 1));
    c.delete("/a/b", None).await.unwrap();
    let (_, parent) = c.get_children("/a").await.unwrap();
    assert_eq!(
        parent.cversion, 2,
        "visible cversion counts creates and deletes"
    );
    c.delete("/a", Some(1)).await.unwrap();
    assert_eq!(c.get_data("/a").await.unwrap_err(), Error::NoNode);
    assert_eq!(c.check_stat("/a").await.unwrap(), None);
    assert_eq!(
        c.list_children("/").await.unwrap(),
        vec!["zookeeper".to_string()]
    );
    s.shutdown().await;
}

async fn sequential_names_are_ten_digits_of_the_parents_creation_count_on(s: Server) {
    let c = s.client().await;
    c.create("/q", b"", &persistent()).await.unwrap();
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    let (_, n0) = c.create("/q/item-", b"", &seq).await.unwrap();
    c.create("/q/plain", b"", &persistent()).await.unwrap();
    let (_, n2) = c.create("/q/item-", b"", &seq).await.unwrap();
    assert_eq!((n0.into_i64(), n2.into_i64()), (0, 2));
    let mut children = c.list_children("/q").await.unwrap();
    children.sort();
    assert_eq!(
        children,
        vec!["item-0000000000", "item-0000000002", "plain"]
    );
}

async fn ephemerals_belong_to_their_session_and_vanish_when_it_closes_on(s: Server) {
    let owner = s.client().await;
    let other = s.client().await;
    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let (stat, _) = owner.create("/e", b"", &eph).await.unwrap();
    assert_eq!(stat.ephemeral_owner, owner.session_id().0);
    assert_eq!(
        owner.list_ephemerals("/").await.unwrap(),
        vec!["/e".to_string()]
    );
    assert_eq!(
        owner
            .create("/e/child", b"", &persistent())
            .await
            .unwrap_err(),
        Error::NoChildrenForEphemerals
    );
    let (_, _, watcher) = other.get_and_watch_data("/e").await.unwrap();
    drop(owner); // closes the session
    let ev = timeout(watcher.changed()).await;
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    assert_eq!(other.check_stat("/e").await.unwrap(), None);
}

async fn every_watch_kind_fires_as_zookeeper_fires_it_on(s: Server) {
    let c = s.client().await;
    let w = s.client().await;
    // exists on a missing node registers a watch.
    let (stat, watcher) = w.check_and_watch_stat("/w").await.unwrap();
    assert!(stat.is_none());
    let mut recursive = w
        .watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let mut persistent_w = w.watch("/w", AddWatchMode::Persistent).await.unwrap();
    c.create("/w", b"", &persistent()).await.unwrap();
    assert_eq!(
        timeout(watcher.changed()).await.event_type,
        EventType::NodeCreated
    );
    let ev = timeout(recursive.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/w")
    );
    assert_eq!(
        timeout(persistent_w.changed()).await.event_type,
        EventType::NodeCreated
    );

    let (_, _, child_w) = w.get_and_watch_children("/w").await.unwrap();
    let (_, _, data_w) = w.get_and_watch_data("/w").await.unwrap();
    c.create("/w/x", b"", &persistent()).await.unwrap();
    assert_eq!(
        timeout(child_w.changed()).await.event_type,
        EventType::NodeChildrenChanged
    );
    let ev = timeout(recursive.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/w/x")
    );
    assert_eq!(
        timeout(persistent_w.changed()).await.event_type,
        EventType::NodeChildrenChanged,
        "persistent watches see child events"
    );
    c.set_data("/w", b"v", None).await.unwrap();
    assert_eq!(
        timeout(data_w.changed()).await.event_type,
        EventType::NodeDataChanged
    );
    let ev = timeout(recursive.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/w")
    );
    assert_eq!(
        timeout(persistent_w.changed()).await.event_type,
        EventType::NodeDataChanged
    );
}

async fn multi_is_atomic_and_reports_the_failing_op_on(s: Server) {
    let c = s.client().await;
    let mut m = c.new_multi_writer();
    m.add_create(
        "/m",
        b"",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
    )
    .unwrap();
    m.add_set_data("/m", b"v", Some(0)).unwrap();
    m.add_check_version("/m", 1).unwrap();
    let r = m.commit().await.unwrap();
    assert!(matches!(r[0], MultiWriteResult::Create { .. }));
    assert!(matches!(r[1], MultiWriteResult::SetData { .. }));
    assert!(matches!(r[2], MultiWriteResult::Check));

    let mut m = c.new_multi_writer();
    m.add_create("/n", b"", &persistent()).unwrap();
    m.add_delete("/missing", None).unwrap();
    m.add_create("/o", b"", &persistent()).unwrap();
    match m.commit().await.unwrap_err() {
        MultiWriteError::OperationFailed { index, source } => {
            assert_eq!((index, source), (1, Error::NoNode));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.check_stat("/n").await.unwrap(), None, "nothing applied");

    let mut r = c.new_multi_reader();
    r.add_get_data("/m").unwrap();
    r.add_get_children("/missing").unwrap();
    let res = r.commit().await.unwrap();
    assert!(
        matches!(&res[0], zookeeper_client::MultiReadResult::Data { data, .. } if data == b"v")
    );
    assert!(matches!(
        &res[1],
        zookeeper_client::MultiReadResult::Error { err: Error::NoNode }
    ));
}

async fn digest_auth_and_acls_are_enforced_on(s: Server) {
    let alice = s.client().await;
    alice.auth("digest", b"alice:secret").await.unwrap();
    alice
        .create(
            "/private",
            b"s",
            &CreateMode::Persistent.with_acls(Acls::creator_all()),
        )
        .await
        .unwrap();
    let anon = s.client().await;
    assert_eq!(anon.get_data("/private").await.unwrap_err(), Error::NoAuth);
    let (acl, _) = alice.get_acl("/private").await.unwrap();
    assert_eq!(acl[0].scheme(), "digest");
    assert!(acl[0].id().starts_with("alice:"));
    assert_eq!(
        anon.create(
            "/x",
            b"",
            &CreateMode::Persistent.with_acls(Acls::creator_all())
        )
        .await
        .unwrap_err(),
        Error::InvalidAcl,
        "auth ACL without authenticated ids"
    );
    let users = alice.list_auth_users().await.unwrap();
    assert!(
        users
            .iter()
            .any(|u| u.scheme() == "digest" && u.user() == "alice"),
        "{users:?}"
    );
    assert!(
        users
            .iter()
            .any(|u| u.scheme() == "ip" && u.user() == "127.0.0.1"),
        "{users:?}"
    );
    let root = s.client().await;
    root.auth("digest", b"super:admin").await.unwrap();
    assert_eq!(
        root.get_data("/private").await.unwrap().0,
        b"s",
        "super passes every ACL"
    );
}

async fn special_nodes_and_counts_look_like_apache_on(s: Server, ensemble: bool) {
    let c = s.client().await;
    c.sync("/zookeeper/config").await.unwrap();
    let (data, stat) = c.get_config().await.unwrap();
    let text = String::from_utf8(data).unwrap();
    if ensemble {
        // As Apache 3.8 in quorum mode with reconfig off: the static config, version 0.
        assert_eq!(text.matches("server.").count(), 3, "{text}");
        assert!(text.ends_with("\nversion=0"), "{text}");
        assert_eq!((stat.version, stat.mzxid), (-1, 0));
    } else {
        // A standalone server keeps it empty (Curator's EnsembleTracker then leaves the
        // connect string alone).
        assert!(text.is_empty(), "{text}");
    }
    assert_eq!(stat.aversion, -1);
    let (_, z) = c.get_children("/zookeeper").await.unwrap();
    assert_eq!(z.cversion, -2);
    c.create("/d", b"", &persistent()).await.unwrap();
    c.create("/d/e", b"", &persistent()).await.unwrap();
    c.create("/d/e/f", b"", &persistent()).await.unwrap();
    assert_eq!(c.count_descendants_number("/d").await.unwrap(), 2);
    assert!(matches!(
        c.delete("/zookeeper", None).await.unwrap_err(),
        Error::BadArguments(_)
    ));
}

async fn a_session_resumes_on_a_new_connection_and_keeps_its_ephemerals_on(s: Server) {
    // Detached: dropping this client must not close the session it hands over.
    let c = Client::connector()
        .with_detached()
        .with_session_timeout(Duration::from_secs(4))
        .connect(&s.addr.to_string())
        .await
        .unwrap();
    c.create(
        "/keep",
        b"",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    let id = c.session_id();
    let session = c.into_session();
    let resumed = Client::connector()
        .with_session(session)
        .with_session_timeout(Duration::from_secs(4))
        .connect(&s.addr.to_string())
        .await
        .unwrap();
    assert_eq!(resumed.session_id(), id);
    assert!(resumed.check_stat("/keep").await.unwrap().is_some());
}

// ---- raw protocol: what well-behaved clients never send ----

async fn raw_connect(
    addr: SocketAddr,
    session_id: i64,
    passwd: Vec<u8>,
    last_zxid: i64,
) -> (TcpStream, Option<(i32, i64, Vec<u8>)>) {
    common::raw::connect(addr, session_id, passwd, last_zxid, 200).await
}

async fn raw_request(
    s: &mut TcpStream,
    xid: i32,
    opcode: i32,
    body: &[u8],
) -> Option<(i32, i64, i32, Vec<u8>)> {
    common::raw::request(s, xid, opcode, body)
        .await
        .map(|r| (r.xid, r.zxid, r.err, r.body))
}

async fn is_closed(s: &mut TcpStream) -> bool {
    common::raw::is_closed(s).await
}

#[tokio::test]
async fn unknown_opcodes_get_unimplemented_then_close_and_bad_bodies_get_marshalling_error() {
    let s = Server::start("").await;
    let (mut c, hello) = raw_connect(s.addr, 0, vec![0; 16], 0).await;
    let (to, sid, pw) = hello.unwrap();
    assert_eq!(
        (to, pw.len()),
        (200, 16),
        "timeout clamped to 2 × tickTime; 16-byte password"
    );
    assert_eq!(sid >> 56, 1, "standalone server id in the top byte");
    let (x, _, err, _) = raw_request(&mut c, 5, op::GET_DATA, &[0, 0]).await.unwrap();
    assert_eq!(
        (x, err),
        (5, -5),
        "undecodable body: MarshallingError, stays open"
    );
    let (x, z, err, _) = raw_request(&mut c, 6, 999, &[]).await.unwrap();
    assert_eq!((x, z, err), (6, -1, -6));
    assert!(is_closed(&mut c).await, "closed after Unimplemented");
}

#[tokio::test]
async fn handshake_refusals_match_apache() {
    let s = Server::start("").await;
    // A client that has seen a later zxid is dropped without an answer.
    let (_c, hello) = raw_connect(s.addr, 0, vec![0; 16], 1 << 40).await;
    assert!(hello.is_none());
    // A wrong password gets the expired answer.
    let (_c1, hello) = raw_connect(s.addr, 0, vec![0; 16], 0).await;
    let (_, sid, _) = hello.unwrap();
    let (_c2, hello) = raw_connect(s.addr, sid, vec![9; 16], 0).await;
    let (to, sid2, pw) = hello.unwrap();
    assert_eq!((to, sid2, pw), (0, 0, vec![0; 16]));
}

#[tokio::test]
async fn an_oversize_or_negative_frame_closes_the_connection() {
    let s = Server::start("").await;
    let (mut c, _) = raw_connect(s.addr, 0, vec![0; 16], 0).await;
    c.write_all(&(2_000_000i32).to_be_bytes()).await.unwrap();
    assert!(is_closed(&mut c).await);
    let (mut c, _) = raw_connect(s.addr, 0, vec![0; 16], 0).await;
    c.write_all(&(-5i32).to_be_bytes()).await.unwrap();
    assert!(is_closed(&mut c).await);
    // A client writing more than jute.maxbuffer of data is refused the same way.
    let big = s.client().await;
    let r = big
        .create("/big", &vec![0u8; 1_100_000], &persistent())
        .await;
    assert!(r.is_err());
}

async fn an_expired_session_loses_its_ephemerals_on(s: Server) {
    let (mut c, hello) = raw_connect(s.addr, 0, vec![0; 16], 0).await;
    let (_, sid, _) = hello.unwrap();
    let mut w = Writer::new();
    w.string("/gone")
        .buffer(Some(b""))
        .acls(&[proto::Acl::world_all()])
        .int(1);
    let (_, _, err, _) = raw_request(&mut c, 1, op::CREATE, &w.buf).await.unwrap();
    assert_eq!(err, 0);
    // Go silent: no pings. 200 ms timeout + one 100 ms tick, then expiry.
    let watcher = s.client().await;
    let (_, _, deleted) = watcher.get_and_watch_data("/gone").await.unwrap();
    assert_eq!(
        timeout(deleted.changed()).await.event_type,
        EventType::NodeDeleted
    );
    assert!(
        is_closed(&mut c).await,
        "the expired session's connection is closed"
    );
    let (_c, hello) = raw_connect(s.addr, sid, vec![0; 16], 0).await;
    assert_eq!(
        hello.unwrap().1,
        0,
        "reconnecting to an expired session: expired answer"
    );
}

#[tokio::test]
async fn four_letter_words_answer_in_apaches_formats() {
    let s = Server::start("").await;
    let _c = s.client().await;
    let srvr = zkherd::probe::four_letter_word(s.addr, "srvr", Duration::from_secs(5))
        .await
        .unwrap();
    let parsed = zkherd::probe::parse_srvr(&srvr).unwrap();
    assert_eq!(parsed.mode, zkherd::probe::Mode::Standalone);
    assert!(parsed.version.starts_with("3.8."));
    let mntr = zkherd::probe::four_letter_word(s.addr, "mntr", Duration::from_secs(5))
        .await
        .unwrap();
    let m = zkherd::probe::parse_mntr(&mntr).unwrap();
    assert_eq!(m.server_state(), Some("standalone"));
    assert_eq!(m.number("global_sessions"), Some(1));
    let ruok = zkherd::probe::four_letter_word(s.addr, "ruok", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ruok, "imok");
    let cons = zkherd::probe::four_letter_word(s.addr, "cons", Duration::from_secs(5))
        .await
        .unwrap();
    let conns = zkherd::probe::parse_cons(&cons).unwrap();
    assert!(conns.iter().any(|c| c.session_id().is_some()), "{cons}");
    let envi = zkherd::probe::four_letter_word(s.addr, "envi", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(envi
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("zookeeper.version=3.8."));
}

#[tokio::test]
async fn the_whitelist_is_honoured() {
    let s = Server::start("4lw.commands.whitelist=srvr").await;
    let r = zkherd::probe::four_letter_word(s.addr, "mntr", Duration::from_secs(5)).await;
    assert!(
        matches!(r, Err(zkherd::probe::ProbeError::NotWhitelisted { .. })),
        "{r:?}"
    );
}

async fn ttl_nodes_and_containers_are_reaped_when_extended_types_are_on_on(s: Server) {
    let c = s.client().await;
    let ttl = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_millis(200));
    let (stat, _) = c.create("/ttl", b"", &ttl).await.unwrap();
    assert_eq!(stat.ephemeral_owner, 0, "clients see 0 for a TTL node");
    let cont = CreateMode::Container.with_acls(Acls::anyone_all());
    c.create("/cont", b"", &cont).await.unwrap();
    c.create("/cont/child", b"", &persistent()).await.unwrap();
    c.delete("/cont/child", None).await.unwrap();
    let gone = async {
        loop {
            let ttl_gone = c.check_stat("/ttl").await.unwrap().is_none();
            let cont_gone = c.check_stat("/cont").await.unwrap().is_none();
            if ttl_gone && cont_gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(gone).await;
}

#[tokio::test]
async fn ttl_creates_are_unimplemented_when_extended_types_are_off() {
    let s = Server::start("").await;
    let c = s.client().await;
    let ttl = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_millis(200));
    assert!(c.create("/ttl", b"", &ttl).await.is_err());
    assert_eq!(c.check_stat("/ttl").await.unwrap(), None);
}

#[tokio::test]
async fn max_client_cnxns_limits_connections_per_ip() {
    let s = Server::start("maxClientCnxns=2").await;
    let _a = s.client().await;
    let _b = s.client().await;
    let (mut third, hello) = common::raw::connect(s.addr, 0, vec![0; 16], 0, 30000).await;
    assert!(
        hello.is_none(),
        "the third connection from 127.0.0.1 is dropped"
    );
    assert!(common::raw::is_closed(&mut third).await);
    drop(_a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_fourth, hello) = common::raw::connect(s.addr, 0, vec![0; 16], 0, 30000).await;
    assert!(
        hello.is_some(),
        "a slot freed by a closed connection can be used again"
    );
}

#[tokio::test]
async fn create_get_set_delete_follow_zookeepers_stat_rules() {
    create_get_set_delete_follow_zookeepers_stat_rules_on(Server::start("").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_set_delete_follow_zookeepers_stat_rules_on_a_follower_of_three() {
    create_get_set_delete_follow_zookeepers_stat_rules_on(Server::ensemble("").await).await;
}

#[tokio::test]
async fn sequential_names_are_ten_digits_of_the_parents_creation_count() {
    sequential_names_are_ten_digits_of_the_parents_creation_count_on(Server::start("").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_names_are_ten_digits_of_the_parents_creation_count_on_a_follower_of_three() {
    sequential_names_are_ten_digits_of_the_parents_creation_count_on(Server::ensemble("").await)
        .await;
}

#[tokio::test]
async fn ephemerals_belong_to_their_session_and_vanish_when_it_closes() {
    ephemerals_belong_to_their_session_and_vanish_when_it_closes_on(Server::start("").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_belong_to_their_session_and_vanish_when_it_closes_on_a_follower_of_three() {
    ephemerals_belong_to_their_session_and_vanish_when_it_closes_on(Server::ensemble("").await)
        .await;
}

#[tokio::test]
async fn every_watch_kind_fires_as_zookeeper_fires_it() {
    every_watch_kind_fires_as_zookeeper_fires_it_on(Server::start("").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watch_kind_fires_as_zookeeper_fires_it_on_a_follower_of_three() {
    every_watch_kind_fires_as_zookeeper_fires_it_on(Server::ensemble("").await).await;
}

#[tokio::test]
async fn multi_is_atomic_and_reports_the_failing_op() {
    multi_is_atomic_and_reports_the_failing_op_on(Server::start("").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_is_atomic_and_reports_the_failing_op_on_a_follower_of_three() {
    multi_is_atomic_and_reports_the_failing_op_on(Server::ensemble("").await).await;
}

#[tokio::test]
async fn digest_auth_and_acls_are_enforced() {
    digest_auth_and_acls_are_enforced_on(
        Server::start(
            "DigestAuthenticationProvider.superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=",
        )
        .await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_and_acls_are_enforced_on_a_follower_of_three() {
    digest_auth_and_acls_are_enforced_on(
        Server::ensemble(
            "DigestAuthenticationProvider.superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=",
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn special_nodes_and_counts_look_like_apache() {
    special_nodes_and_counts_look_like_apache_on(Server::start("").await, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_nodes_and_counts_look_like_apache_on_a_follower_of_three() {
    special_nodes_and_counts_look_like_apache_on(Server::ensemble("").await, true).await;
}

#[tokio::test]
async fn a_session_resumes_on_a_new_connection_and_keeps_its_ephemerals() {
    a_session_resumes_on_a_new_connection_and_keeps_its_ephemerals_on(Server::start("").await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumes_on_a_new_connection_and_keeps_its_ephemerals_on_a_follower_of_three() {
    a_session_resumes_on_a_new_connection_and_keeps_its_ephemerals_on(Server::ensemble("").await)
        .await;
}

#[tokio::test]
async fn an_expired_session_loses_its_ephemerals() {
    an_expired_session_loses_its_ephemerals_on(Server::start("").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_loses_its_ephemerals_on_a_follower_of_three() {
    an_expired_session_loses_its_ephemerals_on(Server::ensemble("").await).await;
}

#[tokio::test]
async fn ttl_nodes_and_containers_are_reaped_when_extended_types_are_on() {
    ttl_nodes_and_containers_are_reaped_when_extended_types_are_on_on(
        Server::start("extendedTypesEnabled=true\nznode.container.checkIntervalMs=50").await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_nodes_and_containers_are_reaped_when_extended_types_are_on_on_a_follower_of_three() {
    ttl_nodes_and_containers_are_reaped_when_extended_types_are_on_on(
        Server::ensemble("extendedTypesEnabled=true\nznode.container.checkIntervalMs=50").await,
    )
    .await;
}
