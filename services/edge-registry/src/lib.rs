//! edge-registry: one-time join tokens, enrolment of edge nodes (K3s agent config over the tailnet), liveness.

pub mod api;
pub mod domain;
pub mod kube_nodes;
pub mod liveness;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bus::BusMetrics;
use serde::Deserialize;
use service_kit::auth::AuthSettings;
use service_kit::http::{Kit, service_router};
use service_kit::metrics::Metrics;
use service_kit::shutdown::Tasks;
use service_kit::{
    Authenticator, DatabaseSettings, HttpSettings, NatsSettings, Shutdown, VaultSettings,
};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::api::{AgentSettings, NodeTokenReader};
use crate::liveness::{Fleet, FleetMetrics, LivenessSettings};

/// The source name on every event edge-registry publishes.
pub const SOURCE: &str = "edge-registry";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct K3sSettings {
    /// The K3s server on the control node's tailnet address.
    pub server_url: String,
    /// The interface flannel must use: Tailscale's, not the LAN's.
    pub flannel_iface: String,
    /// Where the cluster's node token is in Vault's KV v2 (`vault.kv_mount`), and under which key.
    pub node_token_path: String,
    pub node_token_key: String,
}

impl Default for K3sSettings {
    fn default() -> Self {
        Self {
            server_url: "https://100.64.0.1:6443".into(),
            flannel_iface: "tailscale0".into(),
            node_token_path: "homestation/k3s".into(),
            node_token_key: "node-token".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub vault: VaultSettings,
    pub k3s: K3sSettings,
    pub liveness: LivenessSettings,
    pub kube: kube_nodes::KubeSettings,
    /// The NATS URL agents publish heartbeats to (reachable over the tailnet); defaults to `nats.url`.
    pub agent_nats_url: Option<String>,
    /// The longest a join token may live.
    pub max_token_ttl_secs: u64,
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8082),
            database: DatabaseSettings {
                url: secrecy::SecretString::from(
                    "postgres://postgres@127.0.0.1:5432/edge_registry",
                ),
                ..Default::default()
            },
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            vault: VaultSettings::default(),
            k3s: K3sSettings::default(),
            liveness: LivenessSettings::default(),
            kube: kube_nodes::KubeSettings::default(),
            agent_nats_url: None,
            max_token_ttl_secs: 7 * 24 * 3600,
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("binding http")]
    Bind(#[source] std::io::Error),
    #[error(transparent)]
    Database(#[from] service_kit::DatabaseError),
    #[error("loading the fleet")]
    Load(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error(transparent)]
    Task(#[from] service_kit::shutdown::TaskError),
    #[error("connecting to the Kubernetes API (kube.enabled is set)")]
    Kube(#[source] kube::Error),
}

pub struct Application {
    http: TcpListener,
    heartbeats: async_nats::Subscriber,
    pool: sqlx::PgPool,
    bus: bus::Connection,
    auth: Authenticator,
    node_token: NodeTokenReader,
    config: Config,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("bound listener has an address")
    }
}

impl service_kit::Service for Application {
    const NAME: &'static str = "edge-registry";
    type Config = Config;
    type Error = Error;

    async fn build(config: Config) -> Result<Self, Error> {
        let auth = Authenticator::new(config.auth.clone()).map_err(Error::Config)?;
        let pool = config
            .database
            .migrated_pool(&sqlx::migrate!("./migrations"))
            .await?;
        let bus = bus::Connection::open(&config.nats, Self::NAME).await?;
        let node_token = NodeTokenReader {
            client: Arc::new(
                config
                    .vault
                    .client()
                    .map_err(|e| Error::Config(e.to_string()))?,
            ),
            mount: config.vault.kv_mount.clone(),
            path: config.k3s.node_token_path.clone(),
            key: config.k3s.node_token_key.clone(),
        };
        let http = config.http.bind().await.map_err(Error::Bind)?;
        let heartbeats = liveness::subscribe(&bus.client, &bus.namespace)
            .await
            .map_err(|e| Error::Config(format!("subscribing to heartbeats: {e}")))?;
        Ok(Self {
            http,
            heartbeats,
            pool,
            bus,
            auth,
            node_token,
            config,
        })
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), Error> {
        tracing::info!(http = %self.http_addr(), "edge-registry listening");
        let metrics = Metrics::new(Self::NAME);
        let bus_metrics = BusMetrics::new(&metrics);
        let fleet = Fleet::load(&self.pool, FleetMetrics::new(&metrics)).await?;
        let outbox = Arc::new(Notify::new());
        let kit = Kit::new(
            self.auth.clone(),
            metrics,
            self.pool.clone(),
            self.bus.client.clone(),
        );
        let state = api::AppState {
            pool: self.pool.clone(),
            outbox: outbox.clone(),
            fleet: fleet.clone(),
            node_token: self.node_token,
            k3s: self.config.k3s.clone(),
            agents: AgentSettings {
                nats_url: self
                    .config
                    .agent_nats_url
                    .clone()
                    .unwrap_or_else(|| self.config.nats.url.clone()),
                nats_namespace: self.bus.namespace.as_str().to_owned(),
                heartbeat_interval_secs: self.config.liveness.heartbeat_interval_secs,
            },
            max_ttl_secs: self.config.max_token_ttl_secs,
        };
        let router = service_router(api::router(state.clone()), api::public_router(state), kit);

        let mut tasks = Tasks::new();
        tasks.spawn(
            "http",
            service_kit::http::serve(self.http, router, shutdown.clone()),
        );
        tasks.spawn(
            "heartbeats",
            liveness::listen(
                self.heartbeats,
                self.bus.namespace.clone(),
                fleet.clone(),
                shutdown.clone(),
            ),
        );
        tasks.spawn(
            "liveness",
            liveness::watch(
                self.pool.clone(),
                fleet,
                self.config.liveness,
                outbox.clone(),
                shutdown.clone(),
            ),
        );
        if self.config.kube.enabled {
            let client = kube::Client::try_default().await.map_err(Error::Kube)?;
            let reconciler = kube_nodes::Reconciler {
                nodes: kube::Api::all(client),
                pool: self.pool.clone(),
                cordon_offline: self.config.kube.cordon_offline,
            };
            let every = Duration::from_secs(self.config.kube.reconcile_interval_secs.max(1));
            tasks.spawn("kube-nodes", reconciler.run(every, shutdown.clone()));
        }
        let publisher = self.bus.publisher(Self::NAME, bus_metrics);
        tasks.spawn(
            "outbox",
            bus::outbox::relay(self.pool.clone(), publisher, outbox, shutdown.clone()),
        );
        tasks
            .run(
                shutdown,
                Duration::from_secs(self.config.shutdown_grace_secs),
            )
            .await?;
        self.pool.close().await;
        Ok(())
    }
}
