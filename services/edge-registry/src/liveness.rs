//! Liveness of the edge fleet: heartbeats update memory only; a ticker turns silence into stale, then offline,
//! writes the transitions (publishing `edge.v1.node.offline|online`) and flushes the latest heartbeats in batches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{Envelope, Event, Namespace, NodeHeartbeat, NodeLiveness};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use serde::Deserialize;
use service_kit::Shutdown;
use service_kit::metrics::Metrics;
use sqlx::PgPool;
use sqlx::types::Json;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::store;

pub mod names {
    pub const HEARTBEATS: &str = "homestation_edge_heartbeats";
    pub const NODES: &str = "homestation_edge_nodes";
    pub const HEARTBEAT_LAG: &str = "homestation_edge_heartbeat_lag_seconds";
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StateLabel {
    /// online, stale or offline
    pub state: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Online,
    Stale,
    Offline,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Online => "online",
            State::Stale => "stale",
            State::Offline => "offline",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "offline" => State::Offline,
            "stale" => State::Stale,
            _ => State::Online,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// accepted, unknown_node or malformed
    pub outcome: &'static str,
}

#[derive(Clone)]
pub struct FleetMetrics {
    pub heartbeats: Family<OutcomeLabel, Counter>,
    pub nodes: Family<StateLabel, Gauge>,
    pub lag: Histogram,
}

impl FleetMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let this = Self {
            heartbeats: Family::default(),
            nodes: Family::default(),
            lag: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
        };
        metrics.register(
            names::HEARTBEATS,
            "Heartbeats received, by outcome",
            this.heartbeats.clone(),
        );
        metrics.register(
            names::NODES,
            "Enrolled edge nodes by liveness state",
            this.nodes.clone(),
        );
        metrics.register(
            names::HEARTBEAT_LAG,
            "Time from a heartbeat's sending to its receipt",
            this.lag.clone(),
        );
        for outcome in ["accepted", "unknown_node", "malformed"] {
            drop(this.heartbeats.get_or_create(&OutcomeLabel { outcome }));
        }
        this
    }

    fn count(&self, outcome: &'static str) {
        self.heartbeats
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
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
    let liveness = |reason: String| NodeLiveness {
        node_id: t.id,
        name: t.name.clone(),
        last_seen: t.last_seen,
        reason: Some(reason),
    };
    let event = match (t.from, t.to) {
        (_, State::Offline) => Some(Event::NodeOffline(liveness(format!(
            "missed {} heartbeats",
            t.missed
        )))),
        (State::Offline, _) => Some(Event::NodeOnline(liveness("heartbeats resumed".into()))),
        _ => None,
    };
    if let Some(event) = event {
        tracing::info!(node = %t.name, from = t.from.as_str(), to = t.to.as_str(), "edge node liveness changed");
        bus::outbox::enqueue(&mut tx, &Envelope::new(crate::SOURCE, event)).await?;
    }
    tx.commit().await
}
