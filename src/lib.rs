//! zkherd runs a real ZooKeeper ensemble on one machine, keeps it alive, and tells you its state.
//!
//! The path of a `zkherd up`, and the module that owns each step:
//!
//! - [`spec`] — `zkherd.toml`: what the user wants, validated with file:line:column errors.
//! - [`ports`] — the port plan (node i gets base + i − 1) and the preflight bind check that
//!   names the process holding a port.
//! - [`render`] — instance directories (`conf/zoo.cfg`, `data/myid`, …) from `templates/`;
//!   `zoo.cfg` is the contract every backend consumes.
//! - [`backend`] — how one node is launched and how its exits are judged (`builtin`, `apache`).
//! - [`supervisor`] — one job per node (spawn, restart with backoff, crash-loop verdict, stop,
//!   kill, pause), the control socket, and the records that find stale processes.
//! - [`probe`] — four-letter-word client and parsers (`srvr`, `mntr`, `ruok`, `cons`).
//! - [`status`] — one status format for every backend, and the verdict on the ensemble.
//! - [`server`] — the builtin ZooKeeper-compatible server: protocol, tree, sessions, watches,
//!   durability, and replication on openraft.
//! - [`export`] — per-host bundles (zoo.cfg, myid, systemd unit, init script) for members that
//!   run without the supervisor, rendered by the same code as `up`.
//! - [`shell`] — `zkherd shell`: zkCli.sh's commands and output shapes over any ZooKeeper,
//!   and subtrees as JSON (`dump`/`load`).
//! - [`ui`] — the dashboard (`zkherd ui`, `up --ui`): one embedded page over a loopback JSON
//!   API (status, timeline, logs, znodes, faults).
//! - [`testing`] — an in-process builtin ensemble for Rust integration tests.
//! - `cli` — the `zkherd` command, one file per subcommand (binary only).

pub mod backend;
pub mod chaos;
#[doc(hidden)]
pub mod cli;
pub mod export;
pub mod ports;
pub mod probe;
pub mod render;
pub mod server;
pub mod shell;
pub mod spec;
pub mod status;
pub mod supervisor;
pub mod testing;
pub mod ui;
