//! Apache Kafka 4.1.2's cluster tools against Sluice, run through the main classes their scripts
//! start: `kafka-metadata-quorum.sh describe` (DescribeQuorum) on a cluster with an observer and
//! on a single broker, and `kafka-leader-election.sh` (ElectLeaders) on a three-node cluster.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::harness::{Broker, Cluster, java, output_within, sluice_bin};

const METADATA_QUORUM: &str = "org.apache.kafka.tools.MetadataQuorumCommand";
const LEADER_ELECTION: &str = "org.apache.kafka.tools.LeaderElectionCommand";

/// How long one tool run may take before it is killed (a tool retrying a broker bug must fail).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a cluster may take to notice a killed node and move its leaderships.
const RECOVERY: Duration = Duration::from_secs(20);

/// Runs a tool's main class against `bootstrap`; returns (success, stdout, everything printed).
fn tool(bootstrap: &str, class: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = java(class);
    command.args(["--bootstrap-server", bootstrap]).args(args);
    let output: Output = output_within(command, TOOL_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let printed = format!(
        "{class} {}\n--- status {}\n--- stdout\n{stdout}\n--- stderr\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), stdout, printed)
}

/// The value after `key:` in `kafka-metadata-quorum describe --status`'s output.
fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in:\n{status}"))
}

/// `--replication`'s rows: (node id, log end offset, lag, status).
fn replication_rows(text: &str) -> Vec<(i64, i64, i64, String)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let status = cells.last()?.to_string();
            Some((cells.first()?.parse().ok()?, cells.get(2)?.parse().ok()?, cells.get(3)?.parse().ok()?, status))
        })
        .collect()
}

/// Creates `name` through the sluice CLI, retrying while the quorum is electing.
fn create_topic(addr: &str, name: &str, partitions: &str, replication_factor: &str) {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let output = std::process::Command::new(sluice_bin())
            .args(["topic", "create", name, "--partitions", partitions, "--replication-factor", replication_factor])
            .args(["--bootstrap", addr])
            .output()
            .expect("run sluice");
        if output.status.success() {
            return;
        }
        assert!(Instant::now() < deadline, "creating {name}: {}", String::from_utf8_lossy(&output.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metadata_quorum_describes_voters_and_an_observer() {
    // Nodes 1-3 vote; node 4 is a broker only, an observer of the metadata log.
    let cluster = Cluster::start(4, &[]);
    let bootstrap = cluster.nodes[3].addr.clone();
    // The observer shows up with a log end offset once its heartbeat reached the controller.
    let deadline = Instant::now() + RECOVERY;
    let status = loop {
        let (ok, stdout, printed) = tool(&bootstrap, METADATA_QUORUM, &["describe", "--status"]);
        assert!(ok, "{printed}");
        if stdout.contains("\"id\": 4") || Instant::now() > deadline {
            break stdout;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let leader: i64 = field(&status, "LeaderId").parse().unwrap();
    assert!((1..=3).contains(&leader), "{status}");
    assert!(field(&status, "LeaderEpoch").parse::<i64>().unwrap() >= 1, "{status}");
    assert!(field(&status, "HighWatermark").parse::<i64>().unwrap() > 0, "{status}");
    assert!(!field(&status, "ClusterId").is_empty(), "{status}");
    let voters = field(&status, "CurrentVoters");
    for id in 1..=3 {
        assert!(voters.contains(&format!("\"id\": {id}")), "voter {id}: {status}");
    }
    assert!(voters.contains("CONTROLLER://127.0.0.1:"), "the voters' endpoints: {status}");
    assert!(field(&status, "CurrentObservers").contains("\"id\": 4"), "{status}");

    let (ok, replication, printed) = tool(&bootstrap, METADATA_QUORUM, &["describe", "--replication"]);
    assert!(ok, "{printed}");
    let rows = replication_rows(&replication);
    let statuses: Vec<(i64, &str)> = rows.iter().map(|r| (r.0, r.3.as_str())).collect();
    assert!(statuses.contains(&(leader, "Leader")), "{printed}");
    assert_eq!(statuses.iter().filter(|s| s.1 == "Follower").count(), 2, "{printed}");
    assert!(statuses.contains(&(4, "Observer")), "{printed}");
    let leader_end = rows.iter().find(|r| r.0 == leader).map(|r| r.1).unwrap();
    assert!(leader_end > 0, "{printed}");
    // Lag is the leader's log end minus the replica's, as the tool computes it.
    assert!(rows.iter().all(|r| r.2 == leader_end - r.1), "{printed}");
}

#[test]
fn metadata_quorum_describes_a_single_broker() {
    let broker = Broker::start(&[]);
    let (ok, status, printed) = tool(&broker.addr, METADATA_QUORUM, &["describe", "--status"]);
    assert!(ok, "{printed}");
    let leader = field(&status, "LeaderId");
    assert!(field(&status, "CurrentVoters").contains(&format!("\"id\": {leader}")), "{printed}");
    assert_eq!(field(&status, "MaxFollowerLag"), "0", "{printed}");
    let (ok, replication, printed) = tool(&broker.addr, METADATA_QUORUM, &["describe", "--replication"]);
    assert!(ok, "{printed}");
    let rows = replication_rows(&replication);
    assert_eq!(rows.len(), 1, "{printed}");
    assert_eq!((rows[0].2, rows[0].3.as_str()), (0, "Leader"), "{printed}");
}

#[test]
fn leader_election_reports_elections_not_needed_and_impossible() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.nodes[0].addr.clone();
    create_topic(&bootstrap, "elect", "3", "3");
    let preferred = ["--election-type", "PREFERRED"];

    // Every preferred replica leads: nothing to do, and nothing to report about any partition.
    let all: Vec<&str> = preferred.iter().copied().chain(["--all-topic-partitions"]).collect();
    let (ok, stdout, printed) = tool(&bootstrap, LEADER_ELECTION, &all);
    assert!(ok, "{printed}");
    assert!(!stdout.contains("elect-"), "{printed}");
    // Named, a partition whose preferred replica leads reports that.
    let one: Vec<&str> = preferred.iter().copied().chain(["--topic", "elect", "--partition", "1"]).collect();
    let (ok, stdout, printed) = tool(&bootstrap, LEADER_ELECTION, &one);
    assert!(ok, "{printed}");
    assert!(stdout.contains("Valid replica already elected for partitions elect-1"), "{printed}");

    // A topic of one replica per partition: one of them only node 3 holds.
    create_topic(&bootstrap, "solo", "3", "1");
    let (ok, _, printed) = tool(&bootstrap, LEADER_ELECTION, &all);
    assert!(ok, "{printed}");

    // Node 3 dies. The "elect" partition it led moves to another in-sync replica, but its
    // preferred replica cannot be elected; the "solo" one it held is left without a leader.
    cluster.node(3).kill9();
    let gone = |m: &serde_json::Value| m["brokers"].as_array().is_some_and(|b| b.iter().all(|b| b["id"] != 3));
    let metadata = cluster.wait_metadata(1, RECOVERY, gone);
    assert!(gone(&metadata), "{metadata}");
    let (ok, stdout, printed) = tool(&bootstrap, LEADER_ELECTION, &all);
    assert!(!ok, "{printed}");
    assert!(stdout.contains("Error completing leader election (PREFERRED) for partition: elect-"), "{printed}");
    assert!(stdout.contains("Error completing leader election (PREFERRED) for partition: solo-"), "{printed}");
    assert!(printed.contains("2 replica(s) could not be elected"), "{printed}");

    // An unclean election: the led partitions do not need one, and the one whose only replica
    // is down gets ELIGIBLE_LEADERS_NOT_AVAILABLE, saying why.
    let unclean: Vec<&str> = vec!["--election-type", "UNCLEAN", "--all-topic-partitions"];
    let (ok, stdout, printed) = tool(&bootstrap, LEADER_ELECTION, &unclean);
    assert!(!ok, "{printed}");
    assert!(stdout.contains("Error completing leader election (UNCLEAN) for partition: solo-"), "{printed}");
    assert!(stdout.contains("is live"), "{printed}");
    assert!(printed.contains("1 replica(s) could not be elected"), "{printed}");

    // Back, node 3 leads its "solo" partition again (it alone is in sync there).
    cluster.node(3).restart();
    let back = |m: &serde_json::Value| m.to_string().matches("\"leader\":3").count() == 1;
    let metadata = cluster.wait_metadata(1, RECOVERY, back);
    assert!(back(&metadata), "{metadata}");
}
