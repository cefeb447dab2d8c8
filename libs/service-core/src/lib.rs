//! The body every HomeStation service shares: what it opens before serving (its HTTP listener, a migrated
//! database, the bus, auth, metrics, the outbox) and what it runs until stopped (HTTP, the outbox relay,
//! its consumers and tasks, draining within the grace period, closing the pool last).
//!
//! A service's `Application::build` calls [`Core::open`] and adds what is its own; `run_until_stopped`
//! calls [`Core::serve`] with its routes, spawns its own tasks on the returned [`Running`] and awaits
//! [`Running::until_stopped`]. This crate sits above `service-kit` and `bus` because it joins the two.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bus::{BusMetrics, ConsumerSpec, Handler};
use service_kit::auth::AuthSettings;
use service_kit::http::{Kit, service_router};
use service_kit::metrics::Metrics;
use service_kit::shutdown::{TaskError, Tasks};
use service_kit::{Authenticator, DatabaseSettings, HttpSettings, NatsSettings, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The parts of a service's config the core opens; [`settings!`] borrows them from a config that
/// names them as every service does (`http`, `database`, `nats`, `auth`, `shutdown_grace_secs`).
pub struct Settings<'a> {
    pub http: &'a HttpSettings,
    pub database: &'a DatabaseSettings,
    pub nats: &'a NatsSettings,
    pub auth: &'a AuthSettings,
    /// How long in-flight requests and events may take to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
}

/// `service_core::settings!(config)`: the [`Settings`] of a service config with the usual field names.
#[macro_export]
macro_rules! settings {
    ($config:expr) => {
        $crate::Settings {
            http: &$config.http,
            database: &$config.database,
            nats: &$config.nats,
            auth: &$config.auth,
            shutdown_grace_secs: $config.shutdown_grace_secs,
        }
    };
}

/// Why a service could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Auth(String),
    #[error("binding {what}")]
    Bind {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] service_kit::DatabaseError),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// Binds one more listener (inventory's gRPC port), naming it in the error.
pub async fn bind(what: &'static str, settings: &HttpSettings) -> Result<TcpListener, Error> {
    settings
        .bind()
        .await
        .map_err(|source| Error::Bind { what, source })
}

/// What a service has opened before it serves.
pub struct Core {
    name: &'static str,
    http: TcpListener,
    grace: Duration,
    pub pool: sqlx::PgPool,
    pub bus: bus::Connection,
    pub auth: Authenticator,
    /// The service's registry: its own metric families register here before [`Core::serve`].
    pub metrics: Metrics,
    pub bus_metrics: BusMetrics,
    /// Woken after a transaction enqueues events, so the outbox relay publishes them at once.
    pub outbox: Arc<Notify>,
}

impl Core {
    /// Checks auth, migrates the database, connects to the bus (streams ensured) and binds HTTP.
    pub async fn open(
        name: &'static str,
        settings: Settings<'_>,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<Self, Error> {
        let auth = Authenticator::new(settings.auth.clone()).map_err(Error::Auth)?;
        let pool = settings.database.migrated_pool(migrator).await?;
        let bus = bus::Connection::open(settings.nats, name).await?;
        let http = bind("http", settings.http).await?;
        let metrics = Metrics::new(name);
        let bus_metrics = BusMetrics::new(&metrics);
        Ok(Self {
            name,
            http,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
            pool,
            bus,
            auth,
            metrics,
            bus_metrics,
            outbox: Arc::new(Notify::new()),
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Starts serving `api` (an identity needed) and `public` beside `/healthz`, `/readyz` and `/metrics`,
    /// and relays the outbox; the service adds its own tasks to the [`Running`] it gets back.
    pub fn serve(self, api: Router, public: Router, shutdown: &Shutdown) -> Running {
        tracing::info!(http = %self.http_addr(), "{} listening", self.name);
        let kit = Kit::new(
            self.auth,
            self.metrics,
            self.pool.clone(),
            self.bus.client.clone(),
        );
        let mut tasks = Tasks::new();
        tasks.spawn(
            "http",
            service_kit::http::serve(
                self.http,
                service_router(api, public, kit.clone()),
                shutdown.clone(),
            ),
        );
        let publisher = self.bus.publisher(self.name, self.bus_metrics.clone());
        tasks.spawn(
            "outbox",
            bus::outbox::relay(self.pool.clone(), publisher, self.outbox, shutdown.clone()),
        );
        Running {
            tasks,
            kit,
            pool: self.pool,
            bus: self.bus,
            bus_metrics: self.bus_metrics,
            shutdown: shutdown.clone(),
            grace: self.grace,
        }
    }
}

/// A serving service: add tasks and consumers, then wait for the end with [`Running::until_stopped`].
pub struct Running {
    tasks: Tasks,
    kit: Kit,
    pool: sqlx::PgPool,
    bus: bus::Connection,
    bus_metrics: BusMetrics,
    shutdown: Shutdown,
    grace: Duration,
}

impl Running {
    /// Runs `work` beside the others; its failure stops the service.
    pub fn spawn<F, E>(&mut self, name: &'static str, work: F)
    where
        F: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.tasks.spawn(name, work);
    }

    /// Serves exactly `routes` on a listener of its own (`service_kit::http::machine_router`): for callers
    /// who prove themselves in the request, kept apart from the routes that take a human's identity.
    pub fn serve_machine_port(
        &mut self,
        name: &'static str,
        listener: TcpListener,
        routes: Router,
    ) {
        tracing::info!(
            port = name,
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            "serving a machine port"
        );
        let router = service_kit::http::machine_router(routes, &self.kit);
        self.tasks.spawn(
            name,
            service_kit::http::serve(listener, router, self.shutdown.clone()),
        );
    }

    /// Consumes the streams of `spec` with `handler` (acks, retries, dead letters: see `bus::run_consumers`).
    pub fn consume<H: Handler>(&mut self, name: &'static str, spec: ConsumerSpec, handler: Arc<H>) {
        self.tasks.spawn(
            name,
            bus::run_consumers(
                self.bus.js.clone(),
                self.bus.namespace.clone(),
                spec,
                handler,
                self.bus_metrics.clone(),
                self.shutdown.clone(),
            ),
        );
    }

    /// Serves until the shutdown signal or a task's failure, drains within the grace period, closes the pool.
    pub async fn until_stopped(self) -> Result<(), Error> {
        let outcome = self.tasks.run(self.shutdown, self.grace).await;
        self.pool.close().await;
        Ok(outcome?)
    }
}
