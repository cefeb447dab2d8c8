//! `homestation bus`: the lab's NATS authorization as the chart carries it (checked against what libs/bus
//! derives), and the configuration `make dev` runs, started on a real nats-server 2.15 and enforced.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn homestation(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_homestation"))
        .args(args)
        .output()
        .expect("the CLI runs");
    assert!(
        out.status.success(),
        "homestation {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_charts_accounts_are_what_libs_bus_derives() {
    let file = root().join("argocd/platform/nats-accounts.yaml");
    let committed = std::fs::read_to_string(&file).unwrap();
    assert!(
        committed == homestation(&["bus", "chart-values"]),
        "argocd/platform/nats-accounts.yaml is stale: run \
         `cargo run -p homestation -- bus chart-values > argocd/platform/nats-accounts.yaml`"
    );
    // Every password is a reference the pod's environment fills (from Vault), never a value.
    for line in committed.lines().filter(|l| l.contains("\"password\": ")) {
        assert!(line.contains("\"<< $NATS_PASSWORD_"), "{line}");
    }
}

#[test]
fn every_services_vault_agent_reads_its_own_nats_password() {
    for service in bus::access::service_names() {
        let chart = ["charts", "charts/apps"]
            .iter()
            .map(|dir| root().join(dir).join(service).join("values.yaml"))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no chart for {service}"));
        let values = std::fs::read_to_string(&chart).unwrap();
        let own = format!("secret/data/homestation/nats/{service}\"");
        assert!(
            values.contains(&own),
            "{} does not read {own}",
            chart.display()
        );
        let others = values.matches("secret/data/homestation/nats/").count();
        let expected = if service == "edge-registry" { 2 } else { 1 };
        assert_eq!(
            others,
            expected,
            "{}: only its own (and edge-registry the callout's)",
            chart.display()
        );
    }
}

#[tokio::test]
async fn the_dev_configuration_runs_on_nats_server_and_admits_only_the_services() {
    let dir = std::env::temp_dir().join(format!("hs-bus-{}", uuid::Uuid::new_v4().simple()));
    let seed = dir.join("issuer.seed");
    let issuer = homestation(&["bus", "issuer", "--seed-file", seed.to_str().unwrap()]);
    assert_eq!(
        homestation(&["bus", "issuer", "--seed-file", seed.to_str().unwrap()]),
        issuer,
        "the seed is made once and kept"
    );
    let port = testkit::free_port();
    let passwords = dir.join("passwords");
    let config = homestation(&[
        "bus",
        "server-config",
        "--issuer",
        issuer.trim(),
        "--password-dir",
        passwords.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--store-dir",
        dir.join("js").to_str().unwrap(),
    ]);
    std::fs::write(dir.join("nats.json"), config).unwrap();
    let mut server = Command::new(testkit::nats_server_binary())
        .arg("-c")
        .arg(dir.join("nats.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let url = format!("nats://127.0.0.1:{port}");
    let password = std::fs::read_to_string(passwords.join("inventory")).unwrap();
    let admitted = testkit::eventually(
        "nats-server to admit inventory",
        Duration::from_secs(10),
        || async {
            testkit::connect_once(&url, Some(("inventory", password.trim())))
                .await
                .ok()
        },
    )
    .await;
    assert!(
        testkit::connect_once(&url, None).await.is_err(),
        "an anonymous client"
    );
    assert!(
        testkit::connect_once(&url, Some(("inventory", "guess")))
            .await
            .is_err(),
        "a wrong password"
    );
    drop(admitted);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
