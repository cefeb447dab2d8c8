//! The events @@crate@@ handles: each `deploy.v1.*` event is recorded once, whatever the redeliveries.

use bus::{Envelope, Event, HandleError, Handler};

pub struct Recorder {
    pub pool: sqlx::PgPool,
}

impl Handler for Recorder {
    async fn handle(&self, envelope: Envelope) -> Result<(), HandleError> {
        let (status, deployment) = match &envelope.event {
            Event::DeploySynced(d) => ("synced", d),
            Event::DeployHealthy(d) => ("healthy", d),
            Event::DeployDegraded(d) => ("degraded", d),
            Event::DeployRolledBack(d) => ("rolled_back", d),
            _ => return Ok(()),
        };
        sqlx::query(
            "INSERT INTO deployments_heard (event_id, app, revision, status, occurred_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(envelope.id)
        .bind(&deployment.app)
        .bind(&deployment.revision)
        .bind(status)
        .bind(envelope.occurred_at)
        .execute(&self.pool)
        .await
        .map_err(|e| HandleError::Retry(format!("database: {e}")))?;
        Ok(())
    }
}
