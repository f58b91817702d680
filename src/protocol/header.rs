//! Request and response headers, and the API keys that name what a request is.
//!
//! A request header is v1 (`api_key`, `api_version`, `correlation_id`, nullable `client_id`) or,
//! for flexible versions of the API, v2 (the same plus a tagged-field section). `client_id`
//! keeps the old `int16` length even in v2, so that any broker can read the header of an
//! ApiVersions request of any version. (v0, without `client_id`, only served ControlledShutdown
//! v0 and is not supported.) A response header is v0 (`correlation_id`) or, for flexible
//! versions, v1 (plus tagged fields), except that ApiVersions responses always use v0: a client
//! that does not yet know the broker's versions must be able to read the answer.

use bytes::BytesMut;

use super::codec::{self, DecodeError, EncodeError, Encoder};
use super::messages::supported;

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

/// The request header version for a version of an API (1, or 2 when the API version is
/// flexible); `None` if this codec does not implement that API version.
pub fn request_header_version(api_key: ApiKey, api_version: i16) -> Option<i16> {
    let support = supported(api_key, api_version)?;
    Some(if support.is_flexible(api_version) { 2 } else { 1 })
}

/// The response header version for a version of an API (0, or 1 when the API version is
/// flexible, but always 0 for ApiVersions); `None` if this codec does not implement that API
/// version.
pub fn response_header_version(api_key: ApiKey, api_version: i16) -> Option<i16> {
    let support = supported(api_key, api_version)?;
    // KIP-511: a client reads the ApiVersions response before it knows what the broker speaks,
    // so its header never grows.
    Some(if support.is_flexible(api_version) && api_key != ApiKey::ApiVersions { 1 } else { 0 })
}

/// Why a request header could not be decoded. Both cases carry what the server needs to answer
/// (or to log) whenever the bytes got that far.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The API key is unknown, or that version of it is not implemented. The server should
    /// answer ApiVersions with an ApiVersions v0 response carrying `UNSUPPORTED_VERSION` and
    /// [`super::SUPPORTED`] (KIP-511), so that the client can downgrade, and may close the
    /// connection for anything else (as Kafka does).
    #[error("unsupported API key {api_key} version {api_version} (correlation id {correlation_id})")]
    Unsupported {
        /// The API key as read from the wire.
        api_key: i16,
        /// The API version as read from the wire.
        api_version: i16,
        /// The correlation id, to answer with.
        correlation_id: i32,
    },
    /// The header is malformed. `correlation_id` is known if the first 8 bytes were there.
    #[error("malformed request header: {source}")]
    Malformed {
        /// The correlation id, if the header got that far.
        correlation_id: Option<i32>,
        /// What was wrong.
        source: DecodeError,
    },
}

impl HeaderError {
    /// The correlation id of the request, if the header got that far.
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            HeaderError::Unsupported { correlation_id, .. } => Some(*correlation_id),
            HeaderError::Malformed { correlation_id, .. } => *correlation_id,
        }
    }
}

/// The header of a request (v1 or v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// Which API the body is.
    pub api_key: ApiKey,
    /// Which version of it.
    pub api_version: i16,
    /// Chosen by the client, echoed in the response so it can match them up.
    pub correlation_id: i32,
    /// The client's self-chosen name, for logs and quotas; may be null.
    pub client_id: Option<String>,
}

impl RequestHeader {
    /// Decodes a request header from the front of a frame, leaving the body in `buf`. Fails
    /// with [`HeaderError::Unsupported`] for any API key and version outside
    /// [`super::SUPPORTED`], after reading only the first 8 bytes.
    pub fn decode(buf: &mut BytesMut) -> Result<RequestHeader, HeaderError> {
        let malformed = |correlation_id, source| HeaderError::Malformed { correlation_id, source };
        // api_key, api_version and correlation_id sit at the same place in every header version.
        let api_key = codec::get_i16(buf).map_err(|e| malformed(None, e))?;
        let api_version = codec::get_i16(buf).map_err(|e| malformed(None, e))?;
        let correlation_id = codec::get_i32(buf).map_err(|e| malformed(None, e))?;
        let unsupported = HeaderError::Unsupported { api_key, api_version, correlation_id };
        let Some(key) = ApiKey::from_i16(api_key) else { return Err(unsupported) };
        let Some(header_version) = request_header_version(key, api_version) else { return Err(unsupported) };
        let client_id = codec::get_string(buf, false).map_err(|e| malformed(Some(correlation_id), e))?;
        if header_version >= 2 {
            codec::skip_tagged_fields(buf).map_err(|e| malformed(Some(correlation_id), e))?;
        }
        Ok(RequestHeader { api_key: key, api_version, correlation_id, client_id })
    }

    /// Encodes this header, in the version its API version calls for.
    pub fn encode(&self, enc: &mut Encoder) -> Result<(), EncodeError> {
        let Some(header_version) = request_header_version(self.api_key, self.api_version) else {
            return Err(EncodeError::UnsupportedVersion { api_key: self.api_key.code(), version: self.api_version });
        };
        enc.put_i16(self.api_key.code());
        enc.put_i16(self.api_version);
        enc.put_i32(self.correlation_id);
        enc.put_string(self.client_id.as_deref(), false, true, "RequestHeader.client_id", header_version)?;
        if header_version >= 2 {
            enc.put_unsigned_varint(0);
        }
        Ok(())
    }
}

/// The header of a response (v0 or v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The correlation id of the request this answers.
    pub correlation_id: i32,
}

impl ResponseHeader {
    /// Decodes a response header of `header_version` (see [`response_header_version`]).
    pub fn decode(buf: &mut BytesMut, header_version: i16) -> Result<ResponseHeader, DecodeError> {
        let correlation_id = codec::get_i32(buf)?;
        if header_version >= 1 {
            codec::skip_tagged_fields(buf)?;
        }
        Ok(ResponseHeader { correlation_id })
    }

    /// Encodes this header in `header_version` (see [`response_header_version`]).
    pub fn encode(&self, enc: &mut Encoder, header_version: i16) {
        enc.put_i32(self.correlation_id);
        if header_version >= 1 {
            enc.put_unsigned_varint(0);
        }
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

    #[test]
    fn header_versions() {
        assert_eq!(request_header_version(ApiKey::Produce, 8), Some(1));
        assert_eq!(request_header_version(ApiKey::Produce, 9), Some(2));
        assert_eq!(response_header_version(ApiKey::Produce, 9), Some(1));
        assert_eq!(request_header_version(ApiKey::ApiVersions, 3), Some(2));
        assert_eq!(response_header_version(ApiKey::ApiVersions, 3), Some(0));
        assert_eq!(response_header_version(ApiKey::DescribeCluster, 0), Some(1));
        assert_eq!(request_header_version(ApiKey::Produce, 2), None);
        assert_eq!(request_header_version(ApiKey::SaslHandshake, 1), None);
    }

    fn encoded(header: &RequestHeader) -> BytesMut {
        let mut enc = Encoder::contiguous(BytesMut::new());
        header.encode(&mut enc).unwrap();
        enc.into_bytes().unwrap()
    }

    #[test]
    fn request_header_round_trips_in_v1_and_v2() {
        for (api_key, api_version, client_id) in [
            (ApiKey::Metadata, 1, Some("client-1".to_owned())),
            (ApiKey::Metadata, 12, None),
            (ApiKey::ApiVersions, 3, Some(String::new())),
        ] {
            let header = RequestHeader { api_key, api_version, correlation_id: 0x0102_0304, client_id };
            let mut buf = encoded(&header);
            buf.extend_from_slice(b"body");
            assert_eq!(RequestHeader::decode(&mut buf).unwrap(), header);
            assert_eq!(&buf[..], b"body");
        }
    }

    #[test]
    fn v2_header_keeps_the_int16_client_id_and_skips_unknown_tags() {
        // ApiVersions v3: api_key 18, version 3, correlation id 7, client_id "ab" (int16 length),
        // one unknown tagged field (tag 5, 2 bytes).
        let mut buf = BytesMut::from(&[0, 18, 0, 3, 0, 0, 0, 7, 0, 2, b'a', b'b', 1, 5, 2, 9, 9, 0xAA][..]);
        let header = RequestHeader::decode(&mut buf).unwrap();
        assert_eq!(header.client_id.as_deref(), Some("ab"));
        assert_eq!(header.correlation_id, 7);
        assert_eq!(&buf[..], &[0xAA]);
    }

    #[test]
    fn unsupported_version_still_yields_the_correlation_id() {
        // ApiVersions v127 (KIP-511): the body is unknown but the correlation id is there.
        let mut buf = BytesMut::from(&[0, 18, 0, 127, 0, 0, 0, 42, 0xff, 0xff][..]);
        let err = RequestHeader::decode(&mut buf).unwrap_err();
        assert_eq!(err, HeaderError::Unsupported { api_key: 18, api_version: 127, correlation_id: 42 });
        assert_eq!(err.correlation_id(), Some(42));
        // An unknown API key too.
        let mut buf = BytesMut::from(&[0x7f, 0, 0, 0, 0, 0, 0, 43][..]);
        assert_eq!(RequestHeader::decode(&mut buf).unwrap_err().correlation_id(), Some(43));
    }

    #[test]
    fn truncated_headers_are_errors() {
        let full = encoded(&RequestHeader {
            api_key: ApiKey::Fetch,
            api_version: 12,
            correlation_id: 5,
            client_id: Some("c".to_owned()),
        });
        for len in 0..full.len() {
            let err = RequestHeader::decode(&mut BytesMut::from(&full[..len])).unwrap_err();
            assert_eq!(err.correlation_id(), if len >= 8 { Some(5) } else { None }, "prefix {len}");
        }
    }

    #[test]
    fn response_header_round_trips() {
        for header_version in [0, 1] {
            let mut enc = Encoder::contiguous(BytesMut::new());
            ResponseHeader { correlation_id: -9 }.encode(&mut enc, header_version);
            let mut buf = enc.into_bytes().unwrap();
            assert_eq!(buf.len(), 4 + header_version as usize);
            assert_eq!(ResponseHeader::decode(&mut buf, header_version).unwrap().correlation_id, -9);
            assert!(buf.is_empty());
        }
    }
}
