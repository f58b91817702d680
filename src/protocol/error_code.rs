//! Kafka's error codes: the `error_code` fields of every response.
//!
//! Numbering is Kafka's (`org.apache.kafka.common.protocol.Errors`) and never changes: a gap
//! would be a retired code, not free space. Handlers map their typed errors to these once, at the
//! edge (STYLE.md convention 5).

/// An error code as carried by the `error_code` fields of responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ErrorCode {
    /// The server hit an unexpected error (a bug, or a failure with no better code).
    UnknownServerError = -1,
    /// No error.
    None = 0,
    /// The offset asked for is not within the partition's log.
    OffsetOutOfRange = 1,
    /// A record batch failed validation: CRC, size, or a null key in a compacted topic.
    CorruptMessage = 2,
    /// This broker does not host the topic or partition.
    UnknownTopicOrPartition = 3,
    /// The fetch size asked for is invalid.
    InvalidFetchSize = 4,
    /// The partition has no leader right now (an election is under way).
    LeaderNotAvailable = 5,
    /// This broker is not the leader (or, for replica requests, not a replica) of the partition.
    NotLeaderOrFollower = 6,
    /// The request timed out.
    RequestTimedOut = 7,
    /// The broker is not available.
    BrokerNotAvailable = 8,
    /// The replica is not available for the partition.
    ReplicaNotAvailable = 9,
    /// A record batch is larger than the topic's `max.message.bytes`.
    MessageTooLarge = 10,
    /// The controller moved to another broker.
    StaleControllerEpoch = 11,
    /// The metadata of an offset commit is too large.
    OffsetMetadataTooLarge = 12,
    /// The server disconnected before a response was received.
    NetworkException = 13,
    /// The coordinator is still loading its state.
    CoordinatorLoadInProgress = 14,
    /// The coordinator is not available.
    CoordinatorNotAvailable = 15,
    /// This broker is not the coordinator of the group or transaction.
    NotCoordinator = 16,
    /// The topic name is invalid, or the operation is not allowed on that topic.
    InvalidTopicException = 17,
    /// A produce request carried more bytes than a segment can hold.
    RecordListTooLarge = 18,
    /// Fewer in-sync replicas than `min.insync.replicas`: the batch was not appended.
    NotEnoughReplicas = 19,
    /// The batch was appended, but to fewer in-sync replicas than required.
    NotEnoughReplicasAfterAppend = 20,
    /// `acks` is not 0, 1 or -1.
    InvalidRequiredAcks = 21,
    /// The group generation id is not the current one.
    IllegalGeneration = 22,
    /// The member's protocols match none of the group's.
    InconsistentGroupProtocol = 23,
    /// The group id is invalid (empty, for instance).
    InvalidGroupId = 24,
    /// The coordinator does not know this member id.
    UnknownMemberId = 25,
    /// The session timeout is outside the broker's allowed range.
    InvalidSessionTimeout = 26,
    /// The group is rebalancing: the member must rejoin.
    RebalanceInProgress = 27,
    /// The committed offset data has an invalid size.
    InvalidCommitOffsetSize = 28,
    /// Not authorized for the topic.
    TopicAuthorizationFailed = 29,
    /// Not authorized for the group.
    GroupAuthorizationFailed = 30,
    /// Not authorized for the cluster.
    ClusterAuthorizationFailed = 31,
    /// A record's timestamp is out of the accepted range.
    InvalidTimestamp = 32,
    /// The SASL mechanism is not supported.
    UnsupportedSaslMechanism = 33,
    /// The request is not valid in the current SASL state.
    IllegalSaslState = 34,
    /// This version of the API is not supported.
    UnsupportedVersion = 35,
    /// A topic with this name already exists.
    TopicAlreadyExists = 36,
    /// The partition count is invalid (below 1, or not larger than the current count).
    InvalidPartitions = 37,
    /// The replication factor is below 1 or larger than the number of brokers.
    InvalidReplicationFactor = 38,
    /// The manual replica assignment is invalid.
    InvalidReplicaAssignment = 39,
    /// A configuration is invalid.
    InvalidConfig = 40,
    /// This broker is not the controller.
    NotController = 41,
    /// The request is malformed or not valid for this broker.
    InvalidRequest = 42,
    /// The message format on the broker does not support the request.
    UnsupportedForMessageFormat = 43,
    /// The request does not satisfy a configured policy.
    PolicyViolation = 44,
    /// A producer sequence number is out of order.
    OutOfOrderSequenceNumber = 45,
    /// A producer sequence number is a duplicate.
    DuplicateSequenceNumber = 46,
    /// The producer epoch is older than the current one.
    InvalidProducerEpoch = 47,
    /// A transactional operation in an invalid state.
    InvalidTxnState = 48,
    /// The producer id is not assigned to this transactional id.
    InvalidProducerIdMapping = 49,
    /// The transaction timeout is larger than `transaction.max.timeout.ms`.
    InvalidTransactionTimeout = 50,
    /// Another operation on the same transaction is in progress.
    ConcurrentTransactions = 51,
    /// The transaction coordinator sending the marker is no longer current.
    TransactionCoordinatorFenced = 52,
    /// Not authorized for the transactional id.
    TransactionalIdAuthorizationFailed = 53,
    /// Security features are disabled.
    SecurityDisabled = 54,
    /// The broker did not attempt this operation (another in the same batch failed).
    OperationNotAttempted = 55,
    /// A disk error while accessing the log.
    KafkaStorageError = 56,
    /// The log directory is not in the broker's configuration.
    LogDirNotFound = 57,
    /// SASL authentication failed.
    SaslAuthenticationFailed = 58,
    /// The broker has no state for this producer id (it expired or was deleted).
    UnknownProducerId = 59,
    /// A partition reassignment is in progress.
    ReassignmentInProgress = 60,
    /// Delegation tokens are not enabled.
    DelegationTokenAuthDisabled = 61,
    /// The delegation token was not found.
    DelegationTokenNotFound = 62,
    /// The principal is not the owner or renewer of the token.
    DelegationTokenOwnerMismatch = 63,
    /// Delegation token requests are not allowed on this channel.
    DelegationTokenRequestNotAllowed = 64,
    /// Not authorized for the delegation token.
    DelegationTokenAuthorizationFailed = 65,
    /// The delegation token has expired.
    DelegationTokenExpired = 66,
    /// The principal type is not supported.
    InvalidPrincipalType = 67,
    /// The group is not empty.
    NonEmptyGroup = 68,
    /// The group id does not exist.
    GroupIdNotFound = 69,
    /// The fetch session id was not found.
    FetchSessionIdNotFound = 70,
    /// The fetch session epoch is not the expected one.
    InvalidFetchSessionEpoch = 71,
    /// The leader has no listener matching the one the metadata request came on.
    ListenerNotFound = 72,
    /// Topic deletion is disabled.
    TopicDeletionDisabled = 73,
    /// The leader epoch in the request is older than the broker's.
    FencedLeaderEpoch = 74,
    /// The leader epoch in the request is newer than the broker's.
    UnknownLeaderEpoch = 75,
    /// The client does not support the partition's compression type.
    UnsupportedCompressionType = 76,
    /// The broker epoch has changed.
    StaleBrokerEpoch = 77,
    /// The high watermark has not caught up after an election; offsets are not yet reliable.
    OffsetNotAvailable = 78,
    /// The member must rejoin with the member id it was given.
    MemberIdRequired = 79,
    /// The preferred leader is not available.
    PreferredLeaderNotAvailable = 80,
    /// The group has reached `group.max.size`.
    GroupMaxSizeReached = 81,
    /// Another member registered the same `group.instance.id` with a different member id.
    FencedInstanceId = 82,
    /// No eligible leader is available for the partition.
    EligibleLeadersNotAvailable = 83,
    /// Leader election is not needed for the partition.
    ElectionNotNeeded = 84,
    /// No partition reassignment is in progress.
    NoReassignmentInProgress = 85,
    /// Offsets of a topic cannot be deleted while the group is subscribed to it.
    GroupSubscribedToTopic = 86,
    /// A record failed the broker's validation.
    InvalidRecord = 87,
    /// Unstable offsets (of pending transactions) must be cleared first.
    UnstableOffsetCommit = 88,
    /// The throttling quota has been exceeded.
    ThrottlingQuotaExceeded = 89,
    /// A newer producer with the same transactional id fenced this one.
    ProducerFenced = 90,
    /// The request refers to a resource that does not exist.
    ResourceNotFound = 91,
    /// The request refers to the same resource twice.
    DuplicateResource = 92,
    /// The credential does not meet the acceptability criteria.
    UnacceptableCredential = 93,
    /// The sender or receiver of a voter-only request is not a voter.
    InconsistentVoterSet = 94,
    /// The update version is invalid.
    InvalidUpdateVersion = 95,
    /// Updating the finalized features failed.
    FeatureUpdateFailed = 96,
    /// The request principal could not be deserialized while forwarding.
    PrincipalDeserializationFailure = 97,
    /// The snapshot was not found.
    SnapshotNotFound = 98,
    /// The position is out of range.
    PositionOutOfRange = 99,
    /// This broker does not host the topic id.
    UnknownTopicId = 100,
    /// The broker id is already registered.
    DuplicateBrokerRegistration = 101,
    /// The broker id is not registered.
    BrokerIdNotRegistered = 102,
    /// The log's topic id does not match the request's.
    InconsistentTopicId = 103,
    /// The cluster id does not match the server's.
    InconsistentClusterId = 104,
    /// The transactional id was not found.
    TransactionalIdNotFound = 105,
    /// The fetch session used topic ids inconsistently.
    FetchSessionTopicIdError = 106,
    /// The new ISR contains an ineligible replica.
    IneligibleReplica = 107,
    /// The partition was updated, but a new leader was elected.
    NewLeaderElected = 108,
    /// The offset has moved to tiered storage.
    OffsetMovedToTieredStorage = 109,
    /// The member epoch is fenced: the member must rejoin.
    FencedMemberEpoch = 110,
    /// The instance id is still used by another member.
    UnreleasedInstanceId = 111,
    /// The assignor or its version is not supported by the group.
    UnsupportedAssignor = 112,
    /// The member epoch is stale.
    StaleMemberEpoch = 113,
    /// The endpoint type does not match the listener.
    MismatchedEndpointType = 114,
    /// The endpoint type is not supported.
    UnsupportedEndpointType = 115,
    /// The controller id is not known.
    UnknownControllerId = 116,
    /// The telemetry subscription id is unknown or outdated.
    UnknownSubscriptionId = 117,
    /// The telemetry payload is too large.
    TelemetryTooLarge = 118,
    /// The controller considers the broker registration invalid.
    InvalidRegistration = 119,
    /// The transaction failed; the client can abort it and retry.
    TransactionAbortable = 120,
    /// The record state is invalid for the acknowledgement.
    InvalidRecordState = 121,
    /// The share session was not found.
    ShareSessionNotFound = 122,
    /// The share session epoch is invalid.
    InvalidShareSessionEpoch = 123,
    /// The share-group state epoch does not match.
    FencedStateEpoch = 124,
    /// The voter key does not match the receiving replica's.
    InvalidVoterKey = 125,
    /// The voter is already a voter.
    DuplicateVoter = 126,
    /// The voter is not a voter.
    VoterNotFound = 127,
    /// The regular expression is invalid.
    InvalidRegularExpression = 128,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub const fn code(self) -> i16 {
        self as i16
    }

    /// The error code for a wire value, `None` for codes this enum does not know.
    pub const fn from_i16(code: i16) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match code {
            -1 => UnknownServerError,
            0 => None,
            1 => OffsetOutOfRange,
            2 => CorruptMessage,
            3 => UnknownTopicOrPartition,
            4 => InvalidFetchSize,
            5 => LeaderNotAvailable,
            6 => NotLeaderOrFollower,
            7 => RequestTimedOut,
            8 => BrokerNotAvailable,
            9 => ReplicaNotAvailable,
            10 => MessageTooLarge,
            11 => StaleControllerEpoch,
            12 => OffsetMetadataTooLarge,
            13 => NetworkException,
            14 => CoordinatorLoadInProgress,
            15 => CoordinatorNotAvailable,
            16 => NotCoordinator,
            17 => InvalidTopicException,
            18 => RecordListTooLarge,
            19 => NotEnoughReplicas,
            20 => NotEnoughReplicasAfterAppend,
            21 => InvalidRequiredAcks,
            22 => IllegalGeneration,
            23 => InconsistentGroupProtocol,
            24 => InvalidGroupId,
            25 => UnknownMemberId,
            26 => InvalidSessionTimeout,
            27 => RebalanceInProgress,
            28 => InvalidCommitOffsetSize,
            29 => TopicAuthorizationFailed,
            30 => GroupAuthorizationFailed,
            31 => ClusterAuthorizationFailed,
            32 => InvalidTimestamp,
            33 => UnsupportedSaslMechanism,
            34 => IllegalSaslState,
            35 => UnsupportedVersion,
            36 => TopicAlreadyExists,
            37 => InvalidPartitions,
            38 => InvalidReplicationFactor,
            39 => InvalidReplicaAssignment,
            40 => InvalidConfig,
            41 => NotController,
            42 => InvalidRequest,
            43 => UnsupportedForMessageFormat,
            44 => PolicyViolation,
            45 => OutOfOrderSequenceNumber,
            46 => DuplicateSequenceNumber,
            47 => InvalidProducerEpoch,
            48 => InvalidTxnState,
            49 => InvalidProducerIdMapping,
            50 => InvalidTransactionTimeout,
            51 => ConcurrentTransactions,
            52 => TransactionCoordinatorFenced,
            53 => TransactionalIdAuthorizationFailed,
            54 => SecurityDisabled,
            55 => OperationNotAttempted,
            56 => KafkaStorageError,
            57 => LogDirNotFound,
            58 => SaslAuthenticationFailed,
            59 => UnknownProducerId,
            60 => ReassignmentInProgress,
            61 => DelegationTokenAuthDisabled,
            62 => DelegationTokenNotFound,
            63 => DelegationTokenOwnerMismatch,
            64 => DelegationTokenRequestNotAllowed,
            65 => DelegationTokenAuthorizationFailed,
            66 => DelegationTokenExpired,
            67 => InvalidPrincipalType,
            68 => NonEmptyGroup,
            69 => GroupIdNotFound,
            70 => FetchSessionIdNotFound,
            71 => InvalidFetchSessionEpoch,
            72 => ListenerNotFound,
            73 => TopicDeletionDisabled,
            74 => FencedLeaderEpoch,
            75 => UnknownLeaderEpoch,
            76 => UnsupportedCompressionType,
            77 => StaleBrokerEpoch,
            78 => OffsetNotAvailable,
            79 => MemberIdRequired,
            80 => PreferredLeaderNotAvailable,
            81 => GroupMaxSizeReached,
            82 => FencedInstanceId,
            83 => EligibleLeadersNotAvailable,
            84 => ElectionNotNeeded,
            85 => NoReassignmentInProgress,
            86 => GroupSubscribedToTopic,
            87 => InvalidRecord,
            88 => UnstableOffsetCommit,
            89 => ThrottlingQuotaExceeded,
            90 => ProducerFenced,
            91 => ResourceNotFound,
            92 => DuplicateResource,
            93 => UnacceptableCredential,
            94 => InconsistentVoterSet,
            95 => InvalidUpdateVersion,
            96 => FeatureUpdateFailed,
            97 => PrincipalDeserializationFailure,
            98 => SnapshotNotFound,
            99 => PositionOutOfRange,
            100 => UnknownTopicId,
            101 => DuplicateBrokerRegistration,
            102 => BrokerIdNotRegistered,
            103 => InconsistentTopicId,
            104 => InconsistentClusterId,
            105 => TransactionalIdNotFound,
            106 => FetchSessionTopicIdError,
            107 => IneligibleReplica,
            108 => NewLeaderElected,
            109 => OffsetMovedToTieredStorage,
            110 => FencedMemberEpoch,
            111 => UnreleasedInstanceId,
            112 => UnsupportedAssignor,
            113 => StaleMemberEpoch,
            114 => MismatchedEndpointType,
            115 => UnsupportedEndpointType,
            116 => UnknownControllerId,
            117 => UnknownSubscriptionId,
            118 => TelemetryTooLarge,
            119 => InvalidRegistration,
            120 => TransactionAbortable,
            121 => InvalidRecordState,
            122 => ShareSessionNotFound,
            123 => InvalidShareSessionEpoch,
            124 => FencedStateEpoch,
            125 => InvalidVoterKey,
            126 => DuplicateVoter,
            127 => VoterNotFound,
            128 => InvalidRegularExpression,
            _ => return Option::None,
        })
    }
}

impl From<ErrorCode> for i16 {
    fn from(code: ErrorCode) -> i16 {
        code.code()
    }
}

/// An error code this enum does not know (newer than Kafka 3.9, or garbage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0}")]
pub struct UnknownErrorCode(pub i16);

impl TryFrom<i16> for ErrorCode {
    type Error = UnknownErrorCode;

    fn try_from(code: i16) -> Result<Self, Self::Error> {
        ErrorCode::from_i16(code).ok_or(UnknownErrorCode(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_have_no_gaps() {
        for wire in -1..=128 {
            let code = ErrorCode::try_from(wire).unwrap();
            assert_eq!(code.code(), wire);
            assert_eq!(i16::from(code), wire);
        }
        assert_eq!(ErrorCode::try_from(129), Err(UnknownErrorCode(129)));
        assert_eq!(ErrorCode::try_from(-2), Err(UnknownErrorCode(-2)));
    }

    #[test]
    fn spot_check_kafka_numbering() {
        assert_eq!(ErrorCode::NotLeaderOrFollower.code(), 6);
        assert_eq!(ErrorCode::UnsupportedVersion.code(), 35);
        assert_eq!(ErrorCode::InvalidConfig.code(), 40);
        assert_eq!(ErrorCode::InvalidRequest.code(), 42);
        assert_eq!(ErrorCode::KafkaStorageError.code(), 56);
        assert_eq!(ErrorCode::GroupIdNotFound.code(), 69);
        assert_eq!(ErrorCode::FencedInstanceId.code(), 82);
        assert_eq!(ErrorCode::InvalidRecord.code(), 87);
    }
}
