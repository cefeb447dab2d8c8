//! secrets-rotator: rotates Vault KV v2 secrets and PostgreSQL logins on schedule or on demand, tells
//! consumers (`secrets.v1.rotated`, never the value), rolls Deployments, waits for acknowledgements,
//! verifies, and restores the previous value when verification fails. See `engine` for the state machine.

pub mod api;
pub mod database;
pub mod engine;
pub mod generator;
pub mod kv;
pub mod metrics;
pub mod policy;
pub mod rollout;
pub mod vault_policy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bus::{ConsumerSettings, ConsumerSpec, Stream};
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

use crate::engine::{AckHandler, Rotator};
use crate::policy::PolicySettings;

const CONSUMER: &str = "secrets-rotator";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeSettings {
    /// Roll the policies' Deployments through the Kubernetes API (in-cluster or kubeconfig credentials).
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    /// The rotator's Vault token needs the policy `secrets_rotator_policy` generates.
    pub vault: VaultSettings,
    pub kube: KubeSettings,
    pub consumer: ConsumerSettings,
    pub policies: Vec<PolicySettings>,
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8085),
            database: DatabaseSettings {
                url: secrecy::SecretString::from(
                    "postgres://postgres@127.0.0.1:5432/secrets_rotator",
                ),
                ..Default::default()
            },
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            vault: VaultSettings::default(),
            kube: KubeSettings::default(),
            consumer: ConsumerSettings::default(),
            policies: Vec::new(),
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error("binding http")]
    Bind(#[source] std::io::Error),
    #[error(transparent)]
    Database(#[from] service_kit::DatabaseError),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error("recovering interrupted rotations")]
    Recover(#[from] engine::RotateError),
    #[error(transparent)]
    Task(#[from] service_kit::shutdown::TaskError),
    #[error("connecting to the Kubernetes API (kube.enabled is set)")]
    Kube(#[source] kube::Error),
}

pub struct Application {
    http: TcpListener,
    bus: bus::Connection,
    auth: Authenticator,
    /// Built here, put to work (with the service's shutdown) in `run_until_stopped`.
    rotator: Rotator,
    metrics: Metrics,
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
    const NAME: &'static str = "secrets-rotator";
    type Config = Config;
    type Error = Error;

    async fn build(config: Config) -> Result<Self, Error> {
        let auth = Authenticator::new(config.auth.clone()).map_err(Error::Config)?;
        let policies = policy::parse_all(&config.policies)?;
        let vault = config
            .vault
            .client()
            .map_err(|e| Error::Config(e.to_string()))?;
        let pool = config
            .database
            .migrated_pool(&sqlx::migrate!("./migrations"))
            .await?;
        let bus = bus::Connection::open(&config.nats, Self::NAME).await?;
        let kube = if config.kube.enabled {
            Some(kube::Client::try_default().await.map_err(Error::Kube)?)
        } else {
            None
        };
        let metrics = Metrics::new(Self::NAME);
        let rotator = Rotator {
            pool,
            kv: kv::Kv::new(Arc::new(vault), &config.vault.kv_mount),
            policies: policies
                .into_iter()
                .map(|p| (p.name.as_str().to_owned(), p))
                .collect(),
            outbox: Arc::new(Notify::new()),
            http: reqwest::Client::new(),
            kube,
            metrics: metrics::RotatorMetrics::new(&metrics),
            // Replaced by the service's own in `run_until_stopped`.
            shutdown: Shutdown::new(),
        };
        let http = config.http.bind().await.map_err(Error::Bind)?;
        Ok(Self {
            http,
            bus,
            auth,
            rotator,
            metrics,
            config,
        })
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), Error> {
        tracing::info!(http = %self.http_addr(), policies = self.rotator.policies.len(), "secrets-rotator listening");
        let rotator = Arc::new(Rotator {
            shutdown: shutdown.clone(),
            ..self.rotator
        });
        let bus_metrics = bus::BusMetrics::new(&self.metrics);
        let kit = Kit::new(
            self.auth,
            self.metrics,
            rotator.pool.clone(),
            self.bus.client.clone(),
        );
        let router = service_router(api::router(rotator.clone()), api::public_router(), kit);
        let mut tasks = Tasks::new();
        tasks.spawn(
            "http",
            service_kit::http::serve(self.http, router, shutdown.clone()),
        );
        let spec = ConsumerSpec::with_settings(CONSUMER, &[Stream::Secrets], &self.config.consumer);
        tasks.spawn(
            "acks",
            bus::run_consumers(
                self.bus.js.clone(),
                self.bus.namespace.clone(),
                spec,
                Arc::new(AckHandler {
                    pool: rotator.pool.clone(),
                }),
                bus_metrics.clone(),
                shutdown.clone(),
            ),
        );
        let publisher = self
            .bus
            .publisher(<Self as service_kit::Service>::NAME, bus_metrics);
        tasks.spawn(
            "outbox",
            bus::outbox::relay(
                rotator.pool.clone(),
                publisher,
                rotator.outbox.clone(),
                shutdown.clone(),
            ),
        );
        // Acknowledgements and the outbox run first: resuming a published rotation may wait for them.
        let recovered = rotator.recover().await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "rotations interrupted by the last stop were finished or undone"
            );
        }
        tasks.spawn("scheduler", rotator.clone().schedule());
        tasks
            .run(
                shutdown,
                Duration::from_secs(self.config.shutdown_grace_secs),
            )
            .await?;
        rotator.pool.close().await;
        Ok(())
    }
}
