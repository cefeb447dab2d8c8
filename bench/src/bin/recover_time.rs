//! The recover-time SLO (issue 10): each of the five services, a release binary under a supervisor that
//! starts it again at once (as a kubelet's first restart), is killed with SIGKILL KILLS times (default 10);
//! the time from the kill to a green `/readyz` is measured each time. The baseline is `bare-ready`, an
//! axum server ready as soon as it listens, under the same supervisor: the ratio says how much of the
//! recovery is the service's own start (config, migrations, NATS, streams) rather than process start.
//! Goal: every service ready again in under 5 s (the promise is 2 minutes).
//!
//! `make bench-recover` builds the release binaries and runs it.

use std::time::Instant;

use e2e::{Lab, Launch, Supervisor};
use homestation_bench::{append_result, quantile, release_binary, setting};

/// Kills what `supervisor` runs `kills` times; the seconds from each kill to a green `/readyz` at `base`.
async fn recoveries(
    client: &reqwest::Client,
    supervisor: &Supervisor,
    base: &str,
    kills: usize,
) -> Vec<f64> {
    let mut times = Vec::with_capacity(kills);
    for _ in 0..kills {
        let killed = Instant::now();
        supervisor.kill();
        e2e::ready(client, base).await;
        times.push(killed.elapsed().as_secs_f64());
    }
    times
}

#[tokio::main]
async fn main() {
    let kills = setting("KILLS", 10);
    let mut lab = Lab::start_with(None, release_binary).await;
    let client = lab.client.clone();

    let port = e2e::free_port();
    let bare_base = format!("http://127.0.0.1:{port}");
    let mut bare = Supervisor::start(Launch {
        program: release_binary("bare-ready"),
        args: Vec::new(),
        env: vec![("PORT".into(), port.to_string())],
        log: lab.dir.join("bare-ready.log"),
    });
    e2e::ready(&client, &bare_base).await;
    let mut baseline = recoveries(&client, &bare, &bare_base, kills).await;
    let bare_p50 = quantile(&mut baseline, 0.5);
    let bare_max = quantile(&mut baseline, 1.0);

    let mut rows = vec![format!(
        "| bare-ready (baseline) | {:.0} ms | {:.0} ms | 1.0 |",
        bare_p50 * 1000.0,
        bare_max * 1000.0
    )];
    let mut worst: f64 = 0.0;
    for service in &lab.services {
        let mut times = recoveries(&client, &service.supervisor, &service.base, kills).await;
        let (p50, max) = (quantile(&mut times, 0.5), quantile(&mut times, 1.0));
        worst = worst.max(max);
        rows.push(format!(
            "| {} | {:.0} ms | {:.0} ms | {:.1} |",
            service.name,
            p50 * 1000.0,
            max * 1000.0,
            p50 / bare_p50
        ));
    }
    bare.stop();
    lab.stop();

    let table = format!(
        "## recover-time, {}\n\n{kills} SIGKILLs of each release binary under a supervisor that starts it again at once; \
         time from the kill to a green `/readyz` (its database and NATS answering). Same 2-core machine, \
         local PostgreSQL and nats-server.\n\n\
         | process | p50 | max | p50 ÷ baseline p50 |\n|---|---|---|---|\n{}\n\n\
         Goal: every service ready again in under 5 s ({}: the slowest took {:.0} ms); the promise is 2 minutes.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        rows.join("\n"),
        if worst < 5.0 { "met" } else { "NOT met" },
        worst * 1000.0,
    );
    println!("{table}");
    append_result("recover-time", &table);
}
