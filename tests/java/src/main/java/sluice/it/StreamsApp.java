package sluice.it;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The two Kafka Streams applications the Streams scenarios run, and a main that runs one of them
 * in a JVM of its own, so that a scenario can kill it with SIGKILL and start it again:
 * {@code StreamsApp BOOTSTRAP APP GUARANTEE STATE_DIR [STALL_MARKER]} with APP {@code word_count}
 * or {@code region_totals}. It runs until killed, or until its stdin closes (the driver died), so
 * that no orphan outlives a test.
 *
 * <p>With a STALL_MARKER path, the word count stalls forever at the word {@link #STALL} unless
 * that file exists, which it creates first: the words of the line before STALL are already sent,
 * so the app is stuck inside a transaction (under exactly_once_v2) for the driver to kill it
 * there, and an app restarted with the same marker goes past the word.
 */
public final class StreamsApp {
    private StreamsApp() {}

    /** Word count: lines in, (word, count) out. */
    static final String WORD_COUNT = "word_count";
    static final String LINES = "lines";
    static final String WORD_COUNTS = "word-counts";
    /** The repartition topic groupBy forces: {@code <application.id>-words-repartition}. */
    static final String WORDS_GROUPING = "words";
    /** The count's store; its changelog is {@code <application.id>-word-count-store-changelog}. */
    static final String WORD_COUNT_STORE = "word-count-store";

    /** The word at which the word count stalls once; see the class comment. */
    static final String STALL = "STALL";
    /** Set by main from its STALL_MARKER argument; null: never stall. */
    private static volatile Path stallMarker;

    /** Region totals: purchases (user, amount) joined with users (user, region), summed per region per minute. */
    static final String REGION_TOTALS = "region_totals";
    static final String PURCHASES = "purchases";
    static final String USER_REGIONS = "user-regions";
    static final String REGION_TOTALS_OUT = "region-totals";
    static final String REGIONS_GROUPING = "regions";
    static final String USER_REGIONS_STORE = "user-region-store";
    static final String REGION_TOTALS_STORE = "region-total-store";
    /** The tumbling window. */
    static final Duration WINDOW = Duration.ofMinutes(1);
    /** Grace wide enough that no purchase of a scenario comes too late for its window. */
    static final Duration GRACE = Duration.ofHours(2);

    static String applicationId(String app) {
        return app.replace('_', '-') + "-app";
    }

    static Topology topology(String app) {
        StreamsBuilder builder = new StreamsBuilder();
        switch (app) {
            case WORD_COUNT -> builder.stream(LINES, Consumed.with(Serdes.String(), Serdes.String()))
                    .flatMapValues(line -> Arrays.asList(line.split(" ")))
                    .peek((key, word) -> stallOnce(word))
                    .groupBy((key, word) -> word, Grouped.with(WORDS_GROUPING, Serdes.String(), Serdes.String()))
                    .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as(WORD_COUNT_STORE))
                    .toStream()
                    .to(WORD_COUNTS, Produced.with(Serdes.String(), Serdes.Long()));
            case REGION_TOTALS -> {
                KTable<String, String> regions = builder.table(USER_REGIONS,
                        Consumed.with(Serdes.String(), Serdes.String()),
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as(USER_REGIONS_STORE));
                builder.stream(PURCHASES, Consumed.with(Serdes.String(), Serdes.Long()))
                        .join(regions, (amount, region) -> region + ":" + amount)
                        .groupBy((user, regionAmount) -> regionAmount.split(":")[0],
                                Grouped.with(REGIONS_GROUPING, Serdes.String(), Serdes.String()))
                        .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, GRACE))
                        .aggregate(() -> 0L,
                                (region, regionAmount, sum) -> sum + Long.parseLong(regionAmount.split(":")[1]),
                                Materialized.<String, Long, WindowStore<Bytes, byte[]>>as(REGION_TOTALS_STORE)
                                        .withValueSerde(Serdes.Long()))
                        .toStream((window, sum) -> window.key() + "@" + window.window().start())
                        .to(REGION_TOTALS_OUT, Produced.with(Serdes.String(), Serdes.Long()));
            }
            default -> throw new IllegalArgumentException("no Streams app " + app);
        }
        return builder.build();
    }

    /** Blocks this stream thread for good at the first STALL word, if main was given a marker. */
    private static void stallOnce(String word) {
        Path marker = stallMarker;
        if (!word.equals(STALL) || marker == null) {
            return;
        }
        try {
            Files.createFile(marker);
        } catch (FileAlreadyExistsException e) {
            return;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        System.err.println("StreamsApp: stalled at " + STALL);
        while (true) {
            try {
                Thread.sleep(Long.MAX_VALUE);
            } catch (InterruptedException e) {
                // Stay stalled: only the driver's SIGKILL ends this.
            }
        }
    }

    /**
     * The app's configuration: one thread, commits every 100 ms, the consumer's session short so
     * that a killed instance leaves its group within seconds, and repartition topics purged
     * (DeleteRecords) at every commit rather than every 30 s.
     */
    static Properties properties(String bootstrap, String app, String guarantee, Path stateDir) {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId(app));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        return props;
    }

    /** Builds the app; any uncaught error shuts the client down (state ERROR) so a scenario sees it. */
    static KafkaStreams create(String bootstrap, String app, String guarantee, Path stateDir) {
        KafkaStreams streams = new KafkaStreams(topology(app), properties(bootstrap, app, guarantee, stateDir));
        streams.setUncaughtExceptionHandler(error -> {
            System.err.println("Streams app " + app + " failed: " + error);
            error.printStackTrace();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        return streams;
    }

    public static void main(String[] argv) throws Exception {
        if (argv.length != 4 && argv.length != 5) {
            System.err.println("usage: StreamsApp BOOTSTRAP APP GUARANTEE STATE_DIR [STALL_MARKER]");
            System.exit(2);
        }
        stallMarker = argv.length == 5 ? Path.of(argv[4]) : null;
        KafkaStreams streams = create(argv[0], argv[1], argv[2], Path.of(argv[3]));
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.err.println("StreamsApp " + argv[1] + ": " + before + " -> " + now);
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        Thread watchdog = new Thread(() -> {
            try {
                while (System.in.read() >= 0) {
                    // Nothing is sent; the read only waits for the driver's end of the pipe to close.
                }
            } catch (java.io.IOException e) {
                // Same as end of input.
            }
            Runtime.getRuntime().halt(3);
        }, "stdin-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        streams.start();
        stopped.await();
        // ERROR: exit non-zero for the driver to report.
        Runtime.getRuntime().halt(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
    }
}
