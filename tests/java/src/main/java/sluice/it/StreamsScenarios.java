package sluice.it;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.TreeMap;
import java.util.function.Supplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.LongSerializer;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;

/**
 * Kafka Streams against Sluice: the two apps of {@link StreamsApp}, under at_least_once and
 * exactly_once_v2 (the scenario's one argument), run in this JVM or, for the kill scenarios, in a
 * JVM of their own that is killed with SIGKILL mid-run and started again. Each scenario checks
 * the app's output (read_committed, last value per key) against counts computed here, and that
 * Streams created its internal topics with the configs it asked for.
 */
public final class StreamsScenarios {
    private StreamsScenarios() {}

    public static void main(String[] argv) {
        Map<String, Check.Scenario> scenarios = Check.scenarios();
        scenarios.put("word_count", StreamsScenarios::wordCount);
        scenarios.put("region_totals", StreamsScenarios::regionTotals);
        scenarios.put("word_count_killed", StreamsScenarios::wordCountKilled);
        scenarios.put("word_count_scaled", StreamsScenarios::wordCountScaled);
        Check.run(argv, scenarios);
    }

    /** Partitions of every input and output topic (the inputs of the join must match). */
    static final int PARTITIONS = 2;
    /** How long an app may take to produce its expected output. */
    static final Duration OUTPUT_TIMEOUT = Duration.ofSeconds(60);
    /** How long the output is read past the expected totals, so late duplicates would show. */
    static final Duration SETTLE = Duration.ofSeconds(2);

    static final int WORDS_PER_LINE = 8;
    static final int VOCABULARY = 40;

    // ---- scenarios ----------------------------------------------------------------------------

    /**
     * Word count: lines in, split, grouped by word (a repartition topic Streams creates), counted
     * (a compacted changelog Streams creates); the last count per word equals the words sent.
     */
    static void wordCount(String bootstrap, List<String> args) throws Exception {
        String guarantee = guarantee(args);
        int lines = 2000;
        try (Admin admin = admin(bootstrap)) {
            createTopics(admin, StreamsApp.LINES, StreamsApp.WORD_COUNTS);
            produceLines(bootstrap, 0, lines);
            Map<String, Long> expected = wordCounts(0, lines);
            try (KafkaStreams streams = inProcess(bootstrap, StreamsApp.WORD_COUNT, guarantee);
                    Output output = new Output(bootstrap, StreamsApp.WORD_COUNTS)) {
                Map<String, Long> got = output.awaitAtLeast(expected, () -> failed(streams));
                Check.equal(expected, got, "word counts");
                String app = StreamsApp.applicationId(StreamsApp.WORD_COUNT);
                String repartition = app + "-" + StreamsApp.WORDS_GROUPING + "-repartition";
                // The configs Streams creates its internal topics with, as DescribeConfigs
                // reads them back.
                checkConfig(admin, repartition, "cleanup.policy", "delete");
                checkConfig(admin, repartition, "retention.ms", "-1");
                checkConfig(admin, repartition, "segment.bytes", "52428800");
                checkConfig(admin, repartition, "message.timestamp.type", "CreateTime");
                String changelog = app + "-" + StreamsApp.WORD_COUNT_STORE + "-changelog";
                checkConfig(admin, changelog, "cleanup.policy", "compact");
                checkConfig(admin, changelog, "message.timestamp.type", "CreateTime");
                awaitPurged(admin, repartition);
            }
        }
    }

    /**
     * Purchases (user, amount) joined with the table (user, region), grouped by region, summed in
     * one-minute tumbling windows; the record timestamps are set here, so the windows are too.
     */
    static void regionTotals(String bootstrap, List<String> args) throws Exception {
        String guarantee = guarantee(args);
        int purchases = 600;
        long base = windowAlignedBase();
        try (Admin admin = admin(bootstrap)) {
            createTopics(admin, StreamsApp.USER_REGIONS, StreamsApp.PURCHASES, StreamsApp.REGION_TOTALS_OUT);
            // The table first, stamped before every purchase: Streams processes a task's records
            // in timestamp order, so each purchase finds its user's region.
            try (KafkaProducer<String, String> producer = producer(bootstrap, new StringSerializer())) {
                for (int user = 0; user < USERS; user++) {
                    producer.send(new ProducerRecord<>(StreamsApp.USER_REGIONS, null, base - 60_000, user(user),
                            region(user)));
                }
            }
            try (KafkaProducer<String, Long> producer = producer(bootstrap, new LongSerializer())) {
                for (int p = 0; p < purchases; p++) {
                    producer.send(new ProducerRecord<>(StreamsApp.PURCHASES, null, purchaseTime(base, p),
                            user(p % USERS), amount(p)));
                }
            }
            Map<String, Long> expected = regionTotals(base, purchases);
            try (KafkaStreams streams = inProcess(bootstrap, StreamsApp.REGION_TOTALS, guarantee);
                    Output output = new Output(bootstrap, StreamsApp.REGION_TOTALS_OUT)) {
                Map<String, Long> got = output.awaitAtLeast(expected, () -> failed(streams));
                Check.equal(expected, got, "sums per region and window");
                String app = StreamsApp.applicationId(StreamsApp.REGION_TOTALS);
                checkConfig(admin, app + "-" + StreamsApp.REGIONS_GROUPING + "-repartition", "cleanup.policy",
                        "delete");
                checkConfig(admin, app + "-" + StreamsApp.REGION_TOTALS_STORE + "-changelog", "cleanup.policy",
                        "compact,delete");
                checkConfig(admin, app + "-" + StreamsApp.USER_REGIONS_STORE + "-changelog", "cleanup.policy",
                        "compact");
            }
        }
    }

    /**
     * Word count scaled out and back in: a second instance joins the first one's group (the
     * Streams assignor moves tasks to it, the first revokes them and commits), then the first
     * leaves; exact counts under either guarantee, as nothing crashed.
     */
    static void wordCountScaled(String bootstrap, List<String> args) throws Exception {
        String guarantee = guarantee(args);
        try (Admin admin = admin(bootstrap);
                Output output = new Output(bootstrap, StreamsApp.WORD_COUNTS)) {
            createTopics(admin, StreamsApp.LINES, StreamsApp.WORD_COUNTS);
            produceLines(bootstrap, 0, 2000);
            KafkaStreams first = inProcess(bootstrap, StreamsApp.WORD_COUNT, guarantee);
            KafkaStreams second = null;
            try {
                output.awaitAtLeast(wordCounts(0, 2000), () -> failed(first));
                second = inProcess(bootstrap, StreamsApp.WORD_COUNT, guarantee);
                KafkaStreams joined = second;
                Check.eventually(OUTPUT_TIMEOUT, "tasks on both instances", () -> {
                    Check.that(failed(first) == null && failed(joined) == null, "an instance stopped");
                    return running(first) && running(joined);
                });
                produceLines(bootstrap, 2000, 4000);
                output.awaitAtLeast(wordCounts(0, 4000), () -> failed(first) != null ? failed(first) : failed(joined));
                first.close(new KafkaStreams.CloseOptions().leaveGroup(true).timeout(Duration.ofSeconds(30)));
                produceLines(bootstrap, 4000, 6000);
                Map<String, Long> expected = wordCounts(0, 6000);
                Check.equal(expected, output.awaitAtLeast(expected, () -> failed(joined)), "word counts");
            } finally {
                first.close(Duration.ofSeconds(30));
                if (second != null) {
                    second.close(Duration.ofSeconds(30));
                }
            }
        }
    }

    /** Whether the instance runs with at least one active task. */
    static boolean running(KafkaStreams streams) {
        return streams.state() == KafkaStreams.State.RUNNING && streams.metadataForLocalThreads().stream()
                .anyMatch(thread -> !thread.activeTasks().isEmpty());
    }

    /**
     * Word count in a JVM of its own, killed with SIGKILL once some of its output is committed
     * and while it is stalled inside a transaction (see {@link StreamsApp}), before it has all
     * its input; then started again, on the same state dir or (args[1] {@code state_lost}) on a
     * new one, as on another machine. Under exactly_once_v2 every line counts once: the open
     * transaction is aborted, by the restarted producer's InitProducerId (same state dir, same
     * transactional id) or by the broker when it times out (a new state dir, a new transactional
     * id, all state restored from the changelog). Under at_least_once lines may count twice,
     * none zero.
     */
    static void wordCountKilled(String bootstrap, List<String> args) throws Exception {
        Check.that(args.size() == 2 && List.of("same_state", "state_lost").contains(args.get(1)),
                "arguments: GUARANTEE same_state|state_lost");
        String guarantee = args.get(0);
        boolean exactlyOnce = guarantee.equals("exactly_once_v2");
        int firstLines = 3000;
        int lines = 5000;
        Path stateDir = Files.createTempDirectory("sluice-streams-killed");
        Path marker = Files.createTempDirectory("sluice-streams-stall").resolve("stalled");
        String app = StreamsApp.applicationId(StreamsApp.WORD_COUNT);
        String stalledTransaction = null;
        try (Admin admin = admin(bootstrap);
                Output output = new Output(bootstrap, StreamsApp.WORD_COUNTS)) {
            createTopics(admin, StreamsApp.LINES, StreamsApp.WORD_COUNTS);
            produceLines(bootstrap, 0, firstLines);
            Process first = start(bootstrap, guarantee, stateDir, marker);
            try {
                Check.eventually(OUTPUT_TIMEOUT, "the app's first committed output", () -> {
                    alive(first);
                    output.poll(Duration.ofMillis(100));
                    return !output.last.isEmpty();
                });
                try (KafkaProducer<String, String> producer = producer(bootstrap, new StringSerializer())) {
                    producer.send(new ProducerRecord<>(StreamsApp.LINES, lineKey(firstLines),
                            line(firstLines) + " " + StreamsApp.STALL));
                }
                Check.eventually(OUTPUT_TIMEOUT, "the app to stall", () -> {
                    alive(first);
                    return Files.exists(marker);
                });
                if (exactlyOnce) {
                    stalledTransaction = awaitTransaction(admin, app, TransactionState.ONGOING);
                    awaitWritten(admin, stalledTransaction);
                }
            } finally {
                first.destroyForcibly().waitFor();
            }
            long counted = output.last.values().stream().mapToLong(Long::longValue).sum();
            System.err.printf("killed the app (transaction %s) with %d words counted%n", stalledTransaction, counted);
            produceLines(bootstrap, firstLines + 1, lines);
            Map<String, Long> expected = wordCounts(0, lines);
            expected.merge(StreamsApp.STALL, 1L, Long::sum);
            Path restartDir = args.get(1).equals("same_state") ? stateDir
                    : Files.createTempDirectory("sluice-streams-restarted");
            Process restarted = start(bootstrap, guarantee, restartDir, marker);
            try {
                Map<String, Long> got = output.awaitAtLeast(expected,
                        () -> restarted.isAlive() ? null : "the app exited with " + restarted.exitValue());
                if (exactlyOnce) {
                    Check.equal(expected, got, "word counts after the kill");
                    if (args.get(1).equals("state_lost")) {
                        // Its records held the last stable offsets back until the broker aborted
                        // it; the abort's last step (CompleteAbort) follows its markers.
                        String id = stalledTransaction;
                        Check.eventually(Duration.ofSeconds(10), "the killed app's transaction to abort",
                                () -> describe(admin, id).state() == TransactionState.COMPLETE_ABORT);
                    }
                }
                // at_least_once: awaitAtLeast saw every word reach its count; nothing was lost.
            } finally {
                restarted.destroyForcibly().waitFor();
            }
        }
    }

    static void alive(Process app) {
        if (!app.isAlive()) {
            throw new AssertionError("the app exited with " + app.exitValue());
        }
    }

    static TransactionDescription describe(Admin admin, String transactionalId) {
        try {
            return admin.describeTransactions(List.of(transactionalId)).all().get().get(transactionalId);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Waits until every partition of the open transaction holds some of its records: the
     * producer is in it (DescribeProducers) with a transaction start offset, so the partition's
     * last stable offset stays behind until the transaction ends.
     */
    static void awaitWritten(Admin admin, String transactionalId) throws Exception {
        TransactionDescription open = describe(admin, transactionalId);
        Check.that(!open.topicPartitions().isEmpty(), "transaction %s has no partitions", open);
        Check.eventually(OUTPUT_TIMEOUT, "the records of " + open, () -> {
            try {
                return admin.describeProducers(open.topicPartitions()).all().get().values().stream()
                        .allMatch(partition -> partition.activeProducers().stream().anyMatch(producer ->
                                producer.producerId() == open.producerId()
                                        && producer.currentTransactionStartOffset().isPresent()));
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        System.err.println("stalled in " + open);
    }

    /** Waits until a transactional id of the app is in {@code state}; returns it. */
    static String awaitTransaction(Admin admin, String app, TransactionState state) throws Exception {
        String[] found = new String[1];
        Check.eventually(OUTPUT_TIMEOUT, "a transaction of " + app + " in state " + state, () -> {
            try {
                for (TransactionListing listing : admin.listTransactions().all().get()) {
                    if (listing.transactionalId().startsWith(app) && listing.state() == state) {
                        found[0] = listing.transactionalId();
                        return true;
                    }
                }
                return false;
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        return found[0];
    }

    // ---- the inputs and what the apps must make of them ----------------------------------------

    static String guarantee(List<String> args) {
        Check.that(args.size() == 1, "one argument: at_least_once or exactly_once_v2");
        return args.get(0);
    }

    /** Line {@code i}: WORDS_PER_LINE words of the vocabulary, a fixed function of i. */
    static String line(int i) {
        StringBuilder line = new StringBuilder();
        for (int j = 0; j < WORDS_PER_LINE; j++) {
            if (j > 0) {
                line.append(' ');
            }
            line.append("w").append((i * 7 + j * 13 + i / 3) % VOCABULARY);
        }
        return line.toString();
    }

    static String lineKey(int i) {
        return "line-" + i;
    }

    static Map<String, Long> wordCounts(int from, int to) {
        Map<String, Long> counts = new TreeMap<>();
        for (int i = from; i < to; i++) {
            for (String word : line(i).split(" ")) {
                counts.merge(word, 1L, Long::sum);
            }
        }
        return counts;
    }

    static void produceLines(String bootstrap, int from, int to) {
        try (KafkaProducer<String, String> producer = producer(bootstrap, new StringSerializer())) {
            for (int i = from; i < to; i++) {
                producer.send(new ProducerRecord<>(StreamsApp.LINES, lineKey(i), line(i)));
            }
        }
    }

    static final int USERS = 10;
    static final int REGIONS = 3;
    /** Purchases per window: one a second. */
    static final long PURCHASE_SPACING_MS = 1000;

    static String user(int user) {
        return "user-" + user;
    }

    static String region(int user) {
        return "region-" + (user % REGIONS);
    }

    static long amount(int purchase) {
        return purchase % 7 + 1;
    }

    static long purchaseTime(long base, int purchase) {
        return base + purchase * PURCHASE_SPACING_MS;
    }

    /** A window start an hour ago: recent enough for any retention, the same windows every run. */
    static long windowAlignedBase() {
        long window = StreamsApp.WINDOW.toMillis();
        return (System.currentTimeMillis() - Duration.ofHours(1).toMillis()) / window * window;
    }

    static Map<String, Long> regionTotals(long base, int purchases) {
        long window = StreamsApp.WINDOW.toMillis();
        Map<String, Long> totals = new TreeMap<>();
        for (int p = 0; p < purchases; p++) {
            long start = purchaseTime(base, p) / window * window;
            totals.merge(region(p % USERS) + "@" + start, amount(p), Long::sum);
        }
        return totals;
    }

    // ---- clients --------------------------------------------------------------------------------

    static Admin admin(String bootstrap) {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return Admin.create(props);
    }

    /** Topics of PARTITIONS partitions at the broker's default replication factor. */
    static void createTopics(Admin admin, String... names) throws Exception {
        List<NewTopic> topics = new ArrayList<>();
        for (String name : names) {
            topics.add(new NewTopic(name, Optional.of(PARTITIONS), Optional.empty()));
        }
        admin.createTopics(topics).all().get();
    }

    /** The default (idempotent, acks=all) producer; closing it waits for every send. */
    static <V> KafkaProducer<String, V> producer(String bootstrap, Serializer<V> values) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        return new KafkaProducer<>(props, new StringSerializer(), values);
    }

    static void checkConfig(Admin admin, String topic, String name, String expected) throws Exception {
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
        Check.that(config.get(name) != null, "%s has no %s", topic, name);
        Check.equal(expected, config.get(name).value(), topic + " " + name);
    }

    /** Streams deletes what it consumed of a repartition topic (DeleteRecords): the log start moves. */
    static void awaitPurged(Admin admin, String topic) throws Exception {
        Map<TopicPartition, OffsetSpec> earliest = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            earliest.put(new TopicPartition(topic, p), OffsetSpec.earliest());
        }
        Check.eventually(Duration.ofSeconds(30), topic + "'s log start offsets to move", () -> {
            try {
                Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> offsets =
                        admin.listOffsets(earliest).all().get();
                return offsets.values().stream().allMatch(info -> info.offset() > 0);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
    }

    /** A Streams app in this JVM, started. */
    static KafkaStreams inProcess(String bootstrap, String app, String guarantee) throws Exception {
        KafkaStreams streams = StreamsApp.create(bootstrap, app, guarantee,
                Files.createTempDirectory("sluice-streams"));
        streams.start();
        return streams;
    }

    /** Why an in-process app stopped, or null while it runs. */
    static String failed(KafkaStreams streams) {
        KafkaStreams.State state = streams.state();
        return state == KafkaStreams.State.ERROR || state == KafkaStreams.State.NOT_RUNNING
                ? "the Streams app is " + state : null;
    }

    /**
     * StreamsApp's main for the word count in a JVM of its own, on this JVM's class path and
     * logging configuration. Its stdin stays a pipe from here: it exits when this JVM does.
     */
    static Process start(String bootstrap, String guarantee, Path stateDir, Path stallMarker) throws Exception {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.add("-XX:TieredStopAtLevel=1");
        command.add("-XX:+UseSerialGC");
        for (String property : List.of("log4j2.configurationFile", "sluice.java.log")) {
            if (System.getProperty(property) != null) {
                command.add("-D" + property + "=" + System.getProperty(property));
            }
        }
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), StreamsApp.class.getName(), bootstrap,
                StreamsApp.WORD_COUNT, guarantee, stateDir.toString(), stallMarker.toString()));
        return new ProcessBuilder(command)
                .redirectOutput(ProcessBuilder.Redirect.INHERIT)
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
    }

    /**
     * An app's output topic read from the start at read_committed by a consumer of no group,
     * keeping the last value per key.
     */
    static final class Output implements AutoCloseable {
        final KafkaConsumer<String, Long> consumer;
        final Map<String, Long> last = new TreeMap<>();

        Output(String bootstrap, String topic) {
            Properties props = new Properties();
            props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            consumer = new KafkaConsumer<>(props, new StringDeserializer(), new LongDeserializer());
            List<TopicPartition> partitions = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                partitions.add(new TopicPartition(topic, p));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
        }

        void poll(Duration timeout) {
            for (ConsumerRecord<String, Long> record : consumer.poll(timeout)) {
                last.put(record.key(), record.value());
            }
        }

        /**
         * Reads until every key has at least its expected value (and no key is unexpected), then
         * SETTLE more, and returns the last values. {@code failure} says why the app stopped, if
         * it did.
         */
        Map<String, Long> awaitAtLeast(Map<String, Long> expected, Supplier<String> failure) throws Exception {
            try {
                Check.eventually(OUTPUT_TIMEOUT, "the expected output", () -> {
                    String why = failure.get();
                    Check.that(why == null, "%s", why);
                    poll(Duration.ofMillis(100));
                    return expected.entrySet().stream()
                            .allMatch(e -> last.getOrDefault(e.getKey(), 0L) >= e.getValue());
                });
            } catch (AssertionError e) {
                throw new AssertionError(e.getMessage() + "; expected " + expected + ", output so far " + last, e);
            }
            long settled = System.nanoTime() + SETTLE.toNanos();
            while (System.nanoTime() < settled) {
                poll(Duration.ofMillis(100));
            }
            Check.equal(expected.keySet(), last.keySet(), "keys of the output");
            return new TreeMap<>(last);
        }

        @Override
        public void close() {
            consumer.close();
        }
    }
}
