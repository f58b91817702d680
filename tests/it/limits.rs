//! Bounded resources: what the broker does when the machine runs out of something it needs.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::Broker;
use crate::raw::{connect_to, still_serves};

/// Sets the soft and hard limit on open descriptors of process `pid`.
fn limit_open_files(pid: u32, limit: u64) {
    let value = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: prlimit(2) on our own child, with a valid new limit and no old one asked for.
    let done = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, &value, std::ptr::null_mut()) };
    assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}

/// CPU time (user + system) the process has used.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf(3) has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

#[test]
fn out_of_descriptors_the_listener_backs_off_logs_once_a_second_and_recovers() {
    let broker = Broker::start_logged(&["--cores", "1"]);
    let pid = broker.pid().expect("running");
    still_serves(&broker);
    // Room for a handful of connections only.
    limit_open_files(pid, (open_files(pid) + 4) as u64);
    let held: Vec<TcpStream> = (0..30).map(|_| connect_to(&broker.addr)).collect();
    let (cpu_before, watched) = (cpu_time(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (cpu, wall) = (cpu_time(pid) - cpu_before, watched.elapsed());
    assert!(cpu < wall / 4, "the broker used {cpu:?} of CPU in {wall:?} while out of descriptors: a busy loop");
    let log = broker.log_text();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("accept failed")).collect();
    assert!(!failures.is_empty(), "nothing logged why connections wait:\n{log}");
    assert!(failures.len() <= 5, "{} lines in ~3 s, more than one a second:\n{}", failures.len(), failures.join("\n"));
    assert!(failures[0].contains("open_files_limit"), "the line names the limit: {}", failures[0]);
    // Connections that close give their descriptors back; new clients are served again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let served = std::panic::catch_unwind(|| still_serves(&broker)).is_ok();
        if served {
            break;
        }
        assert!(Instant::now() < deadline, "no client served 10 s after the held connections closed");
        std::thread::sleep(Duration::from_millis(200));
    }
}
