//! JoinGroup: routed to the group's coordinating shard, where it waits for the rebalance.

use std::net::SocketAddr;
use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{GroupOp, GroupResponse, fresh_suffix};
use crate::group::{JoinRequest, JoinResult};
use crate::protocol::messages::{JoinGroupRequest, JoinGroupResponse, JoinGroupResponseMember};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// The first JoinGroup version with `skip_assignment` (KIP-814).
const SKIP_ASSIGNMENT_FROM_VERSION: i16 = 9;

/// JoinGroup (v0-9).
pub async fn handle(
    broker: &Rc<ShardBroker>,
    header: &RequestHeader,
    request: JoinGroupRequest,
    peer: SocketAddr,
) -> Reply {
    let version = header.api_version;
    let result = if request.group_id.is_empty() {
        JoinResult::error(ErrorCode::InvalidGroupId, &request.member_id)
    } else {
        let join = JoinRequest {
            member_id: request.member_id.clone(),
            instance_id: request.group_instance_id.clone(),
            client_id: header.client_id.clone().unwrap_or_default(),
            client_host: format!("/{}", peer.ip()),
            session_timeout_ms: request.session_timeout_ms,
            // v0 has no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout_ms: if version == 0 { request.session_timeout_ms } else { request.rebalance_timeout_ms },
            protocol_type: request.protocol_type.clone(),
            protocols: request.protocols.iter().map(|p| (p.name.clone(), p.metadata.clone())).collect(),
            require_known_member_id: version >= 4,
            fresh_suffix: fresh_suffix(),
            supports_skip_assignment: version >= SKIP_ASSIGNMENT_FROM_VERSION,
        };
        match broker.groups.route(&request.group_id, GroupOp::Join(join)).await {
            Ok(GroupResponse::Join(result)) => result,
            Ok(_) => JoinResult::error(ErrorCode::UnknownServerError, &request.member_id),
            Err(e) => JoinResult::error(e, &request.member_id),
        }
    };
    let response = JoinGroupResponse {
        error_code: result.error.code(),
        generation_id: result.generation,
        protocol_type: result.protocol_type,
        // Before v7 the protocol name is not nullable: empty stands for none.
        protocol_name: if version >= 7 { result.protocol_name } else { Some(result.protocol_name.unwrap_or_default()) },
        leader: result.leader,
        member_id: result.member_id,
        members: result
            .members
            .into_iter()
            .map(|(member_id, group_instance_id, metadata)| JoinGroupResponseMember {
                member_id,
                group_instance_id,
                metadata,
            })
            .collect(),
        skip_assignment: result.skip_assignment,
        ..Default::default()
    };
    respond(header, &response)
}
