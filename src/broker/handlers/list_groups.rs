//! ListGroups: every shard lists the groups it coordinates.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::protocol::messages::{ListGroupsRequest, ListGroupsResponse, ListGroupsResponseGroup};
use crate::protocol::{Reply, RequestHeader, respond};

/// ListGroups (v0-4; v4 filters by state, case-insensitively as Kafka does).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: ListGroupsRequest) -> Reply {
    let (mut groups, error) = broker.groups.list_all().await;
    let filter: Vec<String> = request.states_filter.iter().map(|s| s.to_ascii_lowercase()).collect();
    groups.retain(|(_, _, state)| filter.is_empty() || filter.contains(&state.to_ascii_lowercase()));
    groups.sort();
    let response = ListGroupsResponse {
        error_code: error.code(),
        groups: groups
            .into_iter()
            .map(|(group_id, protocol_type, state)| ListGroupsResponseGroup {
                group_id,
                protocol_type,
                group_state: state.to_string(),
            })
            .collect(),
        ..Default::default()
    };
    respond(header, &response)
}
