//! `pushgate-loadgen`: load generator for pushgate and its Node peer.
//!
//! Clients speak Engine.IO v4 / Socket.IO v5 over WebSocket themselves (pushgate's codec
//! conventions, their own WebSocket framing) so that thousands of them cost little CPU; they mint
//! their own HS256 tokens; their sockets are spread over several loopback source addresses;
//! large runs are split over worker processes. Every scenario prints one JSON line on stdout
//! and a human summary on stderr, and every run ends by itself (`--deadline`).
//!
//! See BENCHMARKS.md for the scenarios and how to run them against both servers.

mod args;
mod client;
mod compare;
mod group;
mod hist;
mod ledger;
mod probe;
mod procstat;
mod pusher;
mod recover;
mod recover_client;
mod scenarios;
mod stamp;
mod timeline;
mod ws;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use crate::args::{Cli, Command};

/// jemalloc, as in the server: glibc malloc's `_int_malloc` / `_int_free` / `unlink_chunk`
/// were a fifth of the load generator's user time in a connect storm (perf).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Raise the soft limit on open files to the hard one; the limit now in force.
fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .unwrap_or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft))
}

/// Exit the process, whatever it is doing, `secs` from now.
fn watchdog(secs: f64, what: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(secs.max(1.0)));
        eprintln!("pushgate-loadgen: {what} passed its hard deadline ({secs:.0}s): exiting");
        std::process::exit(3);
    });
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let nofile = raise_nofile();
    match cli.command {
        Command::Compare { a, b } => {
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p)
                    .ok()
                    .and_then(|t| compare::result_line(&t))
            };
            match (read(&a), read(&b)) {
                (Some(a), Some(b)) => {
                    print!("{}", compare::table(&a, &b));
                    ExitCode::SUCCESS
                }
                _ => {
                    eprintln!("pushgate-loadgen compare: both files must hold a result line");
                    ExitCode::from(2)
                }
            }
        }
        Command::Worker { spec } => {
            let spec: group::GroupSpec = match serde_json::from_str(&spec) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("pushgate-loadgen worker: bad spec: {e}");
                    return ExitCode::from(2);
                }
            };
            watchdog(spec.deadline_secs, "worker");
            let rt = match runtime(spec.threads) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("pushgate-loadgen worker: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(group::run_worker(spec)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pushgate-loadgen worker: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Probe => match probe::run() {
            Ok(p) => {
                eprintln!("{}", p.summary());
                println!("{}", json!(p));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pushgate-loadgen probe: {e}");
                ExitCode::from(2)
            }
        },
        command => run_scenario(cli.common, command, nofile),
    }
}

fn run_scenario(common: args::Common, command: Command, nofile: u64) -> ExitCode {
    let deadline = common.deadline_secs();
    watchdog(deadline + 15.0, "the run");
    // Before the runtime and any client exist, so that the probe measures the machine alone.
    let probe = probe::run()
        .map_err(|e| eprintln!("pushgate-loadgen: machine probe failed: {e}"))
        .ok();
    let sampler = probe::CoreSampler::start();
    let rt = match runtime(common.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pushgate-loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = match &command {
        Command::Idle { .. } => "idle",
        Command::Fanout { .. } => "fanout",
        Command::Unicast { .. } => "unicast",
        Command::IdleBroadcast { .. } => "idle-broadcast",
        Command::ConnectStorm { .. } => "connect-storm",
        Command::Recover { .. } => "recover",
        Command::Compare { .. } | Command::Worker { .. } | Command::Probe => {
            unreachable!("handled in main")
        }
    };
    let c = &common;
    let started = std::time::SystemTime::now();
    let load_before = loadavg();
    let outcome = rt.block_on(async {
        let run = async {
            match &command {
                Command::Idle { clients } => scenarios::idle(c, *clients).await,
                Command::Fanout {
                    clients,
                    rate,
                    via,
                    room,
                    http_conns,
                } => scenarios::fanout(c, *clients, *rate, *via, room, *http_conns).await,
                Command::Unicast {
                    users,
                    rate,
                    via,
                    http_conns,
                } => scenarios::unicast(c, *users, *rate, *via, *http_conns).await,
                Command::IdleBroadcast {
                    clients,
                    rate,
                    http_conns,
                } => scenarios::idle_broadcast(c, *clients, *rate, *http_conns).await,
                Command::ConnectStorm {
                    rates,
                    step_secs,
                    max_inflight,
                    hold,
                } => scenarios::connect_storm(c, rates, *step_secs, *max_inflight, *hold).await,
                Command::Recover {
                    clients,
                    rooms,
                    room_rate,
                    user_rate,
                    cut_at,
                    pause,
                    http_conns,
                    history_bytes,
                } => {
                    let plan = recover::RecoverPlan {
                        clients: *clients,
                        rooms: *rooms,
                        room_rate: *room_rate,
                        user_rate: *user_rate,
                        cut_at: *cut_at,
                        pause: *pause,
                        http_conns: *http_conns,
                        history_bytes: *history_bytes,
                    };
                    recover::recover(c, plan).await
                }
                Command::Compare { .. } | Command::Worker { .. } | Command::Probe => {
                    unreachable!()
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs_f64(deadline), run).await {
            Ok(r) => r,
            Err(_) => Err(format!("deadline of {deadline:.0}s reached")),
        }
    });
    let core_during_run = sampler.finish();
    // Do not wait for client tasks still closing.
    rt.shutdown_timeout(Duration::from_secs(2));
    let timestamp = started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let loadgen = json!({
        "procs": common.procs, "threads": common.threads, "sources": common.sources,
        "nofile": nofile, "version": env!("CARGO_PKG_VERSION"),
    });
    // The machine is shared: say how busy it was.
    let machine = json!({
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "cpu_pressure_some_avg60_after": cpu_pressure(),
        "probe": probe,
        "core_during_run": core_during_run,
    });
    match outcome {
        Ok(o) => {
            eprintln!("[{}] {}", common.target_name(), o.summary);
            if let Some(p) = &probe {
                eprintln!("  {}", p.summary());
            }
            if let Some(c) = &core_during_run {
                eprintln!("  {}", c.summary());
            }
            let line = json!({
                "scenario": name,
                "target": common.target,
                "params": o.params,
                "results": o.results,
                "ok": o.ok,
                "loadgen": loadgen,
                "machine": machine,
                "started_unix": timestamp,
            });
            println!("{line}");
            if o.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("pushgate-loadgen {name}: {e}");
            let line = json!({
                "scenario": name, "target": common.target, "ok": false, "error": e,
                "loadgen": loadgen, "machine": machine, "started_unix": timestamp,
            });
            println!("{line}");
            ExitCode::from(2)
        }
    }
}

/// The 1-minute load average.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `some avg60` of /proc/pressure/cpu: the share of time something waited for a CPU.
fn cpu_pressure() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    text.lines()
        .find(|l| l.starts_with("some"))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("avg60="))?
        .parse()
        .ok()
}

impl args::Common {
    fn target_name(&self) -> &'static str {
        match self.target {
            args::Target::Pushgate => "pushgate",
            args::Target::Node => "node",
        }
    }
}
