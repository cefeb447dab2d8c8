//! Events per second through libs/bus — durable publish (each waits for the stream's ack, carrying its
//! `Nats-Msg-Id` and trace context), a durable pull consumer, parse, handle, explicit ack — against bare
//! async-nats doing the least the same guarantee needs: a JetStream publish waiting for its ack into a
//! stream with the same storage (file), and a durable pull consumer acking each message. Same nats-server.
//!
//! Each round sends EVENTS events (default 20,000), IN_FLIGHT (default 64) publishes outstanding at a time,
//! and times from the first publish to the last event consumed; rounds alternate bus, bare, bus, bare so
//! drift on a noisy machine falls on both. Goal (issue 11): at least 0.8 of the bare rate.
//!
//! `make bench-bus` runs it in release mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use bus::{Change, ConsumerSpec, Entity, Envelope, Event, HandleError, Handler, InventoryChanged};
use futures_util::StreamExt;
use homestation_bench::{append_result, quantile, setting};
use service_kit::Shutdown;
use service_kit::metrics::Metrics;
use tokio::sync::Notify;
use uuid::Uuid;

/// Counts events and wakes the round when the last one is in.
struct Counter {
    seen: AtomicUsize,
    target: usize,
    done: Notify,
}

impl Counter {
    fn new(target: usize) -> Arc<Self> {
        Arc::new(Self {
            seen: AtomicUsize::new(0),
            target,
            done: Notify::new(),
        })
    }

    fn count(&self) {
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
    }
}

impl Handler for Counter {
    async fn handle(&self, _envelope: Envelope) -> Result<(), HandleError> {
        self.count();
        Ok(())
    }
}

fn event(i: usize) -> Event {
    Event::InventoryChanged(InventoryChanged {
        entity: Entity::Node,
        id: Uuid::now_v7(),
        name: format!("node-{i}"),
        change: Change::Updated,
    })
}

/// One round through libs/bus, in a namespace (streams) of its own as the bare round's stream is: events per
/// second, end to end.
async fn through_bus(js: &jetstream::Context, events: usize, in_flight: usize) -> f64 {
    let ns = &testkit::nats_namespace().await;
    // Inventory owns the stream the round uses; the bare server is anonymous (no permissions to hold to).
    bus::ensure_streams(js, ns, "inventory", &bus::StreamLimits::default())
        .await
        .expect("streams");
    let counter = Counter::new(events);
    let shutdown = Shutdown::new();
    let metrics = bus::BusMetrics::new(&Metrics::new("bench"));
    let consumer = tokio::spawn(bus::run_consumers(
        js.clone(),
        ns.clone(),
        ConsumerSpec::new("bench-bus", &[bus::Stream::Inventory]),
        counter.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let publisher = bus::Publisher::new(js.clone(), ns.clone(), "bench").with_metrics(metrics);
    let started = Instant::now();
    futures_util::stream::iter(0..events)
        .for_each_concurrent(in_flight, |i| {
            let publisher = &publisher;
            async move {
                publisher.publish(event(i)).await.expect("published");
            }
        })
        .await;
    wait(&counter).await;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    shutdown.trigger();
    consumer.await.expect("consumer task").expect("consumer");
    testkit::drop_namespace(ns).await;
    rate
}

/// One round of bare async-nats on a stream of its own with the same storage: events per second, end to end.
/// `with_id` adds a `Nats-Msg-Id` to each publish, so the server does the deduplication work the bus asks of it.
async fn bare(
    js: &jetstream::Context,
    ns: &bus::Namespace,
    events: usize,
    in_flight: usize,
    round: usize,
    with_id: bool,
) -> f64 {
    let name = format!("{}_BARE", bus::Stream::Inventory.name(ns));
    let subject = ns.subject("bare.v1.changed");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("bare stream");
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(format!("bench-bare-{round}-{with_id}")),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("bare consumer");
    let counter = Counter::new(events);
    let counting = counter.clone();
    let consuming = tokio::spawn(async move {
        let mut messages = consumer.messages().await.expect("pull");
        while let Some(Ok(message)) = messages.next().await {
            message.ack().await.expect("ack");
            counting.count();
        }
    });
    // The same bytes the bus would send, made as the bus makes them (one envelope per event).
    let started = Instant::now();
    futures_util::stream::iter(0..events)
        .for_each_concurrent(in_flight, |i| {
            let subject = subject.clone();
            async move {
                let payload = Envelope::new("bench", event(i)).to_bytes();
                let mut headers = async_nats::HeaderMap::new();
                if with_id {
                    headers.insert("Nats-Msg-Id", Uuid::new_v4().to_string().as_str());
                }
                js.publish_with_headers(subject, headers, payload.into())
                    .await
                    .expect("sent")
                    .await
                    .expect("stored");
            }
        })
        .await;
    wait(&counter).await;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    consuming.abort();
    let _ = js.delete_stream(&name).await;
    rate
}

async fn wait(counter: &Counter) {
    tokio::time::timeout(Duration::from_secs(300), async {
        while counter.seen.load(Ordering::Relaxed) < counter.target {
            counter.done.notified().await;
        }
    })
    .await
    .expect("every event consumed within 5 minutes");
}

#[tokio::main]
async fn main() {
    let events = setting("EVENTS", 20_000);
    let in_flight = setting("IN_FLIGHT", 64);
    let rounds = setting("ROUNDS", 5);
    let ns = testkit::nats_namespace().await;
    let client = async_nats::connect(testkit::nats_url())
        .await
        .expect("nats");
    let js = jetstream::new(client);
    println!(
        "bus-throughput: {events} events per round, {in_flight} in flight, {rounds} rounds each"
    );

    let (mut ours, mut theirs, mut theirs_id) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        ours.push(through_bus(&js, events, in_flight).await);
        theirs.push(bare(&js, &ns, events, in_flight, round, false).await);
        theirs_id.push(bare(&js, &ns, events, in_flight, round, true).await);
        println!(
            "round {round}: bus {:.0}/s, bare {:.0}/s, bare with ids {:.0}/s",
            ours[round], theirs[round], theirs_id[round]
        );
    }
    let rows: String = (0..rounds)
        .map(|i| {
            let (a, b, c) = (ours[i], theirs[i], theirs_id[i]);
            format!(
                "| {} | {a:.0} | {b:.0} | {:.2} | {c:.0} | {:.2} |\n",
                i + 1,
                a / b,
                a / c
            )
        })
        .collect();
    let (ours_med, theirs_med, id_med) = (
        quantile(&mut ours, 0.5),
        quantile(&mut theirs, 0.5),
        quantile(&mut theirs_id, 0.5),
    );
    let (ratio, ratio_id) = (ours_med / theirs_med, ours_med / id_med);
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let report = format!(
        "## bus-throughput, {date}\n\n{events} events per round, {in_flight} publishes in flight, published until consumed and acked. libs/bus: Publisher (Nats-Msg-Id, trace context, metrics) and run_consumers (parse, handler, ack, metrics); bare: async-nats JetStream publish + durable pull consumer on a file stream. Same nats-server, same 2-core machine.\n\n\
| round | libs/bus (events/s) | bare (events/s) | ratio | bare + Nats-Msg-Id (events/s) | ratio |\n|---|---|---|---|---|---|\n{rows}\
| median | {ours_med:.0} | {theirs_med:.0} | **{ratio:.2}** | {id_med:.0} | **{ratio_id:.2}** |\n\n\
Goal: at least 0.8 of bare ({}; against bare publishing with message ids, the server's deduplication the bus relies on for its outbox retries: {}).\n",
        if ratio >= 0.8 { "met" } else { "NOT met" },
        if ratio_id >= 0.8 { "met" } else { "NOT met" },
    );
    println!("{report}");
    append_result("bus-throughput", &report);
}
