package sluice.it;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Kafka's Java client against Sluice with its default settings. */
public final class ClientScenarios {
    private ClientScenarios() {}

    public static void main(String[] argv) {
        Map<String, Check.Scenario> scenarios = Check.scenarios();
        scenarios.put("producer_defaults", ClientScenarios::producerDefaults);
        Check.run(argv, scenarios);
    }

    /** A producer with nothing set but bootstrap and serializers: idempotent, acks=all. */
    static KafkaProducer<String, String> producer(String bootstrap) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return new KafkaProducer<>(props);
    }

    /**
     * A consumer with nothing set but bootstrap, deserializers, (when not null) a group, and
     * auto.offset.reset=earliest so a new group reads what the scenario wrote before it.
     */
    static KafkaConsumer<String, String> consumer(String bootstrap, String group) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        if (group != null) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        return new KafkaConsumer<>(props);
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
        Properties props = new Properties();
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "java-defaults-group")) {
            consumer.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (got.size() < count && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(got::add);
            }
            Check.equal(count, got.size(), "records consumed");
            for (int i = 0; i < count; i++) {
                Check.equal("v" + i, got.get(i).value(), "value at offset " + i);
            }
        }
    }
}
