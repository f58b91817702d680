"""Idempotent producers of the third-party Python clients, for tests/it/idempotence.rs.

The Rust test starts a producer, SIGKILLs and restarts the broker while it runs, then runs
`verify`. Every producer sends records 0..N-1 in order, keyed ("k<i>", so the key picks the
partition), with the value "<i>"; it prints "acked <count>" lines as acknowledgements arrive
(the test kills the broker on them), and at the end writes one "partition offset i" line per
acknowledged record to ACKS_FILE and prints "PRODUCED <n>". Any failure prints one line,
"FAIL <command>: <what>", and exits 1.

    python idempotence.py --bootstrap HOST:PORT librdkafka TOPIC PARTITIONS N ACKS_FILE [RATE]
    python idempotence.py --bootstrap HOST:PORT kafka-python TOPIC PARTITIONS N ACKS_FILE [RATE]
    python idempotence.py --bootstrap HOST:PORT verify TOPIC PARTITIONS N ACKS_FILE [--ordered]

RATE (records/s, 0: unlimited) spreads the records over time, so that the kills land while
records are still being produced.
"""

import argparse
import sys
import time
import traceback

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
import kafka

TIMEOUT = 60
PROGRESS_EVERY = 1000


class Failed(Exception):
    """A check that failed: its message is the one line printed."""


def check(condition, message):
    if not condition:
        raise Failed(message)


def create_topic(bootstrap, topic, partitions):
    client = AdminClient({"bootstrap.servers": bootstrap})
    for _, future in client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).items():
        future.result(timeout=TIMEOUT)


class Progress:
    """Counts acknowledgements and prints "acked <count>" every PROGRESS_EVERY of them."""

    def __init__(self):
        self.acks = []  # (partition, offset, i)
        self.errors = []

    def ack(self, partition, offset, i):
        self.acks.append((partition, offset, i))
        if len(self.acks) % PROGRESS_EVERY == 0:
            print(f"acked {len(self.acks)}", flush=True)

    def finish(self, path, n):
        with open(path, "w") as out:
            out.writelines(f"{p} {o} {i}\n" for p, o, i in self.acks)
        check(not self.errors, f"{len(self.errors)} records failed, first: {self.errors[0] if self.errors else ''}")
        check(len(self.acks) == n, f"{len(self.acks)} of {n} records acknowledged")
        print(f"acked {len(self.acks)}", flush=True)
        print(f"PRODUCED {n}", flush=True)


def pace(started, i, rate):
    """Sleeps until record i is due at `rate` records/s."""
    if rate > 0:
        ahead = started + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def produce_librdkafka(b, topic, partitions, n, acks_path, rate=0):
    """librdkafka's idempotent producer with the settings the Java client defaults to:
    enable.idempotence=true, acks=all, max.in.flight.requests.per.connection=5 (librdkafka's own
    defaults leave idempotence off). Everything else is librdkafka's default (retries without
    limit until message.timeout.ms, 300 s)."""
    create_topic(b, topic, partitions)
    progress = Progress()
    fatal = []

    def on_error(err):
        # Transport errors while the broker is down are expected; a fatal one ends the producer
        # and says why (the produce() that fails next only says "Fatal error").
        if err.fatal():
            fatal.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": b,
            "enable.idempotence": True,
            "acks": "all",
            "max.in.flight.requests.per.connection": 5,
            "error_cb": on_error,
        }
    )

    def on_delivery(err, msg):
        if err is not None:
            progress.errors.append(f"record {msg.value().decode()}: {err}")
        else:
            progress.ack(msg.partition(), msg.offset(), int(msg.value()))

    started = time.monotonic()
    try:
        for i in range(n):
            while True:
                try:
                    producer.produce(topic, key=f"k{i}".encode(), value=str(i).encode(), on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 100 == 0:
                producer.poll(0)
                pace(started, i, rate)
        left = producer.flush(TIMEOUT)
    except KafkaException:
        producer.poll(0)
        check(not fatal, f"fatal producer error: {fatal[:1]}")
        raise
    check(not fatal, f"fatal producer error: {fatal[:1]}")
    check(left == 0, f"{left} records still queued after {TIMEOUT} s")
    progress.finish(acks_path, n)


def produce_kafka_python(b, topic, partitions, n, acks_path, rate=0):
    """kafka-python 3.x's default producer: KafkaProducer(bootstrap_servers=...) and nothing
    else, which is idempotent (acks=all, 5 requests in flight, unlimited retries)."""
    create_topic(b, topic, partitions)
    producer = kafka.KafkaProducer(bootstrap_servers=b)
    check(producer.config["enable_idempotence"], "kafka-python's default producer is not idempotent")
    progress = Progress()

    def on_error(i):
        return lambda e: progress.errors.append(f"record {i}: {e!r}")

    def on_success(i):
        return lambda md: progress.ack(md.partition, md.offset, i)

    started = time.monotonic()
    for i in range(n):
        future = producer.send(topic, key=f"k{i}".encode(), value=str(i).encode())
        future.add_callback(on_success(i))
        future.add_errback(on_error(i))
        if i % 100 == 0:
            pace(started, i, rate)
    producer.flush(TIMEOUT)
    producer.close(TIMEOUT)
    progress.finish(acks_path, n)


def verify(b, topic, partitions, n, acks_path, ordered=False):
    """Reads the whole topic. Every record 0..N-1 is there exactly once, and every acknowledged
    record is at the partition and offset it was acknowledged with. With --ordered, the
    records of each partition are in the order they were produced."""
    partitions, n = int(partitions), int(n)
    acked = {}
    with open(acks_path) as f:
        for line in f:
            p, o, i = (int(x) for x in line.split())
            acked[(p, o)] = i
    consumer = Consumer({"bootstrap.servers": b, "group.id": f"verify-{topic}", "enable.auto.commit": False})
    ends = {}
    for p in range(partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
        check(low == 0, f"partition {p} starts at {low}")
        ends[p] = high
    total = sum(ends.values())
    check(total == n, f"the topic holds {total} records, {n} were produced ({total - n:+d}): {ends}")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = {}
    last = {}
    deadline = time.time() + TIMEOUT
    while len(seen) < n and time.time() < deadline:
        for msg in consumer.consume(10_000, 0.5):
            if msg.error():
                raise KafkaException(msg.error())
            p, o, i = msg.partition(), msg.offset(), int(msg.value())
            check(i not in seen, f"record {i} twice: at {seen.get(i)} and at {(p, o)}")
            check(msg.key() == f"k{i}".encode(), f"record {i} at {(p, o)} has key {msg.key()!r}")
            seen[i] = (p, o)
            if ordered:
                check(last.get(p, -1) < i, f"partition {p}: record {i} at offset {o} after record {last.get(p)}")
            last[p] = i
    consumer.close()
    check(len(seen) == n, f"read {len(seen)} of {n} records in {TIMEOUT} s")
    for (p, o), i in acked.items():
        check(seen.get(i) == (p, o), f"record {i} was acknowledged at {(p, o)} but is at {seen.get(i)}")
    check(len(acked) == n, f"only {len(acked)} of {n} records were acknowledged")


COMMANDS = {"librdkafka": produce_librdkafka, "kafka-python": produce_kafka_python}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("command", choices=[*COMMANDS, "verify"])
    parser.add_argument("topic")
    parser.add_argument("partitions", type=int)
    parser.add_argument("n", type=int)
    parser.add_argument("acks_file")
    parser.add_argument("rate", type=float, nargs="?", default=0)
    parser.add_argument("--ordered", action="store_true")
    args = parser.parse_args()
    try:
        if args.command == "verify":
            verify(args.bootstrap, args.topic, args.partitions, args.n, args.acks_file, args.ordered)
            print(f"PASS verify {args.n}", flush=True)
        else:
            COMMANDS[args.command](args.bootstrap, args.topic, args.partitions, args.n, args.acks_file, args.rate)
    except Exception as e:  # one line for the test's message, the trace for whoever digs
        traceback.print_exc(file=sys.stderr)
        what = str(e) if isinstance(e, Failed) else f"{type(e).__name__}: {e}"
        print(f"FAIL {args.command}: {what}".splitlines()[0], flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
