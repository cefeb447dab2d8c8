//! Servers a chaos test owns and restarts under load: a nats-server with JetStream on file storage, and a
//! PostgreSQL. Each keeps its port and data folder across [`Restartable::restart`], so what comes back is the
//! same server with its data, as after a pod restart. Stopped and removed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

use crate::servers::as_postgres;
use crate::{eventually, free_port};

pub struct Restartable {
    pub port: u16,
    /// How a client reaches it: `nats://…` or `postgres://…`.
    pub url: String,
    /// The user and password its readiness is probed with, where authentication is on.
    probe: Option<(String, String)>,
    dir: PathBuf,
    command: fn(&Restartable) -> Command,
    /// The signal that stops it cleanly: SIGTERM for nats-server (it flushes its streams), SIGINT for
    /// PostgreSQL (a fast shutdown, as Kubernetes' SIGTERM does not give it).
    stop_signal: &'static str,
    child: Option<Child>,
}

impl Restartable {
    /// nats-server with JetStream storing its streams in files, anonymous.
    pub async fn nats() -> Self {
        let mut server = Self::new_nats();
        server.start().await;
        server
    }

    fn new_nats() -> Self {
        let port = free_port();
        Self::new(
            port,
            format!("nats://127.0.0.1:{port}"),
            "-TERM",
            nats_command,
        )
    }

    /// nats-server from the configuration `config(port, store_dir)` makes (authentication on), probed as
    /// `user`. The file is written once: a restart comes back with the same users and data.
    pub async fn nats_configured(
        user: &str,
        password: &str,
        config: impl FnOnce(u16, &str) -> serde_json::Value,
    ) -> Self {
        let mut server = Self::new_nats();
        server.probe = Some((user.to_owned(), password.to_owned()));
        let store = server.dir.join("jetstream").display().to_string();
        let written =
            serde_json::to_vec_pretty(&config(server.port, &store)).expect("config serialises");
        std::fs::write(server.dir.join("nats.json"), written).expect("the config is written");
        server.start().await;
        server
    }

    /// PostgreSQL with trust authentication for `postgres`, fsync on (a restart must keep what it acknowledged).
    pub async fn postgres() -> Self {
        let port = free_port();
        let server = Self::new(
            port,
            format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            "-INT",
            |s| {
                let mut c = as_postgres("postgres");
                c.arg("-D").arg(s.dir.join("data")).args([
                    "-p",
                    &s.port.to_string(),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=100",
                ]);
                c.arg("-k").arg(&s.dir);
                c
            },
        );
        let _ = Command::new("chown")
            .args(["postgres", &server.dir.display().to_string()])
            .status();
        let initdb = as_postgres("initdb")
            .arg("-D")
            .arg(server.dir.join("data"))
            .args(["-U", "postgres", "--auth=trust"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(initdb.success(), "initdb failed");
        let mut server = server;
        server.start().await;
        server
    }

    fn new(
        port: u16,
        url: String,
        stop_signal: &'static str,
        command: fn(&Self) -> Command,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("hs-restartable-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        Self {
            port,
            probe: None,
            url,
            dir,
            command,
            stop_signal,
            child: None,
        }
    }

    /// Starts it and waits until it answers.
    pub async fn start(&mut self) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("a log file");
        let child = (self.command)(self)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the server starts");
        self.child = Some(child);
        let url = self.url.clone();
        let probe = self.probe.clone();
        eventually("the server to answer", Duration::from_secs(30), || {
            let (url, probe) = (url.clone(), probe.clone());
            async move {
                if url.starts_with("nats") {
                    let options = match probe {
                        Some((user, password)) => {
                            async_nats::ConnectOptions::with_user_and_password(user, password)
                        }
                        None => async_nats::ConnectOptions::new(),
                    };
                    options.connect(&url).await.ok().map(drop)
                } else {
                    use sqlx::Connection;
                    sqlx::PgConnection::connect(&url).await.ok().map(drop)
                }
            }
        })
        .await;
    }

    /// Stops it cleanly and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args([self.stop_signal, &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Stops it, stays down for `down`, and starts it again on the same port with the same data.
    pub async fn restart(&mut self, down: Duration) {
        self.stop();
        tokio::time::sleep(down).await;
        self.start().await;
    }
}

/// nats-server 2.10+ (`crate::nats_server_binary`): from the server's config file when there is one.
fn nats_command(s: &Restartable) -> Command {
    let mut c = Command::new(crate::nats::nats_server_binary());
    let config = s.dir.join("nats.json");
    if config.exists() {
        c.arg("-c").arg(config);
    } else {
        c.args(["-js", "-a", "127.0.0.1", "-p", &s.port.to_string(), "-sd"])
            .arg(s.dir.join("jetstream"));
    }
    c
}

impl Drop for Restartable {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.dir.with_extension("log"));
    }
}
