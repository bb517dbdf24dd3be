//! Assembles pushgate: the room supervisor, the shared session context and the HTTP server on a
//! given listener. `main.rs` and the integration tests both start it through [`start`].

use std::io;
use std::net::{SocketAddr, TcpListener};

use actix_web::rt::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_http::{HttpService, KeepAlive, Protocol};
use actix_service::{fn_service, map_config, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use pushgate_actors::admin_view::{AdminView, NodeIdentity};
use pushgate_actors::cluster::{ClusterParts, ClusterSettings, SessionLog};
use pushgate_actors::consumers::{start_cluster_consumers, start_consumers, BrokerLink, Shutdown};
use pushgate_actors::metrics::Metrics;
use pushgate_actors::readiness::Readiness;
use pushgate_actors::recovery::RecoveryStore;
use pushgate_actors::service_health::HealthBoard;
use pushgate_actors::{CloseAllSessions, RoomSupervisor};

use crate::admin_ui::AdminUi;
use crate::auth::JwtVerifier;
use crate::cluster::ClusterEdge;
use crate::config::{ClusterMode, Config};
use crate::consul_watcher::ConsulWatcher;
use crate::http::pending_sessions::PendingSessions;
use crate::http::{self, AppState};
use crate::protocol::socketio::encode_push_message;
use crate::session::{Mode, SessionContext};
use crate::transport::http1_backpressure::{BackloggedStream, Gated};
use crate::transport::polling::PollingRegistry;
use crate::transport::upgraded;

/// A started pushgate.
pub struct Running {
    /// The HTTP server: await it to run until shutdown; its handle stops it.
    pub server: actix_web::dev::Server,
    /// The address it listens on.
    pub local_addr: SocketAddr,
    /// The shared state (supervisor, metrics, readiness).
    pub state: web::Data<AppState>,
    /// The RabbitMQ connection and its consumers, when they run.
    pub consumers: Option<Addr<BrokerLink>>,
    /// The open WebSocket connections (they run outside the HTTP server's own accounting).
    connections: upgraded::Connections,
}

/// A handle that shuts a [`Running`] pushgate down gracefully.
#[derive(Clone)]
pub struct ShutdownHandle {
    server: actix_web::dev::ServerHandle,
    supervisor: Addr<RoomSupervisor>,
    consumers: Option<Addr<BrokerLink>>,
    connections: upgraded::Connections,
}

impl Running {
    /// A handle for [`ShutdownHandle::shutdown`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            server: self.server.handle(),
            supervisor: self.state.supervisor.clone(),
            consumers: self.consumers.clone(),
            connections: self.connections.clone(),
        }
    }
}

impl ShutdownHandle {
    /// Stop consuming (the delivery in flight is pushed and acked, the AMQP channels and
    /// connection are closed), close every client's transport as "going away" so clients
    /// reconnect, then stop the HTTP server. Takes well under a second with a responsive broker
    /// and idle clients; at most about 16 s (the broker link's 10 s `SHUTDOWN_TIMEOUT`, 3 s for
    /// the clients' connections to drain, the HTTP server's own 3 s).
    pub async fn shutdown(&self) {
        if let Some(link) = &self.consumers {
            if link.send(Shutdown).await.is_err() {
                log::warn!("the RabbitMQ link was already stopped");
            }
        }
        match self.supervisor.send(CloseAllSessions).await {
            Ok(n) => log::info!("closing {n} client sessions"),
            Err(e) => log::warn!("cannot reach the room supervisor: {e}"),
        }
        // Let the close frames go out before the workers stop (the WebSocket connections are
        // not waited for by the server's graceful stop: they left its dispatchers).
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        self.connections.drained(Duration::from_secs(3)).await;
        self.server.stop(true).await;
    }
}

/// Start pushgate on `listener`: the room supervisor, the RabbitMQ consumers (unless
/// `config.consume` is off), the Consul watcher (when `CONSUL_URL` is set) and the HTTP server. Must be called inside an actix system.
pub fn start(config: Config, listener: TcpListener, mode: Mode) -> io::Result<Running> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::new());
    let mut cluster =
        (config.cluster.mode == ClusterMode::RabbitMq && mode == Mode::Gateway).then(|| {
            // A silent node's figures leave the counts when its clients' heartbeat would
            // have told them it is gone.
            let presence_expiry = config.engine.ping_interval + config.engine.ping_timeout;
            let settings = ClusterSettings::new(
                config.cluster.name.clone(),
                &config.amqp.node_id,
                config.cluster.log_max_bytes,
                config.recovery.window,
            )
            .with_append_interval(config.cluster.append_interval);
            ClusterParts::new(settings, presence_expiry, metrics.clone())
        });
    let admin_view = config
        .admin_ui
        .as_ref()
        .filter(|_| mode == Mode::Gateway)
        .map(|_| {
            let view = AdminView::new(NodeIdentity {
                server_id: config.amqp.node_id.clone(),
                hostname: crate::config::host_name(),
            });
            // In a cluster, the UI lists every live node, and this node's figures carry
            // what the other nodes' UIs show of it.
            match &cluster {
                Some(parts) => view.in_cluster(parts.presence.clone()),
                None => view,
            }
            .start()
        });
    if let (Some(parts), Some(view)) = (&mut cluster, &admin_view) {
        parts.server_figures = Some(view.clone().recipient());
    }
    let supervisor = RoomSupervisor::new(encode_push_message, metrics.clone())
        .with_coalesce_window(config.push_coalesce);
    let mut supervisor = match &cluster {
        // The history is the cluster's log, read back at its positions, and so are every
        // node's sessions: any node recovers any node's client.
        Some(parts) if config.recovery.enabled() => {
            let origin = parts.settings.origin.clone();
            supervisor
                .with_recovery_store(RecoveryStore::cluster(
                    config.recovery.window,
                    config.recovery.history_bytes,
                    &origin,
                    parts.presence.clone(),
                ))
                .with_session_log(SessionLog::new(
                    parts.appender.clone(),
                    origin,
                    metrics.clone(),
                ))
        }
        _ => supervisor.with_recovery(config.recovery.window, config.recovery.history_bytes),
    };
    if let Some(view) = &admin_view {
        supervisor = supervisor.with_admin_view(view.clone().recipient());
    }
    let supervisor = supervisor.start();
    let admin_ui = match (&config.admin_ui, admin_view) {
        (Some(settings), Some(view)) => Some(Arc::new(AdminUi::new(settings.clone(), view))),
        _ => None,
    };
    let consul = config.consul.clone().filter(|_| mode == Mode::Gateway);
    let service_health = consul.as_ref().map(|_| Arc::new(HealthBoard::new()));
    let context = |mode| {
        Arc::new(SessionContext {
            supervisor: supervisor.clone(),
            verifier: JwtVerifier::new(&config.jwt),
            metrics: metrics.clone(),
            engine: config.engine,
            limits: config.limits,
            mode,
            recovery: config.recovery.enabled(),
            service_health: service_health.clone(),
            admin_ui: admin_ui.clone().filter(|_| mode == Mode::Gateway),
        })
    };
    let sessions = context(mode);
    // Refused CONNECTs are logged as a summary at most once a second (see refusal_log).
    actix::spawn(async {
        let mut every_second = actix::clock::interval(Duration::from_secs(1));
        loop {
            every_second.tick().await;
            crate::refusal_log::flush();
        }
    });
    let engine_echo = (mode == Mode::ProtocolTestSuite).then(|| context(Mode::EngineEcho));
    let state = web::Data::new(AppState {
        config: config.clone(),
        sessions,
        supervisor,
        pending_sessions: PendingSessions::new(config.limits.max_pending_sessions, metrics.clone()),
        metrics,
        readiness,
        polling: Arc::new(PollingRegistry::default()),
        cluster: cluster.as_ref().map(|parts| {
            Arc::new(ClusterEdge {
                appender: parts.appender.clone(),
                origin: parts.settings.origin.clone(),
                presence: parts.presence.clone(),
            })
        }),
        engine_echo,
    });
    let consumers = (config.consume && mode == Mode::Gateway).then(|| match cluster {
        Some(parts) => start_cluster_consumers(
            config.amqp.clone(),
            parts,
            state.supervisor.clone(),
            state.metrics.clone(),
            state.readiness.clone(),
        ),
        None => start_consumers(
            config.amqp.clone(),
            state.supervisor.clone(),
            state.metrics.clone(),
            state.readiness.clone(),
        ),
    });
    if let (Some(settings), Some(board)) = (consul, service_health) {
        ConsulWatcher::new(
            settings,
            state.supervisor.clone(),
            state.metrics.clone(),
            state.readiness.clone(),
            board,
        )
        .start();
    }
    let local_addr = listener.local_addr()?;
    let connections = upgraded::Connections::default();
    let upgrades = connections.clone();
    let plain_body_limits = upgraded::PlainBodyLimits {
        max_bytes: config.push_max_body_bytes,
        timeout: config.limits.http_body_timeout,
    };
    let app_state = state.clone();
    let make_app = move || {
        App::new()
            .app_data(app_state.clone())
            .configure(|cfg| http::configure(cfg, &app_state))
            .default_service(web::to(http::error::not_found))
    };
    // actix-web's `HttpServer::listen`, plus an upgrade service: requests that upgrade to
    // WebSocket leave the HTTP/1 dispatcher and its buffers behind (see transport::upgraded);
    // and each connection's socket wrapped so that a client that does not read makes its
    // requests wait instead of the server buffer their answers (see
    // transport::http1_backpressure).
    let builder = actix_web::dev::Server::build();
    let graceful = builder.graceful_shutdown_signal();
    let server = builder
        // Signals are handled by the caller (see ShutdownHandle), which closes clients first.
        .disable_signals()
        .shutdown_timeout(3)
        .listen("pushgate", listener, move || {
            let graceful = graceful.clone();
            let http = HttpService::build()
                // actix-web's defaults
                .keep_alive(KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                // A client that closes its side is gone: end the connection, dropping a
                // waiting poll's body so that its packets stay queued for the next GET instead
                // of being lost.
                .h1_allow_half_closed(false)
                .local_addr(local_addr)
                // Idle keep-alive connections close when the server stops gracefully.
                .graceful_shutdown_signal(move || {
                    let graceful = graceful.clone();
                    async move { graceful.notified().await }
                })
                .on_connect_ext(|io: &BackloggedStream, data| {
                    data.insert(io.pressure());
                })
                .upgrade(upgraded::service(
                    make_app.clone(),
                    upgrades.clone(),
                    plain_body_limits,
                ))
                .finish(Gated::new(map_config(make_app(), |_| AppConfig::default())));
            // What `HttpService::tcp` does, with the socket wrapped.
            fn_service(|io: TcpStream| async move {
                // Pushes are small and latency-bound: never wait for Nagle.
                if let Err(e) = io.set_nodelay(true) {
                    log::debug!("cannot set TCP_NODELAY: {e}");
                }
                let peer_addr = io.peer_addr().ok();
                Ok((BackloggedStream::new(io), Protocol::Http1, peer_addr))
            })
            .and_then(http)
        })?
        .run();
    Ok(Running {
        server,
        local_addr,
        state,
        consumers,
        connections,
    })
}

/// Connections the kernel queues before pushgate accepts them (capped by
/// `net.core.somaxconn`); std's default of 128 drops SYNs in reconnect bursts, costing clients
/// a 1 s retransmit.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Bind the listening socket for `host:port` with [`LISTEN_BACKLOG`].
pub fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host} resolves to no address"),
        )
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Raise the soft limit on open files to the hard limit (each client holds one socket);
/// returns the limit now in force.
pub fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            log::warn!("cannot raise the open file limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft)
        }
    }
}
