"""Kafka client compatibility scenarios, run against a live Sluice broker.

Each scenario drives real third-party clients -- confluent-kafka (librdkafka), kafka-python and
Debian's kcat (librdkafka 2.0.2) -- asserts what a Kafka user would expect, and prints
"PASS <scenario>" on success; a failure prints one line, "FAIL <scenario>: <what>", after the
trace. Run by tests/it/kafka_client_compat.rs, one scenario per test:

    python compat.py --bootstrap 127.0.0.1:PORT SCENARIO

The clients are at their current releases (tests/requirements.txt) with their default settings,
unless a scenario says why not: so kafka-python 3.x produces as an idempotent producer
(acks=all), and librdkafka as a plain one (its enable.idempotence defaults to false).
"""

import argparse
import json
import subprocess
import sys
import time
import traceback
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
import kafka
from kafka.errors import KafkaError as PyKafkaError

TIMEOUT = 60


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap, name, partitions=1, config=None):
    client = admin(bootstrap)  # must outlive the futures
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
    )
    for _, future in futures.items():
        future.result(timeout=TIMEOUT)
    wait_known_everywhere(client, name, partitions)
    del client


def wait_known_everywhere(client, name, partitions):
    """Waits until every broker serves `name` with a leader for each partition. In a cluster, as
    in Kafka, CreateTopics returns once the controller committed the topic and the other brokers
    learn it a moment later; a producer that is not idempotent (librdkafka's default) may have its
    first batch refused by a leader that has not learnt it yet, retry it, and land it after the
    second. The scenarios check record order, so they start once everyone knows the topic."""
    deadline = time.time() + TIMEOUT
    for broker in client.list_topics(timeout=TIMEOUT).brokers.values():
        one = AdminClient({"bootstrap.servers": f"{broker.host}:{broker.port}"})
        while True:
            topic = one.list_topics(name, timeout=TIMEOUT).topics.get(name)
            if topic is not None and topic.error is None and len(topic.partitions) == partitions and all(
                p.leader >= 0 for p in topic.partitions.values()
            ):
                break
            assert time.time() < deadline, f"broker {broker.id} does not know topic {name}: {topic}"
            time.sleep(0.05)


def records_equal(a, b, what):
    assert len(a) == len(b), f"{what}: {len(a)} records vs {len(b)}"
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == y, f"{what}: record {i} differs:\n  {x}\n  {y}"


# --- confluent-kafka -----------------------------------------------------------------------

def ck_produce(bootstrap, topic, records, **conf):
    """records: dicts with key, value, partition, headers (list of (str, bytes)), timestamp.
    Returns the delivered records with their offsets, in delivery order per partition."""
    producer = Producer({"bootstrap.servers": bootstrap, **conf})
    delivered, errors = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered.append(msg_to_dict(msg))

    for r in records:
        kwargs = {"key": r.get("key"), "value": r.get("value"), "on_delivery": on_delivery}
        if r.get("partition") is not None:
            kwargs["partition"] = r["partition"]
        if r.get("headers"):
            kwargs["headers"] = r["headers"]
        if r.get("timestamp"):
            kwargs["timestamp"] = r["timestamp"]
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(TIMEOUT)
    assert left == 0, f"{left} records not delivered"
    assert not errors, f"delivery errors: {errors[:5]}"
    return delivered


def msg_to_dict(msg):
    headers = msg.headers()
    return {
        "partition": msg.partition(),
        "offset": msg.offset(),
        "key": msg.key(),
        "value": msg.value(),
        "headers": [(k, v) for k, v in headers] if headers else [],
        "timestamp": msg.timestamp()[1],
    }


def ck_consume(bootstrap, topic, partitions, count, start=None, **conf):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("g"),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            **conf,
        }
    )
    offset = start if start is not None else -2  # OFFSET_BEGINNING
    consumer.assign([TopicPartition(topic, p, offset) for p in partitions])
    out = []
    deadline = time.time() + TIMEOUT
    while len(out) < count and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        out.append(msg_to_dict(msg))
    consumer.close()
    assert len(out) == count, f"consumed {len(out)} of {count}"
    return out


# --- kafka-python --------------------------------------------------------------------------

def kp_produce(bootstrap, topic, records, **conf):
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, **conf)
    futures = []
    for r in records:
        futures.append(
            (
                r,
                producer.send(
                    topic,
                    key=r.get("key"),
                    value=r.get("value"),
                    partition=r.get("partition"),
                    headers=r.get("headers") or None,
                    timestamp_ms=r.get("timestamp"),
                ),
            )
        )
    producer.flush(TIMEOUT)
    delivered = []
    for r, f in futures:
        md = f.get(timeout=TIMEOUT)
        delivered.append(dict(r, partition=md.partition, offset=md.offset))
    producer.close()
    return delivered


def kp_consume(bootstrap, topic, partitions, count, start=None):
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=TIMEOUT * 1000,
    )
    tps = [kafka.TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    for tp in tps:
        if start is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, start)
    out = []
    for msg in consumer:
        out.append(
            {
                "partition": msg.partition,
                "offset": msg.offset,
                "key": msg.key,
                "value": msg.value,
                "headers": [(k, v) for k, v in msg.headers] if msg.headers else [],
                "timestamp": msg.timestamp,
            }
        )
        if len(out) >= count:
            break
    consumer.close()
    assert len(out) == count, f"kafka-python consumed {len(out)} of {count}"
    return out


# --- kcat ------------------------------------------------------------------------------------

def kcat(bootstrap, *args, stdin=None):
    result = subprocess.run(
        ["kcat", "-b", bootstrap, *args], input=stdin, capture_output=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, f"kcat {args} failed: {result.stderr.decode(errors='replace')}"
    return result.stdout


# --- scenarios -------------------------------------------------------------------------------

def sample_records(n, partition=0):
    base = int(time.time() * 1000) - 10_000
    records = []
    for i in range(n):
        records.append(
            {
                "partition": partition,
                "key": None if i % 7 == 3 else f"key-{i}".encode() + bytes([0, 255, i % 256]),
                "value": None if i % 11 == 5 and i % 7 != 3 else (f"value-{i}-".encode() + bytes(range(256)) * (i % 3)),
                "headers": [("h1", f"v{i}".encode()), ("bin", bytes([0, 1, 2, i % 256]))] if i % 2 else [],
                "timestamp": base + i,
            }
        )
    return records


def strip(records):
    return [{k: r[k] for k in ("partition", "offset", "key", "value", "headers", "timestamp")} for r in records]


def scenario_roundtrip_confluent(b):
    topic = unique("rt")
    create_topic(b, topic)
    sent = sample_records(200)
    delivered = ck_produce(b, topic, sent, acks="all")
    assert [d["offset"] for d in delivered] == list(range(200)), "offsets are dense from 0"
    got = ck_consume(b, topic, [0], 200)
    expected = [dict(r, offset=i) for i, r in enumerate(sent)]
    records_equal(strip(got), strip(expected), "confluent -> confluent")


def scenario_cross_client(b):
    topic = unique("cross")
    create_topic(b, topic, partitions=2)
    sent = sample_records(50, partition=0)
    ck_produce(b, topic, sent)
    got = kp_consume(b, topic, [0], 50)
    expected = [dict(r, offset=i) for i, r in enumerate(sent)]
    records_equal(strip(got), strip(expected), "confluent -> kafka-python")

    sent = sample_records(50, partition=1)
    delivered = kp_produce(b, topic, sent)
    assert [d["offset"] for d in delivered] == list(range(50))
    got = ck_consume(b, topic, [1], 50)
    expected = [dict(r, offset=i) for i, r in enumerate(sent)]
    records_equal(strip(got), strip(expected), "kafka-python -> confluent")


def scenario_kcat(b):
    topic = unique("kcat")
    create_topic(b, topic)
    lines = "".join(f"k{i}:v{i}\n" for i in range(20)).encode()
    kcat(b, "-P", "-t", topic, "-p", "0", "-K:", "-H", "origin=kcat", stdin=lines)
    got = ck_consume(b, topic, [0], 20)
    assert [(r["key"], r["value"]) for r in got] == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(20)]
    assert all(r["headers"] == [("origin", b"kcat")] for r in got)
    ck_produce(b, topic, [{"partition": 0, "key": b"ck", "value": b"from-confluent", "headers": [("x", b"y")]}])
    out = kcat(b, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o|%k|%s|%h\n").decode()
    rows = [line.split("|") for line in out.strip().split("\n")]
    assert len(rows) == 21, out
    assert rows[0] == ["0", "k0", "v0", "origin=kcat"], rows[0]
    assert rows[20] == ["20", "ck", "from-confluent", "x=y"], rows[20]
    meta = kcat(b, "-L", "-J").decode()
    assert topic in meta, meta


def scenario_compression(b):
    for codec in ["gzip", "snappy", "lz4", "zstd"]:
        topic = unique(f"z-{codec}")
        create_topic(b, topic)
        sent = [dict(r, value=(r["value"] or b"") * 20) for r in sample_records(100)]
        ck_produce(b, topic, sent[:50], **{"compression.type": codec, "batch.num.messages": 10})
        kp_produce(b, topic, sent[50:], compression_type=codec)
        expected = [dict(r, offset=i) for i, r in enumerate(sent)]
        got = ck_consume(b, topic, [0], 100)
        records_equal(strip(got), strip(expected), f"{codec} via confluent")
        got = kp_consume(b, topic, [0], 100)
        records_equal(strip(got), strip(expected), f"{codec} via kafka-python")


def scenario_order_100k(b):
    topic = unique("order")
    partitions = 6
    create_topic(b, topic, partitions=partitions)
    n = 100_000
    producer = Producer({"bootstrap.servers": b})
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    for i in range(n):
        key = f"k{i % 997}".encode()
        while True:
            try:
                producer.produce(topic, key=key, value=str(i).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(TIMEOUT * 2) == 0
    assert not errors, errors[:5]
    consumer = Consumer({"bootstrap.servers": b, "group.id": unique("g"), "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    seen = {}
    last_per_key = {}
    count = 0
    deadline = time.time() + TIMEOUT * 2
    while count < n and time.time() < deadline:
        batch = consumer.consume(10_000, 0.5)
        for msg in batch:
            if msg.error():
                raise KafkaException(msg.error())
            value = int(msg.value())
            assert value not in seen, f"duplicate record {value}"
            seen[value] = (msg.partition(), msg.offset())
            key = msg.key()
            # Records of one key go to one partition, in the order they were produced.
            prev = last_per_key.get(key)
            assert prev is None or (prev[0] == msg.partition() and prev[1] < value), (key, prev, value)
            last_per_key[key] = (msg.partition(), value)
            count += 1
    consumer.close()
    assert count == n, f"consumed {count} of {n}"
    assert len(seen) == n


def scenario_connection_moves(b):
    """Each client's one producer connection writes to partition 0, then 1, then 0 and 1 again,
    in pipelined requests, while the broker (two cores, the partitions on different cores; the
    test checks the moves in its metrics) moves the connection to the core that leads the
    partition it writes. Every record arrives once and in order, whichever core served it, and
    the consumers, whose fetches move too, read them all."""
    topic = unique("moves")
    create_topic(b, topic, partitions=2)
    phases = [0, 1, 0, 1]
    per_phase = 300
    kp = kafka.KafkaProducer(bootstrap_servers=b, linger_ms=0)
    ck = Producer({"bootstrap.servers": b, "linger.ms": 0})
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    sent = {("kp", 0): [], ("kp", 1): [], ("ck", 0): [], ("ck", 1): []}
    futures = []
    n = 0
    for partition in phases:
        for i in range(per_phase):
            value = f"kp-{n}".encode()
            futures.append(kp.send(topic, value=value, partition=partition))
            sent[("kp", partition)].append(value)
            value = f"ck-{n}".encode()
            ck.produce(topic, value=value, partition=partition, on_delivery=on_delivery)
            sent[("ck", partition)].append(value)
            n += 1
            # A few requests in flight at a time, many requests per phase.
            if i % 10 == 9:
                kp.flush(TIMEOUT)
                assert ck.flush(TIMEOUT) == 0
    kp.flush(TIMEOUT)
    for f in futures:
        f.get(timeout=TIMEOUT)
    kp.close()
    assert ck.flush(TIMEOUT) == 0
    assert not errors, errors[:5]
    for partition in (0, 1):
        count = len(sent[("kp", partition)]) + len(sent[("ck", partition)])
        for name, read in (("kafka-python", kp_consume), ("confluent-kafka", ck_consume)):
            got = [r["value"] for r in read(b, topic, [partition], count)]
            for client in ("kp", "ck"):
                mine = [v for v in got if v.startswith(client.encode() + b"-")]
                want = sent[(client, partition)]
                assert mine == want, (
                    f"{name} read {len(mine)} of {client}'s {len(want)} records of partition {partition}, "
                    f"first difference at {next((i for i, (x, y) in enumerate(zip(mine, want)) if x != y), None)}"
                )


def scenario_acks(b):
    """acks=0, 1 and all from both clients. Idempotence needs acks=all, so the acks=0/1 producers
    turn it off explicitly (librdkafka's default is off anyway; kafka-python 3.x's is on, and it
    would drop it with a warning)."""
    topic = unique("acks")
    create_topic(b, topic)
    total = 0
    for acks in ["0", "1", "all"]:
        conf = {"acks": acks} if acks == "all" else {"acks": acks, "enable.idempotence": False}
        ck_produce(b, topic, sample_records(30), **conf)
        total += 30
    for acks in [0, 1, "all"]:
        conf = {"acks": acks} if acks == "all" else {"acks": acks, "enable_idempotence": False}
        kp_produce(b, topic, sample_records(30), **conf)
        total += 30
    got = ck_consume(b, topic, [0], total)
    assert [r["offset"] for r in got] == list(range(total))


def scenario_list_offsets(b):
    topic = unique("times")
    create_topic(b, topic)
    base = int(time.time() * 1000) - 100_000
    sent = [{"partition": 0, "key": None, "value": str(i).encode(), "timestamp": base + 1000 * i} for i in range(50)]
    ck_produce(b, topic, sent, **{"batch.num.messages": 7})
    consumer = Consumer({"bootstrap.servers": b, "group.id": unique("g")})
    for i, expect in [(0, 0), (10, 10), (25, 25), (49, 49)]:
        found = consumer.offsets_for_times([TopicPartition(topic, 0, base + 1000 * i - 500)], timeout=TIMEOUT)
        assert found[0].offset == expect, (i, found[0].offset)
    found = consumer.offsets_for_times([TopicPartition(topic, 0, base + 1000 * 60)], timeout=TIMEOUT)
    assert found[0].offset == -1, f"a time after every record gives -1 (end), got {found[0].offset}"
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
    assert (low, high) == (0, 50), (low, high)
    consumer.close()
    kp = kafka.KafkaConsumer(bootstrap_servers=b, group_id=None)
    tp = kafka.TopicPartition(topic, 0)
    found = kp.offsets_for_times({tp: base + 20_000})
    assert found[tp].offset == 20, found
    assert kp.beginning_offsets([tp])[tp] == 0
    assert kp.end_offsets([tp])[tp] == 50
    kp.close()


def scenario_replay(b):
    topic = unique("replay")
    create_topic(b, topic)
    sent = sample_records(300)
    ck_produce(b, topic, sent, **{"batch.num.messages": 13})
    for start in [0, 1, 137, 250, 299]:
        got = ck_consume(b, topic, [0], 300 - start, start=start)
        assert got[0]["offset"] == start, (start, got[0]["offset"])
        assert [r["offset"] for r in got] == list(range(start, 300))
        got = kp_consume(b, topic, [0], 300 - start, start=start)
        assert [r["offset"] for r in got] == list(range(start, 300))


def scenario_topic_admin_errors(b):
    client = admin(b)
    topic = unique("dup")
    create_topic(b, topic, partitions=3)
    try:
        create_topic(b, topic)
        raise AssertionError("duplicate topic was created")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, e
    for bad in ["bad/name", "a" * 250, "..", "spaces here"]:
        try:
            create_topic(b, bad)
            raise AssertionError(f"invalid name {bad!r} accepted")
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.TOPIC_EXCEPTION, (bad, e)
    try:
        create_topic(b, unique("zero"), partitions=0)
        raise AssertionError("zero partitions accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_PARTITIONS, e
    md = client.list_topics(timeout=TIMEOUT)
    assert len(md.topics[topic].partitions) == 3
    missing = unique("missing")
    md = client.list_topics(topic=missing, timeout=TIMEOUT)
    assert md.topics[missing].error is not None and md.topics[missing].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    # Deleting an unknown topic is refused; deleting a real one works.
    fs = client.delete_topics([missing], operation_timeout=10)
    try:
        fs[missing].result(timeout=TIMEOUT)
        raise AssertionError("deleting an unknown topic succeeded")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, e
    client.delete_topics([topic], operation_timeout=10)[topic].result(timeout=TIMEOUT)
    md = client.list_topics(timeout=TIMEOUT)
    assert topic not in md.topics
    # kafka-python's admin sees the same errors.
    kadmin = kafka.KafkaAdminClient(bootstrap_servers=b)
    name = unique("kp")
    kadmin.create_topics([kafka.admin.NewTopic(name, 2, 1)])
    try:
        kadmin.create_topics([kafka.admin.NewTopic(name, 2, 1)])
        raise AssertionError("duplicate accepted by kafka-python admin")
    except kafka.errors.TopicAlreadyExistsError:
        pass
    # The broker answering may learn the new topic a moment after the controller committed it
    # (as in a Kafka cluster), so look until it does.
    deadline = time.time() + TIMEOUT
    while name not in kadmin.list_topics():
        assert time.time() < deadline, f"{name} never listed"
        time.sleep(0.1)
    kadmin.close()


def scenario_configs(b):
    client = admin(b)
    topic = unique("cfg")
    create_topic(b, topic, config={"retention.ms": "3600000", "message.timestamp.type": "LogAppendTime"})
    from confluent_kafka.admin import ConfigResource

    res = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    configs = list(res.values())[0].result(timeout=TIMEOUT)
    assert configs["retention.ms"].value == "3600000", configs["retention.ms"]
    assert configs["message.timestamp.type"].value == "LogAppendTime"
    assert configs["segment.bytes"].value is not None
    # A broker that exists: "0" alone, or any node of a cluster.
    broker_id = str(min(client.list_topics(timeout=TIMEOUT).brokers))
    res = client.describe_configs([ConfigResource(ConfigResource.Type.BROKER, broker_id)])
    broker = list(res.values())[0].result(timeout=TIMEOUT)
    assert len(broker) > 5, broker
    # LogAppendTime: the broker's clock, not the producer's, stamps the records.
    before = int(time.time() * 1000)
    ck_produce(b, topic, [{"partition": 0, "key": b"k", "value": b"v", "timestamp": 1000}])
    got = ck_consume(b, topic, [0], 1)
    assert got[0]["timestamp"] >= before - 1000, got
    try:
        create_topic(b, unique("badcfg"), config={"retention.ms": "soon"})
        raise AssertionError("bad config accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_CONFIG, e


def scenario_incremental_alter_configs(b):
    """IncrementalAlterConfigs (KIP-339) through librdkafka: SET and DELETE on a topic, seen by
    DescribeConfigs with their sources; a bad value and an unknown topic are refused."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    client = admin(b)
    topic = unique("iac")
    create_topic(b, topic, config={"retention.ms": "3600000"})

    def alter(name, entries):
        resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
        for _, future in client.incremental_alter_configs([resource]).items():
            future.result(timeout=TIMEOUT)

    def describe():
        res = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
        return list(res.values())[0].result(timeout=TIMEOUT)

    alter(topic, [
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    configs = describe()
    assert configs["segment.bytes"].value == "1048576", configs["segment.bytes"]
    assert configs["segment.bytes"].source == ConfigSource_DYNAMIC_TOPIC, configs["segment.bytes"].source
    assert configs["retention.ms"].value == "604800000", configs["retention.ms"]
    assert configs["retention.ms"].source != ConfigSource_DYNAMIC_TOPIC
    for name, entry, code in [
        (topic, ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET), "INVALID_CONFIG"),
        (unique("nope"), ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET),
         "UNKNOWN_TOPIC_OR_PART"),
    ]:
        try:
            alter(name, [entry])
            raise AssertionError(f"{entry} on {name} accepted")
        except KafkaException as e:
            assert e.args[0].name() == code, e


ConfigSource_DYNAMIC_TOPIC = 1
ConfigSource_DYNAMIC_BROKER = 2
ConfigSource_DYNAMIC_DEFAULT_BROKER = 3
ConfigSource_DEFAULT = 5


def scenario_broker_config(b, topic, phase):
    """IncrementalAlterConfigs on this broker ("set"), then, after a restart ("check"), the
    dynamic config is still there (a metadata record) and still under the topic's values."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    client = admin(b)
    broker_id = str(min(client.list_topics(timeout=TIMEOUT).brokers))
    if phase == "set":
        create_topic(b, topic)
        entry = ConfigEntry("log.segment.bytes", "2097152", incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource(ConfigResource.Type.BROKER, broker_id, incremental_configs=[entry])
        for _, future in client.incremental_alter_configs([resource]).items():
            future.result(timeout=TIMEOUT)
    res = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)], request_timeout=TIMEOUT)
    segment = list(res.values())[0].result(timeout=TIMEOUT)["segment.bytes"]
    assert segment.value == "2097152" and segment.source == ConfigSource_DYNAMIC_BROKER, segment


def scenario_cluster_broker_configs(b):
    """In a cluster: a cluster-wide dynamic config (BROKER "", through kafka-python's protocol
    layer, as neither client's alter_configs names it) reaches every broker; one broker's own
    (BROKER <id>, through confluent-kafka, sent to that broker) stays its own."""
    from confluent_kafka.admin import ConfigResource
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.admin import AlterConfigsRequest

    client = admin(b)
    ids = sorted(client.list_topics(timeout=TIMEOUT).brokers)
    assert len(ids) >= 2, ids
    kp = KafkaAdminClient(bootstrap_servers=b)
    try:
        request = AlterConfigsRequest(
            resources=[(4, "", [("log.cleaner.min.cleanable.ratio", "0.3")])], validate_only=False)

        async def send():
            return await kp._manager.send(request)

        response = kp._manager.run(send)
        assert [r.error_code for r in response.responses] == [0], response
    finally:
        kp.close()
    alter = ConfigResource(ConfigResource.Type.BROKER, str(ids[-1]), set_config={"log.retention.ms": "7200000"})
    for _, future in client.alter_configs([alter]).items():
        future.result(timeout=TIMEOUT)

    def broker_config(node, name):
        res = client.describe_configs([ConfigResource(ConfigResource.Type.BROKER, str(node))],
                                      request_timeout=TIMEOUT)
        return list(res.values())[0].result(timeout=TIMEOUT)[name]

    # Metadata is eventually consistent between brokers, as in Kafka: each learns within ticks.
    deadline = time.time() + TIMEOUT
    for node in ids:
        while True:
            ratio = broker_config(node, "log.cleaner.min.cleanable.ratio")
            retention = broker_config(node, "log.retention.ms")
            own = node == ids[-1]
            if (ratio.value == "0.3" and ratio.source == ConfigSource_DYNAMIC_DEFAULT_BROKER
                    and (retention.source == ConfigSource_DYNAMIC_BROKER) == own):
                break
            assert time.time() < deadline, f"broker {node}: {ratio} {retention}"
            time.sleep(0.2)
        if own:
            assert retention.value == "7200000", retention
        else:
            assert retention.value == "604800000", retention


def scenario_alter_configs(b):
    """AlterConfigs (API 33, replace-all) from confluent-kafka and kafka-python, on a topic and on
    the broker (its own id, and "" for the cluster-wide default through kafka-python's protocol
    layer), checked with DescribeConfigs (sources and synonyms); a compacted topic created with
    min.cleanable.dirty.ratio=0.01; a record older than message.timestamp.before.max.ms refused."""
    from confluent_kafka.admin import ConfigResource
    from kafka.admin import ConfigResource as KpResource, ConfigResourceType, KafkaAdminClient

    client = admin(b)
    broker_id = str(min(client.list_topics(timeout=TIMEOUT).brokers))
    topic = unique("ac")
    create_topic(b, topic, config={
        "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01",
        "message.timestamp.before.max.ms": "3600000", "retention.ms": "3600000",
    })

    def describe(kind, name):
        res = client.describe_configs([ConfigResource(kind, name)], request_timeout=TIMEOUT)
        return list(res.values())[0].result(timeout=TIMEOUT)

    def alter(resource):
        for _, future in client.alter_configs([resource]).items():
            future.result(timeout=TIMEOUT)

    configs = describe(ConfigResource.Type.TOPIC, topic)
    assert configs["min.cleanable.dirty.ratio"].value == "0.01", configs["min.cleanable.dirty.ratio"]
    assert configs["cleanup.policy"].value == "compact", configs["cleanup.policy"]
    assert configs["segment.jitter.ms"].source == ConfigSource_DEFAULT, configs["segment.jitter.ms"]
    assert len(configs) >= 33, sorted(configs)

    # A record an hour and a minute old is refused, a fresh one taken.
    old = int(time.time() * 1000) - 3_660_000
    refused = None
    try:
        ck_produce(b, topic, [{"partition": 0, "key": b"k", "value": b"old", "timestamp": old}])
    except AssertionError as e:
        refused = str(e)
    assert refused and "INVALID_TIMESTAMP" in refused, f"a too old record: {refused}"
    ck_produce(b, topic, [{"partition": 0, "key": b"k", "value": b"new"}])

    # confluent-kafka: replace the topic's overrides; what is not given goes back to its default.
    alter(ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"segment.bytes": "1048576"}))
    configs = describe(ConfigResource.Type.TOPIC, topic)
    assert configs["segment.bytes"].value == "1048576", configs["segment.bytes"]
    assert configs["segment.bytes"].source == ConfigSource_DYNAMIC_TOPIC, configs["segment.bytes"]
    assert configs["cleanup.policy"].value == "delete", configs["cleanup.policy"]
    assert configs["min.cleanable.dirty.ratio"].source == ConfigSource_DEFAULT, configs["min.cleanable.dirty.ratio"]
    for resource, code in [
        (ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"min.cleanable.dirty.ratio": "2"}),
         "INVALID_CONFIG"),
        (ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"no.such.config": "1"}), "INVALID_CONFIG"),
        (ConfigResource(ConfigResource.Type.TOPIC, unique("nope"), set_config={"retention.ms": "1"}),
         "UNKNOWN_TOPIC_OR_PART"),
        (ConfigResource(ConfigResource.Type.BROKER, broker_id, set_config={"log.dirs": "/tmp"}), "INVALID_REQUEST"),
    ]:
        try:
            alter(resource)
            raise AssertionError(f"{resource} accepted")
        except KafkaException as e:
            assert e.args[0].name() == code, e

    # confluent-kafka: this broker's own dynamic config, with its synonyms.
    alter(ConfigResource(ConfigResource.Type.BROKER, broker_id, set_config={"log.retention.ms": "7200000"}))
    broker = describe(ConfigResource.Type.BROKER, broker_id)
    retention = broker["log.retention.ms"]
    assert retention.value == "7200000" and retention.source == ConfigSource_DYNAMIC_BROKER, retention
    assert [s.name for s in retention.synonyms.values()][:1] == ["log.retention.ms"], retention.synonyms
    assert broker["log.dirs"].is_read_only, broker["log.dirs"]
    configs = describe(ConfigResource.Type.TOPIC, topic)
    assert configs["retention.ms"].value == "7200000", configs["retention.ms"]
    assert configs["retention.ms"].source == ConfigSource_DYNAMIC_BROKER, configs["retention.ms"]

    # kafka-python: AlterConfigs (forced, not the incremental one) on the topic and the broker.
    kp = KafkaAdminClient(bootstrap_servers=b)
    try:
        result = kp.alter_configs(
            [KpResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "60000"}),
             KpResource(ConfigResourceType.BROKER, broker_id, configs={"log.segment.bytes": "2097152"})],
            incremental=False, raise_on_unknown=False)
        assert result == {"topic": {topic: "OK"}, "broker": {broker_id: "OK"}}, result
        described = kp.describe_configs(
            [KpResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True, config_filter="all")
        topic_configs = described["topic"][topic]
        assert topic_configs["retention.ms"]["value"] == "60000", topic_configs["retention.ms"]
        segment = topic_configs["segment.bytes"]
        # The override kafka-python carried over (it re-sends the modified keys), then the broker's.
        synonyms = [(s["name"], s["source"]) for s in segment["synonyms"]]
        assert synonyms[:2] == [("segment.bytes", "DYNAMIC_TOPIC_CONFIG"), ("log.segment.bytes", "DYNAMIC_BROKER_CONFIG")], synonyms
        assert synonyms[-1] == ("log.segment.bytes", "DEFAULT_CONFIG"), synonyms
        # The cluster-wide default (BROKER ""), which neither client's alter_configs will name:
        # kafka-python's protocol layer sends it.
        from kafka.protocol.admin import AlterConfigsRequest
        request = AlterConfigsRequest(
            resources=[(ConfigResourceType.BROKER, "", [("log.cleaner.min.cleanable.ratio", "0.2"),
                                                        ("log.cleaner.backoff.ms", "1000")])],
            validate_only=False)

        async def send():
            return await kp._manager.send(request)

        response = kp._manager.run(send)
        assert [r.error_code for r in response.responses] == [0], response
        from kafka.protocol.admin import DescribeConfigsRequest
        request = DescribeConfigsRequest(resources=[(ConfigResourceType.BROKER, "", None)], include_synonyms=True)
        response = kp._manager.run(send)
        defaults = {c.name: c for c in response.results[0].configs}
    finally:
        kp.close()
    # BROKER "" describes only the cluster-wide dynamic configs, as Kafka does.
    assert sorted(defaults) == ["log.cleaner.backoff.ms", "log.cleaner.min.cleanable.ratio"], sorted(defaults)
    ratio = defaults["log.cleaner.min.cleanable.ratio"]
    assert ratio.value == "0.2" and ratio.config_source == ConfigSource_DYNAMIC_DEFAULT_BROKER, ratio
    configs = describe(ConfigResource.Type.TOPIC, topic)
    ratio = configs["min.cleanable.dirty.ratio"]
    assert ratio.value == "0.2" and ratio.source == ConfigSource_DYNAMIC_DEFAULT_BROKER, ratio

    # Replacing a broker's set with nothing removes its dynamic configs.
    alter(ConfigResource(ConfigResource.Type.BROKER, broker_id, set_config={}))
    configs = describe(ConfigResource.Type.TOPIC, topic)
    assert configs["retention.ms"].value == "60000", configs["retention.ms"]
    assert configs["segment.bytes"].source == ConfigSource_DYNAMIC_TOPIC, configs["segment.bytes"]


def scenario_unknown_topic_produce(b):
    producer = Producer({"bootstrap.servers": b, "message.timeout.ms": 3000})
    errors = []
    producer.produce(unique("nope"), value=b"x", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None, errors
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._MSG_TIMED_OUT, KafkaError._UNKNOWN_TOPIC), errors


def scenario_large_batches(b):
    topic = unique("big")
    create_topic(b, topic, partitions=2)
    value = bytes(range(256)) * 3000  # 768 KB
    sent = [{"partition": i % 2, "key": str(i).encode(), "value": value} for i in range(20)]
    ck_produce(b, topic, sent, **{"message.max.bytes": 1_000_000})
    got = ck_consume(b, topic, [0, 1], 20, **{"fetch.max.bytes": 1_200_000, "max.partition.fetch.bytes": 1_000_000})
    assert all(r["value"] == value for r in got)
    try:
        Producer({"bootstrap.servers": b})
        too_big = bytes(2_000_000)
        errs = []
        p = Producer({"bootstrap.servers": b, "message.max.bytes": 3_000_000})
        p.produce(topic, value=too_big, partition=0, on_delivery=lambda err, msg: errs.append(err))
        p.flush(TIMEOUT)
        assert errs and errs[0] is not None and errs[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errs
    except KafkaException as e:
        raise AssertionError(f"unexpected: {e}")


def scenario_long_poll(b):
    """A consumer whose fetches may wait 30 s gets a record produced while it waits as soon as
    it is appended: the broker's long poll wakes on the append, not on the timer."""
    import threading

    topic = unique("poll")
    create_topic(b, topic)
    consumer = Consumer(
        {
            "bootstrap.servers": b,
            "group.id": unique("g"),
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 30_000,
            "fetch.min.bytes": 1,
        }
    )
    consumer.assign([TopicPartition(topic, 0, -2)])
    assert consumer.poll(1.0) is None, "nothing to read yet"
    timer = threading.Timer(1.0, lambda: ck_produce(b, topic, [{"partition": 0, "key": b"k", "value": b"late"}]))
    timer.start()
    started = time.time()
    msg = None
    while msg is None and time.time() - started < 20:
        msg = consumer.poll(0.5)
    timer.join()
    assert msg is not None and not msg.error() and msg.value() == b"late", msg
    # A 30 s fetch wait that ended within 20 s of the produce: the append woke it.
    consumer.close()


def produce_until_killed(b, topic, out_path):
    """Produce with acks=all forever, appending 'partition offset key' for every acknowledged
    record to out_path (flushed each time); the test kills the broker meanwhile."""
    producer = Producer(
        {"bootstrap.servers": b, "acks": "all", "linger.ms": 2, "message.timeout.ms": 5000, "retries": 0}
    )
    last_ack = [time.time()]
    with open(out_path, "w") as out:

        def on_delivery(err, msg):
            if err is None:
                out.write(f"{msg.partition()} {msg.offset()} {msg.key().decode()}\n")
                out.flush()
                last_ack[0] = time.time()

        i = 0
        deadline = time.time() + TIMEOUT
        # Stop once the broker has been gone (no acknowledgement) for a few seconds.
        while time.time() < deadline and time.time() - last_ack[0] < 4:
            try:
                producer.produce(topic, key=f"r{i}".encode(), value=f"v{i}".encode() * 10, on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            producer.poll(0.001)
        producer.flush(5)


def dump_topic(b, topic, partitions):
    """Print every record as 'partition offset key'."""
    consumer = Consumer({"bootstrap.servers": b, "group.id": unique("g"), "enable.auto.commit": False})
    lows = {}
    highs = {}
    for p in range(partitions):
        lows[p], highs[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    want = sum(highs[p] - lows[p] for p in range(partitions))
    got = 0
    deadline = time.time() + TIMEOUT
    while got < want and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        print(f"{msg.partition()} {msg.offset()} {msg.key().decode()}")
        got += 1
    consumer.close()
    assert got == want, f"dumped {got} of {want}"


# --- the native Rust client (tests/it/client.rs) ---------------------------------------------

def native_records(n):
    """The records the native-client tests produce and expect: record i of tests/it/client.rs
    `native_record`. Null keys, null values (never both: kafka-python refuses that), headers on
    odd records, values that compress."""
    base = 1_700_000_000_000
    records = []
    for i in range(n):
        null_key = i % 13 == 5
        records.append(
            {
                "partition": 0,
                "key": None if null_key else f"key-{i}".encode(),
                "value": None if i % 17 == 3 and not null_key else f"value-{i}-".encode() * (1 + i % 7),
                "headers": [("i", str(i).encode())] if i % 2 else [],
                "timestamp": base + i,
            }
        )
    return records


def native_consume(b, topic, count):
    """Both Python clients read what the native producer wrote to partition 0 of `topic`."""
    expected = [dict(r, offset=i) for i, r in enumerate(native_records(count))]
    records_equal(strip(ck_consume(b, topic, [0], count)), strip(expected), "native -> confluent")
    records_equal(strip(kp_consume(b, topic, [0], count)), strip(expected), "native -> kafka-python")
    # kcat: Debian's older librdkafka. Null keys and values print as empty strings.
    out = kcat(b, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o|%k|%s\n").decode()
    rows = out.split("\n")[:-1]
    want = [f"{r['offset']}|{(r['key'] or b'').decode()}|{(r['value'] or b'').decode()}" for r in expected]
    assert rows == want, f"native -> kcat: {len(rows)} rows, first difference: " + next(
        (f"{x!r} vs {y!r}" for x, y in zip(rows, want) if x != y), "none (length)"
    )


def native_produce(b, topic, codec, count):
    """The first half of the native records via confluent-kafka, the rest via kafka-python, both
    compressed with `codec`, to partition 0 of `topic` (created here)."""
    create_topic(b, topic)
    records = native_records(count)
    half = count // 2
    ck_produce(b, topic, records[:half], **{"compression.type": codec, "batch.num.messages": 25})
    kp_produce(b, topic, records[half:], compression_type=codec, batch_size=4096)


# --- consumer groups -------------------------------------------------------------------------

import threading


def group_consumer(b, group, **conf):
    return Consumer(
        {
            "bootstrap.servers": b,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            **conf,
        }
    )


def produce_numbered(b, topic, n, partitions):
    ck_produce(b, topic, [{"key": str(i).encode(), "value": str(i).encode(), "partition": i % partitions}
                          for i in range(n)])


def wait_assigned(consumers, timeout=TIMEOUT):
    """Polls every consumer until each has a non-empty assignment."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for c in consumers:
            c.poll(0.1)
        if all(c.assignment() for c in consumers):
            return
    raise AssertionError(f"assignments: {[c.assignment() for c in consumers]}")


def drain(consumers, want, seen, commit=True, timeout=TIMEOUT):
    """Polls the consumers round-robin until `want` records were seen in total; records are
    (consumer index, partition, offset, value); commits each message synchronously if asked."""
    deadline = time.time() + timeout
    while len(seen) < want and time.time() < deadline:
        for i, c in enumerate(consumers):
            msg = c.poll(0.1)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            seen.append((i, msg.partition(), msg.offset(), msg.value()))
            if commit:
                c.commit(message=msg, asynchronous=False)
    return seen


def scenario_group_split(b):
    """Two confluent consumers in one group split 6 partitions and together see each record once."""
    topic, group = unique("gs"), unique("g")
    create_topic(b, topic, partitions=6)
    consumers = [group_consumer(b, group) for _ in range(2)]
    for c in consumers:
        c.subscribe([topic])
    wait_assigned(consumers)
    parts = [set(tp.partition for tp in c.assignment()) for c in consumers]
    assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == set(range(6)), parts
    assert len(parts[0]) == 3 and len(parts[1]) == 3, parts
    produce_numbered(b, topic, 600, 6)
    seen = drain(consumers, 600, [], commit=False)
    values = sorted(int(v) for _, _, _, v in seen)
    assert values == list(range(600)), f"{len(values)} records, duplicates or gaps"
    for i, p, _, _ in seen:
        assert p in parts[i], f"consumer {i} read partition {p} outside its assignment {parts[i]}"
    for c in consumers:
        c.close()


def scenario_group_two_groups(b):
    """Two groups (confluent-kafka and kafka-python) each see every record."""
    topic = unique("g2")
    create_topic(b, topic, partitions=3)
    produce_numbered(b, topic, 300, 3)
    c = group_consumer(b, unique("ga"))
    c.subscribe([topic])
    seen = drain([c], 300, [], commit=False)
    c.close()
    assert sorted(int(v) for *_, v in seen) == list(range(300))
    k = kafka.KafkaConsumer(topic, bootstrap_servers=b, group_id=unique("gb"), auto_offset_reset="earliest",
                            enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500)
    got = []
    deadline = time.time() + TIMEOUT
    while len(got) < 300 and time.time() < deadline:
        for _, msgs in k.poll(500).items():
            got.extend(int(m.value) for m in msgs)
    k.close()
    assert sorted(got) == list(range(300)), f"kafka-python saw {len(got)}"


def scenario_group_resume(b):
    """A consumer commits part of the topic and closes; the next one (each client) resumes there."""
    topic, group = unique("gr"), unique("g")
    create_topic(b, topic, partitions=1)
    produce_numbered(b, topic, 100, 1)
    c = group_consumer(b, group)
    c.subscribe([topic])
    seen = drain([c], 40, [], commit=True)
    c.close()
    assert [int(v) for *_, v in seen] == list(range(40))
    k = kafka.KafkaConsumer(topic, bootstrap_servers=b, group_id=group, auto_offset_reset="earliest",
                            enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500)
    got = []
    deadline = time.time() + TIMEOUT
    while len(got) < 30 and time.time() < deadline:
        for _, msgs in k.poll(500, max_records=30 - len(got)).items():
            got.extend(int(m.value) for m in msgs)
    assert got[:1] == [40], f"kafka-python resumed at {got[:1]}"
    k.commit({kafka.TopicPartition(topic, 0): kafka.structs.OffsetAndMetadata(40 + len(got), "", -1)})
    k.close()
    c = group_consumer(b, group)
    c.subscribe([topic])
    rest = drain([c], 100 - 40 - len(got), [], commit=False)
    c.close()
    assert [int(v) for *_, v in rest] == list(range(40 + len(got), 100))


def scenario_group_commit_before_crash(b, topic, group):
    """Commits offsets with metadata strings (the broker is SIGKILLed after this)."""
    create_topic(b, topic, partitions=3)
    c = group_consumer(b, group)
    offsets = [TopicPartition(topic, p, 10 * (p + 1), metadata=f"meta-{p}") for p in range(3)]
    c.commit(offsets=offsets, asynchronous=False)
    c.close()


def scenario_group_check_after_crash(b, topic, group):
    """After the restart, the committed offsets and metadata are back (both clients)."""
    c = group_consumer(b, group)
    got = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=TIMEOUT)
    c.close()
    assert [(tp.partition, tp.offset, tp.metadata) for tp in got] == \
        [(p, 10 * (p + 1), f"meta-{p}") for p in range(3)], got
    k = kafka.KafkaAdminClient(bootstrap_servers=b)
    offsets = k.list_group_offsets({group: None})[group]  # kafka-python 3.x (2.x: list_consumer_group_offsets)
    k.close()
    # confluent-kafka sends the metadata string with its C terminator (librdkafka counts the NUL),
    # and the broker keeps the bytes it was given, as Kafka does.
    assert {tp.partition: (o.offset, o.metadata.rstrip("\x00")) for tp, o in offsets.items()} == \
        {p: (10 * (p + 1), f"meta-{p}") for p in range(3)}, offsets


def scenario_group_rebalance_at_least_once(b):
    """Members join and leave while consuming with manual commits: every record is seen at least
    once, and the final commits cover the whole topic."""
    topic, group = unique("gj"), unique("g")
    create_topic(b, topic, partitions=4)
    produce_numbered(b, topic, 400, 4)
    a = group_consumer(b, group, **{"max.poll.interval.ms": 10000})
    a.subscribe([topic])
    seen = drain([a], 100, [], commit=True)
    bc = group_consumer(b, group)
    bc.subscribe([topic])
    seen = drain([a, bc], 250, seen, commit=True)
    a.close()
    seen = drain([bc], 10_000, seen, commit=True, timeout=8)
    values = set(int(v) for *_, v in seen)
    assert values == set(range(400)), f"missing {sorted(set(range(400)) - values)[:10]}"
    committed = bc.committed([TopicPartition(topic, p) for p in range(4)], timeout=TIMEOUT)
    assert [tp.offset for tp in committed] == [100] * 4, committed
    bc.close()


def scenario_group_cooperative_sticky(b):
    """Two confluent consumers with cooperative-sticky: incremental rebalances, a disjoint split,
    and every record seen."""
    topic, group = unique("gc"), unique("g")
    create_topic(b, topic, partitions=6)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    first = group_consumer(b, group, **conf)
    first.subscribe([topic])
    wait_assigned([first])
    second = group_consumer(b, group, **conf)
    second.subscribe([topic])
    consumers = [first, second]
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        for c in consumers:
            c.poll(0.1)
        parts = [set(tp.partition for tp in c.assignment()) for c in consumers]
        if len(parts[0]) == 3 and len(parts[1]) == 3:
            break
    assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == set(range(6)), parts
    produce_numbered(b, topic, 300, 6)
    seen = drain(consumers, 300, [], commit=True)
    assert sorted(int(v) for *_, v in seen) == list(range(300))
    for c in consumers:
        c.close()


def scenario_group_admin(b):
    """AdminClient list/describe groups and list offsets agree with what consumers did."""
    topic, group, idle = unique("gadm"), unique("g"), unique("idle")
    create_topic(b, topic, partitions=2)
    produce_numbered(b, topic, 20, 2)
    c = group_consumer(b, group, **{"client.id": "admin-test"})
    c.subscribe([topic])
    drain([c], 20, [], commit=True)
    simple = group_consumer(b, idle)
    simple.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    simple.close()
    client = admin(b)
    listed = client.list_consumer_groups().result(timeout=TIMEOUT)
    states = {g.group_id: str(g.state) for g in listed.valid}
    assert "STABLE" in states.get(group, ""), states
    assert "EMPTY" in states.get(idle, ""), states
    described = client.describe_consumer_groups([group])[group].result(timeout=TIMEOUT)
    assert len(described.members) == 1, described.members
    member = described.members[0]
    assert member.client_id == "admin-test", member.client_id
    assert sorted(tp.partition for tp in member.assignment.topic_partitions) == [0, 1]
    from confluent_kafka import ConsumerGroupTopicPartitions
    offsets = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=TIMEOUT)
    assert sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions) == [(0, 10), (1, 10)], offsets
    c.close()
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        d = client.describe_consumer_groups([group])[group].result(timeout=TIMEOUT)
        if not d.members:
            break
        time.sleep(0.2)
    assert "EMPTY" in str(d.state), d.state
    result = client.delete_consumer_groups([group, idle])
    for g, f in result.items():
        f.result(timeout=TIMEOUT)
    listed = client.list_consumer_groups().result(timeout=TIMEOUT)
    assert not {group, idle} & {g.group_id for g in listed.valid}, [g.group_id for g in listed.valid]


def scenario_replica_assignment(b):
    """On a cluster of brokers 1, 2 and 3: CreateTopics with replicas assigned by hand keeps them,
    the first of each list leading; an assignment naming an unknown broker is refused."""
    client = admin(b)
    topic = unique("assigned")
    layout = [[2, 1], [3, 2], [1, 3]]
    futures = client.create_topics([NewTopic(topic, num_partitions=len(layout), replica_assignment=layout)])
    for _, future in futures.items():
        future.result(timeout=TIMEOUT)
    deadline = time.time() + TIMEOUT
    while True:
        meta = client.list_topics(topic, timeout=TIMEOUT).topics[topic]
        if len(meta.partitions) == 3 or time.time() > deadline:
            break
        time.sleep(0.1)
    got = [list(meta.partitions[p].replicas) for p in range(3)]
    assert got == layout, got
    assert [meta.partitions[p].leader for p in range(3)] == [2, 3, 1], meta.partitions
    futures = client.create_topics([NewTopic(unique("badassign"), num_partitions=1, replica_assignment=[[9]])])
    try:
        for _, future in futures.items():
            future.result(timeout=TIMEOUT)
        raise AssertionError("an assignment to broker 9 was accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, e


# --- compaction ------------------------------------------------------------------------------

def ck_read_all(bootstrap, topic, partition=0):
    """Every record of one partition from its log start to its end, read with librdkafka."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("g"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, partition, -2)])
    out = []
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                break
            raise KafkaException(msg.error())
        out.append(msg_to_dict(msg))
    consumer.close()
    return out


def latest_per_key(delivered):
    latest = {}
    for r in delivered:
        latest[r["key"]] = r
    return sorted(latest.values(), key=lambda r: r["offset"])


def wait_compacted(b, topic, expected, what):
    """Waits until a full read returns exactly `expected` (the cleaner has run); returns it."""
    want = strip(expected)
    deadline = time.time() + TIMEOUT
    got = []
    while time.time() < deadline:
        got = strip(ck_read_all(b, topic))
        if got == want:
            return got
        time.sleep(0.5)
    offsets = [r["offset"] for r in got]
    differ = next(((g, w) for g, w in zip(got, want) if g != w), None)
    raise AssertionError(f"{what}: {len(got)} records at {offsets[:40]}..., want {len(want)}; first difference {differ}")


def roll(b, topic, key, segment_ms):
    """Appends one record after `segment.ms` has passed, which rolls the active segment first: what
    was written before is then in sealed segments, which the cleaner may clean."""
    time.sleep(segment_ms / 1000 + 0.3)
    return ck_produce(b, topic, [{"partition": 0, "key": key, "value": b"roll"}])


def scenario_compaction(b):
    """A compacted topic with small segments and many updates per key: after cleaning, every
    key's latest record is at its original offset (headers and timestamps kept, lz4 batches
    still readable), older ones are gone, and librdkafka, kafka-python and kcat read it from
    offset 0; tombstones stay for delete.retention.ms after the first clean, then go."""
    topic = unique("compact")
    segment_ms = 1000
    create_topic(b, topic, config={
        "cleanup.policy": "compact",
        "segment.bytes": "16384",
        "segment.ms": str(segment_ms),
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "4000",
    })
    base = int(time.time() * 1000) - 60_000
    records = []
    for r in range(12):
        for k in range(40):
            tombstone = r == 11 and k % 10 == 9
            records.append({
                "partition": 0,
                "key": f"key-{k}".encode(),
                "value": None if tombstone else f"value-{k}-{r}-".encode() + bytes(range(64)),
                "headers": [("round", str(r).encode())],
                "timestamp": base + r * 100 + k,
            })
    delivered = ck_produce(b, topic, records, **{"compression.type": "lz4", "linger.ms": 5})
    assert len(delivered) == 480
    # Delivery reports do not carry headers: take them from what was sent.
    sent = {(r["key"], r["value"]): r["headers"] for r in records}
    for r in delivered:
        r["headers"] = sent[(r["key"], r["value"])]
    filler = roll(b, topic, b"filler-1", segment_ms)
    expected = latest_per_key(delivered) + filler
    got = wait_compacted(b, topic, expected, "first clean")
    assert sum(1 for r in got if r["value"] is None) == 4, "the tombstones stay after the first clean"
    # Other readers see the same sparse log from offset 0.
    kp = strip(kp_consume(b, topic, [0], len(expected)))
    assert [(r["offset"], r["key"], r["value"]) for r in kp] == [(r["offset"], r["key"], r["value"]) for r in got]
    out = kcat(b, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o|%k\n").decode()
    rows = [line.split("|") for line in out.strip().split("\n")]
    assert [(int(o), k.encode()) for o, k in rows] == [(r["offset"], r["key"]) for r in got], out
    # A fetch at a removed offset starts at the next record there is.
    first_gap = next(o for o in range(got[-1]["offset"]) if o not in {r["offset"] for r in got})
    after = ck_consume(b, topic, [0], 1, start=first_gap)
    assert after[0]["offset"] == min(r["offset"] for r in got if r["offset"] > first_gap), after

    # Past delete.retention.ms, the next clean (more dirt to trigger it) removes the tombstones.
    time.sleep(4.5)
    more = ck_produce(b, topic, [
        {"partition": 0, "key": f"key-{k}".encode(), "value": f"late-{k}".encode()} for k in range(5)
    ])
    filler2 = roll(b, topic, b"filler-2", segment_ms)
    live = [r for r in latest_per_key(delivered + more) if r["value"] is not None]
    wait_compacted(b, topic, latest_per_key(live + filler + filler2), "tombstones after delete.retention.ms")


def scenario_compaction_and_deletion(b):
    """cleanup.policy=compact,delete honours both: duplicates go, and once retention.ms is
    lowered the expired segments go too (the log start moves)."""
    topic = unique("cd")
    segment_ms = 700
    create_topic(b, topic, config={
        "cleanup.policy": "compact,delete",
        "segment.bytes": "8192",
        "segment.ms": str(segment_ms),
        "min.cleanable.dirty.ratio": "0.01",
        "retention.ms": "3600000",
    })
    records = [{"partition": 0, "key": f"k{i % 10}".encode(), "value": f"v{i}".encode()} for i in range(300)]
    delivered = ck_produce(b, topic, records)
    filler = roll(b, topic, b"filler", segment_ms)
    wait_compacted(b, topic, latest_per_key(delivered) + filler, "compaction under compact,delete")
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    client = admin(b)
    entry = ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    for _, future in client.incremental_alter_configs([resource]).items():
        future.result(timeout=TIMEOUT)
    later = roll(b, topic, b"later", segment_ms)
    deadline = time.time() + TIMEOUT
    consumer = Consumer({"bootstrap.servers": b, "group.id": unique("g")})
    while True:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
        if low == later[0]["offset"]:
            break
        assert time.time() < deadline, f"log start {low}, want {later[0]['offset']}"
        time.sleep(0.3)
    consumer.close()


def scenario_compaction_refuses_keyless(b):
    """A record without a key cannot go to a compacted topic: INVALID_RECORD, for librdkafka and
    kafka-python alike; keyed records still land."""
    topic = unique("keyless")
    create_topic(b, topic, config={"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": b})
    errors = []
    producer.produce(topic, value=b"no key", partition=0, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(TIMEOUT)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors
    kp = kafka.KafkaProducer(bootstrap_servers=b)
    try:
        kp.send(topic, value=b"no key", partition=0).get(timeout=TIMEOUT)
        raise AssertionError("kafka-python's keyless record was accepted")
    except PyKafkaError as e:
        assert "InvalidRecord" in type(e).__name__ or "87" in str(e), repr(e)
    kp.close()
    # kafka-python's idempotent producer keeps failing after a refused batch (as it would against
    # Kafka), so the keyed record goes through a new one.
    kp = kafka.KafkaProducer(bootstrap_servers=b)
    kp.send(topic, key=b"k", value=b"v", partition=0).get(timeout=TIMEOUT)
    kp.close()
    got = ck_consume(b, topic, [0], 1)
    assert got[0]["key"] == b"k", got


def compaction_fill(b, topic, out_path):
    """Creates a compacted topic with small segments, writes 150 keys x 20 updates to it, rolls
    its active segment so all of it is cleanable, and writes 'offset key value' per record."""
    segment_ms = 1000
    create_topic(b, topic, config={
        "cleanup.policy": "compact",
        "segment.bytes": "16384",
        "segment.ms": str(segment_ms),
        "min.cleanable.dirty.ratio": "0.01",
    })
    records = [
        {"partition": 0, "key": f"key-{k}".encode(), "value": f"{k}-{r}-".encode() + b"x" * 200}
        for r in range(20) for k in range(150)
    ]
    delivered = ck_produce(b, topic, records, **{"compression.type": "zstd", "linger.ms": 5})
    delivered += roll(b, topic, b"filler", segment_ms)
    with open(out_path, "w") as out:
        for r in delivered:
            out.write(f"{r['offset']} {r['key'].decode()} {r['value'].decode()}\n")


def compaction_dump(b, topic):
    """Prints every record of partition 0 as 'offset key value'."""
    for r in ck_read_all(b, topic):
        print(f"{r['offset']} {r['key'].decode()} {r['value'].decode() if r['value'] is not None else '-'}")


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items() if name.startswith("scenario_")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("scenario")
    parser.add_argument("args", nargs="*")
    args = parser.parse_args()
    if args.scenario == "produce_until_killed":
        create_topic(args.bootstrap, args.args[0], partitions=int(args.args[2]))
        produce_until_killed(args.bootstrap, args.args[0], args.args[1])
        return
    if args.scenario == "compaction_fill":
        compaction_fill(args.bootstrap, args.args[0], args.args[1])
        return
    if args.scenario == "compaction_dump":
        compaction_dump(args.bootstrap, args.args[0])
        return
    if args.scenario == "dump_topic":
        dump_topic(args.bootstrap, args.args[0], int(args.args[1]))
        return
    if args.scenario == "native_consume":
        native_consume(args.bootstrap, args.args[0], int(args.args[1]))
        print(f"PASS {args.scenario}")
        return
    if args.scenario == "native_produce":
        native_produce(args.bootstrap, args.args[0], args.args[1], int(args.args[2]))
        print(f"PASS {args.scenario}")
        return
    SCENARIOS[args.scenario](args.bootstrap, *args.args)
    print(f"PASS {args.scenario}")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line for the test's message (first in it), the trace below
        traceback.print_exc()
        print(f"FAIL {' '.join(sys.argv[3:4])}: {type(e).__name__}: {e}".splitlines()[0], flush=True)
        sys.exit(1)
