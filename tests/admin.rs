//! The HTTP AdminServer and the Prometheus endpoint of builtin nodes: Apache's URLs, names and
//! JSON keys, checked against a real Apache ensemble where one is installed; `/metrics`
//! scraped by a Prometheus text parser; off unless configured.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// `GET path` on 127.0.0.1:port: the status code and the body. Bounded by socket timeouts.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to the HTTP port 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read from 127.0.0.1:{port}{path}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response from :{port}{path}: {text:?}"));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line from :{port}{path}: {head:?}"));
    // Jetty may answer chunked: undo it.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        zkherd::probe::dechunk(body)
    } else {
        body.to_string()
    };
    (code, body)
}

fn command(port: u16, name: &str) -> Value {
    let (code, body) = http_get(port, &format!("/commands/{name}"));
    assert_eq!(code, 200, "/commands/{name} on :{port}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/commands/{name}: {e}: {body}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// A cluster whose zkherd.toml turns the AdminServer and the metrics endpoint on, on port
/// ranges found free. Returns the cluster and the first node's admin and metrics ports.
fn cluster_with_http(nodes: u16, backend: &str) -> (Cluster, u16, u16) {
    let c = Cluster::new(nodes);
    // Another free triple: its first two ranges serve as the admin and metrics ports.
    let http = free_base_port(nodes);
    let (admin, metrics) = (http, http + 700);
    std::fs::write(
        c.tmp.path().join("zkherd.toml"),
        format!(
            "[cluster]\nnodes = {nodes}\nbackend = \"{backend}\"\n\n[ports]\nclient = {}\nquorum = {}\n\
             election = {}\nadmin = {admin}\n{}",
            c.base,
            c.base + 700,
            c.base + 1700,
            if backend == "builtin" {
                format!("metrics = {metrics}\n")
            } else {
                // Debian ships no Prometheus provider jar: Apache runs without metrics.
                String::new()
            }
        ),
    )
    .unwrap();
    let up = c.run(&["up", "-d", "--wait", "120"], 150);
    assert!(up.status.success(), "up: {}{}", stdout(&up), stderr(&up));
    (c, admin, metrics)
}

const COMMANDS: [&str; 11] = [
    "stats",
    "monitor",
    "configuration",
    "connections",
    "leader",
    "ruok",
    "dirs",
    "watch_summary",
    "environment",
    "is_read_only",
    "server_stats",
];

#[test]
fn admin_server_and_metrics_on_builtin() {
    let (c, admin, metrics) = cluster_with_http(3, "builtin");
    let (status, _) = c.status_json();
    let leader = status["leader"].as_u64().expect("a leader") as u16;

    // A session held open and some znodes, so the counters have something to count.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let zk = zookeeper_client::Client::connect(&c.connect_to(1))
            .await
            .unwrap();
        for i in 0..5 {
            zk.create(
                &format!("/m{i}"),
                b"0123456789",
                &zookeeper_client::CreateMode::Persistent
                    .with_acls(zookeeper_client::Acls::anyone_all()),
            )
            .await
            .unwrap();
        }
        let (_, _, w) = zk.get_and_watch_data("/m0").await.unwrap();
        (zk, w)
    });

    for node in 1..=3u16 {
        let port = admin + node - 1;
        let (code, listing) = http_get(port, "/commands");
        assert_eq!(code, 200);
        for name in COMMANDS {
            assert!(
                listing.contains(&format!("/commands/{name}")),
                "/commands on node {node} does not list {name}: {listing}"
            );
        }
        let l = command(port, "leader");
        assert_eq!(l["command"], "leader");
        assert_eq!(l["error"], Value::Null);
        assert_eq!(l["leader_id"], leader, "node {node}: {l}");
        assert_eq!(l["is_leader"], node == leader, "node {node}: {l}");
        assert_eq!(l["leader_ip"], "127.0.0.1");

        let ruok = command(port, "ruok");
        assert_eq!(ruok, serde_json::json!({"command": "ruok", "error": null}));

        // Aliases answer the same command.
        assert_eq!(command(port, "mntr")["command"], "monitor");
        assert_eq!(command(port, "srvr")["command"], "server_stats");
        assert_eq!(command(port, "isro")["read_only"], false);

        let m = command(port, "monitor");
        let expect_state = if node == leader { "leader" } else { "follower" };
        assert_eq!(m["server_state"], expect_state, "node {node}: {m}");
        assert!(m["znode_count"].as_u64().unwrap() >= 5 + 4, "{m}");

        let conf = command(port, "conf");
        assert_eq!(conf["client_port"], c.base + node - 1, "{conf}");
        assert_eq!(conf["server_id"], node, "{conf}");

        // The Prometheus text, parsed by a real parser; the values are mntr's.
        let (code, text) = http_get(metrics + node - 1, "/metrics");
        assert_eq!(code, 200, "{text}");
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .unwrap_or_else(|e| panic!("node {node}: /metrics does not parse: {e}\n{text}"));
        let value = |name: &str| -> f64 {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                })
                .unwrap_or_else(|| panic!("node {node}: no {name} in /metrics:\n{text}"))
        };
        let m = command(port, "monitor");
        for name in ["znode_count", "ephemerals_count", "approximate_data_size"] {
            assert_eq!(
                value(name),
                m[name].as_f64().unwrap(),
                "node {node}: {name} differs between /metrics and mntr"
            );
        }
        // Counted as a counter; node 1 serves our session, so it has counted packets.
        let received = &scrape
            .samples
            .iter()
            .find(|s| s.metric == "packets_received")
            .unwrap()
            .value;
        assert!(
            matches!(received, prometheus_parse::Value::Counter(v) if node != 1 || *v > 0.0),
            "node {node} packets_received: {received:?}\n{text}"
        );
        let state = scrape
            .samples
            .iter()
            .find(|s| s.metric == "server_state")
            .expect("server_state");
        assert_eq!(state.labels.get("state"), Some(expect_state), "{text}");
        assert_eq!(value("leader_id"), leader as f64);
        if node == leader {
            assert_eq!(value("synced_followers"), 2.0, "{text}");
        }
        if node == 1 {
            // This node holds our session and its watch.
            assert_eq!(value("num_alive_connections"), 1.0, "{text}");
            assert_eq!(value("watch_count"), 1.0, "{text}");
            let cons = command(port, "cons");
            assert_eq!(cons["connections"].as_array().unwrap().len(), 1, "{cons}");
            let w = command(port, "wchs");
            assert_eq!(w["num_paths"], 1, "{w}");
        }

        // Unknown URLs: zkherd answers like Jetty (404) and the command servlet (an error).
        assert_eq!(http_get(port, "/nothing").0, 404);
        let bogus = command(port, "bogus");
        assert_ne!(bogus["error"], Value::Null, "{bogus}");
    }
    drop(client);
    drop(rt);

    // The ports are those the spec gave.
    let zoo = std::fs::read_to_string(c.dir().join("node1/conf/zoo.cfg")).unwrap();
    assert!(zoo.contains(&format!("admin.serverPort={admin}")), "{zoo}");
    assert!(
        zoo.contains(&format!("metricsProvider.httpPort={metrics}")),
        "{zoo}"
    );
    assert!(
        zoo.contains("metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"),
        "{zoo}"
    );
}

/// Off unless configured, as Apache: a plain cluster listens on no HTTP port.
#[test]
fn admin_and_metrics_off_by_default() {
    let c = Cluster::new(1);
    let up = c.up(&["--backend", "builtin"]);
    assert!(up.status.success(), "{}", stderr(&up));
    let zoo = std::fs::read_to_string(c.dir().join("node1/conf/zoo.cfg")).unwrap();
    assert!(zoo.contains("admin.enableServer=false"), "{zoo}");
    assert!(!zoo.contains("metricsProvider"), "{zoo}");
    let pid = c.status_json().0["nodes"][0]["pid"].as_i64().unwrap();
    // The node listens on its client port and nothing else.
    let listening = listening_ports(pid as i32);
    assert_eq!(listening, vec![c.base], "node 1 listens on {listening:?}");
}

/// The TCP ports a process listens on, from /proc (its socket inodes against /proc/net/tcp).
fn listening_ports(pid: i32) -> Vec<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let s = l.to_string_lossy().into_owned();
            s.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(t) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in t.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = u16::from_str_radix(f[1].rsplit(':').next().unwrap(), 16).unwrap();
                ports.push(port);
            }
        }
    }
    ports.sort();
    ports
}

/// The same commands on Apache's AdminServer and ours: the same names, and our JSON keys are
/// Apache's (a subset where Apache reports JVM internals we do not have).
#[test]
fn admin_keys_match_apache() {
    if !apache_available("admin_keys_match_apache") {
        return;
    }
    let (apache, apache_admin, _) = cluster_with_http(3, "apache");
    let (ours, our_admin, _) = cluster_with_http(3, "builtin");
    let a_leader = apache.status_json().0["leader"].as_u64().unwrap() as u16;
    let o_leader = ours.status_json().0["leader"].as_u64().unwrap() as u16;
    // A follower and the leader of each.
    for (a_node, o_node) in [(a_leader, o_leader), (a_leader % 3 + 1, o_leader % 3 + 1)] {
        let (ap, op) = (apache_admin + a_node - 1, our_admin + o_node - 1);
        let (_, listing) = http_get(ap, "/commands");
        for name in COMMANDS {
            assert!(
                listing.contains(&format!("/commands/{name}")),
                "Apache lacks {name}?"
            );
        }
        for name in COMMANDS {
            let (a, o) = (command(ap, name), command(op, name));
            assert_eq!(a["command"], o["command"], "{name}");
            assert_eq!(a["error"], o["error"], "{name}: Apache {a}, ours {o}");
            let (ak, ok) = (keys(&a), keys(&o));
            let extra: Vec<_> = ok.difference(&ak).collect();
            assert!(
                extra.is_empty(),
                "{name}: keys Apache does not have: {extra:?}\nApache: {a}\nours: {o}"
            );
            // Where Apache's answer has no JVM or platform specifics, ours has every key.
            if [
                "leader",
                "ruok",
                "dirs",
                "watch_summary",
                "is_read_only",
                "connections",
            ]
            .contains(&name)
            {
                assert_eq!(ak, ok, "{name}: Apache {a}\nours {o}");
            }
            if name == "stats" || name == "server_stats" {
                let (ak, ok) = (keys(&a["server_stats"]), keys(&o["server_stats"]));
                let missing: Vec<_> = ak.difference(&ok).collect();
                let extra: Vec<_> = ok.difference(&ak).collect();
                assert!(extra.is_empty(), "{name}.server_stats extra {extra:?}");
                assert!(missing.len() <= 3, "{name}.server_stats lacks {missing:?}");
            }
        }
        // Same answer to a command neither has.
        let (a, o) = (command(ap, "bogus"), command(op, "bogus"));
        assert_eq!(a, o, "unknown command");
    }
}

#[test]
fn http_ports_in_use_are_refused_clearly() {
    // A port taken by someone else: `up` names it instead of starting a node that cannot serve.
    let c = Cluster::new(1);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        c.tmp.path().join("zkherd.toml"),
        format!(
            "[ports]\nclient = {}\nquorum = {}\nelection = {}\nadmin = {port}\n",
            c.base,
            c.base + 700,
            c.base + 1700
        ),
    )
    .unwrap();
    let up = c.run(&["up", "-d", "-n", "1", "--wait", "30"], 60);
    assert!(!up.status.success(), "{}", stdout(&up));
    let err = stderr(&up);
    assert!(err.contains(&port.to_string()), "{err}");
}

/// The AdminServer probe gives what the four-letter words give, on both backends.
#[test]
fn admin_probe_matches_four_letter_words() {
    let mut backends = vec!["builtin"];
    if apache_available("admin_probe_matches_four_letter_words") {
        backends.push("apache");
    }
    for backend in backends {
        let (c, admin, _) = cluster_with_http(3, backend);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for node in 1..=3u16 {
            let (by_4lw, by_admin) = rt.block_on(async {
                let t = Duration::from_secs(5);
                let client: std::net::SocketAddr = c.connect_to(node).parse().unwrap();
                let admin: std::net::SocketAddr =
                    format!("127.0.0.1:{}", admin + node - 1).parse().unwrap();
                (
                    zkherd::probe::probe_node(client, t).await,
                    zkherd::probe::probe_node_admin(admin, t).await,
                )
            });
            let (a, b) = (
                by_4lw.srvr.unwrap(),
                by_admin.srvr.unwrap_or_else(|| {
                    panic!(
                        "{backend} node {node}: admin probe failed: {:?}",
                        by_admin.error
                    )
                }),
            );
            assert_eq!(a.mode, b.mode, "{backend} node {node}");
            // Probed one after the other: a session closing in between may take a zxid.
            assert_eq!(a.epoch(), b.epoch(), "{backend} node {node}");
            assert!(
                b.zxid >= a.zxid && b.zxid - a.zxid <= 2,
                "{backend} node {node}: zxid {:#x} by 4lw, {:#x} by admin",
                a.zxid,
                b.zxid
            );
            assert_eq!(a.node_count, b.node_count, "{backend} node {node}");
            assert_eq!(a.version, b.version, "{backend} node {node}");
            assert_eq!(
                by_4lw.mntr.as_ref().and_then(|m| m.synced_followers()),
                by_admin.mntr.as_ref().and_then(|m| m.synced_followers()),
                "{backend} node {node}"
            );
        }
    }
}

/// `status` of a node that answers no four-letter word (its whitelist edited by hand) comes
/// from its AdminServer.
#[test]
fn status_falls_back_to_the_admin_server() {
    let (c, _, _) = cluster_with_http(3, "builtin");
    let cfg = c.dir().join("node1/conf/zoo.cfg");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let edited: String = text
        .lines()
        .map(|l| {
            if l.starts_with("4lw.commands.whitelist=") {
                "4lw.commands.whitelist=ruok".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(text, edited, "no whitelist line in {}", cfg.display());
    std::fs::write(&cfg, edited + "\n").unwrap();
    let r = c.run(&["restart", "1"], 60);
    assert!(r.status.success(), "{}{}", stdout(&r), stderr(&r));
    let srvr = run_with_timeout(
        std::process::Command::new(BIN).args(["shell", "-server", &c.connect_to(1), "ls", "/"]),
        Duration::from_secs(30),
    );
    assert!(srvr.status.success(), "node 1 serves clients");
    let v = eventually(Duration::from_secs(30), || {
        let (v, code) = c.status_json();
        (code == 0 && v["nodes"][0]["zxid"].is_string()).then_some(v)
    })
    .unwrap_or_else(|| panic!("status never healthy: {}", c.status_json().0));
    let n1 = &v["nodes"][0];
    assert!(
        ["leader", "follower"].contains(&n1["role"].as_str().unwrap()),
        "{n1}"
    );
    // And the four-letter word really is refused.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let p = rt.block_on(zkherd::probe::probe_node(
        c.connect_to(1).parse().unwrap(),
        Duration::from_secs(5),
    ));
    assert!(p.srvr.is_none(), "srvr still answers: {p:?}");
    assert!(p.error.unwrap().contains("whitelist"));
}

/// Hostile HTTP clients on a node's AdminServer: garbage, an endless head, a huge announced
/// body, hundreds of idle connections and a slow drip. Each gets a 4xx or is dropped; the
/// node keeps answering HTTP and its clients.
#[test]
fn admin_port_survives_hostile_clients() {
    let (c, admin, _) = cluster_with_http(1, "builtin");
    let raw = |bytes: &[u8]| -> String {
        let mut s = TcpStream::connect(("127.0.0.1", admin)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let status = |reply: &str| reply.split_whitespace().nth(1).unwrap_or("").to_string();
    assert_eq!(status(&raw(b"\x00\x01\xff garbage\r\n\r\n")), "400");
    assert_eq!(status(&raw(b"GET\r\n\r\n")), "400");
    let endless = format!("GET /{} HTTP/1.1\r\n", "a".repeat(40_000));
    assert_eq!(status(&raw(endless.as_bytes())), "413");
    assert_eq!(
        status(&raw(
            b"POST /commands/ruok HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"
        )),
        "413"
    );
    assert_eq!(
        status(&raw(
            b"GET /commands HTTP/1.1\r\nContent-Length: -4\r\n\r\n"
        )),
        "400"
    );

    // 300 idle connections and a slow drip, held open while others are served.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(("127.0.0.1", admin)).unwrap())
        .collect();
    let mut drip = TcpStream::connect(("127.0.0.1", admin)).unwrap();
    drip.write_all(b"GET /comm").unwrap();
    for _ in 0..20 {
        assert_eq!(command(admin, "ruok")["error"], Value::Null);
    }
    let o = c.run(&["shell", "ls", "/"], 30);
    assert!(
        o.status.success(),
        "the client port stopped serving: {}",
        stderr(&o)
    );
    drop(idle);
    // The drip finishes its request late and is still answered (it is under the 10 s limit).
    drip.write_all(b"ands/ruok HTTP/1.1\r\n\r\n").unwrap();
    drip.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut out = String::new();
    let _ = drip.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(command(admin, "ruok")["error"], Value::Null);
}
