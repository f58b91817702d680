#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, only what is missing; idempotent.
# - Debian: kcat (built on librdkafka 2.0.2: the oldest client we keep working), and Node.js
#   with npm when `node` or `npm` is missing (a NodeSource nodejs already carries npm);
#   iproute2 and e2fsprogs for the chaos checker's network namespaces and loop-mounted disks.
# - Python: a venv at .venv-tests with the pinned clients of tests/requirements.txt.
# - Node: tests/clients/node/node_modules (KafkaJS), `npm ci` from its package-lock.json.
# - Java: scripts/install-java-deps.sh (a JDK, Maven, and Apache Kafka's jars for tests/java).
# The venv and node_modules are re-made when their pin file changes.
# Rust (cargo, rustfmt, clippy) comes with the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo rustfmt cargo-clippy python3; do
    command -v "$tool" >/dev/null || { echo "install-test-deps: $tool is missing" >&2; exit 1; }
done

packages=(kcat iproute2 e2fsprogs ${TEST_DEPS:-})
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
# By command, not by package: NodeSource's nodejs provides npm and conflicts with Debian's npm.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
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

scripts/install-java-deps.sh
