//! Log lines for conditions that can repeat at the rate of a flood (failed accepts, refused or
//! timed-out connections): at most one line per interval, counting the events it stands for.

use std::time::{Duration, Instant};

/// The most often the server logs one kind of repeated event (with a count of the rest).
pub(super) const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// A log line at most every [`LOG_INTERVAL`], saying how many it stood for.
#[derive(Debug)]
pub(super) struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    pub(super) fn new() -> Self {
        Throttled { last: None, suppressed: 0 }
    }

    /// `Some(events suppressed since the last line)` if a line may be logged now.
    pub(super) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < LOG_INTERVAL) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counts_the_rest() {
        let mut log = Throttled::new();
        assert_eq!(log.allow(), Some(0));
        assert_eq!(log.allow(), None);
        assert_eq!(log.allow(), None);
        log.last = Instant::now().checked_sub(LOG_INTERVAL);
        assert_eq!(log.allow(), Some(2));
    }
}
