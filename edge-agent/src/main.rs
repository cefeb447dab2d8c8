//! `homestation-edge-agent`: run on a Jetson after `tailscale up`; it enrols once, writes the K3s agent config,
//! then sends heartbeats until stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use edge_agent::probe::{HostProbe, Probe, RecordedProbe};
use runtime::Shutdown;

#[derive(Parser)]
#[command(
    name = "homestation-edge-agent",
    version,
    about = "Enrols this machine with HomeStation's edge-registry and keeps it heard from"
)]
struct Args {
    /// edge-registry's URL.
    #[arg(
        long,
        env = "HOMESTATION_EDGE_REGISTRY",
        default_value = "http://127.0.0.1:8082"
    )]
    registry: String,
    /// A file holding the one-time join token (read only if this machine has not enrolled yet).
    #[arg(long, env = "HOMESTATION_JOIN_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The node's name; defaults to its Tailscale host name.
    #[arg(long)]
    name: Option<String>,
    /// The file system root where /etc/rancher/k3s/config.yaml is written and facts are read.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Where the agent keeps its enrolment, so the token is never sent twice.
    #[arg(long, default_value = "/var/lib/homestation-edge-agent")]
    state_dir: PathBuf,
    /// Read facts from recorded outputs in this folder instead of the machine (one file per source).
    #[arg(long)]
    recorded: Option<PathBuf>,
    /// Give up enrolling after this many seconds of the registry being unreachable.
    #[arg(long, default_value_t = 600)]
    max_wait_secs: u64,
    /// Enrol (if needed), write the config, and exit without sending heartbeats.
    #[arg(long)]
    once: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let telemetry = runtime::telemetry::init("edge-agent", env!("CARGO_PKG_VERSION"));
    let outcome = run(args).await;
    telemetry.shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homestation-edge-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> edge_agent::Result<()> {
    let probe: Box<dyn Probe> = match &args.recorded {
        Some(dir) => Box::new(RecordedProbe::new(dir)),
        None => Box::new(HostProbe {
            root: args.root.clone(),
        }),
    };
    let token = match (
        std::env::var("HOMESTATION_JOIN_TOKEN").ok(),
        &args.token_file,
    ) {
        (Some(t), _) if !t.trim().is_empty() => Some(t.trim().to_owned()),
        (_, Some(file)) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| edge_agent::Error::State {
                    path: file.display().to_string(),
                    reason: e.to_string(),
                })?
                .trim()
                .to_owned(),
        ),
        _ => None,
    };
    let (state, _) =
        edge_agent::ensure_enrolled(&args.state_dir, &args.root, token.as_deref(), || {
            let (facts, tailnet) = edge_agent::collect_facts(probe.as_ref())?;
            Ok(edge_agent::EnrolmentInputs {
                registry: args.registry.clone(),
                name: args
                    .name
                    .clone()
                    .unwrap_or_else(|| tailnet.host_name.clone()),
                facts,
                tailnet,
                max_wait: Duration::from_secs(args.max_wait_secs),
            })
        })
        .await?;
    if args.once {
        return Ok(());
    }
    tracing::info!(node = %state.name, every = state.heartbeat_interval_secs, "sending heartbeats");
    let readings = edge_agent::readings::Readings::from_env(
        "edge-agent",
        env!("CARGO_PKG_VERSION"),
        &state.name,
        Duration::from_secs(state.heartbeat_interval_secs.max(1)),
    );
    let sent =
        edge_agent::send_heartbeats(&state, probe.as_ref(), &readings, Shutdown::on_signals())
            .await;
    readings.shutdown();
    sent
}
