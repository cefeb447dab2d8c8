//! What every HomeStation service shares: config, telemetry, serving, health, metrics, auth, errors and shutdown.

pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod health;
pub mod http;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod telemetry;

pub use auth::{Authenticator, Identity, Role};
pub use config::{load_config, DatabaseSettings, HttpSettings, NatsSettings};
pub use error::ApiError;
pub use service::{run, Service};
pub use shutdown::Shutdown;
