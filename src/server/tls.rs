//! TLS on `secureClientPort`, as Apache configures it: key and trust stores named by
//! `ssl.keyStore.location` / `ssl.trustStore.location` (PEM or PKCS#12, with their `.type` and
//! `.password`), client certificates asked for by `ssl.clientAuth` (need, the default; want;
//! none), and the client certificate's subject as the connection's `x509` id, as Apache's
//! X509AuthenticationProvider gives it.
//!
//! Also the client side for zkherd's own tools (status, wait, shell) on TLS-only clusters.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    Store { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
}

/// A key or trust store file (Apache's `ssl.keyStore.*` / `ssl.trustStore.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub location: PathBuf,
    /// `PEM`, `PKCS12`, `JKS`, `BCFKS`; `None` = from the file name, as Apache infers it.
    pub kind: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Pem,
    Pkcs12,
}

/// `ssl.clientAuth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// Asked for; a client without one is let in (with no x509 id).
    Want,
    /// Required (Apache's default).
    #[default]
    Need,
}

impl ClientAuth {
    pub fn parse(v: &str) -> Option<ClientAuth> {
        match v.trim().to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "want" => Some(ClientAuth::Want),
            "need" => Some(ClientAuth::Need),
            _ => None,
        }
    }
}

impl Store {
    fn err(&self, message: impl Into<String>) -> TlsError {
        TlsError::Store {
            path: self.location.clone(),
            message: message.into(),
        }
    }

    fn kind(&self) -> Result<StoreKind, TlsError> {
        let name = match &self.kind {
            Some(k) => k.to_ascii_uppercase(),
            None => {
                let file = self.location.to_string_lossy().to_ascii_lowercase();
                if file.ends_with(".pem") || file.ends_with(".crt") {
                    "PEM".into()
                } else if file.ends_with(".p12") || file.ends_with(".pfx") {
                    "PKCS12".into()
                } else if file.ends_with(".jks") {
                    "JKS".into()
                } else if file.ends_with(".bcfks") {
                    "BCFKS".into()
                } else {
                    return Err(self.err(
                        "cannot tell the store type from the file name; set its .type to PEM or \
                         PKCS12",
                    ));
                }
            }
        };
        match name.as_str() {
            "PEM" => Ok(StoreKind::Pem),
            "PKCS12" => Ok(StoreKind::Pkcs12),
            "JKS" | "BCFKS" => Err(self.err(format!(
                "{name} stores are Java-only; convert it with `keytool -importkeystore -srckeystore \
                 {} -destkeystore store.p12 -deststoretype PKCS12` and name the .p12 (type PKCS12)",
                self.location.display()
            ))),
            other => Err(self.err(format!("store type {other:?} is not PEM, PKCS12, JKS or BCFKS"))),
        }
    }

    fn read(&self) -> Result<Vec<u8>, TlsError> {
        std::fs::read(&self.location).map_err(|e| self.err(format!("cannot read: {e}")))
    }

    fn pkcs12(&self, data: &[u8]) -> Result<p12_keystore::KeyStore, TlsError> {
        p12_keystore::KeyStore::from_pkcs12(data, self.password.as_deref().unwrap_or(""))
            .map_err(|e| self.err(format!("not a PKCS#12 store this password opens: {e}")))
    }

    /// A certificate chain and its private key.
    pub fn key_and_chain(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let kind = self.kind()?;
        let data = self.read()?;
        match kind {
            StoreKind::Pkcs12 => {
                let ks = self.pkcs12(&data)?;
                let (_, chain) = ks
                    .private_key_chain()
                    .ok_or_else(|| self.err("the PKCS#12 store holds no private key"))?;
                let certs = chain
                    .chain()
                    .iter()
                    .map(|c| CertificateDer::from(c.as_der().to_vec()))
                    .collect::<Vec<_>>();
                if certs.is_empty() {
                    return Err(self.err("the PKCS#12 key has no certificate"));
                }
                Ok((
                    certs,
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().to_vec())),
                ))
            }
            StoreKind::Pem => {
                let (certs, keys) = self.pem_sections(&data)?;
                let key = keys.into_iter().next().ok_or_else(|| {
                    self.err("no private key (BEGIN PRIVATE KEY) in this PEM file")
                })?;
                if certs.is_empty() {
                    return Err(self.err("no certificate (BEGIN CERTIFICATE) in this PEM file"));
                }
                Ok((certs, key))
            }
        }
    }

    /// The trusted certificates.
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let kind = self.kind()?;
        let data = self.read()?;
        let certs = match kind {
            StoreKind::Pkcs12 => {
                let ks = self.pkcs12(&data)?;
                let mut certs = Vec::new();
                for (_, e) in ks.entries() {
                    match e {
                        p12_keystore::KeyStoreEntry::Certificate(c) => {
                            certs.push(CertificateDer::from(c.as_der().to_vec()))
                        }
                        p12_keystore::KeyStoreEntry::PrivateKeyChain(k) => certs.extend(
                            k.chain()
                                .iter()
                                .map(|c| CertificateDer::from(c.as_der().to_vec())),
                        ),
                    }
                }
                certs
            }
            StoreKind::Pem => self.pem_sections(&data)?.0,
        };
        if certs.is_empty() {
            return Err(self.err("holds no certificate"));
        }
        Ok(certs)
    }

    fn pem_sections(
        &self,
        data: &[u8],
    ) -> Result<(Vec<CertificateDer<'static>>, Vec<PrivateKeyDer<'static>>), TlsError> {
        let parsed = pem::parse_many(data).map_err(|e| self.err(format!("not PEM: {e}")))?;
        let mut certs = Vec::new();
        let mut keys = Vec::new();
        for p in parsed {
            let der = p.contents().to_vec();
            match p.tag() {
                "CERTIFICATE" => certs.push(CertificateDer::from(der)),
                "PRIVATE KEY" => keys.push(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))),
                "RSA PRIVATE KEY" => keys.push(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))),
                "EC PRIVATE KEY" => keys.push(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))),
                "ENCRYPTED PRIVATE KEY" => {
                    use pkcs8::der::Decode;
                    let password = self.password.as_deref().ok_or_else(|| {
                        self.err("the private key is encrypted and the store has no .password")
                    })?;
                    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der)
                        .map_err(|e| self.err(format!("bad encrypted private key: {e}")))?;
                    let doc = info.decrypt(password).map_err(|e| {
                        self.err(format!(
                            "cannot decrypt the private key with .password: {e}"
                        ))
                    })?;
                    keys.push(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                        doc.as_bytes().to_vec(),
                    )));
                }
                _ => {}
            }
        }
        Ok((certs, keys))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(
    certs: Vec<CertificateDer<'static>>,
    store: &Store,
) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| store.err(format!("a certificate cannot be trusted: {e}")))?;
    }
    Ok(roots)
}

/// The server side of the secure client port.
pub fn server_config(
    key_store: &Store,
    trust_store: Option<&Store>,
    client_auth: ClientAuth,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (chain, key) = key_store.key_and_chain()?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (client_auth, trust_store) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::Config(
                "ssl.clientAuth asks for client certificates, but no ssl.trustStore.location \
                 says which to trust; name one, or set ssl.clientAuth=none"
                    .into(),
            ))
        }
        (auth, Some(ts)) => {
            let roots = roots(ts.certificates()?, ts)?;
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            );
            let v = if auth == ClientAuth::Want {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| ts.err(format!("cannot verify clients with it: {e}")))?,
            )
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| key_store.err(format!("the key does not fit the certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// The client side, for zkherd's tools: trust `trust`, present `key` when given.
pub fn client_config(
    trust: &Store,
    key: Option<&Store>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = roots(trust.certificates()?, trust)?;
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let c = match key {
        Some(k) => {
            let (chain, pk) = k.key_and_chain()?;
            b.with_client_auth_cert(chain, pk)
                .map_err(|e| k.err(format!("the key does not fit the certificate: {e}")))?
        }
        None => b.with_no_client_auth(),
    };
    Ok(Arc::new(c))
}

/// The subject of a certificate as Java's `X500Principal.getName()` writes it (RFC 2253):
/// the RDNs in reverse order, the RFC's keywords, other attributes as `OID=#hex`.
pub fn x509_id(cert_der: &[u8]) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut parts = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let keyword = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.6" => Some("C"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "2.5.4.9" => Some("STREET"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            let text = match (keyword, atv.as_str()) {
                (Some(k), Ok(v)) => format!("{k}={}", rfc2253_escape(v)),
                _ => {
                    // The attribute's whole DER encoding (tag, length, value) in hex.
                    let any = atv.attr_value();
                    let mut der = Vec::new();
                    der.push(any.header.tag().0 as u8);
                    let data = any.data;
                    if data.len() < 128 {
                        der.push(data.len() as u8);
                    } else {
                        let len = data.len().to_be_bytes();
                        let skip = len.iter().take_while(|&&b| b == 0).count();
                        der.push(0x80 | (len.len() - skip) as u8);
                        der.extend_from_slice(&len[skip..]);
                    }
                    der.extend_from_slice(data);
                    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{}=#{hex}", keyword.map(str::to_string).unwrap_or(oid))
                }
            };
            parts.push(text);
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// RFC 2253 section 2.4 escaping.
fn rfc2253_escape(v: &str) -> String {
    let mut out = String::new();
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `id` parses as an X.500 name, as Apache's X509AuthenticationProvider.isValid asks
/// of `x509` ACL ids (Java's `new X500Principal(id)`): `attr=value` pairs separated by `,` or
/// `;` (or `+` within an RDN), attributes a known keyword or a dotted OID, values plain,
/// quoted or `#hex`; the empty name too.
pub fn valid_x500_name(id: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "CN",
        "C",
        "L",
        "S",
        "ST",
        "O",
        "OU",
        "T",
        "IP",
        "STREET",
        "DC",
        "DNQUALIFIER",
        "DNQ",
        "SURNAME",
        "GIVENNAME",
        "INITIALS",
        "GENERATION",
        "EMAIL",
        "EMAILADDRESS",
        "UID",
        "SERIALNUMBER",
    ];
    if id.trim().is_empty() {
        return true;
    }
    let b = id.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !matches!(b[i], b',' | b';' | b'+') {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return false;
        }
        let attr = id[start..i].trim();
        let oid = attr
            .strip_prefix("OID.")
            .or(attr.strip_prefix("oid."))
            .unwrap_or(attr);
        let is_oid = !oid.is_empty()
            && oid.split('.').count() >= 2
            && oid
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
        if !is_oid && !KEYWORDS.contains(&attr.to_ascii_uppercase().as_str()) {
            return false;
        }
        i += 1;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i < b.len() && b[i] == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return false,
                    Some(b'\\') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
        } else if i < b.len() && b[i] == b'#' {
            let s = i + 1;
            i += 1;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
            if (i - s) % 2 != 0 || i == s {
                return false;
            }
        } else {
            while i < b.len() && !matches!(b[i], b',' | b';' | b'+') {
                if b[i] == b'\\' {
                    i += 1;
                    if i >= b.len() {
                        return false;
                    }
                } else if matches!(b[i], b'"' | b'<' | b'>' | b'=') {
                    return false;
                }
                i += 1;
            }
        }
        if i >= b.len() {
            return true;
        }
        if !matches!(b[i], b',' | b';' | b'+') {
            return false;
        }
        i += 1;
    }
}

/// A cluster's TLS material as `zkherd up --tls` mints it (`<dir>/tls/`).
pub struct Minted {
    pub ca: PathBuf,
    /// Server certificate and key, one PEM file (Apache's PEM key store wants both in one).
    pub server: PathBuf,
    /// Client certificate and key, one PEM file; also apart, for clients that want two files.
    pub client: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Minted {
    pub fn in_dir(tls_dir: &Path) -> Minted {
        Minted {
            ca: tls_dir.join("ca.pem"),
            server: tls_dir.join("server.pem"),
            client: tls_dir.join("client.pem"),
            client_cert: tls_dir.join("client-cert.pem"),
            client_key: tls_dir.join("client-key.pem"),
        }
    }

    /// The subject of the minted client certificate, its `x509` id.
    pub const CLIENT_ID: &'static str = "CN=zkherd-client,O=zkherd";

    /// A client that trusts the minted CA and presents the minted client certificate.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let pem = |p: &Path| Store {
            location: p.to_path_buf(),
            kind: Some("PEM".into()),
            password: None,
        };
        client_config(&pem(&self.ca), Some(&pem(&self.client)))
    }

    /// The CA, client certificate and key as PEM text (for clients that take text).
    pub fn pem_identity(&self) -> std::io::Result<(String, String, String)> {
        let read = std::fs::read_to_string;
        Ok((
            read(&self.ca)?,
            read(&self.client_cert)?,
            read(&self.client_key)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x500_names_are_checked_as_java_parses_them() {
        for ok in [
            "",
            "CN=client,O=zkherd",
            "cn=a; o=b",
            "CN=a+OU=b,O=c",
            "CN=\"a, b\",O=c",
            "CN=a\\,b",
            "1.2.840.113549.1.9.1=#160161",
            "OID.2.5.4.3=x",
            "EMAILADDRESS=a@b",
        ] {
            assert!(valid_x500_name(ok), "{ok}");
        }
        for bad in [
            "client", "CN", "XX=a", "CN=a,", "CN=\"a", "CN=#abc", "CN=a=b",
        ] {
            assert!(!valid_x500_name(bad), "{bad}");
        }
    }

    #[test]
    fn values_are_escaped_as_rfc_2253_says() {
        assert_eq!(rfc2253_escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(rfc2253_escape("#x "), "\\#x\\ ");
    }
}

/// Mint a CA, a server certificate (for `hosts` and localhost) and a client certificate
/// ([`Minted::CLIENT_ID`]) into `tls_dir`, unless they are there already. Keys are 0600.
pub fn mint(tls_dir: &Path, hosts: &[std::net::IpAddr], cluster: &str) -> Result<Minted, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let m = Minted::in_dir(tls_dir);
    if [&m.ca, &m.server, &m.client, &m.client_cert, &m.client_key]
        .iter()
        .all(|p| p.is_file())
    {
        return Ok(m);
    }
    let fail =
        |what: &str, e: rcgen::Error| TlsError::Config(format!("cannot mint the {what}: {e}"));
    std::fs::create_dir_all(tls_dir).map_err(|e| TlsError::Store {
        path: tls_dir.to_path_buf(),
        message: format!("cannot create: {e}"),
    })?;
    let ca_key = KeyPair::generate().map_err(|e| fail("CA key", e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail("CA", e))?;
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::OrganizationName, "zkherd");
    ca.distinguished_name
        .push(DnType::CommonName, format!("zkherd CA ({cluster})"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| fail("CA", e))?;

    let leaf = |cn: &str, server: bool| -> Result<(String, String), TlsError> {
        let key = KeyPair::generate().map_err(|e| fail("key", e))?;
        let names = if server {
            vec!["localhost".to_string()]
        } else {
            vec![]
        };
        let mut p = CertificateParams::new(names).map_err(|e| fail(cn, e))?;
        // DER order O, CN: Java names it CN=…,O=… (rcgen starts with a CN of its own).
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "zkherd");
        p.distinguished_name.push(DnType::CommonName, cn);
        if server {
            for h in hosts {
                p.subject_alt_names.push(SanType::IpAddress(*h));
            }
        }
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = p
            .signed_by(&key, &ca_cert, &ca_key)
            .map_err(|e| fail(cn, e))?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (server_cert, server_key) = leaf("zkherd-server", true)?;
    let (client_cert, client_key) = leaf("zkherd-client", false)?;
    let write = |path: &Path, text: &str, mode: u32| -> Result<(), TlsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| TlsError::Store {
                path: path.to_path_buf(),
                message: format!("cannot write: {e}"),
            })
    };
    write(&tls_dir.join("ca-key.pem"), &ca_key.serialize_pem(), 0o600)?;
    write(&m.ca, &ca_cert.pem(), 0o644)?;
    write(&m.server, &format!("{server_key}{server_cert}"), 0o600)?;
    write(&m.client, &format!("{client_key}{client_cert}"), 0o600)?;
    write(&m.client_cert, &client_cert, 0o644)?;
    write(&m.client_key, &client_key, 0o600)?;
    Ok(m)
}

#[cfg(test)]
mod mint_tests {
    use super::*;

    #[test]
    fn minted_material_loads_on_both_sides_and_names_the_client() {
        let t = tempfile::tempdir().unwrap();
        let m = mint(t.path(), &["127.0.0.1".parse().unwrap()], "c").unwrap();
        let pem = |p: &Path| Store {
            location: p.to_path_buf(),
            kind: None,
            password: None,
        };
        server_config(&pem(&m.server), Some(&pem(&m.ca)), ClientAuth::Need).unwrap();
        client_config(&pem(&m.ca), Some(&pem(&m.client))).unwrap();
        let (chain, _) = pem(&m.client).key_and_chain().unwrap();
        assert_eq!(x509_id(&chain[0]).as_deref(), Some(Minted::CLIENT_ID));
        use std::os::unix::fs::PermissionsExt;
        for k in [&m.server, &m.client, &m.client_key] {
            assert_eq!(
                std::fs::metadata(k).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // A second call keeps what is there.
        let before = std::fs::read(&m.ca).unwrap();
        mint(t.path(), &[], "c").unwrap();
        assert_eq!(std::fs::read(&m.ca).unwrap(), before);
    }

    #[test]
    fn store_errors_name_the_file_and_the_fix() {
        let t = tempfile::tempdir().unwrap();
        let jks = Store {
            location: t.path().join("k.jks"),
            kind: None,
            password: None,
        };
        let e = jks.key_and_chain().unwrap_err().to_string();
        assert!(
            e.contains("k.jks") && e.contains("keytool -importkeystore"),
            "{e}"
        );
        let odd = Store {
            location: t.path().join("k.bin"),
            kind: None,
            password: None,
        };
        let e = odd.certificates().unwrap_err().to_string();
        assert!(e.contains("set its .type"), "{e}");
    }
}
