"""A Jepsen-style chaos run against a 3-node Sluice cluster (issue 13, "Faults, and the checker
that proves nothing is lost"). One run = one report:

1. start 3 nodes (cluster.py), create topic `chaos` (RF=3, min.insync.replicas=2);
2. for the whole run: two idempotent acks=all producers, an assigned consumer and a group
   consumer, every ack and poll recorded (workload.py);
3. `--faults N` faults chosen with `--seed`, one at a time (faults.py);
4. heal, stop the producers, wait for the cluster to be quiet, read everything twice;
5. check the history (checker.py), print a summary and one `CHAOS-REPORT {json}` line.
Exit 0 only if nothing was lost, inconsistent, non-monotonic, duplicated or divergent; 1 if
something was; 2 if the run itself failed.

    scripts/chaos [--faults N] [--seed S] [--kinds a,b] [--partitions P] [--rate R] [--out DIR]
                  [--broker-flag=--x=y ...] [--self-test]
"""

import argparse
import atexit
import faulthandler
import json
import logging
import os
import random
import shutil
import signal
import sys
import threading
import time
import traceback

import checker
import duplicates
import cluster as cluster_mod
import faults
import workload

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Before the first fault, the clients get this long to connect, join their group and start
# acknowledging, so the first fault hits a working pipeline.
WARMUP_S = 3
# With the disk-full kind, the nodes roll segments at this size (unless a --broker-flag sets
# --segment-bytes): a log appends into a preallocated 32 MiB extent, so at the run's modest rate
# a full disk would only bite at the next roll, minutes away; small segments roll every few
# seconds, each roll allocating, so the full disk takes the log offline within a hold.
DISK_FULL_SEGMENT_BYTES = 16384
# How long a client thread may take to stop once told to: a producer's flush is bounded by
# workload.FLUSH_TIMEOUT_S, a consumer's poll by workload.POLL_S; more means it is stuck.
THREAD_STOP_S = workload.FLUSH_TIMEOUT_S + 30
# After the last heal and the producers' stop: how long the consumers keep polling to catch up.
CATCH_UP_S = 2


def parse_range(text):
    low, high = (float(x) for x in text.split(","))
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"bad range {text}: want LOW,HIGH with 0 <= LOW <= HIGH")
    return (low, high)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faults", type=int, default=10, help="fault cycles (default 10)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    ap.add_argument("--kinds", default=",".join(faults.KINDS), help=f"comma list of {faults.KINDS}")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rate", type=float, default=200.0, help="records/s over both producers")
    ap.add_argument("--out", default=None, help="report dir (default: a new dir under target/chaos)")
    ap.add_argument("--hold", type=parse_range, default=(1.0, 4.0), help="fault hold, s (default 1,4)")
    ap.add_argument("--pause-hold", type=parse_range, default=(2.0, 8.0), help="SIGSTOP hold, s (default 2,8)")
    ap.add_argument("--quiet-timeout", type=float, default=30.0, help="wait for full ISRs at the end, s")
    ap.add_argument("--broker-flag", action="append", default=[], help="extra broker flag (repeatable)")
    ap.add_argument("--loopback", action="store_true", help="nodes on 127.0.0.1 even as root")
    ap.add_argument(
        "--message-timeout-ms",
        type=int,
        default=workload.MESSAGE_TIMEOUT_MS,
        help="the producers' message.timeout.ms (shorter: more records time out mid-retry)",
    )
    ap.add_argument("--keep-data", action="store_true", help="keep the nodes' data dirs")
    ap.add_argument("--self-test", action="store_true", help="only check the checker on crafted histories")
    args = ap.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in args.kinds if k not in faults.KINDS]
    if unknown or not args.kinds:
        ap.error(f"unknown kinds {unknown}; choose from {faults.KINDS}")
    if args.partitions < 1 or args.rate <= 0 or args.faults < 0:
        ap.error("--partitions and --rate must be positive, --faults not negative")
    return args


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def self_test():
    failures = checker.self_test()
    for failure in failures:
        print(f"self-test: {failure}")
    print("FAIL self-test" if failures else "PASS self-test", flush=True)
    return 1 if failures else 0


def wait_quiet(cl, partitions, timeout):
    """Waits until every partition has a leader and a full ISR, or `timeout`; returns whether it
    got there and the last metadata seen."""
    deadline = time.time() + timeout
    md = None
    while True:
        try:
            md = workload.metadata(cl.bootstrap(), timeout=faults.METADATA_TIMEOUT_S)
        except workload.KafkaException:
            md = None
        if (
            md
            and len(md) == partitions
            and all(leader >= 0 and len(isrs) == workload.REPLICATION_FACTOR for leader, _, isrs in md.values())
        ):
            return True, md
        if time.time() > deadline:
            return False, md
        time.sleep(0.5)


def join_all(threads):
    """Waits for the client threads to stop; returns the names of those still running after
    THREAD_STOP_S. A client stuck in its own close() (librdkafka's group consumer waits for its
    leave and last commit there) has recorded everything the checker needs already, so the run
    goes on to its analysis and the report names the stuck clients, rather than losing the
    whole run (they are daemon threads, so they do not keep the process alive)."""
    stuck = []
    for t in threads:
        t.join(THREAD_STOP_S)
        if t.is_alive():
            faulthandler.dump_traceback(all_threads=True)
            log(f"client thread {t.name} did not stop within {THREAD_STOP_S} s")
            stuck.append(t.name)
    return stuck


def restart_summary(times):
    """Node restart times (spawn to listening), as count, median, p90 and max."""
    if not times:
        return {}
    ordered = sorted(times)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"count": len(ordered), "p50": pick(0.5), "p90": pick(0.9), "max": ordered[-1], "last10": times[-10:]}


def summarise(report):
    c = report["counts"]
    a = report["availability"]
    lines = [
        f"seed {report['seed']}, {report['faults_run']} faults in {report['duration_s']} s ({report['mode']})",
        f"attempted {report['attempted']}, acked {report['acked']}, failed {report['failed_total']} "
        f"{report['failed']}, unresolved {report['unresolved']}, refused locally {report['refused_locally']}",
        f"availability {a['acked_over_attempted']}; longest stretch without an ack per partition (s): "
        f"{a['longest_no_ack_s']}",
        f"node restarts (s): {report['restart_s']}",
        f"faults done {report['faults_done']}, skipped {report['faults_skipped']}, "
        f"left out {sorted(report['kinds_unavailable'])}",
        f"final reads: {report['final_records']} records, high watermarks {report['high_watermarks']}; "
        f"quiet (full ISR) at the end: {report['quiet']}",
        "lost {lost}, inconsistent {inconsistent}, non-monotonic {non_monotonic}, duplicates {duplicates}, "
        "divergence {divergence}".format(**c),
    ]
    if report.get("duplicates_by_cause"):
        lines.append(f"duplicates by cause: {report['duplicates_by_cause']}")
        for example in report.get("duplicate_examples", [])[:3]:
            lines.append(f"  duplicate: {example}")
    for stretch in a.get("long_stretches", []):
        lines.append(f"  no ack on partition {stretch['partition']} for {stretch['length_s']} s from {stretch['from_s']} s")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    for name, examples in report["examples"].items():
        for example in examples[:5]:
            lines.append(f"  {name}: {example}")
    lines.append("RESULT " + ("CLEAN" if report["clean"] else "ANOMALIES"))
    return "\n".join(lines)


def chaos(args, seed, out_dir, state):
    bin_path = os.environ.get("SLUICE_BIN") or os.path.join(REPO, "target", "debug", "sluice")
    if not os.path.exists(bin_path):
        raise RuntimeError(f"{bin_path} is missing: cargo build, or set SLUICE_BIN")
    rng = random.Random(seed)
    data_dir = os.path.join(out_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    started = time.time()
    want_disks = "disk-full" in args.kinds and not args.loopback and os.geteuid() == 0
    broker_flags = list(args.broker_flag)
    if want_disks and not any(f.startswith("--segment-bytes") for f in broker_flags):
        broker_flags.append(f"--segment-bytes={DISK_FULL_SEGMENT_BYTES}")
    cl = cluster_mod.Cluster(
        bin_path,
        data_dir,
        out_dir,
        broker_flags,
        want_netns=not args.loopback,
        want_disks="disk-full" in args.kinds and not args.loopback,  # says why not, if not
        log=log,
        keep_data=args.keep_data,
    )
    atexit.register(cl.close)
    state["cluster"] = cl
    stop_producers, stop_consumers = threading.Event(), threading.Event()
    try:
        cl.start_all()
        log(f"cluster up: {cl.bootstrap()} ({'netns' if cl.netns else 'loopback'})")
        workload.create_topic(cl.bootstrap(), cl.nodes, args.partitions)
        bootstrap = cl.bootstrap()
        consumers = [
            workload.ConsumerThread("assign", bootstrap, args.partitions, stop_consumers),
            workload.ConsumerThread(
                "group", bootstrap, args.partitions, stop_consumers, group=f"chaos-{os.getpid()}"
            ),
        ]
        producers = [
            workload.ProducerThread(
                f"p{i}", bootstrap, args.partitions, args.rate / 2, stop_producers, args.message_timeout_ms
            )
            for i in (1, 2)
        ]
        for t in consumers + producers:
            t.start()
        workload_start = time.time()
        time.sleep(WARMUP_S)

        injector = faults.Injector(cl, rng, args.hold, args.pause_hold, log=log)
        # Kinds this cluster cannot run (not root: no partitions, no full disks) are left out of
        # the draw, so the run still has --faults real faults; the report names them.
        unavailable = {kind: injector.available(kind) for kind in args.kinds if injector.available(kind)}
        kinds = [kind for kind in args.kinds if kind not in unavailable]
        if not kinds:
            raise RuntimeError(f"no fault kind can run here: {unavailable}")
        for i in range(args.faults):
            kind = rng.choice(kinds)
            log(f"fault {i + 1}/{args.faults}: {kind}")
            injector.run(kind)

        log("healing, stopping the producers")
        injector.heal_all()
        # The end of the window availability is measured over: the producers' final flush
        # sends nothing new.
        workload_end = time.time()
        stop_producers.set()
        stuck = join_all(producers)
        quiet, md = wait_quiet(cl, args.partitions, args.quiet_timeout)
        log(f"quiet: {quiet}; metadata {md}")
        time.sleep(CATCH_UP_S)
        stop_consumers.set()
        stuck += join_all(consumers)

        final_a, highs_a, notes_a = workload.final_read(bootstrap, args.partitions, f"chaos-final-a-{os.getpid()}")
        final_b, highs_b, notes_b = workload.final_read(bootstrap, args.partitions, f"chaos-final-b-{os.getpid()}")
        history = workload.History(producers, consumers)
        acks, polls = history.acks, history.polls
        result = checker.analyse(
            {
                "acks": acks,
                "polls": polls,
                "final_a": final_a,
                "final_b": final_b,
                "attempted": history.attempted,
                "partitions": args.partitions,
                "start": workload_start,
                "end": workload_end,
            }
        )
        notes = notes_a + notes_b + injector.errors
        if stuck:
            notes.append(f"client threads still running (stuck in their client's close) at the analysis: {stuck}")
        if not quiet:
            notes.append(f"the cluster was not quiet (leader and full ISR everywhere) within {args.quiet_timeout} s")
        if highs_a != highs_b:
            notes.append(f"the two final reads saw different high watermarks: {highs_a} vs {highs_b}")
        for kind, reason in unavailable.items():
            notes.append(f"{kind} left out: {reason}")
        counts = dict(result["counts"])
        dup_causes, dup_examples = {}, []
        if counts["duplicates"]:
            # Which duplicates are the broker's: the producers' own epoch-bump resends are not.
            dup_causes, dup_examples = duplicates.classify(
                checker.find_duplicates(final_a, acks), bin_path, [n.data_dir for n in cl.nodes]
            )
        broker_duplicates = counts["duplicates"] - dup_causes.get(duplicates.CAUSES[0], 0)
        # A run that acknowledged nothing proves nothing: that is a failure too.
        clean = (
            checker.is_clean(dict(result, counts=dict(counts, duplicates=broker_duplicates)))
            and len(acks) > 0
            and not injector.errors
        )
        if not acks:
            notes.append("no write was acknowledged")
        report = {
            "seed": seed,
            "mode": "netns" if cl.netns else "loopback",
            "faults_requested": args.faults,
            "faults_run": len(injector.timeline),
            "kinds": args.kinds,
            "partitions": args.partitions,
            "rate": args.rate,
            "broker_flags": broker_flags,
            "duration_s": round(time.time() - started, 1),
            "attempted": history.attempted,
            "acked": len(acks),
            "failed": history.failed,
            "failed_total": sum(history.failed.values()),
            "unresolved": history.unresolved,
            "refused_locally": history.refused_locally,
            "producer_restarts": history.producer_restarts,
            "polls": len(polls),
            "polls_by_consumer": history.polls_by_consumer,
            "client_errors": history.client_errors,
            "restart_s": restart_summary(injector.restarts_s),
            "faults_done": injector.done,
            "faults_skipped": injector.skipped,
            "kinds_unavailable": unavailable,
            "final_records": len(final_a),
            "high_watermarks": highs_a,
            "quiet": quiet,
            "counts": counts,
            "duplicates_by_cause": dup_causes,
            "duplicate_examples": dup_examples,
            "availability": result["availability"],
            "examples": result["examples"],
            "notes": notes,
            "clean": clean,
            "timeline": injector.timeline,
        }
        return report, cl
    finally:
        stop_producers.set()
        stop_consumers.set()


def write_out(out_dir, report, cl):
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    if not report.get("clean") and cl is not None:
        for node in cl.nodes:
            with open(os.path.join(out_dir, f"node-{node.id}.tail.log"), "w") as f:
                f.write(cl.log_tail(node) + "\n")


def main(argv):
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 2**31
    print(f"chaos: seed {seed}", flush=True)
    if args.self_test:
        return self_test()
    out_dir = args.out or os.path.join(REPO, "target", "chaos", f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.makedirs(out_dir, exist_ok=True)
    print(f"chaos: out {out_dir}", flush=True)
    handler = logging.FileHandler(os.path.join(out_dir, "clients.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    workload.CLIENT_LOGGER.addHandler(handler)
    workload.CLIENT_LOGGER.setLevel(logging.DEBUG)
    # SIGTERM / SIGHUP unwind like Ctrl-C does, so the finally blocks and atexit clean up.
    # Each thread's stack goes to stderr first: a run stopped for taking too long says where.
    def on_signal(signum, frame):
        faulthandler.dump_traceback(all_threads=True)
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    state = {}
    try:
        report, _ = chaos(args, seed, out_dir, state)
        print(summarise(report), flush=True)
        compact = {k: v for k, v in report.items() if k != "timeline"}
        print("CHAOS-REPORT " + json.dumps(compact, default=str), flush=True)
        code = 0 if report["clean"] else 1
    except BaseException as e:  # noqa: BLE001 -- report any failure of the run itself, then exit 2
        if not isinstance(e, (SystemExit, KeyboardInterrupt)):
            traceback.print_exc()
        report = {"seed": seed, "clean": False, "error": f"{type(e).__name__}: {e}"}
        print("CHAOS-REPORT " + json.dumps(report, default=str), flush=True)
        code = 2
    cl = state.get("cluster")
    write_out(out_dir, report, cl)
    if cl is not None:
        cl.close()
    if not args.keep_data:
        shutil.rmtree(os.path.join(out_dir, "data"), ignore_errors=True)
    print(f"chaos: report in {out_dir}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
