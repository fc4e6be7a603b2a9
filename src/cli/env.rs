//! `zkherd env`: the connect string in the form a shell, Kafka or a program wants, and with
//! `[security] sasl_users` what a SASL client needs (JAAS file, JVM flags, user).

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::Global;
use crate::ports::PortPlan;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// `export ZK_CONNECT=…` lines for `eval "$(zkherd env)"`.
    Shell,
    /// A `zookeeper.connect=` line for Kafka's server.properties.
    Kafka,
    /// An object with the connect string and every node's address.
    Json,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[arg(long, value_enum, default_value_t = Format::Shell)]
    format: Format,
}

/// The SASL client settings of a spec with `[security] sasl_users`.
struct SaslClient {
    user: String,
    password: String,
    jaas: std::path::PathBuf,
    jaas_text: String,
}

impl SaslClient {
    fn of(spec: &crate::spec::EnsembleSpec) -> Option<SaslClient> {
        let (user, password) = spec.security.sasl_client()?;
        let (_, client) = crate::render::jaas_files(spec)?;
        Some(SaslClient {
            user: user.to_string(),
            password: password.to_string(),
            jaas: spec.dir.join(crate::render::JAAS_CLIENT),
            jaas_text: client,
        })
    }

    /// The JVM flags Java clients (zkCli.sh, Curator, Kafka) need.
    fn jvm_flags(&self) -> String {
        format!(
            "-Djava.security.auth.login.config={} -Dzookeeper.sasl.client=true \
             -Dzookeeper.sasl.clientconfig=Client",
            self.jaas.display()
        )
    }

    fn commented_jaas(&self) -> String {
        self.jaas_text
            .lines()
            .filter(|l| !l.starts_with("//"))
            .map(|l| format!("#   {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub async fn run(g: &Global, a: EnvArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    let plan = PortPlan::new(&spec);
    let connect = plan.connect_string();
    let sasl = SaslClient::of(&spec);
    match a.format {
        Format::Shell => {
            println!("export ZK_CONNECT={connect}");
            println!("export ZOOKEEPER_CONNECT={connect}");
            if let Some(s) = &sasl {
                println!(
                    "# SASL DIGEST-MD5 as {}: zkCli.sh reads CLIENT_JVMFLAGS; kazoo takes \
                     sasl_options={{'mechanism': 'DIGEST-MD5', 'username': $ZK_SASL_USER, \
                     'password': $ZK_SASL_PASSWORD}}. {} holds:",
                    s.user,
                    s.jaas.display()
                );
                println!("{}", s.commented_jaas());
                println!("export ZK_SASL_JAAS={}", s.jaas.display());
                println!("export ZK_SASL_USER={}", shell_quote(&s.user));
                println!("export ZK_SASL_PASSWORD={}", shell_quote(&s.password));
                println!("export CLIENT_JVMFLAGS=\"{}\"", s.jvm_flags());
            }
        }
        Format::Kafka => {
            println!("zookeeper.connect={connect}");
            if let Some(s) = &sasl {
                println!(
                    "# SASL DIGEST-MD5 as {}: Kafka's ZooKeeper client reads SASL from JVM \
                     properties, not from this file. Start Kafka with\n\
                     #   KAFKA_OPTS=\"{}\"\n\
                     # where {} holds:",
                    s.user,
                    s.jvm_flags(),
                    s.jaas.display()
                );
                println!("{}", s.commented_jaas());
                println!(
                    "# Kafka then creates its znodes readable by sasl:{} only with:\n\
                     # zookeeper.set.acl=true",
                    s.user
                );
            }
        }
        Format::Json => {
            let nodes: Vec<_> = plan
                .nodes
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "id": n.id,
                        "membership": n.membership,
                        "host": n.host.to_string(),
                        "host_name": spec.host_name(n.id),
                        "client_port": n.client,
                        "quorum_port": n.quorum,
                        "election_port": n.election,
                    })
                })
                .collect();
            let mut v = serde_json::json!({
                "cluster": spec.name,
                "connect_string": connect,
                "nodes": nodes,
            });
            if let Some(s) = &sasl {
                v["sasl"] = serde_json::json!({
                    "mechanism": "DIGEST-MD5",
                    "username": s.user,
                    "password": s.password,
                    "jaas_file": s.jaas.display().to_string(),
                    "jvm_flags": s.jvm_flags(),
                });
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(0)
}

/// A word for `sh`: single-quoted unless it is plainly safe.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/@%+=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
