//! `zkherd shell`: zkCli.sh without Java. One command after the flags runs it and exits with
//! zkCli's code; without one, an interactive shell (line editing, history in
//! ~/.zkherd_shell_history, completion of commands and znode paths), or, when stdin is not a
//! terminal, one command per input line.

use std::io::{BufRead, IsTerminal};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use zookeeper_client::Client;

use super::Global;
use crate::ports::PortPlan;
use crate::shell::{self, Shell};

pub const SHELL_HELP: &str = "\
Commands are zkCli.sh's (`help` lists them): ls [-s] [-w] [-R], get [-s] [-w], set [-s] [-v],
create [-s] [-e] [-c] [-t ttl], delete [-v], deleteall, stat, getAcl, setAcl, addauth, sync,
addWatch [-m], removewatches, config, whoami, getAllChildrenNumber, getEphemerals, history,
quit; and zkherd's `dump [PATH]` (the subtree as JSON) and `load [-o] FILE`.

Examples:
  zkherd shell                                 interactive, on this cluster
  zkherd shell ls -R /                         one command; exit 0, 1 on error, 127 unknown
  zkherd shell -server 127.0.0.1:2181 get /a   zkCli's -server flag works too
  zkherd shell --json stat /a                  one JSON value per command
  zkherd shell dump /app > app.json && zkherd shell load app.json";

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Connect string, `host:port[,host:port…][/chroot]` (default: this cluster's); zkCli's
    /// `-server HOSTS` is accepted too.
    #[arg(long = "server", value_name = "HOSTS")]
    server: Option<String>,
    /// Print one JSON value per command (errors as JSON on stderr) instead of zkCli's text.
    #[arg(long)]
    json: bool,
    /// Connect over TLS to the cluster's secure client ports, with the CA and client
    /// certificate `up --tls` minted (the default for a `secure_only` cluster).
    #[arg(long)]
    secure: bool,
    /// A command to run instead of the interactive shell, in zkCli's syntax: `ls -s /`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// zkCli spells its flag `-server`; clap wants `--server`. Rewrite it among the flags that
/// follow `shell` (not inside the command, where it could be data).
pub fn rewrite_zkcli_flags(args: Vec<String>) -> Vec<String> {
    let Some(at) = args.iter().position(|a| a == "shell") else {
        return args;
    };
    let mut out = args;
    let mut i = at + 1;
    while i < out.len() && out[i].starts_with('-') {
        if out[i] == "-server" {
            out[i] = "--server".into();
        }
        // A flag's value: skip it.
        if out[i] == "--server" {
            i += 1;
        }
        i += 1;
    }
    out
}

pub async fn run(g: &Global, a: ShellArgs) -> Result<u8> {
    let spec = match (&a.server, a.secure) {
        (Some(_), false) => None,
        _ => Some(super::resolve_cluster(g)?),
    };
    let tls = match &spec {
        Some(s) if a.secure || s.security.secure_only => {
            Some(super::wait::minted_identity(s).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no TLS material; bring the cluster up with `zkherd up --tls`",
                    s.dir.display()
                )
            })?)
        }
        _ => None,
    };
    let servers = match (a.server, &spec) {
        (Some(s), _) => s,
        (None, Some(spec)) => {
            let plan = PortPlan::new(spec);
            match tls {
                Some(_) => plan.secure_connect_string().unwrap_or_default(),
                None => plan.connect_string(),
            }
        }
        (None, None) => unreachable!("a spec is resolved when no --server is given"),
    };
    let mut sh = Shell::new(&servers, a.json).with_tls(tls);
    let interactive = a.command.is_empty() && std::io::stdin().is_terminal();
    if interactive {
        eprintln!("Connecting to {servers}");
    }
    if let Err(f) = sh.connect().await {
        eprintln!("{}", f.message);
        return Ok(1);
    }
    if !a.command.is_empty() {
        let out = sh.execute(&a.command).await;
        return Ok(out.code);
    }
    let handle = tokio::runtime::Handle::current();
    let code = tokio::task::spawn_blocking(move || {
        if interactive {
            interactive_loop(sh, handle)
        } else {
            piped_loop(sh, handle)
        }
    })
    .await?;
    Ok(code)
}

/// Lines from a pipe, one command each (as zkCli reads them without a terminal); the exit
/// code is the last command's, as zkCli's (`quit` and blank lines keep it).
fn piped_loop(mut sh: Shell, rt: tokio::runtime::Handle) -> u8 {
    let mut code = 0;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words = match shell::words::split(&line) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("{e}");
                code = 1;
                continue;
            }
        };
        if words.is_empty() {
            continue;
        }
        let out = rt.block_on(sh.execute(&words));
        if out.quit {
            break;
        }
        code = out.code;
    }
    code
}

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".zkherd_shell_history"))
}

fn interactive_loop(mut sh: Shell, rt: tokio::runtime::Handle) -> u8 {
    println!("Welcome to zkherd shell! `help` lists the commands, Tab completes them and paths.");
    print!(
        "{}",
        shell::format::event_block("SyncConnected", "None", "null")
    );
    let helper = ShellHelper {
        client: Arc::new(Mutex::new(sh.client())),
        rt: rt.clone(),
    };
    let shared = helper.client.clone();
    let mut rl: Editor<ShellHelper, rustyline::history::DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot start line editing: {e}; pipe commands in instead");
            return 1;
        }
    };
    rl.set_helper(Some(helper));
    let hist = history_file();
    if let Some(h) = &hist {
        let _ = rl.load_history(h);
    }
    let mut code = 0;
    loop {
        let prompt = format!(
            "[zk: {}({}) {}] ",
            sh.servers(),
            sh.state(),
            sh.history.len()
        );
        let line = match rl.readline(&prompt) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        };
        if line.trim().is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line.as_str());
        let words = match shell::words::split(&line) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        let out = rt.block_on(sh.execute(&words));
        code = out.code;
        *shared.lock().unwrap_or_else(|p| p.into_inner()) = sh.client();
        if out.quit {
            code = 0;
            break;
        }
    }
    if let Some(h) = &hist {
        let _ = rl.save_history(h);
    }
    rt.block_on(async {
        let _ = sh.execute(&["quit".to_string()]).await;
    });
    code
}

/// Completes command names (first word) and znode paths (words starting with `/`).
struct ShellHelper {
    client: Arc<Mutex<Option<Client>>>,
    rt: tokio::runtime::Handle,
}

impl Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = &line[..pos];
        let start = head.rfind(char::is_whitespace).map(|i| i + 1).unwrap_or(0);
        let word = &head[start..];
        if start == 0 || head[..start].trim().is_empty() {
            let names = shell::command_names()
                .filter(|n| n.starts_with(word))
                .map(|n| format!("{n} "))
                .collect();
            return Ok((start, names));
        }
        if !word.starts_with('/') {
            return Ok((start, Vec::new()));
        }
        let client = self
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(client) = client else {
            return Ok((start, Vec::new()));
        };
        let cut = word.rfind('/').unwrap_or(0);
        let (dir, prefix) = (if cut == 0 { "/" } else { &word[..cut] }, &word[cut + 1..]);
        let kids = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), client.list_children(dir)).await
        });
        let mut kids = match kids {
            Ok(Ok(k)) => k,
            _ => Vec::new(),
        };
        kids.sort();
        let base = dir.trim_end_matches('/');
        Ok((
            start,
            kids.into_iter()
                .filter(|k| k.starts_with(prefix))
                .map(|k| format!("{base}/{k}"))
                .collect(),
        ))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn zkcli_server_flag_is_rewritten_only_among_the_flags() {
        assert_eq!(
            rewrite_zkcli_flags(v(&["zkherd", "shell", "-server", "h:1", "get", "/a"])),
            v(&["zkherd", "shell", "--server", "h:1", "get", "/a"])
        );
        assert_eq!(
            rewrite_zkcli_flags(v(&["zkherd", "shell", "set", "/a", "-server"])),
            v(&["zkherd", "shell", "set", "/a", "-server"])
        );
        assert_eq!(
            rewrite_zkcli_flags(v(&["zkherd", "up", "-server"])),
            v(&["zkherd", "up", "-server"])
        );
    }
}
