"""Transactions of the third-party Python clients, for tests/it/transactions.rs.

Every command prints one line "PASS <command> ..." when its checks hold; any failure prints one
line, "FAIL <command>: <what>", and exits 1. The commands:

    python transactions.py --bootstrap HOST:PORT seed TOPIC PARTITIONS N
    python transactions.py --bootstrap HOST:PORT app INPUT OUTPUT PARTITIONS GROUP TXN_ID PER_TXN RATE
    python transactions.py --bootstrap HOST:PORT verify-eos INPUT OUTPUT PARTITIONS N GROUP [MIN_ABORTED]
    python transactions.py --bootstrap HOST:PORT visibility TOPIC --sluice BIN
    python transactions.py --bootstrap HOST:PORT fencing TOPIC
    python transactions.py --bootstrap HOST:PORT timeout TOPIC TXN_ID --sluice BIN
    python transactions.py --bootstrap HOST:PORT kafka-python TOPIC GROUP
    python transactions.py --bootstrap HOST:PORT expect TOPIC COMMITTED ALL

`seed` writes records 0..N-1 (key "k<i>", value "<i>", partition i % PARTITIONS) with an
idempotent producer. `app` is a consume-transform-produce application (librdkafka): a member of
GROUP (static, its instance id is TXN_ID) that reads INPUT read_committed and, per transaction of
up to PER_TXN records, writes each record to OUTPUT (same partition, value "<i>") and commits its
consumer offsets in the transaction (send_offsets_to_transaction), at most RATE records/s (so
that the test's crashes land mid-stream). Once a transaction's records are written, it prints
"open <records read>" and keeps the pace there (holding it open at least 30 ms), so that most
moments are inside a transaction. It prints "committed <count>"
after each commit (count: the sum of its group's committed offsets) and "DONE" once every input
record is committed; if another instance fenced it, it prints "FENCED <what>" and exits 0.
`verify-eos` checks that a read_committed consumer of OUTPUT sees every input record exactly
once, in input order per partition, that GROUP's offsets are at the end of INPUT, and that a
read_uncommitted consumer sees at least MIN_ABORTED more (of aborted transactions).
`expect` reads TOPIC (partition 0) read_committed and read_uncommitted and compares the values
with COMMITTED and ALL (comma-separated).
"""

import argparse
import faulthandler
import json
import os
import signal
import subprocess
import sys
import time
import traceback

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT = 30
# librdkafka (2.10 and later) re-bootstraps when every broker is down, which a one-node broker's
# restart is: it decommissions the broker's handle, and send_offsets_to_transaction() then waits
# forever on the group coordinator cached with that handle, ignoring its timeout (librdkafka
# issues #5511 and #5456). The app turns re-bootstrapping off.
NO_REBOOTSTRAP = {"metadata.recovery.strategy": "none"}
# How long the app at least holds each transaction open once its records are written.
HOLD_S = 0.03
# The app gives up after this many aborted transactions without a commit between them, once
# they have gone on for ABORTING_S_MAX: a consumer whose membership the coordinator dropped learns
# it only at its next heartbeat (librdkafka's heartbeat.interval.ms, 3 s), or after a session
# timeout, and rejoins then; until then every transaction aborts at send_offsets
# (UNKNOWN_MEMBER_ID), ten of them in about a second.
ABORTS_IN_A_ROW_MAX = 10
ABORTING_S_MAX = 15


class Failed(Exception):
    """A check that failed: its message is the one line printed."""


def check(condition, message):
    if not condition:
        raise Failed(message)


def create_topic(bootstrap, topic, partitions):
    client = AdminClient({"bootstrap.servers": bootstrap})
    for _, future in client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).items():
        future.result(timeout=TIMEOUT)


def txn_producer(bootstrap, txn_id, **extra):
    config = {"bootstrap.servers": bootstrap, "transactional.id": txn_id}
    config.update(extra)
    return Producer(config)


def reader(bootstrap, topic, partitions, isolation):
    """A consumer of every partition of `topic` from its start, outside any group's offsets."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}-{isolation}-{os.getpid()}-{time.monotonic_ns()}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    return consumer


def drain(consumer, partitions, seconds):
    """What `consumer` reads until every partition reported its end (EOF) with nothing after it,
    or `seconds` pass: [(partition, offset, value)] and {partition: offset of its last EOF}."""
    out, eof = [], {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = consumer.poll(0.1)
        if msg is None:
            if len(eof) == partitions:
                break
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof[msg.partition()] = msg.offset()
                continue
            raise KafkaException(msg.error())
        eof.pop(msg.partition(), None)
        out.append((msg.partition(), msg.offset(), msg.value().decode()))
    return out, eof


def watch(consumer, seconds, expected=None):
    """The values `consumer` reads in the next `seconds` (whatever its EOFs say), or until it
    read `expected` values and then nothing more for a moment."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if expected is not None and len(out) >= expected:
            deadline = min(deadline, time.monotonic() + 0.3)
        msg = consumer.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(msg.error())
        out.append(msg.value().decode())
    return out


def read_values(bootstrap, topic, partitions, isolation, seconds=TIMEOUT):
    consumer = reader(bootstrap, topic, partitions, isolation)
    try:
        records, eof = drain(consumer, partitions, seconds)
    finally:
        consumer.close()
    check(len(eof) == partitions, f"{isolation} reader of {topic}: no end of partition in {seconds} s")
    return [v for _, _, v in records]


def kafka_error(e):
    return e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None


FENCED_CODES = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
}


def is_fenced(error):
    return error is not None and error.code() in FENCED_CODES


# --- seed, app, verify-eos --------------------------------------------------------------------


def seed(b, topic, partitions, n):
    partitions, n = int(partitions), int(n)
    create_topic(b, topic, partitions)
    producer = Producer({"bootstrap.servers": b, "enable.idempotence": True, "linger.ms": 5})
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))

    for i in range(n):
        while True:
            try:
                producer.produce(topic, key=f"k{i}".encode(), value=str(i).encode(), partition=i % partitions,
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(TIMEOUT)
    check(left == 0 and not errors, f"seeding: {left} left, errors {errors[:1]}")
    return f"{n}"


def group_committed(consumer, topic, partitions):
    committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=TIMEOUT)
    return {tp.partition: max(tp.offset, 0) for tp in committed}


def app(b, input_topic, output, partitions, group, txn_id, per_txn, rate):
    """The consume-transform-produce loop. Errors a transaction can survive abort it and rewind
    the consumer to the group's committed offsets; a fenced producer or consumer ends the app
    ("FENCED"); any other fatal error fails it."""
    partitions, per_txn, rate = int(partitions), int(per_txn), float(rate)
    probe = Consumer({"bootstrap.servers": b, "group.id": f"{group}-probe"})
    ends = {p: probe.get_watermark_offsets(TopicPartition(input_topic, p), timeout=TIMEOUT)[1]
            for p in range(partitions)}
    probe.close()
    total = sum(ends.values())
    consumer = Consumer(
        {
            "bootstrap.servers": b,
            "group.id": group,
            "group.instance.id": txn_id,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "max.poll.interval.ms": 20000,
            "fetch.wait.max.ms": 50,
            **NO_REBOOTSTRAP,
        }
    )
    debug = {"debug": os.environ["TRANSACTIONS_DEBUG"]} if os.environ.get("TRANSACTIONS_DEBUG") else {}
    producer = txn_producer(b, txn_id, **{"transaction.timeout.ms": 15000, "linger.ms": 5}, **NO_REBOOTSTRAP, **debug)
    producer.init_transactions(TIMEOUT)
    print("initialized", flush=True)
    consumer.subscribe([input_topic])

    def rewind():
        # Back to what the group committed: the aborted transaction's records are read again.
        assignment = consumer.assignment()
        if not assignment:
            return
        committed = consumer.committed(assignment, timeout=TIMEOUT)
        for tp in committed:
            tp.offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            try:
                consumer.seek(tp)
            except KafkaException as e:
                # Not fetching yet: it starts at the committed offset anyway.
                print(f"seek {tp}: {e}", flush=True)

    def fenced(what, error):
        print(f"FENCED {what}: {error}", flush=True)
        sys.exit(0)

    last_abortable = [None]

    def attempt(what, call):
        """Runs a transaction call, retrying what is retriable. Returns False if the transaction
        must be aborted."""
        deadline = time.monotonic() + 2 * TIMEOUT
        while True:
            try:
                call()
                return True
            except KafkaException as e:
                error = kafka_error(e)
                if is_fenced(error):
                    fenced(f"producer at {what}", error)
                if error is not None and error.txn_requires_abort():
                    print(f"abortable at {what}: {error}", flush=True)
                    last_abortable[0] = f"at {what}: {error}"
                    return False
                if error is not None and error.retriable() and time.monotonic() < deadline:
                    print(f"retry {what}: {error}", flush=True)
                    continue
                raise

    done = None
    aborted_in_a_row = 0
    aborting_since = None
    started, processed = time.monotonic(), 0
    while True:
        msgs = consumer.consume(per_txn, 0.5)
        records = []
        for msg in msgs:
            if msg.error():
                if msg.error().code() in (KafkaError._FENCED, KafkaError.FENCED_INSTANCE_ID):
                    fenced("consumer", msg.error())
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                print(f"consumer error: {msg.error()}", flush=True)
                continue
            records.append(msg)
        if not records:
            committed = group_committed(consumer, input_topic, partitions)
            if committed == ends:
                done = sum(committed.values())
                break
            continue
        processed += len(records)
        ok = attempt("begin", producer.begin_transaction)
        for msg in records:
            if not ok:
                break
            while True:
                try:
                    producer.produce(output, key=msg.key(), value=msg.value(), partition=msg.partition())
                    break
                except BufferError:
                    producer.poll(0.05)
                except KafkaException as e:
                    if is_fenced(kafka_error(e)):
                        fenced("producer at produce", kafka_error(e))
                    raise
        if ok:
            # The records are in the log and the transaction is open: the test kills the app
            # (or pauses it) on this line. The pace is kept here, inside the transaction.
            ok = attempt("flush", lambda: producer.flush(TIMEOUT))
            print(f"open {processed}", flush=True)
            ahead = started + processed / rate - time.monotonic()
            time.sleep(max(ahead, HOLD_S))
        if ok:
            # Partitions not read from yet have no position (and need no offset).
            positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
            ok = attempt(
                "send_offsets",
                lambda: producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), TIMEOUT),
            )
        if ok:
            ok = attempt("commit", lambda: producer.commit_transaction(TIMEOUT))
        if not ok:
            attempt("abort", lambda: producer.abort_transaction(TIMEOUT))
            rewind()
            aborted_in_a_row += 1
            aborting_since = aborting_since or time.monotonic()
            check(
                aborted_in_a_row < ABORTS_IN_A_ROW_MAX or time.monotonic() - aborting_since < ABORTING_S_MAX,
                f"{aborted_in_a_row} transactions in a row aborted in {time.monotonic() - aborting_since:.1f} s, "
                f"the last {last_abortable[0]}",
            )
            continue
        aborted_in_a_row = 0
        aborting_since = None
        print(f"committed {sum(group_committed(consumer, input_topic, partitions).values())}", flush=True)
    check(done == total, f"committed {done} of {total}")
    print(f"committed {done}", flush=True)
    print("DONE", flush=True)
    consumer.close()
    return f"{done}"


def verify_eos(b, input_topic, output, partitions, n, group, min_aborted=0):
    partitions, n, min_aborted = int(partitions), int(n), int(min_aborted)
    consumer = reader(b, output, partitions, "read_committed")
    records, eof = drain(consumer, partitions, TIMEOUT)
    consumer.close()
    check(len(eof) == partitions, f"read_committed: no end of partition in {TIMEOUT} s ({len(records)} read)")
    seen = {}
    last = {}
    for p, o, v in records:
        i = int(v)
        check(i not in seen, f"record {i} twice under read_committed: at {seen.get(i)} and at {(p, o)}")
        check(p == i % partitions, f"record {i} in partition {p}")
        check(last.get(p, -1) < i, f"partition {p}: record {i} at offset {o} after record {last.get(p)}")
        seen[i] = (p, o)
        last[p] = i
    missing = [i for i in range(n) if i not in seen]
    check(not missing, f"{len(missing)} of {n} records missing under read_committed, first {missing[:5]}")
    check(len(seen) == n, f"{len(seen)} records under read_committed, {n} in the input")
    everything = read_values(b, output, partitions, "read_uncommitted")
    check(len(everything) >= n + min_aborted,
          f"read_uncommitted sees {len(everything)} records: not the {n} committed and at least {min_aborted} aborted")
    probe = Consumer({"bootstrap.servers": b, "group.id": group})
    committed = group_committed(probe, input_topic, partitions)
    ends = {p: probe.get_watermark_offsets(TopicPartition(input_topic, p), timeout=TIMEOUT)[1]
            for p in range(partitions)}
    probe.close()
    check(committed == ends, f"the group's offsets {committed} are not the input's ends {ends}")
    return f"{n} (read_uncommitted: {len(everything)} records, {len(everything) - n} of aborted transactions)"


# --- visibility, fencing, timeout -------------------------------------------------------------


def sluice_consume(sluice, b, topic, isolation):
    out = subprocess.run(
        [sluice, "consume", topic, "--bootstrap", b, "--from-beginning", "--isolation-level", isolation,
         "--timeout-ms", "1000", "--format", "%v\\n"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    check(out.returncode == 0, f"sluice consume --isolation-level {isolation}: {out.stderr.strip()}")
    return out.stdout.split()


def visibility(b, topic, sluice):
    create_topic(b, topic, 1)
    p1 = txn_producer(b, f"{topic}-txn")
    p1.init_transactions(TIMEOUT)
    plain = Producer({"bootstrap.servers": b, "enable.idempotence": True})

    def send(producer, value):
        producer.produce(topic, value=value.encode(), partition=0)
        check(producer.flush(TIMEOUT) == 0, f"{value} not delivered")

    # An aborted transaction's records, then a committed one.
    p1.begin_transaction()
    send(p1, "a1")
    send(p1, "a2")
    p1.abort_transaction(TIMEOUT)
    p1.begin_transaction()
    send(p1, "c1")
    p1.commit_transaction(TIMEOUT)
    got = read_values(b, topic, 1, "read_committed")
    check(got == ["c1"], f"read_committed after an abort and a commit: {got}, expected ['c1']")
    got = read_values(b, topic, 1, "read_uncommitted")
    check(got == ["a1", "a2", "c1"], f"read_uncommitted after an abort and a commit: {got}")

    rc = reader(b, topic, 1, "read_committed")
    ru = reader(b, topic, 1, "read_uncommitted")
    records, _ = drain(rc, 1, TIMEOUT)
    check([v for _, _, v in records] == ["c1"], f"read_committed: {records}")
    drain(ru, 1, TIMEOUT)

    for end in ("commit", "abort"):
        # An open transaction, then a record of another producer, committed at once.
        p1.begin_transaction()
        send(p1, f"open-{end}")
        send(plain, f"after-{end}")
        got = watch(ru, 5.0, expected=2)
        check(got == [f"open-{end}", f"after-{end}"], f"read_uncommitted with a transaction open: {got}")
        got = watch(rc, 1.5)
        check(got == [], f"read_committed read {got} past the open transaction (its last stable offset)")
        if end == "commit":
            cli = sluice_consume(sluice, b, topic, "read_committed")
            check(cli == ["c1"], f"sluice consume --isolation-level read_committed with a transaction open: {cli}")
            p1.commit_transaction(TIMEOUT)
            expected = [f"open-{end}", f"after-{end}"]
        else:
            p1.abort_transaction(TIMEOUT)
            expected = [f"after-{end}"]
        got = watch(rc, 5.0, expected=len(expected))
        check(got == expected, f"read_committed after the {end}: {got}, expected {expected}")
    rc.close()
    ru.close()
    committed = ["c1", "open-commit", "after-commit", "after-abort"]
    everything = ["a1", "a2", "c1", "open-commit", "after-commit", "open-abort", "after-abort"]
    got = read_values(b, topic, 1, "read_committed")
    check(got == committed, f"read_committed at the end: {got}, expected {committed}")
    got = read_values(b, topic, 1, "read_uncommitted")
    check(got == everything, f"read_uncommitted at the end: {got}, expected {everything}")
    cli = sluice_consume(sluice, b, topic, "read_committed")
    check(cli == committed, f"sluice consume --isolation-level read_committed: {cli}, expected {committed}")
    cli = sluice_consume(sluice, b, topic, "read_uncommitted")
    check(cli == everything, f"sluice consume --isolation-level read_uncommitted: {cli}")
    return ""


def fencing(b, topic):
    create_topic(b, topic, 2)
    txn_id = f"{topic}-txn"
    zombie = txn_producer(b, txn_id)
    zombie.init_transactions(TIMEOUT)
    zombie.begin_transaction()
    for p in (0, 1):
        zombie.produce(topic, value=b"zombie", partition=p)
    check(zombie.flush(TIMEOUT) == 0, "the zombie's records not delivered")

    winner = txn_producer(b, txn_id)
    winner.init_transactions(TIMEOUT)  # fences the zombie, aborting its open transaction

    # The zombie's next send fails, and so does its commit: fenced, fatally.
    errors = []
    zombie.produce(topic, value=b"zombie-late", partition=0, on_delivery=lambda err, msg: errors.append(err))
    try:
        zombie.flush(TIMEOUT)
    except (KafkaException, SystemError) as e:
        # confluent-kafka raises the fatal error from flush() (inside the delivery callback, as
        # a SystemError caused by the KafkaException).
        cause = e if isinstance(e, KafkaException) else e.__cause__
        errors.insert(0, kafka_error(cause) if isinstance(cause, KafkaException) else e)
    check(errors and errors[0] is not None, f"the zombie's send after the fencing succeeded: {errors}")
    check(is_fenced(errors[0]), f"the zombie's send failed with {errors[0]}, not fenced")
    try:
        zombie.commit_transaction(TIMEOUT)
        raise Failed("the zombie's commit succeeded after a new producer with its transactional id")
    except KafkaException as e:
        error = kafka_error(e)
        check(error is not None and error.fatal() and is_fenced(error),
              f"the zombie's commit failed with {error} (fatal: {error and error.fatal()}), not fenced")

    winner.begin_transaction()
    for p in (0, 1):
        winner.produce(topic, value=b"winner", partition=p)
    winner.commit_transaction(TIMEOUT)
    got = read_values(b, topic, 2, "read_committed")
    check(got == ["winner", "winner"], f"read_committed: {got}, expected only the winner's records")
    got = read_values(b, topic, 2, "read_uncommitted")
    check(sorted(got) == ["winner", "winner", "zombie", "zombie"], f"read_uncommitted: {got}")
    return ""


def sluice_json(sluice, b, *args):
    out = subprocess.run([sluice, *args, "--bootstrap", b, "--json"], capture_output=True, text=True,
                         timeout=TIMEOUT)
    check(out.returncode == 0, f"sluice {' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def timeout(b, topic, txn_id, sluice):
    create_topic(b, topic, 1)
    stalled = txn_producer(b, txn_id, **{"transaction.timeout.ms": 1000})
    stalled.init_transactions(TIMEOUT)
    before = sluice_json(sluice, b, "txn", "describe", txn_id)
    # The transaction starts at its first AddPartitionsToTxn, sent once there is a record.
    started = time.monotonic()
    stalled.begin_transaction()
    stalled.produce(topic, value=b"stalled", partition=0)
    check(stalled.flush(TIMEOUT) == 0, "the stalled record not delivered")
    plain = Producer({"bootstrap.servers": b, "enable.idempotence": True})
    plain.produce(topic, value=b"after", partition=0)
    check(plain.flush(TIMEOUT) == 0, "the record after not delivered")
    rc = reader(b, topic, 1, "read_committed")
    # The transaction stalls: the broker aborts it after its timeout (1 s, checked every 200 ms).
    state = None
    while time.monotonic() - started < 10:
        described = sluice_json(sluice, b, "txn", "describe", txn_id)
        state = described["state"]
        if state == "CompleteAbort":
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    check(state == "CompleteAbort", f"sluice txn describe: {state} 10 s after a 1 s timeout, not CompleteAbort")
    check(elapsed >= 0.8, f"aborted after {elapsed:.1f} s, before its 1 s timeout")
    check(described["producer_epoch"] > before["producer_epoch"],
          f"the abort did not bump the epoch: {before['producer_epoch']} then {described['producer_epoch']}")
    got = watch(rc, 5.0, expected=1)
    rc.close()
    check(got == ["after"], f"read_committed after the timeout: {got}, expected ['after']")
    try:
        stalled.commit_transaction(TIMEOUT)
        raise Failed("the commit of a transaction aborted at its timeout succeeded")
    except KafkaException as e:
        error = kafka_error(e)
        check(is_fenced(error), f"the late commit failed with {error}, not fenced")
    got = read_values(b, topic, 1, "read_committed")
    check(got == ["after"], f"read_committed at the end: {got}")
    return f"(aborted after {elapsed:.1f} s, the late commit refused: {error})"


# --- kafka-python, expect -----------------------------------------------------------------------


def kafka_python(b, topic, group):
    import kafka
    from kafka.structs import OffsetAndMetadata
    from kafka.structs import TopicPartition as KTopicPartition

    create_topic(b, topic, 1)
    producer = kafka.KafkaProducer(bootstrap_servers=b, transactional_id=f"{topic}-txn")
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, value=b"c1", partition=0).get(TIMEOUT)
    producer.send(topic, value=b"c2", partition=0).get(TIMEOUT)
    producer.send_offsets_to_transaction({KTopicPartition(topic, 0): OffsetAndMetadata(2, "", -1)}, group)
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(topic, value=b"a1", partition=0).get(TIMEOUT)
    producer.send_offsets_to_transaction({KTopicPartition(topic, 0): OffsetAndMetadata(99, "", -1)}, group)
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(topic, value=b"c3", partition=0).get(TIMEOUT)
    producer.commit_transaction()
    producer.close(TIMEOUT)

    consumer = kafka.KafkaConsumer(bootstrap_servers=b, isolation_level="read_committed", group_id=None,
                                   auto_offset_reset="earliest", enable_auto_commit=False)
    tp = KTopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < 3 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(r.value.decode() for r in records)
    got.extend(r.value.decode() for rs in consumer.poll(timeout_ms=1000).values() for r in rs)
    consumer.close()
    check(got == ["c1", "c2", "c3"], f"kafka-python's read_committed consumer: {got}")

    probe = Consumer({"bootstrap.servers": b, "group.id": group})
    committed = probe.committed([TopicPartition(topic, 0)], timeout=TIMEOUT)[0].offset
    probe.close()
    check(committed == 2, f"the group's offset is {committed}: the committed transaction's was 2")
    return ""


def expect(b, topic, committed, everything):
    committed = [v for v in committed.split(",") if v]
    everything = [v for v in everything.split(",") if v]
    got = read_values(b, topic, 1, "read_committed")
    check(got == committed, f"read_committed: {got}, expected {committed}")
    got = read_values(b, topic, 1, "read_uncommitted")
    check(got == everything, f"read_uncommitted: {got}, expected {everything}")
    return ""


COMMANDS = {
    "seed": seed,
    "app": app,
    "verify-eos": verify_eos,
    "visibility": visibility,
    "fencing": fencing,
    "timeout": timeout,
    "kafka-python": kafka_python,
    "expect": expect,
}


def main():
    # The test sends SIGUSR1 to an app it gives up on: where it was stuck goes to stderr.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--sluice")
    parser.add_argument("command", choices=list(COMMANDS))
    parser.add_argument("args", nargs="*")
    args = parser.parse_args()
    try:
        extra = {"sluice": args.sluice} if args.command in ("visibility", "timeout") else {}
        result = COMMANDS[args.command](args.bootstrap, *args.args, **extra)
        print(f"PASS {args.command} {result}".rstrip(), flush=True)
    except Exception as e:  # one line for the test's message, the trace for whoever digs
        traceback.print_exc(file=sys.stderr)
        what = str(e) if isinstance(e, Failed) else f"{type(e).__name__}: {e}"
        print(f"FAIL {args.command}: {what}".splitlines()[0], flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
