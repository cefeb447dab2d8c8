//! edge-registry: one-time join tokens, enrolment of edge nodes (K3s agent config over the tailnet), liveness.

pub mod api;
pub mod bus_access;
pub mod domain;
pub mod kube_nodes;
pub mod liveness;
pub mod names;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use service_core::Core;
use service_kit::auth::AuthSettings;
use service_kit::{DatabaseSettings, HttpSettings, NatsSettings, Shutdown, VaultSettings};

use crate::api::{AgentSettings, AgentTokenReader};
use crate::bus_access::{CalloutSettings, NodeCredentials};
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
    /// Where the cluster's agent token is in Vault's KV v2 (`vault.kv_mount`), and under which key. The
    /// K3s server token is never read: whoever holds it is cluster-admin in effect.
    pub agent_token_path: String,
    pub agent_token_key: String,
}

impl Default for K3sSettings {
    fn default() -> Self {
        Self {
            server_url: "https://100.64.0.1:6443".into(),
            flannel_iface: "tailscale0".into(),
            agent_token_path: "homestation/k3s".into(),
            agent_token_key: "agent_token".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    /// Enrolment's own listener, the only port the tailnet reaches: `POST /v1/enroll` and nothing else
    /// (no route there takes a human's identity).
    pub enrol: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub vault: VaultSettings,
    pub k3s: K3sSettings,
    pub liveness: LivenessSettings,
    pub kube: kube_nodes::KubeSettings,
    /// How edge nodes are admitted to the bus (the auth callout this service answers).
    pub callout: CalloutSettings,
    /// Where names are checked before a node may take one.
    pub inventory: names::InventorySettings,
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
            enrol: HttpSettings::with_port(8088),
            database: DatabaseSettings::local("edge_registry"),
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            vault: VaultSettings::default(),
            k3s: K3sSettings::default(),
            liveness: LivenessSettings::default(),
            kube: kube_nodes::KubeSettings::default(),
            callout: CalloutSettings::default(),
            inventory: names::InventorySettings::default(),
            agent_nats_url: None,
            max_token_ttl_secs: 7 * 24 * 3600,
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] service_core::Error),
    #[error("{0}")]
    Config(String),
    #[error("loading the fleet")]
    Load(#[from] sqlx::Error),
    #[error("connecting to the Kubernetes API (kube.enabled is set)")]
    Kube(#[source] kube::Error),
}

pub struct Application {
    core: Core,
    enrol: tokio::net::TcpListener,
    heartbeats: async_nats::Subscriber,
    agent_token: AgentTokenReader,
    credentials: Arc<NodeCredentials>,
    config: Config,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.core.http_addr()
    }

    /// Where agents enrol (the tailnet's one door).
    pub fn enrol_addr(&self) -> SocketAddr {
        self.enrol
            .local_addr()
            .expect("bound listener has an address")
    }
}

impl service_kit::Service for Application {
    const NAME: &'static str = "edge-registry";
    type Config = Config;
    type Error = Error;

    async fn build(config: Config) -> Result<Self, Error> {
        let vault = config
            .vault
            .client()
            .map_err(|e| Error::Config(e.to_string()))?;
        let agent_token = AgentTokenReader {
            client: Arc::new(vault),
            mount: config.vault.kv_mount.clone(),
            path: config.k3s.agent_token_path.clone(),
            key: config.k3s.agent_token_key.clone(),
        };
        let core = Core::open(
            Self::NAME,
            service_core::settings!(config),
            &sqlx::migrate!("./migrations"),
        )
        .await?;
        let enrol = service_core::bind("enrol", &config.enrol).await?;
        let heartbeats = liveness::subscribe(&core.bus.client, &core.bus.namespace)
            .await
            .map_err(|e| Error::Config(format!("subscribing to heartbeats: {e}")))?;
        let credentials = NodeCredentials::new(core.pool.clone(), &config.callout)
            .map(Arc::new)
            .map_err(Error::Config)?;
        Ok(Self {
            core,
            enrol,
            heartbeats,
            agent_token,
            credentials,
            config,
        })
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), Error> {
        let core = self.core;
        let (pool, outbox) = (core.pool.clone(), core.outbox.clone());
        let fleet = Fleet::load(&pool, FleetMetrics::new(&core.metrics)).await?;
        let namespace = core.bus.namespace.clone();
        let credentials = self.credentials;
        // Answering before serving: an agent told to connect is admitted from the first heartbeat on.
        let callout = bus::callout::start(
            core.bus.client.clone(),
            namespace.clone(),
            credentials.issuer.clone(),
            credentials.clone(),
            credentials.ttl,
            shutdown.clone(),
        )
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
        let state = api::AppState {
            pool: pool.clone(),
            outbox: outbox.clone(),
            fleet: fleet.clone(),
            agent_token: self.agent_token,
            credentials,
            k3s: self.config.k3s.clone(),
            agents: AgentSettings {
                nats_url: self
                    .config
                    .agent_nats_url
                    .clone()
                    .unwrap_or_else(|| self.config.nats.url.clone()),
                nats_namespace: namespace.as_str().to_owned(),
                heartbeat_interval_secs: self.config.liveness.heartbeat_interval_secs,
            },
            max_ttl_secs: self.config.max_token_ttl_secs,
            kube_enabled: self.config.kube.enabled,
            names: names::NameCheck::new(&self.config.inventory).map_err(Error::Config)?,
        };
        let mut running = core.serve(
            api::router(state.clone()),
            service_kit::openapi::router(api::openapi()),
            &shutdown,
        );
        running.serve_machine_port("enrol", self.enrol, api::enrol_router(state));
        running.spawn("bus-callout", callout);
        running.spawn(
            "heartbeats",
            liveness::listen(self.heartbeats, namespace, fleet.clone(), shutdown.clone()),
        );
        let kube = self.config.kube;
        running.spawn(
            "liveness",
            liveness::watch(
                pool.clone(),
                fleet,
                self.config.liveness,
                outbox,
                shutdown.clone(),
            ),
        );
        if kube.enabled {
            let client = kube::Client::try_default().await.map_err(Error::Kube)?;
            let reconciler = kube_nodes::Reconciler::new(client, pool, kube.cordon_offline);
            let every = Duration::from_secs(kube.reconcile_interval_secs.max(1));
            running.spawn("kube-nodes", reconciler.run(every, shutdown));
        }
        Ok(running.until_stopped().await?)
    }
}
