# shellcheck shell=bash
# Shared by perf/run and perf/vs-kafka (sourced, not run): logging, the machine's limits, and
# starting and stopping the brokers under test (Sluice, and Apache Kafka from tests/java's jars;
# a loopback Sluice cluster for perf/run --cluster).
# Expects: $repo, $scratch, $sluice; sets $machine, $bootstrap, $broker_pid (or $cluster_pids).

log() { printf '== %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
median() { jq -s 'sort | .[(length - 1) / 2 | floor]'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The machine's limits into $machine (JSON): fio sequential O_DIRECT write (median of $fio_runs
# runs of $fio_size), the same with an fdatasync after every 4 MiB, the file read back (O_DIRECT,
# and buffered from a cold page cache),
# fdatasync latency after 4 KiB writes, the same write and fdatasync at the latency floor's
# rate ($floor_rate a second, default 200), iperf3 loopback (one stream).
machine_limits() {
    local engine= candidate port iperf_pid fio_write_runs fio_write fio_sync fio_sync_runs fio_read cold_read cold_read_runs fsync_json floor_disk iperf
    for candidate in io_uring libaio psync; do
        if fio --name=probe --filename="$scratch/probe" --rw=write --bs=4k --size=64k --direct=1 \
            --ioengine="$candidate" --output-format=json >/dev/null 2>&1; then
            engine=$candidate
            break
        fi
    done
    rm -f "$scratch/probe"
    [ -n "$engine" ] || die "fio cannot do O_DIRECT writes in $scratch"

    # MB/s of $fio_runs sequential O_DIRECT writes of $fio_size in 1 MiB blocks to file $1, each
    # with fio's further arguments; the last run's file is left for the reads below.
    fio_writes() {
        local file=$1
        shift
        for _ in $(seq 1 "$fio_runs"); do
            rm -f "$file"
            fio --name=seqwrite --filename="$file" --rw=write --bs=1M --size="$fio_size" --direct=1 \
                --ioengine="$engine" --output-format=json "$@" | jq '.jobs[0].write.bw_bytes / 1e6'
        done | jq -s -c .
    }
    log "fio: sequential write, O_DIRECT, bs=1M, size=$fio_size, iodepth 8, $engine, x$fio_runs"
    fio_write_runs=$(fio_writes "$scratch/fio.dat" --iodepth=8 --end_fsync=1)
    fio_write=$(jq '.[]' <<<"$fio_write_runs" | median)

    # What a durable produce stream asks of the disk: the same writes, 4 in flight, with an
    # fdatasync after every 4 MiB (a partition's flusher writes a group of batches, then syncs
    # before it acknowledges them). The device's cache flushes cost what the sequential write
    # above does not pay; produce workloads are given against both.
    log "fio: sequential write, O_DIRECT, bs=1M, iodepth 4, fdatasync every 4 MiB, x$fio_runs"
    fio_sync_runs=$(fio_writes "$scratch/fio-sync.dat" --iodepth=4 --fdatasync=4)
    rm -f "$scratch/fio-sync.dat"
    fio_sync=$(jq '.[]' <<<"$fio_sync_runs" | median)

    # What a cold catch-up read (W5) can get from this disk: the last write's file read back
    # sequentially, once O_DIRECT (the device's own read rate, as the write above) and once
    # through a dropped page cache with the kernel's readahead, which is how the broker's
    # sendfile reads a cold segment. Where the disk reads slower than loopback carries, the
    # disk, not the network, bounds W5.
    # O_DIRECT at iodepth 1 and 8, the better of the two: this VM's disk has read slower with
    # the deeper queue (1.3 against 2.2 GB/s in one sitting).
    log "fio: sequential read of $fio_size, O_DIRECT (iodepth 1 and 8, $engine) and buffered from a cold page cache"
    fio_read=$(for depth in 1 8; do
        fio --name=seqread --filename="$scratch/fio.dat" --rw=read --bs=1M --size="$fio_size" --direct=1 \
            --ioengine="$engine" --iodepth="$depth" --output-format=json | jq '.jobs[0].read.bw_bytes / 1e6'
    done | jq -s 'max')
    # Buffered cold reads of this disk have ranged from 0.6 to 2.5 GB/s within minutes: the median
    # of $fio_runs, with every run in the report.
    cold_read_runs=$(for _ in $(seq 1 "$fio_runs"); do
        drop_caches
        fio --name=coldread --filename="$scratch/fio.dat" --rw=read --bs=1M --size="$fio_size" --direct=0 \
            --ioengine=psync --output-format=json | jq '.jobs[0].read.bw_bytes / 1e6'
    done | jq -s -c .)
    cold_read=$(jq '.[]' <<<"$cold_read_runs" | median)
    rm -f "$scratch/fio.dat"

    log "fio: fdatasync after each 4 KiB write"
    fsync_json=$(fio --name=fsync --filename="$scratch/fsync.dat" --rw=write --bs=4k --size=64M --fdatasync=1 \
        --ioengine=sync --runtime=5 --time_based --output-format=json \
        | jq -c '.jobs[0].sync.lat_ns.percentile | {p50_us: (.["50.000000"] / 1000), p99_us: (.["99.000000"] / 1000)}')
    rm -f "$scratch/fsync.dat"

    # The same write and fdatasync one at a time at the rate of perf/run's latency floor (L1),
    # O_DIRECT through $engine as the broker writes: with the CPUs idle between them every
    # completion wakes a sleeping thread (on a VM, through the hypervisor), which the full-rate
    # figure above never pays. This is what the disk's part of one durable produce costs there.
    local rate=${floor_rate:-200}
    log "fio: 4 KiB O_DIRECT write + fdatasync, $rate a second"
    floor_disk=$(fio --name=floor --filename="$scratch/floor.dat" --rw=write --bs=4k --size=64M --direct=1 \
        --fdatasync=1 --ioengine="$engine" --iodepth=1 --rate_iops="$rate" --runtime=10 --time_based \
        --output-format=json \
        | jq -c --argjson rate "$rate" '.jobs[0] | {rate_per_s: $rate,
            write_p50_us: (.write.clat_ns.percentile["50.000000"] / 1000),
            sync_p50_us: (.sync.lat_ns.percentile["50.000000"] / 1000)}')
    rm -f "$scratch/floor.dat"

    port=$(free_port)
    log "iperf3: loopback, 1 stream, ${iperf_seconds}s"
    iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
    iperf_pid=$!
    # Wait until the server listens (probing with a connection would use up its one client).
    for _ in $(seq 1 100); do
        [ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] || break
        sleep 0.05
    done
    iperf3 -c 127.0.0.1 -p "$port" -t "$iperf_seconds" -J >"$scratch/iperf.json" 2>/dev/null || true
    wait "$iperf_pid" 2>/dev/null || true
    iperf=$(jq -e '.end.sum_received.bits_per_second / 8 / 1e6' "$scratch/iperf.json") \
        || die "iperf3 failed: $(jq -r '.error // empty' "$scratch/iperf.json" 2>/dev/null || cat "$scratch/iperf.json")"

    machine=$(jq -n -c --argjson w "$fio_write" --argjson runs "$fio_write_runs" --argjson fsync "$fsync_json" \
        --argjson floor "$floor_disk" --argjson net "$iperf" --arg engine "$engine" --arg cpus "$(nproc)" \
        --argjson read "$fio_read" --argjson cold "$cold_read" --argjson cold_runs "$cold_read_runs" \
        --argjson sync "$fio_sync" --argjson sync_runs "$fio_sync_runs" \
        '{fio_write_mb_s: $w, fio_write_runs_mb_s: $runs, fio_sync_write_mb_s: $sync, fio_sync_write_runs_mb_s: $sync_runs,
          fio_engine: $engine, fdatasync: $fsync, floor_disk: $floor,
          fio_read_mb_s: $read, cold_read_mb_s: $cold, cold_read_runs_mb_s: $cold_runs, loopback_mb_s: $net, cpus: ($cpus | tonumber)}')
    log "machine: $machine"
}

# `sluice broker` on $scratch/data with --flush-mode $1 (default sync); sets $bootstrap, $broker_pid.
start_sluice() {
    "$sluice" broker --data-dir "$scratch/data" --listen 127.0.0.1:0 --flush-mode "${1:-sync}" \
        >"$scratch/broker.out" 2>"$scratch/broker.err" &
    broker_pid=$!
    for _ in $(seq 1 200); do
        bootstrap=$(sed -n 's/^sluice broker listening on \([^ ]*\).*/\1/p' "$scratch/broker.out" "$scratch/broker.err" | head -1)
        [ -n "$bootstrap" ] && return 0
        kill -0 "$broker_pid" 2>/dev/null || die "broker exited: $(tail -5 "$scratch/broker.err")"
        sleep 0.05
    done
    die "broker did not start"
}

# The jars of tests/java (Apache Kafka, the release the Java tests pin).
kafka_lib=$repo/tests/java/target/lib
# Kafka's own kafka-server-start.sh heap and GC settings (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS).
# An array, not a function: `"${kafka_jvm[@]}" ... &` makes $! the JVM's own pid, which
# stop_broker signals and /proc is read for.
kafka_jvm=(java -Xms1G -Xmx1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$repo/tests/java/log4j2.properties" -cp "$kafka_lib/*")

# A single-node KRaft Apache Kafka (broker and controller in one process) on $scratch/data, the same
# disk as Sluice's. $1: sync (log.flush.interval.messages=1: fsync after every append, as Sluice's
# --flush-mode sync) or none (Kafka's default: the page cache, flushed by the OS).
start_kafka() {
    local port cport props=$scratch/kafka.properties
    port=$(free_port)
    cport=$(free_port)
    mkdir -p "$scratch/data"
    cat >"$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$scratch/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
    [ "${1:-sync}" = sync ] && echo "log.flush.interval.messages=1" >>"$props"
    if [ ! -e "$scratch/data/meta.properties" ]; then
        : "${kafka_cluster_id:=$("${kafka_jvm[@]}" kafka.tools.StorageTool random-uuid)}"
        "${kafka_jvm[@]}" kafka.tools.StorageTool format --cluster-id "$kafka_cluster_id" --config "$props" >/dev/null
    fi
    # At info, for the "Kafka Server started" line that says it is ready.
    "${kafka_jvm[@]}" -Dsluice.java.log=info kafka.Kafka "$props" >"$scratch/broker.out" 2>"$scratch/broker.err" &
    broker_pid=$!
    bootstrap=127.0.0.1:$port
    for _ in $(seq 1 1200); do
        grep -q 'Kafka Server started' "$scratch/broker.err" && return 0
        kill -0 "$broker_pid" 2>/dev/null || die "kafka exited: $(grep -m5 -E 'ERROR|Exception' "$scratch/broker.err")"
        sleep 0.05
    done
    die "kafka did not start in 60 s"
}

stop_broker() {
    [ -n "${broker_pid:-}" ] || return 0
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=
}

# A loopback cluster of Sluice nodes (scripts/cluster): `start_cluster N [broker flags...]` starts
# the nodes that are not running (on the data dirs already under $SLUICE_CLUSTER_DIR, if any) and
# waits until every one listens; sets $bootstrap (every node) and $cluster_pids. Expects
# SLUICE_CLUSTER_DIR and SLUICE_CLUSTER_BASE_PORT exported. Node i serves clients on
# 127.0.0.1:$((SLUICE_CLUSTER_BASE_PORT + i)); its log is $SLUICE_CLUSTER_DIR/node-i/log.
cluster_pids=()
cluster_started=0
start_cluster() {
    local n=$1 out i
    cluster_started=1
    out=$(SLUICE_BIN=$sluice "$repo/scripts/cluster" start "$@" 2>&1) || die "the cluster did not start: $out"
    bootstrap=
    for ((i = 1; i <= n; i++)); do
        bootstrap+="${bootstrap:+,}127.0.0.1:$((SLUICE_CLUSTER_BASE_PORT + i))"
    done
    mapfile -t cluster_pids < <(cat "$SLUICE_CLUSTER_DIR"/node-*/pid)
}

# SIGTERM every node start_cluster started (also after a start that failed half-way) and wait
# until each has exited; the data dirs stay.
stop_cluster() {
    [ "$cluster_started" = 1 ] || return 0
    "$repo/scripts/cluster" stop >/dev/null 2>&1 || true
    cluster_pids=()
    cluster_started=0
}

# Topic $1's partitions as the cluster reports them, one JSON array:
# [{"partition": 0, "leader": 2, "replicas": [...], "isr": [...]}, ...] (empty if it cannot tell).
topic_partitions() {
    "$sluice" topic describe "$1" --json --bootstrap "$bootstrap" 2>/dev/null \
        | jq -c '[.partitions[] | {partition, leader, replicas: (.replicas | sort), isr: (.isr | sort)}]' 2>/dev/null \
        || echo '[]'
}

# A jq filter: whether topic_partitions' answer has partitions, each with a leader and all its
# replicas in sync.
isr_full_filter='length > 0 and all(.[]; .leader >= 0 and .isr == .replicas)'
isr_full() { jq -e "$isr_full_filter" <<<"$(topic_partitions "$1")" >/dev/null; }

# Wait (at most ${2:-180} s) until every partition of topic $1 has a leader and a full ISR; fails
# (and says so) if it does not come to that.
wait_isr_full() {
    local topic=$1 deadline=$((SECONDS + ${2:-180}))
    until isr_full "$topic"; do
        if [ $SECONDS -ge $deadline ]; then
            log "topic $topic: ISR not full after ${2:-180} s: $(topic_partitions "$topic")"
            return 1
        fi
        # Each poll costs a `sluice topic describe` and a jq (a few ms of CPU).
        sleep 0.1
    done
}

# The broker's CPU time so far (user + system, seconds) and its peak resident memory (MB); with a
# cluster (start_cluster), both summed over its nodes' processes.
broker_procs() { # FILE: /proc/<pid>/FILE of each broker process, one a line
    local pid
    for pid in ${broker_pid:-} "${cluster_pids[@]}"; do echo "/proc/$pid/$1"; done
}
broker_cpu_s() {
    local files
    mapfile -t files < <(broker_procs stat)
    [ "${#files[@]}" -gt 0 ] || return 1
    awk -v hz="$(getconf CLK_TCK)" '{ t += $14 + $15 } END { print t / hz }' "${files[@]}"
}
broker_rss_peak_mb() {
    local files
    mapfile -t files < <(broker_procs status)
    [ "${#files[@]}" -gt 0 ] || return 1
    awk '/^VmHWM:/ { m += $2 } END { print m / 1024 }' "${files[@]}"
}
