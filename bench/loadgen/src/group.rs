//! Groups of clients: connect them, keep them answering heartbeats, record every stamped push
//! they receive (latency, sequence numbers), and report. A group runs in this process
//! ([`Group`]) or in a worker process of its own ([`Remote`], for more sockets than one process
//! may hold); a [`Fleet`] is all of them behind one interface.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushgate::auth::{mint, TokenClaims};
use pushgate::config::JwtConfig;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::client::{connect_within, ClientError, Endpoint, Join, Ws};
use crate::hist::{add_pairs, new_hist, record, to_pairs, Hist, Shards};
use crate::stamp;
use crate::timeline::{Recorder, Timeline};
use crate::ws::WsError;

/// Everything a group needs; serializable so a worker process gets it on its command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// HS256 secret tokens are minted with.
    pub secret: String,
    /// `iss` put in tokens (`None`: left out).
    pub issuer: Option<String>,
    /// `aud` put in tokens (`None`: left out).
    pub audience: Option<String>,
    /// Index of the group's first client in the whole run.
    pub first: usize,
    /// How many clients.
    pub count: usize,
    /// Client `i` is user `<user_prefix><i>`.
    pub user_prefix: String,
    /// Mint admin tokens (role `admin`).
    pub admin: bool,
    /// What each client asks for after connecting.
    pub join: Join,
    /// Handshakes in flight at once.
    pub connect_concurrency: usize,
    /// Time limit of one client's whole handshake.
    pub connect_timeout_ms: u64,
    /// Worker processes: tokio worker threads.
    pub threads: usize,
    /// Worker processes: exit by themselves after this long.
    pub deadline_secs: f64,
}

impl GroupSpec {
    /// The user id of client `index`.
    pub fn user(&self, index: usize) -> String {
        format!("{}{index}", self.user_prefix)
    }

    /// A token for client `index`, valid for an hour.
    pub fn token(&self, index: usize) -> String {
        let cfg = JwtConfig {
            secret: self.secret.clone(),
            old_secret: None,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
        };
        let claims = TokenClaims::new(
            &cfg,
            &self.user(index),
            self.admin,
            Duration::from_secs(3600),
        );
        mint(&self.secret, &claims)
    }
}

/// How the connect phase went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectReport {
    /// Clients tried.
    pub attempted: u64,
    /// Clients connected (welcome and join reply received).
    pub connected: u64,
    /// Clients that failed.
    pub failed: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// One failure, for the log.
    pub first_error: Option<String>,
    /// Seconds from the first attempt to the last outcome.
    pub secs: f64,
    /// Handshake time (TCP connect to join reply), µs, as histogram pairs.
    pub handshake: Vec<(u64, u64)>,
}

impl ConnectReport {
    /// Add another group's report (groups connect concurrently: the longest time wins).
    pub fn merge(&mut self, other: ConnectReport) {
        self.attempted += other.attempted;
        self.connected += other.connected;
        self.failed += other.failed;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.first_error = self.first_error.take().or(other.first_error);
        self.secs = self.secs.max(other.secs);
        self.handshake.extend(other.handshake);
    }

    /// The handshake times as one histogram.
    pub fn handshake_hist(&self) -> Hist {
        let mut h = new_hist();
        add_pairs(&mut h, &self.handshake);
        h
    }
}

/// What the clients received.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupReport {
    /// Distinct stamped pushes received, per client in index order (`None`: never connected).
    pub unique: Vec<Option<u64>>,
    /// Pushes received more than once.
    pub dups: u64,
    /// Clients whose connection ended before the end of the run.
    pub closed_early: u64,
    /// Why they ended, by kind.
    pub errors: BTreeMap<String, u64>,
    /// End-to-end latency, µs, as histogram pairs.
    pub latency: Vec<(u64, u64)>,
    /// When the last push was received (µs since the epoch, 0: none).
    pub last_recv_us: u64,
    /// Pushes and the slowest one per window of send time.
    pub timeline: Timeline,
}

impl GroupReport {
    fn merge(&mut self, other: GroupReport) {
        self.unique.extend(other.unique);
        self.dups += other.dups;
        self.closed_early += other.closed_early;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.latency.extend(other.latency);
        self.last_recv_us = self.last_recv_us.max(other.last_recv_us);
        self.timeline.merge(&other.timeline);
    }

    /// The latencies as one histogram.
    pub fn latency_hist(&self) -> Hist {
        let mut h = new_hist();
        add_pairs(&mut h, &self.latency);
        h
    }

    /// Distinct pushes received by all clients.
    pub fn total_unique(&self) -> u64 {
        self.unique.iter().flatten().sum()
    }
}

/// Sequence numbers seen by one client, and its latency batch.
struct Tracker {
    seen: Vec<u64>,
    unique: u64,
    dups: u64,
    batch: Vec<u64>,
    last_us: u64,
    timeline: Recorder,
}

/// Sequence numbers beyond this are ignored (a bitmap this large is 8 MiB per client).
const MAX_SEQ: u64 = 1 << 26;
const BATCH: usize = 128;

impl Tracker {
    fn new() -> Self {
        Tracker {
            seen: Vec::new(),
            unique: 0,
            dups: 0,
            batch: Vec::new(),
            last_us: 0,
            timeline: Recorder::default(),
        }
    }

    /// Returns whether the push was new.
    fn on_stamp(&mut self, now_us: u64, t_us: u64, seq: u64) -> bool {
        if seq >= MAX_SEQ {
            return false;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if word >= self.seen.len() {
            self.seen.resize(word + 1 + self.seen.len() / 2, 0);
        }
        if self.seen[word] & bit != 0 {
            self.dups += 1;
            return false;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        if self.batch.capacity() == 0 {
            self.batch.reserve_exact(BATCH);
        }
        let latency_us = now_us.saturating_sub(t_us);
        self.batch.push(latency_us);
        self.timeline.record(t_us, latency_us);
        self.last_us = now_us;
        true
    }
}

/// What one client task ends with.
struct ClientOutcome {
    unique: Option<u64>,
    dups: u64,
    ended: Option<&'static str>,
    last_us: u64,
    timeline: Recorder,
}

struct Shared {
    spec: GroupSpec,
    counts: Vec<AtomicU64>,
    shards: Shards,
    permits: Semaphore,
}

/// Clients in this process.
pub struct Group {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<ClientOutcome>>,
    /// How the connect phase went.
    pub connected: ConnectReport,
}

impl Group {
    /// Connect every client of `spec` (at most `connect_concurrency` handshakes at once) and
    /// return once each has connected or failed; connected clients go on receiving.
    pub async fn start(spec: GroupSpec) -> Group {
        let count = spec.count;
        let shared = Arc::new(Shared {
            counts: (0..count).map(|_| AtomicU64::new(0)).collect(),
            shards: Shards::new(16),
            permits: Semaphore::new(spec.connect_concurrency.max(1)),
            spec,
        });
        let (stop, stop_rx) = watch::channel(false);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let started = Instant::now();
        let tasks = (0..count)
            .map(|k| tokio::spawn(client_task(shared.clone(), k, tx.clone(), stop_rx.clone())))
            .collect();
        drop(tx);
        let mut report = ConnectReport {
            attempted: count as u64,
            ..Default::default()
        };
        let mut handshake = new_hist();
        while let Some(outcome) = rx.recv().await {
            match outcome {
                Ok(us) => {
                    report.connected += 1;
                    record(&mut handshake, us);
                }
                Err(ClientError(kind, detail)) => {
                    report.failed += 1;
                    *report.errors.entry(kind.to_owned()).or_default() += 1;
                    if report.first_error.is_none() {
                        report.first_error = Some(format!("{kind}: {detail}"));
                    }
                }
            }
            report.secs = started.elapsed().as_secs_f64();
        }
        report.handshake = to_pairs(&handshake);
        Group {
            shared,
            stop,
            tasks,
            connected: report,
        }
    }

    /// Distinct stamped pushes received so far by all clients.
    pub fn progress(&self) -> u64 {
        self.shared
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Stop every client (each sends a WebSocket close) and report.
    pub async fn finish(self) -> GroupReport {
        let _ = self.stop.send(true);
        let mut report = GroupReport::default();
        for task in self.tasks {
            match task.await {
                Ok(mut o) => {
                    report.unique.push(o.unique);
                    report.dups += o.dups;
                    if let Some(kind) = o.ended {
                        report.closed_early += 1;
                        *report.errors.entry(kind.to_owned()).or_default() += 1;
                    }
                    report.last_recv_us = report.last_recv_us.max(o.last_us);
                    o.timeline.drain_into(&mut report.timeline);
                }
                Err(_) => {
                    report.unique.push(None);
                    *report.errors.entry("task_panicked".into()).or_default() += 1;
                }
            }
        }
        report.latency = to_pairs(&self.shared.shards.merged());
        report
    }
}

async fn client_task(
    shared: Arc<Shared>,
    k: usize,
    tx: mpsc::UnboundedSender<Result<u64, ClientError>>,
    mut stop: watch::Receiver<bool>,
) -> ClientOutcome {
    let spec = &shared.spec;
    let index = spec.first + k;
    let mut outcome = ClientOutcome {
        unique: None,
        dups: 0,
        ended: None,
        last_us: 0,
        timeline: Recorder::default(),
    };
    let connected = {
        let Ok(_permit) = shared.permits.acquire().await else {
            return outcome;
        };
        let token = spec.token(index);
        let started = Instant::now();
        let limit = Duration::from_millis(spec.connect_timeout_ms);
        connect_within(
            limit,
            &spec.endpoint,
            index,
            &token,
            &spec.user(index),
            &spec.join,
        )
        .await
        .map(|ws| (ws, started.elapsed().as_micros() as u64))
    };
    let mut ws = match connected {
        Ok((ws, us)) => {
            let _ = tx.send(Ok(us));
            ws
        }
        Err(e) => {
            let _ = tx.send(Err(e));
            return outcome;
        }
    };
    drop(tx);
    let mut tracker = Tracker::new();
    outcome.ended = receive(&mut ws, &mut stop, &mut tracker, &shared, k).await;
    if outcome.ended.is_none() {
        let _ = ws.close().await;
    }
    if !tracker.batch.is_empty() {
        shared.shards.record_batch(k, &tracker.batch);
    }
    outcome.unique = Some(tracker.unique);
    outcome.dups = tracker.dups;
    outcome.last_us = tracker.last_us;
    outcome.timeline = tracker.timeline;
    outcome
}

/// Receive until told to stop; `Some(kind)` when the connection ended first.
async fn receive(
    ws: &mut Ws,
    stop: &mut watch::Receiver<bool>,
    tracker: &mut Tracker,
    shared: &Shared,
    k: usize,
) -> Option<&'static str> {
    if *stop.borrow() {
        return None;
    }
    // One registration for the whole run (a fresh `changed()` per message costs more than
    // the rest of the receive path).
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let ready = tokio::select! {
            biased;
            _ = &mut stopped => return None,
            ready = ws.readable() => ready,
        };
        if ready.is_err() {
            return Some("ws_error");
        }
        // Everything that arrived is parsed in one go and shares one receipt time: it was all
        // there when it was read (a clock read per message was a tenth of this loop's CPU).
        let now_us = stamp::now_us();
        let (mut pinged, mut ended) = (false, None);
        let read = ws.try_read(|text| match on_text(text, now_us, tracker, shared, k) {
            Ok(pong) => pinged |= pong,
            Err(kind) => ended = ended.or(Some(kind)),
        });
        if ended.is_some() {
            return ended;
        }
        match read {
            Ok(_) => {}
            Err(WsError::Closed) => return Some("closed"),
            Err(_) => return Some("ws_error"),
        }
        if pinged && ws.send_text("3").await.is_err() {
            return Some("send_failed");
        }
        if ws.flush().await.is_err() {
            return Some("send_failed");
        }
    }
}

/// Handle one received text message: `Ok(true)` for an Engine.IO ping (to be answered),
/// `Err(kind)` when the server ends the session.
fn on_text(
    text: &str,
    now_us: u64,
    tracker: &mut Tracker,
    shared: &Shared,
    k: usize,
) -> Result<bool, &'static str> {
    if text == "2" {
        return Ok(true);
    }
    if text.starts_with("42") {
        if let Some((t_us, seq)) = stamp::parse(text) {
            if tracker.on_stamp(now_us, t_us, seq) {
                shared.counts[k].store(tracker.unique, Ordering::Relaxed);
                if tracker.batch.len() >= BATCH {
                    shared.shards.record_batch(k, &tracker.batch);
                    tracker.batch.clear();
                }
            }
        }
    } else if text.starts_with('1') || text.starts_with("41") {
        return Err("server_closed");
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------------
// Worker processes

/// One line a worker prints on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerLine {
    /// The connect phase is over.
    Connected(ConnectReport),
    /// Answer to `progress`.
    Progress(u64),
    /// Answer to `cpu`: the worker process's CPU time so far, seconds.
    Cpu(f64),
    /// Answer to `finish` (or stdin closed): the worker exits after it.
    Report(GroupReport),
}

/// A group in a worker process (`pushgate-loadgen worker`, its spec in `PUSHGATE_LOADGEN_SPEC`).
pub struct Remote {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

fn io_err(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

impl Remote {
    /// Start the worker; it begins connecting at once.
    pub fn spawn(spec: &GroupSpec) -> std::io::Result<Remote> {
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
            .arg("worker")
            .env(
                "PUSHGATE_LOADGEN_SPEC",
                serde_json::to_string(spec).map_err(io_err)?,
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| io_err("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| io_err("no stdout"))?;
        Ok(Remote {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn read(&mut self) -> std::io::Result<WorkerLine> {
        let line = self
            .lines
            .next_line()
            .await?
            .ok_or_else(|| io_err("worker exited"))?;
        serde_json::from_str(&line).map_err(io_err)
    }

    /// Wait for the connect phase.
    pub async fn connected(&mut self) -> std::io::Result<ConnectReport> {
        match self.read().await? {
            WorkerLine::Connected(r) => Ok(r),
            other => Err(io_err(format!("unexpected worker line {other:?}"))),
        }
    }

    /// Distinct pushes received so far.
    pub async fn progress(&mut self) -> std::io::Result<u64> {
        self.stdin.write_all(b"progress\n").await?;
        match self.read().await? {
            WorkerLine::Progress(n) => Ok(n),
            other => Err(io_err(format!("unexpected worker line {other:?}"))),
        }
    }

    /// The worker's CPU time so far, seconds.
    pub async fn cpu(&mut self) -> std::io::Result<f64> {
        self.stdin.write_all(b"cpu\n").await?;
        match self.read().await? {
            WorkerLine::Cpu(secs) => Ok(secs),
            other => Err(io_err(format!("unexpected worker line {other:?}"))),
        }
    }

    /// Stop the worker's clients and get its report.
    pub async fn finish(mut self) -> std::io::Result<GroupReport> {
        self.stdin.write_all(b"finish\n").await?;
        let r = match self.read().await? {
            WorkerLine::Report(r) => r,
            other => return Err(io_err(format!("unexpected worker line {other:?}"))),
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        Ok(r)
    }
}

/// The worker process: run one group, answer `progress` and `finish` on stdin.
pub async fn run_worker(spec: GroupSpec) -> std::io::Result<()> {
    let mut out = tokio::io::stdout();
    async fn say(out: &mut tokio::io::Stdout, line: &WorkerLine) -> std::io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(io_err)?;
        text.push('\n');
        out.write_all(text.as_bytes()).await?;
        out.flush().await
    }
    let group = Group::start(spec).await;
    say(&mut out, &WorkerLine::Connected(group.connected.clone())).await?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match stdin.next_line().await? {
            Some(cmd) if cmd.trim() == "progress" => {
                say(&mut out, &WorkerLine::Progress(group.progress())).await?
            }
            Some(cmd) if cmd.trim() == "cpu" => {
                let secs = crate::procstat::sample(None).map_or(0.0, |s| s.cpu_secs);
                say(&mut out, &WorkerLine::Cpu(secs)).await?
            }
            Some(cmd) if cmd.trim() != "finish" => {}
            _ => break,
        }
    }
    let report = group.finish().await;
    say(&mut out, &WorkerLine::Report(report)).await
}

// ---------------------------------------------------------------------------------------------
// Fleet

/// Split `count` clients into `parts` contiguous ranges `(first, count)`.
pub fn split(count: usize, parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.clamp(1, count.max(1));
    let (base, extra) = (count / parts, count % parts);
    let mut first = 0;
    (0..parts)
        .map(|p| {
            let n = base + usize::from(p < extra);
            let r = (first, n);
            first += n;
            r
        })
        .collect()
}

/// All the groups of a run: the first in this process, the others in worker processes.
pub struct Fleet {
    local: Group,
    remotes: Vec<Remote>,
    /// The merged connect report.
    pub connected: ConnectReport,
}

impl Fleet {
    /// Start one group per spec (the first here, each other in a worker process) and wait
    /// until all have connected.
    pub async fn start(specs: Vec<GroupSpec>) -> std::io::Result<Fleet> {
        let mut specs = specs.into_iter();
        let first = specs.next().ok_or_else(|| io_err("no clients"))?;
        let mut remotes = specs
            .map(|s| Remote::spawn(&s))
            .collect::<std::io::Result<Vec<_>>>()?;
        let local = Group::start(first).await;
        let mut connected = local.connected.clone();
        for r in &mut remotes {
            connected.merge(r.connected().await?);
        }
        Ok(Fleet {
            local,
            remotes,
            connected,
        })
    }

    /// Distinct stamped pushes received so far by all clients.
    pub async fn progress(&mut self) -> std::io::Result<u64> {
        let mut n = self.local.progress();
        for r in &mut self.remotes {
            n += r.progress().await?;
        }
        Ok(n)
    }

    /// CPU time so far of this process and every worker process, seconds.
    pub async fn cpu_secs(&mut self) -> std::io::Result<f64> {
        let mut secs = crate::procstat::sample(None).map_or(0.0, |s| s.cpu_secs);
        for r in &mut self.remotes {
            secs += r.cpu().await?;
        }
        Ok(secs)
    }

    /// Stop every client and merge the reports (clients in index order).
    pub async fn finish(self) -> std::io::Result<GroupReport> {
        let mut report = self.local.finish().await;
        for r in self.remotes {
            report.merge(r.finish().await?);
        }
        Ok(report)
    }

    /// Wait until `expected` distinct pushes have arrived, or `limit` has passed; returns
    /// the count reached.
    pub async fn drain(&mut self, expected: u64, limit: Duration) -> std::io::Result<u64> {
        let until = Instant::now() + limit;
        loop {
            let n = self.progress().await?;
            if n >= expected || Instant::now() >= until {
                return Ok(n);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_contiguous_and_complete() {
        assert_eq!(split(10, 3), vec![(0, 4), (4, 3), (7, 3)]);
        assert_eq!(split(2, 5), vec![(0, 1), (1, 1)]);
        assert_eq!(split(0, 2), vec![(0, 0)]);
    }

    #[test]
    fn tracker_counts_unique_and_duplicates() {
        let mut t = Tracker::new();
        assert!(t.on_stamp(1_000, 400, 0));
        assert!(t.on_stamp(1_000, 500, 200));
        assert!(!t.on_stamp(1_000, 500, 200));
        assert!(!t.on_stamp(1_000, 500, MAX_SEQ));
        assert_eq!((t.unique, t.dups), (2, 1));
        assert_eq!(t.batch, vec![600, 500]);
    }

    #[test]
    fn worker_lines_round_trip() {
        let line = WorkerLine::Report(GroupReport {
            unique: vec![Some(3), None],
            latency: vec![(10, 2)],
            ..Default::default()
        });
        let text = serde_json::to_string(&line).unwrap();
        let WorkerLine::Report(back) = serde_json::from_str(&text).unwrap() else {
            panic!("{text}");
        };
        assert_eq!(back.unique, vec![Some(3), None]);
        assert_eq!(back.total_unique(), 3);
    }
}
