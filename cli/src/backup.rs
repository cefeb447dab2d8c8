//! `homestation backup`: policies, runs with a progress bar, the catalog, verify, restore and drills.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
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
            // indicatif draws on stderr only when it is a terminal; JSON output wants no bar at all.
            let target = if json_out || !std::io::stderr().is_terminal() {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            };
            let last = follow(client, &policy, Progress::new(target)).await?;
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

/// Polls the policy until no try of it is running, showing its progress on `progress` (hidden unless
/// stderr is a terminal and the output is a table).
async fn follow(client: &Client, policy: &str, progress: Progress) -> Result<Value, CliError> {
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
            progress.bar.finish_and_clear();
            return Ok(p["last_run"].clone());
        }
        let run = running["run_id"].clone();
        if shown_try.as_ref() != Some(&run) {
            if shown_try.is_some() {
                progress
                    .bar
                    .println("the try failed; retrying per the policy");
                progress.bar.reset();
            }
            shown_try = Some(run);
        }
        progress.show(
            running["bytes"].as_u64().unwrap_or(0),
            running["expected_bytes"].as_u64(),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A run's progress (indicatif): `[#####.....] 12.00 MiB / ~40.00 MiB  8.00 MiB/s  ETA 4s` against the
/// previous backup's size, or `3.00 MiB read  1.00 MiB/s` while there is none.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    const KNOWN: &str =
        "[{bar:24}] {binary_bytes} / ~{binary_total_bytes}  {binary_bytes_per_sec}  ETA {eta}";
    const UNKNOWN: &str = "{binary_bytes} read  {binary_bytes_per_sec}";

    pub fn new(target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(Self::style(Self::UNKNOWN));
        Self { bar }
    }

    fn style(template: &str) -> ProgressStyle {
        ProgressStyle::with_template(template)
            .expect("the templates are valid")
            .progress_chars("#.")
    }

    pub fn show(&self, done: u64, expected: Option<u64>) {
        let length = expected.filter(|e| *e > 0);
        if self.bar.length() != length {
            match length {
                Some(total) => {
                    self.bar.set_style(Self::style(Self::KNOWN));
                    self.bar.set_length(total);
                }
                None => {
                    self.bar.set_style(Self::style(Self::UNKNOWN));
                    self.bar.unset_length();
                }
            }
        }
        self.bar.set_position(done);
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

    /// A terminal of 100 columns that keeps what is drawn on it (in place of stderr).
    #[derive(Debug, Clone, Default)]
    struct Screen(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            // Only what can be read: indicatif pads and clears with blanks too.
            if !s.trim().is_empty() {
                self.0.lock().unwrap().push(s.trim_end().to_owned());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn progress_shows_bytes_rate_and_eta() {
        let screen = Screen::default();
        let drawn = || screen.0.lock().unwrap().last().cloned().unwrap_or_default();
        let progress = Progress::new(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        progress.show(10 << 20, Some(40 << 20));
        let line = drawn();
        assert!(
            line.starts_with("[######..................] 10.00 MiB / ~40.00 MiB  "),
            "{line:?}"
        );
        assert!(line.contains("/s  ETA "), "{line:?}");
        let unknown = Progress::new(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        unknown.show(3 << 20, None);
        let line = drawn();
        assert!(line.starts_with("3.00 MiB read  "), "{line:?}");
        assert!(line.ends_with("/s"), "{line:?}");
    }
}
