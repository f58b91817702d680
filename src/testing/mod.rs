//! Helpers for tests and benchmarks only: running a future on a glommio shard, building batches.
//! Only `#[cfg(test)]` code, `benches/` and `tests/` may use this module; nothing the binary runs
//! does (the tidy test checks), which is why it is hidden from the docs. Fault injection for
//! storage I/O lives in `storage::io` (`inject_fault`), beside the calls it fails.

use std::future::Future;

use bytes::BytesMut;

use crate::model::{Timestamp, seeded_batch};
use crate::shard::{NUDGE_INTERVAL, Nudger};

/// Runs the future that `make_future` builds to completion on a fresh single-shard glommio
/// executor (on a new thread, as glommio requires), and returns its output. For tests and
/// benchmarks only, so a failure panics (failing the test) rather than returning an error.
/// The executor is nudged as the broker's shards are (`shard::Nudger`): glommio 0.9 can park
/// an executor that still has work, and a test stuck that way once hung CI's unit tests.
#[allow(clippy::panic)]
pub fn run_on_shard<T, F, G>(make_future: G) -> T
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let (nudger, mut nudged) = Nudger::start(1, NUDGE_INTERVAL);
    let nudged = nudged.pop();
    let spawned = glommio::LocalExecutorBuilder::default().spawn(move || async move {
        if let Some(nudged) = nudged {
            nudged.serve().await;
        }
        make_future().await
    });
    let out = match spawned {
        Ok(handle) => match handle.join() {
            Ok(out) => out,
            Err(e) => panic!("shard failed: {e:?}"),
        },
        Err(e) => panic!("cannot start a glommio executor: {e}"),
    };
    nudger.stop();
    out
}

/// A valid uncompressed batch of `records` records whose values are `value_bytes` long and
/// carry `seed` in their first bytes, timestamped `timestamp` (see [`seeded_batch`]).
pub fn batch_of(records: usize, value_bytes: usize, seed: u64, timestamp: Timestamp) -> BytesMut {
    seeded_batch(records, value_bytes, seed, timestamp)
}
