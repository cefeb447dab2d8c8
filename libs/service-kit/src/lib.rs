//! What every HomeStation service shares: config, telemetry, serving, health, metrics, auth, errors and shutdown.

pub mod auth;
pub mod config;
pub mod cron;
pub mod error;
pub mod extract;
pub mod health;
pub mod http;
pub mod metrics;
pub mod names;
pub mod service;
pub mod shutdown;
pub mod telemetry;

pub use auth::{Authenticator, Identity, Role};
pub use config::{
    DatabaseError, DatabaseSettings, HttpSettings, NatsSettings, VaultSettings, load_config,
};
pub use error::ApiError;
pub use service::{Service, run};
pub use shutdown::Shutdown;

/// Makes ring the process's TLS provider (the only crypto library in the build); idempotent.
/// HTTP clients (reqwest, the OTLP exporter) need one before they are built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
