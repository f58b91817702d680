//! `sluice txn list | describe | abort`: transaction administration over the wire (see
//! [`crate::client::txn_admin`]), against any Kafka-compatible broker, like Kafka's
//! `kafka-transactions` tool.
//!
//! `abort ID` aborts the open transaction of a transactional id as its producer would (EndTxn
//! with its producer id and epoch); `abort --topic T --partition P --start-offset O` aborts a
//! hanging transaction found on a partition (WriteTxnMarkers at its leader).

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use super::common::{Cluster, emit, emit_json, on_executor, table};
use crate::client::txn_admin::TxnAdmin;

#[derive(Debug, Args)]
pub(super) struct TxnArgs {
    #[command(subcommand)]
    command: TxnCommand,
}

#[derive(Debug, Subcommand)]
enum TxnCommand {
    /// List the transactional ids of every broker.
    List {
        /// Only transactions in this state (Kafka's names: Ongoing, CompleteCommit, …);
        /// repeatable.
        #[arg(long = "state")]
        states: Vec<String>,
        #[command(flatten)]
        cluster: Cluster,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a transactional id's producer, state, timeout and the partitions of its open
    /// transaction.
    Describe {
        /// The transactional id.
        transactional_id: String,
        #[command(flatten)]
        cluster: Cluster,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Abort an open transaction: by transactional id, or a hanging one by partition and start
    /// offset (see `sluice topic producers`).
    Abort {
        /// The transactional id (or give --topic, --partition and --start-offset).
        transactional_id: Option<String>,
        /// The topic of a hanging transaction.
        #[arg(long, requires_all = ["partition", "start_offset"], conflicts_with = "transactional_id")]
        topic: Option<String>,
        /// Its partition.
        #[arg(long)]
        partition: Option<i32>,
        /// The first offset of the hanging transaction.
        #[arg(long)]
        start_offset: Option<i64>,
        #[command(flatten)]
        cluster: Cluster,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(args: TxnArgs) -> anyhow::Result<()> {
    on_executor(|| async move {
        match args.command {
            TxnCommand::List { states, cluster, json } => {
                let listed = admin(&cluster).await?.list(&states).await?;
                if json {
                    let list: Vec<_> = listed
                        .iter()
                        .map(|t| {
                            let (id, producer, state) = (&t.transactional_id, t.producer_id, &t.state);
                            json!({"transactional_id": id, "producer_id": producer, "state": state})
                        })
                        .collect();
                    return emit_json(&json!(list));
                }
                let rows: Vec<Vec<String>> = listed
                    .iter()
                    .map(|t| vec![t.transactional_id.clone(), t.producer_id.to_string(), t.state.clone()])
                    .collect();
                emit(&table(&["TRANSACTIONAL-ID", "PRODUCER-ID", "STATE"], &rows))
            }
            TxnCommand::Describe { transactional_id, cluster, json } => {
                let d = admin(&cluster).await?.describe(&transactional_id).await?;
                let partitions: Vec<String> = d
                    .partitions
                    .iter()
                    .flat_map(|(topic, ps)| ps.iter().map(move |p| format!("{topic}-{p}")))
                    .collect();
                if json {
                    return emit_json(&json!({
                        "transactional_id": d.transactional_id,
                        "coordinator": d.coordinator,
                        "state": d.state,
                        "producer_id": d.producer_id,
                        "producer_epoch": d.producer_epoch,
                        "timeout_ms": d.timeout_ms,
                        "start_time_ms": d.start_time_ms,
                        "partitions": partitions,
                    }));
                }
                let row = vec![
                    d.coordinator.to_string(),
                    d.transactional_id.clone(),
                    d.producer_id.to_string(),
                    d.producer_epoch.to_string(),
                    d.state.clone(),
                    d.timeout_ms.to_string(),
                    if d.start_time_ms < 0 { "-".into() } else { d.start_time_ms.to_string() },
                    if partitions.is_empty() { "-".into() } else { partitions.join(",") },
                ];
                let headers = [
                    "COORDINATOR",
                    "TRANSACTIONAL-ID",
                    "PRODUCER-ID",
                    "EPOCH",
                    "STATE",
                    "TIMEOUT-MS",
                    "START-MS",
                    "PARTITIONS",
                ];
                emit(&table(&headers, &[row]))
            }
            TxnCommand::Abort { transactional_id, topic, partition, start_offset, cluster, json } => {
                let admin = admin(&cluster).await?;
                let what = match (transactional_id, topic, partition, start_offset) {
                    (Some(id), None, ..) => {
                        admin.abort(&id).await?;
                        format!("transaction {id}")
                    }
                    (None, Some(topic), Some(partition), Some(offset)) => {
                        admin.abort_hanging(&topic, partition, offset).await?;
                        format!("the transaction starting at {topic}-{partition}@{offset}")
                    }
                    _ => bail!("give a transactional id, or --topic, --partition and --start-offset"),
                };
                if json { emit_json(&json!({"aborted": what})) } else { emit(&format!("aborted {what}\n")) }
            }
        }
    })
}

async fn admin(cluster: &Cluster) -> anyhow::Result<TxnAdmin> {
    Ok(TxnAdmin::new(cluster.connect("sluice-txn").await?))
}
