//! [`IoBudget`]: the cleaner's I/O rate limit (Kafka's `log.cleaner.io.max.bytes.per.second`),
//! a token bucket in bytes.
//!
//! Lifecycle and cores: one per shard, shared by every clean on it (through `&IoBudget`: cleans
//! take turns on their shard's executor, so plain cells suffice). The rate may change at any
//! time (a dynamic broker config).

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::limits::CLEANER_IO_BURST_MS;

/// A token bucket of bytes. See the module docs.
pub struct IoBudget {
    /// Bytes per second, or `None` for no limit.
    rate: Cell<Option<u64>>,
    /// Bytes that may be spent now without waiting; negative while a spender owes a wait.
    tokens: Cell<f64>,
    /// When `tokens` was last brought up to date.
    updated: Cell<Instant>,
}

impl IoBudget {
    /// A budget of `bytes_per_sec` (`None`: unlimited).
    pub fn new(bytes_per_sec: Option<u64>) -> IoBudget {
        IoBudget { rate: Cell::new(bytes_per_sec), tokens: Cell::new(0.0), updated: Cell::new(Instant::now()) }
    }

    /// Changes the rate from now on.
    pub fn set_rate(&self, bytes_per_sec: Option<u64>) {
        self.refill();
        self.rate.set(bytes_per_sec);
        self.tokens.set(self.tokens.get().min(self.depth()));
    }

    /// The current rate.
    pub fn rate(&self) -> Option<u64> {
        self.rate.get()
    }

    /// Spends `bytes`, sleeping first as long as the budget is overdrawn by them.
    pub async fn spend(&self, bytes: u64) {
        let Some(rate) = self.rate.get().filter(|&r| r > 0) else { return };
        self.refill();
        let left = self.tokens.get() - bytes as f64;
        self.tokens.set(left);
        if left < 0.0 {
            glommio::timer::sleep(Duration::from_secs_f64(-left / rate as f64)).await;
        }
    }

    /// The most bytes the bucket holds.
    fn depth(&self) -> f64 {
        self.rate.get().map_or(0.0, |rate| rate as f64 * CLEANER_IO_BURST_MS as f64 / 1000.0)
    }

    fn refill(&self) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.updated.get()).as_secs_f64();
        self.updated.set(now);
        if let Some(rate) = self.rate.get() {
            self.tokens.set((self.tokens.get() + elapsed * rate as f64).min(self.depth()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spending_past_the_rate_waits_and_unlimited_never_does() {
        crate::testing::run_on_shard(|| async {
            let unlimited = IoBudget::new(None);
            let started = Instant::now();
            unlimited.spend(u64::MAX / 2).await;
            assert!(started.elapsed() < Duration::from_millis(50));

            // 1 MB/s: 100 KB costs about 100 ms once the (empty) bucket is overdrawn.
            let budget = IoBudget::new(Some(1_000_000));
            let started = Instant::now();
            for _ in 0..4 {
                budget.spend(50_000).await;
            }
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(150), "took {took:?}");
            assert!(took < Duration::from_secs(2), "took {took:?}");
            budget.set_rate(None);
            let started = Instant::now();
            budget.spend(10_000_000).await;
            assert!(started.elapsed() < Duration::from_millis(50));
        });
    }
}
