//! The API keys that name what a request is.

/// A Kafka API, by the key at the start of every request (Kafka's names, Kafka 3.9's list).
/// Which of them this codec implements, and at which versions, is [`super::SUPPORTED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i16)]
pub enum ApiKey {
    /// `Produce` (0).
    Produce = 0,
    /// `Fetch` (1).
    Fetch = 1,
    /// `ListOffsets` (2).
    ListOffsets = 2,
    /// `Metadata` (3).
    Metadata = 3,
    /// `LeaderAndIsr` (4).
    LeaderAndIsr = 4,
    /// `StopReplica` (5).
    StopReplica = 5,
    /// `UpdateMetadata` (6).
    UpdateMetadata = 6,
    /// `ControlledShutdown` (7).
    ControlledShutdown = 7,
    /// `OffsetCommit` (8).
    OffsetCommit = 8,
    /// `OffsetFetch` (9).
    OffsetFetch = 9,
    /// `FindCoordinator` (10).
    FindCoordinator = 10,
    /// `JoinGroup` (11).
    JoinGroup = 11,
    /// `Heartbeat` (12).
    Heartbeat = 12,
    /// `LeaveGroup` (13).
    LeaveGroup = 13,
    /// `SyncGroup` (14).
    SyncGroup = 14,
    /// `DescribeGroups` (15).
    DescribeGroups = 15,
    /// `ListGroups` (16).
    ListGroups = 16,
    /// `SaslHandshake` (17).
    SaslHandshake = 17,
    /// `ApiVersions` (18).
    ApiVersions = 18,
    /// `CreateTopics` (19).
    CreateTopics = 19,
    /// `DeleteTopics` (20).
    DeleteTopics = 20,
    /// `DeleteRecords` (21).
    DeleteRecords = 21,
    /// `InitProducerId` (22).
    InitProducerId = 22,
    /// `OffsetForLeaderEpoch` (23).
    OffsetForLeaderEpoch = 23,
    /// `AddPartitionsToTxn` (24).
    AddPartitionsToTxn = 24,
    /// `AddOffsetsToTxn` (25).
    AddOffsetsToTxn = 25,
    /// `EndTxn` (26).
    EndTxn = 26,
    /// `WriteTxnMarkers` (27).
    WriteTxnMarkers = 27,
    /// `TxnOffsetCommit` (28).
    TxnOffsetCommit = 28,
    /// `DescribeAcls` (29).
    DescribeAcls = 29,
    /// `CreateAcls` (30).
    CreateAcls = 30,
    /// `DeleteAcls` (31).
    DeleteAcls = 31,
    /// `DescribeConfigs` (32).
    DescribeConfigs = 32,
    /// `AlterConfigs` (33).
    AlterConfigs = 33,
    /// `AlterReplicaLogDirs` (34).
    AlterReplicaLogDirs = 34,
    /// `DescribeLogDirs` (35).
    DescribeLogDirs = 35,
    /// `SaslAuthenticate` (36).
    SaslAuthenticate = 36,
    /// `CreatePartitions` (37).
    CreatePartitions = 37,
    /// `CreateDelegationToken` (38).
    CreateDelegationToken = 38,
    /// `RenewDelegationToken` (39).
    RenewDelegationToken = 39,
    /// `ExpireDelegationToken` (40).
    ExpireDelegationToken = 40,
    /// `DescribeDelegationToken` (41).
    DescribeDelegationToken = 41,
    /// `DeleteGroups` (42).
    DeleteGroups = 42,
    /// `ElectLeaders` (43).
    ElectLeaders = 43,
    /// `IncrementalAlterConfigs` (44).
    IncrementalAlterConfigs = 44,
    /// `AlterPartitionReassignments` (45).
    AlterPartitionReassignments = 45,
    /// `ListPartitionReassignments` (46).
    ListPartitionReassignments = 46,
    /// `OffsetDelete` (47).
    OffsetDelete = 47,
    /// `DescribeClientQuotas` (48).
    DescribeClientQuotas = 48,
    /// `AlterClientQuotas` (49).
    AlterClientQuotas = 49,
    /// `DescribeUserScramCredentials` (50).
    DescribeUserScramCredentials = 50,
    /// `AlterUserScramCredentials` (51).
    AlterUserScramCredentials = 51,
    /// `Vote` (52).
    Vote = 52,
    /// `BeginQuorumEpoch` (53).
    BeginQuorumEpoch = 53,
    /// `EndQuorumEpoch` (54).
    EndQuorumEpoch = 54,
    /// `DescribeQuorum` (55).
    DescribeQuorum = 55,
    /// `AlterPartition` (56).
    AlterPartition = 56,
    /// `UpdateFeatures` (57).
    UpdateFeatures = 57,
    /// `Envelope` (58).
    Envelope = 58,
    /// `FetchSnapshot` (59).
    FetchSnapshot = 59,
    /// `DescribeCluster` (60).
    DescribeCluster = 60,
    /// `DescribeProducers` (61).
    DescribeProducers = 61,
    /// `BrokerRegistration` (62).
    BrokerRegistration = 62,
    /// `BrokerHeartbeat` (63).
    BrokerHeartbeat = 63,
    /// `UnregisterBroker` (64).
    UnregisterBroker = 64,
    /// `DescribeTransactions` (65).
    DescribeTransactions = 65,
    /// `ListTransactions` (66).
    ListTransactions = 66,
    /// `AllocateProducerIds` (67).
    AllocateProducerIds = 67,
    /// `ConsumerGroupHeartbeat` (68).
    ConsumerGroupHeartbeat = 68,
    /// `ConsumerGroupDescribe` (69).
    ConsumerGroupDescribe = 69,
    /// `ControllerRegistration` (70).
    ControllerRegistration = 70,
    /// `GetTelemetrySubscriptions` (71).
    GetTelemetrySubscriptions = 71,
    /// `PushTelemetry` (72).
    PushTelemetry = 72,
    /// `AssignReplicasToDirs` (73).
    AssignReplicasToDirs = 73,
    /// `ListClientMetricsResources` (74).
    ListClientMetricsResources = 74,
    /// `DescribeTopicPartitions` (75).
    DescribeTopicPartitions = 75,
    /// `ShareGroupHeartbeat` (76).
    ShareGroupHeartbeat = 76,
    /// `ShareGroupDescribe` (77).
    ShareGroupDescribe = 77,
    /// `ShareFetch` (78).
    ShareFetch = 78,
    /// `ShareAcknowledge` (79).
    ShareAcknowledge = 79,
    /// `AddRaftVoter` (80).
    AddRaftVoter = 80,
    /// `RemoveRaftVoter` (81).
    RemoveRaftVoter = 81,
    /// `UpdateRaftVoter` (82).
    UpdateRaftVoter = 82,
    /// `InitializeShareGroupState` (83).
    InitializeShareGroupState = 83,
    /// `ReadShareGroupState` (84).
    ReadShareGroupState = 84,
    /// `WriteShareGroupState` (85).
    WriteShareGroupState = 85,
    /// `DeleteShareGroupState` (86).
    DeleteShareGroupState = 86,
    /// `ReadShareGroupStateSummary` (87).
    ReadShareGroupStateSummary = 87,
}

impl ApiKey {
    /// The key as sent on the wire.
    pub const fn code(self) -> i16 {
        self as i16
    }

    /// The API for a wire value, `None` for keys this enum does not know.
    pub const fn from_i16(key: i16) -> Option<ApiKey> {
        use ApiKey::*;
        Some(match key {
            0 => Produce,
            1 => Fetch,
            2 => ListOffsets,
            3 => Metadata,
            4 => LeaderAndIsr,
            5 => StopReplica,
            6 => UpdateMetadata,
            7 => ControlledShutdown,
            8 => OffsetCommit,
            9 => OffsetFetch,
            10 => FindCoordinator,
            11 => JoinGroup,
            12 => Heartbeat,
            13 => LeaveGroup,
            14 => SyncGroup,
            15 => DescribeGroups,
            16 => ListGroups,
            17 => SaslHandshake,
            18 => ApiVersions,
            19 => CreateTopics,
            20 => DeleteTopics,
            21 => DeleteRecords,
            22 => InitProducerId,
            23 => OffsetForLeaderEpoch,
            24 => AddPartitionsToTxn,
            25 => AddOffsetsToTxn,
            26 => EndTxn,
            27 => WriteTxnMarkers,
            28 => TxnOffsetCommit,
            29 => DescribeAcls,
            30 => CreateAcls,
            31 => DeleteAcls,
            32 => DescribeConfigs,
            33 => AlterConfigs,
            34 => AlterReplicaLogDirs,
            35 => DescribeLogDirs,
            36 => SaslAuthenticate,
            37 => CreatePartitions,
            38 => CreateDelegationToken,
            39 => RenewDelegationToken,
            40 => ExpireDelegationToken,
            41 => DescribeDelegationToken,
            42 => DeleteGroups,
            43 => ElectLeaders,
            44 => IncrementalAlterConfigs,
            45 => AlterPartitionReassignments,
            46 => ListPartitionReassignments,
            47 => OffsetDelete,
            48 => DescribeClientQuotas,
            49 => AlterClientQuotas,
            50 => DescribeUserScramCredentials,
            51 => AlterUserScramCredentials,
            52 => Vote,
            53 => BeginQuorumEpoch,
            54 => EndQuorumEpoch,
            55 => DescribeQuorum,
            56 => AlterPartition,
            57 => UpdateFeatures,
            58 => Envelope,
            59 => FetchSnapshot,
            60 => DescribeCluster,
            61 => DescribeProducers,
            62 => BrokerRegistration,
            63 => BrokerHeartbeat,
            64 => UnregisterBroker,
            65 => DescribeTransactions,
            66 => ListTransactions,
            67 => AllocateProducerIds,
            68 => ConsumerGroupHeartbeat,
            69 => ConsumerGroupDescribe,
            70 => ControllerRegistration,
            71 => GetTelemetrySubscriptions,
            72 => PushTelemetry,
            73 => AssignReplicasToDirs,
            74 => ListClientMetricsResources,
            75 => DescribeTopicPartitions,
            76 => ShareGroupHeartbeat,
            77 => ShareGroupDescribe,
            78 => ShareFetch,
            79 => ShareAcknowledge,
            80 => AddRaftVoter,
            81 => RemoveRaftVoter,
            82 => UpdateRaftVoter,
            83 => InitializeShareGroupState,
            84 => ReadShareGroupState,
            85 => WriteShareGroupState,
            86 => DeleteShareGroupState,
            87 => ReadShareGroupStateSummary,
            _ => return None,
        })
    }
}

/// An API key this enum does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown API key {0}")]
pub struct UnknownApiKey(pub i16);

impl TryFrom<i16> for ApiKey {
    type Error = UnknownApiKey;

    fn try_from(key: i16) -> Result<Self, Self::Error> {
        ApiKey::from_i16(key).ok_or(UnknownApiKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_round_trip() {
        for key in 0..=87 {
            assert_eq!(ApiKey::try_from(key).unwrap().code(), key);
        }
        assert_eq!(ApiKey::try_from(88), Err(UnknownApiKey(88)));
        assert_eq!(ApiKey::try_from(-1), Err(UnknownApiKey(-1)));
        assert_eq!(ApiKey::Produce.code(), 0);
        assert_eq!(ApiKey::ApiVersions.code(), 18);
        assert_eq!(ApiKey::DescribeCluster.code(), 60);
    }
}
