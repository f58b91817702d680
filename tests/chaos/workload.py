"""The chaos run's clients (confluent-kafka, i.e. librdkafka; never Sluice's own client): the
topic, two idempotent acks=all producers, an assigned consumer and a group consumer that log
everything they see, the metadata the fault injector targets with, and the final reads."""

import logging
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "chaos"
REPLICATION_FACTOR = 3
MIN_INSYNC = 2
# Client calls that talk to the cluster wait at most this long: long enough for a leader
# election, short enough that a hung call fails the run instead of hanging it.
CALL_TIMEOUT_S = 15
# How long librdkafka keeps retrying one record before reporting it failed. Longer than any one
# fault (a hold of a few seconds plus a restart), so a record that fails really failed.
MESSAGE_TIMEOUT_MS = 60000
# After the producers stop, how long they may take to deliver what is still queued.
FLUSH_TIMEOUT_S = 90
# One final read gives up after this long without reaching the high watermarks.
FINAL_READ_TIMEOUT_S = 120
POLL_S = 0.2

# librdkafka's own log lines (a broker going away is logged by every client, every time) go to
# this logger, which chaos.py points at a file in the report dir, not to the run's output.
CLIENT_LOGGER = logging.getLogger("chaos.clients")
CLIENT_LOGGER.propagate = False


def conf(bootstrap, **extra):
    """A client config for `bootstrap` that logs to CLIENT_LOGGER."""
    return {"bootstrap.servers": bootstrap, "logger": CLIENT_LOGGER, **extra}


def metadata(bootstrap, timeout=CALL_TIMEOUT_S):
    """The topic's partitions as {p: (leader, replicas, isrs)}, or None if it is unknown."""
    admin = AdminClient(conf(bootstrap))
    md = admin.list_topics(TOPIC, timeout=timeout)
    topic = md.topics.get(TOPIC)
    if topic is None or topic.error is not None:
        return None
    return {p: (m.leader, list(m.replicas), list(m.isrs)) for p, m in topic.partitions.items()}


def create_topic(bootstrap, nodes, partitions):
    admin = AdminClient(conf(bootstrap))  # must outlive the futures
    topic = NewTopic(
        TOPIC,
        num_partitions=partitions,
        replication_factor=REPLICATION_FACTOR,
        config={"min.insync.replicas": str(MIN_INSYNC)},
    )
    for _, future in admin.create_topics([topic], operation_timeout=CALL_TIMEOUT_S).items():
        future.result(timeout=CALL_TIMEOUT_S * 2)
    # Every node must know the topic (with a leader for each partition) before the workload
    # starts, so no first batch is refused by a node that has not learnt it yet.
    deadline = time.time() + CALL_TIMEOUT_S * 4
    for node in nodes:
        while True:
            try:
                md = metadata(node.addr)
            except KafkaException:
                md = None
            if md and len(md) == partitions and all(leader >= 0 for leader, _, _ in md.values()):
                break
            if time.time() > deadline:
                raise RuntimeError(f"node {node.id} does not know topic {TOPIC}: {md}")
            time.sleep(0.1)


def bump(table, name):
    table[name] = table.get(name, 0) + 1


class History:
    """Everything the clients saw, gathered from their threads once they have stopped. While
    the run goes on, each client thread records into its own lists only (its callbacks run in
    that thread, from its poll/flush), so no callback takes a lock: with one shared lock, two
    producers flushing after a fatal error were seen stuck in their delivery callbacks, waiting
    for a lock no live frame held."""

    def __init__(self, producers, consumers):
        self.attempted = sum(p.attempted for p in producers)
        self.refused_locally = sum(p.refused_locally for p in producers)  # never sent
        self.acks = [a for p in producers for a in p.acks]  # (value, partition, offset, time)
        self.failed = {}  # error name -> count
        self.client_errors = {}  # "<client> <error name>" -> count
        for client in producers + consumers:
            for table, mine in ((self.failed, getattr(client, "failed", {})), (self.client_errors, client.errors)):
                for name, n in mine.items():
                    table[name] = table.get(name, 0) + n
        self.unresolved = sum(p.unresolved for p in producers)
        self.producer_restarts = sum(p.restarts for p in producers)
        self.polls = [x for c in consumers for x in c.polls]  # (consumer, generation, p, o, value)
        self.polls_by_consumer = {c.consumer_name: len(c.polls) for c in consumers}


class ProducerThread(threading.Thread):
    """Produces `rate` unique records per second ("p1-000123", key = value) round robin over
    every partition, with acks=all and idempotence, and records every delivery report."""

    def __init__(self, name, bootstrap, partitions, rate, stop, message_timeout_ms=MESSAGE_TIMEOUT_MS):
        super().__init__(name=name, daemon=True)
        self.message_timeout_ms = message_timeout_ms
        self.prefix = name
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.interval = 1.0 / rate
        self.stop = stop
        # This thread's record; read by History once the thread has stopped.
        self.attempted = 0
        self.refused_locally = 0
        self.acks = []
        self.failed = {}
        self.errors = {}
        self.restarts = 0
        self.seq = 0
        self.unresolved = 0
        self.fatal = False

    def _producer(self):
        return Producer(
            conf(
                self.bootstrap,
                acks="all",
                **{
                    "enable.idempotence": True,
                    "message.timeout.ms": self.message_timeout_ms,
                    "linger.ms": 5,
                    # Idempotence state changes (PID, drains, epoch bumps and why) go to the
                    # clients' log: they explain any duplicates the run finds.
                    "debug": "eos",
                    "error_cb": self._on_error,
                },
            )
        )

    def _on_error(self, err):
        bump(self.errors, f"{self.prefix} {err.name()}")
        if err.fatal():
            self.fatal = True

    def _delivered(self, err, msg):
        if err is not None:
            bump(self.failed, err.name())
            return
        self.acks.append((msg.value().decode(), msg.partition(), msg.offset(), time.time()))

    def _serve(self, producer, timeout):
        """poll (timeout 0) or flush (else) `producer`, which raises a fatal error it hit (say,
        UNKNOWN_PRODUCER_ID: its sequence numbers no longer match the broker's after data
        loss) instead of only reporting it; returns how many records are still queued."""
        try:
            if timeout == 0:
                producer.poll(0)
                return len(producer)
            return producer.flush(timeout)
        except KafkaException as e:
            bump(self.errors, f"{self.prefix} raised {e.args[0].name()}")
            if e.args[0].fatal():
                self.fatal = True
            return len(producer)

    def _retire(self, producer):
        """Ends `producer`. A healthy one gets FLUSH_TIMEOUT_S to deliver its queue; what it
        could not deliver counts as unresolved (not acked, maybe written: neither lost nor
        failed). A fatal one delivers nothing more: its queue is purged at once (reported as
        failed), so the thread is back to producing without a long stall."""
        if not self.fatal:
            self.unresolved += self._serve(producer, FLUSH_TIMEOUT_S)
            if not self.fatal:
                return
        try:
            producer.purge()
            producer.poll(0)
        except KafkaException:
            pass
        self.unresolved += len(producer)

    def run(self):
        producer = self._producer()
        next_at = time.time()
        while not self.stop.is_set():
            if self.fatal:
                # A fatal error ends an idempotent producer; start a new one, as an
                # application would, and keep the run going.
                self._retire(producer)
                producer = self._producer()
                self.fatal = False
                self.restarts += 1
            value = f"{self.prefix}-{self.seq:06d}"
            partition = self.seq % self.partitions
            try:
                producer.produce(
                    TOPIC, value=value.encode(), key=value.encode(), partition=partition, on_delivery=self._delivered
                )
                self.attempted += 1
            except BufferError:
                self.refused_locally += 1
            except KafkaException as e:
                # The producer is in a fatal state (reported to error_cb too, maybe later):
                # this record was never sent; the next turn of the loop replaces the producer.
                self.refused_locally += 1
                bump(self.errors, f"{self.prefix} produce() {e.args[0].name()}")
                if e.args[0].fatal():
                    self.fatal = True
            self.seq += 1
            self._serve(producer, 0)
            next_at += self.interval
            delay = next_at - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.time()
        self._retire(producer)


class ConsumerThread(threading.Thread):
    """Polls the topic for the whole run and logs every record with its assignment generation.
    `group`: subscribe in a consumer group with auto commit; else assign every partition from
    the beginning."""

    def __init__(self, name, bootstrap, partitions, stop, group=None):
        super().__init__(name=name, daemon=True)
        self.consumer_name = name
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.stop = stop
        # This thread's record; read by History once the thread has stopped.
        self.polls = []
        self.errors = {}
        self.group = group
        self.generation = 0

    def _on_assign(self, consumer, partitions):
        self.generation += 1

    def _on_revoke(self, consumer, partitions):
        self.generation += 1

    def run(self):
        settings = {
            "group.id": self.group or f"{self.consumer_name}-unused",
            "enable.auto.commit": bool(self.group),
            "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "error_cb": lambda err: bump(self.errors, f"{self.consumer_name} {err.name()}"),
        }
        consumer = Consumer(conf(self.bootstrap, **settings))
        if self.group:
            consumer.subscribe([TOPIC], on_assign=self._on_assign, on_revoke=self._on_revoke)
        else:
            consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        while not self.stop.is_set():
            msg = consumer.poll(POLL_S)
            if msg is None:
                continue
            if msg.error():
                bump(self.errors, f"{self.consumer_name} {msg.error().name()}")
                continue
            record = (msg.partition(), msg.offset(), msg.value().decode())
            self.polls.append((self.consumer_name, self.generation) + record)
        try:
            consumer.close()
        except KafkaException:
            pass


def final_read(bootstrap, partitions, group):
    """Reads every partition from the beginning to its high watermark with a fresh consumer.
    Returns ({(p, o): value}, {p: high watermark}, notes)."""
    consumer = Consumer(
        conf(
            bootstrap,
            **{
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_uncommitted",
            },
        )
    )
    notes = []
    highs = {}
    deadline = time.time() + FINAL_READ_TIMEOUT_S
    for p in range(partitions):
        while True:
            try:
                _low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=CALL_TIMEOUT_S)
                highs[p] = high
                break
            except KafkaException as e:
                if time.time() > deadline:
                    raise RuntimeError(f"no high watermark for partition {p}: {e}")
                time.sleep(0.5)
    records = {}
    last = {p: -1 for p in range(partitions)}
    pending = {p for p in range(partitions) if highs[p] > 0}
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(partitions)])
    while pending and time.time() < deadline:
        msg = consumer.poll(POLL_S)
        if msg is None or msg.error():
            continue
        p, o = msg.partition(), msg.offset()
        records[(p, o)] = msg.value().decode()
        last[p] = max(last[p], o)
        if last[p] + 1 >= highs[p]:
            pending.discard(p)
    if pending:
        notes.append(f"final read timed out short of the high watermark on partitions {sorted(pending)}")
    consumer.close()
    # Records past the high watermark taken at the start are not part of this read.
    records = {(p, o): v for (p, o), v in records.items() if o < highs[p]}
    return records, highs, notes
