//! edge-registry's settings: defaults here, then `HOMESTATION_EDGE_REGISTRY__…` variables and the files of
//! `HOMESTATION_CONFIG_FILE`.

use serde::Deserialize;
use service_kit::auth::AuthSettings;
use service_kit::{DatabaseSettings, HttpSettings, NatsSettings, VaultSettings};

use crate::bus_access::CalloutSettings;
use crate::liveness::LivenessSettings;
use crate::{kube_nodes, names};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct K3sSettings {
    /// The K3s server on the control node's tailnet address.
    pub server_url: String,
    /// The interface flannel must use: Tailscale's, not the LAN's.
    pub flannel_iface: String,
    /// Where the cluster's agent token is in Vault's KV v2 (`vault.kv_mount`), and under which key. The
    /// K3s server token is never read: whoever holds it is cluster-admin in effect.
    pub agent_token_path: String,
    pub agent_token_key: String,
}

impl Default for K3sSettings {
    fn default() -> Self {
        Self {
            server_url: "https://100.64.0.1:6443".into(),
            flannel_iface: "tailscale0".into(),
            agent_token_path: "homestation/k3s".into(),
            agent_token_key: "agent_token".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    /// Enrolment's own listener, the only port the tailnet reaches: `POST /v1/enroll` and nothing else
    /// (no route there takes a human's identity).
    pub enrol: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub vault: VaultSettings,
    pub k3s: K3sSettings,
    pub liveness: LivenessSettings,
    pub kube: kube_nodes::KubeSettings,
    /// How edge nodes are admitted to the bus (the auth callout this service answers).
    pub callout: CalloutSettings,
    /// Where names are checked before a node may take one.
    pub inventory: names::InventorySettings,
    /// The NATS URL agents publish heartbeats to (reachable over the tailnet); defaults to `nats.url`.
    pub agent_nats_url: Option<String>,
    /// The longest a join token may live.
    pub max_token_ttl_secs: u64,
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8082),
            enrol: HttpSettings::with_port(8088),
            database: DatabaseSettings::local("edge_registry"),
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            vault: VaultSettings::default(),
            k3s: K3sSettings::default(),
            liveness: LivenessSettings::default(),
            kube: kube_nodes::KubeSettings::default(),
            callout: CalloutSettings::default(),
            inventory: names::InventorySettings::default(),
            agent_nats_url: None,
            max_token_ttl_secs: 7 * 24 * 3600,
            shutdown_grace_secs: 10,
        }
    }
}
