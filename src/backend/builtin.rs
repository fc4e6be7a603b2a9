//! zkherd's own server: `zkherd node --config <zoo.cfg>` as a child process of the same binary.

use std::path::PathBuf;
use std::process::Command;

use super::{Backend, BackendError, ExitClass, ExitInfo};
use crate::render::NodeLayout;
use crate::spec::BackendKind;

#[derive(Debug, Clone)]
pub struct Builtin {
    exe: PathBuf,
    tasks: bool,
}

impl Builtin {
    pub fn locate() -> Result<Builtin, BackendError> {
        let exe = std::env::current_exe().map_err(|e| {
            BackendError::NotInstalled(format!("cannot find the zkherd executable: {e}"))
        })?;
        Ok(Builtin { exe, tasks: false })
    }

    /// The server installed at `exe` on another host (`zkherd export`).
    pub fn at(exe: PathBuf) -> Builtin {
        Builtin { exe, tasks: false }
    }

    /// Run the nodes as tasks inside the supervisor (`runtime = "tasks"`).
    pub fn in_process(self, tasks: bool) -> Builtin {
        Builtin { tasks, ..self }
    }
}

impl Backend for Builtin {
    fn kind(&self) -> BackendKind {
        BackendKind::Builtin
    }

    fn command(&self, node: &NodeLayout) -> Result<Command, BackendError> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("node")
            .arg("--config")
            .arg(&node.zoo_cfg)
            .current_dir(&node.dir)
            .env_remove("RUST_LOG");
        // The supervisor's RUST_LOG is for the supervisor; ZKHERD_NODE_LOG (same syntax) is
        // for the nodes, e.g. `ZKHERD_NODE_LOG=openraft=info,zkherd=debug`.
        if let Ok(filter) = std::env::var("ZKHERD_NODE_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        Ok(cmd)
    }

    fn in_process(&self) -> bool {
        self.tasks
    }

    fn classify_exit(&self, exit: ExitInfo, _log_tail: &str) -> ExitClass {
        match exit {
            ExitInfo::Signal(_) => ExitClass::Crash,
            ExitInfo::Code(0) => ExitClass::Clean,
            ExitInfo::Code(2) => ExitClass::Config(
                "the builtin server rejected conf/zoo.cfg (exit 2); see the node's log".into(),
            ),
            ExitInfo::Code(3) => ExitClass::Config(
                "the builtin server cannot use its data directory (exit 3); see the node's log"
                    .into(),
            ),
            ExitInfo::Code(14) => ExitClass::Config(
                "the builtin server cannot bind its client port (exit 14); free it or change the \
                 base ports"
                    .into(),
            ),
            ExitInfo::Code(_) => ExitClass::Crash,
        }
    }
}
