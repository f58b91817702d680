//! LeaveGroup: one member (v0-2) or a batch (v3+, also by static id alone).

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{GroupOp, GroupResponse, LeavingMember};
use crate::protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, LeaveGroupResponseMember};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// LeaveGroup (v0-5).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: LeaveGroupRequest) -> Reply {
    let batched = header.api_version >= 3;
    let members: Vec<(String, Option<String>)> = if batched {
        request.members.iter().map(|m| (m.member_id.clone(), m.group_instance_id.clone())).collect()
    } else {
        vec![(request.member_id.clone(), None)]
    };
    let outcome = if request.group_id.is_empty() {
        Err(ErrorCode::InvalidGroupId)
    } else {
        let leaving = members
            .iter()
            .map(|(member_id, instance_id)| LeavingMember {
                member_id: member_id.clone(),
                instance_id: instance_id.clone(),
            })
            .collect();
        match broker.groups.route(&request.group_id, GroupOp::Leave(leaving)).await {
            Ok(GroupResponse::Leave(result)) => result,
            Ok(_) => Err(ErrorCode::UnknownServerError),
            Err(e) => Err(e),
        }
    };
    let response = match outcome {
        Err(e) => LeaveGroupResponse { error_code: e.code(), ..Default::default() },
        Ok(codes) if !batched => LeaveGroupResponse {
            error_code: codes.first().copied().unwrap_or(ErrorCode::None).code(),
            ..Default::default()
        },
        Ok(codes) => LeaveGroupResponse {
            members: members
                .into_iter()
                .zip(codes)
                .map(|((member_id, group_instance_id), code)| LeaveGroupResponseMember {
                    member_id,
                    group_instance_id,
                    error_code: code.code(),
                })
                .collect(),
            ..Default::default()
        },
    };
    respond(header, &response)
}
