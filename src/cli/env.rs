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

/// The TLS client material of a spec with `[security] tls`, as `up --tls` minted it.
struct TlsClient {
    secure_connect: String,
    ca: std::path::PathBuf,
    /// Certificate and key in one file (Java's PEM key store).
    pem: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl TlsClient {
    fn of(spec: &crate::spec::EnsembleSpec, plan: &PortPlan) -> Option<TlsClient> {
        if !spec.security.tls {
            return None;
        }
        let m = crate::server::tls::Minted::in_dir(&spec.dir.join(crate::render::TLS_DIR));
        Some(TlsClient {
            secure_connect: plan.secure_connect_string()?,
            ca: m.ca,
            pem: m.client,
            cert: m.client_cert,
            key: m.client_key,
        })
    }

    /// zkCli.sh's (and any Java client's) flags: the Netty socket, PEM stores.
    fn jvm_flags(&self) -> String {
        format!(
            "-Dzookeeper.client.secure=true \
             -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty \
             -Dzookeeper.ssl.keyStore.location={} -Dzookeeper.ssl.keyStore.type=PEM \
             -Dzookeeper.ssl.trustStore.location={} -Dzookeeper.ssl.trustStore.type=PEM",
            self.pem.display(),
            self.ca.display()
        )
    }

    /// For CLIENT_JVMFLAGS only: Debian's zkCli.sh misses Netty jars it needs for TLS.
    fn zkcli_classpath(&self) -> Option<String> {
        crate::backend::apache::debian_zkcli_tls_classpath().map(|cp| format!(" -cp {cp}"))
    }
}

pub async fn run(g: &Global, a: EnvArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    let plan = PortPlan::new(&spec);
    let connect = plan.connect_string();
    let sasl = SaslClient::of(&spec);
    let tls = TlsClient::of(&spec, &plan);
    let jvm_flags = [
        sasl.as_ref().map(|s| s.jvm_flags()),
        tls.as_ref().map(|t| t.jvm_flags()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
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
            }
            if let Some(t) = &tls {
                println!(
                    "# TLS (client certificate {}): zkCli.sh -server $ZK_SECURE_CONNECT reads \
                     CLIENT_JVMFLAGS; kazoo: KazooClient(hosts=..., use_ssl=True, \
                     ca=$ZK_TLS_CA, certfile=$ZK_TLS_CERT, keyfile=$ZK_TLS_KEY)",
                    crate::server::tls::Minted::CLIENT_ID
                );
                println!("export ZK_SECURE_CONNECT={}", t.secure_connect);
                println!("export ZK_TLS_CA={}", t.ca.display());
                println!("export ZK_TLS_CERT={}", t.cert.display());
                println!("export ZK_TLS_KEY={}", t.key.display());
            }
            if !jvm_flags.is_empty() {
                let cp = tls.as_ref().and_then(|t| t.zkcli_classpath());
                if cp.is_some() {
                    println!(
                        "# (-cp: Debian's zkCli.sh lacks netty-codec and netty-resolver, which \
                         TLS needs; the last -cp wins)"
                    );
                }
                println!(
                    "export CLIENT_JVMFLAGS=\"{jvm_flags}{}\"",
                    cp.unwrap_or_default()
                );
            }
        }
        Format::Kafka => {
            match &tls {
                // Kafka's ZooKeeper TLS settings (KIP-515) live in server.properties.
                Some(t) => {
                    println!("zookeeper.connect={}", t.secure_connect);
                    println!("zookeeper.ssl.client.enable=true");
                    println!(
                        "zookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty"
                    );
                    println!("zookeeper.ssl.keystore.location={}", t.pem.display());
                    println!("zookeeper.ssl.keystore.type=PEM");
                    println!("zookeeper.ssl.truststore.location={}", t.ca.display());
                    println!("zookeeper.ssl.truststore.type=PEM");
                }
                None => println!("zookeeper.connect={connect}"),
            }
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
            if let Some(t) = &tls {
                v["tls"] = serde_json::json!({
                    "secure_connect_string": t.secure_connect,
                    "ca_file": t.ca.display().to_string(),
                    "cert_file": t.cert.display().to_string(),
                    "key_file": t.key.display().to_string(),
                    "cert_and_key_file": t.pem.display().to_string(),
                    "x509_id": crate::server::tls::Minted::CLIENT_ID,
                    "jvm_flags": t.jvm_flags(),
                });
            }
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
