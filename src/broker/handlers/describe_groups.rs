//! DescribeGroups: each group from its coordinating shard.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{GroupOp, GroupResponse};
use crate::group::GroupState;
use crate::protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, DescribeGroupsResponseGroup, DescribeGroupsResponseMember,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// Without ACLs every client may do everything Kafka allows on a group: READ (3), DELETE (6) and
/// DESCRIBE (8), as bits of Kafka's AclOperation codes.
const AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// The first DescribeGroups version that answers an unknown group with an error (KIP-1043).
const NOT_FOUND_FROM_VERSION: i16 = 6;

/// How an unknown group (described as Dead) is answered: before v6 as a Dead group without an
/// error; from v6, Kafka 4's way, which its admin client turns into GroupIdNotFoundException.
fn unknown_group(version: i16, group_id: String) -> DescribeGroupsResponseGroup {
    let mut group = DescribeGroupsResponseGroup {
        group_state: GroupState::Dead.name().to_string(),
        authorized_operations: i32::MIN,
        ..Default::default()
    };
    if version >= NOT_FOUND_FROM_VERSION {
        group.error_code = ErrorCode::GroupIdNotFound.code();
        group.error_message = Some(format!("Group {group_id} not found."));
    }
    group.group_id = group_id;
    group
}

/// DescribeGroups (v0-6).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DescribeGroupsRequest) -> Reply {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        let outcome = match broker.groups.route(&group_id, GroupOp::Describe).await {
            Ok(GroupResponse::Describe(result)) => result,
            Ok(_) => Err(ErrorCode::UnknownServerError),
            Err(e) => Err(e),
        };
        groups.push(match outcome {
            Ok(d) if d.state == GroupState::Dead.name() => unknown_group(header.api_version, group_id),
            Ok(d) => DescribeGroupsResponseGroup {
                error_code: 0,
                error_message: None,
                group_id,
                group_state: d.state.to_string(),
                protocol_type: d.protocol_type,
                protocol_data: d.protocol,
                members: d
                    .members
                    .into_iter()
                    .map(|(member_id, group_instance_id, client_id, client_host, metadata, assignment)| {
                        DescribeGroupsResponseMember {
                            member_id,
                            group_instance_id,
                            client_id,
                            client_host,
                            member_metadata: metadata,
                            member_assignment: assignment,
                        }
                    })
                    .collect(),
                authorized_operations: if request.include_authorized_operations {
                    AUTHORIZED_OPERATIONS
                } else {
                    i32::MIN
                },
            },
            Err(e) => DescribeGroupsResponseGroup { error_code: e.code(), group_id, ..Default::default() },
        });
    }
    respond(header, &DescribeGroupsResponse { groups, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_group_is_an_error_from_v6_and_dead_before() {
        let old = unknown_group(5, "g".into());
        assert_eq!((old.error_code, old.error_message, old.group_state.as_str()), (0, None, "Dead"));
        let new = unknown_group(6, "g".into());
        assert_eq!(new.error_code, ErrorCode::GroupIdNotFound.code());
        assert_eq!(new.error_message.as_deref(), Some("Group g not found."));
        assert_eq!((new.group_id.as_str(), new.group_state.as_str()), ("g", "Dead"));
    }
}
