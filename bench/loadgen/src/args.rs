//! Command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Load generator for pushgate and its Node peer.
#[derive(Debug, Parser)]
#[command(name = "pushgate-loadgen", version, about, long_about = None)]
pub struct Cli {
    /// Options of every scenario.
    #[command(flatten)]
    pub common: Common,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Which server is measured (a label in the results; both speak the same protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// pushgate.
    Pushgate,
    /// The Node (socket.io) peer in bench/node-peer.
    Node,
}

/// How pushes reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The HTTP push API.
    Http,
    /// RabbitMQ (`quota.updated` events on the topic exchange).
    Amqp,
}

/// Options of every scenario.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Common {
    /// The server being measured (a label in the results).
    #[arg(long, global = true, value_enum, default_value_t = Target::Pushgate)]
    pub target: Target,
    /// Server host (loopback only).
    #[arg(long, global = true, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port.
    #[arg(long, global = true, default_value_t = 30006)]
    pub port: u16,
    /// Several servers, `host:port,host:port,...` (the nodes of a cluster, loopback only):
    /// client i connects to the (i mod n)-th, HTTP push connection j to the (j mod n)-th.
    /// Replaces --host and --port.
    #[arg(long, global = true, value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Socket.IO path.
    #[arg(long, global = true, default_value = "/socket.io/")]
    pub path: String,
    /// JWT secret tokens are minted with (default: pushgate's --dev secret).
    #[arg(long, global = true, env = "BENCH_JWT_SECRET", hide_env_values = true,
          default_value = pushgate::config::DEV_JWT_SECRET)]
    #[serde(skip)]
    pub secret: String,
    /// `iss` of minted tokens (empty: none).
    #[arg(long, global = true, default_value = "cloudphone-platform")]
    pub issuer: String,
    /// `aud` of minted tokens (empty: none).
    #[arg(long, global = true, default_value = "cloudphone-users")]
    pub audience: String,
    /// Push API key (default: pushgate's --dev key).
    #[arg(long, global = true, env = "BENCH_API_KEY", hide_env_values = true,
          default_value = pushgate::config::DEV_API_KEY)]
    #[serde(skip)]
    pub api_key: String,
    /// RabbitMQ URL.
    #[arg(
        long,
        global = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Topic exchange the server consumes from.
    #[arg(long, global = true, default_value = "cloudphone.events")]
    pub exchange: String,
    /// Publish transient messages (default: persistent, as the real publishers do).
    #[arg(long, global = true)]
    pub transient: bool,
    /// Server process id: its CPU time and RSS are read from /proc. Several, comma-separated
    /// (the nodes of a cluster): the figures are their sums (recover reads the first only).
    #[arg(long, global = true, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// RabbitMQ's process id (beam.smp): its CPU time during AMQP runs is reported too.
    #[arg(long, global = true)]
    pub broker_pid: Option<u32>,
    /// Client sockets are bound to 127.0.0.1 ..= 127.0.0.<sources>.
    #[arg(long, global = true, default_value_t = 16,
          value_parser = clap::value_parser!(u8).range(1..=254))]
    pub sources: u8,
    /// How long the measured phase lasts, seconds.
    #[arg(long, global = true, default_value_t = 10.0)]
    pub duration: f64,
    /// Hard limit on the whole run, seconds (default: duration + 60).
    #[arg(long, global = true)]
    pub deadline: Option<f64>,
    /// Client processes (default: one per 15,000 clients).
    #[arg(long, global = true)]
    pub procs: Option<usize>,
    /// Tokio worker threads per process.
    #[arg(long, global = true, default_value_t = 2)]
    pub threads: usize,
    /// Client handshakes in flight at once, per process (kept under a listen backlog of 128:
    /// connect-storm is the scenario that measures connect bursts).
    #[arg(long, global = true, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Time limit of one client's handshake, ms.
    #[arg(long, global = true, default_value_t = 10_000)]
    pub connect_timeout_ms: u64,
    /// Longest wait for pushes still in flight after the last one was sent, seconds.
    #[arg(long, global = true, default_value_t = 5.0)]
    pub drain: f64,
}

impl Common {
    /// The hard deadline, seconds.
    pub fn deadline_secs(&self) -> f64 {
        self.deadline.unwrap_or(self.duration + 60.0)
    }
}

/// What to run.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// N connected, subscribed clients held for --duration: connect rate, failures, server
    /// RSS per connection.
    Idle {
        /// Clients.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
    },
    /// N clients in one room, pushes at --rate: deliveries/s, losses, latency, server CPU.
    Fanout {
        /// Clients in the room.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Pushes per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// HTTP API (room `--room`, `message` event) or RabbitMQ (`quota.updated`, copied to
        /// the `admin` room).
        #[arg(long, value_enum, default_value_t = Via::Http)]
        via: Via,
        /// Room for HTTP pushes.
        #[arg(long, default_value = "bench")]
        room: String,
        /// Keep-alive HTTP connections the pusher uses (requests in flight at once).
        #[arg(long, default_value_t = 8)]
        http_conns: usize,
    },
    /// N users, one event per user at a time at --rate: delivery rate, losses, latency, CPU.
    Unicast {
        /// Users (one client each).
        #[arg(long, default_value_t = 2000)]
        users: usize,
        /// Events per second (all users together).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// RabbitMQ (`quota.updated`) or the HTTP API (`/users/{id}/notifications`).
        #[arg(long, value_enum, default_value_t = Via::Amqp)]
        via: Via,
        /// Keep-alive HTTP connections the pusher uses (requests in flight at once).
        #[arg(long, default_value_t = 8)]
        http_conns: usize,
    },
    /// Authenticated connects per second at increasing rates until failures appear.
    ConnectStorm {
        /// Connect rates to try, in order.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1000,2000,4000,6000,8000,10000,12000,15000,20000"
        )]
        rates: Vec<u32>,
        /// Seconds per rate.
        #[arg(long, default_value_t = 2.0)]
        step_secs: f64,
        /// Most handshakes in flight at once.
        #[arg(long, default_value_t = 4000)]
        max_inflight: usize,
        /// Hold every connection until the step ends (default: close right after welcome).
        #[arg(long)]
        hold: bool,
    },
    /// N idle, subscribed clients (spread over --targets) and one broadcast per 1/--rate
    /// seconds through `POST /api/v1/broadcast`: every client must get every broadcast exactly
    /// once; delivery latency over all clients, push-to-202 latency, server RSS per connection.
    IdleBroadcast {
        /// Clients (one user each).
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Broadcasts per second.
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        /// Keep-alive HTTP connections the pusher uses (requests in flight at once).
        #[arg(long, default_value_t = 1)]
        http_conns: usize,
    },
    /// Connection-state recovery: N clients in their user room and one of R shared rooms, all
    /// their connections cut at once while pushes go on, then all reconnect with their `pid`
    /// and last offset: recovered clients, pushes missing and duplicated, reconnect time, RSS.
    Recover {
        /// Clients (one user each).
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        /// Shared rooms (client i joins room `recover-<i % rooms>`).
        #[arg(long, default_value_t = 10)]
        rooms: usize,
        /// Pushes per second to each shared room.
        #[arg(long, default_value_t = 50.0)]
        room_rate: f64,
        /// User pushes per second (all users together, round-robin).
        #[arg(long, default_value_t = 2000.0)]
        user_rate: f64,
        /// Seconds after the first push when every connection is cut.
        #[arg(long, default_value_t = 3.0)]
        cut_at: f64,
        /// Seconds between the cut and the reconnect (pushes go on).
        #[arg(long, default_value_t = 1.0)]
        pause: f64,
        /// Keep-alive HTTP connections of each pusher (one for users, one per room).
        #[arg(long, default_value_t = 4)]
        http_conns: usize,
        /// The server's RECOVERY_HISTORY_BYTES (the RSS bound reported against).
        #[arg(long, env = "RECOVERY_HISTORY_BYTES", default_value_t = 67_108_864)]
        history_bytes: u64,
    },
    /// Measure the machine alone (a loopback round trip, an arithmetic loop) and print it as
    /// JSON: the probe every scenario runs first, to tell a slow phase of the machine apart.
    Probe,
    /// Print two result lines side by side with the ratio of their headline figures.
    Compare {
        /// File with pushgate's JSON result line.
        a: PathBuf,
        /// File with the other target's JSON result line.
        b: PathBuf,
    },
    /// (internal) A client group in a worker process.
    #[command(hide = true)]
    Worker {
        /// The group, as JSON (in the environment rather than argv: it holds the JWT secret).
        #[arg(long, env = "PUSHGATE_LOADGEN_SPEC", hide_env_values = true)]
        spec: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_scenarios_and_global_options() {
        let cli = Cli::try_parse_from([
            "pushgate-loadgen",
            "fanout",
            "--clients",
            "2000",
            "--rate",
            "400",
            "--target",
            "node",
            "--port",
            "39000",
            "--duration",
            "5",
            "--server-pid",
            "42",
        ])
        .unwrap();
        assert_eq!(cli.common.target, Target::Node);
        assert_eq!(cli.common.port, 39000);
        assert_eq!(cli.common.server_pid, [42]);
        assert!(cli.common.targets.is_empty());
        assert_eq!(cli.common.deadline_secs(), 65.0);
        match cli.command {
            Command::Fanout {
                clients, rate, via, ..
            } => assert_eq!((clients, rate, via), (2000, 400.0, Via::Http)),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "pushgate-loadgen",
            "connect-storm",
            "--rates",
            "100,200",
            "--sources",
            "4",
        ])
        .unwrap();
        assert_eq!(cli.common.sources, 4);
        assert!(matches!(cli.command, Command::ConnectStorm { rates, .. } if rates == [100, 200]));
        assert!(Cli::try_parse_from(["pushgate-loadgen", "idle", "--sources", "0"]).is_err());
        assert!(Cli::try_parse_from(["pushgate-loadgen", "bogus"]).is_err());
    }

    #[test]
    fn parses_targets_and_server_pids_of_a_cluster() {
        let cli = Cli::try_parse_from([
            "pushgate-loadgen",
            "idle-broadcast",
            "--clients",
            "90000",
            "--targets",
            "127.0.0.1:29101,127.0.0.1:29102",
            "--server-pid",
            "7,8",
        ])
        .unwrap();
        assert_eq!(cli.common.targets, ["127.0.0.1:29101", "127.0.0.1:29102"]);
        assert_eq!(cli.common.server_pid, [7, 8]);
        match cli.command {
            Command::IdleBroadcast {
                clients,
                rate,
                http_conns,
            } => assert_eq!((clients, rate, http_conns), (90_000, 1.0, 1)),
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["pushgate-loadgen", "idle", "--server-pid", "7,x"]).is_err());
    }

    #[test]
    fn parses_recover_with_the_benchmark_defaults() {
        let cli = Cli::try_parse_from(["pushgate-loadgen", "recover", "--cut-at", "2.5"]).unwrap();
        match cli.command {
            Command::Recover {
                clients,
                rooms,
                room_rate,
                cut_at,
                pause,
                ..
            } => assert_eq!(
                (clients, rooms, room_rate, cut_at, pause),
                (10_000, 10, 50.0, 2.5, 1.0)
            ),
            other => panic!("{other:?}"),
        }
    }
}
