//! `homestation secrets`: rotation policies, rotating now, the audit trail, and the generated Vault policies.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{CliError, Client, segment};
use crate::render::{self, text};

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Rotation policies: path, kind, schedule, consumers, Deployments, last rotation.
    Policies,
    /// Rotate a secret now (Admin) and wait for the result (exit 1 unless it is done).
    Rotate {
        /// The secret's path (from `homestation secrets policies`).
        path: String,
    },
    /// The audit trail (Admin): who rotated what, when, and the result.
    History {
        /// Only this secret's rotations.
        path: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The least-privilege Vault policies the rotation policies imply (Admin); --out writes one .hcl each.
    VaultPolicies {
        /// A folder to write `<policy>.hcl` files into.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub async fn run(
    client: &Client,
    command: SecretsCommand,
    json_out: bool,
) -> Result<String, CliError> {
    let show = |v: &Value, table: fn(&Value) -> String| crate::output(v, json_out, table);
    match command {
        SecretsCommand::Policies => Ok(show(
            &client.get("/v1/policies").await?,
            render::rotation_policies,
        )),
        SecretsCommand::Rotate { path } => {
            let rotation = client
                .post("/v1/rotations", &json!({ "path": path }))
                .await?;
            let out = show(&rotation, render::rotation);
            if rotation["phase"] == "done" {
                Ok(out)
            } else {
                Err(CliError::Failed(out.trim_end().to_owned()))
            }
        }
        SecretsCommand::History { path, limit } => {
            let mut query = format!("/v1/rotations?limit={limit}");
            if let Some(p) = path {
                query.push_str(&format!("&path={}", segment(&p)));
            }
            Ok(show(&client.get(&query).await?, render::rotations))
        }
        SecretsCommand::VaultPolicies { out } => {
            let policies = client.get("/v1/vault-policies").await?;
            let Some(dir) = out else {
                return Ok(show(&policies, |p| {
                    p.as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(name, hcl)| format!("# {name}\n{}\n", text(hcl)))
                                .collect()
                        })
                        .unwrap_or_default()
                }));
            };
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::Failed(format!("creating {}: {e}", dir.display())))?;
            let mut written = Vec::new();
            for (name, hcl) in policies.as_object().into_iter().flatten() {
                let file = dir.join(format!("{name}.hcl"));
                std::fs::write(&file, text(hcl))
                    .map_err(|e| CliError::Failed(format!("writing {}: {e}", file.display())))?;
                written.push(file.display().to_string());
            }
            Ok(format!("wrote {}\n", written.join(", ")))
        }
    }
}
