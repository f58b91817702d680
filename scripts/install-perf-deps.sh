#!/usr/bin/env bash
# Installs the Debian packages the perf scripts need (fio, jq, iperf3), only those missing.
# Idempotent: with everything present it does nothing (no apt-get update either).
# Runs as root (no sudo); set PERF_DEPS to override the package list.
set -euo pipefail

read -r -a packages <<<"${PERF_DEPS:-fio jq iperf3}"

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-perf-deps: need root to install: ${missing[*]}" >&2
    exit 1
fi

echo "install-perf-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# iperf3 asks (debconf) whether to start a daemon at boot; noninteractive takes the default (no).
apt-get update -qq
apt-get install -y --no-install-recommends "${missing[@]}"
