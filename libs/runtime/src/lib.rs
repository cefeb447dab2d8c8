//! What every HomeStation process shares, the edge agent on a Jetson as much as a service in the cluster:
//! [`Shutdown`] on SIGTERM/Ctrl-C with a grace period, logs and traces ([`telemetry`]), the TLS provider,
//! and the bus's inbox rule. Services build on `service-kit` (HTTP, auth, database, Vault, metrics), which
//! re-exports this crate; the agent links only this.

pub mod shutdown;
pub mod telemetry;

pub use shutdown::Shutdown;

/// Makes ring the process's TLS provider (the only crypto library in the build); idempotent.
/// HTTP clients (reqwest, the OTLP exporter) need one before they are built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The prefix of `user`'s reply subjects on NATS: the bus lets each identity subscribe under its own only.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX.{user}")
}
