//! `homestation bus`: the bus's authorization, made from `libs/bus` (the `events!` table and the services'
//! rows), never written by hand: the nats-server configuration `make dev` runs, the chart's accounts
//! (`argocd/platform/nats.yaml`, checked against this by a test), and the auth callout's issuer key.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bus::access::{self, ConfiguredUser};
use bus::callout::Issuer;
use clap::Subcommand;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::client::CliError;

#[derive(Subcommand)]
pub enum BusCommand {
    /// The auth callout's issuer: print its public key, making its seed first if SEED_FILE does not exist.
    Issuer {
        /// Where the seed (SA…) is kept, readable by its owner only. The lab's is in Vault
        /// (homestation/nats → callout_issuer_seed).
        #[arg(long)]
        seed_file: PathBuf,
    },
    /// Print nats-server's accounts and authorization for the lab, as JSON (nats-server reads JSON).
    ServerConfig {
        /// The callout issuer's public key (from `homestation bus issuer`).
        #[arg(long, conflicts_with = "chart")]
        issuer: Option<String>,
        /// A folder with one file per service (its name) holding its password; a missing one is made.
        #[arg(long, conflicts_with = "chart")]
        password_dir: Option<PathBuf>,
        /// The namespace prefixing subjects and streams (empty in the lab).
        #[arg(long, default_value = "")]
        namespace: String,
        /// Also the listen address and JetStream's folder: a whole configuration for `nats-server -c`.
        #[arg(long, requires = "store_dir")]
        listen: Option<String>,
        #[arg(long)]
        store_dir: Option<PathBuf>,
        /// As the NATS chart's `config.merge` wants it: every secret a `<< $VARIABLE >>` the pod's
        /// environment fills from Vault, never a value.
        #[arg(long)]
        chart: bool,
    },
    /// Print argocd/platform/nats-accounts.yaml: the accounts, the environment filling their secrets from
    /// Vault (Vault Secrets Operator), and the tailnet's one door to NATS (the client port).
    /// `make app` rewrites the file with it; a test fails when the file is not what this prints.
    ChartValues,
}

pub fn run(command: BusCommand) -> Result<String, CliError> {
    match command {
        BusCommand::Issuer { seed_file } => {
            let issuer = issuer_from(&seed_file)?;
            Ok(format!("{}\n", issuer.public_key()))
        }
        BusCommand::ServerConfig {
            issuer,
            password_dir,
            namespace,
            listen,
            store_dir,
            chart,
        } => {
            let ns = bus::Namespace::parse(&namespace).map_err(|e| usage(e.to_string()))?;
            let mut config = if chart {
                chart_authorization(&ns)
            } else {
                let issuer = issuer.ok_or_else(|| usage("--issuer is needed (or --chart)"))?;
                let dir =
                    password_dir.ok_or_else(|| usage("--password-dir is needed (or --chart)"))?;
                let passwords = access::service_names()
                    .map(|name| Ok((name, password(&dir, name)?)))
                    .collect::<Result<std::collections::HashMap<_, _>, CliError>>()?;
                let users = access::service_users(&ns, access::service_names(), |name| {
                    passwords[name].clone()
                });
                access::server_authorization(&users, &issuer)
            };
            if let (Some(listen), Some(store)) = (listen, store_dir) {
                config["listen"] = json!(listen);
                config["jetstream"] = json!({ "store_dir": store });
            }
            Ok(format!(
                "{}\n",
                serde_json::to_string_pretty(&config).expect("JSON")
            ))
        }
        BusCommand::ChartValues => Ok(chart_values()),
    }
}

/// Where the lab's NATS secrets are in Vault's KV v2 mount `secret`: one path per service (its Vault
/// Agent reads its own, nothing else) and the callout's (edge-registry reads the seed).
pub fn vault_path(service: &str) -> String {
    format!("homestation/nats/{service}")
}
pub const CALLOUT_VAULT_PATH: &str = "homestation/nats/callout";
/// The client port, the only one the tailnet reaches.
const CLIENT_PORT: u16 = 4222;

fn vault_static_secret(name: &str, path: &str) -> Value {
    json!({
        "apiVersion": "secrets.hashicorp.com/v1beta1",
        "kind": "VaultStaticSecret",
        "metadata": { "name": name, "namespace": "nats" },
        "spec": {
            "type": "kv-v2",
            "mount": "secret",
            "path": path,
            "refreshAfter": "1h",
            "destination": { "name": name, "create": true, "overwrite": true },
            "rolloutRestartTargets": [{ "kind": "StatefulSet", "name": "nats" }],
        },
    })
}

/// The whole of argocd/platform/nats-accounts.yaml (JSON is YAML), with its header.
pub fn chart_values() -> String {
    let ns = bus::Namespace::production();
    let mut env = serde_json::Map::new();
    let mut resources = Vec::new();
    for service in access::service_names() {
        let secret = format!("nats-user-{service}");
        env.insert(
            password_variable(service),
            json!({ "valueFrom": { "secretKeyRef": { "name": secret, "key": "password" } } }),
        );
        resources.push(vault_static_secret(&secret, &vault_path(service)));
    }
    env.insert(
        ISSUER_VARIABLE.to_owned(),
        json!({ "valueFrom": { "secretKeyRef": { "name": "nats-callout", "key": "issuer" } } }),
    );
    resources.push(vault_static_secret("nats-callout", CALLOUT_VAULT_PATH));
    // Edge nodes reach NATS through the Tailscale operator: a tailnet Service of the client port only,
    // where every connection not a service's is sent to edge-registry's auth callout.
    resources.push(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "nats-tailnet",
            "namespace": "nats",
            "annotations": { "tailscale.com/hostname": "nats", "tailscale.com/tags": "tag:services" },
        },
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "tailscale",
            "selector": {
                "app.kubernetes.io/name": "nats",
                "app.kubernetes.io/instance": "nats",
                "app.kubernetes.io/component": "nats",
            },
            "ports": [{ "name": "nats", "port": CLIENT_PORT, "targetPort": "nats", "protocol": "TCP" }],
        },
    }));
    let values = json!({
        "config": { "merge": chart_authorization(&ns) },
        "container": { "env": env },
        "extraResources": resources,
    });
    format!(
        "# Generated by `homestation bus chart-values` from libs/bus (the events! table and SERVICES): who may\n\
         # speak on which subject. Do not edit; `make app` rewrites it and a test fails when it is stale.\n\
         # Every secret is a variable the pod's environment fills from Vault ({}/<service>, {CALLOUT_VAULT_PATH}).\n{}\n",
        "homestation/nats",
        serde_json::to_string_pretty(&values).expect("JSON")
    )
}

/// The environment variable the NATS pod reads `service`'s password from (a Secret Vault fills).
pub fn password_variable(service: &str) -> String {
    format!("NATS_PASSWORD_{}", service.to_uppercase().replace('-', "_"))
}

/// The variable holding the callout issuer's public key.
pub const ISSUER_VARIABLE: &str = "NATS_CALLOUT_ISSUER";

/// The chart's accounts: the same users and permissions, secrets as `<< $VARIABLE >>` references.
pub fn chart_authorization(ns: &bus::Namespace) -> Value {
    let users: Vec<ConfiguredUser> = access::service_users(ns, access::service_names(), |name| {
        format!("<< ${} >>", password_variable(name))
    });
    access::server_authorization(&users, &format!("<< ${ISSUER_VARIABLE} >>"))
}

fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

fn io(path: &Path, e: std::io::Error) -> CliError {
    CliError::Usage(format!("{}: {e}", path.display()))
}

/// Writes `text` to a new file readable by its owner only; an existing file is left as it is.
fn create_private(path: &Path, text: &str) -> Result<bool, CliError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(text.as_bytes()).map_err(|e| io(path, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path, e)),
    }
}

fn issuer_from(seed_file: &Path) -> Result<Issuer, CliError> {
    let (_, seed) = Issuer::generate();
    create_private(seed_file, seed.expose_secret())?;
    let seed = std::fs::read_to_string(seed_file).map_err(|e| io(seed_file, e))?;
    Issuer::from_seed(&SecretString::from(seed.trim().to_owned()))
        .map_err(|e| usage(format!("{}: {e}", seed_file.display())))
}

/// `service`'s password from `dir`, made (32 random bytes, hex) if it is not there yet.
fn password(dir: &Path, service: &str) -> Result<String, CliError> {
    let path = dir.join(service);
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| usage(format!("no randomness: {e}")))?;
    create_private(&path, &hex::encode(bytes))?;
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    Ok(text.trim().to_owned())
}
