"""A steady acks=all idempotent producer that prints when each record was sent and acknowledged.

  ack_times.py --bootstrap H:P --topic T [--rate 1000] [--seconds 900]

One line per delivery report on stdout, flushed as it comes, for perf/replication failover:
  "ack SEND_NS ACK_NS OFFSET"   (wall clock, time.time_ns())
  "err SEND_NS ACK_NS ERROR"
Runs until --seconds have passed or SIGTERM, then flushes what is in flight (bounded) and exits.
The send time travels in the record's value, so a report needs no lookup table.
"""

import argparse
import signal
import sys
import time

from confluent_kafka import Producer

# Long enough that no record times out across a failover even with the default 9 s broker session
# timeout plus a controller election; a timed-out record would show as an "err" line, not a gap.
MESSAGE_TIMEOUT_MS = 120_000
# How long the final flush may take after SIGTERM, so the script always ends.
FLUSH_SECONDS = 10.0
# Padding after the send time, so records are 1 KiB like the throughput runs.
RECORD_BYTES = 1024

stopping = False


def stop(_signum, _frame):
    global stopping
    stopping = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=900.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop)

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 1,
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
    })
    out = sys.stdout

    def report(err, msg):
        now = time.time_ns()
        sent = msg.value()[:19].decode()
        if err is not None:
            out.write(f"err {sent} {now} {str(err).replace(' ', '_')}\n")
        else:
            out.write(f"ack {sent} {now} {msg.offset()}\n")
        out.flush()

    interval = 1.0 / args.rate
    start = time.monotonic()
    sent = 0
    while not stopping and time.monotonic() - start < args.seconds:
        due = start + sent * interval
        wait = due - time.monotonic()
        if wait > 0:
            producer.poll(wait)
            continue
        value = str(time.time_ns()).encode().ljust(RECORD_BYTES, b".")
        try:
            producer.produce(args.topic, value=value, on_delivery=report)
            sent += 1
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    producer.flush(FLUSH_SECONDS)


if __name__ == "__main__":
    main()
