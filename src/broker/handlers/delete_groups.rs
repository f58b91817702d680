//! DeleteGroups: an empty group's metadata and offsets are tombstoned, then forgotten.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{GroupOp, GroupResponse};
use crate::protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, DeleteGroupsResponseResult};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// DeleteGroups (v0-2).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DeleteGroupsRequest) -> Reply {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let code = match broker.groups.route(&group_id, GroupOp::Delete).await {
            Ok(GroupResponse::Code(code)) => code,
            Ok(_) => ErrorCode::UnknownServerError,
            Err(e) => e,
        };
        results.push(DeleteGroupsResponseResult { group_id, error_code: code.code() });
    }
    respond(header, &DeleteGroupsResponse { results, ..Default::default() })
}
