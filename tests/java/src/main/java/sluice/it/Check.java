package sluice.it;

import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * The scenario runner and the few assertions the scenarios use. A scenario class's main hands
 * its scenarios to {@link #run}; the Rust harness runs {@code java sluice.it.X --bootstrap ADDR
 * scenario [args]} and looks for the one line {@code PASS scenario}, or shows the
 * {@code FAIL scenario: why} line - the same convention as tests/clients/*.py.
 */
public final class Check {
    private Check() {}

    /** One scenario: the broker's bootstrap address and the arguments after the scenario name. */
    @FunctionalInterface
    public interface Scenario {
        void run(String bootstrap, List<String> args) throws Exception;
    }

    /** Runs the scenario argv names; exits 0 on PASS, 1 on FAIL, 2 on bad usage. */
    public static void run(String[] argv, Map<String, Scenario> scenarios) {
        if (argv.length < 3 || !argv[0].equals("--bootstrap") || !scenarios.containsKey(argv[2])) {
            System.err.println("usage: --bootstrap HOST:PORT SCENARIO [ARGS...]; scenarios: " + scenarios.keySet());
            System.exit(2);
        }
        String name = argv[2];
        try {
            scenarios.get(name).run(argv[1], Arrays.asList(argv).subList(3, argv.length));
            System.out.println("PASS " + name);
            System.out.flush();
            // Kafka's clients and Streams leave non-daemon threads behind on some failure
            // paths; exit rather than hang the test.
            System.exit(0);
        } catch (Throwable e) {
            e.printStackTrace();
            System.out.println("FAIL " + name + ": " + e);
            System.out.flush();
            System.exit(1);
        }
    }

    /** An ordered map of scenarios, for {@link #run}. */
    public static Map<String, Scenario> scenarios() {
        return new LinkedHashMap<>();
    }

    public static void that(boolean condition, String format, Object... args) {
        if (!condition) {
            throw new AssertionError(String.format(format, args));
        }
    }

    public static void equal(Object expected, Object actual, String what) {
        if (!java.util.Objects.equals(expected, actual)) {
            throw new AssertionError(what + ": expected " + expected + ", got " + actual);
        }
    }

    /** Polls {@code condition} every 100 ms until it holds; fails naming {@code what} at the deadline. */
    public static void eventually(Duration timeout, String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeout + " waiting for " + what);
            }
            Thread.sleep(100);
        }
    }
}
