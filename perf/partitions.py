#!/usr/bin/env python3
"""Client side of perf/partitions: one record written to every partition of some topics, or
read back from each, with confluent-kafka (bundled librdkafka); prints one JSON line.

    partitions.py write --bootstrap ADDR --topics T1,T2 --partitions N [--round R] [--processes P]
    partitions.py read --bootstrap ADDR --topics T1,T2 --partitions N --records R [--processes P]

`--partitions` is per topic. The partitions are dealt out to `--processes` clients (by default
one per 5,000 partitions, at most 16), each a process with its own producer or consumer:
librdkafka's cost per request grows with the partitions one client holds, and one client for
100,000 partitions wrote about 40 of them a second. A write puts the value `<topic>/<partition>/<round>` in each
partition (acks=all). A read assigns every partition from offset 0 and reads until each has
given `--records` records, checking that the record at offset r carries round r's value; it
reports partitions that gave fewer (missing) or other values (wrong).
"""

import argparse
import json
import multiprocessing
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition


def value(topic, partition, round_):
    return f"{topic}/{partition}/{round_}".encode()


def write(args, share):
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "linger.ms": 50,
        "batch.num.messages": 100000,
        "queue.buffering.max.messages": 2000000,
        "queue.buffering.max.kbytes": 2097151,
        "message.timeout.ms": args.timeout * 1000,
    })
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(str(err))

    started = time.monotonic()
    records = 0
    for topic, p in share:
        while True:
            try:
                producer.produce(topic, value=value(topic, p, args.round), partition=p, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        records += 1
    left = producer.flush(args.timeout)
    seconds = time.monotonic() - started
    return {"phase": "write", "records": records, "seconds": round(seconds, 2), "undelivered": left,
            "errors": len(errors), "first_errors": errors[:3]}


def read(args, share):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "perf-partitions",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
        "queued.max.messages.kbytes": 1048576,
    })
    assignment = [TopicPartition(t, p, 0) for t, p in share]
    consumer.assign(assignment)
    got = {}
    wrong = 0
    started = time.monotonic()
    want = len(assignment) * args.records
    seen = 0
    deadline = started + args.timeout
    while seen < want and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=10000, timeout=1.0):
            if msg.error():
                continue
            key = (msg.topic(), msg.partition())
            offset = msg.offset()
            if offset >= args.records or offset < got.get(key, 0):
                continue
            if msg.value() != value(msg.topic(), msg.partition(), offset):
                wrong += 1
            got[key] = offset + 1
            seen += 1
    seconds = time.monotonic() - started
    consumer.close()
    missing = sum(1 for tp in assignment if got.get((tp.topic, tp.partition), 0) < args.records)
    return {"phase": "read", "partitions": len(assignment), "records": seen, "seconds": round(seconds, 2),
            "missing": missing, "wrong": wrong}


def run(job):
    args, phase, share = job
    return write(args, share) if phase == "write" else read(args, share)


def merged(results):
    """One line for the whole phase: counts summed, the slowest client's time."""
    out = dict(results[0])
    for result in results[1:]:
        for key, value in result.items():
            if key == "seconds":
                out[key] = max(out[key], value)
            elif key == "first_errors":
                out[key] = (out[key] + value)[:3]
            elif isinstance(value, int) and key != "phase":
                out[key] += value
    out["processes"] = len(results)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["write", "read"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--records", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--processes", type=int, default=0)
    args = parser.parse_args()
    partitions = [(t, p) for t in args.topics.split(",") for p in range(args.partitions)]
    processes = args.processes or min(16, max(1, len(partitions) // 5000))
    shares = [partitions[i::processes] for i in range(processes)]
    with multiprocessing.Pool(processes) as pool:
        result = merged(pool.map(run, [(args, args.phase, share) for share in shares]))
    print(json.dumps(result), flush=True)
    return 0 if result.get("errors", 0) == 0 and result.get("missing", 0) == 0 and result.get("wrong", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
