//! `sluice cluster status | elect-leaders`: the cluster over the wire. `status` shows the live
//! brokers and the controller (DescribeCluster) and the metadata quorum (DescribeQuorum): its
//! leader, epoch, high watermark, and each voter's and observer's log end and lag (the high
//! watermark minus its end). `elect-leaders` moves partitions' leadership back to their preferred
//! replica (ElectLeaders), like Kafka's `kafka-leader-election --election-type PREFERRED`.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use super::common::{Cluster, emit, emit_json, on_executor, table};
use crate::client::{Admin, ClientError, QuorumInfo, QuorumReplica};
use crate::protocol::ErrorCode;

#[derive(Debug, Args)]
pub(super) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Show the live brokers, the controller and the metadata quorum (leader, epoch, high
    /// watermark, each voter's and observer's log end and lag).
    Status {
        #[command(flatten)]
        cluster: Cluster,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make each partition's preferred replica (its first) the leader again where it is live and
    /// in sync: every partition, a topic's, or one.
    ElectLeaders {
        /// Only this topic's partitions.
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        #[command(flatten)]
        cluster: Cluster,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(args: ClusterArgs) -> anyhow::Result<()> {
    on_executor(|| async move {
        match args.command {
            ClusterCommand::Status { cluster, json } => status(&admin(&cluster).await?, json).await,
            ClusterCommand::ElectLeaders { topic, partition, cluster, json } => {
                elect_leaders(&admin(&cluster).await?, topic, partition, json).await
            }
        }
    })
}

async fn admin(cluster: &Cluster) -> anyhow::Result<Admin> {
    Ok(Admin::new(cluster.connect("sluice-cluster").await?))
}

/// A replica's lag behind the high watermark, if its log end is known.
fn lag(quorum: &QuorumInfo, replica: &QuorumReplica) -> Option<i64> {
    (replica.log_end_offset >= 0).then(|| quorum.high_watermark.saturating_sub(replica.log_end_offset).max(0))
}

async fn status(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let cluster = admin.describe_cluster().await?;
    let quorum = admin.describe_quorum().await?;
    // A node of the quorum that Metadata does not list as a live broker is fenced (down, or cut
    // off from the controller for longer than the session timeout).
    let live = |id: i32| cluster.brokers.iter().any(|b| b.id == id);
    let fenced: Vec<i32> =
        quorum.voters.iter().chain(&quorum.observers).map(|r| r.id).filter(|id| !live(*id)).collect();
    let replicas = |list: &[QuorumReplica]| -> Vec<serde_json::Value> {
        list.iter().map(|r| json!({"id": r.id, "log_end_offset": r.log_end_offset, "lag": lag(&quorum, r)})).collect()
    };
    if json {
        let brokers: Vec<_> =
            cluster.brokers.iter().map(|b| json!({"id": b.id, "host": b.host, "port": b.port})).collect();
        return emit_json(&json!({
            "cluster_id": cluster.cluster_id,
            "controller": cluster.controller_id,
            "brokers": brokers,
            "fenced": fenced,
            "quorum": {
                "leader": quorum.leader_id,
                "epoch": quorum.leader_epoch,
                "high_watermark": quorum.high_watermark,
                "voters": replicas(&quorum.voters),
                "observers": replicas(&quorum.observers),
            },
        }));
    }
    let mut out = format!("cluster {}, controller {}\n\n", cluster.cluster_id, cluster.controller_id);
    let rows: Vec<Vec<String>> =
        cluster.brokers.iter().map(|b| vec![b.id.to_string(), format!("{}:{}", b.host, b.port)]).collect();
    out.push_str(&table(&["BROKER", "ADDRESS"], &rows));
    out.push_str(&format!(
        "\nmetadata quorum: leader {}, epoch {}, high watermark {}\n\n",
        quorum.leader_id, quorum.leader_epoch, quorum.high_watermark
    ));
    let role = |id: i32, voter: bool| match (voter, id == quorum.leader_id) {
        (true, true) => "leader",
        (true, false) => "follower",
        (false, _) => "observer",
    };
    let rows: Vec<Vec<String>> = quorum
        .voters
        .iter()
        .map(|r| (r, true))
        .chain(quorum.observers.iter().map(|r| (r, false)))
        .map(|(r, voter)| {
            vec![
                r.id.to_string(),
                role(r.id, voter).to_string(),
                if live(r.id) { "live" } else { "fenced" }.to_string(),
                r.log_end_offset.to_string(),
                lag(&quorum, r).map_or("-".into(), |lag| lag.to_string()),
            ]
        })
        .collect();
    out.push_str(&table(&["NODE", "ROLE", "BROKER", "LOG-END", "LAG"], &rows));
    emit(&out)
}

/// How one partition's election went, for people and for JSON.
fn outcome(result: &Result<(), ClientError>) -> (&'static str, Option<String>) {
    match result {
        Ok(()) => ("elected", None),
        Err(e) if e.code() == Some(ErrorCode::ElectionNotNeeded) => ("not-needed", None),
        Err(e) => ("failed", Some(e.to_string())),
    }
}

async fn elect_leaders(admin: &Admin, topic: Option<String>, partition: Option<i32>, json: bool) -> anyhow::Result<()> {
    let asked: Option<Vec<(String, i32)>> = match (topic, partition) {
        (Some(topic), Some(partition)) => Some(vec![(topic, partition)]),
        (Some(topic), None) => {
            let described = admin.client().topic(&topic).await?;
            Some(described.partitions.iter().map(|p| (topic.clone(), p.partition)).collect())
        }
        (None, _) => None,
    };
    let results = admin.elect_preferred_leaders(asked.as_deref()).await?;
    let failures = results.iter().filter(|(_, r)| outcome(r).0 == "failed").count();
    if json {
        let list: Vec<_> = results
            .iter()
            .map(|((topic, partition), result)| {
                let (outcome, error) = outcome(result);
                json!({"topic": topic, "partition": partition, "outcome": outcome, "error": error})
            })
            .collect();
        emit_json(&json!(list))?;
    } else if results.is_empty() {
        emit("every partition is led by its preferred replica\n")?;
    } else {
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|((topic, partition), result)| {
                let (outcome, error) = outcome(result);
                vec![topic.clone(), partition.to_string(), outcome.to_string(), error.unwrap_or_default()]
            })
            .collect();
        emit(&table(&["TOPIC", "PARTITION", "OUTCOME", "ERROR"], &rows))?;
    }
    if failures > 0 {
        bail!("{failures} partition(s) could not be led by their preferred replica");
    }
    Ok(())
}
