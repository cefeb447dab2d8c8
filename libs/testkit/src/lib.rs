//! Test harness for HomeStation services: a fresh database and NATS namespace per test, tokens, captured spans.
//!
//! Everything here talks to real servers: PostgreSQL (started by `make test`; `HOMESTATION_TEST_DATABASE_URL`
//! points elsewhere) and a nats-server with authentication each [`TestEnv`] starts for itself (`nats.rs`).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use service_kit::{Service, Shutdown};
use sqlx::{Connection, Executor, PgConnection};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use uuid::Uuid;

mod nats;
mod restartable;
mod servers;
pub use nats::{
    BusOptions, HARNESS_USER, TestBus, connect_once, drop_namespace, fresh_namespace,
    nats_namespace, nats_server_binary, nats_url,
};
pub use restartable::Restartable;
pub use servers::{
    OpenBao, PasswordPostgres, S3Server, openbao, openbao_raft, postgres_with_passwords, s3,
};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Test databases older than this are dropped by later runs (a crashed test leaves its database behind).
const STALE_AFTER: Duration = Duration::from_secs(3600);
const DB_PREFIX: &str = "hs_test_";

fn admin_url() -> String {
    std::env::var("HOMESTATION_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into())
}

pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

/// Creates an empty database named `hs_test_<time>_<uuid>` and drops stale ones left by crashed runs.
pub async fn database() -> TestDatabase {
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {admin} is not reachable ({e}); run `make services`")
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    drop_stale(&mut conn, now).await;
    let name = format!("{DB_PREFIX}{now}_{}", Uuid::new_v4().simple());
    // The name is ours (a prefix, digits and hex), so formatting it into DDL is safe.
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    TestDatabase {
        url: format!("{base}/{name}"),
        name,
    }
}

async fn drop_stale(conn: &mut PgConnection, now: u64) {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'hs\\_test\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for (name,) in names {
        let created = name
            .strip_prefix(DB_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|t| t.parse::<u64>().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > STALE_AFTER.as_secs()) {
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await;
        }
    }
}

/// An HTTP client for tests (the TLS provider installed first, as every binary does).
pub fn http_client() -> reqwest::Client {
    service_kit::install_crypto_provider();
    reqwest::Client::new()
}

/// A random bearer token made for this test, and the SHA-256 that goes into the service's config.
pub fn token() -> (String, String) {
    let token = format!("hs_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let digest = service_kit::auth::token_sha256(&token);
    (token, digest)
}

/// A service running on its own task; [`RunningApp::stop`] shuts it down as SIGTERM would.
pub struct RunningApp {
    shutdown: Shutdown,
    handle: tokio::task::JoinHandle<Result<(), String>>,
}

/// Runs a built service until the test stops it.
pub fn spawn<S: Service>(app: S) -> RunningApp {
    let shutdown = Shutdown::new();
    let signal = shutdown.clone();
    let handle = tokio::spawn(async move {
        app.run_until_stopped(signal)
            .await
            .map_err(|e| service_kit::service::error_chain(&e))
    });
    RunningApp { shutdown, handle }
}

impl RunningApp {
    pub async fn stop(self) -> Result<(), String> {
        self.shutdown.trigger();
        self.handle.await.expect("service task panicked")
    }
}

/// Polls `check` until it returns Some, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Spans exported by this test process, through the real OpenTelemetry SDK into memory.
pub struct SpanCapture {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

impl SpanCapture {
    pub fn spans(&self) -> Vec<SpanData> {
        let _ = self.provider.force_flush();
        self.exporter
            .get_finished_spans()
            .expect("in-memory exporter")
    }

    /// Spans of one kind: server, client, producer, consumer or internal.
    pub fn of_kind(&self, kind: opentelemetry::trace::SpanKind) -> Vec<SpanData> {
        self.spans()
            .into_iter()
            .filter(|s| s.span_kind == kind)
            .collect()
    }
}

/// Installs the test's global subscriber with span capture (and logs when `TEST_LOG` is set).
/// nextest runs each test in its own process, so each test gets its own capture.
pub fn capture_spans() -> SpanCapture {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("testkit"))
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::registry()
        .with(otel)
        .with(test_logs())
        .try_init();
    SpanCapture { exporter, provider }
}

/// Logs to the test's output when `TEST_LOG` is set; nothing otherwise.
pub fn init_logs() {
    let _ = tracing_subscriber::registry().with(test_logs()).try_init();
}

fn test_logs<S>() -> Option<impl Layer<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    std::env::var_os("TEST_LOG").map(|_| {
        tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(tracing_subscriber::EnvFilter::new(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ))
    })
}

/// One generated bearer token per role, and the proxy's proof (what Traefik adds to requests that passed
/// Authelia; a test acting as the proxy sends it with Remote-User/Remote-Groups).
pub struct Tokens {
    pub admin: String,
    pub developer: String,
    pub viewer: String,
    pub proxy_proof: String,
}

/// Everything a service test needs from the kit: a fresh database, a nats-server with the lab's
/// authorization and a namespace of its own, and a token per role.
pub struct TestEnv {
    pub db: TestDatabase,
    pub namespace: bus::Namespace,
    pub bus: TestBus,
    pub tokens: Tokens,
    auth: service_kit::auth::AuthSettings,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_bus(BusOptions::default()).await
    }

    /// A TestEnv whose nats-server knows more services than the lab's (`BusOptions`).
    pub async fn with_bus(options: BusOptions) -> Self {
        use service_kit::Role;
        use service_kit::auth::{AuthSettings, ServiceToken};
        init_logs();
        let db = database().await;
        let namespace = fresh_namespace();
        let bus = TestBus::start_with(namespace.clone(), options).await;
        let mut service_tokens = Vec::new();
        let mut issue = |name: &str, role| {
            let (token, sha256) = token();
            service_tokens.push(ServiceToken {
                name: name.into(),
                sha256,
                role,
            });
            token
        };
        let tokens = Tokens {
            admin: issue("admin", Role::Admin),
            developer: issue("developer", Role::Developer),
            viewer: issue("viewer", Role::Viewer),
            proxy_proof: token().0,
        };
        let auth = AuthSettings {
            service_tokens,
            proxy_proof_sha256: Some(service_kit::auth::token_sha256(&tokens.proxy_proof)),
            ..Default::default()
        };
        Self {
            db,
            namespace,
            bus,
            tokens,
            auth,
        }
    }

    pub fn database(&self) -> service_kit::DatabaseSettings {
        service_kit::DatabaseSettings {
            url: secrecy::SecretString::from(self.db.url.clone()),
            ..Default::default()
        }
    }

    /// `service`'s bus settings: its own NATS user, as the lab configures it.
    pub fn nats(&self, service: &str) -> service_kit::NatsSettings {
        self.bus.settings(service)
    }

    pub fn auth(&self) -> service_kit::auth::AuthSettings {
        self.auth.clone()
    }

    /// The events on one of this test's streams so far, in order, as (subject without the namespace,
    /// the event's data).
    pub async fn events(&self, stream: bus::Stream) -> Vec<(String, serde_json::Value)> {
        self.events_on(&self.bus.jetstream().await, stream).await
    }

    /// The data of `subject`'s events once there are at least `count` of them. A service's outbox
    /// relays after its database commit, so an event can reach the stream a moment after the API
    /// answered: tests wait for events rather than read them once.
    pub async fn await_events(
        &self,
        stream: bus::Stream,
        subject: &str,
        count: usize,
    ) -> Vec<serde_json::Value> {
        let js = self.bus.jetstream().await;
        eventually(
            &format!("{count} {subject} event(s)"),
            Duration::from_secs(20),
            || async {
                let found: Vec<serde_json::Value> = self
                    .events_on(&js, stream)
                    .await
                    .into_iter()
                    .filter(|(s, _)| s == subject)
                    .map(|(_, data)| data)
                    .collect();
                (found.len() >= count).then_some(found)
            },
        )
        .await
    }

    pub async fn events_on(
        &self,
        js: &async_nats::jetstream::Context,
        stream: bus::Stream,
    ) -> Vec<(String, serde_json::Value)> {
        let Ok(mut stream) = js.get_stream(stream.name(&self.namespace)).await else {
            return Vec::new();
        };
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut events = Vec::new();
        for seq in 1..=last {
            if let Ok(m) = stream.get_raw_message(seq).await {
                let envelope = bus::Envelope::parse(&self.namespace, &m.subject, &m.payload)
                    .expect("events on the stream parse");
                let wire: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                events.push((envelope.event.subject().to_owned(), wire["data"].clone()));
            }
        }
        events
    }
}

/// A free local port (bound, read, released) for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A service binary run as an operator runs it: its config file, JSON logs appended to `log`, its HTTP
/// port chosen here (through `HOMESTATION_<SERVICE>__HTTP__PORT`). Killed (SIGKILL) by [`Binary::kill`].
pub struct Binary {
    pub child: std::process::Child,
    pub base: String,
}

impl Binary {
    pub fn start(
        program: &str,
        service: &str,
        config: &std::path::Path,
        log: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("the log file opens");
        let child = std::process::Command::new(program)
            .env(service_kit::config::CONFIG_FILE_VAR, config)
            .env(
                format!("{}HTTP__PORT", service_kit::config::env_prefix(service)),
                port.to_string(),
            )
            .env("HOMESTATION_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&self) {
        let client = http_client();
        eventually(
            "the binary to be ready",
            Duration::from_secs(60),
            || async {
                let r = client
                    .get(format!("{}/readyz", self.base))
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())
            },
        )
        .await;
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A document the code generates, held to the copy committed at `<crate_dir>/<file>`, so a change
/// shows in review and checkers can read it. `UPDATE_GENERATED=1` rewrites the copy instead.
pub fn assert_committed_json(crate_dir: &str, file: &str, generated: &serde_json::Value) {
    let path = std::path::Path::new(crate_dir).join(file);
    let text = serde_json::to_string_pretty(generated).expect("JSON") + "\n";
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &text).expect("the committed copy is writable");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} differs from what the code generates: run `UPDATE_GENERATED=1 cargo nextest run --workspace --test openapi`",
        path.display()
    );
}
