//! Starting the real binary with a bad config or an unreachable dependency: one line on stderr, non-zero exit.

use std::time::Duration;

use tokio::process::Command;

async fn run_with(vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inventory"));
    command
        .env("HOMESTATION_LOG_FORMAT", "json")
        .env("RUST_LOG", "off");
    for (k, v) in vars {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("exits promptly")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_bad_config_is_one_line_and_exit_1() {
    let (code, stderr) = run_with(&[("HOMESTATION_INVENTORY__HTTP__PORT", "eighty")]).await;
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("inventory: invalid configuration:"),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("http.port"),
        "names the key: {stderr}"
    );

    let (code, stderr) = run_with(&[("HOMESTATION_INVENTORY__HTTP__COLOUR", "red")]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.to_lowercase().contains("colour"),
        "unknown keys are named: {stderr}"
    );

    let (code, stderr) = run_with(&[(
        "HOMESTATION_INVENTORY__AUTH__SERVICE_TOKENS",
        "[{name=\"x\",sha256=\"short\",role=\"admin\"}]",
    )])
    .await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("64 hex digits"), "{stderr}");

    let (code, stderr) =
        run_with(&[("HOMESTATION_CONFIG_FILE", "/nonexistent/inventory.toml")]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/nonexistent/inventory.toml"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_database_fails_the_start_with_the_reason() {
    let (code, stderr) = run_with(&[
        (
            "HOMESTATION_INVENTORY__DATABASE__URL",
            "postgres://postgres@127.0.0.1:1/none",
        ),
        ("HOMESTATION_INVENTORY__DATABASE__CONNECT_TIMEOUT_SECS", "1"),
    ])
    .await;
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("inventory: migrating the database:"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("postgres://"),
        "the database URL (a secret) is never printed: {stderr}"
    );
}
