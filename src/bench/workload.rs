//! One generator shard: its producers and consumers, pacing, and the once-a-second hand-over of
//! its counts to the main thread.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use glommio::timer::sleep;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

use super::config::{BenchConfig, Keys, Mode, Stop};
use super::shared::{Event, Shared};
use super::stats::{ShardStats, record};
use crate::client::{
    Client, Consumer, ConsumerConfig, IsolationLevel, Producer, ProducerConfig, ProducerRecord, SeekTo,
};

/// Bytes at the front of every value: the intended send time, µs since the run's start.
pub const SEND_TIME_BYTES: usize = 8;

/// Random printable bytes the values are cut from (like Kafka's perf tool, which sends random
/// letters, so compression has something realistic to do).
const VALUE_POOL_BYTES: usize = 1 << 20;

/// Open-loop pacing sleeps only when the next send is at least this far away; closer sends go
/// now (timer wake-ups cost more than that early), and count from their intended time anyway.
const PACING_SLEEP_MIN: Duration = Duration::from_micros(200);

/// Records a producer sends between voluntary yields, so linger timers and responses on the
/// same shard get their turn when the producer runs flat out.
const SENDS_PER_YIELD: u64 = 64;

/// A producer reads the clock for at most this many sends in a row, and again after anything
/// that may have suspended it. Sends in a row follow each other within microseconds, so each
/// record's send time is exact to a few of them, and at 100-byte records the clock reads were
/// 14 % of the generator's CPU.
const SENDS_PER_CLOCK_READ: u32 = 16;

/// How long e2e consumers keep reading after the producers stop, for records still in flight.
const E2E_DRAIN_MAX: Duration = Duration::from_secs(10);

type Stats = Rc<RefCell<ShardStats>>;

/// Runs shard `shard` of a bench to the end; reports through `events`.
pub(super) async fn shard_main(shard: usize, shared: Arc<Shared>, events: flume::Sender<Event>) {
    let config = &shared.config;
    let mine = |count: usize| (0..count).filter(move |i| i % config.cores == shard);
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    let mut setup_error = None;
    if config.produces() {
        for index in mine(config.producers) {
            let client = Client::connect(config.client_config(format!("sluice-bench-producer-{index}"))).await;
            match client.and_then(|client| Producer::new(client, producer_config(config, index))) {
                Ok(producer) => producers.push((index, producer)),
                Err(e) => setup_error = Some(format!("producer {index}: {e}")),
            }
        }
    }
    if config.consumes() {
        for index in mine(config.consumers) {
            match setup_consumer(&shared, index).await {
                Ok(consumer) => consumers.push(consumer),
                Err(e) => setup_error = Some(format!("consumer {index}: {e}")),
            }
        }
    }
    if let Some(e) = setup_error {
        let _ = events.send(Event::Failed(e));
    }
    let _ = events.send(Event::Ready);
    let start = loop {
        if let Some(start) = shared.start.get() {
            break *start;
        }
        if shared.stop.load(Ordering::Relaxed) {
            let _ = events.send(Event::Done);
            return;
        }
        sleep(Duration::from_millis(1)).await;
    };

    let stats: Stats = Rc::new(RefCell::new(ShardStats::default()));
    let next_second = Rc::new(Cell::new(0u64));
    let finished = Rc::new(Cell::new(false));
    let ticker = {
        let (stats, next_second, finished, events) =
            (stats.clone(), next_second.clone(), finished.clone(), events.clone());
        glommio::spawn_local(async move {
            loop {
                let second = next_second.get();
                let due = start + Duration::from_secs(second + 1);
                sleep(due.saturating_duration_since(Instant::now())).await;
                if finished.get() {
                    return;
                }
                let interval = stats.borrow_mut().take(second);
                next_second.set(second + 1);
                let _ = events.send(Event::Interval(Box::new(interval)));
            }
        })
    };
    let mut tasks = Vec::new();
    for (index, producer) in producers {
        let (shared, stats) = (shared.clone(), stats.clone());
        tasks.push(glommio::spawn_local(async move { produce(&shared, &stats, index, producer, start).await }));
    }
    for consumer in consumers {
        let (shared, stats) = (shared.clone(), stats.clone());
        tasks.push(glommio::spawn_local(async move { consume(&shared, &stats, consumer, start).await }));
    }
    for task in tasks {
        if let Err(e) = task.await {
            let _ = events.send(Event::Failed(e));
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
    finished.set(true);
    drop(ticker);
    let last = stats.borrow_mut().take(next_second.get());
    let _ = events.send(Event::Interval(Box::new(last)));
    let _ = events.send(Event::Done);
}

fn producer_config(config: &BenchConfig, index: usize) -> ProducerConfig {
    ProducerConfig {
        acks: config.acks,
        batch_size: config.batch_bytes,
        linger: config.linger,
        ack_timeout: config.request_timeout,
        compression: config.compression,
        // Room for a full batch per partition plus as many again in flight.
        buffer_memory: (config.batch_bytes * 2 * usize::try_from(config.partitions.max(1)).unwrap_or(1))
            .max(32 * 1024 * 1024),
        request_max_bytes: config.batch_bytes.max(4 * 1024 * 1024),
        idempotence: config.idempotent || config.records_per_txn.is_some(),
        // One id per producer of this run: two producers with one id would fence each other.
        transactional_id: config
            .records_per_txn
            .map(|_| format!("sluice-bench-{}-{}-{index}", std::process::id(), config.topic)),
        ..ProducerConfig::default()
    }
}

/// A consumer with its partitions assigned: all of them with `--fanout`, else every
/// `consumers`-th starting at `index`. In e2e mode it starts at the log end.
async fn setup_consumer(shared: &Shared, index: usize) -> Result<Consumer, String> {
    let config = &shared.config;
    let client = Client::connect(config.client_config(format!("sluice-bench-consumer-{index}")))
        .await
        .map_err(|e| e.to_string())?;
    let consumer_config = ConsumerConfig {
        max_wait: Duration::from_millis(200),
        min_bytes: 1,
        max_bytes: config.fetch_max_bytes,
        partition_max_bytes: config.partition_fetch_max_bytes,
        // With transactional producers, consumers see what committed: e2e is commit latency.
        isolation: if config.records_per_txn.is_some() {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        },
    };
    let mut consumer = Consumer::new(client, consumer_config);
    let partitions: Vec<i32> = (0..shared.partitions)
        .filter(|p| config.fanout || usize::try_from(*p).unwrap_or(0) % config.consumers == index)
        .collect();
    let assignment: Vec<(&str, i32)> = partitions.iter().map(|p| (config.topic.as_str(), *p)).collect();
    consumer.assign(&assignment);
    let to = if config.mode == Mode::E2e { SeekTo::Latest } else { SeekTo::Earliest };
    for partition in partitions {
        consumer.seek(&config.topic, partition, to).await.map_err(|e| e.to_string())?;
    }
    Ok(consumer)
}

/// One producer's share of the run.
async fn produce(
    shared: &Shared,
    stats: &Stats,
    index: usize,
    producer: Producer,
    start: Instant,
) -> Result<(), String> {
    let acked = Rc::new(Cell::new(0u64));
    let result = produce_until_done(shared, stats, index, &producer, start, &acked).await;
    // Whatever ended the loop, wait for what is in flight (bounded by the request timeout).
    producer.flush().await;
    // e2e consumers read `produced` once `producers_running` says everyone is done.
    shared.produced.fetch_add(acked.get(), Ordering::SeqCst);
    shared.producers_running.fetch_sub(1, Ordering::SeqCst);
    result
}

async fn produce_until_done(
    shared: &Shared,
    stats: &Stats,
    index: usize,
    producer: &Producer,
    start: Instant,
    acked: &Rc<Cell<u64>>,
) -> Result<(), String> {
    let config = &shared.config;
    let producers = config.producers.max(1) as u64;
    let quota = match config.stop {
        Stop::Records(total) => Some(total / producers + u64::from((index as u64) < total % producers)),
        Stop::Duration(_) => None,
    };
    let deadline = match config.stop {
        Stop::Duration(d) => Some(start + config.warmup + d),
        Stop::Records(_) => None,
    };
    let interval = (config.rate > 0).then(|| Duration::from_secs_f64(producers as f64 / config.rate as f64));
    let mut rng = SmallRng::seed_from_u64(0x5eed ^ index as u64);
    let pool: Vec<u8> = (0..VALUE_POOL_BYTES + config.record_size).map(|_| rng.random_range(b'A'..=b'Z')).collect();
    let mut keys = KeyGen::new(config.keys, index as u64)?;
    let failure: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    // Record timestamps from the intended send time, without a clock read per record.
    let wall_start_ms = crate::model::Timestamp::now().0 - i64::try_from(start.elapsed().as_millis()).unwrap_or(0);
    let mut next = start;
    let mut sent = 0u64;
    let per_txn = config.records_per_txn;
    if per_txn.is_some() {
        producer.init_transactions().await.map_err(|e| format!("init_transactions failed: {e}"))?;
        producer.begin_transaction().map_err(|e| format!("begin_transaction failed: {e}"))?;
    }
    // The last clock reading and the sends that used it (`SENDS_PER_CLOCK_READ`); `None` after
    // anything that may have suspended this task.
    let mut clock: Option<(Instant, u32)> = None;
    loop {
        if shared.stop.load(Ordering::Relaxed) || failure.borrow().is_some() || quota.is_some_and(|q| sent >= q) {
            break;
        }
        let now = match clock {
            Some((at, uses)) if uses < SENDS_PER_CLOCK_READ => {
                clock = Some((at, uses + 1));
                at
            }
            _ => {
                let at = Instant::now();
                clock = Some((at, 1));
                at
            }
        };
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let intended = match interval {
            Some(interval) => {
                let wait = next.saturating_duration_since(now);
                if wait >= PACING_SLEEP_MIN {
                    sleep(wait).await;
                    clock = None;
                    continue;
                }
                let intended = next;
                next += interval;
                intended
            }
            None => now,
        };
        let send_time = u64::try_from(intended.saturating_duration_since(start).as_micros()).unwrap_or(u64::MAX);
        let mut value = Vec::with_capacity(config.record_size);
        value.extend_from_slice(&send_time.to_be_bytes());
        let from = (sent as usize * 61) % VALUE_POOL_BYTES;
        value.extend_from_slice(&pool[from..from + config.record_size.saturating_sub(SEND_TIME_BYTES)]);
        let key = keys.next(&mut rng);
        let bytes = (value.len() + key.as_ref().map_or(0, Vec::len)) as u64;
        let mut message = ProducerRecord::new(config.topic.clone(), key, Some(value));
        message.timestamp = Some(wall_start_ms + i64::try_from(send_time / 1000).unwrap_or(0));
        let (record_stats, failure, acked) = (stats.clone(), failure.clone(), acked.clone());
        let callback = Box::new(move |result: crate::client::producer::DeliveryResult| match result {
            Ok(metadata) => {
                let mut stats = record_stats.borrow_mut();
                stats.produced.add(bytes);
                // The batch's acknowledgement time, read once for all its records.
                let latency = metadata.acknowledged_at.saturating_duration_since(intended);
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                record(&mut stats.produce_latency, micros);
                acked.set(acked.get() + 1);
            }
            Err(e) => {
                record_stats.borrow_mut().errors += 1;
                failure.borrow_mut().get_or_insert_with(|| format!("produce failed: {e}"));
            }
        });
        let mut send = std::pin::pin!(producer.send_with(message, callback));
        let queued = match futures_lite::future::poll_once(&mut send).await {
            Some(queued) => queued,
            None => {
                // Waiting for buffer room: the clock moves on meanwhile.
                clock = None;
                send.await
            }
        };
        queued.map_err(|e| format!("produce failed: {e}"))?;
        sent += 1;
        if let Some(per_txn) = per_txn
            && sent.is_multiple_of(per_txn)
        {
            producer.commit_transaction().await.map_err(|e| format!("commit failed: {e}"))?;
            stats.borrow_mut().commits += 1;
            producer.begin_transaction().map_err(|e| format!("begin_transaction failed: {e}"))?;
            clock = None;
        }
        if sent.is_multiple_of(SENDS_PER_YIELD) {
            glommio::yield_if_needed().await;
            clock = None;
        }
    }
    if per_txn.is_some() {
        producer.commit_transaction().await.map_err(|e| format!("commit failed: {e}"))?;
        stats.borrow_mut().commits += 1;
    }
    match failure.borrow_mut().take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Chooses record keys.
struct KeyGen {
    keys: Keys,
    next: u64,
    zipf: Option<Zipf<f64>>,
}

impl KeyGen {
    fn new(keys: Keys, seed: u64) -> Result<KeyGen, String> {
        let zipf = match keys {
            Keys::Zipf { space, exponent } => {
                Some(Zipf::new(space as f64, exponent).map_err(|e| format!("zipf key distribution: {e}"))?)
            }
            _ => None,
        };
        Ok(KeyGen { keys, next: seed, zipf })
    }

    fn next(&mut self, rng: &mut SmallRng) -> Option<Vec<u8>> {
        let key = match self.keys {
            Keys::None => return None,
            Keys::Sequential { space } => {
                self.next = self.next.wrapping_add(1);
                self.next % space
            }
            Keys::Uniform { space } => rng.random_range(0..space),
            // Zipf samples 1..=space; key 0 is the most frequent.
            Keys::Zipf { .. } => self.zipf.as_ref().map_or(0, |z| z.sample(rng) as u64).saturating_sub(1),
        };
        Some(key.to_string().into_bytes())
    }
}

/// One consumer's share of the run.
async fn consume(shared: &Shared, stats: &Stats, mut consumer: Consumer, start: Instant) -> Result<(), String> {
    let config = &shared.config;
    let deadline = match (config.mode, config.stop) {
        (Mode::Consume, Stop::Duration(d)) => Some(start + config.warmup + d),
        _ => None,
    };
    let mut producers_gone: Option<Instant> = None;
    loop {
        if shared.stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        match (config.mode, config.stop) {
            (Mode::Consume, Stop::Records(n)) if shared.consumed.load(Ordering::Relaxed) >= n => return Ok(()),
            (Mode::E2e, _) if shared.producers_running.load(Ordering::SeqCst) == 0 => {
                let copies = if config.fanout { config.consumers as u64 } else { 1 };
                let expected = shared.produced.load(Ordering::SeqCst) * copies;
                if shared.consumed.load(Ordering::Relaxed) >= expected {
                    return Ok(());
                }
                let since = *producers_gone.get_or_insert_with(Instant::now);
                if since.elapsed() > E2E_DRAIN_MAX {
                    return Err(format!(
                        "consumers received {} of {expected} records {} s after the producers stopped",
                        shared.consumed.load(Ordering::Relaxed),
                        E2E_DRAIN_MAX.as_secs()
                    ));
                }
            }
            _ => {}
        }
        let records = consumer.poll().await.map_err(|e| format!("consume failed: {e}"))?;
        if records.is_empty() {
            continue;
        }
        let now = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut stats = stats.borrow_mut();
        for r in &records {
            let value = r.value.as_deref().unwrap_or(&[]);
            stats.consumed.add((value.len() + r.key.as_ref().map_or(0, |k| k.len())) as u64);
            if config.mode == Mode::E2e
                && let Some(sent) = value.get(..SEND_TIME_BYTES).and_then(|b| <[u8; 8]>::try_from(b).ok())
            {
                record(&mut stats.e2e_latency, now.saturating_sub(u64::from_be_bytes(sent)));
            }
        }
        shared.consumed.fetch_add(records.len() as u64, Ordering::Relaxed);
    }
}
