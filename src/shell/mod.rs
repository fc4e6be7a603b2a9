//! `zkherd shell`: a ZooKeeper shell with zkCli.sh's commands, output shapes and exit codes,
//! so scripts and fingers written for zkCli work unchanged, and no Java is needed.
//!
//! - [`words`] splits a line and parses each command's options;
//! - [`format`] prints Stat blocks, ACLs and watch events as zkCli does (and as JSON);
//! - [`tree`] exports a subtree to JSON (`dump`) and creates one from it (`load`).
//!
//! It talks to any ZooKeeper (builtin or Apache) through the `zookeeper-client` crate. Every
//! command gives a [`Reply`]: zkCli's text and a JSON value (`--json` prints that instead), or
//! a [`Failure`] with zkCli's message and exit code.

pub mod format;
mod quota;
pub mod tree;
pub mod words;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use zookeeper_client::{
    Acl, AddWatchMode, AuthId, Client, CreateMode, EnsembleUpdate, Error as ZkError,
    OneshotWatcher, PersistentWatcher,
};

use words::Parsed;

/// zkCli's usage lines, in its order; `help` and an unknown command print them.
pub const USAGE: &[(&str, &str)] = &[
    ("addWatch", "addWatch [-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE"),
    ("addauth", "addauth scheme auth"),
    ("close", "close "),
    ("config", "config [-c] [-w] [-s]"),
    ("connect", "connect host:port"),
    ("create", "create [-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "delete [-v version] path"),
    ("deleteall", "deleteall path [-b batch size]"),
    ("delquota", "delquota [-n|-b|-N|-B] path"),
    ("dump", "dump [path] # the subtree as JSON (zkherd)"),
    ("get", "get [-s] [-w] path"),
    ("getAcl", "getAcl [-s] path"),
    ("getAllChildrenNumber", "getAllChildrenNumber path"),
    ("getEphemerals", "getEphemerals path"),
    ("history", "history "),
    ("load", "load [-o] file # create the nodes of a dump; -o sets data of existing ones (zkherd)"),
    ("listquota", "listquota path"),
    ("ls", "ls [-s] [-w] [-R] path"),
    ("printwatches", "printwatches on|off"),
    ("quit", "quit "),
    ("reconfig", "reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]"),
    ("redo", "redo cmdno"),
    ("removewatches", "removewatches path [-c|-d|-a] [-l]"),
    ("set", "set [-s] [-v version] path data"),
    ("setAcl", "setAcl [-s] [-v version] [-R] path acl"),
    ("setquota", "setquota -n|-b|-N|-B val path"),
    ("stat", "stat [-w] path"),
    ("sync", "sync path"),
    ("version", "version "),
    ("whoami", "whoami "),
];

/// The command names, for completion.
pub fn command_names() -> impl Iterator<Item = &'static str> {
    USAGE.iter().map(|(n, _)| *n)
}

fn usage_of(cmd: &str) -> &'static str {
    USAGE
        .iter()
        .find(|(n, _)| *n == cmd)
        .map(|(_, u)| *u)
        .unwrap_or("")
}

/// The whole usage text, as zkCli prints it for an unknown command.
pub fn usage_text() -> String {
    let mut s = String::from("ZooKeeper -server host:port cmd args\n");
    for (_, u) in USAGE {
        s.push('\t');
        s.push_str(u);
        s.push('\n');
    }
    s
}

/// What a command printed when it worked.
pub struct Reply {
    pub text: String,
    pub json: Value,
    /// What zkCli prints on stderr for this command (`Created /a`, `absolute path is …`),
    /// before `text`; scripts that capture stdout rely on the split.
    pub err: String,
}

impl Reply {
    fn new(text: impl Into<String>, json: Value) -> Reply {
        Reply {
            text: text.into(),
            json,
            err: String::new(),
        }
    }

    /// The whole text goes to stderr.
    fn on_stderr(self) -> Reply {
        Reply {
            err: self.text,
            text: String::new(),
            ..self
        }
    }
}

/// Why a command failed: zkCli's message (stderr) and exit code (1; 127 for an unknown command).
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// The ZooKeeper error's name (`NoNode`) and the path, when the server refused.
    pub kind: Option<String>,
    pub path: Option<String>,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
            kind: None,
            path: None,
        }
    }

    fn usage(cmd: &str) -> Failure {
        Failure::new(usage_of(cmd))
    }
}

/// A reply with zkCli's stat lines after `text` (and the stat in the JSON) when `show`
/// (`-s`).
fn with_stat(mut text: String, mut j: Value, stat: &zookeeper_client::Stat, show: bool) -> Reply {
    if show {
        text.push_str(&format::stat(stat));
        j["stat"] = format::stat_json(stat);
    }
    Reply::new(text, j)
}

/// The answer of `set`/`setAcl`: the stat with `-s`, else nothing (JSON: always the stat).
fn stat_reply(p: &Parsed, path: &str, stat: &zookeeper_client::Stat) -> Reply {
    let j = json!({"path": path, "stat": format::stat_json(stat)});
    with_stat(String::new(), j, stat, p.has('s'))
}

/// A ZooKeeper error in zkCli's words (CliWrapperException's translations).
fn keeper(e: ZkError, path: &str) -> Failure {
    let m = match &e {
        ZkError::NoNode => format!("Node does not exist: {path}"),
        ZkError::BadVersion => format!("version No is not valid : {path}"),
        ZkError::NodeExists => format!("Node already exists: {path}"),
        ZkError::NotEmpty => format!("Node not empty: {path}"),
        ZkError::NoAuth => format!("Insufficient permission : {path}"),
        ZkError::QuotaExceeded => format!("Quota has exceeded : {path}"),
        ZkError::InvalidAcl => format!("Acl is not valid : {path}"),
        ZkError::NoChildrenForEphemerals => {
            format!("KeeperErrorCode = NoChildrenForEphemerals for {path}")
        }
        ZkError::Unimplemented => format!("KeeperErrorCode = Unimplemented for {path}"),
        ZkError::NoWatcher => format!("KeeperErrorCode = NoWatcher for {path}"),
        ZkError::NotReadOnly => format!("KeeperErrorCode = NotReadOnly for {path}"),
        ZkError::ReconfigDisabled => "KeeperErrorCode = ReconfigDisabled".to_string(),
        ZkError::ConnectionLoss => format!("KeeperErrorCode = ConnectionLoss for {path}"),
        ZkError::SessionExpired => format!("KeeperErrorCode = Session expired for {path}"),
        // The server's refusal, in zkCli's words; the crate's own checks say what they found.
        ZkError::BadArguments(&"server error") => format!("Arguments are not valid : {path}"),
        ZkError::BadArguments(why) => format!("{path}: {why}"),
        other => format!("{other} ({path})"),
    };
    Failure {
        kind: Some(error_kind(&e)),
        path: Some(path.to_string()),
        ..Failure::new(m)
    }
}

/// The error's Java name (`KeeperException.Code`), for `--json`.
fn error_kind(e: &ZkError) -> String {
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("Error")
        .to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchKind {
    Data,
    Child,
    Persistent,
}

/// A watch this shell set, kept so `removewatches` can drop it (dropping the crate's watcher
/// removes it on the server).
struct Watch {
    path: String,
    kind: WatchKind,
    cancel: oneshot::Sender<()>,
}

/// One shell session: a client, the watches it set, the history of its commands.
pub struct Shell {
    servers: String,
    client: Option<Client>,
    /// Credentials from `addauth`, sent again after `connect`.
    auth: Vec<(String, Vec<u8>)>,
    watches: Vec<Watch>,
    print_watches: Arc<AtomicBool>,
    json: bool,
    pub history: Vec<String>,
    connect_timeout: Duration,
    /// CA, client certificate and key (PEM): connect over TLS.
    tls: Option<(String, String, String)>,
}

impl Shell {
    /// A shell for `servers` (a connect string, optionally with a chroot); not connected yet.
    pub fn new(servers: &str, json: bool) -> Shell {
        Shell {
            servers: servers.to_string(),
            client: None,
            auth: Vec::new(),
            watches: Vec::new(),
            print_watches: Arc::new(AtomicBool::new(true)),
            json,
            history: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            tls: None,
        }
    }

    /// Connect over TLS with this CA, client certificate and key (PEM text).
    pub fn with_tls(self, tls: Option<(String, String, String)>) -> Shell {
        Shell { tls, ..self }
    }

    pub fn servers(&self) -> &str {
        &self.servers
    }

    /// A clone of the client, for path completion.
    pub fn client(&self) -> Option<Client> {
        self.client.clone()
    }

    pub fn state(&self) -> &'static str {
        match &self.client {
            None => "CLOSED",
            Some(c) => match c.state() {
                zookeeper_client::SessionState::SyncConnected => "CONNECTED",
                zookeeper_client::SessionState::ConnectedReadOnly => "CONNECTEDREADONLY",
                zookeeper_client::SessionState::Disconnected => "CONNECTING",
                zookeeper_client::SessionState::Expired => "EXPIRED",
                _ => "CLOSED",
            },
        }
    }

    /// Connect (or reconnect) to `self.servers`.
    pub async fn connect(&mut self) -> Result<(), Failure> {
        self.close().await;
        let mut connector = Client::connector()
            .with_session_timeout(Duration::from_secs(30))
            .with_connection_timeout(self.connect_timeout);
        for (scheme, auth) in &self.auth {
            connector = connector.with_auth(scheme, auth);
        }
        let servers = self.servers.clone();
        let tls = self.tls.clone();
        let work = async move {
            match tls {
                None => connector.connect(&servers).await,
                Some((ca, cert, key)) => {
                    let options = zookeeper_client::TlsOptions::new()
                        .with_pem_ca(&ca)
                        .and_then(|o| o.with_pem_identity(&cert, &key))?;
                    connector.with_tls(options).secure_connect(&servers).await
                }
            }
        };
        let client = match tokio::time::timeout(self.connect_timeout, work).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(Failure::new(format!(
                    "cannot connect to {}: {e}; is the ensemble up (`zkherd status`)?",
                    self.servers
                )))
            }
            Err(_) => {
                return Err(Failure::new(format!(
                    "cannot connect to {} within {:?}; is the ensemble up (`zkherd status`)?",
                    self.servers, self.connect_timeout
                )))
            }
        };
        self.client = Some(client);
        Ok(())
    }

    async fn close(&mut self) {
        self.watches.clear();
        // The last clone dropped closes the session (the crate sends closeSession).
        if let Some(c) = self.client.take() {
            drop(c);
            tokio::task::yield_now().await;
        }
    }

    fn zk(&self) -> Result<&Client, Failure> {
        self.client
            .as_ref()
            .ok_or_else(|| Failure::new("Not connected; use `connect host:port`"))
    }

    /// Run one command (its words) and print what it gives: zkCli's text on stdout, failures
    /// on stderr; with `--json` one JSON value per command instead. The exit code is zkCli's.
    pub async fn execute(&mut self, words: &[String]) -> Outcome {
        if words.is_empty() {
            return Outcome::default();
        }
        self.history.push(words.join(" "));
        let result = self.dispatch(words).await;
        match result {
            Ok(Step::Reply(r)) => {
                if self.json {
                    println!("{}", r.json);
                } else {
                    eprint!("{}", r.err);
                    print!("{}", r.text);
                }
                Outcome::default()
            }
            Ok(Step::Quit) => Outcome {
                code: 0,
                quit: true,
            },
            Err(f) => {
                if self.json {
                    let mut e = json!({"error": f.message, "code": f.code});
                    if let Some(k) = &f.kind {
                        e["kind"] = k.as_str().into();
                    }
                    if let Some(p) = &f.path {
                        e["path"] = p.as_str().into();
                    }
                    eprintln!("{e}");
                } else {
                    eprintln!("{}", f.message.trim_end_matches('\n'));
                }
                Outcome {
                    code: f.code,
                    quit: false,
                }
            }
        }
    }

    async fn dispatch(&mut self, words: &[String]) -> Result<Step, Failure> {
        let cmd = words[0].as_str();
        let rest = &words[1..];
        let parse = |switches: &str, valued: &str| {
            Parsed::new(rest, switches, valued)
                .map_err(|e| Failure::new(format!("{e}\n{}", usage_of(cmd))))
        };
        let reply = match cmd {
            "quit" | "exit" => {
                self.close().await;
                return Ok(Step::Quit);
            }
            "ls" => self.ls(parse("swR", "")?).await?,
            "get" => self.get(parse("sw", "")?).await?,
            "stat" => self.stat(parse("w", "")?).await?,
            "set" => self.set(parse("s", "v")?).await?,
            "create" => self.create(parse("sec", "t")?).await?,
            "delete" => self.delete(parse("", "v")?).await?,
            "deleteall" | "rmr" => self.deleteall(parse("", "b")?).await?,
            "getAcl" => self.get_acl(parse("s", "")?).await?,
            "setAcl" => self.set_acl(parse("sR", "v")?).await?,
            "addauth" => self.addauth(parse("", "")?).await?,
            "whoami" => self.whoami().await?,
            "sync" => self.sync(parse("", "")?).await?,
            "getAllChildrenNumber" => self.children_number(parse("", "")?).await?,
            "getEphemerals" => self.ephemerals(parse("", "")?).await?,
            "setquota" => quota::set(self.zk()?, rest).await?,
            "listquota" => quota::list(self.zk()?, rest).await?,
            "delquota" => quota::delete(self.zk()?, rest).await?,
            "reconfig" => self.reconfig(rest).await?,
            "addWatch" => self.add_watch(parse("", "m")?).await?,
            "removewatches" => self.remove_watches(parse("cdal", "")?)?,
            "config" => self.config(parse("cws", "")?).await?,
            "printwatches" => {
                let p = parse("", "")?;
                match p.args.first().map(String::as_str) {
                    Some("on") => self.print_watches.store(true, Ordering::SeqCst),
                    Some("off") => self.print_watches.store(false, Ordering::SeqCst),
                    _ => {
                        let on = self.print_watches.load(Ordering::SeqCst);
                        return Ok(Step::Reply(Reply::new(
                            format!("printwatches is {}\n", if on { "on" } else { "off" }),
                            json!({"printwatches": on}),
                        )));
                    }
                }
                Reply::new(
                    "",
                    json!({"printwatches": self.print_watches.load(Ordering::SeqCst)}),
                )
            }
            "history" => {
                let n = self.history.len();
                let from = n.saturating_sub(11);
                let mut text = String::new();
                for (i, h) in self.history.iter().enumerate().skip(from) {
                    text.push_str(&format!("{i} - {h}\n"));
                }
                Reply::new(text, json!({"history": self.history[from..]}))
            }
            "redo" => {
                let p = parse("", "")?;
                let n: usize = p
                    .args
                    .first()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| Failure::usage("redo"))?;
                let line = self
                    .history
                    .get(n)
                    .cloned()
                    .ok_or_else(|| Failure::new("Command index out of range"))?;
                let again = words::split(&line).map_err(Failure::new)?;
                // The redone command replaces `redo N` in the history, as in zkCli.
                self.history.pop();
                return Box::pin(self.execute_inner(again)).await;
            }
            "connect" => {
                let p = parse("", "")?;
                if let Some(s) = p.args.first() {
                    self.servers = s.clone();
                }
                self.connect().await?;
                Reply::new("", json!({"connected": self.servers}))
            }
            "close" => {
                self.close().await;
                Reply::new("", json!({"closed": true}))
            }
            "version" => Reply::new(
                format!(
                    "ZooKeeper CLI version: zkherd shell {}\n",
                    env!("CARGO_PKG_VERSION")
                ),
                json!({"version": env!("CARGO_PKG_VERSION")}),
            ),
            "help" => Reply::new(
                usage_text(),
                json!({"commands": command_names().collect::<Vec<_>>()}),
            ),
            "dump" => {
                let p = parse("", "")?;
                let root = p.args.first().map(String::as_str).unwrap_or("/");
                let d = tree::dump(self.zk()?, root).await?;
                let text = serde_json::to_string_pretty(&d).unwrap_or_default() + "\n";
                Reply::new(text, d)
            }
            "load" => {
                let p = parse("o", "")?;
                let file = p.args.first().ok_or_else(|| Failure::usage("load"))?;
                let text = std::fs::read_to_string(file)
                    .map_err(|e| Failure::new(format!("cannot read {file}: {e}")))?;
                let d: Value = serde_json::from_str(&text)
                    .map_err(|e| Failure::new(format!("{file}: not a zkherd dump: {e}")))?;
                let n = tree::load(self.zk()?, &d, p.has('o'))
                    .await
                    .map_err(|f| Failure {
                        message: format!("{file}: {}", f.message),
                        ..f
                    })?;
                Reply::new(
                    format!(
                        "Loaded {} znodes, {} set, {} skipped\n",
                        n.created, n.set, n.skipped
                    ),
                    json!({"created": n.created, "set": n.set, "skipped": n.skipped}),
                )
            }
            other => {
                return Err(Failure {
                    code: 127,
                    ..Failure::new(format!(
                        "{}Command not found: Command not found {other}",
                        usage_text()
                    ))
                })
            }
        };
        Ok(Step::Reply(reply))
    }

    async fn execute_inner(&mut self, words: Vec<String>) -> Result<Step, Failure> {
        self.history.push(words.join(" "));
        self.dispatch(&words).await
    }

    fn path<'a>(p: &'a Parsed, cmd: &str) -> Result<&'a str, Failure> {
        p.args
            .first()
            .map(String::as_str)
            .ok_or_else(|| Failure::usage(cmd))
    }

    /// Print events of a one-shot watch when it fires (unless `printwatches off`).
    fn keep_oneshot(&mut self, path: &str, kind: WatchKind, w: OneshotWatcher) {
        let (cancel, cancelled) = oneshot::channel();
        let print = self.print_watches.clone();
        let json = self.json;
        tokio::spawn(async move {
            tokio::select! {
                ev = w.changed() => {
                    if print.load(Ordering::SeqCst) {
                        if json { println!("{}", format::event_json(&ev)); } else { print!("{}", format::event(&ev)); }
                    }
                }
                _ = cancelled => {}
            }
        });
        self.watches.retain(|w| !w.cancel.is_closed());
        self.watches.push(Watch {
            path: path.to_string(),
            kind,
            cancel,
        });
    }

    fn keep_persistent(&mut self, path: &str, mut w: PersistentWatcher) {
        let (cancel, mut cancelled) = oneshot::channel();
        let print = self.print_watches.clone();
        let json = self.json;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    ev = w.changed() => {
                        let terminal = matches!(ev.session_state, zookeeper_client::SessionState::Closed | zookeeper_client::SessionState::Expired | zookeeper_client::SessionState::AuthFailed);
                        if print.load(Ordering::SeqCst) {
                            if json { println!("{}", format::event_json(&ev)); } else { print!("{}", format::event(&ev)); }
                        }
                        if terminal { break; }
                    }
                    _ = &mut cancelled => break,
                }
            }
        });
        self.watches.push(Watch {
            path: path.to_string(),
            kind: WatchKind::Persistent,
            cancel,
        });
    }

    async fn ls(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "ls")?.to_string();
        let zk = self.zk()?.clone();
        if p.has('R') {
            // As zkCli's ZKUtil.visitSubTreeDFS: a node's children (sorted), then each
            // child's subtree in turn.
            let mut out = vec![path.clone()];
            let mut stack = vec![path.clone()];
            while let Some(node) = stack.pop() {
                let mut kids = zk
                    .list_children(&node)
                    .await
                    .map_err(|e| keeper(e, &node))?;
                kids.sort();
                let base = node.trim_end_matches('/').to_string();
                let paths: Vec<String> = kids.iter().map(|k| format!("{base}/{k}")).collect();
                out.extend(paths.iter().cloned());
                stack.extend(paths.into_iter().rev());
            }
            let text: String = out.iter().map(|l| format!("{l}\n")).collect();
            return Ok(Reply::new(text, json!({"path": path, "tree": out})));
        }
        let (mut kids, stat) = if p.has('w') {
            let (k, s, w) = zk
                .get_and_watch_children(&path)
                .await
                .map_err(|e| keeper(e, &path))?;
            self.keep_oneshot(&path, WatchKind::Child, w);
            (k, s)
        } else {
            zk.get_children(&path).await.map_err(|e| keeper(e, &path))?
        };
        kids.sort();
        let text = format!("[{}]\n", kids.join(", "));
        let j = json!({"path": path, "children": kids});
        Ok(with_stat(text, j, &stat, p.has('s')))
    }

    async fn get(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "get")?.to_string();
        let zk = self.zk()?.clone();
        let (data, stat) = if p.has('w') {
            let (d, s, w) = zk
                .get_and_watch_data(&path)
                .await
                .map_err(|e| keeper(e, &path))?;
            self.keep_oneshot(&path, WatchKind::Data, w);
            (d, s)
        } else {
            zk.get_data(&path).await.map_err(|e| keeper(e, &path))?
        };
        let shown = String::from_utf8_lossy(&data).into_owned();
        let text = format!("{shown}\n");
        let mut j = json!({ "path": path });
        format::put_data(&mut j, &data);
        Ok(with_stat(text, j, &stat, p.has('s')))
    }

    async fn stat(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "stat")?.to_string();
        let zk = self.zk()?.clone();
        let stat = if p.has('w') {
            let (s, w) = zk
                .check_and_watch_stat(&path)
                .await
                .map_err(|e| keeper(e, &path))?;
            self.keep_oneshot(&path, WatchKind::Data, w);
            s
        } else {
            zk.check_stat(&path).await.map_err(|e| keeper(e, &path))?
        };
        let stat = stat.ok_or_else(|| keeper(ZkError::NoNode, &path))?;
        Ok(Reply::new(
            format::stat(&stat),
            json!({"path": path, "stat": format::stat_json(&stat)}),
        ))
    }

    async fn set(&mut self, p: Parsed) -> Result<Reply, Failure> {
        if p.args.len() < 2 {
            return Err(Failure::usage("set"));
        }
        let (path, data) = (&p.args[0], &p.args[1]);
        let version = version_of(&p)?;
        let stat = self
            .zk()?
            .set_data(path, data.as_bytes(), version)
            .await
            .map_err(|e| keeper(e, path))?;
        Ok(stat_reply(&p, path, &stat))
    }

    /// zkCli's `reconfig`: `-add`/`-remove` (incremental) or `-members`/`-file` (a new
    /// membership), `-v` the expected config version (hex), `-s` the stat after.
    async fn reconfig(&mut self, words: &[String]) -> Result<Reply, Failure> {
        // Its options are words (`-members`, `-file`), and lists hold `;`: parsed here.
        let (mut add, mut remove, mut members) = (Vec::new(), Vec::new(), Vec::new());
        let (mut show_stat, mut version_arg, mut file) = (false, None, None);
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| Failure::new(usage_of("reconfig")))
            };
            match w.as_str() {
                "-s" => show_stat = true,
                "-v" => version_arg = Some(value()?),
                "-file" => file = Some(value()?),
                "-members" => members.push(value()?),
                "-add" => add.push(value()?),
                "-remove" => remove.push(value()?),
                _ => return Err(Failure::new(usage_of("reconfig"))),
            }
        }
        if let Some(file) = &file {
            // zkCli names the file twice in this message; so do we.
            let text = std::fs::read_to_string(file).map_err(|e| {
                Failure::new(format!(
                    "Error processing {file}{file} ({})",
                    match e.kind() {
                        std::io::ErrorKind::NotFound => "No such file or directory".to_string(),
                        _ => e.to_string(),
                    }
                ))
            })?;
            members.push(
                text.lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with("server."))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        if add.is_empty() && remove.is_empty() && members.is_empty() {
            return Err(Failure::usage("reconfig"));
        }
        let version = match version_arg.as_deref() {
            None => None,
            Some(v) => Some(
                i64::from_str_radix(v.trim_start_matches("0x"), 16).map_err(|_| {
                    Failure::new(format!(
                        "{v} is not a hex version\n{}",
                        usage_of("reconfig")
                    ))
                })?,
            ),
        };
        let joined = |v: &[String]| v.join(",");
        let (add, remove, members) = (joined(&add), joined(&remove), joined(&members));
        let zk = self.zk()?;
        let result = if members.is_empty() {
            let (j, l): (Vec<&str>, Vec<&str>) = (
                add.split(',').filter(|s| !s.is_empty()).collect(),
                remove.split(',').filter(|s| !s.is_empty()).collect(),
            );
            zk.update_ensemble(
                EnsembleUpdate::Incremental {
                    joinings: j.into_iter(),
                    leavings: l.into_iter(),
                },
                version,
            )
            .await
        } else {
            let m: Vec<&str> = members.split(',').filter(|s| !s.is_empty()).collect();
            zk.update_ensemble(
                EnsembleUpdate::New {
                    ensemble: m.into_iter(),
                },
                version,
            )
            .await
        };
        let (data, stat) = result.map_err(|e| keeper(e, ""))?;
        let config = String::from_utf8_lossy(&data).into_owned();
        let text = format!("Committed new configuration:\n{config}\n");
        let j = json!({"config": config});
        Ok(with_stat(text, j, &stat, show_stat))
    }

    async fn create(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "create")?;
        let data = p.args.get(1).map(String::as_str).unwrap_or("");
        let acls = match p.args.get(2) {
            Some(a) => parse_acls(a)?,
            None => vec![Acl::new(
                zookeeper_client::Permission::ALL,
                AuthId::anyone(),
            )],
        };
        let (s, e, c) = (p.has('s'), p.has('e'), p.has('c'));
        let ttl = match p.value('t') {
            Some(t) => Some(t.parse::<u64>().map_err(|_| {
                Failure::new(format!("-t {t}: the ttl is a number of milliseconds"))
            })?),
            None => None,
        };
        if c && (s || e) {
            return Err(Failure::new(
                "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
            ));
        }
        if ttl.is_some() && (e || c) {
            return Err(Failure::new(
                "TTLs cannot be used with Ephemeral or Container nodes",
            ));
        }
        let mode = match (s, e, c) {
            (_, _, true) => CreateMode::Container,
            (true, true, _) => CreateMode::EphemeralSequential,
            (false, true, _) => CreateMode::Ephemeral,
            (true, false, _) => CreateMode::PersistentSequential,
            (false, false, _) => CreateMode::Persistent,
        };
        let mut options = mode.with_acls(zookeeper_client::Acls::new(&acls));
        if let Some(ms) = ttl {
            options = options.with_ttl(Duration::from_millis(ms));
        }
        let (stat, seq) = self
            .zk()?
            .create(path, data.as_bytes(), &options)
            .await
            .map_err(|e| keeper(e, path))?;
        let created = if s {
            format!("{path}{seq}")
        } else {
            path.to_string()
        };
        Ok(Reply::new(
            format!("Created {created}\n"),
            json!({"created": created, "stat": format::stat_json(&stat)}),
        )
        .on_stderr())
    }

    async fn delete(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "delete")?;
        self.zk()?
            .delete(path, version_of(&p)?)
            .await
            .map_err(|e| keeper(e, path))?;
        Ok(Reply::new("", json!({"deleted": path})))
    }

    async fn deleteall(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "deleteall")?.to_string();
        let zk = self.zk()?.clone();
        let n = tree::delete_all(&zk, &path).await?;
        Ok(Reply::new("", json!({"deleted": path, "znodes": n})))
    }

    async fn get_acl(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "getAcl")?;
        let (acls, stat) = self
            .zk()?
            .get_acl(path)
            .await
            .map_err(|e| keeper(e, path))?;
        let text = format::acl_lines(&acls);
        let j = json!({"path": path, "acl": format::acl_json(&acls)});
        Ok(with_stat(text, j, &stat, p.has('s')))
    }

    async fn set_acl(&mut self, p: Parsed) -> Result<Reply, Failure> {
        if p.args.len() < 2 {
            return Err(Failure::usage("setAcl"));
        }
        let path = p.args[0].clone();
        let acls = parse_acls(&p.args[1])?;
        let version = version_of(&p)?;
        let zk = self.zk()?.clone();
        let mut targets = vec![path.clone()];
        if p.has('R') {
            let mut i = 0;
            while i < targets.len() {
                let kids = zk
                    .list_children(&targets[i])
                    .await
                    .map_err(|e| keeper(e, &targets[i]))?;
                let base = targets[i].trim_end_matches('/').to_string();
                targets.extend(kids.into_iter().map(|k| format!("{base}/{k}")));
                i += 1;
            }
        }
        let mut stat = None;
        for t in &targets {
            let v = if *t == path { version } else { None };
            let s = zk.set_acl(t, &acls, v).await.map_err(|e| keeper(e, t))?;
            if *t == path {
                stat = Some(s);
            }
        }
        let stat = stat.expect("the path itself is first");
        Ok(stat_reply(&p, &path, &stat))
    }

    async fn addauth(&mut self, p: Parsed) -> Result<Reply, Failure> {
        if p.args.is_empty() {
            return Err(Failure::usage("addauth"));
        }
        let scheme = p.args[0].clone();
        let auth = p.args.get(1).cloned().unwrap_or_default().into_bytes();
        self.zk()?
            .auth(&scheme, &auth)
            .await
            .map_err(|e| Failure::new(format!("addauth {scheme}: {e}")))?;
        self.auth.push((scheme.clone(), auth));
        Ok(Reply::new("", json!({"added": scheme})))
    }

    async fn whoami(&mut self) -> Result<Reply, Failure> {
        let users = self
            .zk()?
            .list_auth_users()
            .await
            .map_err(|e| keeper(e, "/"))?;
        let mut text = String::from("Auth scheme: User\n");
        for u in &users {
            text.push_str(&format!("{}: {}\n", u.scheme(), u.user()));
        }
        let j: Vec<Value> = users
            .iter()
            .map(|u| json!({"scheme": u.scheme(), "user": u.user()}))
            .collect();
        Ok(Reply::new(text, json!({"users": j})))
    }

    async fn sync(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "sync")?;
        self.zk()?.sync(path).await.map_err(|e| keeper(e, path))?;
        Ok(Reply::new("Sync is OK\n", json!({"synced": path})))
    }

    async fn children_number(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "getAllChildrenNumber")?;
        let n = self
            .zk()?
            .count_descendants_number(path)
            .await
            .map_err(|e| keeper(e, path))?;
        Ok(Reply::new(
            format!("{n}\n"),
            json!({"path": path, "number": n}),
        ))
    }

    async fn ephemerals(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = p.args.first().map(String::as_str).unwrap_or("/");
        let mut list = self
            .zk()?
            .list_ephemerals(path)
            .await
            .map_err(|e| keeper(e, path))?;
        list.sort();
        Ok(Reply::new(
            format!("[{}]\n", list.join(", ")),
            json!({"path": path, "ephemerals": list}),
        ))
    }

    async fn add_watch(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "addWatch")?.to_string();
        let mode = match p.value('m') {
            None | Some("PERSISTENT_RECURSIVE") => AddWatchMode::PersistentRecursive,
            Some("PERSISTENT") => AddWatchMode::Persistent,
            Some(other) => {
                return Err(Failure::new(format!(
                    "Unsupported mode: {other}\n{}",
                    usage_of("addWatch")
                )))
            }
        };
        let w = self
            .zk()?
            .watch(&path, mode)
            .await
            .map_err(|e| keeper(e, &path))?;
        self.keep_persistent(&path, w);
        Ok(Reply::new(
            "",
            json!({"watching": path, "mode": p.value('m').unwrap_or("PERSISTENT_RECURSIVE")}),
        ))
    }

    fn remove_watches(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let path = Self::path(&p, "removewatches")?.to_string();
        let wanted = |k: WatchKind| {
            if p.has('c') {
                k == WatchKind::Child
            } else if p.has('d') {
                k == WatchKind::Data
            } else {
                true
            }
        };
        let (gone, kept): (Vec<Watch>, Vec<Watch>) = std::mem::take(&mut self.watches)
            .into_iter()
            .filter(|w| !w.cancel.is_closed())
            .partition(|w| w.path == path && wanted(w.kind));
        self.watches = kept;
        if gone.is_empty() {
            return Err(keeper(ZkError::NoWatcher, &path));
        }
        let mut text = String::new();
        let mut kinds = Vec::new();
        for w in gone {
            let kind = match w.kind {
                WatchKind::Data => "DataWatchRemoved",
                WatchKind::Child => "ChildWatchRemoved",
                WatchKind::Persistent => "PersistentWatchRemoved",
            };
            let _ = w.cancel.send(());
            if self.print_watches.load(Ordering::SeqCst) {
                text.push_str(&format::event_block("SyncConnected", kind, &path));
            }
            kinds.push(kind);
        }
        Ok(Reply::new(text, json!({"path": path, "removed": kinds})))
    }

    async fn config(&mut self, p: Parsed) -> Result<Reply, Failure> {
        let zk = self.zk()?.clone();
        let (data, stat) = if p.has('w') {
            let (d, s, w) = zk
                .get_and_watch_config()
                .await
                .map_err(|e| keeper(e, "/zookeeper/config"))?;
            self.keep_oneshot("/zookeeper/config", WatchKind::Data, w);
            (d, s)
        } else {
            zk.get_config()
                .await
                .map_err(|e| keeper(e, "/zookeeper/config"))?
        };
        let text_cfg = String::from_utf8_lossy(&data).into_owned();
        let text = if p.has('c') {
            // Only the client addresses: `host:port,host:port`.
            let clients: Vec<String> = text_cfg
                .lines()
                .filter(|l| l.starts_with("server."))
                .filter_map(|l| l.split_once(';').map(|(_, c)| c.to_string()))
                .map(|c| {
                    if c.contains(':') {
                        c
                    } else {
                        format!("0.0.0.0:{c}")
                    }
                })
                .collect();
            format!("{}\n", clients.join(","))
        } else if text_cfg.is_empty() {
            String::new()
        } else {
            format!("{text_cfg}\n")
        };
        let j = json!({"config": text_cfg});
        Ok(with_stat(text, j, &stat, p.has('s')))
    }
}

enum Step {
    Reply(Reply),
    Quit,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub code: u8,
    pub quit: bool,
}

fn version_of(p: &Parsed) -> Result<Option<i32>, Failure> {
    match p.value('v') {
        None => Ok(None),
        Some(v) => v
            .parse::<i32>()
            .map(Some)
            .map_err(|_| Failure::new(format!("-v {v}: the version is a number"))),
    }
}

/// `scheme:id:perms[,…]`, as zkCli's AclParser reads it (the id may hold colons, as digest
/// ids do: `digest:user:hash:cdrwa`).
pub fn parse_acls(s: &str) -> Result<Vec<Acl>, Failure> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (Some(first), Some(last)) = (part.find(':'), part.rfind(':')) else {
            return Err(Failure::new(format!(
                "{part} does not have the form scheme:id:perm"
            )));
        };
        if first == last {
            return Err(Failure::new(format!(
                "{part} does not have the form scheme:id:perm"
            )));
        }
        let perms = format::parse_perms(&part[last + 1..]).map_err(Failure::new)?;
        out.push(Acl::new(
            perms,
            AuthId::new(&part[..first], &part[first + 1..last]),
        ));
    }
    if out.is_empty() {
        return Err(Failure::new("Acl is not valid : the ACL list is empty"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_parse_with_colons_in_the_id() {
        let a = parse_acls("world:anyone:r,digest:u:abc=:cdrwa").unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].scheme(), "digest");
        assert_eq!(a[1].id(), "u:abc=");
        assert_eq!(format::perms(a[1].permission()), "cdrwa");
        assert!(parse_acls("world:anyone").is_err());
        assert!(parse_acls("world:anyone:q").is_err());
    }
}
