//! `homestation backup` against a running backup service (real PostgreSQL, nats-server and a SeaweedFS S3).

use std::process::Output;

use secrecy::SecretString;
use service_kit::{HttpSettings, Service};
use testkit::TestEnv;

async fn homestation(server: &str, token: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_homestation"))
        .args(args)
        .env("HOMESTATION_BACKUP_SERVER", server)
        .env("HOMESTATION_TOKEN", token)
        // No contexts of whoever runs the tests: an absent config file.
        .env("HOMESTATION_CONFIG", "/nonexistent/homestation/config.toml")
        .env_remove("HOMESTATION_TOKEN_FILE")
        .output()
        .await
        .expect("the CLI runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn policies_run_list_verify_restore_and_drills_from_the_command_line() {
    let env = TestEnv::new().await;
    let s3_server = testkit::s3().await;
    let s3 = backup::s3::S3Settings {
        endpoint: Some(s3_server.endpoint.clone()),
        access_key_id: "test-made-up".into(),
        secret_access_key: SecretString::from("test-made-up-too".to_owned()),
        ..Default::default()
    };
    s3.client()
        .create_bucket()
        .bucket("backups")
        .send()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("hs-cli-backup-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/hosts"), "10.0.0.1 nas\n").unwrap();
    // The key is made here, for this test only.
    std::fs::write(
        dir.join("backup.key"),
        uuid::Uuid::new_v4().as_bytes().repeat(2),
    )
    .unwrap();
    let policies = serde_json::json!([{
        "name": "etc",
        "schedule": "@daily",
        "source": { "kind": "folder", "path": dir.join("data") },
        "drill": { "schedule": "@weekly", "checks": [{ "kind": "files", "paths": ["hosts", "missing.conf"] }] }
    }]);
    let app = backup::Application::build(backup::Config {
        http: HttpSettings::with_port(0),
        database: env.database(),
        nats: env.nats("backup"),
        auth: env.auth(),
        s3,
        bucket: "backups".into(),
        encryption: backup::EncryptionSettings {
            key_file: Some(dir.join("backup.key")),
            ..Default::default()
        },
        policies: serde_json::from_value(policies).unwrap(),
        scratch_dir: dir.join("scratch"),
        ..Default::default()
    })
    .await
    .unwrap();
    let server = format!("http://{}", app.http_addr());
    let running = testkit::spawn(app);
    let (admin, viewer) = (env.tokens.admin.as_str(), env.tokens.viewer.as_str());

    let policies = stdout(&homestation(&server, viewer, &["backup", "policies"]).await);
    assert!(
        policies.contains("etc") && policies.contains("folder") && policies.contains("@daily"),
        "{policies}"
    );

    let ran = homestation(&server, admin, &["backup", "run", "etc"]).await;
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(
        stdout(&ran).contains("succeeded") && stdout(&ran).contains("verified"),
        "{}",
        stdout(&ran)
    );

    let listed = homestation(
        &server,
        viewer,
        &["backup", "list", "--policy", "etc", "-o", "json"],
    )
    .await;
    let backups: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let id = backups[0]["id"].as_str().unwrap().to_owned();

    let verified = homestation(&server, admin, &["backup", "verify", &id]).await;
    assert!(
        verified.status.success() && stdout(&verified).contains("verified"),
        "{}",
        stdout(&verified)
    );
    let denied = homestation(&server, viewer, &["backup", "verify", &id]).await;
    assert_eq!(denied.status.code(), Some(4), "a viewer may not verify");

    let target = dir.join("restored");
    let to = format!("folder:{}", target.display());
    let restored = homestation(&server, admin, &["backup", "restore", &id, "--to", &to]).await;
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(target.join("hosts")).unwrap(),
        "10.0.0.1 nas\n"
    );
    let again = homestation(&server, admin, &["backup", "restore", &id, "--to", &to]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let bad = homestation(&server, admin, &["backup", "restore", &id, "--to", "tape"]).await;
    assert_eq!(bad.status.code(), Some(2), "clap refuses an unknown target");

    let drill = homestation(&server, admin, &["backup", "drills", "--run", "etc"]).await;
    assert_eq!(
        drill.status.code(),
        Some(1),
        "a failed drill fails the command"
    );
    let said = String::from_utf8_lossy(&drill.stderr);
    assert!(
        said.contains("FAIL files") && said.contains("missing.conf"),
        "{said}"
    );
    let drills = stdout(&homestation(&server, viewer, &["backup", "drills"]).await);
    assert!(drills.contains("failed"), "{drills}");

    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
