//! `sluice produce TOPIC`: each line of stdin becomes one record (the newline, and a `\r`
//! before it, are not part of it). Prints nothing on success unless `--verbose`, which prints
//! where each record landed, in input order. The first failed record ends the run with its
//! error.
//!
//! The producer is idempotent, as the client's is by default: a retry never writes a line
//! twice. `--no-idempotence` turns that off; so do `--acks 0` and `--acks 1`, which cannot go
//! with it, as in Kafka's own tools when `enable.idempotence` is not set.
//!
//! Stdin is read on a thread of its own and handed over through a bounded channel: a blocking
//! read on the executor would stop the producer's linger timers and sender task while waiting
//! for a person to type the next line.

use std::collections::VecDeque;
use std::io::BufRead;

use anyhow::{Context, bail};
use clap::Args;
use futures_lite::StreamExt;
use serde_json::json;

use super::common::{AcksArg, Cluster, CompressionArg, emit, emit_json, key_value, on_executor};
use crate::client::{Acks, Delivery, Producer, ProducerConfig, ProducerRecord};

/// Lines read ahead of the producer.
const LINES_QUEUED_MAX: usize = 1024;
/// Records sent whose outcome is not yet known; beyond this, the oldest is waited for.
const DELIVERIES_PENDING_MAX: usize = 16 * 1024;

#[derive(Debug, Args)]
pub(super) struct ProduceArgs {
    /// The topic.
    topic: String,
    /// Each line is KEY<SEP>VALUE, split at the first SEP; a line without SEP is an error.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// A header on every record, KEY=VALUE; repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Acknowledgements to wait for: 0, 1 or all. 0 and 1 turn idempotence off.
    #[arg(long, value_enum, default_value = "all")]
    acks: AcksArg,
    /// Produce without idempotence: no producer id, and a retry may write a record twice.
    #[arg(long)]
    no_idempotence: bool,
    /// Batch compression.
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// Send every record to this partition (default: by key hash, or spread without keys).
    #[arg(long)]
    partition: Option<i32>,
    /// Print each record's partition and offset (the offset is unknown with --acks 0).
    #[arg(long)]
    verbose: bool,
    /// With --verbose: print one JSON object per record.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cluster: Cluster,
}

/// Splits a line into key and value at the first `separator`.
fn split_line(line: Vec<u8>, separator: Option<&[u8]>, number: u64) -> anyhow::Result<(Option<Vec<u8>>, Vec<u8>)> {
    let Some(separator) = separator else { return Ok((None, line)) };
    match line.windows(separator.len()).position(|w| w == separator) {
        Some(at) => Ok((Some(line[..at].to_vec()), line[at + separator.len()..].to_vec())),
        None => bail!("line {number} has no key separator '{}'", String::from_utf8_lossy(separator)),
    }
}

/// Reads stdin into `lines` until EOF (or the receiver is gone); an I/O error is sent as the
/// last item.
fn read_stdin(mut lines: futures_channel::mpsc::Sender<std::io::Result<Vec<u8>>>) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    loop {
        let mut line = Vec::new();
        let item = match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                Ok(line)
            }
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if futures_lite::future::block_on(send_when_ready(&mut lines, item)).is_err() || failed {
            return;
        }
    }
}

/// Waits for room in the channel, then sends (`SinkExt::send` without futures-util).
async fn send_when_ready<T>(sender: &mut futures_channel::mpsc::Sender<T>, item: T) -> Result<(), ()> {
    futures_lite::future::poll_fn(|cx| sender.poll_ready(cx)).await.map_err(drop)?;
    sender.start_send(item).map_err(drop)
}

pub(super) fn run(args: ProduceArgs) -> anyhow::Result<()> {
    if args.key_separator.as_deref() == Some("") {
        bail!("--key-separator must not be empty");
    }
    if args.partition.is_some_and(|p| p < 0) {
        bail!("--partition must not be negative");
    }
    let mut headers = Vec::new();
    for header in &args.headers {
        let (key, value) = key_value("--header", header)?;
        headers.push((key, value.into_bytes()));
    }
    let acks = args.acks.into();
    let config = ProducerConfig {
        acks,
        compression: args.compression.into(),
        idempotence: !args.no_idempotence && acks == Acks::All,
        ..Default::default()
    };
    on_executor(|| async move {
        let client = args.cluster.connect("sluice-produce").await?;
        let topic = client.topic(&args.topic).await?;
        if let Some(p) = args.partition
            && !topic.partitions.iter().any(|m| m.partition == p)
        {
            bail!("topic {} has no partition {p} ({} partitions)", args.topic, topic.partitions.len());
        }
        let producer = Producer::new(client, config)?;
        let (sender, mut lines) = futures_channel::mpsc::channel(LINES_QUEUED_MAX);
        // The reader thread is left behind if producing fails: the process exits right after.
        std::thread::Builder::new().name("stdin".into()).spawn(move || read_stdin(sender)).context("reading stdin")?;
        let separator = args.key_separator.as_deref().map(str::as_bytes);
        let mut pending: VecDeque<Delivery> = VecDeque::new();
        let mut number = 0u64;
        while let Some(line) = lines.next().await {
            number += 1;
            let (key, value) = split_line(line.context("reading stdin")?, separator, number)?;
            let record = ProducerRecord {
                partition: args.partition,
                headers: headers.clone(),
                ..ProducerRecord::new(&args.topic, key, Some(value))
            };
            pending.push_back(producer.send(record).await?);
            while pending.len() > DELIVERIES_PENDING_MAX {
                if let Some(delivery) = pending.pop_front() {
                    report(delivery, args.verbose, args.json).await?;
                }
            }
        }
        producer.flush().await;
        while let Some(delivery) = pending.pop_front() {
            report(delivery, args.verbose, args.json).await?;
        }
        Ok(())
    })
}

/// Waits for one record's outcome; prints it with `--verbose`.
async fn report(delivery: Delivery, verbose: bool, json: bool) -> anyhow::Result<()> {
    let metadata = delivery.await?;
    if !verbose {
        return Ok(());
    }
    if json {
        return emit_json(&json!({"partition": metadata.partition, "offset": metadata.offset}));
    }
    match metadata.offset {
        Some(offset) => emit(&format!("partition {} offset {offset}\n", metadata.partition)),
        None => emit(&format!("partition {} offset unknown (acks 0)\n", metadata.partition)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let (key, value) = split_line(b"k::v::w".to_vec(), Some(b"::"), 1).unwrap();
        assert_eq!((key.as_deref(), value.as_slice()), (Some(&b"k"[..]), &b"v::w"[..]));
        let (key, value) = split_line(b"::v".to_vec(), Some(b"::"), 1).unwrap();
        assert_eq!((key.as_deref(), value.as_slice()), (Some(&b""[..]), &b"v"[..]));
        assert_eq!(split_line(b"plain".to_vec(), None, 1).unwrap(), (None, b"plain".to_vec()));
        let error = split_line(b"no separator".to_vec(), Some(b":"), 7).unwrap_err();
        assert_eq!(error.to_string(), "line 7 has no key separator ':'");
    }
}
