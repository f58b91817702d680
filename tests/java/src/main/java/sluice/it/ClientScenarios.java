package sluice.it;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.function.BiConsumer;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Kafka's Java client against Sluice with its default settings. */
public final class ClientScenarios {
    private ClientScenarios() {}

    /** How long a scenario waits for records or a rebalance before it fails. */
    static final Duration WAIT = Duration.ofSeconds(30);

    public static void main(String[] argv) {
        Map<String, Check.Scenario> scenarios = Check.scenarios();
        scenarios.put("producer_defaults", ClientScenarios::producerDefaults);
        scenarios.put("group_rebalance", ClientScenarios::groupRebalance);
        scenarios.put("group_commits", ClientScenarios::groupCommits);
        scenarios.put("manual_assign", ClientScenarios::manualAssign);
        scenarios.put("seek", ClientScenarios::seek);
        scenarios.put("offsets_for_times", ClientScenarios::offsetsForTimes);
        scenarios.put("pause_resume", ClientScenarios::pauseResume);
        scenarios.put("transactions", ClientScenarios::transactions);
        scenarios.put("consumer_protocol", ClientScenarios::consumerProtocol);
        scenarios.put("compression", ClientScenarios::compression);
        scenarios.put("group_cooperative", ClientScenarios::groupCooperative);
        scenarios.put("group_static", ClientScenarios::groupStatic);
        scenarios.put("large_records", ClientScenarios::largeRecords);
        scenarios.put("consume_transform_produce", ClientScenarios::consumeTransformProduce);
        Check.run(argv, scenarios);
    }

    /** A producer with nothing set but bootstrap and serializers: idempotent, acks=all. */
    static KafkaProducer<String, String> producer(String bootstrap) {
        return producer(bootstrap, new Properties());
    }

    /** A producer with bootstrap, serializers and {@code extra}. */
    static KafkaProducer<String, String> producer(String bootstrap, Properties extra) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.putAll(extra);
        return new KafkaProducer<>(props);
    }

    /**
     * A consumer with nothing set but bootstrap, deserializers, (when not null) a group, and
     * auto.offset.reset=earliest so a new group reads what the scenario wrote before it.
     */
    static KafkaConsumer<String, String> consumer(String bootstrap, String group) {
        return consumer(bootstrap, group, new Properties());
    }

    /** {@link #consumer(String, String)} with {@code extra} settings on top. */
    static KafkaConsumer<String, String> consumer(String bootstrap, String group, Properties extra) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        if (group != null) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        props.putAll(extra);
        return new KafkaConsumer<>(props);
    }

    /** An admin client with nothing set but bootstrap. */
    static Admin admin(String bootstrap) {
        return Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap));
    }

    /** Creates {@code topic} with {@code partitions} partitions through the admin client. */
    static void createTopic(String bootstrap, String topic, int partitions) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
        }
    }

    /** Writes {@code perPartition} records "p-i" to each partition of {@code topic}. */
    static void fill(String bootstrap, String topic, int partitions, int perPartition) throws Exception {
        try (KafkaProducer<String, String> producer = producer(bootstrap)) {
            for (int p = 0; p < partitions; p++) {
                for (int i = 0; i < perPartition; i++) {
                    producer.send(new ProducerRecord<>(topic, p, null, p + "-" + i));
                }
            }
            producer.flush();
        }
    }

    /** Polls until {@code count} records arrived (more are kept too); fails after {@link #WAIT}. */
    static List<ConsumerRecord<String, String>> pollFor(KafkaConsumer<String, String> consumer, int count)
            throws InterruptedException {
        List<ConsumerRecord<String, String>> got = new ArrayList<>();
        Check.eventually(WAIT, count + " records", () -> {
            consumer.poll(Duration.ofMillis(100)).forEach(got::add);
            return got.size() >= count;
        });
        return got;
    }

    /** The values of {@code records}, in order. */
    static List<String> values(List<ConsumerRecord<String, String>> records) {
        List<String> values = new ArrayList<>();
        records.forEach(r -> values.add(r.value()));
        return values;
    }

    /** The partitions 0..n-1 of {@code topic}. */
    static Set<TopicPartition> partitions(String topic, int n) {
        Set<TopicPartition> set = new HashSet<>();
        for (int p = 0; p < n; p++) {
            set.add(new TopicPartition(topic, p));
        }
        return set;
    }

    /**
     * The default producer (idempotent, acks=all) sends to an auto-created topic; every send is
     * acknowledged in order and a group consumer reading from the earliest offset gets them all.
     */
    static void producerDefaults(String bootstrap, List<String> args) throws Exception {
        String topic = "java-defaults";
        int count = 1000;
        try (KafkaProducer<String, String> producer = producer(bootstrap)) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                acks.add(producer.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i)));
            }
            for (int i = 0; i < count; i++) {
                Check.equal((long) i, acks.get(i).get().offset(), "offset of send " + i);
            }
        }
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "java-defaults-group")) {
            consumer.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = pollFor(consumer, count);
            Check.equal(count, got.size(), "records consumed");
            for (int i = 0; i < count; i++) {
                Check.equal("v" + i, got.get(i).value(), "value at offset " + i);
            }
        }
    }

    /**
     * Two consumers of one group (classic protocol, default range assignor, auto-commit) split a
     * 4-partition topic two and two, each reading only its own partitions; when one leaves, the
     * other gets all four. Auto-commits on revocation and close hand over the exact positions, so
     * every record is read once in all.
     */
    static void groupRebalance(String bootstrap, List<String> args) throws Exception {
        String topic = "java-rebalance";
        String group = "java-rebalance-group";
        createTopic(bootstrap, topic, 4);
        fill(bootstrap, topic, 4, 10);
        KafkaConsumer<String, String> first = consumer(bootstrap, group);
        try (KafkaConsumer<String, String> second = consumer(bootstrap, group)) {
            first.subscribe(List.of(topic));
            second.subscribe(List.of(topic));
            // Each record read, as "partition@offset", and which member read it.
            Map<String, String> readBy = new HashMap<>();
            List<String> twice = new ArrayList<>();
            BiConsumer<String, KafkaConsumer<String, String>> poll = (name, consumer) ->
                    consumer.poll(Duration.ofMillis(100)).forEach(r -> {
                        Check.that(consumer.assignment().contains(new TopicPartition(r.topic(), r.partition())),
                                "%s read %s of a partition it does not own", name, r);
                        if (readBy.put(r.partition() + "@" + r.offset(), name) != null) {
                            twice.add(r.partition() + "@" + r.offset());
                        }
                    });
            // One thread polls both: a classic member joins and syncs inside poll().
            Check.eventually(WAIT, "two members with two partitions each and every record read", () -> {
                poll.accept("first", first);
                poll.accept("second", second);
                return first.assignment().size() == 2 && second.assignment().size() == 2 && readBy.size() == 40;
            });
            Set<TopicPartition> union = new HashSet<>(first.assignment());
            union.addAll(second.assignment());
            Check.equal(partitions(topic, 4), union, "partitions of both members");
            fill(bootstrap, topic, 4, 5);
            Check.eventually(WAIT, "the records written after the split", () -> {
                poll.accept("first", first);
                poll.accept("second", second);
                return readBy.size() == 60;
            });
            first.close();
            Check.eventually(WAIT, "the remaining member owning all four partitions", () -> {
                poll.accept("second", second);
                return second.assignment().size() == 4;
            });
            fill(bootstrap, topic, 4, 5);
            Check.eventually(WAIT, "every record after the rebalance", () -> {
                poll.accept("second", second);
                return readBy.size() == 80;
            });
            Check.equal(List.of(), twice, "records read twice");
            Check.that(readBy.containsValue("first"), "the first member read records");
        }
    }

    /**
     * commitSync and commitAsync store a group's offsets; committed() reads them back, and a new
     * consumer of the group resumes right after them.
     */
    static void groupCommits(String bootstrap, List<String> args) throws Exception {
        String topic = "java-commits";
        String group = "java-commits-group";
        createTopic(bootstrap, topic, 2);
        fill(bootstrap, topic, 2, 5);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        Properties manual = new Properties();
        manual.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, group, manual)) {
            consumer.subscribe(List.of(topic));
            Check.equal(10, pollFor(consumer, 10).size(), "records read");
            consumer.commitSync();
            Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(Set.of(p0, p1));
            Check.equal(5L, committed.get(p0).offset(), "committed offset of p0 (sync)");
            Check.equal(5L, committed.get(p1).offset(), "committed offset of p1 (sync)");
            // An explicit offset with metadata, committed asynchronously: p0 back to 3.
            CompletableFuture<Exception> done = new CompletableFuture<>();
            consumer.commitAsync(Map.of(p0, new OffsetAndMetadata(3, "async")), (offsets, e) -> done.complete(e));
            Check.eventually(WAIT, "the async commit's callback", () -> {
                consumer.poll(Duration.ofMillis(100));
                return done.isDone();
            });
            Check.equal(null, done.get(), "async commit error");
            OffsetAndMetadata async = consumer.committed(Set.of(p0)).get(p0);
            Check.equal(3L, async.offset(), "committed offset of p0 (async)");
            Check.equal("async", async.metadata(), "committed metadata of p0");
        }
        fill(bootstrap, topic, 2, 1);
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, group, manual)) {
            consumer.subscribe(List.of(topic));
            // p0 from offset 3 (records 3, 4 and the new 5), p1 from 5 (the new 5).
            List<ConsumerRecord<String, String>> got = pollFor(consumer, 4);
            Set<String> seen = new HashSet<>(values(got));
            Check.equal(Set.of("0-3", "0-4", "0-0", "1-0"), seen, "records after the committed offsets");
        }
    }

    /** assign() without a group reads the partitions it names, and only those. */
    static void manualAssign(String bootstrap, List<String> args) throws Exception {
        String topic = "java-assign";
        createTopic(bootstrap, topic, 3);
        fill(bootstrap, topic, 3, 4);
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, null)) {
            TopicPartition p1 = new TopicPartition(topic, 1);
            consumer.assign(List.of(p1));
            Check.equal(Set.of(p1), consumer.assignment(), "assignment");
            List<ConsumerRecord<String, String>> got = pollFor(consumer, 4);
            Check.equal(List.of("1-0", "1-1", "1-2", "1-3"), values(got), "records of partition 1");
            Check.equal(4L, consumer.position(p1), "position after the last record");
            Check.that(consumer.poll(Duration.ofMillis(300)).isEmpty(), "no more records");
        }
    }

    /** seek, seekToBeginning and seekToEnd move the position; poll reads from there. */
    static void seek(String bootstrap, List<String> args) throws Exception {
        String topic = "java-seek";
        createTopic(bootstrap, topic, 1);
        fill(bootstrap, topic, 1, 10);
        TopicPartition p0 = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, null)) {
            consumer.assign(List.of(p0));
            consumer.seek(p0, 7);
            Check.equal(List.of("0-7", "0-8", "0-9"), values(pollFor(consumer, 3)), "records after seek(7)");
            consumer.seekToBeginning(List.of(p0));
            Check.equal(0L, consumer.position(p0), "position after seekToBeginning");
            Check.equal("0-0", pollFor(consumer, 1).get(0).value(), "first record after seekToBeginning");
            consumer.seekToEnd(List.of(p0));
            Check.equal(10L, consumer.position(p0), "position after seekToEnd");
            fill(bootstrap, topic, 1, 1);
            Check.equal(List.of("0-0"), values(pollFor(consumer, 1)), "the record written after seekToEnd");
            Check.equal(Map.of(p0, 0L), consumer.beginningOffsets(List.of(p0)), "beginningOffsets");
            Check.equal(Map.of(p0, 11L), consumer.endOffsets(List.of(p0)), "endOffsets");
        }
    }

    /** offsetsForTimes finds the first record at or after a timestamp the producer set. */
    static void offsetsForTimes(String bootstrap, List<String> args) throws Exception {
        String topic = "java-times";
        createTopic(bootstrap, topic, 1);
        long base = System.currentTimeMillis() - 60_000;
        try (KafkaProducer<String, String> producer = producer(bootstrap)) {
            for (int i = 0; i < 5; i++) {
                // One send and flush per record, so each record is its own batch.
                producer.send(new ProducerRecord<>(topic, 0, base + i * 1000L, null, "t" + i)).get();
            }
        }
        TopicPartition p0 = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, null)) {
            consumer.assign(List.of(p0));
            Check.equal(2L, offsetForTime(consumer, p0, base + 2000), "offset at an exact timestamp");
            Check.equal(3L, offsetForTime(consumer, p0, base + 2500), "offset between two records");
            Check.equal(0L, offsetForTime(consumer, p0, 0), "offset before every record");
            Check.equal(null, offsetForTime(consumer, p0, base + 10_000), "offset after every record");
            OffsetAndTimestamp found = consumer.offsetsForTimes(Map.of(p0, base + 2500)).get(p0);
            Check.equal(base + 3000, found.timestamp(), "timestamp of the record found");
            consumer.seek(p0, consumer.offsetsForTimes(Map.of(p0, base + 3000)).get(p0).offset());
            ConsumerRecord<String, String> record = pollFor(consumer, 1).get(0);
            Check.equal("t3", record.value(), "record at the found offset");
            Check.equal(base + 3000, record.timestamp(), "its timestamp");
        }
    }

    /** The offset offsetsForTimes finds for {@code timestamp}, or null if none. */
    static Long offsetForTime(KafkaConsumer<String, String> consumer, TopicPartition tp, long timestamp) {
        OffsetAndTimestamp found = consumer.offsetsForTimes(Map.of(tp, timestamp)).get(tp);
        return found == null ? null : found.offset();
    }

    /** A paused partition gets no records from poll until it is resumed. */
    static void pauseResume(String bootstrap, List<String> args) throws Exception {
        String topic = "java-pause";
        createTopic(bootstrap, topic, 2);
        fill(bootstrap, topic, 2, 3);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, null)) {
            consumer.assign(List.of(p0, p1));
            consumer.pause(List.of(p1));
            Check.equal(Set.of(p1), consumer.paused(), "paused partitions");
            List<ConsumerRecord<String, String>> got = pollFor(consumer, 3);
            // A few more polls: nothing from the paused partition comes.
            for (int i = 0; i < 5; i++) {
                consumer.poll(Duration.ofMillis(100)).forEach(got::add);
            }
            Check.equal(List.of("0-0", "0-1", "0-2"), values(got), "records while p1 is paused");
            consumer.resume(List.of(p1));
            Check.equal(List.of("1-0", "1-1", "1-2"), values(pollFor(consumer, 3)), "records after resume");
        }
    }

    /**
     * A transactional producer commits one transaction and aborts another, each with records and
     * a group's offsets (sendOffsetsToTransaction): read_committed sees only the committed records,
     * read_uncommitted sees both, and the group keeps only the committed transaction's offsets.
     */
    static void transactions(String bootstrap, List<String> args) throws Exception {
        String topic = "java-txn";
        String group = "java-txn-group";
        createTopic(bootstrap, topic, 2);
        TopicPartition p0 = new TopicPartition(topic, 0);
        Properties txn = new Properties();
        txn.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-txn-id");
        try (KafkaProducer<String, String> producer = producer(bootstrap, txn)) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int p = 0; p < 2; p++) {
                producer.send(new ProducerRecord<>(topic, p, null, "committed-" + p));
            }
            producer.sendOffsetsToTransaction(Map.of(p0, new OffsetAndMetadata(1)), new ConsumerGroupMetadata(group));
            producer.commitTransaction();
            producer.beginTransaction();
            for (int p = 0; p < 2; p++) {
                producer.send(new ProducerRecord<>(topic, p, null, "aborted-" + p));
            }
            producer.sendOffsetsToTransaction(Map.of(p0, new OffsetAndMetadata(2)), new ConsumerGroupMetadata(group));
            producer.flush();
            producer.abortTransaction();
            // One more committed record after the aborted ones, so read_committed must skip them.
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, 0, null, "committed-last"));
            producer.commitTransaction();
        }
        Set<String> committed = Set.of("committed-0", "committed-1", "committed-last");
        Set<String> all = new HashSet<>(committed);
        all.addAll(Set.of("aborted-0", "aborted-1"));
        Map<String, Set<String>> expected = Map.of("read_committed", committed, "read_uncommitted", all);
        for (Map.Entry<String, Set<String>> isolation : expected.entrySet()) {
            Properties props = new Properties();
            props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation.getKey());
            try (KafkaConsumer<String, String> consumer = consumer(bootstrap, null, props)) {
                consumer.assign(partitions(topic, 2));
                List<ConsumerRecord<String, String>> got = pollFor(consumer, isolation.getValue().size());
                for (int i = 0; i < 5; i++) {
                    consumer.poll(Duration.ofMillis(100)).forEach(got::add);
                }
                Check.equal(isolation.getValue().size(), got.size(), isolation.getKey() + " record count");
                Check.equal(isolation.getValue(), new HashSet<>(values(got)), isolation.getKey() + " records");
            }
        }
        Properties readCommitted = new Properties();
        readCommitted.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, group, readCommitted)) {
            OffsetAndMetadata offset = consumer.committed(Set.of(p0)).get(p0);
            Check.equal(1L, offset == null ? null : offset.offset(), "the group's offset of p0");
        }
        // Only the coordinators write to the internal topics, as in Kafka.
        for (String internal : List.of("__consumer_offsets", "__transaction_state")) {
            try (KafkaProducer<String, String> producer = producer(bootstrap)) {
                producer.send(new ProducerRecord<>(internal, 0, null, "forged")).get();
                throw new AssertionError("a client wrote to " + internal);
            } catch (ExecutionException e) {
                Check.that(e.getCause() instanceof InvalidTopicException, "writing to %s: expected "
                        + "InvalidTopicException, got %s", internal, e.getCause());
            }
        }
    }

    /**
     * Each compression.type the producer offers (gzip, snappy, lz4, zstd): records with keys,
     * null keys, null values and headers come back to a consumer as they were sent.
     */
    static void compression(String bootstrap, List<String> args) throws Exception {
        String topic = "java-compression";
        createTopic(bootstrap, topic, 1);
        List<String> codecs = List.of("gzip", "snappy", "lz4", "zstd");
        int perCodec = 50;
        for (String codec : codecs) {
            Properties props = new Properties();
            props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            try (KafkaProducer<String, String> producer = producer(bootstrap, props)) {
                for (int i = 0; i < perCodec; i++) {
                    ProducerRecord<String, String> record = new ProducerRecord<>(topic, 0,
                            i % 5 == 0 ? null : "k" + i, i % 7 == 0 ? null : codec + "-" + i);
                    record.headers().add("codec", codec.getBytes(StandardCharsets.UTF_8));
                    producer.send(record);
                }
            }
        }
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, null)) {
            consumer.assign(partitions(topic, 1));
            List<ConsumerRecord<String, String>> got = pollFor(consumer, codecs.size() * perCodec);
            Check.equal(codecs.size() * perCodec, got.size(), "records");
            for (int c = 0; c < codecs.size(); c++) {
                String codec = codecs.get(c);
                for (int i = 0; i < perCodec; i++) {
                    ConsumerRecord<String, String> record = got.get(c * perCodec + i);
                    String where = codec + " record " + i;
                    Check.equal(i % 5 == 0 ? null : "k" + i, record.key(), "key of " + where);
                    Check.equal(i % 7 == 0 ? null : codec + "-" + i, record.value(), "value of " + where);
                    Check.equal(codec, new String(record.headers().lastHeader("codec").value(),
                            StandardCharsets.UTF_8), "header of " + where);
                }
            }
        }
    }

    /**
     * The cooperative-sticky assignor (incremental rebalances): a second member takes half of
     * the partitions from the first, which keeps reading the rest throughout, and when it
     * leaves, its partitions go back to the first; every record is read once.
     */
    static void groupCooperative(String bootstrap, List<String> args) throws Exception {
        String topic = "java-cooperative";
        String group = "java-cooperative-group";
        createTopic(bootstrap, topic, 4);
        fill(bootstrap, topic, 4, 10);
        Properties props = new Properties();
        props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
        Map<String, String> readBy = new HashMap<>();
        List<String> twice = new ArrayList<>();
        List<String> lost = new ArrayList<>();
        BiConsumer<String, KafkaConsumer<String, String>> poll = (name, consumer) ->
                consumer.poll(Duration.ofMillis(100)).forEach(r -> {
                    if (readBy.put(r.partition() + "@" + r.offset(), name) != null) {
                        twice.add(r.partition() + "@" + r.offset());
                    }
                });
        try (KafkaConsumer<String, String> first = consumer(bootstrap, group, props)) {
            first.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    lost.add(partitions.toString());
                }
            });
            Check.eventually(WAIT, "the first member owning all four partitions", () -> {
                poll.accept("first", first);
                return first.assignment().size() == 4;
            });
            KafkaConsumer<String, String> second = consumer(bootstrap, group, props);
            second.subscribe(List.of(topic));
            Check.eventually(WAIT, "two members with two partitions each and every record read", () -> {
                poll.accept("first", first);
                poll.accept("second", second);
                return first.assignment().size() == 2 && second.assignment().size() == 2 && readBy.size() == 40;
            });
            second.close();
            fill(bootstrap, topic, 4, 5);
            Check.eventually(WAIT, "the first member owning all four partitions again, and every record", () -> {
                poll.accept("first", first);
                return first.assignment().size() == 4 && readBy.size() == 60;
            });
        }
        Check.equal(List.of(), twice, "records read twice");
        Check.equal(List.of(), lost, "partitions lost (rather than revoked)");
    }

    /**
     * Static membership (group.instance.id, KIP-345): a static member that closes and comes back
     * within its session gets its partitions back without a rebalance, so the other member keeps
     * its own throughout; the admin sees the instance ids, and removeMembersFromConsumerGroup
     * takes a static member out, which does rebalance the group.
     */
    static void groupStatic(String bootstrap, List<String> args) throws Exception {
        String topic = "java-static";
        String group = "java-static-group";
        createTopic(bootstrap, topic, 4);
        fill(bootstrap, topic, 4, 5);
        List<String> rebalances = new ArrayList<>();
        ConsumerRebalanceListener watch = new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                rebalances.add("revoked " + partitions);
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                rebalances.add("assigned " + partitions);
            }
        };
        Properties staticA = new Properties();
        staticA.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "static-a");
        Properties staticB = new Properties();
        staticB.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "static-b");
        KafkaConsumer<String, String> a = consumer(bootstrap, group, staticA);
        try (KafkaConsumer<String, String> b = consumer(bootstrap, group, staticB); Admin admin = admin(bootstrap)) {
            a.subscribe(List.of(topic));
            b.subscribe(List.of(topic), watch);
            Check.eventually(WAIT, "two static members with two partitions each", () -> {
                a.poll(Duration.ofMillis(100));
                b.poll(Duration.ofMillis(100));
                return a.assignment().size() == 2 && b.assignment().size() == 2;
            });
            Set<TopicPartition> ofA = new HashSet<>(a.assignment());
            Set<TopicPartition> ofB = new HashSet<>(b.assignment());
            ConsumerGroupDescription described = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
            Set<Optional<String>> instances = new HashSet<>();
            described.members().forEach(m -> instances.add(m.groupInstanceId()));
            Check.equal(Set.of(Optional.of("static-a"), Optional.of("static-b")), instances, "instance ids");
            // A static member's close sends no LeaveGroup: the group waits for it.
            a.close();
            rebalances.clear();
            KafkaConsumer<String, String> back = consumer(bootstrap, group, staticA);
            back.subscribe(List.of(topic));
            Check.eventually(WAIT, "the static member back with its partitions", () -> {
                back.poll(Duration.ofMillis(100));
                b.poll(Duration.ofMillis(100));
                return back.assignment().size() == 2;
            });
            Check.equal(ofA, back.assignment(), "partitions of the returning static member");
            for (int i = 0; i < 10; i++) {
                back.poll(Duration.ofMillis(100));
                b.poll(Duration.ofMillis(100));
            }
            Check.equal(List.of(), rebalances, "rebalances the other member saw");
            Check.equal(ofB, b.assignment(), "partitions of the other member");
            back.close();
            admin.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions(
                    List.of(new MemberToRemove("static-a")))).all().get();
            Check.eventually(WAIT, "the remaining member owning all four partitions", () -> {
                b.poll(Duration.ofMillis(100));
                return b.assignment().size() == 4;
            });
        }
    }

    /**
     * Records near the default size limit (1 MiB) go through with default settings; a consumer
     * whose fetch limits are far smaller still gets each one (KIP-74: the first batch goes
     * whole); a record over the topic's max.message.bytes is refused with RecordTooLargeException.
     */
    static void largeRecords(String bootstrap, List<String> args) throws Exception {
        String topic = "java-large";
        createTopic(bootstrap, topic, 1);
        int size = 900_000;
        try (KafkaProducer<String, String> producer = producer(bootstrap)) {
            for (int i = 0; i < 3; i++) {
                producer.send(new ProducerRecord<>(topic, 0, null, String.valueOf(i).repeat(size))).get();
            }
        }
        for (int limit : new int[] {0, 1024}) {
            Properties small = new Properties();
            if (limit > 0) {
                small.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, String.valueOf(limit));
                small.put(ConsumerConfig.FETCH_MAX_BYTES_CONFIG, String.valueOf(limit));
            }
            try (KafkaConsumer<String, String> consumer = consumer(bootstrap, null, small)) {
                consumer.assign(partitions(topic, 1));
                List<ConsumerRecord<String, String>> got = pollFor(consumer, 3);
                for (int i = 0; i < 3; i++) {
                    Check.equal(String.valueOf(i).repeat(size), got.get(i).value(), "record " + i + ", limit " + limit);
                }
            }
        }
        Properties big = new Properties();
        big.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, "4000000");
        try (KafkaProducer<String, String> producer = producer(bootstrap, big)) {
            producer.send(new ProducerRecord<>(topic, 0, null, "x".repeat(1_200_000))).get();
            throw new AssertionError("a record over max.message.bytes was accepted");
        } catch (ExecutionException e) {
            Check.that(e.getCause() instanceof RecordTooLargeException, "expected RecordTooLargeException, got %s",
                    e.getCause());
        }
    }

    /**
     * The exactly-once loop: a read_committed group member reads, and a transactional producer
     * writes what it read and commits the member's offsets in the same transaction, with the
     * member's group metadata (generation and member id, KIP-447). Every input record is in the
     * output exactly once, and the group's committed offsets are the input's ends.
     */
    static void consumeTransformProduce(String bootstrap, List<String> args) throws Exception {
        String input = "java-eos-in";
        String output = "java-eos-out";
        String group = "java-eos-group";
        createTopic(bootstrap, input, 2);
        createTopic(bootstrap, output, 1);
        fill(bootstrap, input, 2, 25);
        Properties readCommitted = new Properties();
        readCommitted.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        readCommitted.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        readCommitted.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "7");
        Properties txn = new Properties();
        txn.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-eos-id");
        int[] transactions = {0};
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, group, readCommitted);
                KafkaProducer<String, String> producer = producer(bootstrap, txn)) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            Set<String> copied = new HashSet<>();
            Check.eventually(WAIT, "every input record copied", () -> {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(100));
                if (records.isEmpty()) {
                    return copied.size() == 50;
                }
                producer.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                for (ConsumerRecord<String, String> r : records) {
                    producer.send(new ProducerRecord<>(output, 0, null, "copy of " + r.value()));
                    copied.add(r.value());
                    next.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
                producer.commitTransaction();
                transactions[0]++;
                return copied.size() == 50;
            });
            Check.that(transactions[0] >= 8, "at most 7 records a transaction: %d transactions", transactions[0]);
            Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(partitions(input, 2));
            for (TopicPartition tp : partitions(input, 2)) {
                Check.equal(25L, committed.get(tp).offset(), "committed offset of " + tp);
            }
        }
        try (KafkaConsumer<String, String> reader = consumer(bootstrap, null, readCommitted)) {
            reader.assign(partitions(output, 1));
            List<ConsumerRecord<String, String>> got = pollFor(reader, 50);
            for (int i = 0; i < 5; i++) {
                reader.poll(Duration.ofMillis(100)).forEach(got::add);
            }
            Check.equal(50, got.size(), "records in the output");
            Check.equal(50, new HashSet<>(values(got)).size(), "distinct records in the output");
        }
    }

    /**
     * group.protocol=consumer (KIP-848) needs ConsumerGroupHeartbeat, which Sluice does not serve:
     * the consumer must fail with a clear UnsupportedVersionException rather than hang.
     */
    static void consumerProtocol(String bootstrap, List<String> args) throws Exception {
        String topic = "java-kip848";
        createTopic(bootstrap, topic, 1);
        Properties props = new Properties();
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "java-kip848-group", props)) {
            consumer.subscribe(List.of(topic));
            Map<String, Throwable> failure = new HashMap<>();
            Check.eventually(WAIT, "an error from poll", () -> {
                try {
                    consumer.poll(Duration.ofMillis(100));
                    return false;
                } catch (Exception e) {
                    failure.put("poll", e);
                    return true;
                }
            });
            Throwable e = failure.get("poll");
            Check.that(e instanceof UnsupportedVersionException, "expected UnsupportedVersionException, got %s", e);
            System.err.println("group.protocol=consumer: " + e.getMessage());
        }
    }
}
