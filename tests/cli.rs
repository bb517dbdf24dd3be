//! Contract §1, the `pushgate` binary run as a child process: startup errors (exit code 2, one
//! line on stderr, no panic), `--dev` (tokens printed, a working server on `PORT=0`) and a
//! graceful stop on SIGTERM (clients closed with 1001, exit status 0).
//!
//! Every run gets an empty environment (no `JWT_SECRET` from the caller's), an empty temporary
//! directory as its working directory (no `.env`) and as `PUSHGATE_CONFIG_DIR` (no
//! `config/default.toml` setting `PORT`), loopback only, an unreachable broker (so nothing
//! touches the shared RabbitMQ or a fixed port) and no shutdown drain (`tests/shutdown_drain.rs`
//! tests it).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Frame, RawClient};

const SECRET_OK: &str = "cli-test-secret-0123456789abcdef0123456789";

/// An empty temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("pushgate-cli-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `pushgate <args>` with only `vars` in its environment (plus the isolation described above).
fn pushgate(dir: &TempDir, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushgate"));
    cmd.args(args)
        .env_clear()
        .current_dir(&dir.0)
        .env("PUSHGATE_CONFIG_DIR", &dir.0)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("NODE_ID", format!("pg-cli-{:08x}", rand::random::<u32>()))
        .env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .env("SHUTDOWN_DRAIN_MS", "0")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A child that is killed if the test ends before it does.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Running {
    /// Its exit status, waiting at most `timeout`.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What a run that must end on its own printed.
struct Ended {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Run `cmd` to its end (at most 10 s: a startup error is immediate).
fn run_to_end(mut cmd: Command) -> Ended {
    let mut child = Running(cmd.spawn().expect("start pushgate"));
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = collect(Box::new(child.0.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.0.stderr.take().unwrap()));
    let status = child
        .wait(Duration::from_secs(10))
        .expect("pushgate exits within 10 s");
    Ended {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Exit code 2, exactly one line on stderr, nothing on stdout, no panic; returns the line.
fn startup_error(ended: &Ended) -> &str {
    let Ended {
        status,
        stdout,
        stderr,
    } = ended;
    assert_eq!(status.code(), Some(2), "exit code; stderr: {stderr}");
    assert_eq!(stdout, "", "nothing on stdout");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "no backtrace: {stderr}");
    assert!(stderr.ends_with('\n'), "one whole line: {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "exactly one line: {stderr:?}");
    let line = stderr.trim_end();
    assert!(!line.trim().is_empty(), "a message");
    line
}

#[test]
fn no_secret_without_dev_is_a_one_line_startup_error() {
    let dir = TempDir::new();
    let ended = run_to_end(pushgate(&dir, &[], &[]));
    let line = startup_error(&ended);
    assert!(line.contains("JWT_SECRET"), "{line}");
    // Empty is unset (docs/configuration.md).
    let ended = run_to_end(pushgate(&dir, &[], &[("JWT_SECRET", "")]));
    assert!(startup_error(&ended).contains("JWT_SECRET"));
}

#[test]
fn only_the_working_directorys_env_file_is_read() {
    let dir = TempDir::new();
    std::fs::write(dir.0.join(".env"), format!("JWT_SECRET={SECRET_OK}\n")).unwrap();
    let below = TempDir(dir.0.join("below"));
    std::fs::create_dir_all(&below.0).unwrap();
    // A parent directory's .env is not read: no JWT_SECRET.
    let ended = run_to_end(pushgate(&below, &[], &[]));
    assert!(startup_error(&ended).contains("JWT_SECRET"));
    // The working directory's is: a malformed one shows that it was read.
    std::fs::write(below.0.join(".env"), "JWT_SECRET='unterminated\n").unwrap();
    let ended = run_to_end(pushgate(&below, &[], &[]));
    assert!(startup_error(&ended).contains(".env"));
}

#[test]
fn a_weak_secret_is_a_clear_startup_error() {
    let dir = TempDir::new();
    let ended = run_to_end(pushgate(&dir, &[], &[("JWT_SECRET", "0123456789")]));
    let line = startup_error(&ended);
    assert!(line.contains("JWT_SECRET"), "names the variable: {line}");
    assert!(line.contains("32"), "says how long it must be: {line}");
    assert!(
        !line.contains("0123456789"),
        "does not print the secret: {line}"
    );
}

#[test]
fn an_unknown_argument_is_a_startup_error() {
    let dir = TempDir::new();
    let ended = run_to_end(pushgate(&dir, &["--prod"], &[("JWT_SECRET", SECRET_OK)]));
    let line = startup_error(&ended);
    assert!(line.contains("--prod"), "names the argument: {line}");
}

/// Lines of a child's stdout and stderr as they come.
enum Line {
    Out(String),
    Err(String),
}

fn stream_lines(child: &mut Child) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    let err = BufReader::new(child.stderr.take().unwrap());
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            println!("pushgate stdout: {line}");
            let _ = tx.send(Line::Out(line));
        }
    });
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            println!("pushgate stderr: {line}");
            let _ = tx2.send(Line::Err(line));
        }
    });
    rx
}

/// The last word of `line`, when it looks like a JWT.
fn jwt_at_end(line: &str) -> Option<String> {
    let word = line.split_whitespace().last()?;
    (word.split('.').count() == 3 && word.len() > 20).then(|| word.to_owned())
}

/// What `--dev` prints: its banner on stdout, the listening address in the log on stderr.
#[derive(Debug, Default)]
struct DevBanner {
    admin: Option<String>,
    user: Option<String>,
    key: Option<String>,
    ignored: Option<String>,
    addr: Option<String>,
}

/// Read `lines` into a [`DevBanner`] until `done` says it holds enough (15 s at most), checking
/// that nothing panicked on the way.
fn read_dev_banner(lines: &mpsc::Receiver<Line>, done: impl Fn(&DevBanner) -> bool) -> DevBanner {
    let mut b = DevBanner::default();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(&b) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(Line::Out(l)) if l.contains("admin token") => b.admin = jwt_at_end(&l),
            Ok(Line::Out(l)) if l.contains("user token") => b.user = jwt_at_end(&l),
            Ok(Line::Out(l)) if l.starts_with("API key:") => {
                b.key = l.split_whitespace().last().map(str::to_owned)
            }
            Ok(Line::Out(l)) if l.contains("dev mode ignores") => b.ignored = Some(l),
            Ok(Line::Err(l)) => {
                assert!(!l.contains("panicked"), "{l}");
                if let Some((_, a)) = l.split_once("pushgate listening on ") {
                    b.addr = Some(a.trim().to_owned());
                }
            }
            Ok(_) => {}
            Err(e) => panic!("--dev printed {b:?} ({e})"),
        }
    }
    b
}

async fn connect(addr: &str, token: &str) -> RawClient {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let mut client = RawClient::connect(&url, &[])
        .await
        .expect("WebSocket to the dev server");
    let answer = client
        .handshake(Some(&format!(r#"{{"token":"{token}"}}"#)))
        .await;
    assert!(
        answer.starts_with("40{\"sid\""),
        "CONNECT accepted: {answer}"
    );
    client
}

#[test]
fn dev_mode_never_signs_with_or_prints_a_configured_secret() {
    use pushgate::auth::JwtVerifier;
    use pushgate::config::{JwtConfig, DEV_API_KEY, DEV_JWT_SECRET};
    let real = "the-real-user-service-secret-0123456789";
    let dir = TempDir::new();
    std::fs::write(dir.0.join(".env"), format!("JWT_SECRET={real}\n")).unwrap();
    let mut child = Running(
        pushgate(&dir, &["--dev"], &[("PUSH_API_KEY", "the-real-api-key")])
            .spawn()
            .expect("start pushgate"),
    );
    let lines = stream_lines(&mut child.0);
    let banner = read_dev_banner(&lines, |b| {
        b.admin.is_some() && b.key.is_some() && b.ignored.is_some()
    });
    let (admin, key, ignored) = (banner.admin, banner.key, banner.ignored);
    let ignored = ignored.unwrap();
    assert!(
        ignored.contains("JWT_SECRET") && ignored.contains("PUSH_API_KEY"),
        "{ignored}"
    );
    assert_eq!(key.as_deref(), Some(DEV_API_KEY));
    let admin = admin.unwrap();
    let verifier = |secret: &str| {
        JwtVerifier::new(&JwtConfig {
            secret: secret.into(),
            old_secret: None,
            issuer: Some("cloudphone-platform".into()),
            audience: Some("cloudphone-users".into()),
        })
    };
    assert!(verifier(DEV_JWT_SECRET).verify(&admin).is_ok());
    assert!(
        verifier(real).verify(&admin).is_err(),
        "signed with the real secret"
    );
}

#[actix_web::test]
async fn dev_mode_prints_working_tokens_and_sigterm_stops_gracefully() {
    let dir = TempDir::new();
    let mut child = Running(
        pushgate(&dir, &["--dev"], &[])
            .spawn()
            .expect("start pushgate"),
    );
    let lines = stream_lines(&mut child.0);

    // The tokens on stdout, `pushgate listening on <addr>` on stderr (the log).
    let banner = read_dev_banner(&lines, |b| {
        b.admin.is_some() && b.user.is_some() && b.addr.is_some()
    });
    let (admin, user, addr) = (banner.admin, banner.user, banner.addr);
    let (admin, user, addr) = (admin.unwrap(), user.unwrap(), addr.unwrap());
    assert_ne!(admin, user);
    let port: u16 = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("a port in {addr:?}"));
    assert_ne!(port, 0, "PORT=0 binds a free port");
    let addr = format!("127.0.0.1:{port}");

    // The user token connects as user 42 (the banner's curl example pushes to it).
    let mut client = connect(&addr, &user).await;
    let welcome = client.next_text().await.expect("welcome");
    assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
    assert!(welcome.contains(r#""userId":"42""#), "{welcome}");
    // The admin token is an admin's: it may join `admin`.
    let mut admin_client = connect(&addr, &admin).await;
    let _welcome = admin_client.next_text().await.expect("welcome");
    admin_client
        .send(r#"420["join_room",{"room":"admin"}]"#)
        .await;
    let mut joined = false;
    for _ in 0..2 {
        let frame = admin_client.next_text().await.expect("join_room answer");
        assert!(!frame.contains("forbidden"), "{frame}");
        joined |= frame.starts_with(r#"42["room_joined""#);
    }
    assert!(joined, "the admin token may join `admin`");

    // SIGTERM: the client is closed as going away (1001), the process exits with 0.
    let pid = child.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}");
    let signalled = Instant::now();
    let mut close = None;
    while let Some(frame) = client.next(Duration::from_secs(5)).await {
        match frame {
            Frame::Close(code) => {
                close = Some(code);
                break;
            }
            Frame::Text(t) if t == "2" => client.send("3").await,
            _ => {}
        }
    }
    assert_eq!(
        close,
        Some(Some(1001)),
        "a WebSocket close 1001 (going away)"
    );
    let left = Duration::from_secs(5).saturating_sub(signalled.elapsed());
    let status = child.wait(left).expect("exits within 5 s of SIGTERM");
    assert!(status.success(), "exit status 0, got {status}");
    let mut rest = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
        if let Line::Err(l) = line {
            rest.push(l);
        }
    }
    assert!(
        !rest.iter().any(|l| l.contains("panicked")),
        "no panic on the way out: {rest:?}"
    );
}
