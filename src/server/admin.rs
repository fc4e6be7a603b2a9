//! The AdminServer and the Prometheus endpoint, shaped like Apache ZooKeeper 3.8's:
//! `GET /commands` lists the commands, `GET /commands/<name>` answers one as JSON (with
//! Apache's names, aliases and keys), and `GET /metrics` serves the `mntr` figures in the
//! Prometheus text format under the names Apache's PrometheusMetricsProvider uses.
//!
//! Both run only when zoo.cfg configures them (see [`super::config::HttpEndpoint`]). Answers
//! are computed by the core task, like four-letter words, so they see one consistent state.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::config::ZooCfg;
use super::conn::CoreMsg;
use super::core::{Core, VERSION};
use super::http::{self, Request, Response};
use super::ServerError;

/// Apache's command names, with their aliases (Commands.java).
const COMMANDS: &[(&str, &[&str])] = &[
    ("configuration", &["conf", "config"]),
    ("connections", &["cons"]),
    ("dirs", &[]),
    ("environment", &["env", "envi"]),
    ("is_read_only", &["isro"]),
    ("leader", &["lead"]),
    ("monitor", &["mntr"]),
    ("ruok", &[]),
    ("server_stats", &["srvr"]),
    ("stats", &["stat"]),
    ("watch_summary", &["wchs"]),
];

/// The primary name of a command or alias.
fn primary(name: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|(n, aliases)| *n == name || aliases.contains(&name))
        .map(|(n, _)| *n)
}

/// Bind the configured endpoints, so a port clash fails the start with the port named.
pub(super) async fn listen(
    cfg: &Arc<ZooCfg>,
    core: mpsc::Sender<CoreMsg>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ServerError> {
    let mut tasks = Vec::new();
    if let Some(e) = cfg.admin {
        let addr = cfg.http_addr(e);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        tracing::info!("AdminServer on http://{addr}{}", cfg.admin_command_url);
        let base = cfg.admin_command_url.trim_end_matches('/').to_string();
        let core = core.clone();
        tasks.push(tokio::spawn(http::serve(listener, move |req| {
            admin_route(req, base.clone(), core.clone())
        })));
    }
    if let Some(e) = cfg.metrics {
        let addr = cfg.http_addr(e);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        tracing::info!("Prometheus metrics on http://{addr}/metrics");
        tasks.push(tokio::spawn(http::serve(listener, move |req| {
            metrics_route(req, core.clone())
        })));
    }
    Ok(tasks)
}

async fn ask(core: &mpsc::Sender<CoreMsg>, cmd: &str) -> Option<Value> {
    let (reply, rx) = oneshot::channel();
    core.send(CoreMsg::Admin {
        cmd: cmd.to_string(),
        reply,
    })
    .await
    .ok()?;
    rx.await.ok()
}

async fn admin_route(req: Request, base: String, core: mpsc::Sender<CoreMsg>) -> Response {
    if req.method != "GET" && req.method != "POST" {
        return Response::error(405, "only GET and POST are served");
    }
    if req.path == base || req.path == format!("{base}/") {
        let mut page = String::new();
        for (name, _) in COMMANDS {
            page.push_str(&format!("<a href=\"{base}/{name}\">{name}</a>\n<br/>\n"));
        }
        return Response::text(200, "text/html", page);
    }
    let Some(name) = req.path.strip_prefix(&format!("{base}/")) else {
        return Response::error(404, format!("no such page; the commands are at {base}"));
    };
    // Apache answers an unknown command with 200 and an error field; so do we.
    let Some(cmd) = primary(name) else {
        return Response::json(
            200,
            &json!({ "command": name, "error": format!("Unknown command: {name}") }),
        );
    };
    match ask(&core, cmd).await {
        Some(v) => Response::json(200, &v),
        None => Response::error(503, "the server is shutting down"),
    }
}

async fn metrics_route(req: Request, core: mpsc::Sender<CoreMsg>) -> Response {
    if req.path != "/metrics" && req.path != "/" {
        return Response::error(404, "the metrics are at /metrics");
    }
    match ask(&core, "prometheus").await {
        Some(Value::String(text)) => {
            Response::text(200, "text/plain; version=0.0.4; charset=utf-8", text)
        }
        _ => Response::error(503, "the server is shutting down"),
    }
}

/// A `mntr` value as JSON: a number where it is one.
fn number_or_string(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = v.parse::<f64>() {
        return Value::from(f);
    }
    Value::from(v)
}

/// The answer to `cmd` (a primary name, or `prometheus` for the metrics text). Called on the
/// core task.
pub(super) fn answer(core: &Core, cmd: &str) -> Value {
    let mut out = Map::new();
    let stats = |core: &Core| -> Map<String, Value> {
        let s = &core.stats;
        let (snap, log) = core.dirs();
        let mut m = Map::new();
        m.insert("packets_sent".into(), s.sent.into());
        m.insert("packets_received".into(), s.received.into());
        m.insert(
            "uptime".into(),
            (core.started.elapsed().as_millis() as u64).into(),
        );
        m.insert("server_state".into(), core.mode().into());
        m.insert(
            "data_dir_size".into(),
            super::fourlw::dir_size(&snap).into(),
        );
        m.insert("log_dir_size".into(), super::fourlw::dir_size(&log).into());
        m.insert("last_processed_zxid".into(), core.visible_zxid().into());
        m.insert("outstanding_requests".into(), 0.into());
        let avg = if s.lat_count == 0 {
            0.0
        } else {
            s.lat_total as f64 / s.lat_count as f64
        };
        m.insert("avg_latency".into(), avg.into());
        m.insert("max_latency".into(), s.lat_max.into());
        let min = if s.lat_min == u64::MAX { 0 } else { s.lat_min };
        m.insert("min_latency".into(), min.into());
        m.insert(
            "num_alive_client_connections".into(),
            core.conns.len().into(),
        );
        m.insert("auth_failed_count".into(), s.auth_failed.into());
        m.insert(
            "fsync_threshold_exceed_count".into(),
            super::persist::SLOW_FSYNCS
                .load(std::sync::atomic::Ordering::Relaxed)
                .into(),
        );
        m.insert(
            "client_response_stats".into(),
            json!({
                "last_buffer_size": s.resp_last,
                "min_buffer_size": s.resp_min,
                "max_buffer_size": s.resp_max,
            }),
        );
        // Apache counts connections that fell back from mutual TLS and those with no auth
        // provider; without TLS on this server, neither can happen.
        m.insert("non_mtlslocal_conn_count".into(), 0.into());
        m.insert("non_mtlsremote_conn_count".into(), 0.into());
        m.insert("provider_null".into(), 0.into());
        m
    };
    let connections = |core: &Core| -> Vec<Value> {
        core.conns
            .values()
            .map(|c| {
                json!({
                    "remote_socket_address": c.remote.to_string(),
                    "interest_ops": 1,
                    "outstanding_requests": c.in_flight,
                    "packets_received": c.received,
                    "packets_sent": c.sent,
                    "session_id": c.session.unwrap_or(0),
                    "last_operation": c.last_op,
                    "established": c.established_ms,
                    "session_timeout": c.timeout_ms,
                    "last_cxid": c.last_cxid,
                    "last_zxid": c.last_zxid,
                    "last_response_time": c.last_resp_ms,
                    "min_latency": if c.lat_min == u64::MAX { 0 } else { c.lat_min },
                    "avg_latency": c.lat_total.checked_div(c.lat_count).unwrap_or(0),
                    "max_latency": c.lat_max,
                })
            })
            .collect()
    };
    match cmd {
        "ruok" => {}
        "is_read_only" => {
            out.insert("read_only".into(), core.read_only_mode().into());
        }
        "server_stats" | "stats" => {
            out.insert("version".into(), VERSION.into());
            out.insert("read_only".into(), core.read_only_mode().into());
            out.insert("server_stats".into(), Value::Object(stats(core)));
            out.insert("node_count".into(), core.state.node_count().into());
            if cmd == "stats" {
                out.insert("connections".into(), connections(core).into());
                out.insert("secure_connections".into(), Value::Array(vec![]));
            }
        }
        "connections" => {
            out.insert("connections".into(), connections(core).into());
            out.insert("secure_connections".into(), Value::Array(vec![]));
        }
        "monitor" => {
            for (k, v) in super::fourlw::monitor(core) {
                out.insert(k.into(), number_or_string(&v));
            }
        }
        "configuration" => {
            let c = &core.cfg;
            let (snap, log) = core.dirs();
            out.insert("client_port".into(), c.client_addr().port().into());
            out.insert("data_dir".into(), snap.display().to_string().into());
            out.insert("data_log_dir".into(), log.display().to_string().into());
            out.insert("tick_time".into(), c.tick_time.into());
            out.insert("max_client_cnxns".into(), c.max_client_cnxns.into());
            out.insert("min_session_timeout".into(), c.min_session_timeout.into());
            out.insert("max_session_timeout".into(), c.max_session_timeout.into());
            out.insert("server_id".into(), core.server_id.into());
            out.insert("client_port_listen_backlog".into(), (-1).into());
        }
        "dirs" => {
            let (snap, log) = core.dirs();
            out.insert("datadir_size".into(), super::fourlw::dir_size(&snap).into());
            out.insert("logdir_size".into(), super::fourlw::dir_size(&log).into());
        }
        "environment" => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            out.insert("zookeeper.version".into(), VERSION.into());
            out.insert("host.name".into(), host.trim().into());
            out.insert("os.name".into(), "Linux".into());
            out.insert("os.arch".into(), std::env::consts::ARCH.into());
            out.insert(
                "user.dir".into(),
                std::env::current_dir()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
                    .into(),
            );
        }
        "leader" => match core.leader_id() {
            Some(id) => {
                let ip = core
                    .cfg
                    .servers
                    .iter()
                    .find(|s| s.id == id)
                    .map(|s| s.host.clone());
                out.insert("is_leader".into(), (id == core.server_id).into());
                out.insert("leader_id".into(), id.into());
                out.insert("leader_ip".into(), ip.into());
            }
            // Apache's words for a standalone server or one without a leader.
            None => {
                out.insert("error".into(), "server is not initialized".into());
                out.insert("command".into(), "leader".into());
                return Value::Object(out);
            }
        },
        "watch_summary" => {
            let (conns, paths, total) = core.watches.summary();
            out.insert("num_connections".into(), conns.into());
            out.insert("num_paths".into(), paths.into());
            out.insert("num_total_watches".into(), total.into());
        }
        "prometheus" => return Value::String(prometheus(core)),
        _ => {
            out.insert("command".into(), cmd.into());
            out.insert("error".into(), format!("Unknown command: {cmd}").into());
            return Value::Object(out);
        }
    }
    out.insert("command".into(), cmd.into());
    out.insert("error".into(), Value::Null);
    Value::Object(out)
}

/// The Prometheus text exposition of the `mntr` figures, as Apache's PrometheusMetricsProvider
/// names them (no `zk_` prefix); the server state is a labelled gauge.
fn prometheus(core: &Core) -> String {
    let counters = ["packets_received", "packets_sent", "auth_failed_count"];
    let mut out = String::new();
    for (k, v) in super::fourlw::monitor(core) {
        match k {
            "version" => continue,
            "server_state" => {
                out.push_str("# HELP server_state Server state (1 for the state in the label)\n");
                out.push_str("# TYPE server_state gauge\n");
                out.push_str(&format!("server_state{{state=\"{v}\"}} 1.0\n"));
                continue;
            }
            _ => {}
        }
        let Ok(value) = v.parse::<f64>() else {
            continue;
        };
        let kind = if counters.contains(&k) {
            "counter"
        } else {
            "gauge"
        };
        out.push_str(&format!("# HELP {k} {}\n", k.replace('_', " ")));
        out.push_str(&format!("# TYPE {k} {kind}\n"));
        out.push_str(&format!("{k} {value:?}\n"));
    }
    if let Some(id) = core.leader_id() {
        out.push_str("# HELP leader_id The server id of the leader this member follows\n");
        out.push_str("# TYPE leader_id gauge\n");
        out.push_str(&format!("leader_id {:?}\n", id as f64));
    }
    out
}
