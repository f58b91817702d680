//! The Jepsen-style chaos run (issue 13): tests/chaos/chaos.py, through scripts/chaos, starts a
//! 3-node cluster of this build, runs two idempotent acks=all producers and two consumers while
//! it injects 30 faults (kills, pauses, network partitions and full disks when root, wiped
//! followers), then reads everything back twice and fails on any lost, inconsistent,
//! non-monotonic, duplicated or divergent record. The checker first proves on crafted histories
//! that it detects each of those, so it cannot pass by seeing nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::python;

/// Faults per run: the bar for `scripts/test`.
const FAULTS: &str = "30";
/// A 30-fault run takes about 4 minutes here (one cycle: a hold of 1-4 s, or 2-8 s for a pause,
/// then a bounded recovery wait; plus the end's quiet wait and final reads); this is for a run
/// that hangs.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);
/// The self-test is pure Python over a few crafted histories.
const SELF_TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// After a SIGTERM on timeout, how long the run gets to undo its namespaces, mounts and nodes
/// before SIGKILL.
const CLEANUP_GRACE: Duration = Duration::from_secs(30);

fn chaos_command(repo: &Path) -> Command {
    let mut command = Command::new(repo.join("scripts/chaos"));
    command.current_dir(repo).env("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice"));
    command
}

#[test]
fn chaos_faults_lose_nothing() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // scripts/chaos runs the venv's Python; python() fails with a clear message if it is missing.
    python();

    let output = crate::harness::output_within_grace(
        {
            let mut command = chaos_command(repo);
            command.arg("--self-test");
            command
        },
        SELF_TEST_TIMEOUT,
        CLEANUP_GRACE,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("PASS self-test"),
        "the checker misses an anomaly on a crafted history:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() % (1 << 31)).unwrap_or(0);
    println!("chaos seed {seed}");
    // Not a TempDir: on failure the report, the node logs and their tails stay for a look.
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{seed}"));
    let output = crate::harness::output_within_grace(
        {
            let mut command = chaos_command(repo);
            command.args(["--faults", FAULTS, "--seed", &seed.to_string(), "--out"]).arg(&out);
            command
        },
        RUN_TIMEOUT,
        CLEANUP_GRACE,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = stdout.lines().filter(|line| !line.starts_with("CHAOS-REPORT ")).collect();
    assert!(
        output.status.success(),
        "chaos run (seed {seed}) failed, exit {:?}; report and node logs in {}; rerun: scripts/chaos --faults \
         {FAULTS} --seed {seed}\n{}\n--- stderr (tail)\n{}",
        output.status.code(),
        out.display(),
        summary.join("\n"),
        tail(&String::from_utf8_lossy(&output.stderr), 40)
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
