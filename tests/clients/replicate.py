"""Produce and read back through librdkafka (confluent-kafka), for the replication tests.

  replicate.py --bootstrap H:P produce TOPIC COUNT PREFIX   acks=all, idempotent; prints one JSON line
                                                            {"acked": [[partition, offset, value], ...],
                                                             "failed": N}
  replicate.py --bootstrap H:P read TOPIC                   reads every partition from the start to its
                                                            high watermark; prints one JSON line
                                                            {"records": [[partition, offset, value], ...]}
  replicate.py --bootstrap H:P commit GROUP TOPIC OFFSET    commits OFFSET for every partition of TOPIC
  replicate.py --bootstrap H:P committed GROUP TOPIC        prints {"committed": {partition: offset}}
  replicate.py --bootstrap H:P delete-records TOPIC OFFSET  DeleteRecords before OFFSET in every partition
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

TIMEOUT = 60.0


def partitions_of(consumer, topic):
    metadata = consumer.list_topics(topic, timeout=TIMEOUT)
    return sorted(metadata.topics[topic].partitions)


def produce(bootstrap, topic, count, prefix):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": int(TIMEOUT * 1000),
    })
    acked, failed = [], []

    def report(err, msg):
        if err is not None:
            failed.append(str(err))
        else:
            acked.append([msg.partition(), msg.offset(), msg.value().decode()])

    for i in range(count):
        value = f"{prefix}-{i:06d}"
        while True:
            try:
                producer.produce(topic, key=value.encode(), value=value.encode(), on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(TIMEOUT)
    print(json.dumps({"acked": acked, "failed": len(failed), "errors": failed[:5]}))


def read(bootstrap, topic):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "replicate-read",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    })
    parts = partitions_of(consumer, topic)
    ends = {}
    for p in parts:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
        ends[p] = high
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    records = []
    done = {p for p in parts if ends[p] == 0}
    deadline = time.time() + TIMEOUT
    while len(done) < len(parts) and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                if msg.offset() >= ends[msg.partition()]:
                    done.add(msg.partition())
                continue
            raise KafkaException(msg.error())
        records.append([msg.partition(), msg.offset(), msg.value().decode()])
        if msg.offset() + 1 >= ends[msg.partition()]:
            done.add(msg.partition())
    consumer.close()
    print(json.dumps({"records": records, "complete": len(done) == len(parts), "ends": ends}))


def commit(bootstrap, group, topic, offset):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    parts = partitions_of(consumer, topic)
    consumer.commit(offsets=[TopicPartition(topic, p, offset) for p in parts], asynchronous=False)
    consumer.close()
    print(json.dumps({"committed": len(parts)}))


def committed(bootstrap, group, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    parts = partitions_of(consumer, topic)
    got = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=TIMEOUT)
    consumer.close()
    print(json.dumps({"committed": {str(tp.partition): tp.offset for tp in got}}))


def delete_records(bootstrap, topic, offset):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    parts = sorted(admin.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions)
    futures = admin.delete_records([TopicPartition(topic, p, offset) for p in parts])
    low = {str(tp.partition): f.result(TIMEOUT).low_watermark for tp, f in futures.items()}
    print(json.dumps({"low_watermarks": low}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("command")
    parser.add_argument("args", nargs="*")
    args = parser.parse_args()
    if args.command == "produce":
        produce(args.bootstrap, args.args[0], int(args.args[1]), args.args[2])
    elif args.command == "read":
        read(args.bootstrap, args.args[0])
    elif args.command == "commit":
        commit(args.bootstrap, args.args[0], args.args[1], int(args.args[2]))
    elif args.command == "delete-records":
        delete_records(args.bootstrap, args.args[0], int(args.args[1]))
    elif args.command == "committed":
        committed(args.bootstrap, args.args[0], args.args[1])
    else:
        sys.exit(f"unknown command {args.command}")


if __name__ == "__main__":
    main()
