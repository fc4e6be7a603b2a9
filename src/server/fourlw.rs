//! Four-letter words on the client port, in Apache ZooKeeper 3.8's formats, honouring
//! `4lw.commands.whitelist`.

use std::net::SocketAddr;

use super::core::{Core, VERSION};

fn avg(total: u64, count: u64) -> String {
    if count == 0 {
        "0.0".into()
    } else {
        let v = total as f64 / count as f64;
        let s = format!("{:.4}", v);
        let s = s.trim_end_matches('0');
        if s.ends_with('.') {
            format!("{s}0")
        } else {
            s.to_string()
        }
    }
}

fn min(v: u64) -> u64 {
    if v == u64::MAX {
        0
    } else {
        v
    }
}

fn mode(core: &Core) -> &'static str {
    core.mode()
}

/// The reply to `cmd` (already known to be a four-letter word).
pub(super) fn answer(core: &Core, cmd: &str, remote: SocketAddr) -> String {
    if !core.cfg.allows(cmd) {
        return format!("{cmd} is not executed because it is not in the whitelist.\n");
    }
    let read_only = core.read_only_mode();
    if !core.serving() && !read_only && !matches!(cmd, "ruok" | "isro" | "conf" | "envi" | "dirs") {
        return "This ZooKeeper instance is not currently serving requests\n".into();
    }
    let (snap_dir, log_dir) = core.dirs();
    let s = &core.stats;
    let stats_block = |clients: Option<String>| {
        let mut out = format!("Zookeeper version: {VERSION}\n");
        if let Some(c) = clients {
            out.push_str("Clients:\n");
            out.push_str(&c);
            out.push('\n');
        }
        out.push_str(&format!(
            "Latency min/avg/max: {}/{}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: 0\nZxid: {:#x}\nMode: {}\nNode count: {}\n",
            min(s.lat_min),
            avg(s.lat_total, s.lat_count),
            s.lat_max,
            s.received,
            s.sent,
            core.conns.len() + 1,
            core.visible_zxid(),
            mode(core),
            core.state.node_count()
        ));
        out
    };
    match cmd {
        "ruok" => "imok".into(),
        "isro" => if read_only { "ro" } else { "rw" }.into(),
        "srvr" => stats_block(None),
        "stat" => {
            let mut clients = String::new();
            for c in core.conns.values() {
                clients.push_str(&format!(
                    " /{}[1](queued=0,recved={},sent={})\n",
                    c.remote, c.received, c.sent
                ));
            }
            clients.push_str(&format!(" /{remote}[0](queued=0,recved=1,sent=0)\n"));
            stats_block(Some(clients))
        }
        "cons" => {
            let mut out = String::new();
            for c in core.conns.values() {
                out.push_str(&format!(
                    " /{}[1](queued=0,recved={},sent={}",
                    c.remote, c.received, c.sent
                ));
                if let Some(sid) = c.session {
                    out.push_str(&format!(
                        ",sid={:#x},lop={},est={},to={}",
                        sid, c.last_op, c.established_ms, c.timeout_ms
                    ));
                    if c.last_cxid >= 0 {
                        out.push_str(&format!(",lcxid={:#x}", c.last_cxid));
                    }
                    out.push_str(&format!(
                        ",lzxid={:#x},lresp={},llat=0,minlat={},avglat={},maxlat={}",
                        c.last_zxid,
                        c.last_resp_ms,
                        min(c.lat_min),
                        c.lat_total.checked_div(c.lat_count).unwrap_or(0),
                        c.lat_max
                    ));
                }
                out.push_str(")\n");
            }
            out.push_str(&format!(" /{remote}[0](queued=0,recved=1,sent=0)\n\n"));
            out
        }
        "conf" => {
            let c = &core.cfg;
            let mut out = format!(
                "clientPort={}\nsecureClientPort=-1\ndataDir={}\ndataDirSize={}\ndataLogDir={}\ndataLogSize={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId={}\n",
                c.client_addr().port(),
                snap_dir.as_path().display(),
                dir_size(snap_dir.as_path()),
                log_dir.as_path().display(),
                dir_size(log_dir.as_path()),
                c.tick_time,
                c.max_client_cnxns,
                c.min_session_timeout,
                c.max_session_timeout,
                core.server_id
            );
            if !c.is_standalone() {
                out.push_str(&format!(
                    "initLimit={}\nsyncLimit={}\n",
                    c.init_limit, c.sync_limit
                ));
                // The committed dynamic config, as Apache prints its quorum verifier.
                let config = core
                    .state
                    .get("/zookeeper/config")
                    .and_then(|n| n.data.clone())
                    .unwrap_or_default();
                if !config.is_empty() {
                    out.push_str("membership: \n");
                    out.push_str(&String::from_utf8_lossy(&config));
                    out.push('\n');
                }
            }
            out
        }
        "envi" => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!(
                "Environment:\nzookeeper.version={VERSION}\nhost.name={}\njava.version=none (zkherd builtin server)\njava.vendor=zkherd\njava.home=\njava.class.path=\njava.library.path=\njava.io.tmpdir={}\njava.compiler=<NA>\nos.name=Linux\nos.arch={}\nos.version=\nuser.name={}\nuser.home={}\nuser.dir={}\nos.memory.free=0MB\nos.memory.max=0MB\nos.memory.total=0MB\n",
                host.trim(),
                std::env::temp_dir().display(),
                std::env::consts::ARCH,
                std::env::var("USER").unwrap_or_default(),
                std::env::var("HOME").unwrap_or_default(),
                std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
            )
        }
        "mntr" => monitor(core)
            .into_iter()
            .map(|(k, v)| format!("zk_{k}\t{v}\n"))
            .collect(),
        "wchs" => {
            let (conns, paths, total) = core.watches.summary();
            format!("{conns} connections watching {paths} paths\nTotal watches:{total}\n")
        }
        "dirs" => format!(
            "datadir_size: {}\nlogdir_size: {}\n",
            dir_size(snap_dir.as_path()),
            dir_size(log_dir.as_path())
        ),
        "crst" => "Connection stats reset.\n".into(),
        "srst" => "Server stats reset.\n".into(),
        "gtmk" | "stmk" => "0\n".into(),
        // Apache's digest history has one line per zxid; ours is the digest of the tree as it
        // is now (see `persist::digest`), which replicas at the same zxid must agree on.
        "hash" => format!(
            "{:x}: {}\n",
            core.state.last_zxid,
            super::persist::digest(&core.state)
        ),
        "dump" => {
            let mut out = format!(
                "SessionTracker dump:\nGlobal Sessions({}):\n",
                core.live.len()
            );
            for (id, l) in &core.live {
                out.push_str(&format!("{id:#x}\t{}ms\n", l.timeout_ms));
            }
            out.push_str(&format!(
                "ephemeral nodes dump:\nSessions with Ephemerals ({}):\n",
                core.state.ephemerals.len()
            ));
            for (id, paths) in &core.state.ephemerals {
                out.push_str(&format!("{id:#x}:\n"));
                for p in paths {
                    out.push_str(&format!("\t{p}\n"));
                }
            }
            out
        }
        other => format!("{other} is not executed because it is not in the whitelist.\n"),
    }
}

/// `mntr`'s figures in its order (the AdminServer's `monitor` and `/metrics` use them too).
pub(super) fn monitor(core: &Core) -> Vec<(&'static str, String)> {
    let s = &core.stats;
    let st = &core.state;
    let ephemerals: usize = st.ephemerals.values().map(|s| s.len()).sum();
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    let lines: Vec<(&str, String)> = vec![
        ("version", VERSION.to_string()),
        ("server_state", mode(core).to_string()),
        ("avg_latency", avg(s.lat_total, s.lat_count)),
        ("max_latency", s.lat_max.to_string()),
        ("min_latency", min(s.lat_min).to_string()),
        ("packets_received", s.received.to_string()),
        ("packets_sent", s.sent.to_string()),
        ("num_alive_connections", core.conns.len().to_string()),
        ("outstanding_requests", "0".into()),
        ("uptime", core.started.elapsed().as_millis().to_string()),
        ("znode_count", st.node_count().to_string()),
        ("watch_count", core.watches.count().to_string()),
        ("ephemerals_count", ephemerals.to_string()),
        (
            "approximate_data_size",
            st.approximate_data_size().to_string(),
        ),
        ("global_sessions", st.sessions.len().to_string()),
        ("local_sessions", "0".into()),
        ("open_file_descriptor_count", fds.to_string()),
        ("max_file_descriptor_count", max_fds().to_string()),
    ];
    let mut lines = lines;
    lines.push(("auth_failed_count", s.auth_failed.to_string()));
    lines.push(("last_client_response_size", s.resp_last.to_string()));
    lines.push(("max_client_response_size", s.resp_max.to_string()));
    lines.push(("min_client_response_size", s.resp_min.to_string()));
    if let Some(voters) = core.voter_count() {
        let peer = match mode(core) {
            "leader" => "leading - broadcast",
            "follower" => "following - broadcast",
            "observer" => "observing - broadcast",
            _ => "looking",
        };
        lines.push(("peer_state", peer.to_string()));
        lines.push(("quorum_size", voters.to_string()));
    }
    if let Some((learners, synced, synced_obs)) = core.followers() {
        lines.push(("learners", learners.to_string()));
        lines.push(("synced_followers", synced.to_string()));
        lines.push(("synced_observers", synced_obs.to_string()));
    }
    lines
}

pub(super) fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
