//! `zkherd chaos --check`: concurrent clients write, compare-and-set and read a few znodes while
//! faults are injected; their history is then checked.
//!
//! Checks, each a list of anomalies:
//! - per-key linearizability of writes, compare-and-sets and (sync + getData) reads
//!   ([`check::linearizable`], a Wing–Gong/Porcupine search), which also catches a lost
//!   acknowledged write; or, with [`ReadModel::Sequential`] (what Apache ZooKeeper promises),
//!   of writes and compare-and-sets, with reads checked for sequential consistency
//!   ([`check::sequential_read_anomalies`]);
//! - no acknowledged write lost, counted: every successful setData bumps the version by one,
//!   so a key's final version lies between its acknowledged and its attempted writes;
//! - per-session FIFO: replies come in the order the requests were sent;
//! - zxid monotonic per client: no reply carries a zxid below one this client already saw
//!   (across reconnections too; the client tells each server the last zxid it saw).

pub mod check;
pub mod client;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use check::{Input, Op, Output, ReadModel};
use client::Conn;

use crate::server::proto::{op, ErrorCode};

/// What the clients did, and what looked wrong while they did it.
#[derive(Default)]
pub struct History {
    /// Per key: its operations.
    pub ops: BTreeMap<usize, Vec<Op>>,
    /// FIFO and zxid anomalies found on the fly, and unexpected errors.
    pub anomalies: Vec<String>,
    pub counts: BTreeMap<&'static str, u64>,
}

impl History {
    fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }
}

pub struct Workload {
    pub addrs: Vec<SocketAddr>,
    pub root: String,
    pub keys: usize,
    pub clients: usize,
    pub seed: u64,
    pub op_timeout: Duration,
}

/// Deterministic per-client randomness (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

impl Workload {
    fn key_path(&self, k: usize) -> String {
        format!("{}/k{k}", self.root)
    }

    /// Create the root and the keys (value 0, version 0), retrying through faults.
    pub async fn prepare(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut paths = vec![self.root.clone()];
        paths.extend((0..self.keys).map(|k| self.key_path(k)));
        let mut i = 0;
        while i < paths.len() {
            if Instant::now() > deadline {
                return Err(format!("cannot create {} within 60 s", paths[i]));
            }
            let addr = self.addrs[i % self.addrs.len()];
            let r = async {
                let mut c = Conn::connect(addr, 0, Duration::from_secs(2)).await.ok()?;
                c.send(op::CREATE, &client::create_body(&paths[i], b"0"))
                    .await
                    .ok()?;
                let reply = tokio::time::timeout(Duration::from_secs(2), c.recv())
                    .await
                    .ok()?
                    .ok()?;
                c.close().await;
                Some(reply.err)
            }
            .await;
            match r {
                Some(0) => i += 1,
                Some(e) if e == ErrorCode::NodeExists.code() => i += 1,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Ok(())
    }

    /// Run the clients until `stop`; then one final read of every key.
    pub async fn run(self: Arc<Self>, stop: Arc<AtomicBool>, epoch: Instant) -> History {
        let history = Arc::new(Mutex::new(History::default()));
        let mut tasks = Vec::new();
        for c in 0..self.clients {
            let (w, stop, h) = (self.clone(), stop.clone(), history.clone());
            tasks.push(tokio::spawn(async move {
                w.client(c, stop, h, epoch).await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        // Final reads, through a fresh client, so a write lost at the very end shows too.
        let mut rng = Rng(self.seed ^ 0xF1A1);
        for k in 0..self.keys {
            for _ in 0..20 {
                let mut state = ClientState::new(self.clients);
                if self.read(&mut state, &mut rng, k, &history, epoch).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        match Arc::try_unwrap(history) {
            Ok(m) => m.into_inner().unwrap_or_default(),
            Err(a) => std::mem::take(&mut *a.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }

    async fn client(
        &self,
        id: usize,
        stop: Arc<AtomicBool>,
        history: Arc<Mutex<History>>,
        epoch: Instant,
    ) {
        let mut rng = Rng(self.seed.wrapping_add(id as u64 * 0x9E37_79B9) | 1);
        let mut state = ClientState::new(id);
        let mut counter = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let k = rng.below(self.keys as u64) as usize;
            match rng.below(10) {
                0..=3 => {
                    counter += 1;
                    let v = ((id as u64 + 1) << 40) | counter;
                    self.write(&mut state, &mut rng, k, Input::Write(v), &history, epoch)
                        .await;
                }
                4..=6 => {
                    counter += 1;
                    let v = ((id as u64 + 1) << 40) | counter;
                    let expected = state.versions.get(&k).copied().unwrap_or(0);
                    let input = Input::Cas { expected, value: v };
                    self.write(&mut state, &mut rng, k, input, &history, epoch)
                        .await;
                }
                _ => {
                    self.read(&mut state, &mut rng, k, &history, epoch).await;
                }
            }
        }
        if let Some(c) = state.conn.take() {
            c.close().await;
        }
    }

    async fn ensure_conn(&self, s: &mut ClientState, rng: &mut Rng) -> bool {
        if s.conn.is_some() {
            return true;
        }
        let addr = self.addrs[rng.below(self.addrs.len() as u64) as usize];
        match Conn::connect(addr, s.last_zxid, Duration::from_secs(1)).await {
            Ok(c) => {
                s.conn = Some(c);
                true
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                false
            }
        }
    }

    async fn write(
        &self,
        s: &mut ClientState,
        rng: &mut Rng,
        k: usize,
        input: Input,
        history: &Mutex<History>,
        epoch: Instant,
    ) {
        if !self.ensure_conn(s, rng).await {
            return;
        }
        let (value, version) = match input {
            Input::Write(v) => (v, -1),
            Input::Cas { expected, value } => (value, expected),
            Input::Read => return,
        };
        let path = self.key_path(k);
        let call = epoch.elapsed().as_nanos() as u64;
        let body = client::set_body(&path, value.to_string().as_bytes(), version);
        let replies = s.exchange(&[(op::SET_DATA, body)], self.op_timeout).await;
        let ret = epoch.elapsed().as_nanos() as u64;
        let mut h = history.lock().unwrap_or_else(|e| e.into_inner());
        let output = match replies {
            Err(problem) => {
                h.anomalies.extend(problem);
                h.count("write: outcome unknown");
                Output::Unknown
            }
            Ok(r) => {
                let r = &r[0];
                if r.err == 0 {
                    match client::stat_of(&r.body) {
                        Some(st) => {
                            s.versions.insert(k, st.version);
                            h.count("write: acknowledged");
                            Output::Version(st.version)
                        }
                        None => {
                            h.anomalies
                                .push(format!("client {}: setData reply has no Stat", s.id));
                            Output::Unknown
                        }
                    }
                } else if r.err == ErrorCode::BadVersion.code() && version >= 0 {
                    h.count("compare-and-set: refused (BadVersion)");
                    Output::BadVersion
                } else {
                    h.anomalies.push(format!(
                        "client {}: setData {path} answered error {}",
                        s.id, r.err
                    ));
                    Output::Unknown
                }
            }
        };
        let known = output != Output::Unknown;
        h.ops.entry(k).or_default().push(Op {
            client: s.id,
            input,
            output,
            call,
            ret: known.then_some(ret),
        });
    }

    /// sync then getData, pipelined (two requests in flight: their replies must come in
    /// order). Returns whether the read completed.
    async fn read(
        &self,
        s: &mut ClientState,
        rng: &mut Rng,
        k: usize,
        history: &Mutex<History>,
        epoch: Instant,
    ) -> bool {
        if !self.ensure_conn(s, rng).await {
            return false;
        }
        let path = self.key_path(k);
        let call = epoch.elapsed().as_nanos() as u64;
        let replies = s
            .exchange(
                &[
                    (op::SYNC, client::path_body(&path, None)),
                    (op::GET_DATA, client::path_body(&path, Some(false))),
                ],
                self.op_timeout,
            )
            .await;
        let ret = epoch.elapsed().as_nanos() as u64;
        let mut h = history.lock().unwrap_or_else(|e| e.into_inner());
        match replies {
            Err(problem) => {
                h.anomalies.extend(problem);
                h.count("read: no answer");
                false
            }
            Ok(r) => {
                let got = &r[1];
                let parsed = (got.err == 0)
                    .then(|| client::data_of(&got.body))
                    .flatten()
                    .and_then(|(d, st)| {
                        Some((String::from_utf8(d).ok()?.parse::<u64>().ok()?, st.version))
                    });
                match parsed {
                    Some((v, ver)) => {
                        s.versions.insert(k, ver);
                        h.count("read: answered");
                        h.ops.entry(k).or_default().push(Op {
                            client: s.id,
                            input: Input::Read,
                            output: Output::Value(v, ver),
                            call,
                            ret: Some(ret),
                        });
                        true
                    }
                    None => {
                        h.anomalies.push(format!(
                            "client {}: getData {path} answered error {} or bad data",
                            s.id, got.err
                        ));
                        false
                    }
                }
            }
        }
    }
}

/// One client's connection and what it has seen.
struct ClientState {
    id: usize,
    conn: Option<Conn>,
    last_zxid: i64,
    versions: BTreeMap<usize, i32>,
}

impl ClientState {
    fn new(id: usize) -> ClientState {
        ClientState {
            id,
            conn: None,
            last_zxid: 0,
            versions: BTreeMap::new(),
        }
    }

    /// Send the requests back to back, then read their replies. Checks FIFO (reply xids in
    /// send order) and zxid monotonicity. Err = the outcome is unknown (connection lost,
    /// timeout), with any anomaly seen; the connection is dropped then.
    async fn exchange(
        &mut self,
        reqs: &[(i32, Vec<u8>)],
        timeout: Duration,
    ) -> Result<Vec<client::Reply>, Vec<String>> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(vec![]);
        };
        let id = self.id;
        let mut anomalies = Vec::new();
        let work = async {
            let mut xids = Vec::new();
            for (opcode, body) in reqs {
                xids.push(conn.send(*opcode, body).await?);
            }
            let mut replies = Vec::new();
            for x in xids {
                let r = conn.recv().await?;
                if r.xid != x {
                    anomalies.push(format!(
                        "client {id}: FIFO: expected the reply to xid {x}, got xid {} (session {:#x} on {})",
                        r.xid, conn.session, conn.addr
                    ));
                }
                replies.push(r);
            }
            Ok::<_, std::io::Error>(replies)
        };
        let r = tokio::time::timeout(timeout, work).await;
        match r {
            Ok(Ok(replies)) => {
                for r in &replies {
                    // Errors answered with zxid -1 or 0 carry none.
                    if r.zxid > 0 {
                        if r.zxid < self.last_zxid {
                            anomalies.push(format!(
                                "client {id}: zxid went back from {:#x} to {:#x} (xid {})",
                                self.last_zxid, r.zxid, r.xid
                            ));
                        }
                        self.last_zxid = self.last_zxid.max(r.zxid);
                    }
                }
                if anomalies.is_empty() {
                    Ok(replies)
                } else {
                    self.conn = None;
                    Err(anomalies)
                }
            }
            _ => {
                self.conn = None;
                Err(anomalies)
            }
        }
    }
}

/// The verdict on a finished history.
pub struct Verdict {
    pub anomalies: Vec<String>,
    /// Keys whose linearizability search gave up (undecided), with their op counts.
    pub undecided: Vec<(usize, usize)>,
}

/// Check every key's history against `reads`; `budget` bounds each search.
pub fn verdict(h: &History, budget: u64, reads: ReadModel) -> Verdict {
    let mut anomalies = h.anomalies.clone();
    let mut undecided = Vec::new();
    for (k, ops) in &h.ops {
        let c = check::check_key(ops, (0, 0), budget, reads);
        anomalies.extend(c.read_anomalies.iter().map(|a| format!("key k{k}: {a}")));
        match c.linearizable {
            Some(true) => {}
            Some(false) => anomalies.push(format!(
                "key k{k}: its {} {} are not linearizable",
                c.searched.len(),
                match reads {
                    ReadModel::Linearizable => "operations",
                    ReadModel::Sequential => "writes and compare-and-sets",
                }
            )),
            None => undecided.push((*k, c.searched.len())),
        }
        // Counted: no acknowledged write lost, none applied twice.
        let acked = ops
            .iter()
            .filter(|o| matches!(o.output, Output::Version(_)))
            .count() as i32;
        let unknown = ops
            .iter()
            .filter(|o| o.output == Output::Unknown && !matches!(o.input, Input::Read))
            .count() as i32;
        // The final version: what the last read saw; with stale reads allowed, the highest
        // any read saw.
        let reads_seen = ops.iter().filter_map(|o| match o.output {
            Output::Value(_, v) => Some((o.ret, v)),
            _ => None,
        });
        let last_read = match reads {
            ReadModel::Linearizable => reads_seen.max_by_key(|(ret, _)| *ret).map(|(_, v)| v),
            ReadModel::Sequential => reads_seen.map(|(_, v)| v).max(),
        };
        let last_ack = ops
            .iter()
            .filter_map(|o| match o.output {
                Output::Version(v) => Some(v),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        if let Some(final_version) = last_read {
            if final_version < last_ack || final_version < acked {
                anomalies.push(format!(
                    "key k{k}: acknowledged writes lost: the final read shows version {final_version}, \
                     but {acked} writes were acknowledged (the highest as version {last_ack})"
                ));
            }
            if final_version > acked + unknown {
                anomalies.push(format!(
                    "key k{k}: version {final_version} after only {acked} acknowledged and {unknown} \
                     unknown writes: a write took effect twice"
                ));
            }
        }
    }
    Verdict {
        anomalies,
        undecided,
    }
}
