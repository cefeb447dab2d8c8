//! Liveness of the edge fleet: heartbeats update memory only; a ticker turns silence into stale, then offline,
//! writes the transitions (publishing `edge.v1.node.offline|online`) and flushes the latest heartbeats in batches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{Envelope, Event, Namespace, NodeHeartbeat, NodeLiveness};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Deserialize;
use service_kit::Shutdown;
use sqlx::PgPool;
use sqlx::types::Json;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::State;
use crate::metrics::{FleetMetrics, StateLabel};
use crate::{events, store};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessSettings {
    /// How often agents are told to send a heartbeat.
    pub heartbeat_interval_secs: u64,
    /// Missed heartbeats before a node is stale (shown, no event).
    pub stale_after_missed: u32,
    /// Missed heartbeats before a node is offline (event, cordon).
    pub offline_after_missed: u32,
    /// How often silence is checked and heartbeats are written to the database.
    pub check_interval_ms: u64,
}

impl Default for LivenessSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval_secs: 5,
            stale_after_missed: 2,
            offline_after_missed: 4,
            check_interval_ms: 1000,
        }
    }
}

struct Live {
    name: String,
    state: State,
    last_seen: DateTime<Utc>,
    /// The newest heartbeat not yet written to the database.
    unflushed: Option<NodeHeartbeat>,
}

/// The enrolled nodes and when each was last heard from. Only enrolled nodes are in it, so
/// heartbeats from unknown ids cannot make it grow.
#[derive(Clone)]
pub struct Fleet {
    nodes: Arc<Mutex<HashMap<Uuid, Live>>>,
    metrics: FleetMetrics,
}

impl Fleet {
    pub async fn load(pool: &PgPool, metrics: FleetMetrics) -> sqlx::Result<Self> {
        let now = Utc::now();
        let nodes = store::list_nodes(pool)
            .await?
            .into_iter()
            // Every node gets a fresh window after a restart: silence while we were down is not theirs.
            .map(|n| {
                (
                    n.id,
                    Live {
                        name: n.name,
                        state: State::parse(&n.state),
                        last_seen: now,
                        unflushed: None,
                    },
                )
            })
            .collect();
        Ok(Self {
            nodes: Arc::new(Mutex::new(nodes)),
            metrics,
        })
    }

    pub fn enrolled(&self, id: Uuid, name: &str) {
        self.nodes.lock().expect("fleet lock").insert(
            id,
            Live {
                name: name.to_owned(),
                state: State::Online,
                last_seen: Utc::now(),
                unflushed: None,
            },
        );
    }

    /// Drops a removed node: its heartbeats count as unknown from now on, and it is never declared offline.
    pub fn forget(&self, id: Uuid) {
        self.nodes.lock().expect("fleet lock").remove(&id);
    }

    /// Records a heartbeat; false (and counted) when the node is not enrolled.
    pub fn heartbeat(&self, beat: NodeHeartbeat, sent_at: DateTime<Utc>) -> bool {
        let now = Utc::now();
        let known = match self
            .nodes
            .lock()
            .expect("fleet lock")
            .get_mut(&beat.node_id)
        {
            Some(live) => {
                live.last_seen = live.last_seen.max(now);
                live.unflushed = Some(beat);
                true
            }
            None => false,
        };
        if known {
            self.metrics.count("accepted");
            let lag = (now - sent_at).to_std().map_or(0.0, |d| d.as_secs_f64());
            self.metrics.lag.observe(lag);
        } else {
            self.metrics.count("unknown_node");
        }
        known
    }
}

/// Subscribes to every node's heartbeats; done at build so none sent after start is missed.
pub async fn subscribe(
    client: &async_nats::Client,
    ns: &Namespace,
) -> Result<async_nats::Subscriber, async_nats::SubscribeError> {
    client
        .subscribe(ns.subject(bus::Kind::NodeHeartbeat.pattern()))
        .await
}

/// Receives heartbeats on core NATS (no acks: a lost heartbeat is only a late one) until shutdown.
pub async fn listen(
    mut heartbeats: async_nats::Subscriber,
    ns: Namespace,
    fleet: Fleet,
    shutdown: Shutdown,
) -> Result<(), std::convert::Infallible> {
    loop {
        let message = tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            m = heartbeats.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        match Envelope::parse(&ns, &message.subject, &message.payload) {
            Ok(Envelope {
                event: Event::NodeHeartbeat(beat),
                occurred_at,
                ..
            }) => {
                fleet.heartbeat(beat, occurred_at);
            }
            _ => fleet.metrics.count("malformed"),
        }
    }
}

struct Transition {
    id: Uuid,
    name: String,
    from: State,
    to: State,
    last_seen: DateTime<Utc>,
    missed: i64,
}

/// Checks silence every tick, applies state transitions, and flushes heartbeats to the database.
pub async fn watch(
    pool: PgPool,
    fleet: Fleet,
    settings: LivenessSettings,
    outbox: Arc<Notify>,
    shutdown: Shutdown,
) -> Result<(), std::convert::Infallible> {
    let interval = chrono::Duration::seconds(
        i64::try_from(settings.heartbeat_interval_secs.max(1)).unwrap_or(5),
    );
    let mut ticker =
        tokio::time::interval(Duration::from_millis(settings.check_interval_ms.max(50)));
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = ticker.tick() => {}
        }
        let (transitions, flush) = sweep(&fleet, &settings, interval);
        for t in transitions {
            if let Err(e) = apply(&pool, &t).await {
                tracing::warn!(node = %t.name, error = %e, "recording a liveness transition failed; will retry");
                fleet
                    .nodes
                    .lock()
                    .expect("fleet lock")
                    .entry(t.id)
                    .and_modify(|l| l.state = t.from);
            } else if t.to == State::Offline || t.from == State::Offline {
                outbox.notify_one();
            }
        }
        if !flush.is_empty() {
            let (ids, at, beats): (Vec<_>, Vec<_>, Vec<_>) = flush
                .into_iter()
                .map(|(id, at, b)| (id, at, Json(b)))
                .collect();
            if let Err(e) = store::flush_heartbeats(&pool, &ids, &at, &beats).await {
                tracing::warn!(error = %e, nodes = ids.len(), "flushing heartbeats failed");
            }
        }
    }
    Ok(())
}

type Flush = Vec<(Uuid, DateTime<Utc>, NodeHeartbeat)>;

fn sweep(
    fleet: &Fleet,
    settings: &LivenessSettings,
    interval: chrono::Duration,
) -> (Vec<Transition>, Flush) {
    let now = Utc::now();
    let mut transitions = Vec::new();
    let mut flush = Vec::new();
    let mut counts: HashMap<State, i64> = HashMap::new();
    let mut nodes = fleet.nodes.lock().expect("fleet lock");
    for (id, live) in nodes.iter_mut() {
        let missed = (now - live.last_seen).num_milliseconds() / interval.num_milliseconds().max(1);
        let to = if missed >= i64::from(settings.offline_after_missed) {
            State::Offline
        } else if missed >= i64::from(settings.stale_after_missed) {
            State::Stale
        } else {
            State::Online
        };
        if to != live.state {
            transitions.push(Transition {
                id: *id,
                name: live.name.clone(),
                from: live.state,
                to,
                last_seen: live.last_seen,
                missed,
            });
            live.state = to;
        }
        if let Some(beat) = live.unflushed.take() {
            flush.push((*id, live.last_seen, beat));
        }
        *counts.entry(live.state).or_default() += 1;
    }
    drop(nodes);
    for state in [State::Online, State::Stale, State::Offline] {
        fleet
            .metrics
            .nodes
            .get_or_create(&StateLabel {
                state: state.as_str(),
            })
            .set(counts.get(&state).copied().unwrap_or(0));
    }
    (transitions, flush)
}

async fn apply(pool: &PgPool, t: &Transition) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    store::set_state(&mut tx, t.id, t.to.as_str()).await?;
    if let Some(event) = events::liveness_changed(
        t.from,
        t.to,
        NodeLiveness {
            node_id: t.id,
            name: t.name.clone(),
            last_seen: t.last_seen,
            reason: None,
        },
        t.missed,
    ) {
        tracing::info!(node = %t.name, from = t.from.as_str(), to = t.to.as_str(), "edge node liveness changed");
        events::announce(&mut tx, event).await?;
    }
    tx.commit().await
}
