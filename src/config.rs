//! Configuration: built-in defaults, then `config/*.toml`, then `.env`, then the process
//! environment, highest last. Variable names are the old notification-service's, so an existing
//! `.env` keeps working; a TOML file uses the same names as keys (any case).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pushgate_actors::adaptive_window::{AdaptiveLimits, CoalesceWindow};
use pushgate_actors::consumers::AmqpSettings;

use crate::logging::LogFormat;

/// The insecure secret `--dev` signs and verifies tokens with (a configured `JWT_SECRET` is
/// ignored then: dev mode prints tokens, and they must never be signed with a real secret).
pub const DEV_JWT_SECRET: &str = "pushgate-INSECURE-dev-secret-never-use-in-production";
/// The API key `--dev` accepts (a configured `PUSH_API_KEY` is ignored then: it is printed).
pub const DEV_API_KEY: &str = "pushgate-INSECURE-dev-api-key";
/// A shorter `JWT_SECRET` is refused outside dev mode.
pub const MIN_SECRET_LEN: usize = 32;

/// Why the configuration cannot be used. Each is printed as one line and exits with code 2.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// `JWT_SECRET` is unset or empty outside dev mode.
    #[error("JWT_SECRET is required (HS256 secret shared with user-service, at least {MIN_SECRET_LEN} characters); run with --dev to try pushgate with an insecure dev secret")]
    MissingSecret,
    /// `JWT_SECRET` is too short.
    #[error("JWT_SECRET is too weak: {0} characters, at least {MIN_SECRET_LEN} are required")]
    WeakSecret(usize),
    /// A variable has a value that cannot be used.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// An unknown command-line argument.
    #[error("unknown argument {0:?} (usage: pushgate [--dev] [--help] [--version])")]
    UnknownArgument(String),
}

/// Allowed browser origins for CORS and WebSocket upgrades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: every origin is echoed back, with credentials.
    Any,
    /// Exactly these origins.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Whether a request's `Origin` is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list.iter().any(|o| o == origin),
        }
    }
}

/// JWT verification settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The current HS256 secret.
    pub secret: String,
    /// The previous secret, still accepted during a rotation.
    pub old_secret: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
}

/// Engine.IO / Socket.IO settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Heartbeat interval.
    pub ping_interval: Duration,
    /// How long a client has to answer a ping.
    pub ping_timeout: Duration,
    /// Largest message a client may send, in bytes.
    pub max_payload: usize,
    /// A client that sends no CONNECT in this time is closed.
    pub connect_timeout: Duration,
}

/// What one client may cost the server (docs/limits.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `CLIENT_EVENTS_PER_S`: client events a connection may send per second, on average;
    /// 0 turns the limit off.
    pub client_events_per_s: u32,
    /// `CLIENT_EVENTS_BURST`: how many client events a connection may send at once.
    pub client_events_burst: u32,
    /// `MAX_ROOMS_PER_SOCKET`: rooms one socket may be in (its own `user:` room included);
    /// joins beyond it are refused `bad_request`.
    pub max_rooms_per_socket: usize,
    /// `MAX_PENDING_SESSIONS`: Engine.IO sessions that have not sent CONNECT yet, node-wide;
    /// beyond it new handshakes get `503`.
    pub max_pending_sessions: usize,
    /// `HTTP_BODY_TIMEOUT_MS`: a request body not complete in this time closes its connection.
    pub http_body_timeout: Duration,
}

/// Connection-state recovery (docs/recovery.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// `RECOVERY_WINDOW_MS`: how long a disconnected session can be recovered; zero turns
    /// recovery off (no `pid`, no offsets on pushes).
    pub window: Duration,
    /// `RECOVERY_HISTORY_BYTES`: the memory bound of the push history kept for recovery.
    pub history_bytes: usize,
}

impl RecoveryConfig {
    /// Whether recovery is on.
    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }
}

/// The Consul watcher's settings (docs/socketio.md); absent when `CONSUL_URL` is unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulConfig {
    /// `CONSUL_URL`: Consul's HTTP API, `http://host:port`, without a trailing `/`.
    pub url: String,
    /// `CONSUL_TOKEN`: sent as `X-Consul-Token`.
    pub token: Option<String>,
    /// `CONSUL_DEBOUNCE_MS`: a status that changes back within this window is not pushed.
    pub debounce: Duration,
}

/// `CONSUL_DEBOUNCE_MS` when unset.
pub const DEFAULT_CONSUL_DEBOUNCE_MS: u64 = 2_000;

fn consul(src: &Sources) -> Result<Option<ConsulConfig>, ConfigError> {
    let debounce = number(src, "CONSUL_DEBOUNCE_MS", DEFAULT_CONSUL_DEBOUNCE_MS, 0)?;
    let Some(url) = non_empty(src.get("CONSUL_URL")) else {
        return Ok(None);
    };
    let url = url.trim().trim_end_matches('/').to_owned();
    let host = url.strip_prefix("http://").unwrap_or_default();
    if host.is_empty() || host.contains('/') {
        return Err(ConfigError::Invalid {
            var: "CONSUL_URL",
            value: url,
            reason: "use http://host:port (plain HTTP, e.g. the local Consul agent; \
                     pushgate has no TLS client)"
                .into(),
        });
    }
    Ok(Some(ConsulConfig {
        url,
        token: non_empty(src.get("CONSUL_TOKEN")),
        debounce: Duration::from_millis(debounce),
    }))
}

/// Whether this node is one of a cluster (docs/cluster.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMode {
    /// `CLUSTER=off`: a node on its own, per-node queues, the HTTP API without a broker.
    Off,
    /// `CLUSTER=rabbitmq`: the nodes share the broker's push log and event queues.
    RabbitMq,
}

/// Cluster mode's settings (docs/cluster.md); `name` and `log_max_bytes` are read and checked in
/// either mode, so a mistake shows before the cluster is turned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `CLUSTER`.
    pub mode: ClusterMode,
    /// `CLUSTER_NAME`: names the shared queues and the log, `pushgate.<name>.*`.
    pub name: String,
    /// `CLUSTER_LOG_MAX_BYTES`: the size bound of the push log on the broker.
    pub log_max_bytes: u64,
    /// `CLUSTER_APPEND_INTERVAL_MS`: the least time between two records a node appends to
    /// the log (pushes accepted meanwhile share the next record); zero sends each record as
    /// soon as there is room for it.
    pub append_interval: Duration,
}

/// `CLUSTER_NAME` when unset.
pub const DEFAULT_CLUSTER_NAME: &str = "pushgate";
/// `CLUSTER_LOG_MAX_BYTES` when unset: 1 GiB.
pub const DEFAULT_CLUSTER_LOG_MAX_BYTES: u64 = 1 << 30;
/// `CLUSTER_APPEND_INTERVAL_MS` when unset.
pub const DEFAULT_CLUSTER_APPEND_INTERVAL_MS: u64 = 1;
/// The longest `CLUSTER_APPEND_INTERVAL_MS`: every push under load waits up to this long.
pub const MAX_CLUSTER_APPEND_INTERVAL_MS: u64 = 100;

/// Whether `name` may name broker queues: 1-100 characters of `A-Z a-z 0-9 . _ -` (what
/// `NODE_ID` and `CLUSTER_NAME` allow).
fn is_queue_name_part(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn cluster(src: &Sources) -> Result<ClusterConfig, ConfigError> {
    let mode = match non_empty(src.get("CLUSTER")) {
        None => ClusterMode::Off,
        Some(v) if v.trim().eq_ignore_ascii_case("off") => ClusterMode::Off,
        Some(v) if v.trim().eq_ignore_ascii_case("rabbitmq") => ClusterMode::RabbitMq,
        Some(v) => {
            return Err(ConfigError::Invalid {
                var: "CLUSTER",
                value: v,
                reason: "use off or rabbitmq".into(),
            })
        }
    };
    let name = non_empty(src.get("CLUSTER_NAME"))
        .map_or_else(|| DEFAULT_CLUSTER_NAME.to_owned(), |n| n.trim().to_owned());
    if !is_queue_name_part(&name) {
        return Err(ConfigError::Invalid {
            var: "CLUSTER_NAME",
            value: name,
            reason: "it names queues: use 1-100 characters of A-Z a-z 0-9 . _ -".into(),
        });
    }
    // The built-in broker URL is a local guest: a cluster's nodes must be told which broker
    // they share.
    if mode == ClusterMode::RabbitMq && non_empty(src.get("RABBITMQ_URL")).is_none() {
        return Err(ConfigError::Invalid {
            var: "RABBITMQ_URL",
            value: String::new(),
            reason: "CLUSTER=rabbitmq needs the broker every node shares: set RABBITMQ_URL".into(),
        });
    }
    let append_interval = number(
        src,
        "CLUSTER_APPEND_INTERVAL_MS",
        DEFAULT_CLUSTER_APPEND_INTERVAL_MS,
        0,
    )?;
    if append_interval > MAX_CLUSTER_APPEND_INTERVAL_MS {
        return Err(ConfigError::Invalid {
            var: "CLUSTER_APPEND_INTERVAL_MS",
            value: append_interval.to_string(),
            reason: format!("must be at most {MAX_CLUSTER_APPEND_INTERVAL_MS}"),
        });
    }
    Ok(ClusterConfig {
        mode,
        name,
        log_max_bytes: number(
            src,
            "CLUSTER_LOG_MAX_BYTES",
            DEFAULT_CLUSTER_LOG_MAX_BYTES,
            1,
        )?,
        append_interval: Duration::from_millis(append_interval),
    })
}

/// The Socket.IO Admin UI's login (docs/admin-ui.md); absent unless both `ADMIN_UI_USERNAME` and
/// `ADMIN_UI_PASSWORD_HASH` are set.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminUiConfig {
    /// `ADMIN_UI_USERNAME`.
    pub username: String,
    /// `ADMIN_UI_PASSWORD_HASH`: a bcrypt hash (`$2a$`, `$2b$`, `$2x$` or `$2y$`), checked at
    /// start. Never logged.
    pub password_hash: String,
    /// `ADMIN_UI_READONLY` (default true): the UI may look but not join, leave or disconnect.
    pub readonly: bool,
}

impl std::fmt::Debug for AdminUiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminUiConfig")
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("readonly", &self.readonly)
            .finish()
    }
}

fn admin_ui(src: &Sources) -> Result<Option<AdminUiConfig>, ConfigError> {
    let readonly = match non_empty(src.get("ADMIN_UI_READONLY")) {
        None => true,
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                return Err(ConfigError::Invalid {
                    var: "ADMIN_UI_READONLY",
                    value: v,
                    reason: "use true or false".into(),
                })
            }
        },
    };
    let username = non_empty(src.get("ADMIN_UI_USERNAME"));
    let hash = non_empty(src.get("ADMIN_UI_PASSWORD_HASH"));
    let (username, password_hash) = match (username, hash) {
        (None, None) => return Ok(None),
        (Some(username), Some(hash)) => (username, hash.trim().to_owned()),
        (Some(_), None) | (None, Some(_)) => {
            return Err(ConfigError::Invalid {
                var: "ADMIN_UI_USERNAME",
                value: String::new(),
                reason: "set both ADMIN_UI_USERNAME and ADMIN_UI_PASSWORD_HASH, or neither".into(),
            })
        }
    };
    if password_hash.parse::<bcrypt::HashParts>().is_err() {
        return Err(ConfigError::Invalid {
            var: "ADMIN_UI_PASSWORD_HASH",
            value: "<redacted>".into(),
            reason: "not a bcrypt hash (e.g. $2b$10$ followed by 53 characters)".into(),
        });
    }
    Ok(Some(AdminUiConfig {
        username,
        password_hash,
        readonly,
    }))
}

/// Everything pushgate runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bind address.
    pub host: String,
    /// Port for Socket.IO, the HTTP API, health and metrics.
    pub port: u16,
    /// JWT settings.
    pub jwt: JwtConfig,
    /// RabbitMQ settings.
    pub amqp: AmqpSettings,
    /// Whether to run the RabbitMQ consumers (always, but for tests and embedding that only
    /// need the Socket.IO and HTTP side).
    pub consume: bool,
    /// Allowed browser origins.
    pub cors: CorsOrigins,
    /// Service-to-service key; `None` disables the HTTP push API.
    pub push_api_key: Option<String>,
    /// Engine.IO settings.
    pub engine: EngineConfig,
    /// HTTP API body limit in bytes.
    pub push_max_body_bytes: usize,
    /// Pushes to a room that follow a delivery within its window are delivered together at
    /// the window's end, in one write per member (see `pushgate_actors::room`): a window that
    /// adapts to each room's load (`auto`, the default), or a fixed one (zero: never wait).
    pub push_coalesce: CoalesceWindow,
    /// What one client may cost.
    pub limits: Limits,
    /// Connection-state recovery.
    pub recovery: RecoveryConfig,
    /// The Consul watcher, when `CONSUL_URL` is set.
    pub consul: Option<ConsulConfig>,
    /// Cluster mode (`CLUSTER`).
    pub cluster: ClusterConfig,
    /// The Socket.IO Admin UI's `/admin` namespace, when its login is configured.
    pub admin_ui: Option<AdminUiConfig>,
    /// `SHUTDOWN_DRAIN_MS`: on SIGTERM or SIGINT, how long `/ready` answers 503 while the
    /// connected clients are still served, before they are closed; zero: close them at once.
    pub shutdown_drain: Duration,
    /// `LOG_FORMAT`: plain text lines or one JSON object per line.
    pub log_format: LogFormat,
    /// `--dev`: insecure defaults, tokens printed at start.
    pub dev: bool,
}

/// What the command line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Serve.
    Run {
        /// `--dev` was given.
        dev: bool,
    },
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// Parse the command-line arguments (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, ConfigError> {
    let mut dev = false;
    for arg in args {
        match arg.as_str() {
            "--dev" => dev = true,
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            _ => return Err(ConfigError::UnknownArgument(arg)),
        }
    }
    Ok(Command::Run { dev })
}

/// Looks a variable up by name.
pub type Lookup = Box<dyn Fn(&str) -> Option<String>>;

/// Where configuration values come from, in order of precedence.
pub struct Sources {
    /// Values from `config/*.toml`, keys upper-cased.
    pub files: HashMap<String, String>,
    /// Looks a variable up in the environment (after `.env` was loaded into it).
    pub env: Lookup,
}

impl Sources {
    /// The real sources: `./.env` (the working directory's only) loaded into the process
    /// environment (never overriding it), then
    /// every `*.toml` in `$PUSHGATE_CONFIG_DIR` (default `config`), in name order.
    pub fn from_process() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is not silently ignored. Only the working
        // directory's: `dotenvy::dotenv()` would also look in every parent directory.
        match dotenvy::from_path(".env") {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => {
                return Err(ConfigError::File {
                    path: ".env".into(),
                    // The parser quotes the bad line with its newline: keep the error one line.
                    reason: e.to_string().trim_end().replace('\n', "\\n"),
                });
            }
        }
        let dir = std::env::var("PUSHGATE_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        Ok(Sources {
            files: read_config_dir(Path::new(&dir))?,
            env: Box::new(|k| std::env::var(k).ok()),
        })
    }

    /// Sources from a fixed map (tests).
    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Sources {
            files: HashMap::new(),
            env: Box::new(move |k| vars.get(k).cloned()),
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        (self.env)(key).or_else(|| self.files.get(key).cloned())
    }
}

/// Read every `*.toml` file of `dir` (absent dir: nothing), later files overriding earlier.
pub fn read_config_dir(dir: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(_) => return Ok(HashMap::new()),
    };
    files.sort();
    let mut out = HashMap::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        out.extend(parse_toml(&text).map_err(|reason| ConfigError::File {
            path: path.display().to_string(),
            reason,
        })?);
    }
    Ok(out)
}

/// Parse one TOML file of top-level `NAME = value` pairs into upper-cased names and strings.
pub fn parse_toml(text: &str) -> Result<HashMap<String, String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut out = HashMap::new();
    for (key, value) in table {
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(format!("{key}: array items must be strings, got {other:?}")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => return Err(format!("{key}: unsupported value {other:?}")),
        };
        out.insert(key.to_ascii_uppercase(), value);
    }
    Ok(out)
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn number<T>(src: &Sources, var: &'static str, default: T, min: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let Some(raw) = non_empty(src.get(var)) else {
        return Ok(default);
    };
    let value: T = raw
        .trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            var,
            value: raw.clone(),
            reason: e.to_string(),
        })?;
    if value < min {
        return Err(ConfigError::Invalid {
            var,
            value: raw,
            reason: format!("must be at least {min}"),
        });
    }
    Ok(value)
}

fn millis(src: &Sources, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
    number(src, var, default, 1).map(Duration::from_millis)
}

/// The longest `PUSH_COALESCE_MS`: beyond it pushes would feel late to a person watching.
pub const MAX_PUSH_COALESCE_MS: u64 = 1_000;

fn coalesce_window(src: &Sources) -> Result<CoalesceWindow, ConfigError> {
    const VAR: &str = "PUSH_COALESCE_MS";
    let raw = non_empty(src.get(VAR)).unwrap_or_else(|| DEFAULT_PUSH_COALESCE_MS.to_owned());
    if raw.trim().eq_ignore_ascii_case(AUTO) {
        return Ok(CoalesceWindow::Adaptive(AdaptiveLimits::DEFAULT));
    }
    let ms = number(src, VAR, 0, 0)?;
    if ms > MAX_PUSH_COALESCE_MS {
        return Err(ConfigError::Invalid {
            var: VAR,
            value: ms.to_string(),
            reason: format!("must be `{AUTO}` or at most {MAX_PUSH_COALESCE_MS}"),
        });
    }
    Ok(CoalesceWindow::Fixed(Duration::from_millis(ms)))
}

/// The `PUSH_COALESCE_MS` that lets each room's window adapt to its load.
const AUTO: &str = "auto";
/// `SHUTDOWN_DRAIN_MS` when unset.
pub const DEFAULT_SHUTDOWN_DRAIN_MS: u64 = 5_000;

fn log_format(src: &Sources) -> Result<LogFormat, ConfigError> {
    let Some(raw) = non_empty(src.get("LOG_FORMAT")) else {
        return Ok(LogFormat::Text);
    };
    raw.trim().parse().map_err(|reason| ConfigError::Invalid {
        var: "LOG_FORMAT",
        value: raw,
        reason,
    })
}

/// `PUSH_COALESCE_MS` when unset.
pub const DEFAULT_PUSH_COALESCE_MS: &str = AUTO;

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The secrets `--dev` replaces with its own, whatever the configuration says.
pub const DEV_REPLACED: [&str; 3] = ["JWT_SECRET", "JWT_OLD_SECRET", "PUSH_API_KEY"];

impl Sources {
    /// Which of [`DEV_REPLACED`] these sources set (to say that `--dev` ignores them).
    pub fn set_dev_replaced(&self) -> Vec<&'static str> {
        DEV_REPLACED
            .into_iter()
            .filter(|var| non_empty(self.get(var)).is_some())
            .collect()
    }
}

impl Config {
    /// Build the configuration from its sources.
    pub fn from_sources(src: &Sources, dev: bool) -> Result<Config, ConfigError> {
        let secret = match non_empty(src.get("JWT_SECRET")) {
            _ if dev => DEV_JWT_SECRET.to_owned(),
            Some(s) if s.chars().count() < MIN_SECRET_LEN => {
                return Err(ConfigError::WeakSecret(s.chars().count()))
            }
            Some(s) => s,
            None => return Err(ConfigError::MissingSecret),
        };
        let claim_check = |var: &str, default: &str| match src.get(var) {
            Some(v) => non_empty(Some(v)),
            None => Some(default.to_owned()),
        };
        let node_id = non_empty(src.get("NODE_ID")).unwrap_or_else(host_name);
        if !is_queue_name_part(&node_id) {
            return Err(ConfigError::Invalid {
                var: "NODE_ID",
                value: node_id,
                reason: "use 1-100 characters of A-Z a-z 0-9 . _ -".into(),
            });
        }
        let cors = match non_empty(src.get("CORS_ORIGIN")) {
            None => CorsOrigins::List(vec!["http://localhost:5173".into()]),
            Some(v) if v.trim() == "*" => CorsOrigins::Any,
            Some(v) => CorsOrigins::List(
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
        };
        let push_api_key = if dev {
            Some(DEV_API_KEY.to_owned())
        } else {
            non_empty(src.get("PUSH_API_KEY"))
        };
        // The broker's defaults live with the consumers: only what is set here overrides them.
        let amqp = AmqpSettings::with_node_id(node_id);
        let engine = EngineConfig {
            ping_interval: millis(src, "PING_INTERVAL_MS", 25_000)?,
            ping_timeout: millis(src, "PING_TIMEOUT_MS", 20_000)?,
            max_payload: number(src, "MAX_PAYLOAD_BYTES", 1_000_000usize, 16)?,
            connect_timeout: millis(src, "CONNECT_TIMEOUT_MS", 45_000)?,
        };
        Ok(Config {
            host: non_empty(src.get("HOST")).unwrap_or_else(|| "0.0.0.0".into()),
            port: number(src, "PORT", 30006u16, 0)?,
            jwt: JwtConfig {
                secret,
                old_secret: non_empty(src.get("JWT_OLD_SECRET")).filter(|_| !dev),
                issuer: claim_check("JWT_ISSUER", "cloudphone-platform"),
                audience: claim_check("JWT_AUDIENCE", "cloudphone-users"),
            },
            amqp: AmqpSettings {
                url: non_empty(src.get("RABBITMQ_URL")).unwrap_or(amqp.url),
                exchange: non_empty(src.get("RABBITMQ_EXCHANGE")).unwrap_or(amqp.exchange),
                dlx: non_empty(src.get("RABBITMQ_DLX")).unwrap_or(amqp.dlx),
                prefetch: number(src, "RABBITMQ_PREFETCH", amqp.prefetch, 1)?,
                queue_expires_ms: number(
                    src,
                    "RABBITMQ_QUEUE_EXPIRES_MS",
                    amqp.queue_expires_ms,
                    1,
                )?,
                node_id: amqp.node_id,
                max_event_bytes: engine.max_payload,
                quota_coalesce: Duration::from_millis(number(
                    src,
                    "QUOTA_COALESCE_MS",
                    amqp.quota_coalesce.as_millis() as u64,
                    0,
                )?),
            },
            cors,
            push_api_key,
            engine,
            push_max_body_bytes: number(src, "PUSH_MAX_BODY_BYTES", 1_048_576usize, 2)?,
            push_coalesce: coalesce_window(src)?,
            limits: Limits {
                client_events_per_s: number(src, "CLIENT_EVENTS_PER_S", 20u32, 0)?,
                client_events_burst: number(src, "CLIENT_EVENTS_BURST", 50u32, 1)?,
                max_rooms_per_socket: number(src, "MAX_ROOMS_PER_SOCKET", 1_000usize, 1)?,
                max_pending_sessions: number(src, "MAX_PENDING_SESSIONS", 10_000usize, 1)?,
                http_body_timeout: millis(src, "HTTP_BODY_TIMEOUT_MS", 10_000)?,
            },
            recovery: RecoveryConfig {
                window: Duration::from_millis(number(src, "RECOVERY_WINDOW_MS", 120_000u64, 0)?),
                history_bytes: number(src, "RECOVERY_HISTORY_BYTES", 67_108_864usize, 1)?,
            },
            consul: consul(src)?,
            cluster: cluster(src)?,
            admin_ui: admin_ui(src)?,
            shutdown_drain: Duration::from_millis(number(
                src,
                "SHUTDOWN_DRAIN_MS",
                DEFAULT_SHUTDOWN_DRAIN_MS,
                0,
            )?),
            log_format: log_format(src)?,
            consume: true,
            dev,
        })
    }

    /// A configuration for tests and embedding: dev secrets off, the given secret and API key,
    /// port 0 on loopback, no RabbitMQ consumers, no shutdown drain, everything else at its
    /// default.
    pub fn for_tests(secret: &str, api_key: Option<&str>) -> Config {
        let mut vars = HashMap::new();
        vars.insert("JWT_SECRET".into(), secret.into());
        vars.insert("HOST".into(), "127.0.0.1".into());
        vars.insert("PORT".into(), "0".into());
        vars.insert("NODE_ID".into(), "test".into());
        if let Some(k) = api_key {
            vars.insert("PUSH_API_KEY".into(), k.into());
        }
        let mut config = Config::from_sources(&Sources::from_map(vars), false)
            .expect("valid test configuration");
        config.consume = false;
        config.shutdown_drain = Duration::ZERO;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)], dev: bool) -> Result<Config, ConfigError> {
        let vars = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_sources(&Sources::from_map(vars), dev)
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// The configuration from `files` and the environment `env`.
    fn from_files(
        files: HashMap<String, String>,
        env: impl Fn(&str) -> Option<String> + 'static,
    ) -> Config {
        let sources = Sources {
            files,
            env: Box::new(env),
        };
        Config::from_sources(&sources, false).unwrap()
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = load(&[("JWT_SECRET", SECRET), ("NODE_ID", "n1")], false).unwrap();
        assert_eq!(c.port, 30006);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.jwt.issuer.as_deref(), Some("cloudphone-platform"));
        assert_eq!(c.jwt.audience.as_deref(), Some("cloudphone-users"));
        // The broker's defaults are the consumers' (checked against the documented defaults there).
        assert_eq!(c.amqp, AmqpSettings::with_node_id("n1"));
        assert_eq!(
            c.cors,
            CorsOrigins::List(vec!["http://localhost:5173".into()])
        );
        assert_eq!(c.push_api_key, None);
        assert_eq!(c.engine.ping_interval, Duration::from_millis(25_000));
        assert_eq!(c.engine.ping_timeout, Duration::from_millis(20_000));
        assert_eq!(c.engine.max_payload, 1_000_000);
        assert_eq!(c.engine.connect_timeout, Duration::from_millis(45_000));
        assert_eq!(c.push_max_body_bytes, 1_048_576);
        assert_eq!(
            c.limits,
            Limits {
                client_events_per_s: 20,
                client_events_burst: 50,
                max_rooms_per_socket: 1_000,
                max_pending_sessions: 10_000,
                http_body_timeout: Duration::from_millis(10_000),
            }
        );
        assert_eq!(c.shutdown_drain, Duration::from_millis(5_000));
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn shutdown_drain_and_log_format_are_read() {
        let c = load(
            &[
                ("JWT_SECRET", SECRET),
                ("SHUTDOWN_DRAIN_MS", "0"),
                ("LOG_FORMAT", "JSON"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(c.shutdown_drain, Duration::ZERO);
        assert_eq!(c.log_format, LogFormat::Json);
        let c = load(&[("JWT_SECRET", SECRET), ("LOG_FORMAT", "text")], false).unwrap();
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn limits_are_read_and_checked() {
        let c = load(
            &[
                ("JWT_SECRET", SECRET),
                ("CLIENT_EVENTS_PER_S", "0"),
                ("CLIENT_EVENTS_BURST", "5"),
                ("MAX_ROOMS_PER_SOCKET", "3"),
                ("MAX_PENDING_SESSIONS", "7"),
                ("HTTP_BODY_TIMEOUT_MS", "250"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            c.limits.client_events_per_s, 0,
            "0 turns the rate limit off"
        );
        assert_eq!(c.limits.client_events_burst, 5);
        assert_eq!(c.limits.max_rooms_per_socket, 3);
        assert_eq!(c.limits.max_pending_sessions, 7);
        assert_eq!(c.limits.http_body_timeout, Duration::from_millis(250));
        let c = load(
            &[("JWT_SECRET", SECRET), ("MAX_PAYLOAD_BYTES", "5000")],
            false,
        )
        .unwrap();
        assert_eq!(
            c.amqp.max_event_bytes, 5000,
            "a larger RabbitMQ event is dead-lettered"
        );
        for (var, bad) in [
            ("CLIENT_EVENTS_PER_S", "-1"),
            ("CLIENT_EVENTS_BURST", "0"),
            ("MAX_ROOMS_PER_SOCKET", "0"),
            ("MAX_PENDING_SESSIONS", "0"),
            ("MAX_PENDING_SESSIONS", "many"),
            ("HTTP_BODY_TIMEOUT_MS", "0"),
        ] {
            match load(&[("JWT_SECRET", SECRET), (var, bad)], false) {
                Err(ConfigError::Invalid { var: named, .. }) => assert_eq!(named, var),
                other => panic!("{var}={bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn recovery_is_on_by_default_and_zero_turns_it_off() {
        let c = load(&[("JWT_SECRET", SECRET)], false).unwrap();
        assert_eq!(
            c.recovery,
            RecoveryConfig {
                window: Duration::from_millis(120_000),
                history_bytes: 67_108_864,
            }
        );
        assert!(c.recovery.enabled());
        let c = load(
            &[
                ("JWT_SECRET", SECRET),
                ("RECOVERY_WINDOW_MS", "0"),
                ("RECOVERY_HISTORY_BYTES", "1024"),
            ],
            false,
        )
        .unwrap();
        assert!(!c.recovery.enabled());
        assert_eq!(c.recovery.history_bytes, 1024);
    }

    #[test]
    fn cluster_is_off_by_default_and_rabbitmq_needs_the_broker_url() {
        let c = load(&[("JWT_SECRET", SECRET), ("NODE_ID", "n1")], false).unwrap();
        assert_eq!(
            c.cluster,
            ClusterConfig {
                mode: ClusterMode::Off,
                name: "pushgate".into(),
                log_max_bytes: 1_073_741_824,
                append_interval: Duration::from_millis(1),
            }
        );
        let base = [("JWT_SECRET", SECRET), ("NODE_ID", "n1")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            load(&pairs, false)
        };
        let missing = with(&[("CLUSTER", "rabbitmq")]).unwrap_err();
        assert!(
            matches!(
                missing,
                ConfigError::Invalid {
                    var: "RABBITMQ_URL",
                    ..
                }
            ),
            "{missing}"
        );
        let c = with(&[
            ("CLUSTER", "RabbitMQ"),
            ("RABBITMQ_URL", "amqp://u:p@broker:5672/v"),
            ("CLUSTER_NAME", "blue-1"),
            ("CLUSTER_LOG_MAX_BYTES", "1048576"),
            ("CLUSTER_APPEND_INTERVAL_MS", "0"),
        ])
        .unwrap();
        assert_eq!(c.cluster.mode, ClusterMode::RabbitMq);
        assert_eq!(c.cluster.name, "blue-1");
        assert_eq!(c.cluster.log_max_bytes, 1 << 20);
        assert_eq!(c.cluster.append_interval, Duration::ZERO);

        assert_eq!(
            with(&[("CLUSTER", "off")]).unwrap().cluster.mode,
            ClusterMode::Off
        );
        for (var, value) in [
            ("CLUSTER", "redis"),
            ("CLUSTER_NAME", "a/b"),
            ("CLUSTER_NAME", "a b"),
            ("CLUSTER_LOG_MAX_BYTES", "0"),
            ("CLUSTER_LOG_MAX_BYTES", "1GiB"),
            ("CLUSTER_APPEND_INTERVAL_MS", "101"),
            ("CLUSTER_APPEND_INTERVAL_MS", "-1"),
            ("CLUSTER_APPEND_INTERVAL_MS", "0.5"),
            ("CLUSTER_APPEND_INTERVAL_MS", "99999999999999999999999"),
        ] {
            match with(&[(var, value)]) {
                Err(ConfigError::Invalid { var: v, .. }) => assert_eq!(v, var, "{value}"),
                other => panic!("{var}={value}: {other:?}"),
            }
        }
        let long = "x".repeat(101);
        let long = load(&[("JWT_SECRET", SECRET), ("CLUSTER_NAME", &long)], false);
        assert!(matches!(
            long,
            Err(ConfigError::Invalid {
                var: "CLUSTER_NAME",
                ..
            })
        ));
    }

    #[test]
    fn default_toml_agrees_with_the_built_in_defaults() {
        let text = include_str!("../config/default.toml");
        let files = parse_toml(text).expect("config/default.toml parses");
        let env = |k: &str| match k {
            "JWT_SECRET" => Some(SECRET.to_owned()),
            "NODE_ID" => Some("n1".to_owned()),
            _ => None,
        };
        let from_file = from_files(files, env);
        let built_in = load(&[("JWT_SECRET", SECRET), ("NODE_ID", "n1")], false).unwrap();
        assert_eq!(from_file, built_in);
        // CONSUL_DEBOUNCE_MS only shows once CONSUL_URL is set: compare with it set.
        let with_consul = move |k: &str| match k {
            "CONSUL_URL" => Some("http://127.0.0.1:8500".to_owned()),
            other => env(other),
        };
        let from_file = Config::from_sources(
            &Sources {
                files: parse_toml(text).unwrap(),
                env: Box::new(with_consul),
            },
            false,
        )
        .unwrap();
        let built_in = load(
            &[
                ("JWT_SECRET", SECRET),
                ("NODE_ID", "n1"),
                ("CONSUL_URL", "http://127.0.0.1:8500"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(from_file.consul, built_in.consul);
        assert!(built_in.consul.is_some());
    }

    #[test]
    fn consul_is_off_unless_its_url_is_set() {
        let c = load(&[("JWT_SECRET", SECRET), ("CONSUL_TOKEN", "t")], false).unwrap();
        assert_eq!(c.consul, None);
        let c = load(
            &[
                ("JWT_SECRET", SECRET),
                ("CONSUL_URL", "http://consul:8500/"),
                ("CONSUL_TOKEN", "secret-token"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            c.consul,
            Some(ConsulConfig {
                url: "http://consul:8500".into(),
                token: Some("secret-token".into()),
                debounce: Duration::from_millis(DEFAULT_CONSUL_DEBOUNCE_MS),
            })
        );
        let c = load(
            &[
                ("JWT_SECRET", SECRET),
                ("CONSUL_URL", "http://consul:8500"),
                ("CONSUL_DEBOUNCE_MS", "0"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            c.consul.unwrap().debounce,
            Duration::ZERO,
            "0: every change"
        );
    }

    #[test]
    fn secret_rules() {
        assert_eq!(load(&[], false), Err(ConfigError::MissingSecret));
        assert_eq!(
            load(&[("JWT_SECRET", "  ")], false),
            Err(ConfigError::MissingSecret)
        );
        assert_eq!(
            load(&[("JWT_SECRET", "short")], false),
            Err(ConfigError::WeakSecret(5))
        );
        let dev = load(&[], true).unwrap();
        assert_eq!(dev.jwt.secret, DEV_JWT_SECRET);
        assert_eq!(dev.push_api_key.as_deref(), Some(DEV_API_KEY));
        // Dev mode never uses configured secrets: it prints tokens signed with its own, and
        // its key, so a production secret must not get into them.
        let configured = [
            ("JWT_SECRET", SECRET),
            ("JWT_OLD_SECRET", SECRET),
            ("PUSH_API_KEY", "real-key"),
        ];
        let dev = load(&configured, true).unwrap();
        assert_eq!(dev.jwt.secret, DEV_JWT_SECRET);
        assert_eq!(dev.jwt.old_secret, None);
        assert_eq!(dev.push_api_key.as_deref(), Some(DEV_API_KEY));
        let vars = configured
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(
            Sources::from_map(vars.collect()).set_dev_replaced(),
            DEV_REPLACED
        );
        assert_eq!(
            load(&[("JWT_SECRET", "short")], true).unwrap().jwt.secret,
            DEV_JWT_SECRET
        );
        // An empty key disables the API outside dev mode.
        let c = load(&[("JWT_SECRET", SECRET), ("PUSH_API_KEY", "")], false).unwrap();
        assert_eq!(c.push_api_key, None);
    }

    #[test]
    fn empty_issuer_or_audience_skips_the_check() {
        let c = load(
            &[
                ("JWT_SECRET", SECRET),
                ("JWT_ISSUER", ""),
                ("JWT_AUDIENCE", "aud"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(c.jwt.issuer, None);
        assert_eq!(c.jwt.audience.as_deref(), Some("aud"));
    }

    #[test]
    fn bad_numbers_and_names_are_reported_by_variable() {
        for (var, value) in [
            ("PORT", "70000"),
            ("PORT", "http"),
            ("RABBITMQ_PREFETCH", "0"),
            ("PING_INTERVAL_MS", "-5"),
            ("MAX_PAYLOAD_BYTES", "1"),
            ("NODE_ID", "a b"),
            ("PUSH_COALESCE_MS", "-1"),
            ("PUSH_COALESCE_MS", "1001"),
            ("PUSH_COALESCE_MS", "5ms"),
            ("PUSH_COALESCE_MS", "automatic"),
            ("RECOVERY_WINDOW_MS", "-1"),
            ("RECOVERY_WINDOW_MS", "2m"),
            ("RECOVERY_HISTORY_BYTES", "0"),
            ("CONSUL_URL", "https://consul:8500"),
            ("CONSUL_URL", "consul:8500"),
            ("CONSUL_URL", "http://"),
            ("CONSUL_URL", "http://consul:8500/v1"),
            ("CONSUL_DEBOUNCE_MS", "-1"),
            ("CONSUL_DEBOUNCE_MS", "2s"),
            ("QUOTA_COALESCE_MS", "-1"),
            ("QUOTA_COALESCE_MS", "soon"),
            ("SHUTDOWN_DRAIN_MS", "-1"),
            ("SHUTDOWN_DRAIN_MS", "5s"),
            ("LOG_FORMAT", "yaml"),
        ] {
            let err = load(&[("JWT_SECRET", SECRET), (var, value)], false).unwrap_err();
            assert!(err.to_string().starts_with(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn push_coalescing_adapts_unless_a_window_is_given() {
        let c = load(&[("JWT_SECRET", SECRET)], false).unwrap();
        let adaptive = CoalesceWindow::Adaptive(AdaptiveLimits::DEFAULT);
        assert_eq!(c.push_coalesce, adaptive);
        for value in ["auto", " AUTO "] {
            let c = load(
                &[("JWT_SECRET", SECRET), ("PUSH_COALESCE_MS", value)],
                false,
            )
            .unwrap();
            assert_eq!(c.push_coalesce, adaptive);
        }
        for (value, ms) in [("0", 0), ("10", 10), ("1000", 1000)] {
            let c = load(
                &[("JWT_SECRET", SECRET), ("PUSH_COALESCE_MS", value)],
                false,
            )
            .unwrap();
            assert_eq!(
                c.push_coalesce,
                CoalesceWindow::Fixed(Duration::from_millis(ms))
            );
        }
    }

    #[test]
    fn quota_coalescing_is_on_at_250_ms_and_0_turns_it_off() {
        let c = load(&[("JWT_SECRET", SECRET)], false).unwrap();
        assert_eq!(c.amqp.quota_coalesce, Duration::from_millis(250));
        for (value, ms) in [("0", 0), ("40", 40)] {
            let c = load(
                &[("JWT_SECRET", SECRET), ("QUOTA_COALESCE_MS", value)],
                false,
            )
            .unwrap();
            assert_eq!(c.amqp.quota_coalesce, Duration::from_millis(ms));
        }
    }

    #[test]
    fn cors_lists_and_wildcard() {
        let c = load(
            &[
                ("JWT_SECRET", SECRET),
                ("CORS_ORIGIN", "http://a.test, https://b.test/"),
            ],
            false,
        )
        .unwrap();
        assert!(c.cors.allows("http://a.test"));
        assert!(c.cors.allows("https://b.test"));
        assert!(!c.cors.allows("http://evil.test"));
        let any = load(&[("JWT_SECRET", SECRET), ("CORS_ORIGIN", "*")], false).unwrap();
        assert!(any.cors.allows("http://whatever"));
    }

    #[test]
    fn toml_files_sit_below_the_environment() {
        let files = parse_toml(
            "port = 4000\nHOST = \"127.0.0.1\"\ncors_origin = [\"http://a\", \"http://b\"]\n",
        )
        .unwrap();
        let src = Sources {
            files,
            env: Box::new(|k| match k {
                "PORT" => Some("5000".into()),
                "JWT_SECRET" => Some(SECRET.into()),
                _ => None,
            }),
        };
        let c = Config::from_sources(&src, false).unwrap();
        assert_eq!(c.port, 5000);
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(
            c.cors,
            CorsOrigins::List(vec!["http://a".into(), "http://b".into()])
        );
        assert!(parse_toml("port = ").is_err());
        assert!(parse_toml("[section]\nx = 1").is_err());
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_args(vec![]), Ok(Command::Run { dev: false }));
        assert_eq!(
            parse_args(vec!["--dev".into()]),
            Ok(Command::Run { dev: true })
        );
        assert_eq!(parse_args(vec!["--help".into()]), Ok(Command::Help));
        assert!(parse_args(vec!["--prod".into()]).is_err());
    }

    /// A bcrypt hash of "secret" (cost 4).
    const HASH: &str = "$2a$04$R8o2BO2itKFv45WmOb5RjebuxWp0waPZDzm90VqQ75tW1.QDspVMO";

    #[test]
    fn the_admin_ui_is_off_unless_both_its_login_variables_are_set() {
        let base = [("JWT_SECRET", SECRET), ("NODE_ID", "n1")];
        assert_eq!(load(&base, false).unwrap().admin_ui, None);
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            load(&pairs, false)
        };
        let on = with(&[
            ("ADMIN_UI_USERNAME", "ops"),
            ("ADMIN_UI_PASSWORD_HASH", HASH),
        ])
        .unwrap()
        .admin_ui
        .unwrap();
        assert_eq!((on.username.as_str(), on.readonly), ("ops", true));
        assert!(
            !format!("{on:?}").contains(HASH),
            "the hash is never printed"
        );
        let writable = with(&[
            ("ADMIN_UI_USERNAME", "ops"),
            ("ADMIN_UI_PASSWORD_HASH", HASH),
            ("ADMIN_UI_READONLY", "false"),
        ]);
        assert!(!writable.unwrap().admin_ui.unwrap().readonly);
        for half in [
            ("ADMIN_UI_USERNAME", "ops"),
            ("ADMIN_UI_PASSWORD_HASH", HASH),
        ] {
            assert!(with(&[half]).is_err(), "{half:?} alone");
        }
        let plain = with(&[
            ("ADMIN_UI_USERNAME", "ops"),
            ("ADMIN_UI_PASSWORD_HASH", "secret"),
        ]);
        let err = plain.unwrap_err().to_string();
        assert!(
            err.contains("not a bcrypt hash") && !err.contains("secret"),
            "{err}"
        );
        let bad_flag = with(&[
            ("ADMIN_UI_USERNAME", "ops"),
            ("ADMIN_UI_PASSWORD_HASH", HASH),
            ("ADMIN_UI_READONLY", "maybe"),
        ]);
        assert!(bad_flag.is_err());
        // config/default.toml's ADMIN_UI_READONLY is the built-in one.
        let files = parse_toml(include_str!("../config/default.toml")).unwrap();
        let env = |k: &str| match k {
            "JWT_SECRET" => Some(SECRET.to_owned()),
            "ADMIN_UI_USERNAME" => Some("ops".to_owned()),
            "ADMIN_UI_PASSWORD_HASH" => Some(HASH.to_owned()),
            _ => None,
        };
        assert_eq!(from_files(files, env).admin_ui, Some(on));
    }
}
