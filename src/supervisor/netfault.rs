//! Link proxies: with `[network] faults = true` every node reaches every other through a proxy
//! of the supervisor's on 127.0.0.1, one per directed pair and port kind (quorum, election), so
//! the supervisor can cut, delay or slow down the traffic from one node to another while the
//! ensemble runs (`zkherd partition`, `isolate`, `heal`, `net delay|loss`).
//!
//! A fault applies to traffic *from* one node *to* another, on every connection between them,
//! whichever side opened it. The proxies behave as TCP over a faulty network would:
//! - a cut link holds the traffic of open connections (nothing is lost: TCP would retransmit
//!   it once the network heals; nobody sees a reset, so a partition looks like silence, not a
//!   crash), and a connection opened across it is closed at once, as a rejecting firewall
//!   would;
//! - a delay holds each chunk for the delay ± jitter, without slowing the stream down: chunks
//!   queue with their delivery time, in order;
//! - loss delays a chunk by a retransmission timeout (200 ms) with the given probability.
//!
//! The proxies listen on 127.0.0.1 and connect only to the ensemble's own nodes, on the
//! addresses of the spec's port plan (127.0.0.1 too).
//!
//! Apache's election connections need one rewrite. Of two peers only the larger server id
//! keeps an election connection; when the smaller one connects, the larger hangs up and
//! connects back to the election address the smaller one *sent in its initial message*: its
//! own listening address, not the proxy. Those connections went around the proxies, so an
//! isolated Apache node kept hearing the others' votes, followed a leader it could not reach,
//! and never went read-only. The election proxy therefore rewrites that address to the proxy
//! of the way back (see [`rewrite_initial_message`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::ports::PortPlan;
use crate::spec::{BackendKind, EnsembleSpec};

/// What happens to the traffic of one directed link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFault {
    /// Nothing gets through (held until healed).
    pub cut: bool,
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// Percent of chunks delayed by a retransmission timeout.
    pub loss_pct: u8,
}

impl LinkFault {
    pub fn is_clear(&self) -> bool {
        *self == LinkFault::default()
    }
}

impl std::fmt::Display for LinkFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.cut {
            parts.push("cut".to_string());
        }
        if self.delay_ms > 0 || self.jitter_ms > 0 {
            parts.push(format!("delay {}ms±{}ms", self.delay_ms, self.jitter_ms));
        }
        if self.loss_pct > 0 {
            parts.push(format!("loss {}%", self.loss_pct));
        }
        if parts.is_empty() {
            parts.push("clear".into());
        }
        f.write_str(&parts.join(", "))
    }
}

/// One directed link's fault, as the control socket reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    pub from: u16,
    pub to: u16,
    pub fault: LinkFault,
}

/// Describe the faults, a symmetric pair once: `1<->3 cut; 2->1 delay 50ms±0ms`.
pub fn describe(links: &[LinkInfo]) -> String {
    if links.is_empty() {
        return "every link is clear".into();
    }
    let mut out = Vec::new();
    for l in links {
        let back = links
            .iter()
            .find(|b| b.from == l.to && b.to == l.from && b.fault == l.fault);
        match back {
            Some(_) if l.from > l.to => continue,
            Some(_) => out.push(format!("{}<->{} {}", l.from, l.to, l.fault)),
            None => out.push(format!("{}->{} {}", l.from, l.to, l.fault)),
        }
    }
    out.join("; ")
}

/// The faults of every directed link (absent = clear).
#[derive(Default)]
pub struct Links {
    faults: Mutex<BTreeMap<(u16, u16), LinkFault>>,
}

impl Links {
    /// The faults; a panic elsewhere while they were held leaves plain data, still usable.
    fn faults(&self) -> std::sync::MutexGuard<'_, BTreeMap<(u16, u16), LinkFault>> {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, from: u16, to: u16) -> LinkFault {
        self.faults().get(&(from, to)).copied().unwrap_or_default()
    }

    /// Set (or, with a clear fault, remove) the fault of each link given.
    pub fn set(&self, links: &[LinkInfo]) {
        let mut faults = self.faults();
        for l in links {
            if l.fault.is_clear() {
                faults.remove(&(l.from, l.to));
            } else {
                faults.insert((l.from, l.to), l.fault);
            }
        }
    }

    pub fn heal(&self) {
        self.faults().clear();
    }

    pub fn list(&self) -> Vec<LinkInfo> {
        self.faults()
            .iter()
            .map(|((from, to), fault)| LinkInfo {
                from: *from,
                to: *to,
                fault: *fault,
            })
            .collect()
    }
}

/// Bind every proxy of `spec` (one per directed pair and port kind) and serve them until the
/// returned task set is dropped.
pub async fn start(
    spec: &EnsembleSpec,
    links: Arc<Links>,
) -> Result<tokio::task::JoinSet<()>, (u16, std::io::Error)> {
    let plan = PortPlan::new(spec);
    let mut tasks = tokio::task::JoinSet::new();
    for from in &plan.nodes {
        for to in &plan.nodes {
            if from.id == to.id {
                continue;
            }
            for (election, port) in [(false, to.quorum), (true, to.election)] {
                let listen = spec.proxy_port(from.id, to.id, election);
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, listen))
                    .await
                    .map_err(|e| (listen, e))?;
                let target = SocketAddr::new(to.host, port);
                if !is_loopback(to.host) {
                    return Err((
                        listen,
                        std::io::Error::other(format!(
                            "node {} is at {}, not on 127.0.0.1: link proxies forward to \
                             loopback only",
                            to.id, to.host
                        )),
                    ));
                }
                // The way back, for Apache's election handshake.
                let back = (election && spec.backend == BackendKind::Apache)
                    .then(|| spec.proxy_port(to.id, from.id, true));
                let link = Link {
                    target,
                    from: from.id,
                    to: to.id,
                    back,
                    patient: spec.backend == BackendKind::Apache,
                };
                tasks.spawn(serve(listener, link, links.clone()));
            }
        }
    }
    Ok(tasks)
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// One directed link's proxy: traffic from node `from` to `target`, node `to`'s port.
#[derive(Clone, Copy)]
struct Link {
    target: SocketAddr,
    from: u16,
    to: u16,
    /// On an Apache election link: the proxy port from `to` back to `from`, written into the
    /// initial message in place of `from`'s own election address.
    back: Option<u16>,
    /// Try the target for up to a second before giving up. The proxy has accepted already, so
    /// an Apache follower that dials a leader an instant before the leader listens believes
    /// it is connected, sees a reset instead of the refusal it would retry, and gives up
    /// following; the new leader then waits initLimit for a quorum that never comes.
    patient: bool,
}

async fn serve(listener: TcpListener, link: Link, links: Arc<Links>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    conns.spawn(relay(client, link, links.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// One connection from `from` to `to`.
async fn relay(mut client: TcpStream, link: Link, links: Arc<Links>) {
    let Link {
        target,
        from,
        to,
        back,
        ..
    } = link;
    // A connection opened across a cut is closed at once, as a rejecting firewall would
    // (holding it made Apache believe it had reached a leader it could not hear). A handshake
    // needs both directions, so a one-way cut refuses it too.
    if links.get(from, to).cut || links.get(to, from).cut {
        return;
    }
    let first = match back {
        // A peer that stalls for 10 s before its first message is let go.
        Some(port) => {
            let first = rewrite_initial_message(&mut client, port);
            match tokio::time::timeout(Duration::from_secs(10), first).await {
                Ok(Some(bytes)) => bytes,
                _ => return,
            }
        }
        None => Vec::new(),
    };
    // The node is down: close, as its refused connection would.
    let Some(mut server) = connect(target, link.patient).await else {
        return;
    };
    if !first.is_empty() && server.write_all(&first).await.is_err() {
        return;
    }
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let seed = (u64::from(from) << 32) ^ u64::from(to) ^ 0x9E37_79B9_7F4A_7C15;
    tokio::select! {
        _ = pump(cr, sw, from, to, links.clone(), seed) => {}
        _ = pump(sr, cw, to, from, links, seed.rotate_left(17)) => {}
    }
}

/// Traffic from `src` to `dst`: chunks are read at once and delivered in order, each at its
/// own time (delay ± jitter, + a retransmission timeout when "lost"), and not while the link
/// is cut.
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    src: u16,
    dst: u16,
    links: Arc<Links>,
    mut rng: u64,
) {
    let (tx, mut rx) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
    let links_w = links.clone();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let f = links.get(src, dst);
            let mut ms = f.delay_ms;
            if f.jitter_ms > 0 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let spread = rng % (2 * f.jitter_ms + 1);
                ms = (ms + spread).saturating_sub(f.jitter_ms);
            }
            if f.loss_pct > 0 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if rng % 100 < u64::from(f.loss_pct) {
                    ms += 200;
                }
            }
            let at = tokio::time::Instant::now() + Duration::from_millis(ms);
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            // No timer for an undelayed chunk: a timer wakes a millisecond late at best.
            if at > tokio::time::Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            while links_w.get(src, dst).cut {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if w.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

async fn connect(target: SocketAddr, patient: bool) -> Option<TcpStream> {
    let tries = if patient { 20 } else { 1 };
    for i in 0..tries {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Ok(s) = TcpStream::connect(target).await {
            return Some(s);
        }
    }
    None
}

/// Apache's election initial message, `version: i64, sid: i64, len: i32, address`, with the
/// two protocol versions 3.5 and later send (-65536, -65535). Older peers send their bare sid.
const INITIAL_MESSAGE_VERSIONS: [i64; 2] = [-65536, -65535];
/// Apache refuses longer addresses.
const INITIAL_MESSAGE_MAX_ADDRESS: usize = 2048;

/// Read what a connecting Apache peer sends first on an election connection and return the
/// bytes to pass on: its initial message with the election address replaced by
/// 127.0.0.1:`back`, so the peer that connects back does so through the proxy; anything that is
/// not an initial message, as read (the rest follows unchanged). None when the peer goes away.
async fn rewrite_initial_message<R: AsyncRead + Unpin>(r: &mut R, back: u16) -> Option<Vec<u8>> {
    let mut head = [0u8; 20];
    r.read_exact(&mut head[..8]).await.ok()?;
    let version = i64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
    if !INITIAL_MESSAGE_VERSIONS.contains(&version) {
        return Some(head[..8].to_vec());
    }
    r.read_exact(&mut head[8..]).await.ok()?;
    let len = i32::from_be_bytes(head[16..20].try_into().expect("4 bytes"));
    let len = match usize::try_from(len) {
        Ok(len) if len <= INITIAL_MESSAGE_MAX_ADDRESS => len,
        _ => return Some(head.to_vec()),
    };
    let mut sent = vec![0u8; len];
    r.read_exact(&mut sent).await.ok()?;
    let addr = format!("127.0.0.1:{back}");
    let mut out = head[..16].to_vec();
    out.extend_from_slice(&(addr.len() as i32).to_be_bytes());
    out.extend_from_slice(addr.as_bytes());
    Some(out)
}

/// Parse a delay: `50ms`, `1s`, `50ms±10ms` (or `50ms+-10ms`, `50ms~10ms`).
pub fn parse_delay(s: &str) -> Result<(u64, u64), String> {
    let ms = |t: &str| -> Result<u64, String> {
        let t = t.trim();
        let (n, unit) = t
            .find(|c: char| !c.is_ascii_digit())
            .map_or((t, "ms"), |i| (&t[..i], &t[i..]));
        let n: u64 = n
            .parse()
            .map_err(|_| format!("{t:?} is not a duration like 50ms or 1s"))?;
        match unit {
            "ms" => Ok(n),
            "s" => Ok(n * 1000),
            _ => Err(format!("{t:?}: the unit must be ms or s")),
        }
    };
    let (base, jitter) = match s.split_once('±').or_else(|| s.split_once("+-")) {
        Some((b, j)) => (b, Some(j)),
        None => match s.split_once('~') {
            Some((b, j)) => (b, Some(j)),
            None => (s, None),
        },
    };
    let d = ms(base)?;
    let j = jitter.map(ms).transpose()?.unwrap_or(0);
    if d > 60_000 || j > 60_000 {
        return Err(format!("{s:?}: at most 60s"));
    }
    Ok((d, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initial_message(version: i64, sid: i64, addr: &str) -> Vec<u8> {
        let mut m = version.to_be_bytes().to_vec();
        m.extend_from_slice(&sid.to_be_bytes());
        m.extend_from_slice(&(addr.len() as i32).to_be_bytes());
        m.extend_from_slice(addr.as_bytes());
        m
    }

    #[tokio::test]
    async fn an_apache_initial_message_names_the_proxy_of_the_way_back() {
        for version in INITIAL_MESSAGE_VERSIONS {
            let sent = initial_message(version, 1, "127.0.0.1:3881|127.0.0.1:3891");
            assert_eq!(
                rewrite_initial_message(&mut &sent[..], 5107).await,
                Some(initial_message(version, 1, "127.0.0.1:5107"))
            );
        }
        // A bare sid (pre-3.5 peers) passes unchanged; a peer gone mid-message is let go.
        let bare = 1i64.to_be_bytes().to_vec();
        assert_eq!(
            rewrite_initial_message(&mut &bare[..], 5107).await,
            Some(bare)
        );
        let mut cut_short = initial_message(-65536, 1, "127.0.0.1:3881");
        cut_short.truncate(cut_short.len() - 1);
        assert_eq!(
            rewrite_initial_message(&mut &cut_short[..], 5107).await,
            None
        );
    }

    #[tokio::test]
    async fn the_election_proxy_rewrites_the_address_on_the_wire() {
        let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let proxy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let link = Link {
            target: server.local_addr().unwrap(),
            from: 1,
            to: 2,
            back: Some(5107),
            patient: false,
        };
        let proxy_addr = proxy.local_addr().unwrap();
        tokio::spawn(serve(proxy, link, Arc::new(Links::default())));
        let mut client = TcpStream::connect(proxy_addr).await.unwrap();
        let mut sent = initial_message(-65535, 1, "127.0.0.1:3881");
        sent.extend_from_slice(b"vote");
        client.write_all(&sent).await.unwrap();
        let (mut peer, _) = server.accept().await.unwrap();
        let mut want = initial_message(-65535, 1, "127.0.0.1:5107");
        want.extend_from_slice(b"vote");
        let mut got = vec![0u8; want.len()];
        tokio::time::timeout(Duration::from_secs(5), peer.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_patient_proxy_reaches_a_node_that_starts_listening_late() {
        // A port that is free now and bound 300 ms after the client connected.
        let target = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let link = Link {
            target,
            from: 1,
            to: 2,
            back: None,
            patient: true,
        };
        tokio::spawn(serve(proxy, link, Arc::new(Links::default())));
        let mut client = TcpStream::connect(proxy_addr).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let server = TcpListener::bind(target).await.unwrap();
        let (mut peer, _) = tokio::time::timeout(Duration::from_secs(5), server.accept())
            .await
            .expect("the proxy kept trying")
            .unwrap();
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }

    #[test]
    fn delays_parse_with_and_without_jitter() {
        assert_eq!(parse_delay("50ms"), Ok((50, 0)));
        assert_eq!(parse_delay("1s"), Ok((1000, 0)));
        assert_eq!(parse_delay("50ms±10ms"), Ok((50, 10)));
        assert_eq!(parse_delay("50ms+-10ms"), Ok((50, 10)));
        assert_eq!(parse_delay("20"), Ok((20, 0)));
        assert!(parse_delay("fast").is_err());
        assert!(parse_delay("5m").is_err());
        assert!(parse_delay("90s").is_err());
    }

    #[test]
    fn links_keep_only_faults() {
        let l = Links::default();
        let cut = LinkFault {
            cut: true,
            ..Default::default()
        };
        l.set(&[LinkInfo {
            from: 1,
            to: 2,
            fault: cut,
        }]);
        assert!(l.get(1, 2).cut && !l.get(2, 1).cut);
        l.set(&[LinkInfo {
            from: 1,
            to: 2,
            fault: LinkFault::default(),
        }]);
        assert!(l.list().is_empty());
        assert_eq!(cut.to_string(), "cut");
    }

    #[tokio::test]
    async fn a_cut_link_holds_traffic_until_healed_refuses_new_connections_and_a_delay_holds_it() {
        // An echo server stands for node 2; the proxy carries node 1's traffic to it.
        let echo = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let links = Arc::new(Links::default());
        let proxy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = proxy.local_addr().unwrap();
        let link = Link {
            target,
            from: 1,
            to: 2,
            back: None,
            patient: false,
        };
        tokio::spawn(serve(proxy, link, links.clone()));
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut b = [0u8; 4];
        c.write_all(b"ping").await.unwrap();
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ping");
        links.set(&[LinkInfo {
            from: 1,
            to: 2,
            fault: LinkFault {
                cut: true,
                ..Default::default()
            },
        }]);
        c.write_all(b"held").await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(300), c.read_exact(&mut b)).await;
        assert!(r.is_err(), "traffic crossed a cut link");
        // A connection opened across the cut is closed at once, not held.
        let mut late = TcpStream::connect(addr).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), late.read(&mut b))
            .await
            .expect("a connection across a cut was held open");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        links.heal();
        tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b, b"held");
        links.set(&[LinkInfo {
            from: 1,
            to: 2,
            fault: LinkFault {
                delay_ms: 150,
                ..Default::default()
            },
        }]);
        let t = std::time::Instant::now();
        c.write_all(b"slow").await.unwrap();
        c.read_exact(&mut b).await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
    }
}
