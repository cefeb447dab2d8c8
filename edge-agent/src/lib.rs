//! The HomeStation edge agent: facts → enrolment (once) → K3s agent config → heartbeats.

pub mod facts;
pub mod key;
pub mod probe;
pub mod readings;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bus::{Event, Namespace, NodeHeartbeat, Publisher};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use runtime::Shutdown;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::probe::{Probe, Source};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Facts(String),
    #[error(
        "no join token: pass --token-file or set HOMESTATION_JOIN_TOKEN (create one with `homestation edge token create`)"
    )]
    NoToken,
    #[error("the registry refused the enrolment ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("gave up reaching the registry at {registry} after {waited:?}: {reason}")]
    Unreachable {
        registry: String,
        waited: Duration,
        reason: String,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("reading the agent state {path}: {reason}")]
    State { path: String, reason: String },
    #[error("connecting to NATS at {url}: {reason}")]
    Nats { url: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the agent reports at enrolment: the bus's hardware facts, as edge-registry records them.
pub type Facts = bus::HardwareFacts;

/// Reads the machine's facts; a node not on the tailnet cannot enrol, so that is an error.
pub fn collect_facts(probe: &dyn Probe) -> Result<(Facts, facts::Tailnet)> {
    let status = probe.read(Source::TailscaleStatus).ok_or_else(|| {
        Error::Facts(
            "`tailscale status --json` gave nothing: is tailscale installed and up?".into(),
        )
    })?;
    let tailnet = facts::tailnet(&status).map_err(|e| Error::Facts(e.to_string()))?;
    let memory_bytes = probe
        .read(Source::MemInfo)
        .as_deref()
        .and_then(facts::memory_bytes)
        .ok_or_else(|| Error::Facts("cannot read MemTotal from /proc/meminfo".into()))?;
    let architecture = match std::env::consts::ARCH {
        "aarch64" => "aarch64",
        _ => "x86_64",
    };
    let model = probe
        .read(Source::DeviceModel)
        .as_deref()
        .and_then(facts::model)
        .unwrap_or_else(|| format!("generic {architecture} host"));
    let l4t = probe
        .read(Source::TegraRelease)
        .as_deref()
        .and_then(facts::l4t_from_tegra_release);
    let jetpack = probe
        .read(Source::JetpackPackage)
        .as_deref()
        .and_then(facts::jetpack_from_package)
        .or_else(|| l4t.as_deref().and_then(facts::jetpack_from_l4t));
    let cuda = probe
        .read(Source::CudaVersion)
        .as_deref()
        .and_then(facts::cuda_from_version_json);
    let gpu_name = facts::gpu_name(probe.read(Source::NvidiaSmi).as_deref(), &model);
    // A recorded device reports its own architecture through its L4T release (Jetsons are aarch64).
    let architecture = if l4t.is_some() {
        "aarch64"
    } else {
        architecture
    }
    .to_owned();
    let facts = Facts {
        model,
        jetpack,
        l4t,
        cuda,
        gpu_name,
        memory_bytes,
        architecture,
    };
    Ok((facts, tailnet))
}

/// What the agent keeps after enrolling, so a restart never sends the join token again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub node_id: Uuid,
    pub name: String,
    pub registry: String,
    pub nats_url: String,
    pub nats_namespace: String,
    /// This node's own bus credential (`node-<id>`), issued at enrolment; the file is readable by root only.
    pub nats_user: String,
    pub nats_password: String,
    pub heartbeat_interval_secs: u64,
}

impl State {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("state.json")
    }

    pub fn load(state_dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::State {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::State {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let error = |source| Error::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&tmp, path).map_err(error)
}

/// The registry's answer to an enrolment (the parts the agent uses).
#[derive(Debug, Deserialize)]
pub struct Enrolled {
    pub node_id: Uuid,
    pub name: String,
    pub k3s: K3sConfig,
    pub agent: AgentSettings,
    pub bus: BusCredential,
}

/// The node's own bus credential.
#[derive(Debug, Deserialize)]
pub struct BusCredential {
    pub user: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
pub struct K3sConfig {
    pub server: String,
    pub token: String,
    pub node_ip: String,
    pub flannel_iface: String,
    pub node_labels: Vec<String>,
    pub node_taints: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct AgentSettings {
    pub nats_url: String,
    pub nats_namespace: String,
    pub heartbeat_interval_secs: u64,
}

/// `/etc/rancher/k3s/config.yaml`, every value quoted (JSON strings are valid YAML).
pub fn k3s_config_yaml(k: &K3sConfig) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let mut yaml =
        String::from("# Written by homestation-edge-agent at enrolment; k3s reads it at start.\n");
    yaml.push_str(&format!(
        "server: {}\ntoken: {}\nnode-ip: {}\nflannel-iface: {}\n",
        q(&k.server),
        q(&k.token),
        q(&k.node_ip),
        q(&k.flannel_iface)
    ));
    for (key, values) in [
        ("node-label", &k.node_labels),
        ("node-taint", &k.node_taints),
    ] {
        if !values.is_empty() {
            yaml.push_str(&format!("{key}:\n"));
            for v in values {
                yaml.push_str(&format!("  - {}\n", q(v)));
            }
        }
    }
    yaml
}

/// How to enrol: where, with what, how long to keep trying.
pub struct Enrolment<'a> {
    pub registry: &'a str,
    pub token: &'a str,
    pub name: &'a str,
    pub facts: &'a Facts,
    pub tailnet: &'a facts::Tailnet,
    /// The node's key: enrolment binds the node to it, so a retry after a lost answer is answered again.
    pub key: &'a key::NodeKey,
    /// Keep retrying while the registry is away for at most this long.
    pub max_wait: Duration,
}

/// Sends the enrolment, retrying with backoff while the registry is unreachable or failing (5xx);
/// a refusal (4xx) is final. The request carries the current trace context.
pub async fn enroll(e: &Enrolment<'_>) -> Result<Enrolled> {
    runtime::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|err| Error::Unreachable {
            registry: e.registry.to_owned(),
            waited: Duration::ZERO,
            reason: err.to_string(),
        })?;
    let body = serde_json::json!({
        "token": e.token,
        "name": e.name,
        "tailscale": {"ip": e.tailnet.ip, "dns_name": e.tailnet.dns_name},
        "facts": e.facts,
        "public_key": e.key.public(),
        "proof": e.key.prove(e.token, e.name),
    });
    let url = format!("{}/v1/enroll", e.registry.trim_end_matches('/'));
    let span = tracing::info_span!(
        "edge-agent.enroll",
        otel.kind = "client",
        node = e.name,
        registry = e.registry
    );
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    async {
        loop {
            let mut carrier = std::collections::HashMap::new();
            TraceContextPropagator::new()
                .inject_context(&tracing::Span::current().context(), &mut carrier);
            let mut request = client.post(&url).json(&body);
            for (k, v) in carrier {
                request = request.header(k, v);
            }
            let reason = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    return response
                        .json::<Enrolled>()
                        .await
                        .map_err(|err| Error::Refused {
                            status: 200,
                            message: format!("unreadable answer: {err}"),
                        });
                }
                Ok(response) if response.status().is_client_error() => {
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    let message = body["error"]["message"]
                        .as_str()
                        .unwrap_or("no reason given")
                        .to_owned();
                    return Err(Error::Refused { status, message });
                }
                Ok(response) => format!("HTTP {}", response.status()),
                Err(err) => err.to_string(),
            };
            if started.elapsed() + delay > e.max_wait {
                return Err(Error::Unreachable {
                    registry: e.registry.to_owned(),
                    waited: started.elapsed(),
                    reason,
                });
            }
            tracing::warn!(%reason, retry_in = ?delay, "registry not reachable; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }
    .instrument(span)
    .await
}

/// Enrols if this machine has not yet, saving the state before anything else, then writes the k3s config.
/// Returns the state and whether enrolment happened now.
pub async fn ensure_enrolled(
    state_dir: &Path,
    root: &Path,
    token: Option<&str>,
    inputs: impl FnOnce() -> Result<EnrolmentInputs>,
) -> Result<(State, bool)> {
    if let Some(state) = State::load(state_dir)? {
        tracing::info!(node = %state.name, id = %state.node_id, "already enrolled; the join token is not sent again");
        return Ok((state, false));
    }
    let token = token.ok_or(Error::NoToken)?;
    let inputs = inputs()?;
    // Made (and written) before the first request: a retry after a crash or a lost answer uses the same key.
    let key = key::NodeKey::load_or_create(state_dir)?;
    let enrolled = enroll(&Enrolment {
        registry: &inputs.registry,
        token,
        name: &inputs.name,
        facts: &inputs.facts,
        tailnet: &inputs.tailnet,
        key: &key,
        max_wait: inputs.max_wait,
    })
    .await?;
    let state = State {
        node_id: enrolled.node_id,
        name: enrolled.name.clone(),
        registry: inputs.registry.clone(),
        nats_url: enrolled.agent.nats_url.clone(),
        nats_namespace: enrolled.agent.nats_namespace.clone(),
        nats_user: enrolled.bus.user.clone(),
        nats_password: enrolled.bus.password.clone(),
        heartbeat_interval_secs: enrolled.agent.heartbeat_interval_secs,
    };
    // The token is spent now: record that first, so a crash from here on never sends it again.
    write_atomically(
        &State::path(state_dir),
        &serde_json::to_vec_pretty(&state).expect("state serializes"),
    )?;
    let config = root.join("etc/rancher/k3s/config.yaml");
    write_atomically(&config, k3s_config_yaml(&enrolled.k3s).as_bytes())?;
    tracing::info!(node = %state.name, id = %state.node_id, config = %config.display(), "enrolled; k3s agent config written");
    Ok((state, true))
}

pub struct EnrolmentInputs {
    pub registry: String,
    pub name: String,
    pub facts: Facts,
    pub tailnet: facts::Tailnet,
    pub max_wait: Duration,
}

/// One heartbeat's figures, read now.
pub fn heartbeat(node_id: Uuid, probe: &dyn Probe) -> NodeHeartbeat {
    let (gpu, temperature) = match probe.read(Source::Tegrastats) {
        Some(line) => facts::tegrastats(&line),
        None => {
            // Discrete GPUs: `name, utilization, temperature` from nvidia-smi.
            let smi = probe.read(Source::NvidiaSmi).unwrap_or_default();
            let fields: Vec<&str> = smi
                .lines()
                .next()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .collect();
            (
                fields.get(1).and_then(|v| v.parse().ok()),
                fields.get(2).and_then(|v| v.parse().ok()),
            )
        }
    };
    NodeHeartbeat {
        node_id,
        load1: probe
            .read(Source::LoadAvg)
            .as_deref()
            .and_then(facts::load1)
            .unwrap_or(0.0),
        gpu_utilization_pct: gpu,
        temperature_c: temperature,
        disk_free_bytes: probe
            .read(Source::DiskFree)
            .as_deref()
            .and_then(facts::disk_free),
    }
}

/// Sends a heartbeat every interval until shutdown; NATS being away only delays them (the client reconnects).
pub async fn send_heartbeats(
    state: &State,
    probe: &dyn Probe,
    readings: &readings::Readings,
    shutdown: Shutdown,
) -> Result<()> {
    let nats_error = |reason: String| Error::Nats {
        url: state.nats_url.clone(),
        reason,
    };
    // As this node: the bus admits it through edge-registry and lets it publish its own heartbeats only.
    let client = async_nats::ConnectOptions::with_user_and_password(
        state.nats_user.clone(),
        state.nats_password.clone(),
    )
    .name("homestation-edge-agent")
    .custom_inbox_prefix(runtime::inbox_prefix(&state.nats_user))
    .retry_on_initial_connect()
    .connect(&state.nats_url)
    .await
    .map_err(|e| nats_error(e.to_string()))?;
    let ns = Namespace::parse(&state.nats_namespace).map_err(|e| nats_error(e.to_string()))?;
    let publisher = Publisher::new(async_nats::jetstream::new(client), ns, "edge-agent");
    let mut ticker =
        tokio::time::interval(Duration::from_secs(state.heartbeat_interval_secs.max(1)));
    loop {
        tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let beat = heartbeat(state.node_id, probe);
        readings.record(&beat);
        if let Err(e) = publisher.publish(Event::NodeHeartbeat(beat)).await {
            tracing::warn!(error = %e, "heartbeat not sent; next one in an interval");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::RecordedProbe;

    fn fixture() -> RecordedProbe {
        RecordedProbe::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/agx-orin-jp6"
        ))
    }

    #[test]
    fn facts_of_a_recorded_agx_orin() {
        let (facts, tailnet) = collect_facts(&fixture()).unwrap();
        assert_eq!(
            facts,
            Facts {
                model: "NVIDIA Jetson AGX Orin Developer Kit".into(),
                jetpack: Some("6.0".into()),
                l4t: Some("36.3.0".into()),
                cuda: Some("12.2".into()),
                gpu_name: Some("Orin (nvgpu)".into()),
                memory_bytes: 64_335_836 * 1024,
                architecture: "aarch64".into(),
            }
        );
        assert_eq!(tailnet.ip, "100.101.102.103");
        assert_eq!(tailnet.dns_name, "jetson-orin-1.tail1234.ts.net");
        assert_eq!(tailnet.host_name, "jetson-orin-1");
    }

    #[test]
    fn heartbeat_of_a_recorded_agx_orin() {
        let beat = heartbeat(Uuid::nil(), &fixture());
        assert_eq!(beat.load1, 0.52);
        assert_eq!(beat.gpu_utilization_pct, Some(37.0));
        assert_eq!(beat.temperature_c, Some(47.5));
        assert_eq!(beat.disk_free_bytes, Some(51_234_567_890));
    }

    #[test]
    fn parsers_handle_other_releases_and_bad_input() {
        assert_eq!(
            facts::l4t_from_tegra_release(
                "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref"
            ),
            Some("35.4.1".into())
        );
        assert_eq!(facts::l4t_from_tegra_release("garbage"), None);
        assert_eq!(facts::jetpack_from_l4t("35.4.1"), Some("5.1.2".into()));
        assert_eq!(facts::jetpack_from_l4t("36.4.0"), Some("6.1".into()));
        assert_eq!(facts::jetpack_from_l4t("36.4.3"), Some("6.2".into()));
        assert_eq!(facts::jetpack_from_l4t("99.1"), None);
        assert_eq!(
            facts::jetpack_from_package("5.1.2-b104"),
            Some("5.1.2".into())
        );
        assert_eq!(
            facts::gpu_name(Some("NVIDIA GeForce RTX 3060, 12, 40\n"), "desktop"),
            Some("NVIDIA GeForce RTX 3060".into())
        );
        assert!(matches!(
            facts::tailnet(r#"{"BackendState":"NeedsLogin"}"#),
            Err(facts::TailscaleError::NotRunning(_))
        ));
        assert!(matches!(
            facts::tailnet("not json"),
            Err(facts::TailscaleError::Unreadable(_))
        ));
    }

    #[test]
    fn k3s_config_quotes_every_value() {
        let yaml = k3s_config_yaml(&K3sConfig {
            server: "https://100.64.0.1:6443".into(),
            token: "K10abc::server:xyz".into(),
            node_ip: "100.101.102.103".into(),
            flannel_iface: "tailscale0".into(),
            node_labels: vec!["homestation.io/jetpack=6.0".into()],
            node_taints: vec![],
        });
        assert!(
            yaml.contains("node-ip: \"100.101.102.103\"\nflannel-iface: \"tailscale0\"\n"),
            "{yaml}"
        );
        assert!(yaml.contains("node-label:\n  - \"homestation.io/jetpack=6.0\"\n"));
        assert!(!yaml.contains("node-taint"));
    }
}
