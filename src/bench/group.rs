//! `sluice bench group`: how fast a consumer group forms and rebalances, and how many offset
//! commits a group sustains. Speaks only the Kafka protocol (through [`crate::client`]).
//!
//! 1. `members` group consumers join at once; measured: from the first JoinGroup until every
//!    member holds partitions in one common generation ("form").
//! 2. One more member joins; measured: from its join until every member, old and new, holds
//!    partitions in one newer generation ("rebalance").
//! 3. Every member commits its positions every `commit_interval` for `duration`; measured:
//!    commits per second over the group and commit latency percentiles.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::timer::sleep;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::stats::{Percentiles, latency_histogram, record};
use crate::client::{
    Admin, Assignor, Client, ClientConfig, ClientError, ConsumerConfig, GroupConfig, GroupConsumer, NewTopic, SeekTo,
    Subscribe,
};

/// How long the whole group may take to form or rebalance before the run fails.
const SETTLE_MAX: Duration = Duration::from_secs(120);

/// A group bench configuration.
#[derive(Debug, Clone, Serialize)]
pub struct GroupBenchConfig {
    /// Bootstrap servers.
    pub bootstrap: Vec<String>,
    /// The topic the members subscribe to (created if missing).
    pub topic: String,
    /// Its partitions, if created.
    pub partitions: i32,
    /// The group.
    pub group: String,
    /// Members joining at first.
    pub members: usize,
    /// The assignor.
    #[serde(serialize_with = "assignor_name")]
    pub assignor: Assignor,
    /// Heartbeat period.
    pub heartbeat_ms: u64,
    /// Session timeout.
    pub session_timeout_ms: u64,
    /// Each member commits this often in phase 3.
    pub commit_interval_ms: u64,
    /// How long phase 3 runs.
    pub duration_s: f64,
}

fn assignor_name<S: serde::Serializer>(a: &Assignor, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name())
}

/// What a group bench measured.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// The configuration.
    pub config: GroupBenchConfig,
    /// Milliseconds from the first join until all members held partitions in one generation.
    pub form_ms: f64,
    /// Milliseconds from one more member's join until all held partitions in a newer one.
    pub rebalance_ms: f64,
    /// The generation after the rebalance.
    pub generation: i32,
    /// Commits acknowledged in phase 3.
    pub commits: u64,
    /// Commits per second over the group.
    pub commits_per_s: f64,
    /// Commit latency.
    pub commit_latency_ms: Option<Percentiles>,
}

impl GroupReport {
    /// The summary for people.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "sluice bench group: {} members + 1, group {}, topic {} ({} partitions), {}, heartbeat {} ms\n",
            c.members,
            c.group,
            c.topic,
            c.partitions,
            c.assignor.name(),
            c.heartbeat_ms
        );
        out += &format!(
            "formed in {:.1} ms; rebalance after a join: {:.1} ms (generation {})\n",
            self.form_ms, self.rebalance_ms, self.generation
        );
        out += &format!(
            "commits: {} in {:.1} s = {:.0}/s (every {} ms per member)\n",
            self.commits, c.duration_s, self.commits_per_s, c.commit_interval_ms
        );
        if let Some(p) = &self.commit_latency_ms {
            out += &format!(
                "commit latency (ms): p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}\n",
                p.p50, p.p90, p.p99, p.p99_9, p.max
            );
        }
        out
    }
}

/// Runs the group bench on one executor (members are light: they mostly wait).
pub fn run(config: GroupBenchConfig) -> Result<GroupReport, String> {
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .map_err(|e| format!("cannot start an executor: {e}"))?;
    executor.run(async move { run_on_executor(config).await })
}

/// One member and what the bench watches of it.
struct Watched {
    consumer: RefCell<Option<GroupConsumer>>,
    generation: Cell<i32>,
    assigned: Cell<bool>,
}

async fn run_on_executor(config: GroupBenchConfig) -> Result<GroupReport, String> {
    let client_config = ClientConfig::new(config.bootstrap.clone());
    let client = Client::connect(client_config.clone()).await.map_err(|e| e.to_string())?;
    match Admin::new(client.clone()).create_topic(NewTopic::new(&config.topic, config.partitions)).await {
        Ok(()) => {}
        Err(ClientError::Broker { code, .. }) if code == crate::protocol::ErrorCode::TopicAlreadyExists.code() => {}
        Err(e) => return Err(format!("cannot create topic {}: {e}", config.topic)),
    }
    let member = |i: usize| {
        let config = config.clone();
        let client_config = client_config.clone();
        async move {
            let mut client_config = client_config;
            client_config.connection.client_id = format!("sluice-bench-group-{i}");
            let client = Client::connect(client_config).await.map_err(|e| e.to_string())?;
            let mut group = GroupConfig::new(&config.group);
            group.heartbeat_interval = Duration::from_millis(config.heartbeat_ms);
            group.session_timeout = Duration::from_millis(config.session_timeout_ms);
            group.rebalance_timeout = group.session_timeout;
            group.assignors = vec![config.assignor];
            group.auto_commit = None;
            group.reset = SeekTo::Latest;
            group.consumer = ConsumerConfig { max_wait: Duration::from_millis(50), ..Default::default() };
            let mut consumer = GroupConsumer::new(client, group);
            consumer.subscribe(Subscribe::Topics(vec![config.topic.clone()]));
            Ok::<_, String>(Rc::new(Watched {
                consumer: RefCell::new(Some(consumer)),
                generation: Cell::new(-1),
                assigned: Cell::new(false),
            }))
        }
    };
    let mut members = Vec::new();
    for i in 0..config.members {
        members.push(member(i).await?);
    }
    let stop = Rc::new(Cell::new(false));
    let started = Instant::now();
    let mut tasks: Vec<_> = members.iter().map(|m| spawn_poller(m.clone(), stop.clone())).collect();
    let formed_generation = settle(&members, -1).await?;
    let form_ms = started.elapsed().as_secs_f64() * 1000.0;

    let extra = member(config.members).await?;
    members.push(extra.clone());
    let joined = Instant::now();
    tasks.push(spawn_poller(extra, stop.clone()));
    let generation = settle(&members, formed_generation).await?;
    let rebalance_ms = joined.elapsed().as_secs_f64() * 1000.0;

    stop.set(true);
    for task in tasks {
        task.await?;
    }
    let latency = Rc::new(RefCell::new(latency_histogram()));
    let commits = Rc::new(Cell::new(0u64));
    let end = Instant::now() + Duration::from_secs_f64(config.duration_s);
    let interval = Duration::from_millis(config.commit_interval_ms.max(1));
    let mut committers = Vec::new();
    for m in &members {
        let (m, latency, commits) = (m.clone(), latency.clone(), commits.clone());
        committers.push(glommio::spawn_local(async move { commit_loop(&m, end, interval, &latency, &commits).await }));
    }
    for task in committers {
        task.await?;
    }
    for m in &members {
        let consumer = m.consumer.borrow_mut().take();
        if let Some(consumer) = consumer {
            let _ = consumer.close().await;
        }
    }
    let histogram: Histogram<u64> = latency.borrow().clone();
    Ok(GroupReport {
        form_ms,
        rebalance_ms,
        generation,
        commits: commits.get(),
        commits_per_s: commits.get() as f64 / config.duration_s.max(f64::MIN_POSITIVE),
        commit_latency_ms: Percentiles::of(&histogram),
        config,
    })
}

/// Polls a member until `stop`, recording its generation and whether it holds partitions.
fn spawn_poller(member: Rc<Watched>, stop: Rc<Cell<bool>>) -> glommio::Task<Result<(), String>> {
    glommio::spawn_local(async move {
        while !stop.get() {
            let mut slot = member.consumer.borrow_mut().take();
            let Some(consumer) = slot.as_mut() else { return Ok(()) };
            let polled = consumer.poll().await;
            member.generation.set(consumer.generation());
            member.assigned.set(!consumer.assignment().is_empty());
            *member.consumer.borrow_mut() = slot;
            polled.map_err(|e| format!("member poll failed: {e}"))?;
        }
        Ok(())
    })
}

/// Waits until every member holds partitions in one generation newer than `after`.
async fn settle(members: &[Rc<Watched>], after: i32) -> Result<i32, String> {
    let deadline = Instant::now() + SETTLE_MAX;
    loop {
        let generation = members[0].generation.get();
        if generation > after && members.iter().all(|m| m.generation.get() == generation && m.assigned.get()) {
            return Ok(generation);
        }
        if Instant::now() > deadline {
            return Err(format!("the group did not settle within {} s", SETTLE_MAX.as_secs()));
        }
        sleep(Duration::from_millis(1)).await;
    }
}

async fn commit_loop(
    member: &Watched,
    end: Instant,
    interval: Duration,
    latency: &RefCell<Histogram<u64>>,
    commits: &Cell<u64>,
) -> Result<(), String> {
    let mut next = Instant::now();
    while Instant::now() < end {
        sleep(next.saturating_duration_since(Instant::now())).await;
        next += interval;
        let mut slot = member.consumer.borrow_mut().take();
        let Some(consumer) = slot.as_mut() else { return Ok(()) };
        let at = Instant::now();
        let result = consumer.commit().await;
        *member.consumer.borrow_mut() = slot;
        result.map_err(|e| format!("commit failed: {e}"))?;
        record(&mut latency.borrow_mut(), u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX));
        commits.set(commits.get() + 1);
    }
    Ok(())
}
