//! Command-line entry points, one file per subcommand. Parsing happens here (clap); each
//! subcommand validates its arguments into the configuration of the layer it drives.

mod bench;
mod broker;
mod broker_stats;
mod cluster;
mod common;
mod consume;
mod group;
mod log;
mod produce;
mod topic;
mod txn;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sluice: a Kafka-compatible streaming platform, thread-per-core.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a Kafka-compatible broker.
    Broker(Box<broker::BrokerArgs>),
    /// Summarise a broker's Prometheus metrics (its --metrics-listen endpoint): requests per
    /// second and latency by API, connections, partitions, cache, consumer-group lag.
    BrokerStats(broker_stats::BrokerStatsArgs),
    /// Load-generate against any Kafka-compatible broker: throughput and latency.
    Bench(bench::BenchArgs),
    /// Work with a partition log directory directly: inspect it, or load it with synthetic
    /// appends (for benchmarks and crash tests).
    Log(log::LogArgs),
    /// Create, list, describe, delete and grow topics; change their configs.
    Topic(topic::TopicArgs),
    /// Send the lines of stdin to a topic, one record each.
    Produce(produce::ProduceArgs),
    /// Print a topic's records, formatted by a template.
    Consume(consume::ConsumeArgs),
    /// List, describe and delete consumer groups; reset their committed offsets.
    Group(group::GroupArgs),
    /// List and describe transactions; abort open or hanging ones.
    Txn(txn::TxnArgs),
    /// Show the brokers, the controller and the metadata quorum; elect preferred leaders.
    Cluster(cluster::ClusterArgs),
}

/// Parses the command line and runs the subcommand; errors print one line and exit non-zero.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Broker(args) => broker::run(*args),
        Command::BrokerStats(args) => broker_stats::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Log(args) => log::run(args),
        Command::Topic(args) => topic::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(args) => group::run(args),
        Command::Txn(args) => txn::run(args),
        Command::Cluster(args) => cluster::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
