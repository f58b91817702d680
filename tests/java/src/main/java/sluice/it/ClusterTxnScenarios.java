package sluice.it;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * Kafka's Java client against a Sluice cluster: transactions whose partitions, transaction
 * coordinator and group coordinator are on different brokers. Every scenario is bootstrapped
 * from one node only.
 */
public final class ClusterTxnScenarios {
    private ClusterTxnScenarios() {}

    public static void main(String[] argv) {
        Map<String, Check.Scenario> scenarios = Check.scenarios();
        scenarios.put("transactions_spread", ClusterTxnScenarios::transactionsSpread);
        scenarios.put("consume_transform_produce", ClusterTxnScenarios::consumeTransformProduce);
        Check.run(argv, scenarios);
    }

    /** A read_committed consumer with no group, or with {@code group} and no auto commit. */
    static KafkaConsumer<String, String> readCommitted(String bootstrap, String group) {
        Properties props = new Properties();
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return ClientScenarios.consumer(bootstrap, group, props);
    }

    /**
     * args: topic, partitions, transactional id, group. Five transactions, each writing one record
     * to every partition (and an offset of the group): commit, abort, commit, abort, commit. A
     * read_committed consumer then gets exactly the committed records of every partition, in
     * order, and its end offsets (the last stable offsets) are the logs' ends: every marker was
     * written, on every broker, so no partition is left behind an open transaction.
     */
    static void transactionsSpread(String bootstrap, List<String> args) throws Exception {
        String topic = args.get(0);
        int partitions = Integer.parseInt(args.get(1));
        String group = args.get(3);
        ClientScenarios.createTopic(bootstrap, topic, partitions);
        Properties txn = new Properties();
        txn.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args.get(2));
        Map<Integer, List<String>> committed = new HashMap<>();
        Set<String> all = new HashSet<>();
        TopicPartition p0 = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> producer = ClientScenarios.producer(bootstrap, txn)) {
            producer.initTransactions();
            for (int t = 0; t < 5; t++) {
                boolean commit = t % 2 == 0;
                producer.beginTransaction();
                for (int p = 0; p < partitions; p++) {
                    String value = (commit ? "committed-" : "aborted-") + t + "-" + p;
                    producer.send(new ProducerRecord<>(topic, p, null, value));
                    all.add(value);
                    if (commit) {
                        committed.computeIfAbsent(p, k -> new ArrayList<>()).add(value);
                    }
                }
                producer.sendOffsetsToTransaction(
                        Map.of(p0, new OffsetAndMetadata(t + 1)), new ConsumerGroupMetadata(group));
                if (commit) {
                    producer.commitTransaction();
                } else {
                    producer.flush();
                    producer.abortTransaction();
                }
            }
        }
        int expected = committed.values().stream().mapToInt(List::size).sum();
        try (KafkaConsumer<String, String> consumer = readCommitted(bootstrap, null)) {
            consumer.assign(ClientScenarios.partitions(topic, partitions));
            List<ConsumerRecord<String, String>> got = ClientScenarios.pollFor(consumer, expected);
            for (int i = 0; i < 5; i++) {
                consumer.poll(Duration.ofMillis(100)).forEach(got::add);
            }
            for (int p = 0; p < partitions; p++) {
                List<String> values = new ArrayList<>();
                for (ConsumerRecord<String, String> r : got) {
                    if (r.partition() == p) {
                        values.add(r.value());
                    }
                }
                Check.equal(committed.get(p), values, "read_committed records of partition " + p);
            }
            Map<TopicPartition, Long> stable = consumer.endOffsets(ClientScenarios.partitions(topic, partitions));
            try (KafkaConsumer<String, String> uncommitted = ClientScenarios.consumer(bootstrap, null)) {
                Map<TopicPartition, Long> ends = uncommitted.endOffsets(ClientScenarios.partitions(topic, partitions));
                Check.equal(ends, stable, "last stable offsets are the log ends");
            }
        }
        try (KafkaConsumer<String, String> consumer = ClientScenarios.consumer(bootstrap, null)) {
            consumer.assign(ClientScenarios.partitions(topic, partitions));
            List<ConsumerRecord<String, String>> got = ClientScenarios.pollFor(consumer, all.size());
            Check.equal(all, new HashSet<>(ClientScenarios.values(got)), "read_uncommitted records");
        }
        try (KafkaConsumer<String, String> consumer = readCommitted(bootstrap, group)) {
            OffsetAndMetadata offset = consumer.committed(Set.of(p0)).get(p0);
            Check.equal(5L, offset == null ? null : offset.offset(), "the group's offset of p0 (last commit)");
        }
    }

    /**
     * args: input topic, output topic, group, transactional id. Copies every record of a
     * 6-partition input to a 3-partition output in transactions of at most 7 records, committing
     * the group's offsets in each (sendOffsetsToTransaction). The test picks the group and the
     * transactional id so that their coordinators are different brokers.
     */
    static void consumeTransformProduce(String bootstrap, List<String> args) throws Exception {
        String input = args.get(0);
        String output = args.get(1);
        String group = args.get(2);
        int inputPartitions = 6;
        int perPartition = 10;
        int total = inputPartitions * perPartition;
        ClientScenarios.createTopic(bootstrap, input, inputPartitions);
        ClientScenarios.createTopic(bootstrap, output, 3);
        ClientScenarios.fill(bootstrap, input, inputPartitions, perPartition);
        Properties settings = new Properties();
        settings.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        settings.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        settings.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "7");
        Properties txn = new Properties();
        txn.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args.get(3));
        int[] transactions = {0};
        try (KafkaConsumer<String, String> consumer = ClientScenarios.consumer(bootstrap, group, settings);
                KafkaProducer<String, String> producer = ClientScenarios.producer(bootstrap, txn)) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            Set<String> copied = new HashSet<>();
            Check.eventually(ClientScenarios.WAIT, "every input record copied", () -> {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(100));
                if (records.isEmpty()) {
                    return copied.size() == total;
                }
                producer.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                for (ConsumerRecord<String, String> r : records) {
                    producer.send(new ProducerRecord<>(output, r.partition() % 3, null, "copy of " + r.value()));
                    copied.add(r.value());
                    next.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
                producer.commitTransaction();
                transactions[0]++;
                return copied.size() == total;
            });
            Check.that(transactions[0] >= total / 7, "at most 7 records a transaction: %d", transactions[0]);
        }
        // A new consumer of the group sees the offsets the transactions committed.
        try (KafkaConsumer<String, String> consumer = readCommitted(bootstrap, group)) {
            Map<TopicPartition, OffsetAndMetadata> committed =
                    consumer.committed(ClientScenarios.partitions(input, inputPartitions));
            for (TopicPartition tp : ClientScenarios.partitions(input, inputPartitions)) {
                OffsetAndMetadata offset = committed.get(tp);
                Check.equal((long) perPartition, offset == null ? null : offset.offset(), "committed offset of " + tp);
            }
        }
        try (KafkaConsumer<String, String> reader = readCommitted(bootstrap, null)) {
            reader.assign(ClientScenarios.partitions(output, 3));
            List<ConsumerRecord<String, String>> got = ClientScenarios.pollFor(reader, total);
            for (int i = 0; i < 5; i++) {
                reader.poll(Duration.ofMillis(100)).forEach(got::add);
            }
            Check.equal(total, got.size(), "records in the output");
            Check.equal(total, new HashSet<>(ClientScenarios.values(got)).size(), "distinct records in the output");
        }
    }
}
