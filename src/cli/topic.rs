//! `sluice topic create | list | describe | delete | add-partitions | producers | alter-config`:
//! topic administration over the wire (CreateTopics, Metadata, DescribeConfigs, DeleteTopics,
//! CreatePartitions, DescribeProducers, IncrementalAlterConfigs), so it works against any
//! Kafka-compatible broker.

use std::collections::BTreeMap;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use super::common::{Cluster, emit, emit_json, key_value, on_executor, table};
use crate::client::txn_admin::TxnAdmin;
use crate::client::{Admin, AlterConfigOp, NewTopic, TopicMetadata};

/// How often, and how many times, `topic create` asks for the new topic before reporting it.
const CREATED_TOPIC_POLLS: usize = 50;
const CREATED_TOPIC_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Args)]
pub(super) struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        /// The topic name.
        name: String,
        /// Partitions (default: the broker's `num.partitions`).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replicas of each partition (default: the broker's).
        #[arg(long)]
        replication_factor: Option<i16>,
        /// A topic config, NAME=VALUE by Kafka's names (`retention.ms=60000`); repeatable.
        #[arg(long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
        #[command(flatten)]
        cluster: Cluster,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the topics, with their partition counts.
    List {
        #[command(flatten)]
        cluster: Cluster,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a topic's partitions (leader, leader epoch, replicas, in-sync replicas, offline
    /// replicas) and its configs with where each value comes from.
    Describe {
        /// The topic name.
        name: String,
        #[command(flatten)]
        cluster: Cluster,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a topic and its data.
    Delete {
        /// The topic name.
        name: String,
        #[command(flatten)]
        cluster: Cluster,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Grow a topic to a new total number of partitions (keys may then map to other partitions).
    AddPartitions {
        /// The topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        partitions: i32,
        #[command(flatten)]
        cluster: Cluster,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the producers with state on each partition: idempotent and transactional producer
    /// ids, epochs, last sequences and the start of any open transaction.
    Producers {
        /// The topic name.
        name: String,
        #[command(flatten)]
        cluster: Cluster,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set or remove topic configs; the others stay as they are.
    AlterConfig {
        /// The topic name.
        name: String,
        /// Set a config, NAME=VALUE; repeatable.
        #[arg(long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
        /// Remove a config set on the topic (the broker's value or the default applies again);
        /// repeatable.
        #[arg(long = "delete-config", value_name = "NAME")]
        delete_configs: Vec<String>,
        #[command(flatten)]
        cluster: Cluster,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(args: TopicArgs) -> anyhow::Result<()> {
    on_executor(|| async move {
        match args.command {
            TopicCommand::Create { name, partitions, replication_factor, configs, cluster, json } => {
                let mut topic = NewTopic::new(&name, partitions.unwrap_or(-1));
                topic.replication_factor = replication_factor.unwrap_or(-1);
                for config in &configs {
                    let (key, value) = key_value("--config", config)?;
                    topic = topic.config(key, value);
                }
                let admin = admin(&cluster).await?;
                admin.create_topic(topic).await?;
                // In a cluster, the broker asked next may learn of the topic a moment after the
                // controller committed it (metadata propagates, as in Kafka).
                let mut count = 0;
                for _ in 0..CREATED_TOPIC_POLLS {
                    count = admin
                        .describe_topics(&[&name])
                        .await
                        .ok()
                        .and_then(|t| t.first().map(|t| t.partitions.len()))
                        .unwrap_or(0);
                    if count > 0 {
                        break;
                    }
                    glommio::timer::sleep(CREATED_TOPIC_POLL_INTERVAL).await;
                }
                done(json, json!({"topic": name, "created": true, "partitions": count}), || {
                    format!("created topic {name} with {count} partition(s)")
                })
            }
            TopicCommand::List { cluster, json } => list(&admin(&cluster).await?, json).await,
            TopicCommand::Describe { name, cluster, json } => describe(&admin(&cluster).await?, &name, json).await,
            TopicCommand::Delete { name, cluster, json } => {
                let admin = admin(&cluster).await?;
                for (_, result) in admin.delete_topics(&[&name]).await? {
                    result?;
                }
                done(json, json!({"topic": name, "deleted": true}), || format!("deleted topic {name}"))
            }
            TopicCommand::AddPartitions { name, partitions, cluster, json } => {
                admin(&cluster).await?.create_partitions(&name, partitions).await?;
                done(json, json!({"topic": name, "partitions": partitions}), || {
                    format!("topic {name} now has {partitions} partitions")
                })
            }
            TopicCommand::Producers { name, cluster, json } => producers(&cluster, &name, json).await,
            TopicCommand::AlterConfig { name, configs, delete_configs, cluster, json } => {
                if configs.is_empty() && delete_configs.is_empty() {
                    bail!("nothing to change: give --config NAME=VALUE or --delete-config NAME");
                }
                let mut changes = Vec::new();
                for config in &configs {
                    let (key, value) = key_value("--config", config)?;
                    changes.push(AlterConfigOp::Set(key, value));
                }
                changes.extend(delete_configs.iter().map(|key| AlterConfigOp::Delete(key.clone())));
                admin(&cluster).await?.alter_topic_configs(&name, &changes).await?;
                let set: serde_json::Map<String, serde_json::Value> = changes
                    .iter()
                    .filter_map(|c| match c {
                        AlterConfigOp::Set(k, v) => Some((k.clone(), json!(v))),
                        _ => None,
                    })
                    .collect();
                done(json, json!({"topic": name, "set": set, "deleted": delete_configs}), || {
                    format!("altered the configs of topic {name}")
                })
            }
        }
    })
}

async fn admin(cluster: &Cluster) -> anyhow::Result<Admin> {
    Ok(Admin::new(cluster.connect("sluice-topic").await?))
}

/// Reports success: a line for people, or a JSON object.
fn done(json: bool, value: serde_json::Value, line: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json { emit_json(&value) } else { emit(&format!("{}\n", line())) }
}

fn replication_factor(topic: &TopicMetadata) -> usize {
    topic.partitions.iter().map(|p| p.replicas.len()).max().unwrap_or(0)
}

async fn list(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let metadata = admin.client().refresh_metadata(None).await?;
    let mut topics: Vec<&TopicMetadata> = metadata.topics.values().filter(|t| t.error_code == 0).collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        let list: Vec<_> = topics
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "partitions": t.partitions.len(),
                    "replication_factor": replication_factor(t),
                })
            })
            .collect();
        return emit_json(&json!(list));
    }
    let rows: Vec<Vec<String>> = topics
        .iter()
        .map(|t| vec![t.name.clone(), t.partitions.len().to_string(), replication_factor(t).to_string()])
        .collect();
    emit(&table(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"], &rows))
}

fn ids(list: &[i32]) -> String {
    list.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn describe(admin: &Admin, name: &str, json: bool) -> anyhow::Result<()> {
    let topic = admin.client().topic(name).await?;
    let configs = admin.describe_topic_configs(name).await?;
    let compacted =
        configs.iter().any(|c| c.name == "cleanup.policy" && c.value.as_deref().is_some_and(|v| v.contains("compact")));
    // The cleaner's state, for a compacted topic (Sluice brokers answer it in DescribeLogDirs).
    let logs = if compacted {
        let partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
        admin.describe_partition_logs(name, &partitions).await.unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    let now_ms = crate::model::Timestamp::now().0;
    let dirty = |p: i32| logs.get(&p).and_then(|l| l.cleaning);
    let last_clean = |p: i32| logs.get(&p).and_then(|l| l.last_clean);
    if json {
        let partitions: Vec<_> = topic
            .partitions
            .iter()
            .map(|p| {
                json!({
                    "partition": p.partition,
                    "leader": p.leader,
                    "leader_epoch": p.leader_epoch,
                    "replicas": p.replicas,
                    "isr": p.isr,
                    "offline_replicas": p.offline_replicas,
                    "dirty_bytes": dirty(p.partition).map(|d| d.0),
                    "cleanable_bytes": dirty(p.partition).map(|d| d.1),
                    "last_clean_ms": last_clean(p.partition).map(|c| c.0),
                    "last_clean_end_offset": last_clean(p.partition).map(|c| c.1),
                })
            })
            .collect();
        let configs: Vec<_> = configs
            .iter()
            .map(|c| json!({"name": c.name, "value": c.value, "source": c.source.name(), "read_only": c.read_only}))
            .collect();
        let value = json!({
            "name": topic.name,
            "replication_factor": replication_factor(&topic),
            "partitions": partitions,
            "configs": configs,
        });
        return emit_json(&value);
    }
    let mut out = format!(
        "topic {}: {} partition(s), replication factor {}\n\n",
        topic.name,
        topic.partitions.len(),
        replication_factor(&topic)
    );
    let rows: Vec<Vec<String>> = topic
        .partitions
        .iter()
        .map(|p| {
            let mut row = vec![
                p.partition.to_string(),
                p.leader.to_string(),
                p.leader_epoch.to_string(),
                ids(&p.replicas),
                ids(&p.isr),
                if p.offline_replicas.is_empty() { "-".to_string() } else { ids(&p.offline_replicas) },
            ];
            if compacted {
                row.push(match dirty(p.partition) {
                    Some((dirty, cleanable)) if cleanable > 0 => {
                        format!("{:.0}% of {}", dirty as f64 * 100.0 / cleanable as f64, human_bytes(cleanable))
                    }
                    Some(_) => "0%".to_string(),
                    None => "-".to_string(),
                });
                row.push(match last_clean(p.partition) {
                    Some((at, end)) => format!("{}s ago, up to {end}", (now_ms - at).max(0) / 1000),
                    None => "-".to_string(),
                });
            }
            row
        })
        .collect();
    let mut headers = vec!["PARTITION", "LEADER", "LEADER-EPOCH", "REPLICAS", "ISR", "OFFLINE"];
    if compacted {
        headers.extend(["DIRTY", "LAST-CLEAN"]);
    }
    out.push_str(&table(&headers, &rows));
    out.push('\n');
    let rows: Vec<Vec<String>> = configs
        .iter()
        .map(|c| vec![c.name.clone(), c.value.clone().unwrap_or_default(), c.source.name().to_string()])
        .collect();
    out.push_str(&table(&["CONFIG", "VALUE", "SOURCE"], &rows));
    emit(&out)
}

async fn producers(cluster: &Cluster, topic: &str, json: bool) -> anyhow::Result<()> {
    let admin = TxnAdmin::new(cluster.connect("sluice-topic").await?);
    let partitions = admin.describe_producers(topic).await?;
    let rows: Vec<(i32, crate::client::txn_admin::ProducerState)> =
        partitions.into_iter().flat_map(|(p, producers)| producers.into_iter().map(move |s| (p, s))).collect();
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(p, s)| {
                json!({
                    "partition": p,
                    "producer_id": s.producer_id,
                    "producer_epoch": s.producer_epoch,
                    "last_sequence": s.last_sequence,
                    "last_timestamp": s.last_timestamp,
                    "coordinator_epoch": s.coordinator_epoch,
                    "current_txn_start_offset": s.current_txn_start_offset,
                })
            })
            .collect();
        return emit_json(&json!(list));
    }
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(p, s)| {
            vec![
                p.to_string(),
                s.producer_id.to_string(),
                s.producer_epoch.to_string(),
                s.last_sequence.to_string(),
                s.last_timestamp.to_string(),
                s.coordinator_epoch.to_string(),
                s.current_txn_start_offset.map_or("-".into(), |o| o.to_string()),
            ]
        })
        .collect();
    emit(&table(
        &["PARTITION", "PRODUCER-ID", "EPOCH", "LAST-SEQUENCE", "LAST-TIMESTAMP", "COORDINATOR-EPOCH", "TXN-START"],
        &rows,
    ))
}

/// `n` bytes in B, KiB, MiB or GiB.
fn human_bytes(n: i64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1024.0 * 1024.0 * 1024.0 => format!("{:.1} GiB", n / (1024.0 * 1024.0 * 1024.0)),
        n if n >= 1024.0 * 1024.0 => format!("{:.1} MiB", n / (1024.0 * 1024.0)),
        n if n >= 1024.0 => format!("{:.1} KiB", n / 1024.0),
        n => format!("{n} B"),
    }
}
