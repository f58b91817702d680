//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{GroupRequest, GroupResponse, call};
use crate::protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// Heartbeat (v0-4).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: HeartbeatRequest) -> Reply {
    let error = if request.group_id.is_empty() {
        ErrorCode::InvalidGroupId
    } else {
        let group = request.group_id.clone();
        let (generation, member, instance) = (request.generation_id, request.member_id, request.group_instance_id);
        match call(broker, &request.group_id, move |p| GroupRequest::Heartbeat(group, p, generation, member, instance))
            .await
        {
            Ok(GroupResponse::Code(code)) => code,
            Ok(_) => ErrorCode::UnknownServerError,
            Err(e) => e,
        }
    };
    respond(header, &HeartbeatResponse { error_code: error.code(), ..Default::default() })
}
