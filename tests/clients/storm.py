"""Producers for perf/memory and tests/it/limits.rs (the produce storm): N confluent-kafka (librdkafka) producers, each sending 1 KiB records
at linger.ms=0 (one record per Produce request), acks=all, idempotent (librdkafka's defaults).

  storm.py --bootstrap H:P --topic T [--producers 1] [--rate 10000] [--seconds 8]

--rate is over all producers. Prints one JSON line: records sent, acked, failed.
"""

import argparse
import json
import threading
import time

from confluent_kafka import Producer

RECORD = b"x" * 1024


def run(bootstrap, topic, rate, seconds, out):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    counts = {"sent": 0, "acked": 0, "failed": 0}

    def delivered(err, _msg):
        counts["failed" if err else "acked"] += 1

    interval = 1.0 / rate
    next_at = time.time()
    end = next_at + seconds
    while time.time() < end:
        try:
            producer.produce(topic, RECORD, on_delivery=delivered)
            counts["sent"] += 1
        except BufferError:
            producer.poll(0.01)
            continue
        producer.poll(0)
        next_at += interval
        delay = next_at - time.time()
        if delay > 0:
            time.sleep(delay)
    producer.flush(60)
    out.append(counts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--producers", type=int, default=1)
    ap.add_argument("--rate", type=float, default=10000.0)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    out = []
    threads = [
        threading.Thread(target=run, args=(args.bootstrap, args.topic, args.rate / args.producers, args.seconds, out))
        for _ in range(args.producers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = {k: sum(c[k] for c in out) for k in ("sent", "acked", "failed")}
    print(json.dumps(total), flush=True)


if __name__ == "__main__":
    main()
