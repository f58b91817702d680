"""Transactions through confluent-kafka (librdkafka) against a live Sluice broker, for
tests/it/read_committed.rs: a transactional producer aborts one transaction, commits another and
leaves a third open; a read_committed consumer must see exactly the committed records, a
read_uncommitted one every record. Prints "PASS read_committed" on success; a failure prints
one line, "FAIL read_committed: <what>", after the trace (as compat.py does).

    python read_committed.py --bootstrap 127.0.0.1:PORT --topic TOPIC --partitions N
"""

import argparse
import sys
import time
import traceback
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

TIMEOUT = 60
# How long a consumer keeps polling after it has what it expects, to catch records it should
# not see.
SETTLE_SECONDS = 3
RECORDS_PER_PARTITION = 5


def produce_transaction(producer, topic, partitions, label):
    producer.begin_transaction()
    for partition in range(partitions):
        for i in range(RECORDS_PER_PARTITION):
            producer.produce(topic, key=f"{label}-{partition}-{i}".encode(), value=label.encode(), partition=partition)
    producer.flush(TIMEOUT)


def consume(bootstrap, topic, partitions, isolation, expected):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"rc-{uuid.uuid4().hex[:8]}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    seen = []
    deadline = time.time() + TIMEOUT
    settle_until = None
    while time.time() < deadline:
        if len(seen) >= expected:
            settle_until = settle_until or time.time() + SETTLE_SECONDS
            if time.time() >= settle_until:
                break
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            raise KafkaException(message.error())
        seen.append(message.key().decode())
    consumer.close()
    return sorted(seen)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args()

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": f"rc-{uuid.uuid4().hex[:8]}",
            # The third transaction must stay open while the Rust test looks at it.
            "transaction.timeout.ms": 120000,
        }
    )
    producer.init_transactions(TIMEOUT)
    produce_transaction(producer, args.topic, args.partitions, "aborted")
    producer.abort_transaction(TIMEOUT)
    produce_transaction(producer, args.topic, args.partitions, "committed")
    producer.commit_transaction(TIMEOUT)
    produce_transaction(producer, args.topic, args.partitions, "open")

    def keys(label):
        return sorted(f"{label}-{p}-{i}" for p in range(args.partitions) for i in range(RECORDS_PER_PARTITION))

    committed = consume(args.bootstrap, args.topic, args.partitions, "read_committed", len(keys("committed")))
    assert committed == keys("committed"), f"read_committed saw {committed}"
    everything = sorted(keys("aborted") + keys("committed") + keys("open"))
    uncommitted = consume(args.bootstrap, args.topic, args.partitions, "read_uncommitted", len(everything))
    assert uncommitted == everything, f"read_uncommitted saw {uncommitted}"
    # Exit without ending the open transaction: the broker keeps it open until its timeout.
    print("PASS read_committed")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line for the test's message (first in it), the trace below
        traceback.print_exc()
        print(f"FAIL read_committed: {type(e).__name__}: {e}".splitlines()[0], flush=True)
        sys.exit(1)
