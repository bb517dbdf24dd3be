//! RabbitMQ fixtures for tests against the real broker on 127.0.0.1:5672
//! (`scripts/ensure-rabbitmq.sh`): every test gets a vhost of its own, `pg-test-<random>`, and a
//! user of its own for pushgate, both deleted by a drop guard even when the test fails, so tests
//! run in parallel and leave nothing behind.
//!
//! Each `rabbitmqctl` call boots an Erlang VM (about a second of CPU), so the vhost, its user
//! and both permissions are created by one `rabbitmqctl import_definitions`, and the two deletions
//! run side by side.
//!
//! Publishers connect as `guest` (granted on the vhost too): revoking pushgate's user cuts
//! pushgate off without touching the publisher.

use std::process::{Command, Output};

/// The password of every per-test user.
pub const USER_PASSWORD: &str = "pw";

/// `rabbit_password_hashing_sha256` hash of [`USER_PASSWORD`]: base64(salt ++ sha256(salt ++
/// password)) with the fixed salt `pge2`, as `import_definitions` wants it.
const USER_PASSWORD_HASH: &str = "cGdlMoH+MiVqc7o1mPYhwuE+nOGih/hf1Rt/MUMIYK34Jmtq";

fn output(args: &[&str]) -> std::io::Result<Output> {
    Command::new("rabbitmqctl").arg("-q").args(args).output()
}

fn check(args: &[&str], out: std::io::Result<Output>) -> Result<String, String> {
    let out = out.map_err(|e| format!("running rabbitmqctl {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Run `rabbitmqctl -q <args>`; its stdout, or why it failed. Blocking (about a second).
pub fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    check(args, output(args))
}

/// A vhost for one test and a user of its own for pushgate; both deleted on drop.
pub struct Vhost {
    /// `pg-test-<16 hex digits>`.
    pub name: String,
    /// pushgate's user, `<name>-pushgate`, with every permission on the vhost.
    pub user: String,
}

impl Vhost {
    /// Create the vhost, pushgate's user, and grant it and `guest` everything on the vhost.
    /// Blocking.
    pub fn create() -> Vhost {
        let name = format!("pg-test-{:016x}", rand::random::<u64>());
        let user = format!("{name}-pushgate");
        let all = |user: &str| {
            serde_json::json!({"user": user, "vhost": name, "configure": ".*", "write": ".*",
                "read": ".*"})
        };
        let definitions = serde_json::json!({
            "vhosts": [{"name": name}],
            "users": [{"name": user, "password_hash": USER_PASSWORD_HASH,
                "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}],
            "permissions": [all(&user), all("guest")],
        });
        let file = std::env::temp_dir().join(format!("{name}.json"));
        std::fs::write(&file, definitions.to_string()).expect("write the definitions");
        let result = rabbitmqctl(&["import_definitions", file.to_str().expect("utf-8 path")]);
        let _ = std::fs::remove_file(&file);
        let vhost = Vhost { name, user };
        if let Err(e) = result {
            panic!("creating the test vhost (is RabbitMQ up? scripts/ensure-rabbitmq.sh): {e}");
        }
        vhost
    }

    /// pushgate's URL: its own user on this vhost.
    pub fn user_url(&self) -> String {
        format!(
            "amqp://{}:{USER_PASSWORD}@127.0.0.1:5672/{}",
            self.user, self.name
        )
    }

    /// A publisher's URL: `guest` on this vhost.
    pub fn guest_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }

    /// Give pushgate's user every permission on the vhost again. Blocking.
    pub fn grant(&self) -> Result<String, String> {
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &self.name,
            &self.user,
            ".*",
            ".*",
            ".*",
        ])
    }

    /// Take every permission on the vhost from pushgate's user: it can no longer open the vhost
    /// (its open connection is not closed by this). Blocking.
    pub fn revoke(&self) -> Result<String, String> {
        rabbitmqctl(&["clear_permissions", "-p", &self.name, &self.user])
    }

    /// Close every connection to this vhost (and only those). Blocking.
    pub fn close_connections(&self) -> Result<String, String> {
        rabbitmqctl(&[
            "close_all_connections",
            "--vhost",
            &self.name,
            "closed by the test",
        ])
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let user = ["delete_user", self.user.as_str()];
        let vhost = ["delete_vhost", self.name.as_str()];
        // Side by side: each call is mostly Erlang start-up time.
        let spawn = |args: &[&str]| {
            Command::new("rabbitmqctl")
                .arg("-q")
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        };
        let children = [spawn(&user), spawn(&vhost)];
        for (args, child) in [&user[..], &vhost[..]].into_iter().zip(children) {
            if let Err(e) = check(args, child.and_then(|c| c.wait_with_output())) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// A fresh `NODE_ID`: `pg-test-<8 hex digits>`.
pub fn node_id() -> String {
    format!("pg-test-{:08x}", rand::random::<u32>())
}

/// A connection to `url` and a channel of it in confirm mode: how the tests publish, as the
/// backend services do (and how the cluster's appender is given its channel).
pub async fn confirming_channel(url: &str) -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("connects to the broker");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    (connection, channel)
}

/// How many messages `queue` holds (ready or unacked) and how many consumers it has, read on a
/// channel of `connection` with a passive declare (the queue must exist).
pub async fn queue_counts(connection: &lapin::Connection, queue: &str) -> (u32, u32) {
    let channel = connection.create_channel().await.expect("channel");
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..lapin::options::QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, lapin::types::FieldTable::default())
        .await
        .expect("the queue exists");
    let _ = channel.close(200, "OK".into()).await;
    (declared.message_count(), declared.consumer_count())
}
