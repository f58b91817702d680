#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, only what is missing; idempotent.
# Rust (cargo, rustfmt, clippy) comes with the machine; the Debian and Python packages the
# client-compatibility tests need are added here as those tests arrive.
set -euo pipefail

for tool in cargo rustfmt cargo-clippy; do
    command -v "$tool" >/dev/null || { echo "install-test-deps: $tool is missing" >&2; exit 1; }
done

packages=(${TEST_DEPS:-})
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-test-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
