//! `recover`: connection-state recovery under load. N clients, each in its user room and in one
//! of R shared rooms, receive user pushes (HTTP API, round-robin over the users) and room
//! pushes (R rooms, each at its own rate) for the duration; at `--cut-at` seconds every client
//! drops its TCP connection at once (no Socket.IO `41`), pushes going on, and `--pause`
//! seconds later all reconnect with their `pid` and last offset. The run is clean when every
//! client was recovered (same socket id and `pid`, `welcome` with `recovered: true`) and saw
//! every push to its two targets exactly once over the whole run. It also reports the time from
//! reconnect to `welcome`, the replayed pushes, the server's RSS against the configured history
//! bound, and its CPU.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::args::Common;
use crate::client::Join;
use crate::hist::{new_hist, record, summary};
use crate::ledger::{accepted, accepted_for_user, Account};
use crate::procstat;
use crate::pusher::{self, HttpApi, PushReport, Route, Schedule};
use crate::recover_client::{self, ClientRun, ClientShared, Identity, Phase};
use crate::scenarios::{round, server_addr, specs, Outcome};

/// What a `recover` run does.
#[derive(Debug, Clone)]
pub struct RecoverPlan {
    /// Clients (one user each).
    pub clients: usize,
    /// Shared rooms (client `i` is in room `i % rooms`).
    pub rooms: usize,
    /// Pushes per second to each shared room.
    pub room_rate: f64,
    /// Pushes per second to users (all users together, round-robin).
    pub user_rate: f64,
    /// Seconds after the first push when every connection is cut.
    pub cut_at: f64,
    /// Seconds between the cut and the reconnect.
    pub pause: f64,
    /// Keep-alive HTTP connections of each pusher.
    pub http_conns: usize,
    /// The server's `RECOVERY_HISTORY_BYTES` (for the RSS bound).
    pub history_bytes: u64,
}

const USER_PREFIX: &str = "rec";

fn room_name(r: usize) -> String {
    format!("recover-{r}")
}

/// The server's RSS, sampled until stopped: (peak KiB, samples).
fn rss_sampler(pid: Option<u32>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Some(s) = pid.and_then(|p| procstat::sample(Some(p))) {
                peak = peak.max(s.rss_kib);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak
    })
}

/// The server's recovery metrics (`pushgate_recover*` lines of `/metrics`), if it has any.
async fn recovery_metrics(c: &Common) -> Value {
    let fetch = async {
        let mut tcp = tokio::net::TcpStream::connect(server_addr(c).ok()?)
            .await
            .ok()?;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            c.host
        );
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut body = String::new();
        tcp.read_to_string(&mut body).await.ok()?;
        Some(body)
    };
    let text = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let lines: serde_json::Map<String, Value> = text
        .lines()
        .filter(|l| l.starts_with("pushgate_recover"))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(name, value)| (name.to_owned(), json!(value.parse::<f64>().ok())))
        .collect();
    Value::Object(lines)
}

/// Run the pushers: users round-robin, and each shared room, all at once.
async fn push_all(api: HttpApi, plan: &RecoverPlan, secs: f64) -> (PushReport, Vec<PushReport>) {
    let users = Route::Users {
        prefix: USER_PREFIX.into(),
        users: plan.clients,
    };
    let user_task = tokio::spawn(pusher::push_http(
        api.clone(),
        users,
        Schedule::new(plan.user_rate, secs),
        plan.http_conns,
    ));
    let room_tasks: Vec<_> = (0..plan.rooms)
        .map(|r| {
            tokio::spawn(pusher::push_http(
                api.clone(),
                Route::Room(room_name(r)),
                Schedule::new(plan.room_rate, secs),
                plan.http_conns,
            ))
        })
        .collect();
    let user = user_task.await.unwrap_or_default();
    let mut rooms = Vec::new();
    for t in room_tasks {
        rooms.push(t.await.unwrap_or_default());
    }
    (user, rooms)
}

/// Where one target's receipts of an unclean client came: the sequence numbers received live
/// before the cut, replayed, and live after the reconnect (first and last of each), with the
/// anomalies.
fn unclean_detail(run: &ClientRun, target: usize, account: &Account) -> Value {
    let seqs = if target == 0 {
        run.user.seqs()
    } else {
        run.room.seqs()
    };
    let at = |m: (usize, usize)| if target == 0 { m.0 } else { m.1 };
    let (cut, welcome) = (at(run.marks[0]), at(run.marks[1]).max(at(run.marks[0])));
    let span = |s: &[u32]| json!([s.first(), s.last(), s.len()]);
    json!({
        "missing": account.missing_seqs,
        "duplicated": account.duplicated_seqs,
        "before_cut_first_last_count": span(&seqs[..cut.min(seqs.len())]),
        "replayed_first_last_count": span(&seqs[cut.min(seqs.len())..welcome.min(seqs.len())]),
        "after_welcome_first_last_count": span(&seqs[welcome.min(seqs.len())..]),
    })
}

/// The exactly-once accounts of all clients (user pushes, room pushes), how many clients
/// missed or repeated anything, and the first few of those in detail.
fn accounts(
    runs: &[ClientRun],
    plan: &RecoverPlan,
    user: &PushReport,
    rooms: &[PushReport],
) -> (Account, Account, u64, Vec<Value>) {
    let (mut users_acc, mut rooms_acc, mut unclean) = (Account::default(), Account::default(), 0);
    let mut details = Vec::new();
    for (i, run) in runs.iter().enumerate().filter(|(_, r)| r.connected) {
        let u = run.user.account(accepted_for_user(
            i,
            plan.clients,
            user.sent,
            &user.failed_k,
        ));
        let room = &rooms[i % plan.rooms];
        let r = run.room.account(accepted(room.sent, &room.failed_k));
        if u.missing + u.duplicated + r.missing + r.duplicated > 0 {
            unclean += 1;
            if details.len() < 5 {
                details.push(json!({
                    "client": i,
                    "offsets_backwards": run.offsets_backwards,
                    "room": room_name(i % plan.rooms),
                    "user_pushes": unclean_detail(run, 0, &u),
                    "room_pushes": unclean_detail(run, 1, &r),
                }));
            }
        }
        users_acc.add(&u);
        rooms_acc.add(&r);
    }
    (users_acc, rooms_acc, unclean, details)
}

/// `recover`: see the module doc.
pub async fn recover(c: &Common, plan: RecoverPlan) -> Result<Outcome, String> {
    if c.procs.is_some_and(|p| p > 1) {
        return Err("recover runs its clients in one process (--procs 1)".into());
    }
    let spec = specs(c, plan.clients, USER_PREFIX, true, Join::Nothing)?.remove(0);
    let plan = RecoverPlan {
        rooms: plan.rooms.max(1),
        ..plan
    };
    let shared = Arc::new(ClientShared {
        endpoint: spec.endpoint.clone(),
        permits: Semaphore::new(c.connect_concurrency.max(1)),
        connect_timeout: Duration::from_millis(c.connect_timeout_ms),
        received: AtomicU64::new(0),
    });
    let server = || {
        c.server_pid
            .first()
            .and_then(|p| procstat::sample(Some(*p)))
    };
    let before = server();
    let (phase, phase_rx) = watch::channel(Phase::Live);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let tasks: Vec<_> = (0..plan.clients)
        .map(|i| {
            let id = Identity {
                index: i,
                token: spec.token(i),
                room: room_name(i % plan.rooms),
            };
            tokio::spawn(recover_client::run(
                shared.clone(),
                id,
                tx.clone(),
                phase_rx.clone(),
            ))
        })
        .collect();
    drop(tx);
    let mut connected = 0u64;
    while let Some(ok) = rx.recv().await {
        connected += u64::from(ok);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_connect = server();
    let stop_sampler = Arc::new(AtomicBool::new(false));
    let sampler = rss_sampler(c.server_pid.first().copied(), stop_sampler.clone());
    let api = HttpApi {
        addr: server_addr(c)?,
        servers: Vec::new(),
        api_key: c.api_key.clone(),
    };
    let pushing = push_all(api, &plan, c.duration);
    let choreography = async {
        tokio::time::sleep(Duration::from_secs_f64(plan.cut_at)).await;
        let _ = phase.send(Phase::Cut);
        let at_cut = server();
        tokio::time::sleep(Duration::from_secs_f64(plan.pause)).await;
        let _ = phase.send(Phase::Reconnect);
        (at_cut, Instant::now())
    };
    let ((user, rooms), (at_cut, reconnect_at)) = tokio::join!(pushing, choreography);
    let expected: u64 = (0..plan.clients)
        .map(|i| {
            let room = &rooms[i % plan.rooms];
            accepted_for_user(i, plan.clients, user.sent, &user.failed_k).count() as u64
                + room.accepted
        })
        .sum();
    let drain_until = Instant::now() + Duration::from_secs_f64(c.drain);
    while shared.received.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end = server();
    let _ = phase.send(Phase::Stop);
    let mut runs = Vec::with_capacity(tasks.len());
    for t in tasks {
        runs.push(t.await.unwrap_or_default());
    }
    stop_sampler.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap_or(0);
    let metrics = recovery_metrics(c).await;

    let mut reconnect = new_hist();
    let (mut recovered, mut same_ids, mut replayed) = (0u64, 0u64, 0u64);
    let (mut backwards, mut clients_backwards, mut backwards_live) = (0u64, 0u64, 0u64);
    let mut backwards_by_welcome = 0u64;
    let mut errors = std::collections::BTreeMap::<&str, u64>::new();
    let mut first_error = None;
    for run in &runs {
        recovered += u64::from(run.recovered == Some(true));
        same_ids += u64::from(run.same_ids);
        replayed += run.replayed;
        backwards += run.offsets_backwards;
        backwards_live += run.offsets_backwards_before_cut;
        backwards_by_welcome += run.offsets_backwards_by_welcome;
        clients_backwards += u64::from(run.offsets_backwards > 0);
        if let Some(us) = run.reconnect_us {
            record(&mut reconnect, us);
        }
        if let Some(kind) = run.error {
            *errors.entry(kind).or_default() += 1;
            first_error = first_error.or(run.detail.clone().map(|d| format!("{kind}: {d}")));
        }
    }
    let last_welcome = runs.iter().filter_map(|r| r.welcomed_at).max();
    let (users_acc, rooms_acc, unclean, details) = accounts(&runs, &plan, &user, &rooms);
    let missing = users_acc.missing + rooms_acc.missing;
    let duplicated = users_acc.duplicated + rooms_acc.duplicated;
    let all = plan.clients as u64;
    let within_5s = reconnect.max() <= 5_000_000 && !reconnect.is_empty();
    let cpu = |a: Option<procstat::Sample>, b: Option<procstat::Sample>| {
        Some(round(b?.cpu_secs - a?.cpu_secs, 3))
    };
    let history_kib = plan.history_bytes / 1024;
    let rss_growth = at_connect.map(|a| peak.saturating_sub(a.rss_kib));
    let deliveries = users_acc.received + rooms_acc.received;
    let room_sent: u64 = rooms.iter().map(|r| r.sent).sum();
    let room_failed: u64 = rooms.iter().map(|r| r.failed).sum();
    let results = json!({
        "connect": {"attempted": all, "connected": connected, "secs": round(connect_secs, 3)},
        "pushes": {"user": user, "rooms_sent": room_sent, "rooms_failed": room_failed},
        "recovered": recovered,
        "not_recovered": all - recovered,
        "same_sid_and_pid": same_ids,
        "replayed_pushes": replayed,
        "deliveries": deliveries,
        "expected_deliveries": expected,
        "user_pushes": users_acc,
        "room_pushes": rooms_acc,
        "missing": missing,
        "duplicated": duplicated,
        "clients_missing_or_duplicating": unclean,
        "client_errors": errors,
        "first_error": first_error,
        "reconnect_to_welcome": summary(&reconnect),
        "unclean_clients": details,
        "offsets_backwards": backwards,
        "clients_seeing_offsets_backwards": clients_backwards,
        "offsets_backwards_before_cut": backwards_live,
        "offsets_backwards_by_welcome": backwards_by_welcome,
        "reconnect_to_last_welcome_secs": last_welcome
            .map(|w| round(w.saturating_duration_since(reconnect_at).as_secs_f64(), 3)),
        "all_within_5s": within_5s,
        "server_rss_before_kib": before.map(|s| s.rss_kib),
        "server_rss_connected_kib": at_connect.map(|s| s.rss_kib),
        "server_rss_at_cut_kib": at_cut.map(|s| s.rss_kib),
        "server_rss_peak_kib": (peak > 0).then_some(peak),
        "server_rss_end_kib": end.map(|s| s.rss_kib),
        "server_rss_growth_kib": rss_growth,
        "history_bound_kib": history_kib,
        "rss_growth_within_history_bound": rss_growth.map(|g| g <= history_kib),
        "server_cpu_secs": cpu(at_connect, end),
        "server_cpu_us_per_delivery": cpu(at_connect, end)
            .filter(|_| deliveries > 0)
            .map(|s| round(s * 1e6 / deliveries as f64, 3)),
        "server_metrics": metrics,
    });
    let ok = connected == all
        && recovered == all
        && same_ids == all
        && missing == 0
        && duplicated == 0
        && user.failed == 0
        && room_failed == 0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "recover: {connected}/{all} connected; cut at +{}s, reconnect {}s later: {recovered} \
         recovered ({same_ids} same sid+pid), {replayed} pushes replayed",
        plan.cut_at, plan.pause
    );
    let _ = writeln!(
        s,
        "  {deliveries}/{expected} deliveries, {missing} missing, {duplicated} duplicated \
         ({unclean} clients unclean); reconnect→welcome p50 {} p99 {} max {} ms, the last \
         {} s after the reconnect began",
        results["reconnect_to_welcome"]["p50_ms"],
        results["reconnect_to_welcome"]["p99_ms"],
        results["reconnect_to_welcome"]["max_ms"],
        results["reconnect_to_last_welcome_secs"],
    );
    let _ = write!(
        s,
        "  server RSS {} → {} (cut {}, peak {}, end {}) KiB, history bound {history_kib} KiB; \
         CPU {} s = {} µs/delivery",
        results["server_rss_before_kib"],
        results["server_rss_connected_kib"],
        results["server_rss_at_cut_kib"],
        results["server_rss_peak_kib"],
        results["server_rss_end_kib"],
        results["server_cpu_secs"],
        results["server_cpu_us_per_delivery"],
    );
    Ok(Outcome {
        params: json!({
            "clients": plan.clients, "rooms": plan.rooms, "room_rate": plan.room_rate,
            "user_rate": plan.user_rate, "cut_at_secs": plan.cut_at, "pause_secs": plan.pause,
            "duration_secs": c.duration, "history_bytes": plan.history_bytes,
            "http_conns": plan.http_conns,
        }),
        results,
        ok,
        summary: s,
    })
}
