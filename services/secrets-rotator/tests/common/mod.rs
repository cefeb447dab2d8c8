//! The rotator against a fresh database, NATS namespace and OpenBao dev server of the test's own.
#![allow(dead_code)] // each test file uses a different part

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{Value, json};
use service_kit::{HttpSettings, Service, VaultSettings};

/// The service consuming the tests' secrets.
pub const SHOP: &str = "shop";

pub struct TestRotator {
    pub base: String,
    pub env: testkit::TestEnv,
    pub bao: testkit::OpenBao,
    pub client: reqwest::Client,
    app: Option<testkit::RunningApp>,
}

impl TestRotator {
    pub async fn start(policies: Value) -> Self {
        // "shop": the consuming service of the tests, a NATS user as a `make app` service is.
        let env = testkit::TestEnv::with_bus(testkit::BusOptions {
            extra_services: vec![SHOP],
        })
        .await;
        let bao = testkit::openbao().await;
        let mut this = Self {
            base: String::new(),
            env,
            bao,
            client: testkit::http_client(),
            app: None,
        };
        this.restart(policies).await;
        this
    }

    pub fn vault(&self) -> VaultSettings {
        VaultSettings {
            address: self.bao.address.clone(),
            token: SecretString::from(self.bao.root_token.clone()),
            kv_mount: "secret".into(),
        }
    }

    pub fn config(&self, policies: Value) -> secrets_rotator::Config {
        secrets_rotator::Config {
            http: HttpSettings::with_port(0),
            database: self.env.database(),
            nats: self.env.nats("secrets-rotator"),
            auth: self.env.auth(),
            vault: self.vault(),
            policies: serde_json::from_value(policies).expect("policies parse"),
            shutdown_grace_secs: 5,
            ..Default::default()
        }
    }

    pub async fn restart(&mut self, policies: Value) {
        if let Some(app) = self.app.take() {
            app.stop().await.expect("the rotator stops cleanly");
        }
        let app = secrets_rotator::Application::build(self.config(policies))
            .await
            .expect("the rotator builds");
        self.base = format!("http://{}", app.http_addr());
        self.app = Some(testkit::spawn(app));
    }

    pub async fn rotate(&self, path: &str) -> (reqwest::StatusCode, Value) {
        self.rotate_at(&self.base, path).await
    }

    /// Asks the rotator at `base` (a second one a test started with another config) to rotate `path`.
    pub async fn rotate_at(&self, base: &str, path: &str) -> (reqwest::StatusCode, Value) {
        self.post_at(
            base,
            "/v1/rotations",
            &self.env.tokens.admin,
            json!({ "path": path }),
        )
        .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (reqwest::StatusCode, Value) {
        self.post_at(&self.base, path, token, body).await
    }

    async fn post_at(
        &self,
        base: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> (reqwest::StatusCode, Value) {
        let r = self
            .client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (reqwest::StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A consumer of `path` as the service `name` runs one, on its own bus connection: it reloads on
    /// rotation and acknowledges under its own name.
    pub async fn consumer(&self, path: &str, name: &str) -> secrets_client::Secret {
        self.consumer_applying(path, name, |_| {}).await
    }

    /// A consumer that puts each new version to use with `apply` before acknowledging it.
    pub async fn consumer_applying(
        &self,
        path: &str,
        name: &str,
        apply: impl Fn(&secrets_client::Versioned) + Send + Sync + 'static,
    ) -> secrets_client::Secret {
        let vault = Arc::new(self.vault().client().unwrap());
        let bus = bus::Connection::open(&self.env.nats(name), name)
            .await
            .unwrap();
        secrets_client::watch(
            bus.client.clone(),
            bus.namespace.clone(),
            bus::Publisher::new(bus.js.clone(), bus.namespace.clone(), "test-consumer"),
            vault,
            secrets_client::WatchSettings {
                mount: "secret".into(),
                path: path.into(),
                consumer: name.into(),
            },
            apply,
        )
        .await
        .expect("the consumer reads the secret")
    }

    /// The `secrets.v1.*` events published so far, as (subject, data).
    pub async fn events(&self) -> Vec<(String, Value)> {
        self.env.events(bus::Stream::Secrets).await
    }

    pub async fn events_of(&self, subject: &str, count: usize) -> Vec<Value> {
        self.env
            .await_events(bus::Stream::Secrets, subject, count)
            .await
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await.expect("the rotator stops cleanly");
        }
    }
}
