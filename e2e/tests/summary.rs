//! Runs and drills of the backup service reach inventory's summary through the bus, a failure with its
//! reason: what an operator sees in `homestation status` and on the Homepage dashboard. The lab's binaries
//! against real servers (this test lived in backup's crate, which then depended on inventory's).

use std::time::Duration;

use serde_json::{Value, json};

#[tokio::test]
async fn runs_and_drills_of_the_backup_service_reach_inventorys_summary() {
    let lab = e2e::Lab::start(None).await;
    // `gone` backs up a folder that is not there; `lab-files` the lab's data folder, with a weekly drill.
    for policy in ["gone", "lab-files"] {
        let started = lab
            .post("backup", &format!("/v1/policies/{policy}/runs"))
            .send()
            .await
            .expect("backup answers");
        assert_eq!(started.status(), 202, "{policy}");
    }
    let status_of = |backups: &Value, policy: &str| {
        backups
            .as_array()
            .and_then(|all| all.iter().find(|b| b["policy"] == policy))
            .map(|b| b["status"].clone())
    };
    testkit::eventually("both runs to finish", Duration::from_secs(60), || async {
        let backups = lab.get_json("backup", "/v1/backups").await?;
        (status_of(&backups, "gone") == Some(json!("failed"))
            && status_of(&backups, "lab-files") == Some(json!("succeeded")))
        .then_some(())
    })
    .await;
    let drill = lab
        .post("backup", "/v1/policies/lab-files/drills")
        .send()
        .await
        .expect("backup answers");
    let drill: Value = drill.json().await.expect("the drill as JSON");
    assert_eq!(drill["status"], "passed", "{drill}");

    let summary = testkit::eventually(
        "inventory to show the runs and the drill",
        Duration::from_secs(30),
        || async {
            let s = lab.get_json("inventory", "/v1/summary").await?;
            let backups = s["backups"].as_array()?;
            let status = |p: &str| {
                backups
                    .iter()
                    .find(|b| b["key"] == p)
                    .map(|b| b["status"].clone())
            };
            (status("gone") == Some(json!("failed"))
                && status("lab-files") == Some(json!("succeeded"))
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
}
