//! ListGroups: every shard lists the groups it coordinates.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::protocol::messages::{ListGroupsRequest, ListGroupsResponse, ListGroupsResponseGroup};
use crate::protocol::{Reply, RequestHeader, respond};

/// The type of every group here: the classic protocol's (KIP-848 names it so; a group made by
/// OffsetCommit alone is a classic group too). The consumer, share and streams protocols are not
/// served.
const GROUP_TYPE: &str = "classic";

/// ListGroups (v0-5; v4 filters by state, v5 by type, case-insensitively as Kafka does).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: ListGroupsRequest) -> Reply {
    let (groups, error) = broker.groups.list_all().await;
    let response =
        ListGroupsResponse { error_code: error.code(), groups: listed(groups, &request), ..Default::default() };
    respond(header, &response)
}

/// The (group id, protocol type, state) groups that pass the request's filters, in id order.
fn listed(
    mut groups: Vec<(String, String, &'static str)>,
    request: &ListGroupsRequest,
) -> Vec<ListGroupsResponseGroup> {
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_ascii_lowercase()).collect();
    groups.retain(|(_, _, state)| states.is_empty() || states.contains(&state.to_ascii_lowercase()));
    let types = &request.types_filter;
    if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case(GROUP_TYPE)) {
        groups.clear();
    }
    groups.sort();
    groups
        .into_iter()
        .map(|(group_id, protocol_type, state)| ListGroupsResponseGroup {
            group_id,
            protocol_type,
            group_state: state.to_string(),
            group_type: GROUP_TYPE.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(states: &[&str], types: &[&str]) -> Vec<String> {
        let groups =
            vec![("b".to_string(), "consumer".to_string(), "Stable"), ("a".to_string(), String::new(), "Empty")];
        let request = ListGroupsRequest {
            states_filter: states.iter().map(|s| s.to_string()).collect(),
            types_filter: types.iter().map(|s| s.to_string()).collect(),
        };
        let listed = listed(groups, &request);
        assert!(listed.iter().all(|g| g.group_type == "classic"));
        listed.into_iter().map(|g| g.group_id).collect()
    }

    #[test]
    fn every_group_is_classic_and_filters_ignore_case() {
        assert_eq!(ids(&[], &[]), ["a", "b"]);
        assert_eq!(ids(&["stable"], &[]), ["b"]);
        assert_eq!(ids(&[], &["Classic"]), ["a", "b"]);
        assert_eq!(ids(&[], &["consumer", "classic"]), ["a", "b"]);
        assert!(ids(&[], &["consumer"]).is_empty(), "no group speaks the consumer protocol (KIP-848)");
        assert_eq!(ids(&["Empty"], &["CLASSIC"]), ["a"]);
    }
}
