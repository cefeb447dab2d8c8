//! 10,000 simulated edge nodes heartbeating every second into edge-registry, on a nats-server with the lab's
//! authorization and this machine's PostgreSQL, beside a bare async-nats subscriber on the same subject as the baseline.
//!
//! Steady phase: every node once a second, spread evenly; prints the registry's heartbeat lag p50/p99 (from its
//! own histogram) next to the bare subscriber's. Saturation phase: heartbeats as fast as one publisher sends them,
//! first to the registry alone, then to the bare subscriber alone; prints both rates and their ratio.
//! Goals (issue 3): p99 lag under 100 ms; at least half the bare rate.
//!
//! `make bench-edge` runs it in release mode. NODES, STEADY_SECS and BURST override the sizes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus::{Envelope, Event, NodeHeartbeat};
use futures_util::StreamExt;
use homestation_bench::{counter, histogram_quantile, quantile, setting};
use service_kit::{HttpSettings, Service};
use uuid::Uuid;

/// Receives heartbeats and measures their lag, doing nothing else: the baseline.
struct Bare {
    received: Arc<AtomicU64>,
    lags: Arc<Mutex<Vec<f64>>>,
    last: Arc<Mutex<Option<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn bare(client: &async_nats::Client, subject: String) -> Bare {
    #[derive(serde::Deserialize)]
    struct Stamp {
        occurred_at: chrono::DateTime<chrono::Utc>,
    }
    let mut subscription = client.subscribe(subject).await.unwrap();
    client.flush().await.unwrap();
    let (received, lags, last) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(None)),
    );
    let (r, l, t) = (received.clone(), lags.clone(), last.clone());
    let task = tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            if let Ok(stamp) = serde_json::from_slice::<Stamp>(&message.payload) {
                let lag = (chrono::Utc::now() - stamp.occurred_at)
                    .to_std()
                    .map_or(0.0, |d| d.as_secs_f64());
                l.lock().unwrap().push(lag);
            }
            r.fetch_add(1, Ordering::Relaxed);
            *t.lock().unwrap() = Some(Instant::now());
        }
    });
    Bare {
        received,
        lags,
        last,
        task,
    }
}

fn heartbeat(ns: &bus::Namespace, node: Uuid) -> (String, Vec<u8>) {
    let envelope = Envelope::new(
        "bench-agent",
        Event::NodeHeartbeat(NodeHeartbeat {
            node_id: node,
            load1: 0.5,
            gpu_utilization_pct: Some(30.0),
            temperature_c: Some(45.0),
            disk_free_bytes: Some(1 << 35),
        }),
    );
    (ns.subject(&envelope.event.subject()), envelope.to_bytes())
}

async fn registry_metrics(client: &reqwest_lite::Client, base: &str) -> String {
    client.get(&format!("{base}/metrics")).await
}

/// Publishes `count` heartbeats round-robin over `nodes` as fast as the client takes them.
async fn burst(
    client: &async_nats::Client,
    ns: &bus::Namespace,
    nodes: &[Uuid],
    count: usize,
) -> Duration {
    let started = Instant::now();
    for i in 0..count {
        let (subject, payload) = heartbeat(ns, nodes[i % nodes.len()]);
        client.publish(subject, payload.into()).await.unwrap();
    }
    client.flush().await.unwrap();
    started.elapsed()
}

mod reqwest_lite {
    //! The smallest HTTP GET over tokio, so the benchmark does not pull in a client stack it does not measure.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub struct Client;

    impl Client {
        pub async fn get(&self, url: &str) -> String {
            let rest = url.strip_prefix("http://").expect("http URL");
            let (host, path) = rest
                .split_once('/')
                .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
            let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut response = String::new();
            stream.read_to_string(&mut response).await.expect("read");
            response
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_owned())
                .unwrap_or_default()
        }
    }
}

#[tokio::main]
async fn main() {
    let nodes_n = setting("NODES", 10_000);
    let steady_secs = setting("STEADY_SECS", 10);
    let burst_n = setting("BURST", 200_000);
    let env = testkit::TestEnv::new().await;
    let registry = edge_registry::Application::build(edge_registry::Config {
        http: HttpSettings::with_port(0),
        enrol: HttpSettings::with_port(0),
        database: env.database(),
        nats: env.nats("edge-registry"),
        auth: env.auth(),
        callout: edge_registry::bus_access::CalloutSettings {
            issuer_seed: Some(env.bus.issuer_seed()),
            ..Default::default()
        },
        liveness: edge_registry::liveness::LivenessSettings {
            heartbeat_interval_secs: 1,
            stale_after_missed: 30,
            offline_after_missed: 60,
            check_interval_ms: 1000,
        },
        ..Default::default()
    })
    .await
    .expect("edge-registry builds");
    let base = format!("http://{}", registry.http_addr());

    // The fleet, written straight into the registry's tables: enrolment has its own tests.
    let pool = sqlx::PgPool::connect(&env.db.url).await.unwrap();
    let token = Uuid::now_v7();
    sqlx::query("INSERT INTO join_tokens (id, sha256, created_by, expires_at) VALUES ($1, 'bench', 'bench', now())")
        .bind(token).execute(&pool).await.unwrap();
    let nodes: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO edge_nodes (id, name, tailnet_ip, dns_name, facts, token_id)
         SELECT gen_random_uuid(), 'bench-' || i, '100.64.0.1', 'bench.ts.net', '{}', $1 FROM generate_series(1, $2) i
         RETURNING id",
    )
    .bind(token)
    .bind(i64::try_from(nodes_n).unwrap())
    .fetch_all(&pool)
    .await
    .unwrap();
    let running = testkit::spawn(registry);
    let http = reqwest_lite::Client;
    for _ in 0..100 {
        if registry_metrics(&http, &base)
            .await
            .contains("homestation_edge_nodes")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The bench's own clients are the test nats-server's harness user: one connection publishing for
    // every simulated node (each real node connects as itself), one bare subscriber.
    let client = env.bus.harness().await;
    let ns = env.namespace.clone();
    let subject = ns.subject(bus::Kind::NodeHeartbeat.pattern());
    let baseline = bare(&client, subject.clone()).await;
    println!(
        "edge-heartbeats: {nodes_n} nodes, {steady_secs} s steady at 1 heartbeat/node/s, then {burst_n} as fast as possible"
    );

    // Steady: each node once a second, spread over 100 ticks of 10 ms.
    let publisher = env.bus.harness().await;
    let per_tick = nodes_n.div_ceil(100);
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0usize;
    for tick in 0..steady_secs * 100 {
        ticker.tick().await;
        let start = (tick % 100) * per_tick;
        for node in nodes.iter().skip(start).take(per_tick) {
            let (subject, payload) = heartbeat(&ns, *node);
            publisher.publish(subject, payload.into()).await.unwrap();
            sent += 1;
        }
        publisher.flush().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let text = registry_metrics(&http, &base).await;
    let lag_name = "homestation_edge_heartbeat_lag_seconds";
    let (reg_p50, reg_p99) = (
        histogram_quantile(&text, lag_name, 0.5).unwrap_or(f64::NAN),
        histogram_quantile(&text, lag_name, 0.99).unwrap_or(f64::NAN),
    );
    let reg_steady = counter(
        &text,
        "homestation_edge_heartbeats_total{service=\"edge-registry\",outcome=\"accepted\"}",
    );
    let mut bare_lags = std::mem::take(&mut *baseline.lags.lock().unwrap());
    let bare_steady = baseline.received.swap(0, Ordering::Relaxed);
    let (bare_p50, bare_p99) = (
        quantile(&mut bare_lags, 0.5),
        quantile(&mut bare_lags, 0.99),
    );
    baseline.task.abort();

    // Saturation, registry alone (the baseline subscriber is gone).
    let before = reg_steady;
    let started = Instant::now();
    let publish_time = burst(&publisher, &ns, &nodes, burst_n).await;
    let (mut last_count, mut last_change) = (before, started.elapsed());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = counter(
            &registry_metrics(&http, &base).await,
            "homestation_edge_heartbeats_total{service=\"edge-registry\",outcome=\"accepted\"}",
        );
        if now > last_count {
            (last_count, last_change) = (now, started.elapsed());
        } else if started.elapsed() > last_change + Duration::from_millis(500) {
            break;
        }
    }
    let reg_received = last_count - before;
    let reg_rate = reg_received / last_change.as_secs_f64().max(publish_time.as_secs_f64());
    running.stop().await.unwrap();

    // Saturation, bare subscriber alone.
    let alone = bare(&client, subject).await;
    let started = Instant::now();
    let publish_time_bare = burst(&publisher, &ns, &nodes, burst_n).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let bare_received = alone.received.load(Ordering::Relaxed) as f64;
    let bare_last = alone
        .last
        .lock()
        .unwrap()
        .map_or(publish_time_bare, |t| t - started);
    let bare_rate = bare_received / bare_last.as_secs_f64().max(publish_time_bare.as_secs_f64());
    alone.task.abort();

    let ms = |s: f64| format!("{:.2} ms", s * 1000.0);
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let report = format!(
        "## edge-heartbeats, {date}\n\n{nodes_n} nodes, {steady_secs} s at one heartbeat per node per second ({sent} sent), then {burst_n} heartbeats as fast as one publisher sends them. Same nats-server, same 2-core machine.\n\n\
| measure | edge-registry | bare async-nats subscriber | ratio |\n|---|---|---|---|\n\
| steady: received | {reg_steady:.0} | {bare_steady} | {:.3} |\n\
| steady: lag p50 | {} | {} | |\n\
| steady: lag p99 | {} | {} | |\n\
| saturation: received of {burst_n} | {reg_received:.0} | {bare_received:.0} | |\n\
| saturation: rate (msg/s) | {reg_rate:.0} | {bare_rate:.0} | **{:.2}** |\n\n\
Goals: p99 lag under 100 ms ({}); at least half the bare rate ({}). The registry's lag comes from its own histogram (interpolated within buckets); the baseline's from every sample.{}\n",
        reg_steady / bare_steady.max(1) as f64,
        ms(reg_p50),
        ms(bare_p50),
        ms(reg_p99),
        ms(bare_p99),
        reg_rate / bare_rate,
        if reg_p99 < 0.1 { "met" } else { "NOT met" },
        if reg_rate >= 0.5 * bare_rate {
            "met"
        } else {
            "NOT met"
        },
        if reg_received as usize == burst_n && bare_received as usize == burst_n {
            " Both received every heartbeat of the burst: the one publisher was the limit, so the ratio is a lower bound on the registry's headroom."
        } else {
            ""
        },
    );
    println!("{report}");
    homestation_bench::append_result("edge-heartbeats", &report);
}
