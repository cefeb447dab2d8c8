//! The `homestation` binary against a running inventory on the real PostgreSQL and nats-server.

use std::process::Output;

use inventory::{Application, Config};
use serde_json::Value;
use service_kit::{HttpSettings, Service};
use testkit::TestEnv;

struct Lab {
    server: String,
    env: TestEnv,
    app: testkit::RunningApp,
}

async fn lab() -> Lab {
    let env = TestEnv::new().await;
    let config = Config {
        http: HttpSettings::with_port(0),
        grpc: HttpSettings::with_port(0),
        database: env.database(),
        nats: env.nats("inventory"),
        auth: env.auth(),
        ..Default::default()
    };
    let app = Application::build(config).await.expect("inventory builds");
    let server = format!("http://{}", app.http_addr());
    Lab {
        server,
        env,
        app: testkit::spawn(app),
    }
}

/// Runs the CLI with `token` (if any) in its environment, as an operator's shell would.
async fn homestation(server: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_homestation"));
    command
        .args(args)
        .env("HOMESTATION_SERVER", server)
        .env_remove("HOMESTATION_TOKEN")
        // No contexts of whoever runs the tests: an absent config file.
        .env("HOMESTATION_CONFIG", "/nonexistent/homestation/config.toml")
        .env_remove("HOMESTATION_TOKEN_FILE");
    if let Some(token) = token {
        command.env("HOMESTATION_TOKEN", token);
    }
    command.output().await.expect("the CLI runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn nodes_add_list_show_remove_and_status() {
    let lab = lab().await;
    let (s, t) = (lab.server.as_str(), lab.env.tokens.admin.as_str());

    let added = homestation(
        s,
        Some(t),
        &[
            "nodes",
            "add",
            "wsl-control",
            "--kind",
            "control",
            "--address",
            "100.64.0.1",
            "--label",
            "homestation.io/role=server",
        ],
    )
    .await;
    assert!(added.status.success(), "{}", stderr(&added));
    assert!(stdout(&added).starts_with("added node wsl-control ("));

    let listed = homestation(s, Some(t), &["nodes", "list"]).await;
    let text = stdout(&listed);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "KIND", "HEALTH", "ADDRESSES", "LAST", "SEEN"]
    );
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["wsl-control", "control", "unknown", "100.64.0.1", "-"]
    );

    let json = homestation(s, Some(t), &["nodes", "list", "--output", "json"]).await;
    let parsed: Value = serde_json::from_slice(&json.stdout).expect("--output json prints JSON");
    assert_eq!(parsed[0]["labels"]["homestation.io/role"], "server");

    let shown = homestation(s, Some(t), &["nodes", "show", "wsl-control"]).await;
    assert!(
        stdout(&shown).contains("kind:          control"),
        "{}",
        stdout(&shown)
    );
    assert!(stdout(&shown).contains("homestation.io/role=server"));

    let status = homestation(s, Some(t), &["status"]).await;
    assert!(status.status.success());
    assert!(
        stdout(&status).contains("Nodes:     1 (1 unknown); 1 control"),
        "{}",
        stdout(&status)
    );
    let status_json = homestation(s, Some(t), &["status", "-o", "json"]).await;
    let summary: Value = serde_json::from_slice(&status_json.stdout).unwrap();
    assert_eq!(summary["nodes"]["total"], 1);

    let removed = homestation(s, Some(t), &["nodes", "remove", "wsl-control"]).await;
    assert_eq!(stdout(&removed), "removed node wsl-control\n");
    let empty = homestation(s, Some(t), &["nodes", "list"]).await;
    assert!(stdout(&empty).starts_with("no nodes yet"));
    lab.app.stop().await.unwrap();
}

#[tokio::test]
async fn errors_say_what_to_do_and_exit_non_zero() {
    let lab = lab().await;
    let s = lab.server.as_str();
    let tokens = &lab.env.tokens;

    let no_token = homestation(s, None, &["status"]).await;
    assert_eq!(no_token.status.code(), Some(2));
    assert!(
        stderr(&no_token).contains("HOMESTATION_TOKEN"),
        "{}",
        stderr(&no_token)
    );

    let wrong_token = homestation(s, Some("not-issued"), &["status"]).await;
    assert_eq!(wrong_token.status.code(), Some(4));
    assert!(stderr(&wrong_token).contains("refused your identity"));

    let viewer_writes = homestation(
        s,
        Some(&tokens.viewer),
        &["nodes", "add", "x1", "--kind", "vm"],
    )
    .await;
    assert_eq!(viewer_writes.status.code(), Some(4));
    assert!(
        stderr(&viewer_writes).contains("developer role"),
        "{}",
        stderr(&viewer_writes)
    );

    let developer_removes =
        homestation(s, Some(&tokens.developer), &["nodes", "remove", "x1"]).await;
    assert_eq!(developer_removes.status.code(), Some(4));

    let bad_name = homestation(
        s,
        Some(&tokens.developer),
        &["nodes", "add", "Bad_Name", "--kind", "vm"],
    )
    .await;
    assert_eq!(bad_name.status.code(), Some(1));
    assert!(
        stderr(&bad_name).contains("name: \"Bad_Name\" is not a valid name"),
        "{}",
        stderr(&bad_name)
    );

    let missing = homestation(s, Some(&tokens.viewer), &["nodes", "show", "ghost"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no node ghost"));

    let bad_kind = homestation(
        s,
        Some(&tokens.viewer),
        &["nodes", "list", "--kind", "toaster"],
    )
    .await;
    assert_eq!(
        bad_kind.status.code(),
        Some(2),
        "clap refuses it before any request"
    );

    lab.app.stop().await.unwrap();
    let down = homestation(s, Some(&tokens.viewer), &["status"]).await;
    assert_eq!(down.status.code(), Some(3));
    assert!(stderr(&down).contains("make dev"), "{}", stderr(&down));
}

#[tokio::test]
async fn the_token_can_come_from_a_file() {
    let lab = lab().await;
    let dir = std::env::temp_dir().join(format!("hs-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, format!("{}\n", lab.env.tokens.viewer)).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_homestation"))
        .args(["services", "list"])
        .env("HOMESTATION_SERVER", &lab.server)
        .env("HOMESTATION_CONFIG", "/nonexistent/homestation/config.toml")
        .env_remove("HOMESTATION_TOKEN")
        .env("HOMESTATION_TOKEN_FILE", &file)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "no services yet\n");
    std::fs::remove_dir_all(&dir).unwrap();
    lab.app.stop().await.unwrap();
}
