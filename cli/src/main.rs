//! `homestation`: the operator's command line over HomeStation's services.

mod backup;
mod bus;
mod client;
mod context;
mod deploy;
mod render;
mod secrets;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use client::{CliError, Client};
use context::Service;

#[derive(Parser)]
#[command(
    name = "homestation",
    version,
    about = "Operate a HomeStation lab: its nodes, services and health",
    after_help = "Which lab: contexts in ~/.config/homestation/config.toml (HOMESTATION_CONFIG names another file), \
each a domain (every service at https://<route>.<domain>, behind Traefik) or a URL per service, and a token \
file: `homestation context set lab --domain homestation.example.org --token-file ~/.config/homestation/lab.token`, \
then `homestation context use lab`. A --*-server flag or HOMESTATION_*_SERVER variable wins over the context; \
with no context, make dev's ports on this machine.\n\
Authentication: HOMESTATION_TOKEN (a service token) or HOMESTATION_TOKEN_FILE (a file holding one), else the \
context's token file. `make dev` writes an admin token to .dev/admin.token and prints the export line."
)]
struct Cli {
    /// The context (of the config file) to use for this command, instead of the current one.
    #[arg(long, global = true, env = "HOMESTATION_CONTEXT")]
    context: Option<String>,
    /// Base URL of inventory (else the context's, else make dev's http://127.0.0.1:8080).
    #[arg(long, global = true, env = "HOMESTATION_SERVER")]
    server: Option<String>,
    /// Base URL of edge-registry, for `homestation edge` (else the context's, else :8082).
    #[arg(long, global = true, env = "HOMESTATION_EDGE_SERVER")]
    edge_server: Option<String>,
    /// Base URL of the backup service, for `homestation backup` (else the context's, else :8083).
    #[arg(long, global = true, env = "HOMESTATION_BACKUP_SERVER")]
    backup_server: Option<String>,
    /// Base URL of secrets-rotator, for `homestation secrets` (else the context's, else :8085).
    #[arg(long, global = true, env = "HOMESTATION_SECRETS_SERVER")]
    secrets_server: Option<String>,
    /// Base URL of the deployer, for `homestation deploy` (else the context's, else :8086).
    #[arg(long, global = true, env = "HOMESTATION_DEPLOY_SERVER")]
    deploy_server: Option<String>,
    /// How to print results.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The single view of the lab: nodes, services, edge fleet, deployments, backups, drills, secrets.
    Status,
    /// Nodes: control, worker, edge and VM machines.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Services and their endpoints.
    #[command(subcommand)]
    Services(ServicesCommand),
    /// Edge nodes (Jetsons) and the join tokens they enrol with.
    #[command(subcommand)]
    Edge(EdgeCommand),
    /// Backups: policies, runs, the catalog, verify, restore and restore drills.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Secret rotation: policies, rotating now, the audit trail, generated Vault policies.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// GitOps deployments: status, sync, rollback, history (through the deployer and Argo CD).
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// Contexts: which lab this CLI talks to (~/.config/homestation/config.toml). Local; no server is asked.
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// A completion script for your shell: `homestation completions bash > ~/.local/share/bash-completion/completions/homestation`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The bus's authorization (who may speak on which subject), made from libs/bus: nats-server's
    /// configuration, the chart's accounts, the auth callout's issuer key. Local; no server is asked.
    #[command(subcommand)]
    Bus(bus::BusCommand),
}

#[derive(Subcommand)]
enum NodesCommand {
    /// List nodes, optionally of one kind.
    List {
        /// Only nodes of this kind.
        #[arg(long, value_parser = ["control", "worker", "edge", "vm"])]
        kind: Option<String>,
    },
    /// Show one node by name or id, with its recent health history.
    Show {
        /// Name or id.
        node: String,
    },
    /// Record a node by hand (edge nodes enrol themselves through edge-registry).
    Add {
        /// The node's name: 1-63 lowercase letters, digits or '-' (as Kubernetes names nodes).
        name: String,
        /// What the node is.
        #[arg(long, value_parser = ["control", "worker", "edge", "vm"])]
        kind: String,
        /// An address of the node; repeat for several.
        #[arg(long = "address")]
        addresses: Vec<String>,
        /// A label as key=value; repeat for several.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Remove a node from inventory (needs the Admin role).
    Remove {
        /// Name or id.
        node: String,
    },
}

#[derive(Subcommand)]
enum EdgeCommand {
    /// One-time join tokens (Admin).
    #[command(subcommand)]
    Token(TokenCommand),
    /// List enrolled edge nodes with their liveness.
    List,
    /// Show one edge node: facts, labels, taints, last heartbeat.
    Show {
        /// Name or id.
        node: String,
    },
    /// Remove an edge node (Admin): its bus credential is refused at once, it leaves inventory, and its
    /// Kubernetes node is cordoned, drained (PodDisruptionBudgets honoured) and deleted.
    Remove {
        /// Name or id.
        node: String,
    },
    /// Revoke an unused join token (Admin).
    Revoke {
        /// The token's id (from `homestation edge token list`).
        token: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a one-time join token; it is printed once and never stored.
    Create {
        /// How long it is valid: 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// A node label as key=value for the node that enrols with it; repeat for several.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// A taint as key[=value]:Effect; repeat for several.
        #[arg(long = "taint")]
        taints: Vec<String>,
        /// What the token is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List join tokens and their status.
    List,
}

#[derive(Subcommand)]
enum ServicesCommand {
    /// List services, optionally in one namespace.
    List {
        /// Only services in this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
}

fn parse_label(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{raw:?} is not key=value"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(text) => {
            // A closed pipe (`homestation completions bash | head`) is not an error of ours.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("homestation: {error}");
            error.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<String, CliError> {
    // Local commands first: they need no server, and no config file (a broken one must not stop them).
    let command = match cli.command {
        Command::Bus(command) => return bus::run(command),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "homestation", &mut out);
            return Ok(String::from_utf8(out).expect("completion scripts are text"));
        }
        other => other,
    };
    let explicit: std::collections::BTreeMap<&'static str, String> = [
        (Service::Inventory, &cli.server),
        (Service::EdgeRegistry, &cli.edge_server),
        (Service::Backup, &cli.backup_server),
        (Service::SecretsRotator, &cli.secrets_server),
        (Service::Deployer, &cli.deploy_server),
    ]
    .into_iter()
    .filter_map(|(service, url)| url.clone().map(|u| (service.name(), u)))
    .collect();
    let config_path = context::config_path();
    let config = context::Config::load(&config_path)?;
    let resolved = context::Resolved::new(&config, cli.context.as_deref(), &explicit)?;
    let command = match command {
        Command::Context(command) => {
            return context::run(command, &config_path, config, &resolved);
        }
        other => other,
    };
    let (service, timeout) = match command {
        Command::Edge(_) => (Service::EdgeRegistry, client::TIMEOUT),
        // Verifying, restoring and drilling take as long as the backup is big.
        Command::Backup(_) => (Service::Backup, client::LONG_TIMEOUT),
        // A rotation waits for consumers to acknowledge (the policy's ack_timeout_secs).
        Command::Secrets(_) => (Service::SecretsRotator, client::LONG_TIMEOUT),
        Command::Deploy(_) => (Service::Deployer, client::TIMEOUT),
        _ => (Service::Inventory, client::TIMEOUT),
    };
    let client = Client::from_env(
        resolved.url(service),
        timeout,
        resolved.token_file.as_deref(),
    )?;
    let json_out = cli.output == Output::Json;
    let show = |value: &Value, table: fn(&Value) -> String| output(value, json_out, table);
    match command {
        Command::Bus(_) | Command::Context(_) | Command::Completions { .. } => {
            unreachable!("answered above, without a server")
        }
        Command::Status => Ok(show(&client.get("/v1/summary").await?, render::status)),
        Command::Nodes(NodesCommand::List { kind }) => {
            let path = match kind {
                Some(kind) => format!("/v1/nodes?kind={kind}"),
                None => "/v1/nodes".to_owned(),
            };
            Ok(show(&client.get(&path).await?, render::nodes))
        }
        Command::Nodes(NodesCommand::Show { node }) => {
            let path = format!("/v1/nodes/{}", client::segment(&node));
            let mut found = client.get(&path).await?;
            found["history"] = client.get(&format!("{path}/history?limit=10")).await?;
            Ok(show(&found, render::node))
        }
        Command::Nodes(NodesCommand::Add {
            name,
            kind,
            addresses,
            labels,
        }) => {
            let labels = label_map(labels);
            let body =
                json!({"name": name, "kind": kind, "addresses": addresses, "labels": labels});
            let created = client.post("/v1/nodes", &body).await?;
            Ok(if json_out {
                show(&created, render::node)
            } else {
                format!(
                    "added node {} ({})\n",
                    created["name"].as_str().unwrap_or_default(),
                    created["id"].as_str().unwrap_or_default()
                )
            })
        }
        Command::Nodes(NodesCommand::Remove { node }) => {
            client
                .delete(&format!("/v1/nodes/{}", client::segment(&node)))
                .await?;
            Ok(if json_out {
                format!("{}\n", json!({"removed": node}))
            } else {
                format!("removed node {node}\n")
            })
        }
        Command::Edge(edge) => edge_command(&client, edge, json_out).await,
        Command::Backup(command) => backup::run(&client, command, json_out).await,
        Command::Secrets(command) => secrets::run(&client, command, json_out).await,
        Command::Deploy(command) => deploy::run(&client, command, json_out).await,
        Command::Services(ServicesCommand::List { namespace }) => {
            let path = match namespace {
                Some(ns) => format!("/v1/services?namespace={}", client::segment(&ns)),
                None => "/v1/services".to_owned(),
            };
            Ok(show(&client.get(&path).await?, render::services))
        }
    }
}

async fn edge_command(
    client: &Client,
    command: EdgeCommand,
    json_out: bool,
) -> Result<String, CliError> {
    let show = |v: &Value, table: fn(&Value) -> String| output(v, json_out, table);
    match command {
        EdgeCommand::Token(TokenCommand::Create {
            ttl,
            labels,
            taints,
            description,
        }) => {
            let labels = label_map(labels);
            let body =
                json!({"ttl": ttl, "labels": labels, "taints": taints, "description": description});
            let created = client.post("/v1/join-tokens", &body).await?;
            Ok(show(&created, render::created_token))
        }
        EdgeCommand::Token(TokenCommand::List) => {
            Ok(show(&client.get("/v1/join-tokens").await?, render::tokens))
        }
        EdgeCommand::List => Ok(show(&client.get("/v1/nodes").await?, render::edge_nodes)),
        EdgeCommand::Show { node } => Ok(show(
            &client
                .get(&format!("/v1/nodes/{}", client::segment(&node)))
                .await?,
            render::edge_node,
        )),
        EdgeCommand::Remove { node } => {
            let removal = client
                .delete(&format!("/v1/nodes/{}", client::segment(&node)))
                .await?;
            Ok(if json_out {
                pretty(&removal)
            } else {
                let name = removal["name"].as_str().unwrap_or(&node);
                match removal["state"].as_str() {
                    Some("draining") => format!(
                        "removing edge node {name}: its bus credential is refused from now on; its Kubernetes node is being drained, then deleted\n"
                    ),
                    _ => format!(
                        "removed edge node {name}: its bus credential is refused from now on\n"
                    ),
                }
            })
        }
        EdgeCommand::Revoke { token } => {
            client
                .delete(&format!("/v1/join-tokens/{}", client::segment(&token)))
                .await?;
            Ok(if json_out {
                pretty(&json!({"revoked": token}))
            } else {
                format!("revoked join token {token}\n")
            })
        }
    }
}

/// The server's document as pretty JSON with `--output json`, else as `table` renders it.
fn output(value: &Value, json_out: bool, table: fn(&Value) -> String) -> String {
    if json_out {
        pretty(value)
    } else {
        table(value)
    }
}

fn pretty(value: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).expect("JSON prints")
    )
}

/// `--label k=v` pairs as the JSON object the APIs take.
fn label_map(labels: Vec<(String, String)>) -> serde_json::Map<String, Value> {
    labels
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}
