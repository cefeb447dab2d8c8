//! The whole control plane on this machine, as an operator runs it: the five service binaries, each
//! with its own config file and under a [`Supervisor`] (started again when it dies, as a kubelet would),
//! against real PostgreSQL, nats-server, OpenBao and a SeaweedFS S3 server; optionally every one exporting its
//! spans over OTLP/HTTP to one [`Receiver`] (oteltap, which prints each span and metric it gets as a JSON
//! line). Tests run the edge agent binary against it. Nothing here is a fake except the deployer's
//! kubeconfig, which names a Kubernetes API that is not there (no cluster runs here; the deployer only
//! needs one on paper when it does not watch). A lab's scratch folder (configs, logs, data) is removed
//! when it is dropped, and kept, with its path printed, when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::Value;
pub use testkit::free_port;
use testkit::{OpenBao, S3Server, TestEnv};

mod supervisor;

pub use supervisor::{Launch, Supervisor};

/// The KV v2 path (mount `secret`) the secrets-rotator's one policy, `lab-api`, rotates.
pub const ROTATED: &str = "apps/lab/api";

/// The repository's root (this crate is one folder below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ is in the repository")
        .to_path_buf()
}

/// Builds the workspace's binaries as `cargo nextest run --workspace` builds them (tests included, so
/// features unify the same way and nothing is rebuilt), then returns where one of them is. A no-op of a
/// second or two when the run that started this test has built them; never a stale binary.
pub fn binary(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // What cargo set for this test process (its package's manifest dir, name, …) must not reach the
        // nested build: build scripts watch some of them (ring's reruns on CARGO_MANIFEST_DIR), and a
        // changed value would rebuild half the tree, here and again in the next outer build.
        let package_vars = std::env::vars().map(|(k, _)| k).filter(|k| {
            k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_BIN_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .contains(&k.as_str())
        });
        let mut command = Command::new(cargo);
        for var in package_vars {
            command.env_remove(var);
        }
        let status = command
            .current_dir(root())
            .args([
                "build",
                "--quiet",
                "--locked",
                "--workspace",
                "--bins",
                "--tests",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the service binaries failed");
    });
    let exe = std::env::current_exe().expect("this program's path");
    // A test runs as target/<profile>/deps/<test>, a binary (the `lab`) as target/<profile>/<bin>.
    let dir = exe.parent().expect("target/<profile> or its deps");
    let profile = if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>")
    } else {
        dir
    };
    profile.join(name)
}

/// oteltap: a real OTLP/HTTP receiver printing every span as one JSON line to `spans.ndjson`.
pub struct Receiver {
    pub endpoint: String,
    out: PathBuf,
    child: Child,
}

impl Receiver {
    pub async fn start(dir: &Path) -> Self {
        let program = root().join(".venv/bin/oteltap");
        assert!(
            program.exists(),
            "{} is missing: `make setup` installs the Python tools (scripts/tools.sh)",
            program.display()
        );
        let port = free_port();
        let out = dir.join("spans.ndjson");
        let child = Command::new(program)
            .args(["--port", &port.to_string()])
            .stdout(std::fs::File::create(&out).expect("spans file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("oteltap starts");
        testkit::eventually("oteltap to listen", Duration::from_secs(30), || async {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(drop)
        })
        .await;
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            out,
            child,
        }
    }

    /// Every span received so far, as OTLP JSON (`traceId`, `spanId`, `parentSpanId`, `name`, `kind`, …).
    pub fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("spanId").is_some())
            .collect()
    }
}

impl Receiver {
    /// Every metric received so far, as OTLP JSON (`name`, then `gauge`, `sum` or `histogram` with its points).
    pub fn metrics(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| {
                v.get("gauge").is_some() || v.get("sum").is_some() || v.get("histogram").is_some()
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a service did not answer ready.
enum NotReady {
    /// Its log says its HTTP port was taken before it could bind it.
    PortTaken,
    /// A minute went by.
    Late,
}

/// Polls `{base}/readyz` every 5 ms (the resolution of the recover-time figures) until it answers 200, for
/// a minute at most; stops early when `log` (the service's, if given) says its address is in use.
async fn wait_ready(
    client: &reqwest::Client,
    base: &str,
    log: Option<&Path>,
) -> Result<(), NotReady> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if log.is_some_and(|log| {
            std::fs::read_to_string(log).is_ok_and(|text| text.contains("Address already in use"))
        }) {
            return Err(NotReady::PortTaken);
        }
        if std::time::Instant::now() >= deadline {
            return Err(NotReady::Late);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `{base}/readyz` answers 200; panics after a minute.
pub async fn ready(client: &reqwest::Client, base: &str) {
    assert!(
        wait_ready(client, base, None).await.is_ok(),
        "{base} was not ready within a minute"
    );
}

/// One service binary of the lab under its supervisor, its HTTP address and its log.
pub struct Service {
    pub name: &'static str,
    pub base: String,
    pub log: PathBuf,
    /// The URL of its database (each service has one of its own).
    pub database: String,
    pub supervisor: Supervisor,
    /// How it is started, without its port (a retry picks another).
    launch: Launch,
}

impl Service {
    /// Starts `name` under its supervisor on a free port (given through `HOMESTATION_<NAME>__HTTP__PORT`).
    fn start(name: &'static str, launch: Launch, database: String) -> Self {
        let port = free_port();
        let mut launch_on_port = launch.clone();
        launch_on_port.env.push((
            format!("{}HTTP__PORT", service_kit::config::env_prefix(name)),
            port.to_string(),
        ));
        Self {
            name,
            base: format!("http://127.0.0.1:{port}"),
            log: launch.log.clone(),
            database,
            supervisor: Supervisor::start(launch_on_port),
            launch,
        }
    }

    /// Waits until the service is ready. [`free_port`] releases the port it found, so a test running
    /// beside this one may bind it first: a service whose log says its address is in use is started
    /// again on another port (up to three times). Anything else panics after a minute with its log.
    async fn settle(&mut self, client: &reqwest::Client) {
        for _ in 0..3 {
            match wait_ready(client, &self.base, Some(&self.log)).await {
                Ok(()) => return,
                Err(NotReady::Late) => break,
                Err(NotReady::PortTaken) => {
                    eprintln!(
                        "{}: {} was taken; starting it on another port",
                        self.name, self.base
                    );
                    self.supervisor.stop();
                    // The next try reads only its own log.
                    let _ = std::fs::remove_file(&self.log);
                    *self = Self::start(self.name, self.launch.clone(), self.database.clone());
                }
            }
        }
        panic!(
            "{} ({}) was not ready within a minute; its log:\n{}",
            self.name,
            self.base,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// SIGTERM: the service drains and flushes its spans, then must exit 0.
    pub fn stop(&mut self) {
        let status = self.supervisor.stop();
        assert!(
            status.success(),
            "{} stopped with {status}; its log:\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

/// The control plane: inventory, edge-registry, backup, secrets-rotator and deployer running as binaries.
pub struct Lab {
    pub dir: PathBuf,
    pub env: TestEnv,
    pub admin: String,
    /// What Traefik adds to requests that passed Authelia; the services trust forwarded headers with it only.
    pub proxy_proof: String,
    /// edge-registry's enrolment listener, where agents enrol (the tailnet's one door in the lab).
    pub enrol: String,
    pub bao: OpenBao,
    pub s3: S3Server,
    pub services: Vec<Service>,
    pub client: reqwest::Client,
    /// The folder the backup policy `lab-files` backs up (the policy `gone` backs up one that is not there).
    pub data: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The services first: a supervisor restarting one (a chaos test killed it) must not find its
        // log's folder gone.
        self.services.clear();
        if std::thread::panicking() {
            eprintln!(
                "the lab's configs and logs are kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Lab {
    /// Starts every service (built by [`binary`]) with `otlp` (an OTLP/HTTP endpoint) as its exporter when given.
    pub async fn start(otlp: Option<&str>) -> Self {
        Self::start_with(otlp, binary).await
    }

    /// Starts every service, finding each program with `program_path` (benchmarks pass release binaries).
    pub async fn start_with(otlp: Option<&str>, program_path: fn(&str) -> PathBuf) -> Self {
        let dir = std::env::temp_dir().join(format!("hs-e2e-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let env = TestEnv::new().await;
        let (admin, admin_sha256) = testkit::token();
        let (proxy_proof, proxy_proof_sha256) = testkit::token();
        let enrol_port = free_port();
        let bao = testkit::openbao().await;
        bao.kv_put(
            "homestation/k3s",
            serde_json::json!({ "agent_token": format!("K10{}::node:{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()) }),
        )
        .await;
        bao.kv_put(
            ROTATED,
            serde_json::json!({ "token": format!("hs_{}", uuid::Uuid::new_v4().simple()) }),
        )
        .await;
        let s3 = testkit::s3().await;
        let client = testkit::http_client();
        // SeaweedFS without S3 identities creates a bucket on an unsigned PUT.
        client
            .put(format!("{}/lab-backups", s3.endpoint))
            .send()
            .await
            .expect("bucket created");
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        std::fs::write(data.join("notes.txt"), "what the lab keeps\n").expect("a file to back up");
        let key = dir.join("backup.key");
        std::fs::write(&key, uuid::Uuid::new_v4().as_bytes().repeat(2))
            .expect("a 32-byte key made here");

        // Each service its own NATS user on the lab's nats-server (authentication on).
        let common = |service: &str, db: &str| {
            format!(
                "[database]\nurl = \"{db}\"\n[nats]\n{nats}\
                 [auth]\nproxy_proof_sha256 = \"{proxy_proof_sha256}\"\n\
                 [[auth.service_tokens]]\nname = \"admin\"\nsha256 = \"{admin_sha256}\"\nrole = \"admin\"\n",
                nats = env.bus.toml(service),
            )
        };
        let vault = format!(
            "[vault]\naddress = \"{}\"\ntoken = \"{}\"\nkv_mount = \"secret\"\n",
            bao.address, bao.root_token
        );
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: none\n  cluster:\n    server: https://127.0.0.1:{}\n\
                 contexts:\n- name: none\n  context:\n    cluster: none\n    user: none\ncurrent-context: none\n\
                 users:\n- name: none\n  user: {{}}\n",
                free_port()
            ),
        )
        .expect("kubeconfig");
        let db = [
            testkit::database().await.url,
            env.db.url.clone(),
            testkit::database().await.url,
            testkit::database().await.url,
            testkit::database().await.url,
        ];
        let configs: [(&'static str, String); 5] = [
            (
                "inventory",
                // Events a killed inventory held unacked come back after 5 s rather than 30 (tests kill it).
                format!(
                    "[grpc]\nport = 0\n[consumer]\nack_wait_secs = 5\n{}",
                    common("inventory", &db[0])
                ),
            ),
            (
                "edge-registry",
                // Heartbeats every second, so an agent's readings show within a test. It answers the
                // bus's auth callout for edge nodes, with the issuer seed the test's nats-server trusts.
                format!(
                    "{}{vault}[liveness]\nheartbeat_interval_secs = 1\n[callout]\nissuer_seed = \"{}\"\n\
                     [enrol]\nport = {enrol_port}\n",
                    common("edge-registry", &db[1]),
                    env.bus.issuer_seed().expose_secret(),
                ),
            ),
            (
                "backup",
                format!(
                    "bucket = \"lab-backups\"\nscratch_dir = \"{scratch}\"\n{common}\
                     [s3]\nendpoint = \"{s3}\"\naccess_key_id = \"test-made-up\"\nsecret_access_key = \"test-made-up-too\"\n\
                     [encryption]\nkey_file = \"{key}\"\n\
                     [[policies]]\nname = \"lab-files\"\nretries = 0\n[policies.source]\nkind = \"folder\"\npath = \"{data}\"\n\
                     [policies.drill]\nschedule = \"@weekly\"\nchecks = [{{ kind = \"files\", paths = [\"notes.txt\"] }}]\n\
                     [[policies]]\nname = \"gone\"\nretries = 0\n[policies.source]\nkind = \"folder\"\npath = \"{gone}\"\n",
                    scratch = dir.join("scratch").display(),
                    common = common("backup", &db[2]),
                    s3 = s3.endpoint,
                    key = key.display(),
                    data = data.display(),
                    gone = dir.join("not-there").display(),
                ),
            ),
            (
                "secrets-rotator",
                format!(
                    "{}{vault}[[policies]]\nname = \"lab-api\"\nconsumers = []\n\
                     [policies.target]\nkind = \"kv\"\npath = \"{ROTATED}\"\n\
                     [policies.target.generator]\nkind = \"api_token\"\nprefix = \"hs_\"\nkey = \"token\"\n",
                    common("secrets-rotator", &db[3])
                ),
            ),
            (
                "deployer",
                format!("watch = false\n{}", common("deployer", &db[4])),
            ),
        ];
        let mut services = Vec::new();
        for ((name, config), database) in configs.into_iter().zip(db) {
            let path = dir.join(format!("{name}.toml"));
            std::fs::write(&path, config).expect("config file");
            let log = dir.join(format!("{name}.log"));
            let mut env = vec![
                (
                    "HOMESTATION_CONFIG_FILE".to_owned(),
                    path.display().to_string(),
                ),
                ("HOMESTATION_LOG_FORMAT".to_owned(), "json".to_owned()),
                ("KUBECONFIG".to_owned(), kubeconfig.display().to_string()),
                ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
            ];
            if let Some(endpoint) = otlp {
                env.push((
                    "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                    endpoint.to_owned(),
                ));
            }
            let launch = Launch {
                program: program_path(name),
                args: Vec::new(),
                env,
                log: log.clone(),
            };
            services.push(Service::start(name, launch, database));
        }
        for service in &mut services {
            service.settle(&client).await;
        }
        Self {
            dir,
            env,
            admin,
            proxy_proof,
            enrol: format!("http://127.0.0.1:{enrol_port}"),
            bao,
            s3,
            services,
            client,
            data,
        }
    }

    pub fn base(&self, name: &str) -> &str {
        &self
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name}"))
            .base
    }

    /// `GET {path}` of `service` as the lab's admin, read as JSON; `None` while it does not answer with JSON
    /// (for polling with `testkit::eventually`).
    pub async fn get_json(&self, service: &str, path: &str) -> Option<Value> {
        self.client
            .get(format!("{}{path}", self.base(service)))
            .bearer_auth(&self.admin)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// A POST to `path` of `service` as the lab's admin.
    pub fn post(&self, service: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base(service)))
            .bearer_auth(&self.admin)
    }

    /// Stops every service with SIGTERM (spans flushed), checking each exits cleanly.
    pub fn stop(&mut self) {
        for service in &mut self.services {
            service.stop();
        }
    }
}
