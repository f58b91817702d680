//! ListGroups: every shard lists the groups it coordinates.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::protocol::messages::{ListGroupsRequest, ListGroupsResponse, ListGroupsResponseGroup};
use crate::protocol::{Reply, RequestHeader, respond};

/// The type (ListGroups v5, KIP-848) of every group here: the classic protocol is the only one
/// the coordinator speaks.
const CLASSIC: &str = "classic";

/// Whether a group of `state` passes the request's filters: each is empty (all pass) or names
/// the state or type, case-insensitively as Kafka compares them. A type filter naming only other
/// types ("consumer", "share") lists nothing.
fn listed(request: &ListGroupsRequest, state: &str) -> bool {
    let names =
        |filter: &[String], name: &str| filter.is_empty() || filter.iter().any(|f| f.trim().eq_ignore_ascii_case(name));
    names(&request.states_filter, state) && names(&request.types_filter, CLASSIC)
}

/// ListGroups (v0-5; v4 filters by state, v5 by type).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: ListGroupsRequest) -> Reply {
    let (mut groups, error) = broker.groups.list_all().await;
    groups.retain(|(_, _, state)| listed(&request, state));
    groups.sort();
    let response = ListGroupsResponse {
        error_code: error.code(),
        groups: groups
            .into_iter()
            .map(|(group_id, protocol_type, state)| ListGroupsResponseGroup {
                group_id,
                protocol_type,
                group_state: state.to_string(),
                group_type: CLASSIC.to_string(),
            })
            .collect(),
        ..Default::default()
    };
    respond(header, &response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(states: &[&str], types: &[&str]) -> ListGroupsRequest {
        ListGroupsRequest {
            states_filter: states.iter().map(|s| s.to_string()).collect(),
            types_filter: types.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn filters_by_state_and_type_case_insensitively() {
        assert!(listed(&request(&[], &[]), "Stable"));
        assert!(listed(&request(&["stable"], &[]), "Stable"));
        assert!(!listed(&request(&["Empty"], &[]), "Stable"));
        assert!(listed(&request(&[], &["Classic"]), "Stable"));
        assert!(listed(&request(&[], &["consumer", "classic"]), "Stable"));
        assert!(!listed(&request(&[], &["consumer"]), "Stable"));
        assert!(!listed(&request(&["Stable"], &["share"]), "Stable"));
    }
}
