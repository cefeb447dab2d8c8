//! Spawns inventory against the real PostgreSQL and a nats-server of the test's own (the lab's
//! authorization on), with a fresh database and namespace per test. The test publishes other services'
//! events as the server's harness user (`js`), which may publish any subject; inventory reads as itself.
#![allow(dead_code)] // each test file uses a different part of this harness

use std::net::SocketAddr;

use bus::{Envelope, Event, Namespace, Publisher};
use inventory::{Application, Config};
use service_kit::{HttpSettings, Service};
use sqlx::PgPool;
use testkit::{RunningApp, TestDatabase, TestEnv, Tokens};

pub struct TestInventory {
    pub base: String,
    pub grpc: SocketAddr,
    pub tokens: Tokens,
    pub namespace: Namespace,
    pub db: TestDatabase,
    pub pool: PgPool,
    pub js: async_nats::jetstream::Context,
    pub client: reqwest::Client,
    pub bus: testkit::TestBus,
    app: RunningApp,
}

/// Inventory's config over a fresh test environment.
pub fn config_for(env: &TestEnv) -> Config {
    Config {
        http: HttpSettings::with_port(0),
        grpc: HttpSettings::with_port(0),
        database: env.database(),
        nats: env.nats("inventory"),
        auth: env.auth(),
        shutdown_grace_secs: 5,
        ..Default::default()
    }
}

pub async fn spawn_inventory() -> TestInventory {
    let env = TestEnv::new().await;
    let config = config_for(&env);
    let TestEnv {
        db,
        namespace,
        tokens,
        bus,
        ..
    } = env;
    let app = Application::build(config).await.expect("inventory builds");
    let base = format!("http://{}", app.http_addr());
    let grpc = app.grpc_addr();
    let running = testkit::spawn(app);
    let pool = PgPool::connect(&db.url).await.expect("test pool");
    let js = bus.jetstream().await;
    TestInventory {
        base,
        grpc,
        tokens,
        namespace,
        db,
        pool,
        js,
        bus,
        client: testkit::http_client(),
        app: running,
    }
}

impl TestInventory {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path, &self.tokens.viewer).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
    }

    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
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
        self.publisher(source)
            .publish(event)
            .await
            .expect("publish")
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.public("/metrics")
            .await
            .text()
            .await
            .expect("metrics text")
    }

    /// A GET without any identity.
    pub async fn public(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn stop(self) {
        self.app.stop().await.expect("clean stop");
    }
}
