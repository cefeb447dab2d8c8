//! The edge on this machine: edge-registry and inventory in-process on the real PostgreSQL and a nats-server
//! with the lab's authorization (edge-registry answering its auth callout), an OpenBao dev server of the
//! test's own holding a K3s agent token (and a server token beside it) made here. `js` reads the streams as the test's harness user.
#![allow(dead_code)] // each test file uses a different part of this harness

use std::time::Duration;

use edge_registry::liveness::LivenessSettings;
use secrecy::SecretString;
use service_kit::{HttpSettings, Service, VaultSettings};
use testkit::{OpenBao, RunningApp, TestEnv};

pub struct Edge {
    pub registry: String,
    /// The registry's enrolment listener (the tailnet's one door).
    pub enrol: String,
    pub inventory: String,
    pub env: TestEnv,
    /// The agent token in Vault: what enrolment hands out.
    pub agent_token: String,
    /// A K3s server token beside it in the same Vault secret (as `server/node-token` would read): what
    /// enrolment must never hand out.
    pub server_token: String,
    pub bao: OpenBao,
    pub client: reqwest::Client,
    pub js: async_nats::jetstream::Context,
    pub registry_db: sqlx::PgPool,
    apps: Vec<RunningApp>,
}

/// Heartbeats every second; stale after 2 missed, offline after 3: quick enough for tests.
pub fn fast_liveness() -> LivenessSettings {
    LivenessSettings {
        heartbeat_interval_secs: 1,
        stale_after_missed: 2,
        offline_after_missed: 3,
        check_interval_ms: 200,
    }
}

pub async fn start() -> Edge {
    start_with(fast_liveness()).await
}

pub async fn start_with(liveness: LivenessSettings) -> Edge {
    let env = TestEnv::new().await;
    let bao = testkit::openbao().await;
    let ca = uuid::Uuid::new_v4().simple();
    let agent_token = format!("K10{ca}::node:{}", uuid::Uuid::new_v4().simple());
    let server_token = format!("K10{ca}::server:{}", uuid::Uuid::new_v4().simple());
    bao.kv_put(
        "homestation/k3s",
        serde_json::json!({ "agent_token": agent_token, "node-token": server_token }),
    )
    .await;

    let inventory_db = testkit::database().await;
    let inventory = inventory::Application::build(inventory::Config {
        http: HttpSettings::with_port(0),
        grpc: HttpSettings::with_port(0),
        database: service_kit::DatabaseSettings {
            url: SecretString::from(inventory_db.url.clone()),
            ..Default::default()
        },
        nats: env.nats("inventory"),
        auth: env.auth(),
        ..Default::default()
    })
    .await
    .expect("inventory builds");
    let registry = edge_registry::Application::build(edge_registry::Config {
        http: HttpSettings::with_port(0),
        enrol: HttpSettings::with_port(0),
        database: env.database(),
        nats: env.nats("edge-registry"),
        auth: env.auth(),
        callout: edge_registry::bus_access::CalloutSettings {
            issuer_seed: Some(env.bus.issuer_seed()),
            ..Default::default()
        },
        // Names are checked against inventory over gRPC, with a Viewer token.
        inventory: edge_registry::names::InventorySettings {
            grpc_url: Some(format!("http://{}", inventory.grpc_addr())),
            token: Some(SecretString::from(env.tokens.viewer.clone())),
        },
        vault: VaultSettings {
            address: bao.address.clone(),
            token: SecretString::from(bao.root_token.clone()),
            kv_mount: "secret".into(),
        },
        k3s: edge_registry::K3sSettings {
            server_url: "https://100.64.0.1:6443".into(),
            ..Default::default()
        },
        liveness,
        ..Default::default()
    })
    .await
    .expect("edge-registry builds");
    let registry_url = format!("http://{}", registry.http_addr());
    let enrol_url = format!("http://{}", registry.enrol_addr());
    let inventory_url = format!("http://{}", inventory.http_addr());
    let js = env.bus.jetstream().await;
    let registry_db = sqlx::PgPool::connect(&env.db.url).await.unwrap();
    Edge {
        registry: registry_url,
        enrol: enrol_url,
        inventory: inventory_url,
        agent_token,
        server_token,
        bao,
        client: testkit::http_client(),
        js,
        registry_db,
        apps: vec![testkit::spawn(inventory), testkit::spawn(registry)],
        env,
    }
}

impl Edge {
    pub async fn create_token(&self, body: serde_json::Value) -> (String, String) {
        let response = self
            .client
            .post(format!("{}/v1/join-tokens", self.registry))
            .bearer_auth(&self.env.tokens.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let created: serde_json::Value = response.json().await.unwrap();
        (
            created["id"].as_str().unwrap().to_owned(),
            created["token"].as_str().unwrap().to_owned(),
        )
    }

    /// An enrolment body as the agent sends it, for a recorded Orin named `name`, with a key of its own.
    pub fn enrolment(token: &str, name: &str) -> serde_json::Value {
        Self::enrolment_with(&edge_agent::key::NodeKey::generate(), token, name)
    }

    /// An enrolment body signed by `key`.
    pub fn enrolment_with(
        key: &edge_agent::key::NodeKey,
        token: &str,
        name: &str,
    ) -> serde_json::Value {
        serde_json::json!({
            "public_key": key.public(),
            "proof": key.prove(token, name),
            "token": token,
            "name": name,
            "tailscale": {"ip": "100.101.102.103", "dns_name": format!("{name}.tail1234.ts.net")},
            "facts": {"model": "NVIDIA Jetson AGX Orin Developer Kit", "jetpack": "6.0", "l4t": "36.3.0", "cuda": "12.2",
                      "gpu_name": "Orin (nvgpu)", "memory_bytes": 65879896064u64, "architecture": "aarch64"}
        })
    }

    pub async fn enroll(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/enroll", self.enrol))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, base: &str, path: &str) -> serde_json::Value {
        let response = self
            .client
            .get(format!("{base}{path}"))
            .bearer_auth(&self.env.tokens.admin)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn metrics(&self, base: &str) -> String {
        self.client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until inventory shows `node` with `check` true.
    pub async fn inventory_node(
        &self,
        node: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        testkit::eventually(
            &format!("inventory to show {node}"),
            Duration::from_secs(15),
            || async {
                let response = self
                    .client
                    .get(format!("{}/v1/nodes/{node}", self.inventory))
                    .bearer_auth(&self.env.tokens.viewer)
                    .send()
                    .await
                    .ok()?;
                let body: serde_json::Value = response.json().await.ok()?;
                check(&body).then_some(body)
            },
        )
        .await
    }

    pub async fn stop(self) {
        for app in self.apps {
            app.stop().await.expect("clean stop");
        }
    }
}
