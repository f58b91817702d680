//! DescribeGroups: each group from its coordinating shard.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{GroupOp, GroupResponse};
use crate::protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, DescribeGroupsResponseGroup, DescribeGroupsResponseMember,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// Without ACLs every client may do everything Kafka allows on a group: READ (3), DELETE (6) and
/// DESCRIBE (8), as bits of Kafka's AclOperation codes.
const AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// DescribeGroups (v0-5).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DescribeGroupsRequest) -> Reply {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        let outcome = match broker.groups.route(&group_id, GroupOp::Describe).await {
            Ok(GroupResponse::Describe(result)) => result,
            Ok(_) => Err(ErrorCode::UnknownServerError),
            Err(e) => Err(e),
        };
        groups.push(match outcome {
            Ok(d) => DescribeGroupsResponseGroup {
                error_code: 0,
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
