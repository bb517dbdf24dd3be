//! Contract §3 end to end: the real server consuming from the real RabbitMQ on 127.0.0.1:5672
//! (`scripts/ensure-rabbitmq.sh`), real publishers (amqplib) and real browser clients
//! (socket.io-client), driven by the node files of `tests/e2e/amqp/`.
//!
//! Each test has a vhost and a pushgate user of its own (`pushgate_test_support::broker::Vhost`, deleted on
//! drop), a fresh `NODE_ID`, and its own server, started with `config.consume = true` and
//! waited for until `/ready` answers 200. Then one node file runs against it, with a hard
//! timeout, its output streamed. The node file reaches what only this side can do (cut
//! pushgate off the broker, stop and restart it) through a control socket: it connects to
//! `PUSHGATE_CONTROL`, writes one command line and reads `ok` or `error: <why>`:
//!
//! | command  | effect |
//! |----------|--------|
//! | `revoke` | clear pushgate's user's permissions on the vhost (its open connection stays) |
//! | `grant`  | give them back |
//! | `close`  | `rabbitmqctl close_all_connections` on the vhost (the publisher's too) |
//! | `cut`    | `revoke` then `close`: pushgate's connection goes down and stays down |
//! | `stop`   | graceful shutdown of the server (`ShutdownHandle::shutdown`) |
//! | `start`  | a new server, same configuration (vhost, `NODE_ID`), same address |
//!
//! Environment of the node files: what `tests/e2e/lib.mjs` reads (`TestServer::node_env`), plus
//! `PUSHGATE_AMQP_URL` (a publisher on the vhost, as `guest`), `PUSHGATE_NODE_ID` and
//! `PUSHGATE_CONTROL` (`127.0.0.1:<port>`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use pushgate::config::Config;
use pushgate::server::ShutdownHandle;
use pushgate_test_support::broker::{node_id, Vhost};

/// A node file must finish within this (its own tests time out sooner).
const NODE_TIMEOUT: Duration = Duration::from_secs(30);
/// The server must be ready (both consumers consuming) within this.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

type ControlRequest = (String, oneshot::Sender<String>);

/// One scenario: its vhost, its server (restartable) and the node file driving it.
struct Scenario {
    config: Config,
    addr: SocketAddr,
    server: Option<(TestServer, ShutdownHandle)>,
    // Last: dropped (deleted) after the server is gone.
    vhost: Arc<Vhost>,
}

impl Scenario {
    fn start() -> Scenario {
        Scenario::start_with(|_| ())
    }

    /// A scenario whose server configuration `adjust` changes first.
    fn start_with(adjust: impl FnOnce(&mut Config)) -> Scenario {
        let _ = env_logger::Builder::from_env(
            env_logger::Env::default().default_filter_or("warn,pushgate=info,pushgate_actors=info"),
        )
        .is_test(true)
        .try_init();
        let vhost = Arc::new(Vhost::create());
        // The default Engine.IO timers, not the harness's short ones: heartbeats are not what
        // is tested here, and a 200 ms ping timeout can expire on a loaded machine.
        let mut config = Config::for_tests(SECRET, Some(API_KEY));
        config.consume = true;
        config.amqp.url = vhost.user_url();
        config.amqp.node_id = node_id();
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let server = start_on(config.clone(), listener);
        Scenario {
            config,
            addr,
            server: Some(server),
            vhost,
        }
    }

    fn server(&self) -> &TestServer {
        &self.server.as_ref().expect("the server runs").0
    }

    async fn wait_ready(&self) {
        let url = self.server().url("/ready");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let last = match http().get(&url).send().await {
                Ok(mut res) => {
                    if res.status() == 200 {
                        return;
                    }
                    let body = res.body().await.unwrap_or_default();
                    format!("{} {}", res.status(), String::from_utf8_lossy(&body))
                }
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "/ready not 200 within {READY_TIMEOUT:?}: {last}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Run `tests/e2e/amqp/<file>` against the server, answering its control commands; panics
    /// unless it exits 0 within [`NODE_TIMEOUT`]. Stops the server at the end.
    async fn run_node(mut self, file: &str) {
        let started = Instant::now();
        self.wait_ready().await;
        let (control_addr, mut control) = control_socket();
        let mut env = self.server().node_env();
        env.extend([
            ("PUSHGATE_AMQP_URL".to_owned(), self.vhost.guest_url()),
            (
                "PUSHGATE_NODE_ID".to_owned(),
                self.config.amqp.node_id.clone(),
            ),
            ("PUSHGATE_CONTROL".to_owned(), control_addr.to_string()),
        ]);
        let path = e2e_dir().join("amqp").join(file);
        assert!(path.exists(), "{} is missing", path.display());
        let mut node = spawn_node_tests(vec![path.into()], env, NODE_TIMEOUT);
        let result = loop {
            futures::select! {
                request = control.next() => {
                    if let Some((command, reply)) = request {
                        let answer = self.control(&command).await;
                        let _ = reply.send(answer);
                    }
                }
                result = node => break result.expect("the node runner thread ended"),
            }
        };
        if let Some((_server, shutdown)) = self.server.take() {
            shutdown.shutdown().await;
        }
        println!("{file}: done in {:?}", started.elapsed());
        assert_node_passed(result, &format!("node --test {file}"));
    }

    /// Carry out one control command; `ok` or `error: <why>`.
    async fn control(&mut self, command: &str) -> String {
        let started = Instant::now();
        let result = match command {
            "revoke" | "grant" | "close" | "cut" => self.broker(command).await,
            "stop" => match self.server.take() {
                Some((_server, shutdown)) => {
                    shutdown.shutdown().await;
                    Ok(())
                }
                None => Err("the server is not running".to_owned()),
            },
            "start" => match self.server {
                Some(_) => Err("the server is already running".to_owned()),
                None => self.restart().await,
            },
            other => Err(format!("unknown command {other:?}")),
        };
        println!(
            "control: {command} -> {result:?} in {:?}",
            started.elapsed()
        );
        match result {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        }
    }

    /// `rabbitmqctl` off the runtime thread (it blocks for about a second, and the consumers
    /// and the room supervisor run on this thread).
    async fn broker(&self, command: &str) -> Result<(), String> {
        let vhost = self.vhost.clone();
        let command = command.to_owned();
        actix_web::rt::task::spawn_blocking(move || match command.as_str() {
            "revoke" => vhost.revoke().map(drop),
            "grant" => vhost.grant().map(drop),
            "close" => vhost.close_connections().map(drop),
            "cut" => vhost
                .revoke()
                .and_then(|_| vhost.close_connections())
                .map(drop),
            _ => unreachable!(),
        })
        .await
        .map_err(|e| format!("rabbitmqctl thread: {e}"))?
    }

    /// A new server with the same configuration on the address of the stopped one.
    async fn restart(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    println!("control: bind {} again: {e}", self.addr);
                    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(format!("bind {}: {e}", self.addr)),
            }
        };
        self.server = Some(start_on(self.config.clone(), listener));
        Ok(())
    }
}

/// The control socket: a thread accepting one command per connection on 127.0.0.1:0, handing
/// each to the test and writing back its answer. The thread ends once the receiver is dropped.
fn control_socket() -> (SocketAddr, mpsc::UnboundedReceiver<ControlRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the control socket");
    listener.set_nonblocking(true).expect("non-blocking accept");
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded::<ControlRequest>();
    std::thread::spawn(move || {
        while !tx.is_closed() {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(e) => {
                    eprintln!("control socket: {e}");
                    return;
                }
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            let answer = match reader.read_line(&mut line) {
                Ok(_) => {
                    let (reply, answer) = oneshot::channel();
                    if tx.unbounded_send((line.trim().to_owned(), reply)).is_err() {
                        return;
                    }
                    futures::executor::block_on(answer)
                        .unwrap_or_else(|_| "error: the test is gone".to_owned())
                }
                Err(e) => format!("error: reading the command: {e}"),
            };
            let _ = (&stream).write_all(format!("{answer}\n").as_bytes());
        }
    });
    (addr, rx)
}

/// Every routing key of the table, to exactly the right sockets with the exact payloads; the
/// critical rules; device status tracking and fallbacks; integer ids; ignored keys.
#[actix_web::test]
async fn routing_table() {
    Scenario::start().run_node("routing.test.mjs").await;
}

/// What the admin console reads, as the real services publish: admin copies of alerts, the
/// console's `alertLevel` / `usagePercent`, an admin's own device events once, numbers and
/// member order as published, and its dev proxy that strips `/ws`.
#[actix_web::test]
async fn console() {
    Scenario::start().run_node("console.test.mjs").await;
}

/// Malformed messages are dead-lettered (and only they), counted, and do not stall the consumer.
#[actix_web::test]
async fn poison_messages() {
    Scenario::start().run_node("poison.test.mjs").await;
}

/// pushgate's broker connection goes down and stays down while events are published: not ready
/// meanwhile, every event delivered once, in order, after it is back.
#[actix_web::test]
async fn broker_connection_cut() {
    Scenario::start().run_node("fault-cut.test.mjs").await;
}

/// The broker closes pushgate's connection: a quick reconnect, nothing published right after is
/// lost.
#[actix_web::test]
async fn broker_connection_closed() {
    Scenario::start().run_node("fault-close.test.mjs").await;
}

/// A server restarted with the same `NODE_ID` gets what was published while it was down.
#[actix_web::test]
async fn restart_with_the_same_node_id() {
    Scenario::start().run_node("restart.test.mjs").await;
}

/// Contract §7, storms and priority, with rooms coalescing for 500 ms (`PUSH_COALESCE_MS`) and
/// `quota.updated` for 250 ms (`QUOTA_COALESCE_MS`): a burst for one quota reaches its
/// receivers as a few pushes, the last the latest; quotas are not merged; alerts are all
/// delivered, none held by either window, and an update held for a quota goes out before that
/// quota's alert.
#[actix_web::test]
async fn storms_and_alert_priority() {
    Scenario::start_with(|config| {
        config.push_coalesce =
            pushgate_actors::adaptive_window::CoalesceWindow::Fixed(Duration::from_millis(500));
        config.amqp.quota_coalesce = Duration::from_millis(250);
    })
    .run_node("storm.test.mjs")
    .await;
}
