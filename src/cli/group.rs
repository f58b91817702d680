//! `sluice group list | describe | reset-offsets | delete`: consumer group administration over
//! the wire (see [`crate::client::group_admin`]), against any Kafka-compatible broker.
//!
//! Lag is the partition's log end offset minus the group's committed offset. `reset-offsets`
//! prints its plan and changes nothing unless `--execute` is given; offsets past either end of
//! the log are moved to that end, as Kafka's tool does.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::common::{Cluster, emit, emit_json, on_executor, table};
use crate::client::group_admin::{GroupAdmin, GroupDescription, GroupOffsets};
use crate::client::{Admin, OffsetSpec};

#[derive(Debug, Args)]
pub(super) struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List the consumer groups of every broker.
    List {
        #[command(flatten)]
        cluster: Cluster,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a group's state, members and their assignments, committed offsets and lag.
    Describe {
        /// The group id.
        group: String,
        #[command(flatten)]
        cluster: Cluster,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move a group's committed offsets of a topic; the group must have no active members.
    #[command(group(ArgGroup::new("to").required(true).args(RESET_TARGETS)))]
    ResetOffsets {
        /// The group id.
        group: String,
        /// The topic whose offsets to reset (every partition).
        #[arg(long)]
        topic: String,
        /// To the log start.
        #[arg(long)]
        to_earliest: bool,
        /// To the log end.
        #[arg(long)]
        to_latest: bool,
        /// To this offset (moved into the log's range if outside it).
        #[arg(long, value_name = "N")]
        to_offset: Option<i64>,
        /// To the first record at or after MS (milliseconds since the epoch); the log end if
        /// there is none.
        #[arg(long, value_name = "MS")]
        to_timestamp: Option<i64>,
        /// Commit the new offsets; without it, only print the plan.
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        cluster: Cluster,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a group and its committed offsets; the group must have no active members.
    Delete {
        /// The group id.
        group: String,
        #[command(flatten)]
        cluster: Cluster,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The flags of `reset-offsets` that say where to; exactly one is required.
const RESET_TARGETS: [&str; 4] = ["to_earliest", "to_latest", "to_offset", "to_timestamp"];

/// Where `reset-offsets` moves the offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

pub(super) fn run(args: GroupArgs) -> anyhow::Result<()> {
    on_executor(|| async move {
        match args.command {
            GroupCommand::List { cluster, json } => list(&admin(&cluster).await?, json).await,
            GroupCommand::Describe { group, cluster, json } => describe(&admin(&cluster).await?, &group, json).await,
            GroupCommand::ResetOffsets {
                group,
                topic,
                to_earliest,
                to_latest,
                to_offset,
                to_timestamp,
                execute,
                cluster,
                json,
            } => {
                let to = match (to_earliest, to_latest, to_offset, to_timestamp) {
                    (true, ..) => ResetTo::Earliest,
                    (_, true, ..) => ResetTo::Latest,
                    (_, _, Some(offset), _) if offset < 0 => bail!("--to-offset must not be negative"),
                    (_, _, Some(offset), _) => ResetTo::Offset(offset),
                    (_, _, _, Some(ms)) => ResetTo::Timestamp(ms),
                    _ => bail!("give one of --to-earliest, --to-latest, --to-offset, --to-timestamp"),
                };
                reset(&admin(&cluster).await?, &group, &topic, to, execute, json).await
            }
            GroupCommand::Delete { group, cluster, json } => {
                admin(&cluster).await?.delete_group(&group).await?;
                if json {
                    emit_json(&json!({"group": group, "deleted": true}))
                } else {
                    emit(&format!("deleted group {group}\n"))
                }
            }
        }
    })
}

async fn admin(cluster: &Cluster) -> anyhow::Result<GroupAdmin> {
    Ok(GroupAdmin::new(cluster.connect("sluice-group").await?))
}

async fn list(admin: &GroupAdmin, json: bool) -> anyhow::Result<()> {
    let groups = admin.list_groups().await?;
    if json {
        let list: Vec<_> = groups
            .iter()
            .map(|g| json!({"group": g.group_id, "protocol_type": g.protocol_type, "state": g.state}))
            .collect();
        return emit_json(&json!(list));
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| vec![g.group_id.clone(), g.protocol_type.clone(), g.state.clone().unwrap_or_else(|| "-".into())])
        .collect();
    emit(&table(&["GROUP", "PROTOCOL-TYPE", "STATE"], &rows))
}

/// One partition's line of `describe`.
struct PartitionLag {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: Option<i64>,
    owner: Option<String>,
}

impl PartitionLag {
    fn lag(&self) -> Option<i64> {
        Some((self.log_end? - self.committed?).max(0))
    }
}

/// Every partition the group has committed or been assigned, with its lag.
async fn lags(
    admin: &GroupAdmin,
    description: &GroupDescription,
    offsets: &GroupOffsets,
) -> anyhow::Result<Vec<PartitionLag>> {
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    for member in &description.members {
        for (topic, partitions) in &member.assignment {
            for p in partitions {
                owners.insert((topic.clone(), *p), member.member_id.clone());
            }
        }
    }
    let keys: BTreeSet<(String, i32)> = offsets.keys().chain(owners.keys()).cloned().collect();
    let topics: BTreeSet<&str> = keys.iter().map(|(t, _)| t.as_str()).collect();
    let topic_admin = Admin::new(admin.client().clone());
    let mut log_ends = BTreeMap::new();
    for topic in topics {
        // A deleted topic may still have committed offsets: show them without a log end.
        if let Ok(ends) = topic_admin.list_offsets(topic, OffsetSpec::Latest).await {
            for (p, end) in ends {
                log_ends.insert((topic.to_string(), p), end.offset);
            }
        }
    }
    Ok(keys
        .into_iter()
        .map(|key| PartitionLag {
            committed: offsets.get(&key).map(|c| c.offset),
            log_end: log_ends.get(&key).copied().flatten(),
            owner: owners.get(&key).cloned(),
            topic: key.0,
            partition: key.1,
        })
        .collect())
}

fn or_dash(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn assignment_text(assignment: &[(String, Vec<i32>)]) -> String {
    let parts: Vec<String> = assignment
        .iter()
        .map(|(topic, partitions)| {
            let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic}:{}", list.join(","))
        })
        .collect();
    if parts.is_empty() { "-".to_string() } else { parts.join(" ") }
}

async fn describe(admin: &GroupAdmin, group: &str, json: bool) -> anyhow::Result<()> {
    let description = admin.describe_group(group).await?;
    let offsets = admin.committed_offsets(group).await?;
    if description.state == "Dead" && offsets.is_empty() {
        bail!("group {group} does not exist");
    }
    let lags = lags(admin, &description, &offsets).await?;
    if json {
        let members: Vec<_> = description
            .members
            .iter()
            .map(|m| {
                let assignment: Vec<_> =
                    m.assignment.iter().map(|(t, ps)| json!({"topic": t, "partitions": ps})).collect();
                json!({
                    "member_id": m.member_id,
                    "group_instance_id": m.group_instance_id,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "assignment": assignment,
                })
            })
            .collect();
        let offsets: Vec<_> = lags
            .iter()
            .map(|l| {
                json!({
                    "topic": l.topic,
                    "partition": l.partition,
                    "committed_offset": l.committed,
                    "log_end_offset": l.log_end,
                    "lag": l.lag(),
                    "member_id": l.owner,
                })
            })
            .collect();
        return emit_json(&json!({
            "group": description.group_id,
            "state": description.state,
            "protocol_type": description.protocol_type,
            "protocol": description.protocol,
            "coordinator": description.coordinator,
            "members": members,
            "offsets": offsets,
        }));
    }
    let mut out = format!(
        "group {}: state {}, protocol {}, coordinator {}, {} member(s)\n",
        description.group_id,
        description.state,
        if description.protocol.is_empty() { "-" } else { &description.protocol },
        description.coordinator,
        description.members.len()
    );
    if !description.members.is_empty() {
        let rows: Vec<Vec<String>> = description
            .members
            .iter()
            .map(|m| {
                vec![m.member_id.clone(), m.client_id.clone(), m.client_host.clone(), assignment_text(&m.assignment)]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["MEMBER", "CLIENT-ID", "HOST", "ASSIGNMENT"], &rows));
    }
    let rows: Vec<Vec<String>> = lags
        .iter()
        .map(|l| {
            vec![
                l.topic.clone(),
                l.partition.to_string(),
                or_dash(l.committed),
                or_dash(l.log_end),
                or_dash(l.lag()),
                l.owner.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(&["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "MEMBER"], &rows));
    emit(&out)
}

async fn reset(
    admin: &GroupAdmin,
    group: &str,
    topic: &str,
    to: ResetTo,
    execute: bool,
    json: bool,
) -> anyhow::Result<()> {
    let topic_admin = Admin::new(admin.client().clone());
    let earliest = topic_admin.list_offsets(topic, OffsetSpec::Earliest).await?;
    let latest = topic_admin.list_offsets(topic, OffsetSpec::Latest).await?;
    let by_time = match to {
        ResetTo::Timestamp(ms) => Some(topic_admin.list_offsets(topic, OffsetSpec::Timestamp(ms)).await?),
        _ => None,
    };
    let current = admin.committed_offsets(group).await?;
    let mut plan = Vec::new();
    for (partition, end) in &latest {
        let end = end.offset.unwrap_or(0);
        let start = earliest.get(partition).and_then(|o| o.offset).unwrap_or(0);
        let target = match to {
            ResetTo::Earliest => start,
            ResetTo::Latest => end,
            ResetTo::Offset(offset) => offset.clamp(start, end.max(start)),
            ResetTo::Timestamp(_) => {
                by_time.as_ref().and_then(|found| found.get(partition)).and_then(|o| o.offset).unwrap_or(end)
            }
        };
        let was = current.get(&(topic.to_string(), *partition)).map(|c| c.offset);
        plan.push((*partition, was, target));
    }
    if execute {
        let offsets: Vec<(String, i32, i64)> = plan.iter().map(|(p, _, new)| (topic.to_string(), *p, *new)).collect();
        admin.reset_offsets(group, &offsets).await?;
    }
    if json {
        let partitions: Vec<_> = plan
            .iter()
            .map(|(p, was, new)| json!({"partition": p, "current_offset": was, "new_offset": new}))
            .collect();
        return emit_json(&json!({"group": group, "topic": topic, "executed": execute, "partitions": partitions}));
    }
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|(p, was, new)| vec![topic.to_string(), p.to_string(), or_dash(*was), new.to_string()])
        .collect();
    let mut out = table(&["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"], &rows);
    if !execute {
        out.push_str("(dry run: nothing committed; add --execute to commit these offsets)\n");
    }
    emit(&out)
}
