//! A failed run and a passed drill of the real backup service show in the real inventory's summary, through
//! the bus: what an operator sees in `homestation status` and on the Homepage dashboard.

use reqwest::Method;
use serde_json::json;
use service_kit::{HttpSettings, Service};

mod common;
use common::TestBackup;

#[tokio::test]
async fn runs_and_drills_of_the_backup_service_reach_inventorys_summary() {
    let folder = common::scratch_dir();
    std::fs::write(folder.join("a.txt"), "a").unwrap();
    let app = TestBackup::start(json!([
        { "name": "gone", "retries": 0, "source": { "kind": "folder", "path": "/nonexistent/homestation" } },
        { "name": "notes", "source": { "kind": "folder", "path": folder },
          "drill": { "schedule": "@weekly", "checks": [{ "kind": "files", "paths": ["a.txt"] }] } }
    ]))
    .await;
    let inventory_db = testkit::database().await;
    let inventory = inventory::Application::build(inventory::Config {
        http: HttpSettings::with_port(0),
        grpc: HttpSettings::with_port(0),
        database: service_kit::DatabaseSettings {
            url: secrecy::SecretString::from(inventory_db.url.clone()),
            ..Default::default()
        },
        nats: app.env.nats("inventory"),
        auth: app.env.auth(),
        ..Default::default()
    })
    .await
    .expect("inventory builds");
    let summary_url = format!("http://{}/v1/summary", inventory.http_addr());
    let inventory = testkit::spawn(inventory);

    assert_eq!(app.run("gone").await["status"], "failed");
    assert_eq!(app.run("notes").await["status"], "succeeded");
    let (_, drill) = app
        .request(
            Method::POST,
            "/v1/policies/notes/drills",
            &app.env.tokens.developer,
            None,
        )
        .await;
    assert_eq!(drill["status"], "passed", "{drill}");

    let summary = testkit::eventually(
        "inventory to show the runs and the drill",
        std::time::Duration::from_secs(30),
        || async {
            let s: serde_json::Value = app
                .client
                .get(&summary_url)
                .bearer_auth(&app.env.tokens.viewer)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let backups = s["backups"].as_array()?;
            let status = |p: &str| {
                backups
                    .iter()
                    .find(|b| b["key"] == p)
                    .map(|b| b["status"].clone())
            };
            (status("gone") == Some(json!("failed"))
                && status("notes") == Some(json!("succeeded"))
                && s["drills"][0]["status"] == "passed")
                .then_some(s)
        },
    )
    .await;
    let gone = summary["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["key"] == "gone")
        .unwrap();
    assert!(
        gone["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("is not a folder"),
        "{gone}"
    );
    inventory.stop().await.unwrap();
    app.stop().await;
    let _ = std::fs::remove_dir_all(folder);
}
