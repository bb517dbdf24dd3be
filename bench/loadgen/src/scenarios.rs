//! The scenarios: idle, fanout, unicast, idle-broadcast, connect-storm. Each returns an [`Outcome`]: its
//! parameters, its figures, whether it was clean (no failure, no loss), and a human summary.

use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use crate::args::{Common, Via};
use crate::client::{connect_within, Endpoint, Join};
use crate::group::{split, Fleet, GroupReport, GroupSpec};
use crate::hist::{new_hist, record, summary};
use crate::procstat::{self, Sample};
use crate::pusher::{self, Amqp, HttpApi, PushReport, Route, Schedule};

/// Clients one process holds at most by default (the hard limit on open files is 20,000).
pub const CLIENTS_PER_PROC: usize = 15_000;

/// A finished scenario.
pub struct Outcome {
    /// Its parameters.
    pub params: Value,
    /// Its figures.
    pub results: Value,
    /// No failure and no loss.
    pub ok: bool,
    /// A few lines for people.
    pub summary: String,
}

type Res<T> = Result<T, String>;

/// The loopback IPv4 address of `host:port`.
fn loopback(host: &str, port: u16) -> Res<SocketAddr> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{host} has no IPv4 address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: the load generator only targets 127.0.0.0/8"
        ));
    }
    Ok(addr)
}

/// Every server of the run: each of `--targets`, or `--host`:`--port`.
pub(crate) fn server_addrs(c: &Common) -> Res<Vec<SocketAddr>> {
    if c.targets.is_empty() {
        return Ok(vec![loopback(&c.host, c.port)?]);
    }
    c.targets
        .iter()
        .map(|t| {
            let (host, port) = t
                .rsplit_once(':')
                .ok_or_else(|| format!("target {t:?} is not host:port"))?;
            let port = port
                .parse()
                .map_err(|_| format!("target {t:?} has no valid port"))?;
            loopback(host, port)
        })
        .collect()
}

/// The first server of the run.
pub(crate) fn server_addr(c: &Common) -> Res<SocketAddr> {
    Ok(server_addrs(c)?[0])
}

fn endpoint(c: &Common) -> Res<Endpoint> {
    let servers = server_addrs(c)?;
    Ok(Endpoint {
        addr: servers[0],
        servers: if servers.len() > 1 {
            servers
        } else {
            Vec::new()
        },
        path: c.path.clone(),
        sources: c.sources,
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// One spec per client process.
pub(crate) fn specs(
    c: &Common,
    count: usize,
    prefix: &str,
    admin: bool,
    join: Join,
) -> Res<Vec<GroupSpec>> {
    let ep = endpoint(c)?;
    let procs = c.procs.unwrap_or(count.div_ceil(CLIENTS_PER_PROC)).max(1);
    Ok(split(count, procs)
        .into_iter()
        .map(|(first, n)| GroupSpec {
            endpoint: ep.clone(),
            secret: c.secret.clone(),
            issuer: non_empty(&c.issuer),
            audience: non_empty(&c.audience),
            first,
            count: n,
            user_prefix: prefix.to_owned(),
            admin,
            join: join.clone(),
            connect_concurrency: c.connect_concurrency,
            connect_timeout_ms: c.connect_timeout_ms,
            threads: c.threads,
            deadline_secs: c.deadline_secs() + 5.0,
        })
        .collect())
}

/// The servers' CPU and memory (summed over every pid), when their pids are known.
struct Probe(Vec<u32>);

impl Probe {
    /// `None` when no pid is known or one of the processes is gone.
    fn sample(&self) -> Option<Sample> {
        if self.0.is_empty() {
            return None;
        }
        let mut sum = Sample::default();
        for pid in &self.0 {
            let s = procstat::sample(Some(*pid))?;
            sum.cpu_secs += s.cpu_secs;
            sum.rss_kib += s.rss_kib;
        }
        Some(sum)
    }
}

fn cpu_between(a: Option<Sample>, b: Option<Sample>) -> Option<f64> {
    Some(b?.cpu_secs - a?.cpu_secs)
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

fn connect_json(fleet: &Fleet) -> Value {
    let c = &fleet.connected;
    json!({
        "attempted": c.attempted,
        "connected": c.connected,
        "failed": c.failed,
        "errors": c.errors,
        "first_error": c.first_error,
        "secs": round(c.secs, 3),
        "rate_per_sec": round(if c.secs > 0.0 { c.connected as f64 / c.secs } else { 0.0 }, 1),
        "handshake": summary(&c.handshake_hist()),
    })
}

fn self_cpu() -> f64 {
    procstat::sample(None).map_or(0.0, |s| s.cpu_secs)
}

// ---------------------------------------------------------------------------------------------

/// `idle`: connect N subscribed clients, hold them for the duration.
pub async fn idle(c: &Common, clients: usize) -> Res<Outcome> {
    let probe = Probe(c.server_pid.clone());
    let before = probe.sample();
    let fleet = Fleet::start(specs(c, clients, "idle", false, Join::Subscribe)?)
        .await
        .map_err(|e| format!("client processes: {e}"))?;
    // Let the server settle (deferred frees, buffers) before reading its memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connected_sample = probe.sample();
    tokio::time::sleep(Duration::from_secs_f64(c.duration)).await;
    let end = probe.sample();
    let conn = connect_json(&fleet);
    let n = fleet.connected.connected;
    let failed = fleet.connected.failed;
    let report = fleet
        .finish()
        .await
        .map_err(|e| format!("client processes: {e}"))?;
    let rss_per_conn = match (before, end) {
        (Some(b), Some(e)) if n > 0 => {
            Some(round((e.rss_kib as f64 - b.rss_kib as f64) / n as f64, 2))
        }
        _ => None,
    };
    let results = json!({
        "connect": conn,
        "closed_during_hold": report.closed_early,
        "close_reasons": report.errors,
        "server_rss_before_kib": before.map(|s| s.rss_kib),
        "server_rss_connected_kib": connected_sample.map(|s| s.rss_kib),
        "server_rss_end_kib": end.map(|s| s.rss_kib),
        "rss_per_conn_kib": rss_per_conn,
        "server_cpu_hold_secs": cpu_between(connected_sample, end).map(|x| round(x, 3)),
        "loadgen_rss_kib": procstat::sample(None).map(|s| s.rss_kib),
    });
    let mut s = String::new();
    let _ = writeln!(
        s,
        "idle: {n}/{clients} connected ({failed} failed) in {:.2}s = {} connects/s, handshake p99 {} ms",
        conn["secs"], conn["rate_per_sec"], conn["handshake"]["p99_ms"]
    );
    let _ = write!(
        s,
        "      held {}s, {} closed during hold; server RSS {} -> {} KiB = {} KiB per connection",
        c.duration,
        report.closed_early,
        results["server_rss_before_kib"],
        results["server_rss_end_kib"],
        results["rss_per_conn_kib"],
    );
    Ok(Outcome {
        params: json!({"clients": clients, "duration_secs": c.duration}),
        ok: failed == 0 && report.closed_early == 0 && n == clients as u64,
        results,
        summary: s,
    })
}

// ---------------------------------------------------------------------------------------------

/// Expected pushes for client `i` (user index), given the pusher's report.
fn expected_for(route: &Route, push: &PushReport, i: usize) -> u64 {
    match route {
        Route::Room(_) | Route::Broadcast => push.accepted,
        Route::Users { users, .. } => {
            let users = *users as u64;
            let i = i as u64;
            let base = push.sent / users + u64::from(i < push.sent % users);
            let failed = push.failed_k.iter().filter(|k| *k % users == i).count() as u64;
            base.saturating_sub(failed)
        }
    }
}

/// Figures shared by fanout and unicast.
fn delivery_results(
    route: &Route,
    push: &PushReport,
    report: &GroupReport,
    cpu_secs: Option<f64>,
    self_cpu_secs: f64,
) -> (Value, u64) {
    let mut expected = 0u64;
    let mut lost = 0u64;
    for (i, got) in report.unique.iter().enumerate() {
        if let Some(got) = got {
            let want = expected_for(route, push, i);
            expected += want;
            lost += want.saturating_sub(*got);
        }
    }
    let deliveries = report.total_unique();
    let window = (report.last_recv_us.saturating_sub(push.first_us)) as f64 / 1e6;
    let per_sec = if window > 0.0 {
        deliveries as f64 / window
    } else {
        0.0
    };
    let lat = report.latency_hist();
    let per_delivery = |cpu: f64| (deliveries > 0).then(|| cpu * 1e6 / deliveries as f64);
    let results = json!({
        "pushes": push,
        "expected_deliveries": expected,
        "deliveries": deliveries,
        "lost": lost,
        "duplicates": report.dups,
        "clients_closed_early": report.closed_early,
        "close_reasons": report.errors,
        "delivered_per_sec": round(per_sec, 1),
        "latency": summary(&lat),
        "latency_timeline": report.timeline.summary(push.first_us, lat.value_at_quantile(0.99)),
        "server_cpu_secs": cpu_secs.map(|x| round(x, 3)),
        "server_cpu_s_per_1k_deliveries": cpu_secs.and_then(per_delivery).map(|us| round(us / 1000.0, 6)),
        "server_cpu_us_per_delivery": cpu_secs.and_then(per_delivery).map(|us| round(us, 3)),
        "loadgen_cpu_us_per_delivery": per_delivery(self_cpu_secs).map(|us| round(us, 3)),
    });
    (results, lost)
}

fn delivery_summary(name: &str, r: &Value) -> String {
    let line = format!(
        "{name}: {} deliveries ({} expected, {} lost, {} dup) at {}/s; pushes sent {} at {:.1}/s \
         ({} late); latency p50 {} p99 {} p999 {} max {} ms; server CPU {} µs/delivery",
        r["deliveries"],
        r["expected_deliveries"],
        r["lost"],
        r["duplicates"],
        r["delivered_per_sec"],
        r["pushes"]["sent"],
        r["pushes"]["achieved_rate"].as_f64().unwrap_or(0.0),
        r["pushes"]["late"],
        r["latency"]["p50_ms"],
        r["latency"]["p99_ms"],
        r["latency"]["p999_ms"],
        r["latency"]["max_ms"],
        r["server_cpu_us_per_delivery"],
    );
    let timeline = &r["latency_timeline"];
    let slowest: Vec<String> = timeline["slowest"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            format!(
                "+{:.1} s {} ms",
                w["at_s"].as_f64().unwrap_or(0.0),
                w["max_ms"]
            )
        })
        .collect();
    format!(
        "{line}\n  slowest 100 ms windows of send time: {}; {} of {} windows hold a push at or \
         over the p99",
        slowest.join(", "),
        timeline["windows_reaching_p99"],
        timeline["windows"],
    )
}

/// Run the pusher against a connected fleet, drain, and compute the delivery figures.
async fn push_and_measure(
    c: &Common,
    mut fleet: Fleet,
    route: Route,
    via: Via,
    rate: f64,
    http_conns: usize,
) -> Res<(Value, bool)> {
    let probe = Probe(c.server_pid.clone());
    let schedule = Schedule::new(rate, c.duration);
    let connected = fleet.connected.connected;
    let conn = connect_json(&fleet);
    let broker = Probe(c.broker_pid.into_iter().collect());
    let before = probe.sample();
    let broker_before = broker.sample();
    let self_before = fleet
        .cpu_secs()
        .await
        .map_err(|e| format!("client processes: {e}"))?;
    let push = match via {
        Via::Http => {
            let servers = server_addrs(c)?;
            let api = HttpApi {
                addr: servers[0],
                servers,
                api_key: c.api_key.clone(),
            };
            pusher::push_http(api, route.clone(), schedule, http_conns).await
        }
        Via::Amqp => {
            let amqp = Amqp {
                url: c.amqp_url.clone(),
                exchange: c.exchange.clone(),
                persistent: !c.transient,
            };
            pusher::push_amqp(amqp, route.clone(), schedule).await
        }
    };
    let expected: u64 = match &route {
        Route::Room(_) | Route::Broadcast => push.accepted * connected,
        Route::Users { .. } => push.accepted,
    };
    let reached = fleet
        .drain(expected, Duration::from_secs_f64(c.drain))
        .await
        .map_err(|e| format!("client processes: {e}"))?;
    let after = probe.sample();
    let broker_secs = cpu_between(broker_before, broker.sample());
    let self_secs = fleet
        .cpu_secs()
        .await
        .map_err(|e| format!("client processes: {e}"))?
        - self_before;
    let report = fleet
        .finish()
        .await
        .map_err(|e| format!("client processes: {e}"))?;
    let (mut results, lost) = delivery_results(
        &route,
        &push,
        &report,
        cpu_between(before, after),
        self_secs,
    );
    results["connect"] = conn;
    results["drained"] = json!(reached >= expected);
    results["server_rss_kib"] = json!(after.map(|s| s.rss_kib));
    results["broker_cpu_secs"] = json!(broker_secs.map(|x| round(x, 3)));
    results["broker_cpu_us_per_push"] = json!(broker_secs
        .filter(|_| push.sent > 0)
        .map(|x| round(x * 1e6 / push.sent as f64, 2)));
    results["loadgen_cpu_secs"] = json!(round(self_secs, 3));
    let ok = lost == 0
        && push.failed == 0
        && report.dups == 0
        && report.closed_early == 0
        && fleet_ok(&results);
    Ok((results, ok))
}

fn fleet_ok(results: &Value) -> bool {
    results["connect"]["failed"] == 0
}

/// `fanout`: N clients in one room, pushes at a rate.
pub async fn fanout(
    c: &Common,
    clients: usize,
    rate: f64,
    via: Via,
    room: &str,
    http_conns: usize,
) -> Res<Outcome> {
    // RabbitMQ reaches a room through the routing table: `quota.updated` is copied to `admin`.
    let room = match via {
        Via::Http => room.to_owned(),
        Via::Amqp => "admin".to_owned(),
    };
    let fleet = Fleet::start(specs(c, clients, "fan", true, Join::Room(room.clone()))?)
        .await
        .map_err(|e| format!("client processes: {e}"))?;
    let (results, ok) =
        push_and_measure(c, fleet, Route::Room(room.clone()), via, rate, http_conns).await?;
    Ok(Outcome {
        params: json!({"clients": clients, "rate": rate, "via": via, "room": room,
                       "duration_secs": c.duration, "http_conns": http_conns}),
        summary: delivery_summary("fanout", &results),
        results,
        ok,
    })
}

/// `unicast`: N users, events spread over them at a rate.
pub async fn unicast(
    c: &Common,
    users: usize,
    rate: f64,
    via: Via,
    http_conns: usize,
) -> Res<Outcome> {
    let prefix = "uni";
    let fleet = Fleet::start(specs(c, users, prefix, false, Join::Subscribe)?)
        .await
        .map_err(|e| format!("client processes: {e}"))?;
    let route = Route::Users {
        prefix: prefix.into(),
        users,
    };
    let (results, ok) = push_and_measure(c, fleet, route, via, rate, http_conns).await?;
    Ok(Outcome {
        params: json!({"users": users, "rate": rate, "via": via, "duration_secs": c.duration,
                       "persistent": !c.transient}),
        summary: delivery_summary("unicast", &results),
        results,
        ok,
    })
}

// ---------------------------------------------------------------------------------------------

/// `idle-broadcast`: N idle subscribed clients (spread over every server), one broadcast per
/// 1/rate seconds through the HTTP API; every client must receive each broadcast once.
pub async fn idle_broadcast(
    c: &Common,
    clients: usize,
    rate: f64,
    http_conns: usize,
) -> Res<Outcome> {
    let probe = Probe(c.server_pid.clone());
    let before = probe.sample();
    let fleet = Fleet::start(specs(c, clients, "bcast", false, Join::Subscribe)?)
        .await
        .map_err(|e| format!("client processes: {e}"))?;
    let n = fleet.connected.connected;
    // Let the servers settle (deferred frees, buffers) before reading their memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connected = probe.sample();
    let (mut results, ok) =
        push_and_measure(c, fleet, Route::Broadcast, Via::Http, rate, http_conns).await?;
    let rss_per_conn = match (before, connected) {
        (Some(b), Some(e)) if n > 0 => {
            Some(round((e.rss_kib as f64 - b.rss_kib as f64) / n as f64, 2))
        }
        _ => None,
    };
    results["servers"] = json!(server_addrs(c)?.len());
    results["server_rss_before_kib"] = json!(before.map(|s| s.rss_kib));
    results["server_rss_connected_kib"] = json!(connected.map(|s| s.rss_kib));
    results["rss_per_conn_kib"] = json!(rss_per_conn);
    let mut text = delivery_summary("idle-broadcast", &results);
    let _ = write!(
        text,
        "\n  {n}/{clients} connected to {} server(s); push->202 p50 {} p99 {} ms; server RSS \
         {} -> {} KiB = {} KiB per connection",
        results["servers"],
        results["pushes"]["accept_latency"]["p50_ms"],
        results["pushes"]["accept_latency"]["p99_ms"],
        results["server_rss_before_kib"],
        results["server_rss_connected_kib"],
        results["rss_per_conn_kib"],
    );
    Ok(Outcome {
        params: json!({"clients": clients, "rate": rate, "via": Via::Http, "route": "broadcast",
                       "duration_secs": c.duration, "http_conns": http_conns}),
        ok: ok && n == clients as u64,
        results,
        summary: text,
    })
}

// ---------------------------------------------------------------------------------------------

/// `connect-storm`: open-loop connects at each rate for `step_secs`; stop at the first step
/// with failures, or once the achieved rate falls well short of the target.
pub async fn connect_storm(
    c: &Common,
    rates: &[u32],
    step_secs: f64,
    max_inflight: usize,
    hold: bool,
) -> Res<Outcome> {
    let ep = Arc::new(endpoint(c)?);
    let probe = Probe(c.server_pid.clone());
    let spec = specs(c, 1, "storm", false, Join::Nothing)?.remove(0);
    let deadline = Instant::now() + Duration::from_secs_f64(c.deadline_secs() - 10.0);
    let mut steps = Vec::new();
    let mut max_ok_rate = 0f64;
    let mut first_failure_rate = None;
    let mut at_max: Option<Value> = None;
    let mut next_index = 0usize;
    let limit = Duration::from_millis(c.connect_timeout_ms);
    for &rate in rates {
        if Instant::now() + Duration::from_secs_f64(step_secs + 5.0) > deadline {
            break;
        }
        let mut n = (rate as f64 * step_secs).round() as usize;
        if hold {
            n = n.min(CLIENTS_PER_PROC);
        }
        // Tokens are minted before the step so that the load generator's signing is not timed.
        let tokens: Vec<(usize, String, String)> = (0..n)
            .map(|j| {
                let index = next_index + j;
                (index, spec.user(index), spec.token(index))
            })
            .collect();
        next_index += n;
        let before = probe.sample();
        let self_before = self_cpu();
        let sem = Arc::new(Semaphore::new(max_inflight.max(1)));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        let mut throttled = 0u64;
        for (j, (index, user, token)) in tokens.into_iter().enumerate() {
            let due = start + Duration::from_secs_f64(j as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
            let permit = match sem.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    throttled += 1;
                    sem.clone()
                        .acquire_owned()
                        .await
                        .map_err(|e| e.to_string())?
                }
            };
            let (ep, tx) = (ep.clone(), tx.clone());
            tokio::spawn(async move {
                let t0 = Instant::now();
                let r = connect_within(limit, &ep, index, &token, &user, &Join::Nothing).await;
                let us = t0.elapsed().as_micros() as u64;
                let done = Instant::now();
                drop(permit);
                match r {
                    Ok(mut ws) => {
                        if hold {
                            let _ = tx.send((Ok(us), done, Some(ws)));
                        } else {
                            let _ = tx.send((Ok(us), done, None));
                            let _ = ws.close().await;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send((Err(e), done, None));
                    }
                }
            });
        }
        drop(tx);
        let mut h = new_hist();
        let (mut ok, mut failed) = (0u64, 0u64);
        let mut errors = std::collections::BTreeMap::<String, u64>::new();
        let mut first_error = None;
        let mut last = start;
        let mut held = Vec::new();
        while let Some((r, done, ws)) = rx.recv().await {
            last = last.max(done);
            match r {
                Ok(us) => {
                    ok += 1;
                    record(&mut h, us);
                }
                Err(e) => {
                    failed += 1;
                    *errors.entry(e.0.to_owned()).or_default() += 1;
                    first_error.get_or_insert(format!("{}: {}", e.0, e.1));
                }
            }
            held.extend(ws);
        }
        let secs = (last - start).as_secs_f64();
        let achieved = if secs > 0.0 { ok as f64 / secs } else { 0.0 };
        let after = probe.sample();
        let cpu = cpu_between(before, after);
        let self_secs = self_cpu() - self_before;
        steps.push(json!({
            "target_rate": rate,
            "attempted": n,
            "connected": ok,
            "failed": failed,
            "errors": errors,
            "first_error": first_error,
            "throttled": throttled,
            "secs": round(secs, 3),
            "achieved_rate": round(achieved, 1),
            "handshake": summary(&h),
            "server_cpu_secs": cpu.map(|x| round(x, 3)),
            "server_cpu_us_per_connect": cpu.filter(|_| ok > 0).map(|x| round(x * 1e6 / ok as f64, 2)),
            "loadgen_cpu_us_per_connect": (ok > 0).then(|| round(self_secs * 1e6 / ok as f64, 2)),
        }));
        for mut ws in held {
            let _ = ws.close().await;
        }
        if failed > 0 {
            first_failure_rate = Some(rate);
            break;
        }
        if achieved > max_ok_rate {
            max_ok_rate = achieved;
            at_max = steps.last().cloned();
        }
        if achieved < 0.9 * rate as f64 {
            // Saturated: a higher target cannot do better.
            break;
        }
        // Let the server finish closing the step's connections.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut s = String::new();
    for st in &steps {
        let _ = writeln!(
            s,
            "connect-storm: target {:>6}/s -> {:>8}/s achieved, {} ok, {} failed, handshake p50 {} p99 {} ms, server {} µs/connect",
            st["target_rate"], st["achieved_rate"], st["connected"], st["failed"],
            st["handshake"]["p50_ms"], st["handshake"]["p99_ms"], st["server_cpu_us_per_connect"]
        );
    }
    let _ = write!(
        s,
        "connect-storm: max rate without failures {:.0}/s; first failures at {}",
        max_ok_rate,
        first_failure_rate.map_or("none".into(), |r| format!("{r}/s"))
    );
    Ok(Outcome {
        params: json!({"rates": rates, "step_secs": step_secs, "max_inflight": max_inflight,
                       "hold": hold}),
        results: json!({
            "max_ok_rate": round(max_ok_rate, 1),
            "first_failure_rate": first_failure_rate,
            "at_max": at_max,
            "steps": steps,
        }),
        ok: true,
        summary: s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_per_user_accounts_for_failures() {
        let route = Route::Users {
            prefix: "u".into(),
            users: 4,
        };
        let push = PushReport {
            sent: 10,
            accepted: 9,
            failed: 1,
            failed_k: vec![5],
            ..Default::default()
        };
        let got: Vec<u64> = (0..4).map(|i| expected_for(&route, &push, i)).collect();
        // k = 0..10 → users 0,1 get 3 each, 2,3 get 2; k = 5 (user 1) failed.
        assert_eq!(got, vec![3, 2, 2, 2]);
        assert_eq!(expected_for(&Route::Room("r".into()), &push, 3), 9);
        assert_eq!(expected_for(&Route::Broadcast, &push, 3), 9);
    }
}
