//! The hooks: one call at each place the broker, the server and the storage count something.
//! Each shard's series live in a thread-local (a shard is one thread, `shard/runtime.rs`), so
//! a hook needs no handle threaded through the layers, and costs a thread-local read, and
//! nothing at all beyond it while metrics are off (no [`install`]: `--metrics-listen` unset,
//! `sluice log`, unit tests).

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::registry::{FETCH_FOLLOWER_SLOT, GroupLag, Metrics, ShardMetrics, ShardSample};

thread_local! {
    /// This thread's shard's series, once installed.
    static SHARD: OnceCell<Rc<ShardMetrics>> = const { OnceCell::new() };
}

/// Makes this thread's (this shard's) series in `metrics`; the hooks count from now on. A
/// second call on the same thread changes nothing.
pub fn install(metrics: &Metrics, shard: usize) {
    let shard = u32::try_from(shard).unwrap_or(u32::MAX);
    SHARD.with(|cell| {
        let _ = cell.get_or_init(|| Rc::new(ShardMetrics::new(metrics.families(), shard)));
    });
}

fn with(count: impl FnOnce(&ShardMetrics)) {
    SHARD.with(|cell| {
        if let Some(shard) = cell.get() {
            count(shard);
        }
    });
}

/// What kind of request a [`RequestProbe`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A request of the API with this key (a Fetch here is a consumer's).
    Api(i16),
    /// A follower's Fetch, on the replication listener.
    FetchFollower,
}

/// A request being handled: counted (with its bytes) when it starts, timed until
/// [`RequestProbe::finish`].
#[derive(Debug)]
pub struct RequestProbe {
    shard: Rc<ShardMetrics>,
    slot: usize,
    started: Instant,
}

/// Counts a request of `kind`, `request_bytes` long, that starts now. `name` (Kafka's name
/// for it) is called only the first time this shard sees the kind, to label its series.
/// `None` while metrics are off.
pub fn start_request(kind: RequestKind, name: impl FnOnce() -> String, request_bytes: u64) -> Option<RequestProbe> {
    let shard = SHARD.with(|cell| cell.get().cloned())?;
    let slot = match kind {
        RequestKind::Api(key) => usize::try_from(key).ok().filter(|&slot| slot < FETCH_FOLLOWER_SLOT)?,
        RequestKind::FetchFollower => FETCH_FOLLOWER_SLOT,
    };
    let series = shard.request(slot, name)?;
    series.count.inc();
    series.request_bytes.inc_by(request_bytes);
    Some(RequestProbe { shard, slot, started: Instant::now() })
}

impl RequestProbe {
    /// The response is ready, `response_bytes` long (0 for none).
    pub fn finish(self, response_bytes: u64) {
        if let Some(series) = self.shard.request(self.slot, String::new) {
            series.duration.observe(self.started.elapsed().as_secs_f64());
            series.response_bytes.inc_by(response_bytes);
        }
    }
}

/// An fdatasync of a segment file took `took`.
pub fn log_flushed(took: Duration) {
    with(|m| m.log_flush_duration.observe(took.as_secs_f64()));
}

/// A log read was answered from the batch cache.
pub fn batch_cache_hit() {
    with(|m| {
        m.batch_cache_hits.inc();
    });
}

/// A log read had to go to the segment files.
pub fn batch_cache_miss() {
    with(|m| {
        m.batch_cache_misses.inc();
    });
}

/// A connection was accepted and is being served.
pub fn connection_opened() {
    with(|m| {
        m.connections_accepted.inc();
        m.connections.inc();
    });
}

/// A served connection ended.
pub fn connection_closed() {
    with(|m| {
        m.connections.dec();
    });
}

/// A client connection moved here from another shard (the one its requests work on).
pub fn connection_moved_in() {
    with(|m| {
        m.connections_moved_in.inc();
        m.connections.inc();
    });
}

/// A client connection moved from here to another shard.
pub fn connection_moved_out() {
    with(|m| {
        m.connections.dec();
    });
}

/// A connection was closed as it arrived: the shard has `--max-connections-per-core` open.
pub fn connection_refused() {
    with(|m| {
        m.connections_refused.inc();
    });
}

/// `accept` (or readying the accepted socket) failed: out of descriptors or memory.
pub fn accept_failed() {
    with(|m| {
        m.accept_errors.inc();
    });
}

/// The committed ISR of a partition this broker leads went from `before` to `after`: a shrink
/// if a replica left, an expansion if one joined (both, for a change that did both).
pub fn isr_changed(before: &[i32], after: &[i32]) {
    let shrank = before.iter().any(|r| !after.contains(r));
    let expanded = after.iter().any(|r| !before.contains(r));
    with(|m| {
        if shrank {
            m.isr_shrinks.inc();
        }
        if expanded {
            m.isr_expands.inc();
        }
    });
}

/// Sets this shard's scrape-time gauges (partitions, leaders, the batch cache, replication).
pub fn set_shard_sample(sample: ShardSample) {
    with(|m| m.set_sample(sample));
}

/// Replaces the consumer-group lag series (see [`GroupLag`]); called by the shard that scrapes.
pub fn set_group_lags(lags: Vec<GroupLag>) {
    with(|m| m.set_group_lags(lags));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Format;

    /// Each test runs on its own thread, so its thread-local starts empty.
    fn rendered(metrics: &Metrics) -> String {
        metrics.render(Format::Prometheus).unwrap()
    }

    #[test]
    fn hooks_count_nothing_until_installed_then_count_under_the_shard_label() {
        let metrics = Metrics::new();
        std::thread::spawn({
            let metrics = std::sync::Arc::new(metrics);
            move || {
                assert!(start_request(RequestKind::Api(0), || "Produce".into(), 100).is_none());
                batch_cache_hit();
                install(&metrics, 3);
                let probe = start_request(RequestKind::Api(0), || "Produce".into(), 100).unwrap();
                probe.finish(40);
                let probe = start_request(RequestKind::Api(0), || unreachable!("named once"), 50).unwrap();
                probe.finish(0);
                start_request(RequestKind::FetchFollower, || "FetchFollower".into(), 10).unwrap().finish(1000);
                assert!(start_request(RequestKind::Api(-1), || "bad".into(), 1).is_none());
                batch_cache_hit();
                batch_cache_miss();
                log_flushed(Duration::from_millis(2));
                connection_opened();
                connection_opened();
                connection_closed();
                isr_changed(&[1, 2, 3], &[1, 2]);
                isr_changed(&[1, 2], &[1, 2, 4]);
                isr_changed(&[1, 2], &[1, 2]);
                let text = rendered(&metrics);
                for line in [
                    r#"sluice_requests_total{shard="3",request="Produce"} 2"#,
                    r#"sluice_request_bytes_total{shard="3",request="Produce"} 150"#,
                    r#"sluice_response_bytes_total{shard="3",request="Produce"} 40"#,
                    r#"sluice_request_duration_seconds_count{shard="3",request="Produce"} 2"#,
                    r#"sluice_requests_total{shard="3",request="FetchFollower"} 1"#,
                    r#"sluice_batch_cache_hits_total{shard="3"} 1"#,
                    r#"sluice_batch_cache_misses_total{shard="3"} 1"#,
                    r#"sluice_log_flush_duration_seconds_count{shard="3"} 1"#,
                    r#"sluice_log_flush_duration_seconds_bucket{shard="3",le="0.0025"} 1"#,
                    r#"sluice_log_flush_duration_seconds_bucket{shard="3",le="0.001"} 0"#,
                    r#"sluice_connections{shard="3"} 1"#,
                    r#"sluice_connections_accepted_total{shard="3"} 2"#,
                    r#"sluice_isr_shrinks_total{shard="3"} 1"#,
                    r#"sluice_isr_expands_total{shard="3"} 1"#,
                ] {
                    assert!(text.lines().any(|l| l == line), "no line {line} in\n{text}");
                }
                assert!(text.contains("# TYPE sluice_requests_total counter"), "{text}");
                assert!(text.contains("# TYPE sluice_request_duration_seconds histogram"), "{text}");
                assert!(text.contains("process_open_fds "), "{text}");
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn group_lag_series_are_replaced_at_each_scrape_and_bounded() {
        let metrics = std::sync::Arc::new(Metrics::new());
        std::thread::spawn(move || {
            install(&metrics, 0);
            set_shard_sample(ShardSample { partitions: 7, leaders: 5, ..ShardSample::default() });
            let lag = |group: &str, lag: i64| GroupLag { group: group.into(), lag_records: lag, lag_max_records: lag };
            set_group_lags(vec![lag("gone", 1), lag("kept", 2)]);
            set_group_lags(vec![lag("kept", 5)]);
            let text = rendered(&metrics);
            assert!(text.contains(r#"sluice_partitions{shard="0"} 7"#), "{text}");
            assert!(text.contains(r#"sluice_partition_leaders{shard="0"} 5"#), "{text}");
            assert!(text.contains(r#"sluice_consumer_group_lag_records{group="kept"} 5"#), "{text}");
            assert!(!text.contains("gone"), "{text}");
            let many: Vec<GroupLag> =
                (0..crate::limits::METRICS_GROUPS_MAX + 10).map(|i| lag(&format!("g{i}"), i as i64)).collect();
            set_group_lags(many);
            let text = rendered(&metrics);
            let series = text.lines().filter(|l| l.starts_with("sluice_consumer_group_lag_records{")).count();
            assert_eq!(series, crate::limits::METRICS_GROUPS_MAX);
            assert!(!text.contains(r#"group="g0""#), "the least lagging groups are left out");
        })
        .join()
        .unwrap();
    }
}
