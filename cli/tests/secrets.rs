//! `homestation secrets` against a running secrets-rotator (real PostgreSQL, nats-server and OpenBao).

use std::process::Output;

use secrecy::SecretString;
use service_kit::{HttpSettings, Service, VaultSettings};
use testkit::TestEnv;

async fn homestation(server: &str, token: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_homestation"))
        .args(args)
        .env("HOMESTATION_SECRETS_SERVER", server)
        .env("HOMESTATION_TOKEN", token)
        // No contexts of whoever runs the tests: an absent config file.
        .env("HOMESTATION_CONFIG", "/nonexistent/homestation/config.toml")
        .env_remove("HOMESTATION_TOKEN_FILE")
        .output()
        .await
        .expect("the CLI runs")
}

#[tokio::test]
async fn policies_rotate_history_and_vault_policies_from_the_command_line() {
    let env = TestEnv::new().await;
    let bao = testkit::openbao().await;
    bao.kv_put("apps/shop/api", serde_json::json!({ "token": "before" }))
        .await;
    let policies = serde_json::json!([{
        "name": "shop-api",
        "schedule": "0 4 1 * *",
        "consumers": [],
        "target": { "kind": "kv", "path": "apps/shop/api", "generator": { "kind": "api_token", "key": "token" } }
    }]);
    let app = secrets_rotator::Application::build(secrets_rotator::Config {
        http: HttpSettings::with_port(0),
        database: env.database(),
        nats: env.nats("secrets-rotator"),
        auth: env.auth(),
        vault: VaultSettings {
            address: bao.address.clone(),
            token: SecretString::from(bao.root_token.clone()),
            kv_mount: "secret".into(),
        },
        policies: serde_json::from_value(policies).unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let server = format!("http://{}", app.http_addr());
    let running = testkit::spawn(app);
    let (admin, viewer) = (env.tokens.admin.as_str(), env.tokens.viewer.as_str());
    let out = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let listed = out(&homestation(&server, viewer, &["secrets", "policies"]).await);
    assert!(
        listed.contains("apps/shop/api") && listed.contains("0 4 1 * *"),
        "{listed}"
    );

    let rotated = homestation(&server, admin, &["secrets", "rotate", "apps/shop/api"]).await;
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(
        out(&rotated).contains("apps/shop/api done") && out(&rotated).contains("1 → 2"),
        "{}",
        out(&rotated)
    );
    let unknown = homestation(&server, admin, &["secrets", "rotate", "apps/nothing"]).await;
    assert_eq!(unknown.status.code(), Some(1));

    let history = out(&homestation(&server, admin, &["secrets", "history", "apps/shop/api"]).await);
    assert!(
        history.contains("token:admin") && history.contains("done"),
        "{history}"
    );
    let denied = homestation(&server, viewer, &["secrets", "history"]).await;
    assert_eq!(
        denied.status.code(),
        Some(4),
        "the audit trail is for Admins"
    );

    let dir = std::env::temp_dir().join(format!(
        "hs-vault-policies-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let wrote = homestation(
        &server,
        admin,
        &["secrets", "vault-policies", "--out", dir.to_str().unwrap()],
    )
    .await;
    assert!(
        wrote.status.success(),
        "{}",
        String::from_utf8_lossy(&wrote.stderr)
    );
    let hcl = std::fs::read_to_string(dir.join("homestation-secrets-rotator.hcl")).unwrap();
    assert!(hcl.contains("path \"secret/data/apps/shop/api\""), "{hcl}");

    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
