#!/usr/bin/env bash
# Installs what the Java tests (tests/java) and perf/vs-kafka need, only what is missing; idempotent.
# - a JDK 17 and Maven: Debian's, when `javac` or `mvn` is missing;
# - Apache Kafka's jars pinned by tests/java/pom.xml (client, tools, Streams, Connect, the broker),
#   copied from Maven Central to tests/java/target/lib, again whenever pom.xml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-java-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

lib=tests/java/target/lib
stamp="$lib/.pom.xml"
if [ ! -d "$lib" ] || ! cmp -s tests/java/pom.xml "$stamp"; then
    echo "install-java-deps: copying Apache Kafka's jars to $lib" >&2
    rm -rf "$lib"
    mvn -q -B -Dstyle.color=never -f tests/java/pom.xml dependency:copy-dependencies -DoutputDirectory=target/lib
    cp tests/java/pom.xml "$stamp"
fi
