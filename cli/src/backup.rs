//! `homestation backup`: policies, runs with a progress bar, the catalog, verify, restore and drills.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{CliError, Client, segment};
use crate::render::{self, bytes, text};

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Policies with their schedule, retention, last run, last success and last drill.
    Policies,
    /// Run a policy now and follow it (bytes, rate and ETA on a terminal) until its last try ends.
    Run {
        /// The policy's name (from `homestation backup policies`).
        policy: String,
        /// Start the run and return at once, printing its id.
        #[arg(long)]
        no_wait: bool,
    },
    /// The catalog, newest first: every run with its status, size and reason.
    List {
        /// Only this policy's backups.
        #[arg(long)]
        policy: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Download a backup, decrypt every chunk and check both SHA-256 (exit 1 when it does not verify).
    Verify {
        /// The backup's id (from `homestation backup list`).
        id: String,
    },
    /// Restore a backup (Admin). Nothing existing is replaced without --force.
    Restore {
        /// The backup's id (from `homestation backup list`).
        id: String,
        /// database[:NAME] (a new database by default), folder:/ABSOLUTE/PATH, or vault.
        #[arg(long, value_parser = parse_target)]
        to: Value,
        /// Replace an existing database or non-empty folder, or restore over the live Vault.
        #[arg(long)]
        force: bool,
    },
    /// Restore drills and their results; --run POLICY runs one now.
    Drills {
        #[arg(long)]
        policy: Option<String>,
        /// Run a drill of this policy's newest backup now and print its result (exit 1 when it fails).
        #[arg(long, value_name = "POLICY", conflicts_with = "policy")]
        run: Option<String>,
    },
}

fn parse_target(raw: &str) -> Result<Value, String> {
    match raw.split_once(':') {
        None if raw == "database" => Ok(json!({ "kind": "database" })),
        None if raw == "vault" => Ok(json!({ "kind": "vault" })),
        Some(("database", name)) if !name.is_empty() => {
            Ok(json!({ "kind": "database", "name": name }))
        }
        Some(("folder", path)) if path.starts_with('/') => {
            Ok(json!({ "kind": "folder", "path": path }))
        }
        Some(("folder", _)) => Err("folder:PATH needs an absolute path".into()),
        _ => Err(format!(
            "{raw:?}: use database, database:NAME, folder:/ABSOLUTE/PATH or vault"
        )),
    }
}

pub async fn run(
    client: &Client,
    command: BackupCommand,
    json_out: bool,
) -> Result<String, CliError> {
    let show = |v: &Value, table: fn(&Value) -> String| crate::output(v, json_out, table);
    match command {
        BackupCommand::Policies => Ok(show(&client.get("/v1/policies").await?, render::policies)),
        BackupCommand::Run { policy, no_wait } => {
            let started = client
                .post(
                    &format!("/v1/policies/{}/runs", segment(&policy)),
                    &Value::Null,
                )
                .await?;
            if no_wait {
                return Ok(show(&started, |s| {
                    format!("started run {}\n", text(&s["run_id"]))
                }));
            }
            let last = follow(
                client,
                &policy,
                !json_out && std::io::stderr().is_terminal(),
            )
            .await?;
            let out = show(&last, render::backup_result);
            if last["status"] == "succeeded" {
                Ok(out)
            } else {
                Err(CliError::Failed(out.trim_end().to_owned()))
            }
        }
        BackupCommand::List { policy, limit } => {
            let mut path = format!("/v1/backups?limit={limit}");
            if let Some(p) = policy {
                path.push_str(&format!("&policy={}", segment(&p)));
            }
            Ok(show(&client.get(&path).await?, render::backups))
        }
        BackupCommand::Verify { id } => {
            let verified = client
                .post(
                    &format!("/v1/backups/{}/verify", segment(&id)),
                    &Value::Null,
                )
                .await?;
            let out = show(&verified, |v| match v["verified"].as_bool() {
                Some(true) => format!(
                    "backup {} verified: every chunk authenticated, both SHA-256 match\n",
                    text(&v["backup_id"])
                ),
                _ => format!(
                    "backup {} does NOT verify: {}\n",
                    text(&v["backup_id"]),
                    text(&v["reason"])
                ),
            });
            if verified["verified"] == true {
                Ok(out)
            } else {
                Err(CliError::Failed(out.trim_end().to_owned()))
            }
        }
        BackupCommand::Restore { id, to, force } => {
            let restored = client
                .post(
                    &format!("/v1/backups/{}/restore", segment(&id)),
                    &json!({ "to": to, "force": force }),
                )
                .await?;
            Ok(show(&restored, |r| {
                format!(
                    "restored backup {} into {} ({} in {:.1} s)\n",
                    text(&r["backup_id"]),
                    text(&r["target"]),
                    bytes(r["bytes"].as_u64().unwrap_or(0)),
                    r["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
                )
            }))
        }
        BackupCommand::Drills { run: Some(run), .. } => {
            let drill = client
                .post(
                    &format!("/v1/policies/{}/drills", segment(&run)),
                    &Value::Null,
                )
                .await?;
            let out = show(&drill, render::drill);
            if drill["status"] == "passed" {
                Ok(out)
            } else {
                Err(CliError::Failed(out.trim_end().to_owned()))
            }
        }
        BackupCommand::Drills { policy, run: None } => {
            let path = match policy {
                Some(p) => format!("/v1/drills?policy={}", segment(&p)),
                None => "/v1/drills".to_owned(),
            };
            Ok(show(&client.get(&path).await?, render::drills))
        }
    }
}

/// Polls the policy until no try of it is running; draws progress on stderr when it is a terminal.
async fn follow(client: &Client, policy: &str, bar: bool) -> Result<Value, CliError> {
    let began = Instant::now();
    let mut shown_try = None;
    loop {
        let policies = client.get("/v1/policies").await?;
        let p = policies
            .as_array()
            .and_then(|all| all.iter().find(|p| p["name"] == policy))
            .cloned()
            .ok_or_else(|| CliError::NotFound(format!("policy {policy} is gone")))?;
        let running = &p["running"];
        if running.is_null() {
            if bar {
                eprint!("\r\x1b[2K");
            }
            return Ok(p["last_run"].clone());
        }
        if bar {
            let run = running["run_id"].clone();
            if shown_try.as_ref() != Some(&run) {
                if shown_try.is_some() {
                    eprintln!("\r\x1b[2Kthe try failed; retrying per the policy");
                }
                shown_try = Some(run);
            }
            let done = running["bytes"].as_u64().unwrap_or(0);
            let expected = running["expected_bytes"].as_u64();
            eprint!(
                "\r\x1b[2K{}",
                progress_line(done, expected, began.elapsed())
            );
            let _ = std::io::stderr().flush();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `[#####.....]  12.0 MiB / 40.0 MiB  8.0 MiB/s  ETA 4s`; the total is the previous backup's size.
pub fn progress_line(done: u64, expected: Option<u64>, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    let rate_text = format!("{}/s", bytes(rate as u64));
    match expected.filter(|e| *e > 0) {
        Some(total) => {
            let fraction = (done as f64 / total as f64).min(1.0);
            let filled = (fraction * 24.0).round() as usize;
            let eta = if rate > 0.0 && done < total {
                format!("ETA {}s", ((total - done) as f64 / rate).ceil() as u64)
            } else {
                "ETA -".into()
            };
            format!(
                "[{}{}] {} / ~{}  {rate_text}  {eta}",
                "#".repeat(filled),
                ".".repeat(24 - filled),
                bytes(done),
                bytes(total)
            )
        }
        None => format!("{} read  {rate_text}", bytes(done)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_say_what_is_accepted() {
        assert_eq!(
            parse_target("database").unwrap(),
            json!({ "kind": "database" })
        );
        assert_eq!(
            parse_target("database:shop_copy").unwrap()["name"],
            "shop_copy"
        );
        assert_eq!(
            parse_target("folder:/srv/restore").unwrap()["path"],
            "/srv/restore"
        );
        assert!(
            parse_target("folder:relative")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(parse_target("s3").unwrap_err().contains("database:NAME"));
    }

    #[test]
    fn progress_shows_bytes_rate_and_eta() {
        let line = progress_line(10 << 20, Some(40 << 20), Duration::from_secs(2));
        assert_eq!(
            line,
            "[######..................] 10.0 MiB / ~40.0 MiB  5.0 MiB/s  ETA 6s"
        );
        assert_eq!(
            progress_line(3 << 20, None, Duration::from_secs(1)),
            "3.0 MiB read  3.0 MiB/s"
        );
    }
}
