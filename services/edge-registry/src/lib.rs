//! edge-registry: one-time join tokens, enrolment of edge nodes (K3s agent config over the tailnet), liveness.

pub mod api;
pub mod bus_access;
pub mod config;
pub mod domain;
pub mod events;
pub mod kube_nodes;
pub mod liveness;
pub mod metrics;
pub mod names;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use service_core::Core;
use service_kit::Shutdown;

use crate::api::{AgentSettings, AgentTokenReader};
use crate::bus_access::NodeCredentials;
use crate::liveness::Fleet;
use crate::metrics::FleetMetrics;

pub use config::{Config, K3sSettings};

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
