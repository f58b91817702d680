//! `sluice consume TOPIC`: prints records, one line each, formatted by `--format`.
//!
//! Placeholders of `--format` (default `%v`):
//!
//! | placeholder | is replaced by |
//! | --- | --- |
//! | `%v` | the value (empty for a tombstone) |
//! | `%k` | the key (empty when there is none) |
//! | `%p` | the partition |
//! | `%o` | the offset |
//! | `%t` | the timestamp, milliseconds since the epoch |
//! | `%T` | the topic |
//! | `%h` | the headers, `key=value` joined by `,` |
//! | `%%` | a `%` |
//!
//! and the escapes `\n`, `\t` and `\\`. Keys, values and headers are written as their bytes.
//! Every record's output ends with a newline. `--json` prints one object per record instead
//! (bytes as UTF-8, invalid sequences replaced).
//!
//! Without `--count` the command runs until Ctrl-C, or until no record came for
//! `--timeout-ms`. Where to start: `--from-beginning`, `--offset N` (in every partition read),
//! `--timestamp MS` (the first record at or after it), or by default the log end: only new
//! records.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;

use super::common::{Cluster, on_executor};
use crate::client::{
    Consumer, ConsumerConfig, ConsumerRecord, GroupConfig, GroupConsumer, IsolationLevel, SeekTo, Subscribe,
};

#[derive(Debug, Args)]
pub(super) struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Consume as a member of this consumer group: the group's members split the partitions,
    /// reading starts at the group's committed offsets (else the log end, or the log start with
    /// --from-beginning), and the offsets of printed records are committed.
    #[arg(long, conflicts_with_all = ["partitions", "offset", "timestamp"])]
    group: Option<String>,
    /// Read only these partitions (repeatable, or comma-separated); default all.
    #[arg(long = "partition", value_name = "P", value_delimiter = ',')]
    partitions: Vec<i32>,
    /// Start at the log start.
    #[arg(long, conflicts_with_all = ["offset", "timestamp"])]
    from_beginning: bool,
    /// Start at this offset in every partition read.
    #[arg(long, conflicts_with = "timestamp")]
    offset: Option<i64>,
    /// Start at the first record whose timestamp is at or after MS (milliseconds since the epoch).
    #[arg(long, value_name = "MS")]
    timestamp: Option<i64>,
    /// Exit after printing this many records.
    #[arg(long)]
    count: Option<u64>,
    /// How to print each record; see `sluice consume --help` for the placeholders: %v value,
    /// %k key, %p partition, %o offset, %t timestamp, %T topic, %h headers, %% a percent sign.
    #[arg(long, default_value = "%v")]
    format: String,
    /// Exit (successfully) when no record came for this many milliseconds.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Print one JSON object per record (topic, partition, offset, timestamp, key, value, headers).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// read_committed: only records of committed transactions (up to the last stable offset);
    /// read_uncommitted: every record.
    #[arg(long, default_value = "read_uncommitted", value_parser = ["read_committed", "read_uncommitted"])]
    isolation_level: String,
    #[command(flatten)]
    cluster: Cluster,
}

/// One piece of a parsed `--format`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Key,
    Value,
    Partition,
    Offset,
    Timestamp,
    Topic,
    Headers,
}

/// Parses a `--format` template; an unknown placeholder or escape is an error.
fn parse_format(template: &str) -> anyhow::Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut text = Vec::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        let piece = match c {
            '%' => match chars.next() {
                Some('k') => Piece::Key,
                Some('v') => Piece::Value,
                Some('p') => Piece::Partition,
                Some('o') => Piece::Offset,
                Some('t') => Piece::Timestamp,
                Some('T') => Piece::Topic,
                Some('h') => Piece::Headers,
                Some('%') => {
                    text.push(b'%');
                    continue;
                }
                Some(other) => bail!("--format: unknown placeholder %{other} (known: %k %v %p %o %t %T %h %%)"),
                None => bail!("--format ends with a lone %"),
            },
            '\\' => {
                match chars.next() {
                    Some('n') => text.push(b'\n'),
                    Some('t') => text.push(b'\t'),
                    Some('\\') => text.push(b'\\'),
                    Some(other) => bail!("--format: unknown escape \\{other} (known: \\n \\t \\\\)"),
                    None => bail!("--format ends with a lone \\"),
                }
                continue;
            }
            c => {
                let mut buf = [0u8; 4];
                text.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(piece);
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Appends `record` formatted by `pieces`, and a newline, to `out`.
fn format_record(pieces: &[Piece], record: &ConsumerRecord, out: &mut Vec<u8>) {
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.extend_from_slice(text),
            Piece::Key => out.extend_from_slice(record.key.as_deref().unwrap_or_default()),
            Piece::Value => out.extend_from_slice(record.value.as_deref().unwrap_or_default()),
            Piece::Partition => out.extend_from_slice(record.partition.to_string().as_bytes()),
            Piece::Offset => out.extend_from_slice(record.offset.to_string().as_bytes()),
            Piece::Timestamp => out.extend_from_slice(record.timestamp.to_string().as_bytes()),
            Piece::Topic => out.extend_from_slice(record.topic.as_bytes()),
            Piece::Headers => {
                for (i, (key, value)) in record.headers.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key);
                    out.push(b'=');
                    out.extend_from_slice(value.as_deref().unwrap_or_default());
                }
            }
        }
    }
    out.push(b'\n');
}

fn text(bytes: Option<&[u8]>) -> serde_json::Value {
    match bytes {
        Some(bytes) => json!(String::from_utf8_lossy(bytes)),
        None => serde_json::Value::Null,
    }
}

fn record_json(record: &ConsumerRecord, out: &mut Vec<u8>) {
    let headers: Vec<_> =
        record.headers.iter().map(|(k, v)| json!({"key": text(Some(k)), "value": text(v.as_deref())})).collect();
    let value = json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": text(record.key.as_deref()),
        "value": text(record.value.as_deref()),
        "headers": headers,
    });
    out.extend_from_slice(value.to_string().as_bytes());
    out.push(b'\n');
}

pub(super) fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let pieces = parse_format(&args.format)?;
    if args.offset.is_some_and(|o| o < 0) {
        bail!("--offset must not be negative");
    }
    if args.count == Some(0) {
        return Ok(());
    }
    let start = match (args.from_beginning, args.offset, args.timestamp) {
        (true, _, _) => SeekTo::Earliest,
        (_, Some(offset), _) => SeekTo::Offset(offset),
        (_, _, Some(ms)) => SeekTo::Timestamp(ms),
        _ => SeekTo::Latest,
    };
    let idle_max = args.timeout_ms.map(Duration::from_millis);
    on_executor(|| async move {
        let client = args.cluster.connect("sluice-consume").await?;
        let topic = client.topic(&args.topic).await?;
        let mut config = ConsumerConfig::default();
        if args.isolation_level == "read_committed" {
            config.isolation = IsolationLevel::ReadCommitted;
        }
        if let Some(idle) = idle_max {
            // A long poll must not outlast the idle timeout by much.
            config.max_wait = config.max_wait.min(idle.max(Duration::from_millis(10)));
        }
        if let Some(group) = &args.group {
            let mut group_config = GroupConfig::new(group);
            // Commits follow what was printed, not what was fetched.
            group_config.auto_commit = None;
            group_config.reset = if args.from_beginning { SeekTo::Earliest } else { SeekTo::Latest };
            group_config.consumer = config;
            let mut consumer = GroupConsumer::new(client, group_config);
            consumer.subscribe(Subscribe::Topics(vec![args.topic.clone()]));
            let mut source = Source::Group(Box::new(consumer));
            let result = print_records(&args, &pieces, idle_max, &mut source).await;
            let Source::Group(consumer) = source else { return result };
            let closed = consumer.close().await;
            result?;
            return closed.context("leaving the group");
        }
        let partitions: Vec<i32> = if args.partitions.is_empty() {
            topic.partitions.iter().map(|p| p.partition).collect()
        } else {
            for p in &args.partitions {
                if !topic.partitions.iter().any(|m| m.partition == *p) {
                    bail!("topic {} has no partition {p} ({} partitions)", args.topic, topic.partitions.len());
                }
            }
            args.partitions.clone()
        };
        let mut consumer = Consumer::new(client, config);
        let assigned: Vec<(&str, i32)> = partitions.iter().map(|p| (args.topic.as_str(), *p)).collect();
        consumer.assign(&assigned);
        for p in &partitions {
            consumer.seek(&args.topic, *p, start).await?;
        }
        print_records(&args, &pieces, idle_max, &mut Source::Assigned(consumer)).await
    })
}

/// Where records come from: assigned partitions, or a group membership (`--group`), which
/// commits the offsets of what was printed after each batch.
enum Source {
    Assigned(Consumer),
    Group(Box<GroupConsumer>),
}

impl Source {
    async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, crate::client::ClientError> {
        match self {
            Source::Assigned(consumer) => consumer.poll().await,
            Source::Group(consumer) => consumer.poll().await,
        }
    }

    /// `records` were printed.
    async fn printed(&mut self, records: &[ConsumerRecord]) -> anyhow::Result<()> {
        let Source::Group(consumer) = self else { return Ok(()) };
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for record in records {
            next.insert((record.topic.to_string(), record.partition), record.offset + 1);
        }
        let offsets: Vec<(String, i32, i64, Option<String>)> =
            next.into_iter().map(|((topic, partition), offset)| (topic, partition, offset, None)).collect();
        consumer.commit_offsets(&offsets).await.context("committing offsets")
    }
}

/// Prints records until `--count`, the idle timeout, or a closed stdout.
async fn print_records(
    args: &ConsumeArgs,
    pieces: &[Piece],
    idle_max: Option<Duration>,
    source: &mut Source,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    let mut out = Vec::new();
    loop {
        let records = source.poll().await?;
        if records.is_empty() {
            if idle_max.is_some_and(|idle| last_record.elapsed() >= idle) {
                return Ok(());
            }
            continue;
        }
        last_record = Instant::now();
        out.clear();
        let take = args.count.map_or(records.len(), |count| {
            usize::try_from(count.saturating_sub(printed)).unwrap_or(usize::MAX).min(records.len())
        });
        for record in &records[..take] {
            if args.json {
                record_json(record, &mut out);
            } else {
                format_record(pieces, record, &mut out);
            }
        }
        printed += take as u64;
        // Flushed per poll, so that a reader of a pipe sees records as they come.
        let mut lock = stdout.lock();
        match lock.write_all(&out).and_then(|()| lock.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            result => result.context("writing to stdout")?,
        }
        drop(lock);
        source.printed(&records[..take]).await?;
        if args.count.is_some_and(|count| printed >= count) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use bytes::Bytes;

    use super::*;

    #[test]
    fn formats_every_placeholder() {
        let record = ConsumerRecord {
            topic: Rc::from("t"),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![(Bytes::from_static(b"a"), Some(Bytes::from_static(b"1"))), (Bytes::from_static(b"b"), None)],
        };
        let pieces = parse_format(r"%T/%p@%o %t %k=%v [%h] 100%%\t.").unwrap();
        let mut out = Vec::new();
        format_record(&pieces, &record, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "t/2@7 1000 k=v [a=1,b=] 100%\t.\n");
        let tombstone = ConsumerRecord { key: None, value: None, ..record };
        let mut out = Vec::new();
        format_record(&parse_format("%k|%v").unwrap(), &tombstone, &mut out);
        assert_eq!(out, b"|\n");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(parse_format("%x").unwrap_err().to_string().contains("%x"));
        assert!(parse_format("100%").is_err());
        assert!(parse_format(r"\q").is_err());
        assert_eq!(parse_format("é%v").unwrap(), vec![Piece::Text("é".as_bytes().to_vec()), Piece::Value]);
    }
}
