//! `lab FILE`: starts the end-to-end lab (the five services against real PostgreSQL, nats-server, OpenBao
//! and SeaweedFS) and writes what a client needs to FILE as JSON — `{"admin": token, "services": {name: base URL}}`
//! — then runs until SIGTERM or Ctrl-C, when it stops the services and removes the lab. `make security`
//! points schemathesis at it. The admin token is made at start and lives only in FILE (remove it after).

use std::collections::BTreeMap;

#[tokio::main]
async fn main() {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!(
            "usage: lab FILE  (writes the services' URLs and an admin token to FILE, runs until SIGTERM)"
        );
        std::process::exit(2);
    };
    let mut lab = e2e::Lab::start(None).await;
    let services: BTreeMap<&str, &str> = lab
        .services
        .iter()
        .map(|s| (s.name, s.base.as_str()))
        .collect();
    let doc = serde_json::json!({ "admin": lab.admin, "services": services });
    std::fs::write(&out, doc.to_string()).expect("write the lab's file");
    eprintln!("lab: ready, described in {out}; SIGTERM or Ctrl-C stops it");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    lab.stop();
}
