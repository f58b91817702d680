//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{GroupOp, GroupResponse, MemberRef};
use crate::protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// Heartbeat (v0-4).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: HeartbeatRequest) -> Reply {
    let error = if request.group_id.is_empty() {
        ErrorCode::InvalidGroupId
    } else {
        let member = MemberRef {
            generation: request.generation_id,
            member_id: request.member_id,
            instance_id: request.group_instance_id,
        };
        match broker.groups.route(&request.group_id, GroupOp::Heartbeat(member)).await {
            Ok(GroupResponse::Code(code)) => code,
            Ok(_) => ErrorCode::UnknownServerError,
            Err(e) => e,
        }
    };
    respond(header, &HeartbeatResponse { error_code: error.code(), ..Default::default() })
}
