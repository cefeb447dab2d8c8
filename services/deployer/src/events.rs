//! What the deployer says on the bus: one `deploy.v1.*` event per change of a deployment's state.

use bus::Event;

use crate::argo::Application;
use crate::domain::DeploymentStatus;

/// The source name on every event the deployer publishes.
pub const SOURCE: &str = "deployer";

/// The event announcing that the app's deployment of `revision` moved to `to`; none for `requested`
/// and `failed`, which nobody is told about.
pub fn deployment(
    to: DeploymentStatus,
    app: &Application,
    revision: &str,
    reason: Option<&str>,
) -> Option<Event> {
    let deployment = bus::Deployment {
        app: app.name().to_owned(),
        namespace: app.namespace().to_owned(),
        revision: revision.to_owned(),
        reason: reason.map(str::to_owned),
    };
    Some(match to {
        DeploymentStatus::Synced => Event::DeploySynced(deployment),
        DeploymentStatus::Healthy => Event::DeployHealthy(deployment),
        DeploymentStatus::Degraded => Event::DeployDegraded(deployment),
        DeploymentStatus::RolledBack => Event::DeployRolledBack(deployment),
        DeploymentStatus::Requested | DeploymentStatus::Failed => return None,
    })
}
