//! Apache Kafka's Java client (tests/java, pinned by its pom.xml) against Sluice, with its
//! default settings: each test runs one scenario of sluice.it.ClientScenarios.

use crate::harness::{Broker, java_scenario};

fn run(scenario: &str) {
    let broker = Broker::start(&["--auto-create-topics"]);
    java_scenario(&broker, "ClientScenarios", scenario, &[]);
}

#[test]
fn producer_defaults() {
    run("producer_defaults");
}
