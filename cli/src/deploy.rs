//! `homestation deploy`: deployments and their timelines, sync and rollback through the deployer.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{CliError, Client, segment};
use crate::render;

#[derive(Subcommand)]
pub enum DeployCommand {
    /// The newest deployment of each app, or of one app.
    Status { app: Option<String> },
    /// Ask Argo CD to sync an app now (Developer).
    Sync {
        app: String,
        /// A commit, branch or tag; the app's target revision when absent.
        #[arg(long)]
        revision: Option<String>,
    },
    /// Roll an app back (Admin): to --to, or to the previous revision in Argo CD's history.
    Rollback {
        app: String,
        #[arg(long)]
        to: Option<String>,
    },
    /// An app's deployments, newest first, with commit, webhook, sync and healthy times.
    History {
        app: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

pub async fn run(
    client: &Client,
    command: DeployCommand,
    json_out: bool,
) -> Result<String, CliError> {
    let show = |v: &Value, table: fn(&Value) -> String| crate::output(v, json_out, table);
    match command {
        DeployCommand::Status { app } => {
            let path = match &app {
                Some(a) => format!("/v1/deployments?app={}&limit=1", segment(a)),
                None => "/v1/deployments?limit=200".to_owned(),
            };
            let all = client.get(&path).await?;
            // The newest per app (the list is newest first).
            let mut seen = std::collections::BTreeSet::new();
            let newest: Vec<Value> = all
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| {
                    seen.insert(format!(
                        "{}/{}",
                        render::text(&d["namespace"]),
                        render::text(&d["app"])
                    ))
                })
                .cloned()
                .collect();
            Ok(show(&Value::Array(newest), render::deployments))
        }
        DeployCommand::Sync { app, revision } => {
            let accepted = client
                .post(
                    &format!("/v1/apps/{}/sync", segment(&app)),
                    &json!({ "revision": revision }),
                )
                .await?;
            Ok(show(&accepted, |a| {
                format!(
                    "asked Argo CD to sync {} to {}\n",
                    render::text(&a["app"]),
                    render::text(&a["revision"])
                )
            }))
        }
        DeployCommand::Rollback { app, to } => {
            let accepted = client
                .post(
                    &format!("/v1/apps/{}/rollback", segment(&app)),
                    &json!({ "revision": to }),
                )
                .await?;
            Ok(show(&accepted, |a| {
                format!(
                    "rolling {} back to {}\n",
                    render::text(&a["app"]),
                    render::text(&a["revision"])
                )
            }))
        }
        DeployCommand::History { app, limit } => Ok(show(
            &client
                .get(&format!(
                    "/v1/deployments?app={}&limit={limit}",
                    segment(&app)
                ))
                .await?,
            render::deployments,
        )),
    }
}
