//! The process's own gauges, read from `/proc` at each scrape: open descriptors (a directory
//! listing of `/proc/self/fd`, tens of microseconds even at 100,000 descriptors, cheap next to a
//! scrape every few seconds), their limit, and resident memory. Zero where `/proc` is missing.

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ProcessSample {
    pub(super) open_fds: i64,
    pub(super) max_fds: i64,
    pub(super) resident_memory_bytes: i64,
}

/// Reads the process's descriptors and memory now.
pub(super) fn sample() -> ProcessSample {
    ProcessSample { open_fds: open_fds(), max_fds: max_fds(), resident_memory_bytes: resident_memory_bytes() }
}

fn open_fds() -> i64 {
    // The listing's own descriptor is one of them; it is closed again right after.
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| i64::try_from(entries.count()).unwrap_or(i64::MAX))
}

fn max_fds() -> i64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit(2) writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    i64::try_from(limit.rlim_cur).unwrap_or(i64::MAX)
}

/// `/proc/self/statm`'s second field (resident pages) times the page size.
fn resident_memory_bytes() -> i64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: i64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf(3) has no preconditions.
    let page_bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    pages.saturating_mul(i64::try_from(page_bytes).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_has_descriptors_a_limit_and_memory() {
        let s = sample();
        assert!(s.open_fds >= 3, "{s:?}");
        assert!(s.max_fds >= s.open_fds, "{s:?}");
        assert!(s.resident_memory_bytes > 1024 * 1024, "{s:?}");
    }
}
