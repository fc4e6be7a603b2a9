//! The dynamic configuration, as ZooKeeper 3.5+ keeps it in `/zookeeper/config`: one
//! `server.N=host:quorumPort:electionPort:role;clientHost:clientPort` line per member, then
//! `version=<hex zxid>`. This module parses and prints those lines and computes the member list
//! a `reconfig` request asks for, answering the error codes Apache's leader answers
//! (PrepRequestProcessor, 3.8): BadArguments for a malformed server string or a new config
//! with fewer than two voters, MarshallingError for a server id that is not a number.
//!
//! Pure functions: the leader runs them against the committed config; nothing here touches
//! Raft or the network.

use std::collections::BTreeMap;

use super::proto::ErrorCode;

/// One member of the ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub host: String,
    pub quorum: u16,
    pub election: u16,
    pub observer: bool,
    /// `(host, port)` of the client port; None when the line names none (allowed in a
    /// non-incremental config, as in Apache).
    pub client: Option<(String, u16)>,
}

impl Member {
    /// Parse the right-hand side of `server.N=…`.
    pub fn parse(id: u64, spec: &str) -> Result<Member, String> {
        let parts: Vec<&str> = spec.split(';').collect();
        if parts.len() > 2 {
            return Err(format!("{spec:?}: more than one ';'"));
        }
        let port = |s: &str| {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{s:?} is not a port"))
        };
        let client = match parts.get(1).map(|c| c.trim()) {
            None => None,
            Some(c) => match c.rsplit_once(':') {
                Some((h, p)) => Some((h.trim().to_string(), port(p)?)),
                None => Some(("0.0.0.0".to_string(), port(c)?)),
            },
        };
        let peer: Vec<&str> = parts[0].trim().split(':').collect();
        if peer.len() < 3 || peer.len() > 4 {
            return Err(format!(
                "{:?} is not host:quorumPort:electionPort[:role]",
                parts[0]
            ));
        }
        let observer = match peer.get(3).map(|r| r.trim().to_ascii_lowercase()) {
            None => false,
            Some(r) if r == "participant" => false,
            Some(r) if r == "observer" => true,
            Some(r) => return Err(format!("unknown role {r:?}")),
        };
        let host = peer[0].trim();
        if host.is_empty() {
            return Err(format!("{spec:?}: no host"));
        }
        Ok(Member {
            id,
            host: host.to_string(),
            quorum: port(peer[1])?,
            election: port(peer[2])?,
            observer,
            client,
        })
    }

    /// `host:quorum:election:role;clientHost:clientPort`, as Apache prints it.
    pub fn spec(&self) -> String {
        let role = if self.observer {
            "observer"
        } else {
            "participant"
        };
        let mut s = format!("{}:{}:{}:{role}", self.host, self.quorum, self.election);
        if let Some((h, p)) = &self.client {
            s.push_str(&format!(";{h}:{p}"));
        }
        s
    }

    /// The address Raft keeps for this member: `host:quorum:election`.
    pub fn raft_addr(&self) -> String {
        format!("{}:{}:{}", self.host, self.quorum, self.election)
    }
}

/// A member list, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynConfig {
    pub members: BTreeMap<u64, Member>,
}

/// A `reconfig` request's fields (jute `ReconfigRequest`); null strings are None.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReconfigRequest {
    pub joining: Option<String>,
    pub leaving: Option<String>,
    pub new_members: Option<String>,
    pub from_config: i64,
}

/// ZooKeeper's StringUtils.split: split, trim, drop empty pieces.
fn split(s: &str, sep: char) -> Vec<&str> {
    s.split(sep)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// `server.N` → N. A suffix that is not a number is Java's NumberFormatException, which
/// Apache answers as MarshallingError.
fn server_id(key: &str) -> Result<u64, ErrorCode> {
    key[key.rfind('.').map_or(0, |i| i + 1)..]
        .trim()
        .parse::<u64>()
        .map_err(|_| ErrorCode::MarshallingError)
}

impl DynConfig {
    /// Parse config text: `server.N=…` lines (or comma separated); `version=` and blank lines
    /// are skipped.
    pub fn parse(text: &str) -> Result<DynConfig, String> {
        Self::parse_coded(text).map_err(|(_, message)| message)
    }

    /// [`DynConfig::parse`], with the code Apache answers a reconfig whose member list fails
    /// so: MarshallingError for a server id that is not a number, BadArguments otherwise.
    fn parse_coded(text: &str) -> Result<DynConfig, (ErrorCode, String)> {
        let bad = |m: String| (ErrorCode::BadArguments, m);
        let mut members = BTreeMap::new();
        for line in text.split(['\n', ',']) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(bad(format!("{line:?} is not key=value")));
            };
            let k = k.trim();
            if k == "version" {
                continue;
            }
            if !k.starts_with("server.") {
                return Err(bad(format!("{k:?} is not a server.N key")));
            }
            let id =
                server_id(k).map_err(|c| (c, format!("{k:?}: the server id is not a number")))?;
            members.insert(id, Member::parse(id, v).map_err(bad)?);
        }
        Ok(DynConfig { members })
    }

    /// The `server.N=…` lines, by id, joined with newlines (no version line).
    pub fn lines(&self) -> String {
        self.members
            .values()
            .map(|m| format!("server.{}={}", m.id, m.spec()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The text of `/zookeeper/config`: the lines, then `version=<hex>`.
    pub fn text(&self, version: i64) -> String {
        let lines = self.lines();
        if lines.is_empty() {
            format!("version={version:x}")
        } else {
            format!("{lines}\nversion={version:x}")
        }
    }

    pub fn voters(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| !m.observer)
    }

    /// Votes needed in this config: a majority of its voters.
    pub fn quorum(&self) -> usize {
        self.voters().count() / 2 + 1
    }

    /// The config `req` asks for, starting from `self`. Checks in Apache's order: the new
    /// member list parses (non-incremental when `new_members` is set, else `leaving` then
    /// `joining`), then it keeps at least two voters. The version, quorum and ACL checks are
    /// the caller's.
    pub fn plan(&self, req: &ReconfigRequest) -> Result<DynConfig, ErrorCode> {
        let bad = |_| ErrorCode::BadArguments;
        let next = if let Some(members) = &req.new_members {
            DynConfig::parse_coded(members).map_err(|(code, _)| code)?
        } else {
            let mut next = self.clone();
            if let Some(leaving) = &req.leaving {
                for id in split(leaving, ',') {
                    let id = id.parse::<u64>().map_err(|_| ErrorCode::MarshallingError)?;
                    next.members.remove(&id);
                }
            }
            if let Some(joining) = &req.joining {
                for joiner in split(joining, ',') {
                    let parts = split(joiner, '=');
                    if parts.len() != 2 {
                        return Err(ErrorCode::BadArguments);
                    }
                    let id = server_id(parts[0])?;
                    let m = Member::parse(id, parts[1]).map_err(bad)?;
                    // Each joiner names all three ports.
                    if m.client.is_none() {
                        return Err(ErrorCode::BadArguments);
                    }
                    next.members.insert(id, m);
                }
            }
            next
        };
        // Two members answering on one address could never both work.
        let mut seen = BTreeMap::new();
        for m in next.members.values() {
            for port in [m.quorum, m.election] {
                if let Some(other) = seen.insert((m.host.clone(), port), m.id) {
                    if other != m.id {
                        return Err(ErrorCode::BadArguments);
                    }
                }
            }
        }
        if next.voters().count() < 2 {
            return Err(ErrorCode::BadArguments);
        }
        Ok(next)
    }
}

/// The version in a config text (`version=<hex>`), if any.
pub fn version_of(text: &str) -> Option<i64> {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("version="))
        .and_then(|v| i64::from_str_radix(v.trim(), 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> DynConfig {
        DynConfig::parse(
            "server.1=127.0.0.1:2881:3881:participant;127.0.0.1:2181\n\
             server.2=127.0.0.1:2882:3882:participant;127.0.0.1:2182\n\
             server.3=127.0.0.1:2883:3883:participant;127.0.0.1:2183\nversion=100000000",
        )
        .unwrap()
    }

    fn req(j: Option<&str>, l: Option<&str>, n: Option<&str>) -> ReconfigRequest {
        ReconfigRequest {
            joining: j.map(Into::into),
            leaving: l.map(Into::into),
            new_members: n.map(Into::into),
            from_config: -1,
        }
    }

    #[test]
    fn text_round_trips_and_prints_like_apache() {
        let c = three();
        assert_eq!(c.members.len(), 3);
        let t = c.text(0x1_0000_0000);
        assert!(t.ends_with("\nversion=100000000"), "{t}");
        assert!(t.starts_with("server.1=127.0.0.1:2881:3881:participant;127.0.0.1:2181\n"));
        assert_eq!(DynConfig::parse(&t).unwrap(), c);
        assert_eq!(version_of(&t), Some(0x1_0000_0000));
        assert_eq!(version_of(""), None);
    }

    #[test]
    fn a_port_alone_means_the_wildcard_address() {
        let m = Member::parse(5, "127.0.0.1:2885:3885;2185").unwrap();
        assert_eq!(m.client, Some(("0.0.0.0".into(), 2185)));
        assert_eq!(m.spec(), "127.0.0.1:2885:3885:participant;0.0.0.0:2185");
    }

    #[test]
    fn incremental_changes() {
        let c = three();
        let n = c.plan(&req(None, Some("3"), None)).unwrap();
        assert_eq!(n.members.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        let n = c
            .plan(&req(
                Some("server.4=127.0.0.1:2884:3884:observer;127.0.0.1:2184"),
                None,
                None,
            ))
            .unwrap();
        assert!(n.members[&4].observer);
        // Leaving a server that is not there changes nothing, as in Apache.
        assert_eq!(c.plan(&req(None, Some("9"), None)).unwrap(), c);
        // Rejoining with another role changes the role.
        let n = c
            .plan(&req(
                Some("server.3=127.0.0.1:2883:3883:observer;127.0.0.1:2183"),
                None,
                None,
            ))
            .unwrap();
        assert!(n.members[&3].observer);
    }

    #[test]
    fn apaches_error_codes() {
        let c = three();
        let e = |r| c.plan(&r).unwrap_err();
        assert_eq!(e(req(None, Some("2,3"), None)), ErrorCode::BadArguments);
        assert_eq!(e(req(None, Some("abc"), None)), ErrorCode::MarshallingError);
        assert_eq!(
            e(req(Some("server.5"), None, None)),
            ErrorCode::BadArguments
        );
        assert_eq!(
            e(req(Some("server.5=127.0.0.1:2885:3885"), None, None)),
            ErrorCode::BadArguments
        );
        assert_eq!(
            e(req(
                Some("server.5=127.0.0.1:2885:3885:boss;2185"),
                None,
                None
            )),
            ErrorCode::BadArguments
        );
        assert_eq!(
            e(req(Some("server.x=127.0.0.1:2885:3885;2185"), None, None)),
            ErrorCode::MarshallingError
        );
        assert_eq!(
            e(req(Some("server.5=127.0.0.1:2881:3885;2185"), None, None)),
            ErrorCode::BadArguments
        );
        // Non-incremental wins over the incremental fields, and needs two voters.
        assert_eq!(
            e(req(
                Some("server.4=127.0.0.1:2884:3884;2184"),
                Some("1"),
                Some("server.1=127.0.0.1:2881:3881")
            )),
            ErrorCode::BadArguments
        );
        assert_eq!(e(req(None, None, Some(""))), ErrorCode::BadArguments);
    }

    #[test]
    fn non_incremental_accepts_lines_without_a_client_port() {
        let n = three()
            .plan(&req(
                None,
                None,
                Some("server.1=127.0.0.1:2881:3881,server.2=127.0.0.1:2882:3882"),
            ))
            .unwrap();
        assert_eq!(
            n.lines(),
            "server.1=127.0.0.1:2881:3881:participant\nserver.2=127.0.0.1:2882:3882:participant"
        );
    }

    #[test]
    fn raft_addresses_are_the_peer_ports() {
        assert_eq!(three().members[&2].raft_addr(), "127.0.0.1:2882:3882");
    }
}
