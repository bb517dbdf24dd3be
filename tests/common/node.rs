//! The node end-to-end tests (`tests/e2e`): the real socket.io-client against the real server,
//! run as child processes with their output streamed.

use std::time::Duration;

/// `tests/e2e`, the node project.
pub fn e2e_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// Check that `node` (>= 20.10, for `--test-concurrency`) is installed; panics with a clear
/// message otherwise. Blocking.
pub fn require_node() {
    let out = std::process::Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `node --version` ({e}): the e2e tests need Node.js >= 20.10 on PATH")
        });
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!(
        (major, minor) >= (20, 10),
        "node {version} is too old: the e2e tests need Node.js >= 20.10"
    );
}

/// Run `npm ci` in tests/e2e unless its `node_modules` is complete (npm writes
/// `node_modules/.package-lock.json` last). Once per process; blocking.
pub fn ensure_node_modules() {
    static DONE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = e2e_dir();
    if *done || dir.join("node_modules/.package-lock.json").exists() {
        *done = true;
        return;
    }
    println!("running `npm ci` in {}", dir.display());
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `npm ci` in {} ({e}): the e2e tests need npm (Node.js >= 20.10) on PATH",
                dir.display()
            )
        });
    assert!(
        status.success(),
        "`npm ci` in {} failed: {status}",
        dir.display()
    );
    *done = true;
}

/// The node test files: `tests/e2e/*.test.mjs`, sorted.
pub fn node_test_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(e2e_dir())
        .expect("read tests/e2e")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".test.mjs")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test.mjs in tests/e2e");
    files
}

/// Run `cmd` in its own process group, printing its stdout and stderr line by line as they come
/// (captured by the test harness like any test output). After `timeout` the whole group is
/// killed and `Err` is returned. Blocking: call it off the actix runtime.
pub fn run_streaming(
    mut cmd: std::process::Command,
    timeout: Duration,
) -> Result<std::process::ExitStatus, String> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            println!("{line}");
        }
    });
    let err = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("{line}");
        }
    });
    let deadline = std::time::Instant::now() + timeout;
    let result = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if std::time::Instant::now() >= deadline => {
                // The process group: node and the test files it runs as child processes.
                let _ = std::process::Command::new("kill")
                    .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("timed out after {timeout:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break Err(format!("waiting for the child: {e}")),
        }
    };
    let _ = out.join();
    let _ = err.join();
    result
}

/// How a node test run ended: its exit status, `Err` with why it did not run to its end (not
/// started, timed out), or the panic of its thread (node or npm missing).
pub type NodeRun = std::thread::Result<Result<std::process::ExitStatus, String>>;

/// Start `node --test --test-reporter=spec <args>` in tests/e2e with `env`, on a plain thread
/// so that the test's actix runtime keeps serving meanwhile; checks for node and installs its
/// modules first. The receiver gets how the run ended; it is killed after `timeout`.
pub fn spawn_node_tests(
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    timeout: Duration,
) -> futures::channel::oneshot::Receiver<NodeRun> {
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(|| {
            require_node();
            ensure_node_modules();
            let mut cmd = std::process::Command::new("node");
            cmd.args(["--test", "--test-reporter=spec"])
                .args(args)
                .current_dir(e2e_dir())
                .envs(env);
            run_streaming(cmd, timeout)
        });
        let _ = tx.send(result);
    });
    rx
}

/// Fail the test unless the node run `what` exited 0 (a panic of its thread is raised again).
pub fn assert_node_passed(run: NodeRun, what: &str) {
    let status = match run {
        Ok(r) => r.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(panic) => std::panic::resume_unwind(panic),
    };
    assert!(
        status.success(),
        "{what} failed ({status}): see the output above"
    );
}
