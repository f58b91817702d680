//! The broker process: one per data dir, a clean stop on SIGTERM, and a full disk on one
//! partition failing only that partition.

use std::path::Path;
use std::process::Command;

use crate::harness::{Broker, sluice_bin};
use crate::raw::{batch, create_topic, produce, produce_at, still_serves};

#[test]
fn a_second_broker_cannot_take_the_same_data_dir() {
    let broker = Broker::start(&["--cores", "1"]);
    let output = Command::new(sluice_bin())
        .args(["broker", "--listen", "127.0.0.1:0", "--cores", "1", "--data-dir"])
        .arg(&broker.data_dir)
        .output()
        .expect("run a second broker");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another broker"), "{stderr}");
    still_serves(&broker);
}

#[test]
fn a_second_broker_cannot_take_the_same_address() {
    // The shards' listeners set SO_REUSEPORT, which would let a second broker bind the same
    // port and the kernel split the connections between the two.
    let broker = Broker::start(&["--cores", "1"]);
    let other = crate::harness::temp_dir();
    let output = Command::new(sluice_bin())
        .args(["broker", "--listen", broker.addr.as_str(), "--cores", "1", "--data-dir"])
        .arg(other.path())
        .output()
        .expect("run a second broker");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    still_serves(&broker);
}

#[test]
fn sigterm_closes_every_log_cleanly_and_a_restart_keeps_the_data() {
    let mut broker = Broker::start(&["--cores", "2"]);
    create_topic(&broker, "kept");
    for partition in 0..2 {
        assert_eq!(produce_at(&broker, "kept", partition, &batch(3, 10)), (0, 0));
    }
    assert!(broker.stop(), "the broker exits 0 on SIGTERM");
    for partition in 0..2 {
        let marker = broker.data_dir.join(format!("kept-{partition}")).join(".clean-shutdown");
        assert!(marker.exists(), "{} is missing", marker.display());
    }
    broker.restart();
    for partition in 0..2 {
        assert_eq!(produce_at(&broker, "kept", partition, &batch(2, 10)), (0, 3), "offsets continue after restart");
    }
}

fn mount_tmpfs(dir: &Path, bytes: u64) -> bool {
    let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"]).arg(dir).status();
    matches!(status, Ok(s) if s.success())
}

#[test]
fn a_full_disk_fails_only_its_partition_with_kafka_storage_error() {
    let mut broker = Broker::start(&["--cores", "1"]);
    create_topic(&broker, "disk");
    assert!(broker.stop());
    // Put partition 0 on a 1 MiB tmpfs: room for its files, not for a segment's first extent.
    let dir = broker.data_dir.join("disk-0");
    let saved = broker.data_dir.join("disk-0.saved");
    std::fs::rename(&dir, &saved).expect("move partition aside");
    std::fs::create_dir(&dir).expect("mount point");
    if !mount_tmpfs(&dir, 1 << 20) {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    for entry in std::fs::read_dir(&saved).expect("saved partition") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy into tmpfs");
    }
    broker.restart();
    let full = produce(&broker, "disk", 0, &batch(3, 10));
    let fine = produce(&broker, "disk", 1, &batch(3, 10));
    let again = produce(&broker, "disk", 0, &batch(1, 10));
    let fine_again = produce(&broker, "disk", 1, &batch(1, 10));
    still_serves(&broker);
    assert!(broker.is_running());
    broker.kill9();
    let _ = Command::new("umount").arg(&dir).status();
    assert_eq!(full, 56, "KAFKA_STORAGE_ERROR on the full partition");
    assert_eq!(again, 56, "and it stays offline");
    assert_eq!((fine, fine_again), (0, 0), "the other partition goes on");
}
