//! Real Apache ZooKeeper: `java … org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg`.
//!
//! Finds an install (the spec's `apache.home`, `$ZOOKEEPER_HOME`, Debian's package, an unpacked
//! release tarball under /opt) and builds a classpath that logs: Debian's `zookeeper.jar` has no
//! SLF4J binding, so the log4j jars are added explicitly (see shared/docs/apache-zookeeper-debian.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Backend, BackendError, ExitClass, ExitInfo};
use crate::render::NodeLayout;
use crate::spec::{ApacheSettings, BackendKind};

const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";
const DEBIAN_HOME: &str = "/usr/share/zookeeper";
const DEBIAN_JARS: &str = "/usr/share/java";

#[derive(Debug, Clone)]
pub struct Apache {
    java: PathBuf,
    /// Classpath entries after the node's own conf dir.
    classpath: Vec<PathBuf>,
    heap_mb: u32,
}

impl Apache {
    /// Find Java and ZooKeeper, or say what was searched and how to install them.
    pub fn locate(settings: &ApacheSettings) -> Result<Apache, BackendError> {
        let java = find_java(settings.java.as_deref())?;
        let classpath = find_zookeeper(settings.home.as_deref())?;
        Ok(Apache {
            java,
            classpath,
            heap_mb: settings.heap_mb,
        })
    }
}

impl Apache {
    /// ZooKeeper as installed on another host (`zkherd export`): the spec's `apache.java` or
    /// /usr/bin/java, and the jars of `apache.home` when this host has that install too, else
    /// Debian's package layout (`apt-get install zookeeper` on the target).
    pub fn for_host(settings: &ApacheSettings) -> Apache {
        let java = settings
            .java
            .clone()
            .unwrap_or_else(|| PathBuf::from("/usr/bin/java"));
        let classpath = settings
            .home
            .as_deref()
            .and_then(classpath_of)
            .unwrap_or_else(|| {
                ["zookeeper.jar", "slf4j-log4j12.jar", "log4j-1.2.jar"]
                    .iter()
                    .map(|j| Path::new(DEBIAN_JARS).join(j))
                    .collect()
            });
        Apache {
            java,
            classpath,
            heap_mb: settings.heap_mb,
        }
    }
}

fn find_java(configured: Option<&Path>) -> Result<PathBuf, BackendError> {
    let mut searched = Vec::new();
    if let Some(p) = configured {
        if let Some(found) = which(p) {
            return Ok(found);
        }
        return Err(BackendError::NotInstalled(format!(
            "Java not found: apache.java = {} is not an executable file; fix the path in zkherd.toml",
            p.display()
        )));
    }
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let p = PathBuf::from(home).join("bin/java");
        if p.is_file() {
            return Ok(p);
        }
        searched.push(format!("$JAVA_HOME/bin/java ({})", p.display()));
    }
    if let Some(p) = which(Path::new("java")) {
        return Ok(p);
    }
    searched.push("java on PATH".into());
    Err(BackendError::NotInstalled(format!(
        "Java not found (searched {}); install it with `apt-get install default-jre-headless` \
         or set apache.java in zkherd.toml",
        searched.join(", ")
    )))
}

fn which(p: &Path) -> Option<PathBuf> {
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(p))
        .find(|c| c.is_file())
}

/// The classpath of a ZooKeeper install, or why none was found.
fn find_zookeeper(configured: Option<&Path>) -> Result<Vec<PathBuf>, BackendError> {
    let how = "install it with `apt-get install zookeeper`, or set ZOOKEEPER_HOME (or apache.home \
               in zkherd.toml) to an unpacked apache-zookeeper-3.x-bin release";
    if let Some(home) = configured {
        return classpath_of(home).ok_or_else(|| {
            BackendError::NotInstalled(format!(
                "ZooKeeper not found: apache.home = {} holds no zookeeper jar (looked in lib/ and the \
                 folder itself); {how}",
                home.display()
            ))
        });
    }
    if let Some(home) = std::env::var_os("ZOOKEEPER_HOME") {
        let home = PathBuf::from(home);
        return classpath_of(&home).ok_or_else(|| {
            BackendError::NotInstalled(format!(
                "ZooKeeper not found: ZOOKEEPER_HOME={} holds no zookeeper jar (looked in lib/ and the \
                 folder itself); {how}",
                home.display()
            ))
        });
    }
    let mut searched = vec![
        "$ZOOKEEPER_HOME (unset)".to_string(),
        DEBIAN_HOME.to_string(),
    ];
    if let Some(cp) = classpath_of(Path::new(DEBIAN_HOME)) {
        return Ok(cp);
    }
    if let Ok(entries) = std::fs::read_dir("/opt") {
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains("zookeeper"))
            })
            .collect();
        dirs.sort();
        for d in dirs.iter().rev() {
            if let Some(cp) = classpath_of(d) {
                return Ok(cp);
            }
        }
    }
    searched.push("/opt/*zookeeper*".into());
    Err(BackendError::NotInstalled(format!(
        "ZooKeeper not found (searched {}); {how}",
        searched.join(", ")
    )))
}

/// Netty jars Debian's zookeeper.jar manifest leaves out although TLS needs them (see
/// `classpath_of`).
const NETTY_MISSING_FROM_DEBIAN_MANIFEST: &[&str] = &[
    "netty-codec.jar",
    "netty-resolver.jar",
    "netty-transport-native-unix-common.jar",
];

/// For Debian's zkCli.sh over TLS: a `-cp` that repeats zkEnv.sh's class path and adds the
/// Netty jars the manifest misses (the last `-cp` on a java command line wins, and zkCli.sh
/// puts `$CLIENT_JVMFLAGS` after its own). None when this is not Debian's layout.
pub fn debian_zkcli_tls_classpath() -> Option<String> {
    let java = Path::new(DEBIAN_JARS);
    if !java.join("zookeeper.jar").is_file() {
        return None;
    }
    let mut cp = vec![
        "/etc/zookeeper/conf".to_string(),
        java.join("zookeeper.jar").display().to_string(),
    ];
    for j in NETTY_MISSING_FROM_DEBIAN_MANIFEST {
        let p = java.join(j);
        if p.is_file() {
            cp.push(p.display().to_string());
        }
    }
    Some(cp.join(":"))
}

fn is_zookeeper_jar(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        n.starts_with("zookeeper")
            && n.ends_with(".jar")
            && !n.contains("jute")
            && !n.contains("contrib")
            && !n.contains("recipes")
            && !n.contains("-it")
            && !n.contains("prometheus")
    })
}

fn jars_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "jar"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn classpath_of(home: &Path) -> Option<Vec<PathBuf>> {
    // A release tarball: every jar in lib/ (it ships its own logging binding).
    for dir in [home.join("lib"), home.to_path_buf()] {
        let jars = jars_in(&dir);
        if jars.iter().any(|j| is_zookeeper_jar(j)) {
            return Some(jars);
        }
    }
    // Debian: scripts in /usr/share/zookeeper, jars in /usr/share/java. zookeeper.jar's manifest
    // names its dependencies but no SLF4J binding, so add log4j explicitly.
    if home.join("bin/zkServer.sh").is_file() || home == Path::new(DEBIAN_HOME) {
        let java = Path::new(DEBIAN_JARS);
        let zk = java.join("zookeeper.jar");
        if zk.is_file() {
            let mut cp = vec![zk];
            // Jetty, the servlet API and Jackson are what the AdminServer needs; without them
            // Apache logs "Unable to load jetty" and serves no /commands.
            for extra in [
                "slf4j-log4j12.jar",
                "log4j-1.2.jar",
                "jetty9-server.jar",
                "jetty9-servlet.jar",
                "jetty9-security.jar",
                "jetty9-http.jar",
                "jetty9-io.jar",
                "jetty9-util.jar",
                "servlet-api.jar",
                "jackson-databind.jar",
                "jackson-core.jar",
                "jackson-annotations.jar",
            ] {
                let p = java.join(extra);
                if p.is_file() {
                    cp.push(p);
                }
            }
            // Netty serves the TLS port (NettyServerCnxnFactory); the manifest names
            // netty-handler but not the codec and resolver jars it needs, so without these
            // Debian's ZooKeeper fails every connection with NoClassDefFoundError:
            // io/netty/handler/codec/ByteToMessageDecoder.
            for extra in NETTY_MISSING_FROM_DEBIAN_MANIFEST {
                let p = java.join(extra);
                if p.is_file() {
                    cp.push(p);
                }
            }
            return Some(cp);
        }
    }
    None
}

impl Backend for Apache {
    fn kind(&self) -> BackendKind {
        BackendKind::Apache
    }

    fn command(&self, node: &NodeLayout) -> Result<Command, BackendError> {
        let mut cp = vec![node.conf_dir.clone()];
        cp.extend(self.classpath.iter().cloned());
        let cp = std::env::join_paths(&cp)
            .map_err(|e| BackendError::NotInstalled(format!("bad classpath: {e}")))?;
        let mut cmd = Command::new(&self.java);
        cmd.arg(format!("-Xmx{}m", self.heap_mb))
            .arg(format!("-Dzookeeper.log.dir={}", node.logs_dir.display()))
            .arg(format!(
                "-Dlog4j.configuration=file:{}",
                node.conf_dir.join("log4j.properties").display()
            ))
            .arg("-Djava.net.preferIPv4Stack=true");
        // Apache reads read-only mode from a JVM system property only (zoo.cfg keys become
        // `zookeeper.`-prefixed properties): pass the zoo.cfg line on.
        let zoo_cfg = std::fs::read_to_string(&node.zoo_cfg).unwrap_or_default();
        if zoo_cfg.contains("PrometheusMetricsProvider")
            && !self.classpath.iter().any(|j| {
                j.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains("prometheus-metrics"))
            })
        {
            return Err(BackendError::NotInstalled(format!(
                "{} asks for Prometheus metrics, but this ZooKeeper install has no \
                 zookeeper-prometheus-metrics jar (Debian's package ships none); set apache.home \
                 to an unpacked apache-zookeeper-3.x-bin release, or [ports] metrics = 0",
                node.zoo_cfg.display()
            )));
        }
        if zoo_cfg
            .lines()
            .any(|l| l.trim().replace(' ', "") == "readonlymode.enabled=true")
        {
            cmd.arg("-Dreadonlymode.enabled=true");
        }
        // The JAAS file, likewise: Java reads it from a system property only.
        if let Some(jaas) = zoo_cfg.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "java.security.auth.login.config").then(|| v.trim().to_string())
        }) {
            cmd.arg(format!("-Djava.security.auth.login.config={jaas}"));
        }
        cmd.arg("-cp")
            .arg(cp)
            .arg(MAIN_CLASS)
            .arg(&node.zoo_cfg)
            .current_dir(&node.dir);
        Ok(cmd)
    }

    fn classify_exit(&self, exit: ExitInfo, log_tail: &str) -> ExitClass {
        classify(exit, log_tail)
    }
}

/// ZooKeeper's exit codes (org.apache.zookeeper.server.ExitCode) and the log lines that
/// distinguish a configuration problem from a crash.
fn classify(exit: ExitInfo, log_tail: &str) -> ExitClass {
    let code = match exit {
        ExitInfo::Signal(_) => return ExitClass::Crash,
        ExitInfo::Code(0) => return ExitClass::Clean,
        ExitInfo::Code(c) => c,
    };
    if log_tail.contains("Address already in use") || log_tail.contains("BindException") {
        return ExitClass::Config(
            "a port of this node is in use by another process (BindException); free it or change \
             the base ports"
                .into(),
        );
    }
    if log_tail.contains("myid file is missing") {
        return ExitClass::Config(
            "data/myid is missing; run `zkherd up` again to re-render the node".into(),
        );
    }
    match code {
        2 => ExitClass::Config(
            "ZooKeeper rejected its configuration (exit 2, INVALID_INVOCATION); check conf/zoo.cfg \
             and the extra keys in zkherd.toml"
                .into(),
        ),
        3 => ExitClass::Config(
            "ZooKeeper cannot access its data directory (exit 3, UNABLE_TO_ACCESS_DATADIR); check \
             permissions and free space"
                .into(),
        ),
        4 => ExitClass::Config(
            "the AdminServer failed to start (exit 4); set [ports] admin = 0 to turn it off".into(),
        ),
        14 => ExitClass::Config(
            "ZooKeeper cannot bind its quorum/election port (exit 14, UNABLE_TO_BIND_QUORUM_PORT); \
             free the port or change the base ports"
                .into(),
        ),
        1 if log_tail.contains("Invalid config") => ExitClass::Config(
            "ZooKeeper rejected its configuration (\"Invalid config\"); check conf/zoo.cfg".into(),
        ),
        _ => ExitClass::Crash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_classified_like_zookeeper_means_them() {
        assert_eq!(classify(ExitInfo::Code(0), ""), ExitClass::Clean);
        assert_eq!(classify(ExitInfo::Signal(9), ""), ExitClass::Crash);
        assert_eq!(
            classify(ExitInfo::Code(1), "NullPointerException"),
            ExitClass::Crash
        );
        assert!(matches!(
            classify(ExitInfo::Code(2), ""),
            ExitClass::Config(_)
        ));
        assert!(matches!(
            classify(ExitInfo::Code(3), ""),
            ExitClass::Config(_)
        ));
        assert!(matches!(
            classify(ExitInfo::Code(14), ""),
            ExitClass::Config(_)
        ));
        assert!(matches!(
            classify(
                ExitInfo::Code(1),
                "java.net.BindException: Address already in use"
            ),
            ExitClass::Config(m) if m.contains("in use")
        ));
        assert!(matches!(
            classify(
                ExitInfo::Code(1),
                "ERROR - Invalid config, exiting abnormally"
            ),
            ExitClass::Config(_)
        ));
    }

    #[test]
    fn an_empty_zookeeper_home_is_reported_with_how_to_install() {
        let tmp = tempfile::tempdir().unwrap();
        let e = find_zookeeper(Some(tmp.path())).unwrap_err().to_string();
        assert!(e.contains(&tmp.path().display().to_string()), "{e}");
        assert!(e.contains("apt-get install zookeeper"), "{e}");
    }

    #[test]
    fn a_release_tarball_layout_is_recognised() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("lib")).unwrap();
        for j in [
            "zookeeper-3.8.4.jar",
            "zookeeper-jute-3.8.4.jar",
            "logback-classic.jar",
        ] {
            std::fs::write(tmp.path().join("lib").join(j), "").unwrap();
        }
        let cp = find_zookeeper(Some(tmp.path())).unwrap();
        assert_eq!(cp.len(), 3);
    }
}
