#!/usr/bin/env python3
"""Client side of perf/broker-produce-consume: confluent-kafka (bundled librdkafka) producer and
consumer loops that go as fast as they can, each printing one JSON line on stdout.

    produce_consume.py create-topic --bootstrap ADDR --topic perf --partitions 1
    produce_consume.py produce --bootstrap ADDR --topic perf --bytes N [--processes 2] [--watch-pid PID]
    produce_consume.py consume --bootstrap ADDR --topic perf --bytes N [--watch-pid PID]
    produce_consume.py timed [--watch-pid PID] [--stdout FILE] -- CMD ARGS...   (e.g. kcat)

Timing: a produce phase runs from the first produce() to the end of flush() (with several
processes, from a common start barrier to the last flush); a consume phase from assign() to the
message that takes the value bytes past --bytes; `timed` from spawning the command to its exit.

CPU: every line carries the client's CPU time (user + system, all threads: the Python loop and
librdkafka's threads; for `timed`, the child's), and with --watch-pid the CPU time the watched
process (the broker) spent over exactly the timed interval, per thread, and the bytes it read
from and wrote to the disk (/proc/PID/io), plus how busy the whole machine was (/proc/stat,
iowait counted as idle). That is what tells a client-bound run from a
broker-bound one on a small machine.

Problems: librdkafka's error callback, error delivery reports and its statistics (request
errors, retries, timeouts, reconnects) are counted and reported in the same line.
"""

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def snapshot(pid):
    """Wall clock, machine-wide busy/total ticks, and per-thread utime/stime of `pid`."""
    snap = {"t": time.time(), "tasks": {}}
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    snap["machine"] = {"busy": total - idle, "total": total}
    if pid:
        # Bytes the process made the block layer read/write (direct I/O and page-cache fills).
        with open(f"/proc/{pid}/io") as f:
            io = dict(line.split(": ") for line in f.read().splitlines())
        snap["io"] = {"read": int(io["read_bytes"]), "write": int(io["write_bytes"])}
        task_dir = f"/proc/{pid}/task"
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue  # the thread ended meanwhile
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            rest = stat[stat.rindex(")") + 2:].split()
            # fields 14 and 15 of stat (utime, stime) are rest[11], rest[12]
            snap["tasks"][tid] = {"comm": comm, "utime": int(rest[11]), "stime": int(rest[12])}
    return snap


def process_cpu(before, after, seconds):
    """CPU of the snapshotted process over [before, after]: totals and per thread."""
    user = sys_ = 0
    threads = []
    for tid, a in after["tasks"].items():
        b = before["tasks"].get(tid, {"utime": 0, "stime": 0})
        du, ds = a["utime"] - b["utime"], a["stime"] - b["stime"]
        user += du
        sys_ += ds
        if du + ds:
            threads.append({"tid": int(tid), "name": a["comm"], "user_s": du / CLK_TCK, "sys_s": ds / CLK_TCK,
                            "pct": round(100 * (du + ds) / CLK_TCK / seconds, 1)})
    threads.sort(key=lambda t: -(t["user_s"] + t["sys_s"]))
    total = (user + sys_) / CLK_TCK
    return {
        "user_s": user / CLK_TCK, "sys_s": sys_ / CLK_TCK, "total_s": round(total, 2),
        "pct_of_one_core": round(100 * total / seconds, 1),
        "busiest_thread": threads[0] if threads else None,
        "threads": threads,
    }


def cpu_delta(before, after, seconds):
    """The watched process's (broker's) CPU over [before, after], and machine busy %."""
    m_busy = after["machine"]["busy"] - before["machine"]["busy"]
    m_total = after["machine"]["total"] - before["machine"]["total"]
    out = {"machine_busy_pct": round(100 * m_busy / m_total, 1) if m_total else None}
    if after["tasks"]:
        out["broker_cpu"] = process_cpu(before, after, seconds)
        out["broker_disk_mb"] = {"read": round((after["io"]["read"] - before["io"]["read"]) / 1e6, 1),
                                 "written": round((after["io"]["write"] - before["io"]["write"]) / 1e6, 1)}
    return out


class Problems:
    """Errors and retries librdkafka reports: error callback, error delivery reports, statistics."""

    def __init__(self):
        self.errors = []  # the first few messages, for the report
        self.error_count = 0
        self.delivery_errors = 0
        self.stats = None  # the last statistics JSON
        self.rtt_windows = []  # per statistics interval: the brokers' request round trips (µs)

    def error_cb(self, err):
        self.error_count += 1
        if len(self.errors) < 10:
            self.errors.append(str(err))

    def delivery_cb(self, err, _msg):
        if err is not None:
            self.delivery_errors += 1
            if len(self.errors) < 10:
                self.errors.append("delivery: " + str(err))

    def stats_cb(self, stats_json):
        self.stats = stats_json
        for b in json.loads(stats_json).get("brokers", {}).values():
            rtt = b.get("rtt", {})
            if b.get("nodeid", -1) >= 0 and rtt.get("cnt", 0) > 0:
                self.rtt_windows.append(rtt)

    def rtt_ms(self):
        """Request round trips (produce or fetch) over the run, from librdkafka's 1 s windows:
        the mean of the windows' averages, the worst window p99 and the maximum."""
        if not self.rtt_windows:
            return None
        w = self.rtt_windows
        return {"avg": round(sum(r["avg"] for r in w) / len(w) / 1000, 2),
                "p99_worst_window": round(max(r["p99"] for r in w) / 1000, 2),
                "max": round(max(r["max"] for r in w) / 1000, 2), "windows": len(w)}

    def counters(self):
        """Sums over the brokers (not the bootstrap entry) of the counters that show trouble."""
        keys = ("tx", "txerrs", "txretries", "req_timeouts", "rx", "rxerrs", "connects", "disconnects")
        out = dict.fromkeys(keys, 0)
        if not self.stats:
            return out
        stats = json.loads(self.stats)
        for b in stats.get("brokers", {}).values():
            if b.get("nodeid", -1) < 0:
                continue
            for k in keys:
                out[k] += int(b.get(k, 0))
        out["msgs_left_in_queue"] = stats.get("msg_cnt", 0)
        return out

    def report(self):
        return {"error_callbacks": self.error_count, "delivery_errors": self.delivery_errors,
                "first_errors": self.errors, "librdkafka": self.counters(), "request_rtt_ms": self.rtt_ms()}


def create_topic(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    # `admin` stays alive until the future resolves (dropping it would abandon the request).
    futures = admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)],
                                  operation_timeout=30, request_timeout=30)
    futures[args.topic].result(timeout=60)
    md = admin.list_topics(topic=args.topic, timeout=30)
    print(json.dumps({"topic": args.topic, "partitions": len(md.topics[args.topic].partitions)}))


def producer_conf(args, problems):
    return {
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "linger.ms": args.linger_ms,
        "batch.size": args.batch_bytes,
        # librdkafka caps a batch at min(batch.size, message.max.bytes); message.max.bytes defaults
        # to 1,000,000, so raise it to let batch.size (1 MiB, framing included) be the limit. The
        # broker's max.message.bytes is 1,048,588.
        "message.max.bytes": max(1000000, args.batch_bytes + 65536),
        "batch.num.messages": 100000,
        "queue.buffering.max.kbytes": args.queue_kbytes,
        "queue.buffering.max.messages": args.queue_messages,
        "compression.type": "none",
        "enable.idempotence": False,
        "error_cb": problems.error_cb,
        # A delivery report for failed records only: a Python callback per record would cost as
        # much as produce() itself.
        "on_delivery": problems.delivery_cb,
        "delivery.report.only.error": True,
        "statistics.interval.ms": 1000,
        "stats_cb": problems.stats_cb,
    }


def produce_worker(args, count, start_barrier, results, index):
    """One producer process: `count` records, then flush. Puts ("done", ...) right after flush
    and ("result", ...) once the final statistics are in."""
    problems = Problems()
    conf = producer_conf(args, problems)
    p = Producer(conf)
    p.list_topics(topic=args.topic, timeout=30)  # metadata (the leader) before the clock starts
    values = [os.urandom(args.record_bytes) for _ in range(256)]  # random-ish, cycled; no key
    topic = args.topic
    produce_call = p.produce
    poll = p.poll
    buffer_full = 0
    start_barrier.wait()
    self0 = snapshot(os.getpid())
    cpu0 = cpu_self()
    t0 = time.time()
    for i in range(count):
        v = values[i & 255]
        try:
            produce_call(topic, v)
        except BufferError:
            buffer_full += 1
            while True:
                poll(0.0005)
                try:
                    produce_call(topic, v)
                    break
                except BufferError:
                    continue
        if i & 1023 == 0:
            poll(0)
    t_produced = time.time()
    left = p.flush(300)
    t1 = time.time()
    cpu1 = cpu_self()
    self1 = snapshot(os.getpid())
    results.put(("done", index, t1))
    time.sleep(1.2)  # one more statistics round, so the counters cover the whole run
    p.poll(0)
    out = {
        "records": count, "start": t0, "end": t1, "seconds": round(t1 - t0, 4),
        "produce_calls_seconds": round(t_produced - t0, 4),
        "not_delivered_after_flush": left, "buffer_full_events": buffer_full,
        "client_cpu_s": {"user": round(cpu1[0] - cpu0[0], 3), "sys": round(cpu1[1] - cpu0[1], 3)},
        "client_threads": process_cpu(self0, self1, t1 - t0)["threads"],
    }
    out.update(problems.report())
    if index == 0:
        out["config"] = {k: v for k, v in conf.items() if isinstance(v, (str, int))}
    results.put(("result", index, out))


def produce(args):
    n = args.processes
    total = args.bytes // args.record_bytes
    counts = [total // n + (1 if i < total % n else 0) for i in range(n)]
    ctx = multiprocessing.get_context("fork")  # no librdkafka threads exist in this process yet
    barrier = ctx.Barrier(n + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=produce_worker, args=(args, counts[i], barrier, results, i)) for i in range(n)]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=60)
    before = snapshot(args.watch_pid)
    done = 0
    while done < n:
        kind, _index, _ = results.get(timeout=600)
        if kind == "done":
            done += 1
    after = snapshot(args.watch_pid)
    workers = {}
    while len(workers) < n:
        kind, index, out = results.get(timeout=60)
        if kind == "result":
            workers[index] = out
    for proc in procs:
        proc.join()
    workers = [workers[i] for i in range(n)]
    t0 = min(w["start"] for w in workers)
    t1 = max(w["end"] for w in workers)
    seconds = t1 - t0
    nbytes = total * args.record_bytes
    cu = sum(w["client_cpu_s"]["user"] for w in workers)
    cs = sum(w["client_cpu_s"]["sys"] for w in workers)
    out = {
        "processes": n, "records": total, "record_bytes": args.record_bytes, "value_bytes": nbytes,
        "seconds": round(seconds, 4),
        "records_per_s": round(total / seconds, 1), "mb_per_s": round(nbytes / seconds / 1e6, 2),
        "client_cpu_s": {"user": round(cu, 3), "sys": round(cs, 3), "total": round(cu + cs, 2),
                         "pct_of_one_core": round(100 * (cu + cs) / seconds, 1)},
        "not_delivered_after_flush": sum(w["not_delivered_after_flush"] for w in workers),
        "delivery_errors": sum(w["delivery_errors"] for w in workers),
        "error_callbacks": sum(w["error_callbacks"] for w in workers),
        "retries": sum(w["librdkafka"]["txretries"] for w in workers),
        "request_timeouts": sum(w["librdkafka"]["req_timeouts"] for w in workers),
        "produce_requests": sum(w["librdkafka"]["tx"] for w in workers),
        "disconnects": sum(w["librdkafka"]["disconnects"] for w in workers),
        "request_rtt_ms_max": max((w["request_rtt_ms"]["max"] for w in workers if w["request_rtt_ms"]), default=None),
        "client_busiest_thread": max((t for w in workers for t in w["client_threads"]),
                                     key=lambda t: t["user_s"] + t["sys_s"], default=None),
    }
    out.update(cpu_delta(before, after, seconds))
    out["workers"] = workers
    print(json.dumps(out))
    return 0 if out["not_delivered_after_flush"] == 0 and out["delivery_errors"] == 0 else 1


def consume(args):
    problems = Problems()
    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": "perf-cold-consume",  # assign() only: no group join, no commits
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.max.bytes": args.fetch_max_bytes,
        "max.partition.fetch.bytes": args.max_partition_fetch_bytes,
        "fetch.min.bytes": args.fetch_min_bytes,
        "fetch.wait.max.ms": 100,
        "queued.max.messages.kbytes": 262144,  # prefetch up to 256 MiB
        "error_cb": problems.error_cb,
        "statistics.interval.ms": 1000,
        "stats_cb": problems.stats_cb,
    }
    c = Consumer(conf)
    md = c.list_topics(topic=args.topic, timeout=30)
    parts = sorted(md.topics[args.topic].partitions)
    target = args.bytes
    nbytes = records = errors = 0
    t_first = None
    before = snapshot(args.watch_pid)
    self0 = snapshot(os.getpid())
    cpu0 = cpu_self()
    t0 = time.time()
    c.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in parts])
    deadline = t0 + args.timeout
    consume_batch = c.consume
    while nbytes < target:
        msgs = consume_batch(num_messages=10000, timeout=1.0)
        if not msgs:
            if time.time() > deadline:
                break
            continue
        if t_first is None:
            t_first = time.time()
        for m in msgs:
            if m.error():
                errors += 1
                if len(problems.errors) < 10:
                    problems.errors.append(str(m.error()))
                continue
            nbytes += len(m.value())
        records += len(msgs)
    t1 = time.time()
    cpu1 = cpu_self()
    self1 = snapshot(os.getpid())
    after = snapshot(args.watch_pid)
    time.sleep(1.2)  # one more statistics round
    c.poll(0)
    c.close()
    seconds = t1 - t0
    cu, cs = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    out = {
        "records": records, "value_bytes": nbytes, "target_bytes": target, "reached_target": nbytes >= target,
        "partitions": len(parts), "seconds": round(seconds, 4),
        "first_message_after_s": round(t_first - t0, 4) if t_first else None,
        "records_per_s": round(records / seconds, 1), "mb_per_s": round(nbytes / seconds / 1e6, 2),
        "message_errors": errors,
        "client_cpu_s": {"user": round(cu, 3), "sys": round(cs, 3), "total": round(cu + cs, 2),
                         "pct_of_one_core": round(100 * (cu + cs) / seconds, 1)},
        "client_threads": process_cpu(self0, self1, seconds)["threads"],
        "client_busiest_thread": process_cpu(self0, self1, seconds)["busiest_thread"],
        "config": {k: v for k, v in conf.items() if isinstance(v, (str, int))},
    }
    out.update(problems.report())
    out.update(cpu_delta(before, after, seconds))
    print(json.dumps(out))
    return 0 if out["reached_target"] and errors == 0 else 1


def timed(args):
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    with open(args.stdout, "wb") as sink:
        before = snapshot(args.watch_pid)
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=sink)
        _, status, ru = os.wait4(proc.pid, 0)
        t1 = time.time()
        after = snapshot(args.watch_pid)
    code = os.waitstatus_to_exitcode(status)
    seconds = t1 - t0
    cpu = ru.ru_utime + ru.ru_stime
    out = {"seconds": round(seconds, 4), "exit_code": code,
           "client_cpu_s": {"user": round(ru.ru_utime, 3), "sys": round(ru.ru_stime, 3), "total": round(cpu, 2),
                            "pct_of_one_core": round(100 * cpu / seconds, 1)}}
    out.update(cpu_delta(before, after, seconds))
    print(json.dumps(out))
    return code


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("create-topic")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--partitions", type=int, default=1)
    p = sub.add_parser("produce")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--bytes", type=int, required=True, help="value bytes to produce in total")
    p.add_argument("--record-bytes", type=int, default=1024)
    p.add_argument("--linger-ms", type=int, default=5)
    p.add_argument("--batch-bytes", type=int, default=1048576)
    p.add_argument("--queue-kbytes", type=int, default=1048576, help="queue.buffering.max.kbytes")
    p.add_argument("--queue-messages", type=int, default=100000, help="queue.buffering.max.messages")
    p.add_argument("--processes", type=int, default=1, help="producer processes sharing the bytes")
    p.add_argument("--watch-pid", type=int, default=0, help="report this process's CPU (the broker)")
    k = sub.add_parser("consume")
    k.add_argument("--bootstrap", required=True)
    k.add_argument("--topic", required=True)
    k.add_argument("--bytes", type=int, required=True, help="stop after this many value bytes")
    k.add_argument("--fetch-max-bytes", type=int, default=52428800)
    k.add_argument("--max-partition-fetch-bytes", type=int, default=10485760)
    k.add_argument("--fetch-min-bytes", type=int, default=1048576)
    k.add_argument("--timeout", type=float, default=120, help="give up after this many seconds")
    k.add_argument("--watch-pid", type=int, default=0)
    t = sub.add_parser("timed")
    t.add_argument("--stdout", default=os.devnull, help="where the command's stdout goes")
    t.add_argument("--watch-pid", type=int, default=0)
    t.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    try:
        return {"create-topic": create_topic, "produce": produce, "consume": consume, "timed": timed}[args.what](args)
    except KafkaException as e:
        print(f"produce_consume.py {args.what}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main() or 0)
