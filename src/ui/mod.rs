//! The dashboard: `zkherd ui`, or `zkherd up --ui` (then the supervisor serves it). One HTML
//! page (templates/ui.html, embedded) that talks only to a JSON API on the same loopback port:
//!
//! - `GET  /api/status`            the `status --json` document, probed now
//! - `GET  /api/timeline`          leader/epoch/role changes seen since the dashboard started
//! - `GET  /api/logs?node=N&lines=K`  the end of a node's log
//! - `GET  /api/znode?path=P`      data, stat and children of a znode
//! - `POST /api/znode/create|set|delete`  `{"path", "data", "version", "recursive"}`
//! - `POST /api/fault`             `{"action": "kill|stop|start|restart|pause|resume",
//!   "node": N}` or `{"action", "leader": true}`, through the supervisor's control socket
//! - `GET  /api/links`, `POST /api/net` `{"isolate": N}` or `{"heal": true}`: link faults, on a
//!   cluster with link proxies (`up --net faults`)
//!
//! It binds 127.0.0.1 only. Every request must name that address (or `localhost`) in `Host`
//! (a page elsewhere cannot reach it through DNS rebinding), and every POST must carry
//! `X-Zkherd-Ui: 1` (a header a cross-site form cannot set), so only this page changes things.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

use crate::ports::PortPlan;
use crate::server::ensemble::AbortOnDrop;
use crate::server::http::{self, Request, Response};
use crate::spec::EnsembleSpec;
use crate::status::{self, EnsembleStatus};
use crate::supervisor::control::{self, NodeAction, Target};
use crate::supervisor::netfault::{describe, LinkInfo};
use crate::supervisor::ClusterFiles;

/// `zkherd ui`'s port when none is given.
pub const DEFAULT_PORT: u16 = 8181;
/// The file in the cluster directory that holds the dashboard's URL while it runs.
pub const URL_FILE: &str = "ui.url";

const PAGE: &str = include_str!("../../templates/ui.html");
/// Children listed per znode (by name); the rest are counted.
const CHILDREN_SHOWN: usize = 500;
/// Timeline entries kept (the oldest go first).
const TIMELINE_MAX: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error(
        "cannot serve the dashboard on 127.0.0.1:{port}: {source}; choose another port \
         (`--ui PORT`, `zkherd ui --port PORT`, 0 for any free one)"
    )]
    Bind { port: u16, source: std::io::Error },
}

/// Bind the dashboard's listener on 127.0.0.1:`port` (0: any free port).
pub fn bind(port: u16) -> Result<tokio::net::TcpListener, UiError> {
    let bind_err = |source| UiError::Bind { port, source };
    let std = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(bind_err)?;
    std.set_nonblocking(true).map_err(bind_err)?;
    tokio::net::TcpListener::from_std(std).map_err(bind_err)
}

#[derive(Debug, Clone, Serialize)]
struct Change {
    /// Unix time, milliseconds.
    at_ms: u64,
    leader: Option<u16>,
    epoch: Option<u32>,
    verdict: String,
    roles: BTreeMap<u16, String>,
    /// What changed, in words.
    what: String,
}

struct Ui {
    spec: EnsembleSpec,
    addr: SocketAddr,
    /// The sampler's latest `status --json` document: `/api/status` answers it instead of
    /// probing every node again for each page refresh.
    latest: Mutex<Option<Value>>,
    timeline: Mutex<VecDeque<Change>>,
    zk: tokio::sync::Mutex<Option<Client>>,
}

/// Serve the dashboard for `spec` on `listener` until the task is dropped. Writes the URL to
/// `<cluster dir>/ui.url` (removed again by `down`).
pub async fn serve(listener: tokio::net::TcpListener, spec: EnsembleSpec) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let _ = std::fs::write(spec.dir.join(URL_FILE), format!("{}\n", url(addr)));
    let ui = Arc::new(Ui {
        spec,
        addr,
        latest: Mutex::new(None),
        timeline: Mutex::new(VecDeque::new()),
        zk: tokio::sync::Mutex::new(None),
    });
    let sampler = {
        let ui = ui.clone();
        tokio::spawn(async move {
            loop {
                let s = ui.status().await;
                ui.record(&s);
                if let Ok(v) = serde_json::to_value(&s) {
                    *ui.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let _sampler = AbortOnDrop(sampler);
    http::serve(listener, move |req| {
        let ui = ui.clone();
        async move { ui.handle(req).await }
    })
    .await;
}

pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

fn bad(message: impl std::fmt::Display) -> Response {
    Response::error(400, message)
}

impl Ui {
    /// The cluster's spec as it is now (`scale` and `apply` change it while we serve).
    fn spec(&self) -> EnsembleSpec {
        crate::supervisor::load_effective_spec(&self.spec.dir).unwrap_or_else(|| self.spec.clone())
    }

    async fn status(&self) -> EnsembleStatus {
        let spec = self.spec();
        let files = ClusterFiles::new(&spec.dir);
        let jobs = match control::request(
            &files.socket,
            &control::Request::Status,
            Duration::from_secs(3),
        )
        .await
        {
            Ok(control::Response::Status { pid, jobs }) => Some((pid, jobs)),
            _ => None,
        };
        status::collect(&spec, jobs, Duration::from_secs(1)).await
    }

    /// Add a timeline entry when the leader, the epoch or a role changed.
    fn record(&self, s: &EnsembleStatus) {
        let roles: BTreeMap<u16, String> = s
            .nodes
            .iter()
            .map(|n| (n.id, n.role.as_str().to_string()))
            .collect();
        let mut t = self.timeline.lock().unwrap_or_else(|p| p.into_inner());
        let what = match t.back() {
            None => match s.leader {
                Some(l) => format!("dashboard started; node {l} leads"),
                None => "dashboard started; no leader".to_string(),
            },
            Some(prev) => {
                if prev.leader == s.leader && prev.epoch == s.epoch && prev.roles == roles {
                    return;
                }
                let mut parts = Vec::new();
                if prev.leader != s.leader {
                    parts.push(match s.leader {
                        Some(l) => format!("node {l} leads"),
                        None => "no leader".to_string(),
                    });
                }
                if prev.epoch != s.epoch {
                    if let Some(e) = s.epoch {
                        parts.push(format!("epoch {e}"));
                    }
                }
                for (id, role) in &roles {
                    if prev.roles.get(id) != Some(role) {
                        parts.push(format!("node {id} {role}"));
                    }
                }
                parts.join(", ")
            }
        };
        t.push_back(Change {
            at_ms: crate::supervisor::job::unix_ms(),
            leader: s.leader,
            epoch: s.epoch,
            verdict: s.verdict.as_str().to_string(),
            roles,
            what,
        });
        if t.len() > TIMELINE_MAX {
            t.pop_front();
        }
    }

    /// The request names this server (127.0.0.1:port or localhost:port) in `Host`.
    fn host_ok(&self, req: &Request) -> bool {
        let port = self.addr.port();
        match req.header("host") {
            Some(h) => h == format!("127.0.0.1:{port}") || h == format!("localhost:{port}"),
            None => false,
        }
    }

    async fn handle(&self, req: Request) -> Response {
        if !self.host_ok(&req) {
            return Response::error(
                403,
                format!(
                    "the dashboard answers requests for 127.0.0.1:{} only",
                    self.addr.port()
                ),
            );
        }
        if req.method == "POST" && req.header("x-zkherd-ui") != Some("1") {
            return Response::error(403, "changes need the header X-Zkherd-Ui: 1");
        }
        let body = || -> Result<Value, Response> {
            serde_json::from_slice(&req.body).map_err(|e| bad(format!("the body is not JSON: {e}")))
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/") | ("GET", "/index.html") => {
                Response::text(200, "text/html; charset=utf-8", PAGE)
            }
            ("GET", "/api/status") => {
                let sampled = self
                    .latest
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                // Before the first sample: probe now.
                let v = match sampled {
                    Some(v) => Ok(v),
                    None => serde_json::to_value(self.status().await),
                };
                match v {
                    Ok(v) => Response::json(200, &v),
                    Err(e) => Response::error(500, e),
                }
            }
            ("GET", "/api/timeline") => {
                let t = self
                    .timeline
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                Response::json(200, &json!({ "entries": t }))
            }
            ("GET", "/api/logs") => self.logs(&req),
            ("GET", "/api/znode") => match req.param("path") {
                Some(p) => self.znode(p).await,
                None => bad("GET /api/znode needs ?path=/some/znode"),
            },
            ("POST", "/api/znode/create") => match body() {
                Ok(b) => self.mutate("create", &b).await,
                Err(r) => r,
            },
            ("POST", "/api/znode/set") => match body() {
                Ok(b) => self.mutate("set", &b).await,
                Err(r) => r,
            },
            ("POST", "/api/znode/delete") => match body() {
                Ok(b) => self.mutate("delete", &b).await,
                Err(r) => r,
            },
            ("POST", "/api/fault") => match body() {
                Ok(b) => self.fault(&b).await,
                Err(r) => r,
            },
            ("GET", "/api/links") => self.links(Vec::new(), false).await,
            ("POST", "/api/net") => match body() {
                Ok(b) => self.net(&b).await,
                Err(r) => r,
            },
            (_, p) if p == "/" || p.starts_with("/api/") => {
                Response::error(405, format!("{} {p} is not supported", req.method))
            }
            (_, p) => Response::error(404, format!("no page {p}")),
        }
    }

    fn logs(&self, req: &Request) -> Response {
        let spec = self.spec();
        let plan = PortPlan::new(&spec);
        let nodes = plan.local_nodes(&spec);
        let id = match req
            .param("node")
            .map(|n| n.trim_start_matches("node").parse::<u16>())
        {
            Some(Ok(id)) => id,
            _ => return bad("GET /api/logs needs ?node=N"),
        };
        let lines = req
            .param("lines")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(200)
            .min(5000);
        let Some(n) = nodes.iter().find(|n| n.id == id) else {
            return Response::error(404, format!("there is no node {id} on this host"));
        };
        let layout = crate::render::NodeLayout::new(&spec.dir, n);
        let text = crate::supervisor::job::log_tail(&layout.log_file, lines);
        Response::json(
            200,
            &json!({
                "node": id,
                "file": layout.log_file.display().to_string(),
                "lines": text.lines().collect::<Vec<_>>(),
            }),
        )
    }

    /// A client on the cluster's connect string; a new one when the last one failed.
    async fn client(&self) -> Result<Client, Response> {
        let mut slot = self.zk.lock().await;
        if let Some(c) = slot.as_ref() {
            if !matches!(
                c.state(),
                zookeeper_client::SessionState::Closed
                    | zookeeper_client::SessionState::Expired
                    | zookeeper_client::SessionState::AuthFailed
            ) {
                return Ok(c.clone());
            }
        }
        let servers = PortPlan::new(&self.spec()).connect_string();
        let connect = Client::connector()
            .with_session_timeout(Duration::from_secs(30))
            .with_connection_timeout(Duration::from_secs(5))
            .connect(&servers);
        match tokio::time::timeout(Duration::from_secs(6), connect).await {
            Ok(Ok(c)) => {
                *slot = Some(c.clone());
                Ok(c)
            }
            Ok(Err(e)) => Err(Response::error(
                503,
                format!("cannot connect to {servers}: {e}; is a quorum up?"),
            )),
            Err(_) => Err(Response::error(
                503,
                format!("cannot connect to {servers} within 6 s; is a quorum up?"),
            )),
        }
    }

    /// Data, stat and children of `path`; each child with its own child count (so the page
    /// can draw the tree without a request per node), the first `CHILDREN_SHOWN` by name.
    async fn znode(&self, path: &str) -> Response {
        let zk = match self.client().await {
            Ok(c) => c,
            Err(r) => return r,
        };
        let read = async {
            let (data, stat) = zk.get_data(path).await?;
            let mut kids = zk.list_children(path).await?;
            kids.sort();
            let total = kids.len();
            kids.truncate(CHILDREN_SHOWN);
            let base = path.trim_end_matches('/');
            let paths: Vec<String> = kids.iter().map(|k| format!("{base}/{k}")).collect();
            let stats =
                futures_util::future::join_all(paths.iter().map(|p| zk.check_stat(p))).await;
            let children: Vec<Value> = kids
                .iter()
                .zip(stats)
                .map(|(k, st)| {
                    // Gone in between: shown without children.
                    let n = st.ok().flatten().map_or(0, |s| s.num_children);
                    json!({"name": k, "children": n})
                })
                .collect();
            Ok::<_, ZkError>((data, stat, children, total))
        };
        match tokio::time::timeout(Duration::from_secs(10), read).await {
            Err(_) => Response::error(504, format!("reading {path} took over 10 s")),
            Ok(Err(e)) => keeper_error(e, path),
            Ok(Ok((data, stat, children, total))) => {
                let mut v = json!({
                    "path": path,
                    "stat": crate::shell::format::stat_json(&stat),
                    "children": children,
                    "children_total": total,
                });
                crate::shell::format::put_data(&mut v, &data);
                Response::json(200, &v)
            }
        }
    }

    async fn mutate(&self, op: &str, b: &Value) -> Response {
        let Some(path) = b["path"].as_str() else {
            return bad(format!("POST /api/znode/{op} needs {{\"path\": \"/…\"}}"));
        };
        let data = b["data"].as_str().unwrap_or("").as_bytes().to_vec();
        let version = b["version"].as_i64().unwrap_or(-1) as i32;
        let zk = match self.client().await {
            Ok(c) => c,
            Err(r) => return r,
        };
        let work = async {
            let r: Result<Value, Response> = match op {
                "create" => {
                    let mode = if b["sequential"] == true {
                        CreateMode::PersistentSequential
                    } else {
                        CreateMode::Persistent
                    };
                    let acls = Acls::anyone_all();
                    let (stat, seq) = zk
                        .create(path, &data, &mode.with_acls(acls))
                        .await
                        .map_err(|e| keeper_error(e, path))?;
                    let created = if b["sequential"] == true {
                        format!("{path}{seq}")
                    } else {
                        path.to_string()
                    };
                    Ok(json!({"created": created, "stat": crate::shell::format::stat_json(&stat)}))
                }
                "set" => {
                    let expected = (version >= 0).then_some(version);
                    let stat = zk
                        .set_data(path, &data, expected)
                        .await
                        .map_err(|e| keeper_error(e, path))?;
                    Ok(json!({"path": path, "stat": crate::shell::format::stat_json(&stat)}))
                }
                _ => {
                    if b["recursive"] == true {
                        let n = crate::shell::tree::delete_all(&zk, path)
                            .await
                            .map_err(|f| {
                                let status = match f.kind.as_deref() {
                                    Some("NoNode") => 404,
                                    Some("NoAuth") => 403,
                                    _ => 409,
                                };
                                Response::json(
                                    status,
                                    &json!({"error": f.message, "kind": f.kind, "path": path}),
                                )
                            })?;
                        Ok(json!({"deleted": path, "count": n}))
                    } else {
                        let expected = (version >= 0).then_some(version);
                        zk.delete(path, expected)
                            .await
                            .map_err(|e| keeper_error(e, path))?;
                        Ok(json!({"deleted": path, "count": 1}))
                    }
                }
            };
            r
        };
        match tokio::time::timeout(Duration::from_secs(30), work).await {
            Err(_) => Response::error(504, format!("{op} {path} took over 30 s")),
            Ok(Err(r)) => r,
            Ok(Ok(v)) => Response::json(200, &v),
        }
    }

    async fn fault(&self, b: &Value) -> Response {
        let action = match b["action"].as_str() {
            Some("kill") => NodeAction::Kill,
            Some("stop") => NodeAction::Stop,
            Some("start") => NodeAction::Start,
            Some("restart") => NodeAction::Restart,
            Some("pause") => NodeAction::Pause,
            Some("resume") => NodeAction::Resume,
            other => {
                return bad(format!(
                    "unknown action {other:?}; one of kill, stop, start, restart, pause, resume"
                ))
            }
        };
        let target = if b["leader"] == true {
            Target::Leader
        } else {
            match b["node"].as_u64() {
                Some(n) if n > 0 && n <= u16::MAX as u64 => Target::Node(n as u16),
                _ => return bad("a fault needs {\"node\": N} or {\"leader\": true}"),
            }
        };
        let files = ClusterFiles::new(&self.spec.dir);
        let req = control::Request::Node { action, target };
        match control::request(&files.socket, &req, Duration::from_secs(60)).await {
            Ok(control::Response::Done { message }) => {
                Response::json(200, &json!({ "message": message }))
            }
            Ok(control::Response::Error { message }) => Response::error(409, message),
            Ok(other) => Response::error(502, format!("supervisor: unexpected answer {other:?}")),
            Err(e) => Response::error(503, e),
        }
    }
}

impl Ui {
    /// Change the link faults (`set`, after clearing all when `heal`) and answer those in
    /// force: `{"enabled", "links", "described"}`.
    async fn links(&self, set: Vec<LinkInfo>, heal: bool) -> Response {
        let spec = self.spec();
        if !spec.network.faults {
            return Response::json(
                200,
                &json!({"enabled": false, "links": [], "described": "no link proxies \
                         (start the cluster with `up --net faults` for network faults)"}),
            );
        }
        let files = ClusterFiles::new(&spec.dir);
        let req = control::Request::Net { set, heal };
        match control::request(&files.socket, &req, Duration::from_secs(10)).await {
            Ok(control::Response::Links { links }) => Response::json(
                200,
                &json!({"enabled": true, "described": describe(&links), "links": links}),
            ),
            Ok(control::Response::Error { message }) => Response::error(409, message),
            Ok(other) => Response::error(502, format!("supervisor: unexpected answer {other:?}")),
            Err(e) => Response::error(503, e),
        }
    }

    /// `{"isolate": N}`: cut every link to and from node N (delays and loss stay), as
    /// `zkherd isolate`; `{"heal": true}`: clear every link fault, as `zkherd heal`.
    async fn net(&self, b: &Value) -> Response {
        if b["heal"] == true {
            return self.links(Vec::new(), true).await;
        }
        let spec = self.spec();
        let total = spec.total_nodes();
        let node = match b["isolate"].as_u64() {
            Some(n) if n >= 1 && n <= total as u64 => n as u16,
            _ => {
                return bad(format!(
                    "POST /api/net needs {{\"isolate\": N}} (1 to {total}) or {{\"heal\": true}}"
                ))
            }
        };
        if !spec.network.faults {
            return Response::error(
                409,
                "this cluster has no link proxies; start it with `up --net faults`",
            );
        }
        let files = ClusterFiles::new(&spec.dir);
        let ask = control::Request::Net {
            set: Vec::new(),
            heal: false,
        };
        let current = match control::request(&files.socket, &ask, Duration::from_secs(10)).await {
            Ok(control::Response::Links { links }) => links,
            Ok(other) => return Response::error(502, format!("supervisor: {other:?}")),
            Err(e) => return Response::error(503, e),
        };
        let mut set = Vec::new();
        for from in 1..=total {
            for to in 1..=total {
                if from == to || (from != node && to != node) {
                    continue;
                }
                let mut fault = current
                    .iter()
                    .find(|l| l.from == from && l.to == to)
                    .map(|l| l.fault)
                    .unwrap_or_default();
                fault.cut = true;
                set.push(LinkInfo { from, to, fault });
            }
        }
        self.links(set, false).await
    }
}

/// A ZooKeeper error as JSON, with the status a browser script can branch on.
fn keeper_error(e: ZkError, path: &str) -> Response {
    let kind = format!("{e:?}")
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("Error")
        .to_string();
    let status = match e {
        ZkError::NoNode => 404,
        ZkError::NodeExists | ZkError::BadVersion | ZkError::NotEmpty => 409,
        ZkError::NoAuth => 403,
        ZkError::BadArguments(_) => 400,
        _ => 502,
    };
    Response::json(
        status,
        &json!({"error": format!("{path}: {e}"), "kind": kind, "path": path}),
    )
}
