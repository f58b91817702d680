//! What the client subcommands (`topic`, `produce`, `consume`, `group`, `bench`) share: the
//! `--bootstrap` flag, the `--acks` and `--compression` values, running client code on a glommio
//! executor, and plain-text tables.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::client::{Acks, Client, ClientConfig};
use crate::model::CompressionType;

/// `--acks`: 0, 1 or all (-1).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum AcksArg {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
    #[value(name = "all", alias = "-1")]
    All,
}

impl From<AcksArg> for Acks {
    fn from(arg: AcksArg) -> Acks {
        match arg {
            AcksArg::Zero => Acks::None,
            AcksArg::One => Acks::Leader,
            AcksArg::All => Acks::All,
        }
    }
}

/// `--compression`: Kafka's codec names.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for CompressionType {
    fn from(arg: CompressionArg) -> CompressionType {
        match arg {
            CompressionArg::None => CompressionType::None,
            CompressionArg::Gzip => CompressionType::Gzip,
            CompressionArg::Snappy => CompressionType::Snappy,
            CompressionArg::Lz4 => CompressionType::Lz4,
            CompressionArg::Zstd => CompressionType::Zstd,
        }
    }
}

/// Where the cluster is.
#[derive(Debug, Clone, Args)]
pub(super) struct Cluster {
    /// Bootstrap servers, comma-separated host:port.
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092", value_delimiter = ',')]
    bootstrap: Vec<String>,
}

impl Cluster {
    /// Connects to the first bootstrap server that answers.
    pub(super) async fn connect(&self, client_id: &str) -> anyhow::Result<Client> {
        let bootstrap: Vec<String> =
            self.bootstrap.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if bootstrap.is_empty() {
            bail!("--bootstrap is empty");
        }
        let mut config = ClientConfig::new(bootstrap);
        config.connection.client_id = client_id.to_string();
        // A person waits on these commands: an unreachable broker should fail in seconds.
        config.connection.connect_timeout = Duration::from_secs(5);
        Ok(Client::connect(config).await?)
    }
}

/// Runs `make()`'s future on a glommio executor on this thread (the client is `!Send` and
/// lives on one executor).
pub(super) fn on_executor<T, F>(make: impl FnOnce() -> F) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("starting a glommio executor (is RLIMIT_MEMLOCK at least 512 KiB?)")?;
    executor.run(make())
}

/// A table for people: a header row and left-aligned columns two spaces apart.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Prints `text` to stdout; a closed pipe (`| head`) ends the output quietly.
pub(super) fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

/// Prints `value` as one line of JSON.
pub(super) fn emit_json(value: &serde_json::Value) -> anyhow::Result<()> {
    emit(&format!("{value}\n"))
}

/// Parses `k=v` (the value may contain `=`).
pub(super) fn key_value(flag: &str, text: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => bail!("{flag} expects KEY=VALUE, got '{text}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = vec![vec!["a".to_string(), "long value".to_string()], vec!["bbb".to_string(), "x".to_string()]];
        assert_eq!(table(&["K", "V"], &rows), "K    V\na    long value\nbbb  x\n");
    }

    #[test]
    fn key_values_split_at_the_first_equals() {
        assert_eq!(key_value("--config", "a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(key_value("--config", "=b").is_err());
        assert!(key_value("--config", "ab").is_err());
    }
}
