//! The `pushgate` binary: parse the command line and configuration, then run the server.

use std::process::ExitCode;
use std::time::Duration;

use futures::future::Either;

use pushgate::auth::{mint, TokenClaims};
use pushgate::config::{parse_args, Command, Config, Sources};
use pushgate::session::Mode;

/// jemalloc: pushes allocate on the room's thread and free on the session's, which glibc
/// malloc pays for (malloc/free were ~13 % of server CPU in the fan-out benchmark). Measured
/// on 2 cores, 2,000-client room: 3.39 -> 3.15 µs of server CPU per delivery, and 15.4 ->
/// 14.8 KiB per idle connection (mimalloc: 3.13 µs but 23.4 KiB).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str = "usage: pushgate [--dev]

  --dev      run with an insecure dev secret and API key (configured ones are ignored)
             and print tokens to try
  --help     print this help
  --version  print the version

Configuration comes from config/*.toml, .env and the environment (see README.md).";

fn main() -> ExitCode {
    let dev = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run { dev }) => dev,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("pushgate {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pushgate: {e}");
            return ExitCode::from(2);
        }
    };
    let loaded = Sources::from_process().and_then(|s| {
        let ignored = if dev { s.set_dev_replaced() } else { vec![] };
        Config::from_sources(&s, dev).map(|c| (c, ignored))
    });
    let (config, dev_ignored) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("pushgate: {e}");
            return ExitCode::from(2);
        }
    };
    pushgate::logging::init(config.log_format);
    match actix_web::rt::System::new().block_on(run(config, dev_ignored)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Run the server; `dev_ignored` names the configured secrets `--dev` replaced.
async fn run(config: Config, dev_ignored: Vec<&'static str>) -> std::io::Result<()> {
    let limit = pushgate::server::raise_open_file_limit();
    log::info!(
        "open file limit {limit}: at most ~{} client connections",
        limit.saturating_sub(100)
    );
    let listener = pushgate::server::bind(&config.host, config.port).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind {}:{}: {e}", config.host, config.port),
        )
    })?;
    if config.dev {
        print_dev_banner(&config, listener.local_addr()?.port(), &dev_ignored);
    }
    let drain = config.shutdown_drain;
    let running = pushgate::start(config, listener, Mode::Gateway)?;
    log::info!("pushgate listening on {}", running.local_addr);
    let shutdown = running.shutdown_handle();
    let readiness = running.state.readiness.clone();
    actix_web::rt::spawn(async move {
        let signal = wait_for_signal().await;
        // Not ready from now on, so that a load balancer sends no new clients; the connected
        // ones are served until the drain ends (or a second signal cuts it short).
        readiness.set_draining();
        if !drain.is_zero() {
            log::info!("{signal}: draining for {drain:?}, then closing clients (/ready is 503)");
            let drained = actix_web::rt::time::sleep(drain);
            let second = wait_for_signal();
            futures::pin_mut!(drained, second);
            if let Either::Right((second, _)) = futures::future::select(drained, second).await {
                log::info!("{second}: the drain is cut short");
            }
        }
        log::info!("{signal}: shutting down");
        shutdown.shutdown().await;
    });
    running.server.await?;
    log::info!("pushgate stopped");
    Ok(())
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() -> &'static str {
    use actix_web::rt::signal;
    let mut term = match signal::unix::signal(signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot listen for SIGTERM: {e}");
            let _ = signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    first_of(term.recv(), signal::ctrl_c()).await
}

/// Whichever of the two signal futures completes first.
async fn first_of(
    term: impl std::future::Future<Output = Option<()>>,
    int: impl std::future::Future<Output = std::io::Result<()>>,
) -> &'static str {
    futures::pin_mut!(term, int);
    match futures::future::select(term, int).await {
        Either::Left(_) => "SIGTERM",
        Either::Right(_) => "SIGINT",
    }
}

fn print_dev_banner(config: &Config, port: u16, ignored: &[&str]) {
    let day = Duration::from_secs(24 * 3600);
    let admin = mint(
        &config.jwt.secret,
        &TokenClaims::new(&config.jwt, "1", true, day),
    );
    let user = mint(
        &config.jwt.secret,
        &TokenClaims::new(&config.jwt, "42", false, day),
    );
    println!(
        "\n*** pushgate DEV MODE: insecure secret and API key, never use in production ***\n\
         admin token (sub 1):  {admin}\n\
         user token (sub 42):  {user}\n\
         API key:              {key}\n\n\
         try:  curl -s -X POST localhost:{port}/api/v1/users/42/notifications \\\n\
         \x20       -H 'X-API-Key: {key}' -H 'Content-Type: application/json' \\\n\
         \x20       -d '{{\"type\":\"hello\",\"data\":{{}}}}'\n",
        key = config.push_api_key.as_deref().unwrap_or("(disabled)"),
    );
    if !ignored.is_empty() {
        println!(
            "dev mode ignores the configured {}: tokens and the API key are the dev ones above\n",
            ignored.join(", ")
        );
    }
}
