//! The one startup shape of every service: telemetry → config → build → run until a signal, flush telemetry last.

use std::future::Future;
use std::process::ExitCode;

use serde::de::DeserializeOwned;

use crate::shutdown::Shutdown;
use crate::telemetry;

/// What a service's `Application` implements so that `main` is a single call to [`run`].
pub trait Service: Sized + Send + 'static {
    /// The name used for config variables (`HOMESTATION_<NAME>__…`), logs and traces.
    const NAME: &'static str;
    type Config: DeserializeOwned + Send;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Binds listeners and connects clients; nothing runs until [`Service::run_until_stopped`].
    fn build(config: Self::Config) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// Serves until `shutdown` triggers, then drains within the service's grace period.
    fn run_until_stopped(
        self,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The whole of a service's `main`: a bad config or a failed start exits non-zero with one line on stderr.
pub async fn run<S: Service>(version: &'static str) -> ExitCode {
    let telemetry = telemetry::init(S::NAME, version);
    let outcome = start::<S>().await;
    telemetry.shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{}: {message}", S::NAME);
            ExitCode::FAILURE
        }
    }
}

async fn start<S: Service>() -> Result<(), String> {
    let config: S::Config = crate::config::load_config(S::NAME).map_err(|e| e.to_string())?;
    let app = S::build(config).await.map_err(|e| error_chain(&e))?;
    app.run_until_stopped(Shutdown::on_signals())
        .await
        .map_err(|e| error_chain(&e))
}

/// An error and its sources on one line: `a: b: c`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
