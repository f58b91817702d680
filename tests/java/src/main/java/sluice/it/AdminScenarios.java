package sluice.it;

import static sluice.it.ClientScenarios.admin;
import static sluice.it.ClientScenarios.consumer;
import static sluice.it.ClientScenarios.createTopic;
import static sluice.it.ClientScenarios.fill;
import static sluice.it.ClientScenarios.pollFor;
import static sluice.it.ClientScenarios.producer;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AbortTransactionSpec;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeProducersResult.PartitionProducerState;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsResult;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownMemberIdException;
import org.apache.kafka.common.errors.UnknownTopicIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

/** Kafka's Java AdminClient against Sluice, with its default settings. */
public final class AdminScenarios {
    private AdminScenarios() {}

    public static void main(String[] argv) {
        Map<String, Check.Scenario> scenarios = Check.scenarios();
        scenarios.put("topics", AdminScenarios::topics);
        scenarios.put("configs", AdminScenarios::configs);
        scenarios.put("cluster", AdminScenarios::cluster);
        scenarios.put("groups", AdminScenarios::groups);
        scenarios.put("list_offsets", AdminScenarios::listOffsets);
        scenarios.put("delete_records", AdminScenarios::deleteRecords);
        scenarios.put("transactions", AdminScenarios::transactions);
        Check.run(argv, scenarios);
    }

    /** Asserts that {@code future} fails with an {@code expected}; returns its message. */
    static String fails(KafkaFuture<?> future, Class<? extends Throwable> expected, String what)
            throws InterruptedException {
        try {
            Object value = future.get();
            throw new AssertionError(what + ": expected " + expected.getSimpleName() + ", got " + value);
        } catch (ExecutionException e) {
            Check.that(expected.isInstance(e.getCause()), "%s: expected %s, got %s", what, expected.getSimpleName(),
                    e.getCause());
            return e.getCause().getMessage();
        }
    }

    static TopicDescription describe(Admin admin, String topic) throws Exception {
        return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
    }

    static Config topicConfig(Admin admin, String topic) throws Exception {
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        return admin.describeConfigs(List.of(resource)).all().get().get(resource);
    }

    /**
     * The topic's config once `name` reads `expected` (or after ClientScenarios.WAIT, for the
     * caller's check to report). In a cluster, as in Kafka's, a change is committed by the
     * controller before the answer, but another broker may answer describeConfigs a moment before
     * it has applied the change; Kafka's own tests wait for the metadata the same way.
     */
    static Config topicConfigOnce(Admin admin, String topic, String name, String expected) throws Exception {
        long deadline = System.nanoTime() + ClientScenarios.WAIT.toNanos();
        while (true) {
            Config config = topicConfig(admin, topic);
            ConfigEntry entry = config.get(name);
            if ((entry != null && expected.equals(entry.value())) || System.nanoTime() > deadline) {
                return config;
            }
            Thread.sleep(50);
        }
    }

    /**
     * createTopics (plain, with configs, with the broker's defaults, validate-only) and its errors
     * (a duplicate, a bad name, no partitions, too many replicas, a bad config), listTopics,
     * describeTopics, createPartitions and deleteTopics.
     */
    static void topics(String bootstrap, List<String> args) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            Map<String, String> configs = Map.of("retention.ms", "3600000", "cleanup.policy", "compact");
            CreateTopicsResult created = admin.createTopics(List.of(
                    new NewTopic("admin-plain", 3, (short) 1),
                    new NewTopic("admin-configs", 1, (short) 1).configs(configs),
                    new NewTopic("admin-defaults", Optional.empty(), Optional.empty())));
            created.all().get();
            Check.equal(3, created.numPartitions("admin-plain").get(), "numPartitions in the CreateTopics answer");
            Check.equal(1, created.numPartitions("admin-defaults").get(), "the broker's default partitions");
            Check.equal(1, created.replicationFactor("admin-defaults").get(), "the broker's replication factor");
            Check.equal("3600000", created.config("admin-configs").get().get("retention.ms").value(),
                    "retention.ms in the CreateTopics answer");
            Uuid plainId = created.topicId("admin-plain").get();
            Check.that(!Uuid.ZERO_UUID.equals(plainId), "a topic id in the CreateTopics answer");
            Config config = topicConfig(admin, "admin-configs");
            Check.equal("3600000", config.get("retention.ms").value(), "retention.ms set at creation");
            Check.equal(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, config.get("retention.ms").source(),
                    "source of retention.ms");
            Check.equal("compact", config.get("cleanup.policy").value(), "cleanup.policy set at creation");

            fails(admin.createTopics(List.of(new NewTopic("admin-plain", 1, (short) 1))).all(),
                    TopicExistsException.class, "a duplicate topic");
            fails(admin.createTopics(List.of(new NewTopic("bad/name", 1, (short) 1))).all(),
                    InvalidTopicException.class, "a bad topic name");
            fails(admin.createTopics(List.of(new NewTopic("admin-none", 0, (short) 1))).all(),
                    InvalidPartitionsException.class, "zero partitions");
            int brokers = admin.describeCluster().nodes().get().size();
            fails(admin.createTopics(List.of(new NewTopic("admin-rf3", 1, (short) (brokers + 1)))).all(),
                    InvalidReplicationFactorException.class, "more replicas than brokers");
            fails(admin.createTopics(List.of(new NewTopic("admin-badconf", 1, (short) 1)
                            .configs(Map.of("retention.ms", "soon")))).all(),
                    InvalidConfigurationException.class, "a bad config value");
            fails(admin.createTopics(List.of(new NewTopic("admin-unknownconf", 1, (short) 1)
                            .configs(Map.of("no.such.config", "1")))).all(),
                    InvalidConfigurationException.class, "an unknown config");
            admin.createTopics(List.of(new NewTopic("admin-validate", 2, (short) 1)),
                    new CreateTopicsOptions().validateOnly(true)).all().get();

            // A name starting with "__" is an ordinary topic, not one of Kafka's internal ones.
            admin.createTopics(List.of(new NewTopic("__admin-user", 1, (short) 1))).all().get();
            Set<String> names = admin.listTopics().names().get();
            Check.equal(Set.of("admin-plain", "admin-configs", "admin-defaults", "__admin-user"), names, "listTopics");
            Check.that(admin.listTopics(new ListTopicsOptions().listInternal(true)).names().get().containsAll(names),
                    "listTopics with internal ones");

            TopicDescription plain = describe(admin, "admin-plain");
            Check.equal(3, plain.partitions().size(), "partitions of admin-plain");
            Check.that(!plain.isInternal(), "admin-plain is not internal");
            Check.equal(plainId, plain.topicId(), "topic id of admin-plain");
            TopicDescription byId = admin.describeTopics(TopicCollection.ofTopicIds(List.of(plainId)))
                    .allTopicIds().get().get(plainId);
            Check.equal("admin-plain", byId.name(), "the topic described by id");
            Check.equal(plainId, admin.listTopics().namesToListings().get().get("admin-plain").topicId(),
                    "topic id in listTopics");
            for (TopicPartitionInfo partition : plain.partitions()) {
                Check.that(partition.leader() != null, "partition %d has a leader", partition.partition());
                Check.equal(List.of(partition.leader()), partition.replicas(), "replicas of " + partition.partition());
                Check.equal(List.of(partition.leader()), partition.isr(), "isr of " + partition.partition());
            }
            Check.equal(1, describe(admin, "admin-defaults").partitions().size(), "partitions of admin-defaults");
            fails(admin.describeTopics(List.of("admin-missing")).allTopicNames(),
                    UnknownTopicOrPartitionException.class, "describing a missing topic");

            admin.createPartitions(Map.of("admin-plain", NewPartitions.increaseTo(5))).all().get();
            Check.equal(5, describe(admin, "admin-plain").partitions().size(), "partitions after createPartitions");
            fails(admin.createPartitions(Map.of("admin-plain", NewPartitions.increaseTo(2))).all(),
                    InvalidPartitionsException.class, "fewer partitions");
            fails(admin.createPartitions(Map.of("admin-missing", NewPartitions.increaseTo(2))).all(),
                    UnknownTopicOrPartitionException.class, "partitions of a missing topic");

            admin.deleteTopics(List.of("admin-plain", "__admin-user")).all().get();
            Uuid defaultsId = describe(admin, "admin-defaults").topicId();
            admin.deleteTopics(TopicCollection.ofTopicIds(List.of(defaultsId))).all().get();
            Check.equal(Set.of("admin-configs"), admin.listTopics().names().get(), "listTopics after deleteTopics");
            fails(admin.deleteTopics(List.of("admin-missing")).all(), UnknownTopicOrPartitionException.class,
                    "deleting a missing topic");
            fails(admin.deleteTopics(TopicCollection.ofTopicIds(List.of(plainId))).all(), UnknownTopicIdException.class,
                    "deleting a missing topic id");
            // A deleted name can be created again, from scratch, with a new id.
            admin.createTopics(List.of(new NewTopic("admin-plain", 1, (short) 1))).all().get();
            TopicDescription again = describe(admin, "admin-plain");
            Check.equal(1, again.partitions().size(), "partitions of the new admin-plain");
            Check.that(!plainId.equals(again.topicId()), "the new admin-plain has a new id");
        }
    }

    /**
     * describeConfigs of a topic and of the broker; incrementalAlterConfigs SET and DELETE (and
     * APPEND / SUBTRACT on a list) checked with describeConfigs, and its errors.
     */
    static void configs(String bootstrap, List<String> args) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            createTopic(bootstrap, "admin-alter", 1);
            Config config = topicConfig(admin, "admin-alter");
            ConfigEntry retention = config.get("retention.ms");
            Check.that(retention != null && retention.isDefault(), "retention.ms is a default: %s", retention);
            Check.equal("delete", config.get("cleanup.policy").value(), "default cleanup.policy");

            // A broker that exists: node 0 alone, or the lowest id of a cluster.
            String brokerId = String.valueOf(admin.describeCluster().nodes().get().stream()
                    .mapToInt(Node::id).min().orElse(0));
            ConfigResource brokerResource = new ConfigResource(ConfigResource.Type.BROKER, brokerId);
            Config brokerConfig = admin.describeConfigs(List.of(brokerResource)).all().get().get(brokerResource);
            Check.equal(brokerId, brokerConfig.get("node.id").value(), "broker node.id");
            Check.that(brokerConfig.get("log.retention.ms") != null, "broker log.retention.ms: %s", brokerConfig);

            ConfigResource topic = new ConfigResource(ConfigResource.Type.TOPIC, "admin-alter");
            alter(admin, topic, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "120000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("max.message.bytes", "2000000"), AlterConfigOp.OpType.SET)));
            config = topicConfigOnce(admin, "admin-alter", "retention.ms", "120000");
            Check.equal("120000", config.get("retention.ms").value(), "retention.ms after SET");
            Check.equal(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, config.get("retention.ms").source(),
                    "source of retention.ms after SET");
            Check.equal("2000000", config.get("max.message.bytes").value(), "max.message.bytes after SET");

            alter(admin, topic, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE)));
            config = topicConfigOnce(admin, "admin-alter", "retention.ms", retention.value());
            Check.equal(retention.value(), config.get("retention.ms").value(), "retention.ms after DELETE");
            Check.that(config.get("retention.ms").isDefault(), "retention.ms is a default again");
            Check.equal("2000000", config.get("max.message.bytes").value(), "max.message.bytes kept");

            alter(admin, topic, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND)));
            config = topicConfigOnce(admin, "admin-alter", "cleanup.policy", "delete,compact");
            Check.equal("delete,compact", config.get("cleanup.policy").value(),
                    "cleanup.policy after APPEND");
            alter(admin, topic, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.SUBTRACT)));
            config = topicConfigOnce(admin, "admin-alter", "cleanup.policy", "compact");
            Check.equal("compact", config.get("cleanup.policy").value(), "cleanup.policy after SUBTRACT");

            fails(admin.incrementalAlterConfigs(Map.of(topic, List.of(new AlterConfigOp(
                            new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET)))).all(),
                    InvalidConfigurationException.class, "a bad value");
            fails(admin.incrementalAlterConfigs(Map.of(topic, List.of(new AlterConfigOp(
                            new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET)))).all(),
                    InvalidConfigurationException.class, "an unknown config");
            ConfigResource missing = new ConfigResource(ConfigResource.Type.TOPIC, "admin-missing");
            fails(admin.incrementalAlterConfigs(Map.of(missing, List.of(new AlterConfigOp(
                            new ConfigEntry("retention.ms", "1000"), AlterConfigOp.OpType.SET)))).all(),
                    UnknownTopicOrPartitionException.class, "a missing topic");
            fails(admin.describeConfigs(List.of(missing)).all(), UnknownTopicOrPartitionException.class,
                    "describing a missing topic's configs");
            Check.equal("compact", topicConfig(admin, "admin-alter").get("cleanup.policy").value(),
                    "cleanup.policy after the refused changes");
        }
    }

    static void alter(Admin admin, ConfigResource resource, Collection<AlterConfigOp> ops) throws Exception {
        admin.incrementalAlterConfigs(Map.of(resource, ops)).all().get();
    }

    /**
     * The broker that should coordinate `key`: the leader of its partition of `internalTopic`,
     * chosen as Kafka chooses it (the key's hash code, made non-negative, modulo the partitions).
     */
    static int coordinatorOf(Admin admin, String internalTopic, String key) throws Exception {
        TopicDescription topic = admin.describeTopics(List.of(internalTopic)).allTopicNames().get().get(internalTopic);
        int hash = key.hashCode();
        int partition = (hash == Integer.MIN_VALUE ? 0 : Math.abs(hash)) % topic.partitions().size();
        return topic.partitions().get(partition).leader().id();
    }

    /**
     * describeCluster: the bootstrap among the nodes, the controller one of them, and a cluster id;
     * a single broker is node 0 and its own controller.
     */
    static void cluster(String bootstrap, List<String> args) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            DescribeClusterResult cluster = admin.describeCluster();
            Collection<Node> nodes = cluster.nodes().get();
            Node controller = cluster.controller().get();
            Check.that(nodes.contains(controller), "the controller %s is one of the nodes %s", controller, nodes);
            Check.that(nodes.stream().anyMatch(n -> bootstrap.equals(n.host() + ":" + n.port())),
                    "the bootstrap %s is one of the nodes %s", bootstrap, nodes);
            if (nodes.size() == 1) {
                Node node = nodes.iterator().next();
                Check.equal(0, node.id(), "the node's id");
                Check.equal(node, controller, "the controller");
            }
            String clusterId = cluster.clusterId().get();
            Check.that(clusterId != null && !clusterId.isEmpty(), "a cluster id: %s", clusterId);
            Check.equal(clusterId, admin.describeCluster().clusterId().get(), "the same cluster id again");
        }
    }

    /**
     * The consumer-group admin calls against a group with a live classic member, then an empty
     * one: list, describe, list / alter / delete offsets, delete the group; and the errors Kafka
     * gives while the group has members.
     */
    static void groups(String bootstrap, List<String> args) throws Exception {
        String topic = "admin-groups";
        String group = "admin-group";
        createTopic(bootstrap, topic, 2);
        fill(bootstrap, topic, 2, 5);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        Properties manual = new Properties();
        manual.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (Admin admin = admin(bootstrap)) {
            try (KafkaConsumer<String, String> consumer = consumer(bootstrap, group, manual)) {
                consumer.subscribe(List.of(topic));
                pollFor(consumer, 10);
                consumer.commitSync();

                Collection<GroupListing> groups = admin.listGroups().all().get();
                GroupListing listing = groups.stream().filter(g -> g.groupId().equals(group)).findFirst()
                        .orElseThrow(() -> new AssertionError("listGroups lacks the group: " + groups));
                Check.equal(Optional.of(GroupType.CLASSIC), listing.type(), "type of the group");
                Check.equal(Optional.of("consumer"), Optional.of(listing.protocol()), "protocol of the group");
                Check.equal(Optional.of(GroupState.STABLE), listing.groupState(), "state in listGroups");
                Check.that(admin.listConsumerGroups().all().get().stream().anyMatch(g -> g.groupId().equals(group)),
                        "listConsumerGroups has the group");
                Check.equal(Set.of(group), groupIds(admin, new ListGroupsOptions().forConsumerGroups()
                        .inGroupStates(Set.of(GroupState.STABLE)).withTypes(Set.of(GroupType.CLASSIC))),
                        "stable classic consumer groups");
                Check.equal(Set.of(), groupIds(admin, new ListGroupsOptions().inGroupStates(Set.of(GroupState.EMPTY))),
                        "empty groups");

                ConsumerGroupDescription live = describeGroup(admin, group);
                Check.equal(GroupState.STABLE, live.groupState(), "state of the live group");
                Check.equal(1, live.members().size(), "members of the live group");
                Check.equal(Set.of(p0, p1), live.members().iterator().next().assignment().topicPartitions(),
                        "the member's assignment");
                Check.that(!live.partitionAssignor().isEmpty(), "an assignor: %s", live.partitionAssignor());
                Check.equal(coordinatorOf(admin, "__consumer_offsets", group), live.coordinator().id(),
                        "the coordinator");
                Check.that(!live.isSimpleConsumerGroup(), "not a simple group");

                fails(admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(1))).all(),
                        UnknownMemberIdException.class, "altering the offsets of a live group");
                fails(admin.deleteConsumerGroupOffsets(group, Set.of(p0)).all(),
                        GroupSubscribedToTopicException.class, "deleting offsets the live group reads");
                fails(admin.deleteConsumerGroups(List.of(group)).all(), GroupNotEmptyException.class,
                        "deleting a live group");
            }
            ConsumerGroupDescription empty = describeGroup(admin, group);
            Check.equal(GroupState.EMPTY, empty.groupState(), "state after the member left");
            Check.equal(0, empty.members().size(), "members after the member left");

            Check.equal(Map.of(p0, "5 ''", p1, "5 ''"), offsets(admin, group), "listConsumerGroupOffsets");
            admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(1, "moved"))).all().get();
            Check.equal(Map.of(p0, "1 'moved'", p1, "5 ''"), offsets(admin, group),
                    "offsets after alterConsumerGroupOffsets");
            ListConsumerGroupOffsetsSpec some = new ListConsumerGroupOffsetsSpec()
                    .topicPartitions(List.of(p1, new TopicPartition(topic, 9)));
            Map<TopicPartition, OffsetAndMetadata> asked = admin.listConsumerGroupOffsets(Map.of(group, some))
                    .partitionsToOffsetAndMetadata(group).get();
            Check.equal(5L, asked.get(p1).offset(), "offset of p1 asked for by name");
            TopicPartition never = new TopicPartition(topic, 9);
            Check.that(asked.containsKey(never) && asked.get(never) == null,
                    "no offset for a partition never committed: %s", asked);
            admin.deleteConsumerGroupOffsets(group, Set.of(p1)).all().get();
            Check.equal(Map.of(p0, "1 'moved'"), offsets(admin, group),
                    "offsets after deleteConsumerGroupOffsets");
            try (KafkaConsumer<String, String> consumer = consumer(bootstrap, group, manual)) {
                consumer.assign(List.of(p0));
                Check.equal("0-1", pollFor(consumer, 1).get(0).value(), "first record after the altered offset");
            }

            // Offsets set for a group nobody joined create it, empty; several groups' offsets
            // come back from one call (OffsetFetch v8 batches them).
            String fresh = "admin-fresh-group";
            admin.alterConsumerGroupOffsets(fresh, Map.of(p1, new OffsetAndMetadata(2))).all().get();
            Set<String> emptyGroups = groupIds(admin, new ListGroupsOptions().inGroupStates(Set.of(GroupState.EMPTY)));
            Check.that(emptyGroups.contains(fresh), "the group made by its offsets is empty: %s", emptyGroups);
            ListConsumerGroupOffsetsResult both = admin.listConsumerGroupOffsets(Map.of(
                    group, new ListConsumerGroupOffsetsSpec(), fresh, new ListConsumerGroupOffsetsSpec()));
            Check.equal(1L, both.partitionsToOffsetAndMetadata(group).get().get(p0).offset(), "offset of the group");
            Check.equal(2L, both.partitionsToOffsetAndMetadata(fresh).get().get(p1).offset(), "offset of the new one");

            admin.deleteConsumerGroups(List.of(group, fresh)).all().get();
            Check.that(admin.listGroups().all().get().stream().noneMatch(g -> g.groupId().equals(group)),
                    "listGroups after deleteConsumerGroups");
            Check.equal(Map.of(), offsets(admin, group), "offsets of the deleted group");
            fails(admin.deleteConsumerGroups(List.of(group)).all(), GroupIdNotFoundException.class,
                    "deleting a missing group");
            fails(admin.describeConsumerGroups(List.of("admin-no-such-group")).all(), GroupIdNotFoundException.class,
                    "describing a missing group");
        }
    }

    static Set<String> groupIds(Admin admin, ListGroupsOptions options) throws Exception {
        return admin.listGroups(options).all().get().stream().map(GroupListing::groupId).collect(Collectors.toSet());
    }

    static ConsumerGroupDescription describeGroup(Admin admin, String group) throws Exception {
        return admin.describeConsumerGroups(List.of(group)).all().get().get(group);
    }

    /** A group's committed offsets as "offset 'metadata'" per partition. */
    static Map<TopicPartition, String> offsets(Admin admin, String group) throws Exception {
        return admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().entrySet().stream()
                .collect(Collectors.toMap(Map.Entry::getKey,
                        e -> e.getValue().offset() + " '" + e.getValue().metadata() + "'"));
    }

    /** listOffsets: earliest, latest, by timestamp and the record with the largest timestamp. */
    static void listOffsets(String bootstrap, List<String> args) throws Exception {
        String topic = "admin-offsets";
        createTopic(bootstrap, topic, 1);
        long base = System.currentTimeMillis() - 60_000;
        // Timestamps out of order: the largest one is at offset 2.
        long[] timestamps = {base, base + 1000, base + 5000, base + 2000, base + 3000};
        try (KafkaProducer<String, String> producer = producer(bootstrap)) {
            for (int i = 0; i < timestamps.length; i++) {
                producer.send(new ProducerRecord<>(topic, 0, timestamps[i], null, "r" + i)).get();
            }
        }
        TopicPartition p0 = new TopicPartition(topic, 0);
        try (Admin admin = admin(bootstrap)) {
            Check.equal(0L, listOffset(admin, p0, OffsetSpec.earliest()).offset(), "earliest");
            Check.equal(5L, listOffset(admin, p0, OffsetSpec.latest()).offset(), "latest");
            ListOffsetsResultInfo max = listOffset(admin, p0, OffsetSpec.maxTimestamp());
            Check.equal(2L, max.offset(), "offset of the largest timestamp");
            Check.equal(base + 5000, max.timestamp(), "the largest timestamp");
            ListOffsetsResultInfo at = listOffset(admin, p0, OffsetSpec.forTimestamp(base + 1500));
            Check.equal(2L, at.offset(), "first offset at or after base+1500");
            Check.equal(base + 5000, at.timestamp(), "its timestamp");
            Check.equal(1L, listOffset(admin, p0, OffsetSpec.forTimestamp(base + 1000)).offset(), "exact timestamp");
            Check.equal(-1L, listOffset(admin, p0, OffsetSpec.forTimestamp(base + 9000)).offset(),
                    "a timestamp after every record");
            fails(admin.listOffsets(Map.of(new TopicPartition("admin-missing", 0), OffsetSpec.latest())).all(),
                    UnknownTopicOrPartitionException.class, "a missing topic");
        }
        // An open transaction: latest is the high watermark for read_uncommitted, the last
        // stable offset (where the transaction began) for read_committed.
        Properties txn = new Properties();
        txn.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "admin-offsets-txn");
        try (KafkaProducer<String, String> producer = producer(bootstrap, txn); Admin admin = admin(bootstrap)) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, 0, null, "open")).get();
            Check.equal(6L, listOffset(admin, p0, OffsetSpec.latest()).offset(), "latest, read_uncommitted");
            ListOffsetsOptions committed = new ListOffsetsOptions(IsolationLevel.READ_COMMITTED);
            Check.equal(5L, admin.listOffsets(Map.of(p0, OffsetSpec.latest()), committed).partitionResult(p0).get()
                    .offset(), "latest, read_committed");
            producer.commitTransaction();
            Check.equal(7L, admin.listOffsets(Map.of(p0, OffsetSpec.latest()), committed).partitionResult(p0).get()
                    .offset(), "latest, read_committed, after the commit marker");
        }
    }

    static ListOffsetsResultInfo listOffset(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get();
    }

    /** deleteRecords moves the earliest offset; a consumer from the beginning starts there. */
    static void deleteRecords(String bootstrap, List<String> args) throws Exception {
        String topic = "admin-delete-records";
        createTopic(bootstrap, topic, 2);
        fill(bootstrap, topic, 2, 10);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (Admin admin = admin(bootstrap)) {
            Map<TopicPartition, Long> lowWatermarks = admin.deleteRecords(Map.of(p0,
                    RecordsToDelete.beforeOffset(4), p1, RecordsToDelete.beforeOffset(-1))).lowWatermarks()
                    .entrySet().stream().collect(Collectors.toMap(Map.Entry::getKey, e -> {
                        try {
                            return e.getValue().get().lowWatermark();
                        } catch (Exception x) {
                            throw new AssertionError(x);
                        }
                    }));
            Check.equal(Map.of(p0, 4L, p1, 10L), lowWatermarks, "low watermarks (p1: up to the high watermark)");
            Check.equal(4L, listOffset(admin, p0, OffsetSpec.earliest()).offset(), "earliest of p0 after delete");
            Check.equal(10L, listOffset(admin, p0, OffsetSpec.latest()).offset(), "latest of p0 after delete");
            fails(admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(11))).all(),
                    OffsetOutOfRangeException.class, "deleting past the high watermark");
            // Deleting below the current start is a no-op that answers the current start.
            Check.equal(4L, admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(2))).lowWatermarks().get(p0)
                    .get().lowWatermark(), "low watermark after deleting below it");
        }
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, null)) {
            consumer.assign(List.of(p0));
            consumer.seekToBeginning(List.of(p0));
            Check.equal(4L, consumer.position(p0), "position after seekToBeginning");
            List<ConsumerRecord<String, String>> got = pollFor(consumer, 6);
            Check.equal("0-4", got.get(0).value(), "first record from the beginning");
            consumer.seek(p0, 1);
            // Out of range below the start: auto.offset.reset=earliest takes the consumer to 4.
            Check.equal("0-4", pollFor(consumer, 1).get(0).value(), "first record after seeking below the start");
        }
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "admin-delete-records-group")) {
            consumer.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = pollFor(consumer, 6);
            Check.equal(6, got.size(), "records a new group reads");
            Check.that(got.stream().allMatch(r -> r.partition() == 0 && r.offset() >= 4), "only p0 from 4: %s", got);
        }
    }
    /**
     * The transaction admin calls on an open transaction: listTransactions (with filters),
     * describeTransactions, describeProducers, abortTransaction (a marker written by the admin,
     * which lets read_committed readers past), and fenceProducers (the producer is fenced).
     */
    static void transactions(String bootstrap, List<String> args) throws Exception {
        String topic = "admin-txn";
        String id = "admin-txn-id";
        createTopic(bootstrap, topic, 1);
        TopicPartition p0 = new TopicPartition(topic, 0);
        Properties txn = new Properties();
        txn.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, id);
        KafkaProducer<String, String> producer = producer(bootstrap, txn);
        try (Admin admin = admin(bootstrap)) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, 0, null, "open")).get();

            Collection<TransactionListing> listed = admin.listTransactions().all().get();
            TransactionListing listing = listed.stream().filter(t -> t.transactionalId().equals(id)).findFirst()
                    .orElseThrow(() -> new AssertionError("listTransactions lacks " + id + ": " + listed));
            Check.equal(TransactionState.ONGOING, listing.state(), "state in listTransactions");
            long producerId = listing.producerId();
            Check.equal(Set.of(id), transactionalIds(admin, new ListTransactionsOptions()
                    .filterStates(Set.of(TransactionState.ONGOING))), "ongoing transactions");
            Check.equal(Set.of(id), transactionalIds(admin, new ListTransactionsOptions()
                    .filterProducerIds(Set.of(producerId))), "transactions of the producer id");
            Check.equal(Set.of(), transactionalIds(admin, new ListTransactionsOptions()
                    .filterStates(Set.of(TransactionState.COMPLETE_COMMIT))), "committed transactions");

            TransactionDescription described = admin.describeTransactions(List.of(id)).description(id).get();
            Check.equal(TransactionState.ONGOING, described.state(), "state in describeTransactions");
            Check.equal(producerId, described.producerId(), "producer id in describeTransactions");
            Check.equal(Set.of(p0), described.topicPartitions(), "partitions of the transaction");
            Check.equal(coordinatorOf(admin, "__transaction_state", id), described.coordinatorId(),
                    "the transaction coordinator");

            PartitionProducerState state = admin.describeProducers(List.of(p0)).partitionResult(p0).get();
            Check.equal(1, state.activeProducers().size(), "active producers of p0");
            ProducerState active = state.activeProducers().get(0);
            Check.equal(producerId, active.producerId(), "the active producer");
            Check.equal(OptionalLong.of(0), active.currentTransactionStartOffset(), "its transaction's start");

            // An abort marker from the admin ends the transaction on p0: read_committed gets past.
            admin.abortTransaction(new AbortTransactionSpec(p0, producerId, (short) active.producerEpoch(),
                    active.coordinatorEpoch().orElse(0))).all().get();
            Check.eventually(ClientScenarios.WAIT, "the last stable offset past the aborted transaction", () -> {
                try {
                    return lastStable(admin, p0) == 2;
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            });

            admin.fenceProducers(List.of(id)).all().get();
            try {
                producer.commitTransaction();
                throw new AssertionError("the fenced producer committed");
            } catch (ProducerFencedException | InvalidProducerEpochException expected) {
                // Fenced, as Kafka answers.
            }
        } finally {
            producer.close(Duration.ZERO);
        }
    }

    static Set<String> transactionalIds(Admin admin, ListTransactionsOptions options) throws Exception {
        return admin.listTransactions(options).all().get().stream().map(TransactionListing::transactionalId)
                .collect(Collectors.toSet());
    }

    static long lastStable(Admin admin, TopicPartition tp) throws Exception {
        return admin.listOffsets(Map.of(tp, OffsetSpec.latest()), new ListOffsetsOptions(IsolationLevel.READ_COMMITTED))
                .partitionResult(tp).get().offset();
    }
}
