//! SyncGroup: the leader hands out the assignment; the other members wait for theirs.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{GroupOp, GroupResponse};
use crate::group::{SyncRequest, SyncResult};
use crate::protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// SyncGroup (v0-5).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: SyncGroupRequest) -> Reply {
    let result = if request.group_id.is_empty() {
        SyncResult::error(ErrorCode::InvalidGroupId)
    } else {
        let sync = SyncRequest {
            generation: request.generation_id,
            member_id: request.member_id,
            instance_id: request.group_instance_id,
            protocol_type: request.protocol_type,
            protocol_name: request.protocol_name,
            assignments: request.assignments.into_iter().map(|a| (a.member_id, a.assignment)).collect(),
        };
        match broker.groups.route(&request.group_id, GroupOp::Sync(sync)).await {
            Ok(GroupResponse::Sync(result)) => result,
            Ok(_) => SyncResult::error(ErrorCode::UnknownServerError),
            Err(e) => SyncResult::error(e),
        }
    };
    let response = SyncGroupResponse {
        error_code: result.error.code(),
        protocol_type: result.protocol_type,
        protocol_name: result.protocol_name,
        assignment: result.assignment,
        ..Default::default()
    };
    respond(header, &response)
}
