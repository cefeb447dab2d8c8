//! The events @@crate@@ handles: each `deploy.v1.*` event is recorded once, whatever the redeliveries.

use bus::{Envelope, HandleError, Handler};

use crate::domain::HeardStatus;
use crate::metrics::Metrics;
use crate::store;

pub struct Recorder {
    pub pool: sqlx::PgPool,
    pub metrics: Metrics,
}

impl Handler for Recorder {
    async fn handle(&self, envelope: Envelope) -> Result<(), HandleError> {
        let Some((status, deployment)) = HeardStatus::of(&envelope.event) else {
            return Ok(());
        };
        let recorded = store::record(
            &self.pool,
            envelope.id,
            deployment,
            status,
            envelope.occurred_at,
        )
        .await
        .map_err(|e| HandleError::Retry(format!("database: {e}")))?;
        if recorded {
            self.metrics.deployments_heard.inc();
        }
        Ok(())
    }
}
