//! SASL on the client port, as Apache's `SASLAuthenticationProvider` does it: the users come
//! from the `Server` section of a JAAS file (`DigestLoginModule`, `user_NAME="secret"`), and each
//! connection that sends SASL packets (opcode 102) runs one DIGEST-MD5 exchange (RFC 2831)
//! against them. A success gives the connection the id `sasl:NAME`.
//!
//! Both parsers here (the JAAS file, the client's digest-response) are pure functions over
//! untrusted text; `fuzz/fuzz_targets/sasl_digest.rs` drives them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use md5::{Digest, Md5};

/// The realm and server name Apache's server offers (`zk-sasl-md5`); clients put it in their
/// `digest-uri` as `zookeeper/zk-sasl-md5`.
pub const REALM: &str = "zk-sasl-md5";
const PROTOCOL: &str = "zookeeper";
/// The login module a DIGEST-MD5 `Server` section names.
pub const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JaasError {
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Unusable { path: PathBuf, message: String },
}

/// One login module line of a JAAS section: `class flag key="value" ...;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
    pub line: usize,
}

/// A JAAS file: named sections (`Server`, `Client`, ...), each a list of login modules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jaas {
    pub sections: BTreeMap<String, Vec<LoginModule>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Punct(char),
}

/// Split JAAS text into tokens with their line numbers: words, `"quoted"` strings (backslash
/// escapes), `{ } ; =`, and `//`, `/* */` or `#` comments skipped, as Java's ConfigFile does.
fn tokens(text: &str) -> Result<Vec<(Tok, usize)>, (usize, String)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let start = line;
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        None => return Err((start, "a /* comment is never closed".into())),
                        Some('/') if prev == '*' => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            prev = c;
                        }
                    }
                }
            }
            '{' | '}' | ';' | '=' => out.push((Tok::Punct(c), line)),
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err((start, "a quoted value is never closed".into())),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            None => return Err((start, "a quoted value is never closed".into())),
                            Some(e) => s.push(e),
                        },
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c);
                        }
                    }
                }
                out.push((Tok::Quoted(s), start));
            }
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "{};=\"".contains(n) {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push((Tok::Word(s), line));
            }
        }
    }
    Ok(out)
}

impl Jaas {
    /// Parse a JAAS login configuration. `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Jaas, JaasError> {
        let syntax = |line: usize, message: String| JaasError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        };
        let toks = tokens(text).map_err(|(l, m)| syntax(l, m))?;
        let last_line = toks.last().map_or(1, |t| t.1);
        let mut it = toks.into_iter().peekable();
        let mut jaas = Jaas::default();
        let describe = |t: &Option<(Tok, usize)>| match t {
            None => "the end of the file".to_string(),
            Some((Tok::Word(w), _)) | Some((Tok::Quoted(w), _)) => format!("{w:?}"),
            Some((Tok::Punct(p), _)) => format!("'{p}'"),
        };
        while let Some((tok, line)) = it.next() {
            let name = match tok {
                Tok::Word(w) | Tok::Quoted(w) => w,
                Tok::Punct(p) => {
                    return Err(syntax(
                        line,
                        format!("expected a section name, found '{p}'"),
                    ))
                }
            };
            match it.next() {
                Some((Tok::Punct('{'), _)) => {}
                t => {
                    let l = t.as_ref().map_or(last_line, |t| t.1);
                    return Err(syntax(
                        l,
                        format!("expected '{{' after {name:?}, found {}", describe(&t)),
                    ));
                }
            }
            let mut modules = Vec::new();
            loop {
                let t = it.next();
                match t {
                    Some((Tok::Punct('}'), _)) => break,
                    Some((Tok::Word(class), line)) => {
                        let flag = match it.next() {
                            Some((Tok::Word(f), _))
                                if ["required", "requisite", "sufficient", "optional"]
                                    .contains(&f.to_ascii_lowercase().as_str()) =>
                            {
                                f
                            }
                            t => {
                                let l = t.as_ref().map_or(line, |t| t.1);
                                return Err(syntax(
                                    l,
                                    format!(
                                        "expected a control flag (required, requisite, sufficient \
                                         or optional) after {class}, found {}",
                                        describe(&t)
                                    ),
                                ));
                            }
                        };
                        let mut options = BTreeMap::new();
                        loop {
                            let t = it.next();
                            match t {
                                Some((Tok::Punct(';'), _)) => break,
                                Some((Tok::Word(k), kl)) => {
                                    match it.next() {
                                        Some((Tok::Punct('='), _)) => {}
                                        t => {
                                            return Err(syntax(
                                                t.as_ref().map_or(kl, |t| t.1),
                                                format!(
                                                    "expected '=' after option {k}, found {}",
                                                    describe(&t)
                                                ),
                                            ))
                                        }
                                    }
                                    let v = match it.next() {
                                        Some((Tok::Word(v), _)) | Some((Tok::Quoted(v), _)) => v,
                                        t => {
                                            return Err(syntax(
                                                t.as_ref().map_or(kl, |t| t.1),
                                                format!(
                                                    "expected a value for option {k}, found {}",
                                                    describe(&t)
                                                ),
                                            ))
                                        }
                                    };
                                    options.insert(k, v);
                                }
                                t => {
                                    return Err(syntax(
                                        t.as_ref().map_or(last_line, |t| t.1),
                                        format!(
                                        "expected an option or ';' in the {class} entry, found {}",
                                        describe(&t)
                                    ),
                                    ))
                                }
                            }
                        }
                        modules.push(LoginModule {
                            class,
                            flag,
                            options,
                            line,
                        });
                    }
                    t => {
                        return Err(syntax(
                            t.as_ref().map_or(last_line, |t| t.1),
                            format!(
                                "expected a login module class or '}}' in section {name}, found {}",
                                describe(&t)
                            ),
                        ))
                    }
                }
            }
            match it.next() {
                Some((Tok::Punct(';'), _)) => {}
                t => {
                    return Err(syntax(
                        t.as_ref().map_or(last_line, |t| t.1),
                        format!(
                            "expected ';' after the '}}' of section {name}, found {}",
                            describe(&t)
                        ),
                    ))
                }
            }
            if jaas.sections.insert(name.clone(), modules).is_some() {
                return Err(syntax(line, format!("section {name} appears twice")));
            }
        }
        Ok(jaas)
    }

    /// The DIGEST-MD5 users of section `name` (`user_NAME="secret"` options of its
    /// DigestLoginModule). Any other login module is refused: this server speaks DIGEST-MD5
    /// only (no Kerberos/GSSAPI).
    pub fn digest_users(&self, name: &str, path: &Path) -> Result<SaslUsers, JaasError> {
        let unusable = |message: String| JaasError::Unusable {
            path: path.to_path_buf(),
            message,
        };
        let modules = self.sections.get(name).ok_or_else(|| {
            unusable(format!(
                "no `{name}` section; the server's users go in `{name} {{ {DIGEST_LOGIN_MODULE} \
                 required user_NAME=\"secret\"; }};` (zoo.cfg sasl.serverconfig names another \
                 section)"
            ))
        })?;
        let mut users = BTreeMap::new();
        for m in modules {
            if m.class != DIGEST_LOGIN_MODULE {
                return Err(unusable(format!(
                    "line {}: login module {} is not supported; the builtin server does SASL \
                     DIGEST-MD5 only, with {DIGEST_LOGIN_MODULE} (Kerberos/GSSAPI needs the \
                     apache backend)",
                    m.line, m.class
                )));
            }
            for (k, v) in &m.options {
                if let Some(user) = k.strip_prefix("user_") {
                    users.insert(user.to_string(), v.clone());
                }
            }
        }
        if users.is_empty() {
            return Err(unusable(format!(
                "section {name} defines no user (options user_NAME=\"secret\")"
            )));
        }
        Ok(SaslUsers(Arc::new(users)))
    }
}

/// The users a DIGEST-MD5 exchange may authenticate, name → password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslUsers(pub Arc<BTreeMap<String, String>>);

/// Why an exchange failed; the messages follow Java's DigestMD5Server, whose words Apache logs.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SaslError {
    #[error("DIGEST-MD5: digest response format violation: {0}")]
    Format(String),
    #[error("DIGEST-MD5: user {0:?} is not in the list of DIGEST-MD5 users")]
    UnknownUser(String),
    #[error("DIGEST-MD5: wrong password for user {0:?} (mismatched response)")]
    Mismatch(String),
    #[error("DIGEST-MD5: authentication already complete")]
    Complete,
}

/// What one SASL packet from the client gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this token and wait for the client's next one.
    Continue(Vec<u8>),
    /// Authenticated as `id`; send `token` (the rspauth) as the last reply.
    Done { id: String, token: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet: the first packet (empty, for DIGEST-MD5) gets the challenge.
    Start,
    /// The challenge is out; the next packet must be the digest-response.
    Challenged,
    Complete,
}

/// One connection's DIGEST-MD5 exchange, server side.
#[derive(Debug, Clone)]
pub struct DigestMd5 {
    users: SaslUsers,
    /// The server nonce of this exchange (random per connection, given by the caller).
    nonce: String,
    phase: Phase,
}

/// Split a digest-challenge/response into its directives: `key=value` or `key="quoted"`,
/// comma-separated (empty elements allowed, RFC 2831's `#rule`), backslash escapes inside
/// quotes. Keys are lower-cased. Pure; fuzzed.
pub fn parse_directives(text: &[u8]) -> Result<Vec<(String, Vec<u8>)>, SaslError> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut i = 0;
    let n = text.len();
    let ws = |b: u8| b == b' ' || b == b'\t' || b == b'\r' || b == b'\n';
    loop {
        while i < n && (ws(text[i]) || text[i] == b',') {
            i += 1;
        }
        if i >= n {
            return Ok(out);
        }
        let start = i;
        while i < n && text[i] != b'=' && text[i] != b',' && !ws(text[i]) {
            i += 1;
        }
        let key = String::from_utf8_lossy(&text[start..i]).to_ascii_lowercase();
        while i < n && ws(text[i]) {
            i += 1;
        }
        if i >= n || text[i] != b'=' {
            return Err(SaslError::Format(format!("directive {key:?} has no value")));
        }
        i += 1;
        while i < n && ws(text[i]) {
            i += 1;
        }
        let mut value = Vec::new();
        if i < n && text[i] == b'"' {
            i += 1;
            loop {
                match text.get(i) {
                    None => {
                        return Err(SaslError::Format(format!(
                            "the quoted value of {key:?} is never closed"
                        )))
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < n => {
                        value.push(text[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < n && text[i] != b',' {
                value.push(text[i]);
                i += 1;
            }
            while value.last().is_some_and(|&b| ws(b)) {
                value.pop();
            }
        }
        while i < n && ws(text[i]) {
            i += 1;
        }
        if i < n && text[i] != b',' {
            return Err(SaslError::Format(format!(
                "unexpected text after the value of {key:?}"
            )));
        }
        if key.is_empty() {
            return Err(SaslError::Format("a directive has no name".into()));
        }
        out.push((key, value));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 2831 2.1.2.1: with `charset=utf-8`, a string whose characters all fit ISO 8859-1 is
/// hashed in ISO 8859-1, anything else in UTF-8; without it the bytes are taken as sent.
fn hash_form(bytes: &[u8], utf8: bool) -> Vec<u8> {
    if !utf8 {
        return bytes.to_vec();
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if s.chars().all(|c| (c as u32) < 256) => s.chars().map(|c| c as u8).collect(),
        _ => bytes.to_vec(),
    }
}

impl DigestMd5 {
    /// An exchange against `users`, with this connection's server nonce.
    pub fn new(users: SaslUsers, nonce: String) -> DigestMd5 {
        DigestMd5 {
            users,
            nonce,
            phase: Phase::Start,
        }
    }

    /// The digest-challenge, as Java's DigestMD5Server words it (no qop: `auth` only).
    fn challenge(&self) -> Vec<u8> {
        format!(
            "realm=\"{REALM}\",nonce=\"{}\",charset=utf-8,algorithm=md5-sess",
            self.nonce
        )
        .into_bytes()
    }

    /// Take the client's next token.
    pub fn step(&mut self, token: &[u8]) -> Result<SaslStep, SaslError> {
        match self.phase {
            Phase::Start => {
                // DIGEST-MD5 has no initial response; a client that sends one anyway has
                // started with its response to a challenge it never got.
                if !token.is_empty() {
                    self.phase = Phase::Complete;
                    return Err(SaslError::Format(
                        "the first packet must be empty (DIGEST-MD5 has no initial response; \
                         is the client using another mechanism?)"
                            .into(),
                    ));
                }
                self.phase = Phase::Challenged;
                Ok(SaslStep::Continue(self.challenge()))
            }
            Phase::Challenged => {
                self.phase = Phase::Complete;
                self.verify(token)
            }
            Phase::Complete => Err(SaslError::Complete),
        }
    }

    fn verify(&self, token: &[u8]) -> Result<SaslStep, SaslError> {
        let mut d: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in parse_directives(token)? {
            if d.insert(k.clone(), v).is_some() {
                return Err(SaslError::Format(format!("directive {k:?} appears twice")));
            }
        }
        let get = |k: &str| d.get(k).map(|v| v.as_slice());
        let need = |k: &str| {
            get(k).ok_or_else(|| SaslError::Format(format!("the response has no {k} directive")))
        };
        let utf8 = match get("charset") {
            None => false,
            Some(c) if c.eq_ignore_ascii_case(b"utf-8") => true,
            Some(c) => {
                return Err(SaslError::Format(format!(
                    "charset {:?} is not utf-8",
                    String::from_utf8_lossy(c)
                )))
            }
        };
        let username = need("username")?;
        let realm = get("realm").unwrap_or(b"");
        if get("realm").is_some() && realm != REALM.as_bytes() {
            return Err(SaslError::Format(format!(
                "nonexistent realm {:?}; this server offers {REALM:?}",
                String::from_utf8_lossy(realm)
            )));
        }
        if need("nonce")? != self.nonce.as_bytes() {
            return Err(SaslError::Format("mismatched nonce".into()));
        }
        let cnonce = need("cnonce")?;
        let nc = need("nc")?;
        if std::str::from_utf8(nc)
            .ok()
            .and_then(|s| u32::from_str_radix(s, 16).ok())
            != Some(1)
        {
            return Err(SaslError::Format(format!(
                "nonce count {:?} is not 00000001",
                String::from_utf8_lossy(nc)
            )));
        }
        let qop = get("qop").unwrap_or(b"auth");
        if qop != b"auth" {
            return Err(SaslError::Format(format!(
                "qop {:?} is not offered (only auth)",
                String::from_utf8_lossy(qop)
            )));
        }
        let uri = need("digest-uri")?;
        if !uri.eq_ignore_ascii_case(format!("{PROTOCOL}/{REALM}").as_bytes()) {
            return Err(SaslError::Format(format!(
                "mismatched digest-uri {:?}; expected \"{PROTOCOL}/{REALM}\"",
                String::from_utf8_lossy(uri)
            )));
        }
        let response = need("response")?;
        let user = String::from_utf8_lossy(username).into_owned();
        let password = self
            .users
            .0
            .get(&user)
            .ok_or_else(|| SaslError::UnknownUser(user.clone()))?;
        let authzid = get("authzid");
        let hash = |a2: &[u8]| -> String {
            let mut inner = Md5::new();
            inner.update(hash_form(username, utf8));
            inner.update(b":");
            inner.update(hash_form(realm, utf8));
            inner.update(b":");
            inner.update(hash_form(password.as_bytes(), utf8));
            let mut a1 = Md5::new();
            a1.update(inner.finalize());
            a1.update(b":");
            a1.update(self.nonce.as_bytes());
            a1.update(b":");
            a1.update(cnonce);
            if let Some(z) = authzid {
                a1.update(b":");
                a1.update(z);
            }
            let mut kd = Md5::new();
            kd.update(hex(&a1.finalize()));
            kd.update(b":");
            kd.update(self.nonce.as_bytes());
            kd.update(b":");
            kd.update(nc);
            kd.update(b":");
            kd.update(cnonce);
            kd.update(b":");
            kd.update(qop);
            kd.update(b":");
            kd.update(hex(&Md5::digest(a2)));
            hex(&kd.finalize())
        };
        let mut a2 = b"AUTHENTICATE:".to_vec();
        a2.extend_from_slice(uri);
        // Lower-case hex, as RFC 2831 writes it; Java compares the bytes exactly.
        if hash(&a2).as_bytes() != response {
            return Err(SaslError::Mismatch(user));
        }
        let mut a2 = b":".to_vec();
        a2.extend_from_slice(uri);
        Ok(SaslStep::Done {
            // Apache authorizes the authentication id (its short Kerberos name, which for a
            // plain user name is the name), whatever authzid the client asked for.
            id: user,
            token: format!("rspauth={}", hash(&a2)).into_bytes(),
        })
    }
}

/// `sasl` ACL ids must be valid Kerberos names, as Apache's SASLAuthenticationProvider checks:
/// a name with `@` must read `service[/host]@realm` with no further `/` or `@`.
pub fn valid_sasl_id(id: &str) -> bool {
    let Some((left, realm)) = id.split_once('@') else {
        return true;
    };
    if realm.contains(['@', '/']) {
        return false;
    }
    match left.split_once('/') {
        None => true,
        Some((_, host)) => !host.contains('/'),
    }
}

/// A fresh server nonce: 24 random bytes, base64. Without the OS random source there is no
/// safe nonce to give; a Linux kernel always has one.
pub fn new_nonce() -> String {
    use base64::Engine;
    let mut raw = [0u8; 24];
    getrandom::getrandom(&mut raw).expect("the OS random source (getrandom) for a SASL nonce");
    base64::engine::general_purpose::STANDARD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> SaslUsers {
        SaslUsers(Arc::new(BTreeMap::from([(
            "bob".to_string(),
            "bobsecret".to_string(),
        )])))
    }

    /// A client response computed the way RFC 2831 says (independently of `verify`'s code
    /// path: the RFC's own example vector is checked below).
    fn client_response(
        user: &str,
        pass: &str,
        nonce: &str,
        cnonce: &str,
        authzid: Option<&str>,
    ) -> String {
        let mut inner = Md5::new();
        inner.update(format!("{user}:{REALM}:{pass}"));
        let mut a1 = Md5::new();
        a1.update(inner.finalize());
        a1.update(format!(":{nonce}:{cnonce}"));
        if let Some(z) = authzid {
            a1.update(format!(":{z}"));
        }
        let ha1 = hex(&a1.finalize());
        let ha2 = hex(&Md5::digest(format!("AUTHENTICATE:{PROTOCOL}/{REALM}")));
        let resp = hex(&Md5::digest(format!(
            "{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"
        )));
        let z = authzid
            .map(|z| format!(",authzid=\"{z}\""))
            .unwrap_or_default();
        format!(
            "charset=utf-8,username=\"{user}\",realm=\"{REALM}\",nonce=\"{nonce}\",nc=00000001,\
             cnonce=\"{cnonce}\",digest-uri=\"{PROTOCOL}/{REALM}\",maxbuf=65536,response={resp},qop=auth{z}"
        )
    }

    #[test]
    fn the_rfc_2831_example_response_is_computed() {
        // RFC 2831 section 4: chris / secret, realm elwood.innosoft.com, imap.
        let mut inner = Md5::new();
        inner.update("chris:elwood.innosoft.com:secret");
        let mut a1 = Md5::new();
        a1.update(inner.finalize());
        a1.update(":OA6MG9tEQGm2hh:OA6MHXh6VqTrRk");
        let ha1 = hex(&a1.finalize());
        let ha2 = hex(&Md5::digest("AUTHENTICATE:imap/elwood.innosoft.com"));
        let resp = hex(&Md5::digest(format!(
            "{ha1}:OA6MG9tEQGm2hh:00000001:OA6MHXh6VqTrRk:auth:{ha2}"
        )));
        assert_eq!(resp, "d388dad90d4bbd760a152321f2143af7");
    }

    #[test]
    fn a_good_response_authenticates_and_gets_rspauth() {
        let mut s = DigestMd5::new(users(), "N0nce".into());
        let SaslStep::Continue(ch) = s.step(b"").unwrap() else {
            panic!("a challenge first")
        };
        let ch = parse_directives(&ch).unwrap();
        assert!(ch.contains(&("nonce".into(), b"N0nce".to_vec())));
        assert!(ch.contains(&("algorithm".into(), b"md5-sess".to_vec())));
        let r = client_response("bob", "bobsecret", "N0nce", "c1", Some("bob"));
        match s.step(r.as_bytes()).unwrap() {
            SaslStep::Done { id, token } => {
                assert_eq!(id, "bob");
                assert!(token.starts_with(b"rspauth="));
                assert_eq!(token.len(), 8 + 32);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.step(b""), Err(SaslError::Complete));
    }

    #[test]
    fn a_wrong_password_or_user_is_refused() {
        let mut s = DigestMd5::new(users(), "n".into());
        s.step(b"").unwrap();
        let r = client_response("bob", "wrong", "n", "c", None);
        assert_eq!(s.step(r.as_bytes()), Err(SaslError::Mismatch("bob".into())));
        let mut s = DigestMd5::new(users(), "n".into());
        s.step(b"").unwrap();
        let r = client_response("eve", "x", "n", "c", None);
        assert_eq!(
            s.step(r.as_bytes()),
            Err(SaslError::UnknownUser("eve".into()))
        );
    }

    #[test]
    fn replayed_or_malformed_responses_are_refused() {
        let good = client_response("bob", "bobsecret", "old", "c", None);
        let mut s = DigestMd5::new(users(), "new".into());
        s.step(b"").unwrap();
        assert!(matches!(s.step(good.as_bytes()), Err(SaslError::Format(_))));
        for bad in [
            "username=\"bob\"",
            "username=\"bob,",
            "=x",
            "username=\"bob\" junk,nonce=x",
            "username=\"bob\",username=\"eve\"",
        ] {
            let mut s = DigestMd5::new(users(), "n".into());
            s.step(b"").unwrap();
            assert!(
                matches!(s.step(bad.as_bytes()), Err(SaslError::Format(_))),
                "{bad}"
            );
        }
        let mut s = DigestMd5::new(users(), "n".into());
        assert!(
            matches!(s.step(b"\x60\x82GSSAPI token"), Err(SaslError::Format(_))),
            "another mechanism's initial token"
        );
    }

    #[test]
    fn directives_parse_quotes_escapes_and_empty_elements() {
        let d = parse_directives(b" a=1 , ,b=\"x\\\"y,z\",c = tok ").unwrap();
        assert_eq!(
            d,
            vec![
                ("a".into(), b"1".to_vec()),
                ("b".into(), b"x\"y,z".to_vec()),
                ("c".into(), b"tok".to_vec()),
            ]
        );
    }

    #[test]
    fn jaas_files_parse_as_java_reads_them() {
        let text = r#"
            // the server's users
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_super="adm\"in" /* inline */
                user_bob=bobsecret;
            };
            # another
            Client { org.apache.zookeeper.server.auth.DigestLoginModule required username="bob" password="bobsecret"; };
        "#;
        let j = Jaas::parse(text, Path::new("j.conf")).unwrap();
        let u = j.digest_users("Server", Path::new("j.conf")).unwrap();
        assert_eq!(u.0.get("super").unwrap(), "adm\"in");
        assert_eq!(u.0.get("bob").unwrap(), "bobsecret");
        assert_eq!(j.sections["Client"][0].options["username"], "bob");
    }

    #[test]
    fn jaas_errors_name_the_line_and_what_to_do() {
        let e = Jaas::parse("Server {\n x.Y required\n a=\"b\"\n}", Path::new("j")).unwrap_err();
        assert!(e.to_string().starts_with("j:4:"), "{e}");
        let e = Jaas::parse("Server {\n x.Y maybe;\n};", Path::new("j")).unwrap_err();
        assert!(
            e.to_string().contains("j:2:") && e.to_string().contains("control flag"),
            "{e}"
        );
        let j = Jaas::parse(
            "Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true; };",
            Path::new("j"),
        )
        .unwrap();
        let e = j.digest_users("Server", Path::new("j")).unwrap_err();
        assert!(e.to_string().contains("DIGEST-MD5 only"), "{e}");
        let e = j.digest_users("Other", Path::new("j")).unwrap_err();
        assert!(e.to_string().contains("no `Other` section"), "{e}");
    }

    #[test]
    fn sasl_ids_follow_kerberos_name_rules() {
        for ok in ["bob", "", "svc/host@REALM", "bob@REALM", "a/b/c"] {
            assert!(valid_sasl_id(ok), "{ok}");
        }
        for bad in ["a@b@c", "a/b/c@R", "a@R/x"] {
            assert!(!valid_sasl_id(bad), "{bad}");
        }
    }
}
