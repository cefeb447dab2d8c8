//! deployer: Git push webhooks become Argo CD syncs of exactly the Applications a push changed, and each
//! deployment's timeline is recorded. (Watching Applications, rollback and commit-to-live metrics come next.)

pub mod api;
pub mod argo;
pub mod mapping;
pub mod sync;
pub mod watch;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use service_kit::auth::AuthSettings;
use service_kit::http::{Kit, service_router};
use service_kit::metrics::Metrics;
use service_kit::shutdown::Tasks;
use service_kit::{Authenticator, DatabaseSettings, HttpSettings, NatsSettings, Shutdown};
use tokio::net::TcpListener;

/// Argo CD's REST API, used for syncs instead of patching Applications through the Kubernetes API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoApiSettings {
    pub url: String,
    /// An Argo CD API token with `sync` on the applications.
    pub token: SecretString,
}

/// A Git repository whose pushes deploy, and the secret its webhook is signed with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    pub url: String,
    /// GitHub's and Gitea's webhook secret, or GitLab's secret token.
    pub secret: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub repositories: Vec<Repository>,
    /// Where Argo CD's Application objects live.
    pub argocd_namespace: String,
    /// Ask for syncs through Argo CD's REST API rather than the Kubernetes API.
    pub argocd_api: Option<ArgoApiSettings>,
    /// How long a synced app has to become Healthy before it is rolled back.
    pub health_deadline_secs: u64,
    /// Follow Applications (timeline, events, rollback). Off, the deployer only turns webhooks into syncs.
    pub watch: bool,
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8086),
            database: DatabaseSettings {
                url: SecretString::from("postgres://postgres@127.0.0.1:5432/deployer"),
                ..Default::default()
            },
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            repositories: Vec::new(),
            argocd_namespace: "argocd".into(),
            argocd_api: None,
            health_deadline_secs: 300,
            watch: true,
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
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error(transparent)]
    Task(#[from] service_kit::shutdown::TaskError),
    #[error("connecting to the Kubernetes API")]
    Kube(#[source] kube::Error),
}

pub struct Application {
    http: TcpListener,
    bus: bus::Connection,
    auth: Authenticator,
    deployer: Arc<api::Deployer>,
    config: Config,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Builds with a given Kubernetes client (tests pass a fake one).
    pub async fn with_kube_client(config: Config, client: kube::Client) -> Result<Self, Error> {
        let auth = Authenticator::new(config.auth.clone()).map_err(Error::Config)?;
        if let Some(r) = config
            .repositories
            .iter()
            .find(|r| secrecy::ExposeSecret::expose_secret(&r.secret).len() < 16)
        {
            return Err(Error::Config(format!(
                "repositories: the webhook secret of {} is shorter than 16 characters",
                r.url
            )));
        }
        let pool = config
            .database
            .migrated_pool(&sqlx::migrate!("./migrations"))
            .await?;
        let bus = bus::Connection::open(&config.nats, <Self as service_kit::Service>::NAME).await?;
        let applications: kube::Api<argo::Application> =
            kube::Api::namespaced(client, &config.argocd_namespace);
        let syncer = match &config.argocd_api {
            Some(a) => sync::Syncer::Rest {
                http: {
                    service_kit::install_crypto_provider();
                    reqwest::Client::new()
                },
                url: a.url.clone(),
                token: a.token.clone(),
            },
            None => sync::Syncer::Kube(Box::new(applications.clone())),
        };
        let deployer = Arc::new(api::Deployer {
            pool,
            applications,
            syncer,
            repositories: config.repositories.clone(),
        });
        let http = config.http.bind().await.map_err(Error::Bind)?;
        Ok(Self {
            http,
            bus,
            auth,
            deployer,
            config,
        })
    }
}

impl service_kit::Service for Application {
    const NAME: &'static str = "deployer";
    type Config = Config;
    type Error = Error;

    async fn build(config: Config) -> Result<Self, Error> {
        let client = kube::Client::try_default().await.map_err(Error::Kube)?;
        Self::with_kube_client(config, client).await
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), Error> {
        tracing::info!(http = %self.http_addr(), repositories = self.config.repositories.len(), "deployer listening");
        let metrics = Metrics::new(Self::NAME);
        let pool = self.deployer.pool.clone();
        let watcher = Arc::new(watch::Watcher {
            pool: pool.clone(),
            applications: self.deployer.applications.clone(),
            syncer: self.deployer.syncer.clone(),
            outbox: Arc::new(tokio::sync::Notify::new()),
            metrics: watch::DeployMetrics::new(&metrics),
            health_deadline: Duration::from_secs(self.config.health_deadline_secs),
        });
        let bus_metrics = bus::BusMetrics::new(&metrics);
        let kit = Kit::new(self.auth, metrics, pool.clone(), self.bus.client.clone());
        let router = service_router(
            api::router(self.deployer.clone()),
            api::public_router(self.deployer.clone()),
            kit,
        );
        let mut tasks = Tasks::new();
        tasks.spawn(
            "http",
            service_kit::http::serve(self.http, router, shutdown.clone()),
        );
        if self.config.watch {
            tasks.spawn("watch", watcher.clone().run(shutdown.clone()));
            tasks.spawn(
                "deadlines",
                watcher.clone().check_deadlines(shutdown.clone()),
            );
        }
        let publisher = self.bus.publisher(Self::NAME, bus_metrics);
        tasks.spawn(
            "outbox",
            bus::outbox::relay(
                pool.clone(),
                publisher,
                watcher.outbox.clone(),
                shutdown.clone(),
            ),
        );
        tasks
            .run(
                shutdown,
                Duration::from_secs(self.config.shutdown_grace_secs),
            )
            .await?;
        pool.close().await;
        Ok(())
    }
}
