//! `zkherd export`: one bundle per member for hosts that do not run zkherd's supervisor.
//!
//! A bundle is what the classic recipe has a person write by hand on each server, laid out for
//! installation under a prefix (default `/var/lib/zkherd/<name>`):
//!
//! ```text
//! <out>/<name>-node<N>-<host>/
//!   node<N>/conf/zoo.cfg           the same text `zkherd up --member N` renders (render::zoo_cfg)
//!   node<N>/conf/log4j.properties
//!   node<N>/data/myid
//!   zkherd-<name>-<N>.service      a systemd unit
//!   zkherd-<name>-<N>              an init script: start|stop|restart|status
//!   zkherd.toml                    the spec, when it came from a file
//!   README.md                      how to install and check this member
//! ```
//!
//! The node's command line comes from the backend itself ([`crate::backend::Backend::command`]),
//! pointed at the target host's paths, so a bundle runs what the supervisor would run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::backend::{apache::Apache, builtin::Builtin, Backend};
use crate::ports::{Membership, NodePorts, PortPlan};
use crate::render::{self, NodeLayout};
use crate::spec::{BackendKind, EnsembleSpec, RestartPolicy};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {source}; check that the directory is writable, or choose another --out")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} exists and is not empty; export writes into a new or empty directory, so remove it or choose another --out")]
    NotEmpty { path: PathBuf },
    #[error("cannot build the node's command line: {0}")]
    Backend(#[from] crate::backend::BackendError),
    #[error("{what} {value:?} contains a quote, backslash or line break, which the unit and the init script cannot carry; choose a plainer path")]
    Unquotable { what: String, value: String },
}

/// Where things live on the target hosts.
#[derive(Debug, Clone)]
pub struct Target {
    /// Install prefix: member N's instance dir is `<prefix>/node<N>`.
    pub prefix: PathBuf,
    /// The zkherd executable on the hosts (builtin backend).
    pub zkherd_bin: PathBuf,
    /// The spec file's text, copied into every bundle when the spec came from a file.
    pub spec_text: Option<String>,
}

/// One written bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub id: u16,
    pub host: String,
    pub dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The host as the spec names it: its host name when it gives one, else its address.
fn host_label(spec: &EnsembleSpec, node: &NodePorts) -> String {
    spec.host_name(node.id)
        .map_or_else(|| node.host.to_string(), str::to_string)
}

/// The bundle directory name of a member: `<name>-node<N>-<host>` (IPv6 colons as dashes).
pub fn bundle_name(spec: &EnsembleSpec, node: &NodePorts) -> String {
    format!(
        "{}-node{}-{}",
        spec.name,
        node.id,
        host_label(spec, node).replace(':', "-")
    )
}

/// The systemd unit's and the init script's name: `zkherd-<name>-<N>`.
pub fn service_name(spec: &EnsembleSpec, id: u16) -> String {
    format!("zkherd-{}-{id}", spec.name)
}

/// Write a bundle for every member of `spec` into `out`.
pub fn export(
    spec: &EnsembleSpec,
    target: &Target,
    out: &Path,
) -> Result<Vec<Bundle>, ExportError> {
    if out.exists() && fs::read_dir(out).map_err(io_err(out))?.next().is_some() {
        return Err(ExportError::NotEmpty {
            path: out.to_path_buf(),
        });
    }
    for (what, p) in [
        ("--prefix", &target.prefix),
        ("--zkherd-bin", &target.zkherd_bin),
    ] {
        let s = p.display().to_string();
        if s.contains(['\'', '"', '\\', '\n']) {
            return Err(ExportError::Unquotable {
                what: what.into(),
                value: s,
            });
        }
    }
    let backend: Box<dyn Backend> = match spec.backend {
        BackendKind::Builtin => Box::new(Builtin::at(target.zkherd_bin.clone())),
        BackendKind::Apache => Box::new(Apache::for_host(&spec.apache)),
    };
    let plan = PortPlan::new(spec);
    let mut bundles = Vec::new();
    for node in &plan.nodes {
        let dir = out.join(bundle_name(spec, node));
        // The layout on the target host, and the same layout inside the bundle.
        let installed = NodeLayout::new(&target.prefix, node);
        let staged = NodeLayout::new(&dir, node);
        for d in [
            &staged.conf_dir,
            &staged.data_dir,
            &staged.datalog_dir,
            &staged.logs_dir,
        ] {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let write = |path: &Path, text: &str| fs::write(path, text).map_err(io_err(path));
        write(&staged.zoo_cfg, &render::zoo_cfg(spec, &plan, &installed))?;
        if render::uses_dynamic_file(spec) {
            write(
                &staged.conf_dir.join(render::DYNAMIC_CFG),
                &render::dynamic_cfg(spec, &plan, node.id),
            )?;
        }
        write(
            &staged.conf_dir.join("log4j.properties"),
            render::LOG4J_TEMPLATE,
        )?;
        write(&staged.data_dir.join("myid"), &format!("{}\n", node.id))?;
        let argv = command_line(backend.as_ref(), &installed)?;
        let service = service_name(spec, node.id);
        write(
            &dir.join(format!("{service}.service")),
            &systemd_unit(spec, node, &installed, &argv),
        )?;
        let script = dir.join(&service);
        write(&script, &init_script(spec, node, &installed, &argv))?;
        set_executable(&script)?;
        if let Some(text) = &target.spec_text {
            write(&dir.join("zkherd.toml"), text)?;
        }
        write(
            &dir.join("README.md"),
            &bundle_readme(spec, &plan, node, target),
        )?;
        bundles.push(Bundle {
            id: node.id,
            host: host_label(spec, node),
            dir,
        });
    }
    Ok(bundles)
}

fn set_executable(path: &Path) -> Result<(), ExportError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io_err(path))
}

/// The backend's own command for the node, as words.
fn command_line(backend: &dyn Backend, node: &NodeLayout) -> Result<Vec<String>, ExportError> {
    let cmd = backend.command(node)?;
    Ok(std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect())
}

/// Quote a word for sh and for systemd's ExecStart (both take single quotes).
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{word}'")
    }
}

fn quoted(argv: &[String]) -> String {
    argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

fn role(node: &NodePorts) -> &'static str {
    match node.membership {
        Membership::Voter => "participant",
        Membership::Observer => "observer",
    }
}

/// A systemd unit that runs the member in the foreground and restarts it as the spec's
/// `[restart]` policy says.
pub fn systemd_unit(
    spec: &EnsembleSpec,
    node: &NodePorts,
    installed: &NodeLayout,
    argv: &[String],
) -> String {
    let restart = match spec.restart.policy {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "no",
    };
    let restart_sec = spec.restart.initial_backoff_ms.div_ceil(1000).max(1);
    format!(
        "# Made by `zkherd export` for member {id} ({role}) of ensemble \"{name}\", {backend} backend.\n\
         # Install: cp {service}.service /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now {service}\n\
         [Unit]\n\
         Description=ZooKeeper member {id} of \"{name}\" on {host} ({backend} backend, zkherd)\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         WorkingDirectory={dir}\n\
         ExecStart={exec}\n\
         StandardOutput=append:{log}\n\
         StandardError=inherit\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=30\n\
         # A JVM stopped by SIGTERM exits 143.\n\
         SuccessExitStatus=143\n\
         Restart={restart}\n\
         RestartSec={restart_sec}\n\
         LimitNOFILE=65536\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        id = node.id,
        role = role(node),
        name = spec.name,
        backend = spec.backend,
        host = node.host,
        service = service_name(spec, node.id),
        dir = installed.dir.display(),
        exec = quoted(argv),
        log = installed.log_file.display(),
    )
}

/// An init script in the style of the classic recipe's `zkServer.sh start|stop|status`.
pub fn init_script(
    spec: &EnsembleSpec,
    node: &NodePorts,
    installed: &NodeLayout,
    argv: &[String],
) -> String {
    format!(
        r#"#!/usr/bin/env bash
# Made by `zkherd export` for member {id} ({role}) of ensemble "{name}", {backend} backend.
# Usage: {service} start|stop|restart|status
# Exit status of `status`: 0 serving, 2 running but not serving (no quorum yet), 3 not running.
set -u
NODE_DIR={dir}
PIDFILE="$NODE_DIR/node.pid"
LOG={log}
ADDR={host}
CLIENT_PORT={client}

running() {{
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}}

start() {{
  if running; then
    echo "member {id} already runs (pid $(cat "$PIDFILE"))"
    return 0
  fi
  mkdir -p "$NODE_DIR/logs"
  cd "$NODE_DIR" || return 1
  nohup {exec} >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  sleep 0.5
  if running; then
    echo "started member {id} (pid $(cat "$PIDFILE")), log $LOG"
  else
    echo "member {id} exited at once; the last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    rm -f "$PIDFILE"
    return 1
  fi
}}

stop() {{
  if ! running; then
    echo "member {id} is not running"
    rm -f "$PIDFILE"
    return 0
  fi
  local pid
  pid=$(cat "$PIDFILE")
  kill -TERM "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    echo "member {id} (pid $pid) did not stop within 30 s; killed it"
  else
    echo "stopped member {id} (pid $pid)"
  fi
  rm -f "$PIDFILE"
}}

status() {{
  if ! running; then
    echo "member {id} is not running"
    return 3
  fi
  local reply mode
  reply=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf srvr >&3 && cat <&3' "$ADDR" "$CLIENT_PORT" 2>/dev/null)
  mode=$(printf '%s\n' "$reply" | sed -n 's/^Mode: //p')
  if [ -n "$mode" ]; then
    echo "member {id} runs (pid $(cat "$PIDFILE")) on $ADDR:$CLIENT_PORT, Mode: $mode"
    return 0
  fi
  echo "member {id} runs (pid $(cat "$PIDFILE")) but does not serve on $ADDR:$CLIENT_PORT yet: ${{reply:-no answer}}"
  return 2
}}

case "${{1:-}}" in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|restart|status" >&2
    exit 64
    ;;
esac
"#,
        id = node.id,
        role = role(node),
        name = spec.name,
        backend = spec.backend,
        service = service_name(spec, node.id),
        dir = quote(&installed.dir.display().to_string()),
        log = quote(&installed.log_file.display().to_string()),
        host = node.host,
        client = node.client,
        exec = quoted(argv),
    )
}

fn bundle_readme(spec: &EnsembleSpec, plan: &PortPlan, node: &NodePorts, t: &Target) -> String {
    let service = service_name(spec, node.id);
    let prefix = t.prefix.display();
    let needs = match spec.backend {
        BackendKind::Builtin => format!(
            "the zkherd executable at {} (copy it from the machine that ran `zkherd export`; no \
             Java is needed)",
            t.zkherd_bin.display()
        ),
        BackendKind::Apache => "Java and Apache ZooKeeper (`apt-get install zookeeper`; the \
             command line uses Debian's jars in /usr/share/java unless the spec's apache.home \
             names another install)"
            .to_string(),
    };
    let members = plan
        .nodes
        .iter()
        .map(|n| {
            format!(
                "| {} | {} | {} | {} | {} | {} |",
                n.id,
                n.host,
                role(n),
                n.client,
                n.quorum,
                n.election
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "# Member {id} of ZooKeeper ensemble \"{name}\" ({backend} backend)\n\
         \n\
         Made by `zkherd export`. This bundle is member {id}'s half of the classic recipe: its\n\
         `zoo.cfg` (every member's `server.N` line), its `data/myid`, a systemd unit and an init\n\
         script. The host needs {needs}.\n\
         \n\
         | myid | host | role | client | quorum | election |\n\
         |---|---|---|---|---|---|\n\
         {members}\n\
         \n\
         ## Install on {host}\n\
         \n\
         ```sh\n\
         mkdir -p {prefix}\n\
         cp -r node{id} {prefix}/\n\
         # either systemd:\n\
         cp {service}.service /etc/systemd/system/\n\
         systemctl daemon-reload && systemctl enable --now {service}\n\
         # or the init script:\n\
         ./{service} start\n\
         ```\n\
         \n\
         ## Check\n\
         \n\
         - `./{service} status`: this member's mode (leader, follower, observer), exit 0 when it\n\
         \x20 serves, 2 while it waits for a quorum, 3 when it is not running.\n\
         - From any machine that reaches the members: `zkherd -f zkherd.toml status` (the table\n\
         \x20 and verdict for the whole ensemble) or `zkherd -f zkherd.toml wait`.\n\
         - Connect string: `{connect}`.\n\
         \n\
         The member listens on {host} only (clientPortAddress and its server.{id} line), never on\n\
         0.0.0.0. Its data lives in {prefix}/node{id}/data; keep `myid` with it.\n",
        id = node.id,
        name = spec.name,
        backend = spec.backend,
        host = node.host,
        connect = plan.connect_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::golden::golden;

    fn three_hosts(backend: &str) -> EnsembleSpec {
        EnsembleSpec::parse(
            &format!(
                "[cluster]\nname = \"prod\"\nbackend = \"{backend}\"\n\
                 hosts = [\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\"]\n"
            ),
            Path::new("zkherd.toml"),
            Path::new("/"),
        )
        .unwrap()
    }

    fn target() -> Target {
        Target {
            prefix: PathBuf::from("/var/lib/zkherd/prod"),
            zkherd_bin: PathBuf::from("/usr/local/bin/zkherd"),
            spec_text: Some("# the spec\n".into()),
        }
    }

    #[test]
    fn bundles_match_golden_files() {
        for backend in ["builtin", "apache"] {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("out");
            let bundles = export(&three_hosts(backend), &target(), &out).unwrap();
            assert_eq!(bundles.len(), 3);
            let b = &bundles[1].dir;
            assert!(b.ends_with("prod-node2-10.0.0.2"), "{}", b.display());
            let read = |p: &str| fs::read_to_string(b.join(p)).unwrap();
            assert_eq!(read("node2/data/myid"), "2\n");
            assert_eq!(read("zkherd.toml"), "# the spec\n");
            golden(
                &format!("export-{backend}/zoo.cfg"),
                &read("node2/conf/zoo.cfg"),
            );
            golden(
                &format!("export-{backend}/zkherd-prod-2.service"),
                &read("zkherd-prod-2.service"),
            );
            golden(
                &format!("export-{backend}/zkherd-prod-2"),
                &read("zkherd-prod-2"),
            );
            golden(&format!("export-{backend}/README.md"), &read("README.md"));
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(b.join("zkherd-prod-2"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755);
        }
    }

    #[test]
    fn the_bundle_zoo_cfg_is_what_up_renders_at_the_prefix() {
        let mut spec = three_hosts("builtin");
        let tmp = tempfile::tempdir().unwrap();
        let t = Target {
            prefix: tmp.path().join("cluster"),
            ..target()
        };
        let bundles = export(&spec, &t, &tmp.path().join("out")).unwrap();
        spec.dir = t.prefix.clone();
        let plan = PortPlan::new(&spec);
        for (b, node) in bundles.iter().zip(&plan.nodes) {
            let up = render::zoo_cfg(&spec, &plan, &NodeLayout::new(&spec.dir, node));
            let exported = fs::read_to_string(b.dir.join(format!("node{}/conf/zoo.cfg", b.id)));
            assert_eq!(exported.unwrap(), up);
        }
    }

    #[test]
    fn a_non_empty_out_dir_and_quotes_in_paths_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("x"), "").unwrap();
        let e = export(&three_hosts("builtin"), &target(), tmp.path()).unwrap_err();
        assert!(e.to_string().contains("is not empty"), "{e}");
        let t = Target {
            prefix: PathBuf::from("/opt/it's"),
            ..target()
        };
        let e = export(&three_hosts("builtin"), &t, &tmp.path().join("new")).unwrap_err();
        assert!(e.to_string().contains("--prefix"), "{e}");
    }

    #[test]
    fn words_with_spaces_are_single_quoted() {
        assert_eq!(quote("/usr/bin/java"), "/usr/bin/java");
        assert_eq!(quote("-Xmx256m"), "-Xmx256m");
        assert_eq!(quote("/opt/my zk/conf"), "'/opt/my zk/conf'");
        assert_eq!(quote(""), "''");
    }
}
