#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, only what is missing; idempotent.
# - Debian: kcat (built on librdkafka 2.0.2: the oldest client we keep working), and Node.js
#   with npm when `node` or `npm` is missing (a NodeSource nodejs already carries npm).
# - Python: a venv at .venv-tests with the pinned clients of tests/requirements.txt.
# - Node: tests/clients/node/node_modules (KafkaJS), `npm ci` from its package-lock.json.
# - Java: a JDK 17 and Maven (Debian's, when `javac` or `mvn` is missing), and Apache Kafka's jars
#   pinned by tests/java/pom.xml, copied to tests/java/target/lib from Maven Central.
# The venv, node_modules and the jars are re-made when their pin file changes.
# Rust (cargo, rustfmt, clippy) comes with the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo rustfmt cargo-clippy python3; do
    command -v "$tool" >/dev/null || { echo "install-test-deps: $tool is missing" >&2; exit 1; }
done

packages=(kcat ${TEST_DEPS:-})
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
# By command, not by package: NodeSource's nodejs provides npm and conflicts with Debian's npm.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-test-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv=.venv-tests
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/requirements.txt "$stamp"; then
    echo "install-test-deps: creating $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r tests/requirements.txt
    cp tests/requirements.txt "$stamp"
fi

node_dir=tests/clients/node
node_stamp="$node_dir/node_modules/.package-lock.stamp"
if [ ! -d "$node_dir/node_modules" ] || ! cmp -s "$node_dir/package-lock.json" "$node_stamp"; then
    echo "install-test-deps: npm ci in $node_dir" >&2
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$node_dir/package-lock.json" "$node_stamp"
fi

java_lib=tests/java/target/lib
java_stamp="$java_lib/.pom.xml"
if [ ! -d "$java_lib" ] || ! cmp -s tests/java/pom.xml "$java_stamp"; then
    echo "install-test-deps: copying Apache Kafka's jars to $java_lib" >&2
    rm -rf "$java_lib"
    mvn -q -B -Dstyle.color=never -f tests/java/pom.xml dependency:copy-dependencies -DoutputDirectory=target/lib
    cp tests/java/pom.xml "$java_stamp"
fi
