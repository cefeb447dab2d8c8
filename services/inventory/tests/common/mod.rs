//! Spawns inventory against the real PostgreSQL and nats-server, with a fresh database and namespace per test.
#![allow(dead_code)] // each test file uses a different part of this harness

use std::net::SocketAddr;

use bus::{Envelope, Event, Namespace, Publisher};
use inventory::{Application, Config};
use secrecy::SecretString;
use service_kit::auth::{AuthSettings, ServiceToken};
use service_kit::{DatabaseSettings, HttpSettings, NatsSettings, Role, Service};
use sqlx::PgPool;
use testkit::{RunningApp, TestDatabase};

pub struct Tokens {
    pub admin: String,
    pub developer: String,
    pub viewer: String,
}

pub struct TestInventory {
    pub base: String,
    pub grpc: SocketAddr,
    pub tokens: Tokens,
    pub namespace: Namespace,
    pub db: TestDatabase,
    pub pool: PgPool,
    pub js: async_nats::jetstream::Context,
    pub config: Config,
    pub client: reqwest::Client,
    app: Option<RunningApp>,
}

/// Builds a config for a fresh database and namespace, with one generated token per role.
pub async fn test_config() -> (Config, Tokens, TestDatabase, Namespace) {
    let db = testkit::database().await;
    let namespace = testkit::nats_namespace().await;
    let (admin, admin_sha) = testkit::token();
    let (developer, developer_sha) = testkit::token();
    let (viewer, viewer_sha) = testkit::token();
    let token = |name: &str, sha256: String, role| ServiceToken {
        name: name.into(),
        sha256,
        role,
    };
    let config = Config {
        http: HttpSettings::with_port(0),
        grpc: HttpSettings::with_port(0),
        database: DatabaseSettings {
            url: SecretString::from(db.url.clone()),
            ..Default::default()
        },
        nats: NatsSettings {
            url: testkit::nats_url(),
            namespace: namespace.as_str().to_owned(),
            ..Default::default()
        },
        auth: AuthSettings {
            service_tokens: vec![
                token("admin", admin_sha, Role::Admin),
                token("developer", developer_sha, Role::Developer),
                token("viewer", viewer_sha, Role::Viewer),
            ],
            ..Default::default()
        },
        consumer: Default::default(),
        shutdown_grace_secs: 5,
    };
    let tokens = Tokens {
        admin,
        developer,
        viewer,
    };
    (config, tokens, db, namespace)
}

pub async fn spawn_inventory() -> TestInventory {
    testkit::init_logs();
    let (config, tokens, db, namespace) = test_config().await;
    start(config, tokens, db, namespace).await
}

async fn start(config: Config, tokens: Tokens, db: TestDatabase, namespace: Namespace) -> TestInventory {
    let app = Application::build(config.clone()).await.expect("inventory builds");
    let base = format!("http://{}", app.http_addr());
    let grpc = app.grpc_addr();
    let running = testkit::spawn(app);
    let pool = PgPool::connect(&db.url).await.expect("test pool");
    let client = async_nats::connect(testkit::nats_url()).await.expect("nats");
    TestInventory {
        base,
        grpc,
        tokens,
        namespace,
        db,
        pool,
        js: async_nats::jetstream::new(client),
        config,
        client: testkit::http_client(),
        app: Some(running),
    }
}

impl TestInventory {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path, &self.tokens.viewer).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
    }

    pub async fn post(&self, path: &str, token: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub fn publisher(&self, source: &'static str) -> Publisher {
        Publisher::new(self.js.clone(), self.namespace.clone(), source)
    }

    pub async fn publish(&self, source: &'static str, event: Event) -> Envelope {
        self.publisher(source).publish(event).await.expect("publish")
    }

    /// Stops inventory as SIGTERM would, and starts it again on the same database and namespace.
    pub async fn restart(&mut self) {
        self.app.take().expect("running").stop().await.expect("clean stop");
        let app = Application::build(self.config.clone()).await.expect("inventory rebuilds");
        self.base = format!("http://{}", app.http_addr());
        self.grpc = app.grpc_addr();
        self.app = Some(testkit::spawn(app));
    }

    pub async fn stop(mut self) {
        self.app.take().expect("running").stop().await.expect("clean stop");
    }
}
