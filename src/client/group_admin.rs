//! [`GroupAdmin`]: consumer groups seen from outside: list them (ListGroups on every broker),
//! describe them (DescribeGroups, with each member's assignment decoded), read and reset their
//! committed offsets (OffsetFetch, OffsetCommit), and delete them (DeleteGroups). Everything
//! but listing goes to the group's coordinator, found with FindCoordinator.
//!
//! Resetting offsets commits as Kafka's admin tools do: from outside the group (generation -1,
//! empty member id), which a coordinator accepts only while the group has no members. The group
//! is checked first so that the error says so, rather than a bare UNKNOWN_MEMBER_ID.
//!
//! Concurrency: like [`Client`], a cheap handle for one executor; each call is independent.

use std::collections::BTreeMap;

use super::connection::Connection;
use super::coordinator::{CoordinatorKind, find_coordinator};
use super::error::ClientError;
use super::metadata::Client;
use crate::protocol::ErrorCode;
use crate::protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest, OffsetCommitRequest, OffsetCommitRequestPartition,
    OffsetCommitRequestTopic, OffsetFetchRequest, OffsetFetchRequestGroup,
};

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for consumer groups; connect workers and others use their own.
    pub protocol_type: String,
    /// The state (ListGroups v4+), or `None` if the broker did not say.
    pub state: Option<String>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its static id (`group.instance.id`), if any.
    pub group_instance_id: Option<String>,
    /// The client id of its last join.
    pub client_id: String,
    /// The host it connects from.
    pub client_host: String,
    /// Its assigned partitions, by topic (empty unless the group is stable and uses the
    /// consumer protocol).
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Empty, PreparingRebalance, CompletingRebalance, Stable or Dead.
    pub state: String,
    /// The protocol type (`consumer`), empty for a group without members.
    pub protocol_type: String,
    /// The chosen assignor (`range`, `roundrobin`, …) while the group is stable.
    pub protocol: String,
    /// The members.
    pub members: Vec<MemberDescription>,
    /// The coordinator's broker id.
    pub coordinator: i32,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will consume.
    pub offset: i64,
    /// The metadata string committed with it, if any.
    pub metadata: Option<String>,
}

/// Committed offsets by topic and partition.
pub type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// Group administration over a [`Client`]. See the module docs.
#[derive(Clone)]
pub struct GroupAdmin {
    client: Client,
}

impl GroupAdmin {
    /// A group admin over `client`.
    pub fn new(client: Client) -> GroupAdmin {
        GroupAdmin { client }
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every group of every broker, sorted by id. Each broker lists the groups it coordinates,
    /// so all of them are asked.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        let metadata = self.client.refresh_metadata(Some(&[])).await?;
        let mut brokers: Vec<i32> = metadata.brokers.keys().copied().collect();
        brokers.sort_unstable();
        let mut out = BTreeMap::new();
        for broker in brokers {
            let connection = self.client.broker_connection(broker).await?;
            let response = connection.send(&ListGroupsRequest::default()).await?;
            if let Some(error) =
                ClientError::from_code(response.error_code, || format!("listing the groups of broker {broker}"), None)
            {
                return Err(error);
            }
            let with_state = connection.version(crate::protocol::ApiKey::ListGroups)? >= 4;
            for group in response.groups {
                let listing = GroupListing {
                    group_id: group.group_id.clone(),
                    protocol_type: group.protocol_type,
                    state: with_state.then_some(group.group_state),
                };
                out.insert(group.group_id, listing);
            }
        }
        Ok(out.into_values().collect())
    }

    /// The broker id and a connection of `group`'s coordinator, retrying while the coordinator
    /// is loading or not yet elected.
    pub async fn coordinator(&self, group: &str) -> Result<(i32, Connection), ClientError> {
        find_coordinator(&self.client, group, CoordinatorKind::Group).await
    }

    /// Describes `group`. A group nobody knows comes back in state `Dead` with no members, as
    /// Kafka reports it.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        let (coordinator, connection) = self.coordinator(group).await?;
        let request = DescribeGroupsRequest { groups: vec![group.to_string()], include_authorized_operations: false };
        let response = connection.send(&request).await?;
        let Some(described) = response.groups.into_iter().find(|g| g.group_id == group) else {
            return Err(ClientError::Protocol {
                addr: connection.addr().to_string(),
                reason: format!("no DescribeGroups result for {group}"),
            });
        };
        // DescribeGroups v6+ (KIP-1043) answers an unknown group with GROUP_ID_NOT_FOUND where
        // older versions said Dead; both are a Dead group here.
        if described.error_code == ErrorCode::GroupIdNotFound.code() {
            return Ok(GroupDescription {
                group_id: described.group_id,
                state: "Dead".to_string(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
                coordinator,
            });
        }
        if let Some(error) = ClientError::from_code(described.error_code, || format!("describing group {group}"), None)
        {
            return Err(error);
        }
        let consumer = described.protocol_type == "consumer" || described.protocol_type.is_empty();
        let mut members = Vec::with_capacity(described.members.len());
        for member in described.members {
            let assignment = if consumer && !member.member_assignment.is_empty() {
                decode_assignment(&member.member_assignment).map_err(|reason| ClientError::Protocol {
                    addr: connection.addr().to_string(),
                    reason: format!("assignment of member {} of group {group}: {reason}", member.member_id),
                })?
            } else {
                Vec::new()
            };
            members.push(MemberDescription {
                member_id: member.member_id,
                group_instance_id: member.group_instance_id,
                client_id: member.client_id,
                client_host: member.client_host,
                assignment,
            });
        }
        Ok(GroupDescription {
            group_id: described.group_id,
            state: described.group_state,
            protocol_type: described.protocol_type,
            protocol: described.protocol_data,
            members,
            coordinator,
        })
    }

    /// The offsets `group` has committed, for every topic (OffsetFetch with topics null).
    /// Partitions without a committed offset are left out.
    pub async fn committed_offsets(&self, group: &str) -> Result<GroupOffsets, ClientError> {
        let (_, connection) = self.coordinator(group).await?;
        // As for FindCoordinator: v0-7 read `group_id`/`topics`, v8+ `groups`.
        let request = OffsetFetchRequest {
            group_id: group.to_string(),
            topics: None,
            groups: vec![OffsetFetchRequestGroup { group_id: group.to_string(), topics: None }],
            require_stable: false,
        };
        let response = connection.send(&request).await?;
        let context = || format!("fetching the offsets of group {group}");
        if let Some(error) = ClientError::from_code(response.error_code, context, None) {
            return Err(error);
        }
        let mut out = BTreeMap::new();
        let mut add = |topic: &str, partition: i32, offset: i64, metadata: Option<String>, code: i16| {
            if let Some(error) = ClientError::from_code(code, || format!("offset of {topic}-{partition}"), None) {
                return Err(error);
            }
            if offset >= 0 {
                out.insert((topic.to_string(), partition), CommittedOffset { offset, metadata });
            }
            Ok(())
        };
        for topic in response.topics {
            for p in topic.partitions {
                add(&topic.name, p.partition_index, p.committed_offset, p.metadata, p.error_code)?;
            }
        }
        for g in response.groups.into_iter().filter(|g| g.group_id == group) {
            if let Some(error) = ClientError::from_code(g.error_code, context, None) {
                return Err(error);
            }
            for topic in g.topics {
                for p in topic.partitions {
                    add(&topic.name, p.partition_index, p.committed_offset, p.metadata, p.error_code)?;
                }
            }
        }
        Ok(out)
    }

    /// Commits `offsets` (topic, partition, offset) for `group` from outside the group, as
    /// Kafka's reset tool does. Refused unless the group has no members (see the module docs).
    pub async fn reset_offsets(&self, group: &str, offsets: &[(String, i32, i64)]) -> Result<(), ClientError> {
        let description = self.describe_group(group).await?;
        if !description.members.is_empty() {
            return Err(ClientError::InvalidArgument(format!(
                "group {group} has {} active member(s) (state {}); stop its consumers before resetting offsets",
                description.members.len(),
                description.state
            )));
        }
        let (_, connection) = self.coordinator(group).await?;
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (topic, partition, offset) in offsets {
            by_topic.entry(topic.as_str()).or_default().push(OffsetCommitRequestPartition {
                partition_index: *partition,
                committed_offset: *offset,
                committed_metadata: None,
                ..Default::default()
            });
        }
        let request = OffsetCommitRequest {
            group_id: group.to_string(),
            generation_id_or_member_epoch: -1,
            member_id: String::new(),
            topics: by_topic
                .into_iter()
                .map(|(name, partitions)| OffsetCommitRequestTopic { name: name.to_string(), partitions })
                .collect(),
            ..Default::default()
        };
        let response = connection.send(&request).await?;
        for topic in &response.topics {
            for p in &topic.partitions {
                if let Some(error) = ClientError::from_code(
                    p.error_code,
                    || format!("committing the offset of {}-{} for group {group}", topic.name, p.partition_index),
                    None,
                ) {
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Deletes `group` and its committed offsets; Kafka refuses (NON_EMPTY_GROUP) while it has
    /// members.
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let (_, connection) = self.coordinator(group).await?;
        let response = connection.send(&DeleteGroupsRequest { groups_names: vec![group.to_string()] }).await?;
        let Some(result) = response.results.iter().find(|r| r.group_id == group) else {
            return Err(ClientError::Protocol {
                addr: connection.addr().to_string(),
                reason: format!("no DeleteGroups result for {group}"),
            });
        };
        match ClientError::from_code(result.error_code, || format!("deleting group {group}"), None) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Decodes the consumer protocol's assignment (Kafka's `ConsumerProtocolAssignment`, versions
/// 0-3, never flexible): an i16 version, an array of (topic, [partition]), and user data, which
/// is skipped. Versions above 3 are read the same way, since newer versions may only add fields
/// at the end. Every count is checked against the bytes left before anything is allocated.
pub fn decode_assignment(bytes: &[u8]) -> Result<Vec<(String, Vec<i32>)>, String> {
    let mut reader = Reader { bytes };
    let version = reader.i16()?;
    if version < 0 {
        return Err(format!("negative version {version}"));
    }
    let topics = reader.count(2 + 4)?;
    let mut out = Vec::with_capacity(topics);
    for _ in 0..topics {
        let name = reader.string()?;
        let partitions = reader.count(4)?;
        let mut list = Vec::with_capacity(partitions);
        for _ in 0..partitions {
            list.push(reader.i32()?);
        }
        out.push((name, list));
    }
    Ok(out)
}

/// A bounds-checked big-endian reader over a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let Some((head, rest)) = self.bytes.split_first_chunk::<N>() else {
            return Err(format!("truncated: needs {N} more bytes, has {}", self.bytes.len()));
        };
        self.bytes = rest;
        Ok(*head)
    }

    fn i16(&mut self) -> Result<i16, String> {
        self.take::<2>().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, String> {
        self.take::<4>().map(i32::from_be_bytes)
    }

    /// An array length, each element at least `element_bytes_min` bytes; -1 (null) is empty.
    fn count(&mut self, element_bytes_min: usize) -> Result<usize, String> {
        let count = self.i32()?;
        if count == -1 {
            return Ok(0);
        }
        let count = usize::try_from(count).map_err(|_| format!("negative count {count}"))?;
        if count.saturating_mul(element_bytes_min) > self.bytes.len() {
            return Err(format!("count {count} exceeds the {} bytes left", self.bytes.len()));
        }
        Ok(count)
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| format!("bad string length {len}"))?;
        let Some((text, rest)) = self.bytes.split_at_checked(len) else {
            return Err(format!("string of {len} bytes exceeds the {} bytes left", self.bytes.len()));
        };
        self.bytes = rest;
        String::from_utf8(text.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut out = version.to_be_bytes().to_vec();
        out.extend((topics.len() as i32).to_be_bytes());
        for (name, partitions) in topics {
            out.extend((name.len() as i16).to_be_bytes());
            out.extend(name.as_bytes());
            out.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                out.extend(p.to_be_bytes());
            }
        }
        match user_data {
            Some(data) => {
                out.extend((data.len() as i32).to_be_bytes());
                out.extend(data);
            }
            None => out.extend((-1i32).to_be_bytes()),
        }
        out
    }

    #[test]
    fn assignments_of_every_version_decode() {
        for version in 0..=3 {
            let bytes = assignment(version, &[("a", &[0, 2]), ("b", &[1])], Some(b"x"));
            let decoded = decode_assignment(&bytes).unwrap();
            assert_eq!(decoded, vec![("a".to_string(), vec![0, 2]), ("b".to_string(), vec![1])]);
        }
        assert_eq!(decode_assignment(&assignment(1, &[], None)).unwrap(), Vec::new());
    }

    #[test]
    fn hostile_assignments_are_errors_not_allocations() {
        let bytes = assignment(0, &[("topic", &[0, 1, 2])], None);
        for len in 0..bytes.len() - 4 {
            assert!(decode_assignment(&bytes[..len]).is_err(), "prefix of {len} bytes");
        }
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend(i32::MAX.to_be_bytes());
        assert!(decode_assignment(&huge).unwrap_err().contains("exceeds"));
        let mut negative = 0i16.to_be_bytes().to_vec();
        negative.extend((-5i32).to_be_bytes());
        assert!(decode_assignment(&negative).is_err());
    }
}
