//! What edge-registry says on the bus (`edge.v1.node.*`), always queued in the outbox in the transaction
//! that made the change.

use bus::{Envelope, Event, NodeLiveness};
use sqlx::PgConnection;

use crate::domain::State;

/// The source name on every event edge-registry publishes.
pub const SOURCE: &str = "edge-registry";

/// Queues `event` in the outbox, inside the caller's transaction.
pub async fn announce(tx: &mut PgConnection, event: Event) -> sqlx::Result<()> {
    bus::outbox::enqueue(tx, &Envelope::new(SOURCE, event)).await
}

/// The event a liveness change is announced with: going offline (after `missed` heartbeats) and coming back
/// are; stale, shown but not acted on, is not.
pub fn liveness_changed(from: State, to: State, node: NodeLiveness, missed: i64) -> Option<Event> {
    match (from, to) {
        (_, State::Offline) => Some(Event::NodeOffline(NodeLiveness {
            reason: Some(format!("missed {missed} heartbeats")),
            ..node
        })),
        (State::Offline, _) => Some(Event::NodeOnline(NodeLiveness {
            reason: Some("heartbeats resumed".into()),
            ..node
        })),
        _ => None,
    }
}
