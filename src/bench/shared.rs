//! What the shards of a run share with the main thread, and what they tell it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::time::Instant;

use super::config::BenchConfig;
use super::stats::Interval;

/// What every shard of a run shares with the main thread.
pub(super) struct Shared {
    pub(super) config: BenchConfig,
    /// Partitions of the topic.
    pub(super) partitions: i32,
    /// Set by the main thread once every shard is ready; the run's time zero.
    pub(super) start: std::sync::OnceLock<Instant>,
    /// Stop now (Ctrl-C, an error, or the consumers are done).
    pub(super) stop: AtomicBool,
    /// Records acknowledged so far (e2e consumers wait for all of them).
    pub(super) produced: AtomicU64,
    /// Records received so far (consume mode stops at `Stop::Records`).
    pub(super) consumed: AtomicU64,
    /// Producers still running.
    pub(super) producers_running: AtomicUsize,
}

/// What shards tell the main thread.
pub(super) enum Event {
    /// A shard connected and is waiting for the start.
    Ready,
    /// A second's (or the last partial second's) counts of one shard.
    Interval(Box<Interval>),
    /// A failure that ends the run.
    Failed(String),
    /// A shard finished.
    Done,
}
