//! ListTransactions: every transactional id the broker coordinates, filtered by state, producer
//! id, how long the transaction has run (v1) and a pattern on the id (v2), as Kafka does.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ListTransactionsResponseTransaction,
};
use crate::protocol::{ErrorCode, Reply, RequestHeader, respond};
use crate::txn::TxnState;

/// The longest id pattern compiled (a bound on the regex's size, like every other input).
const PATTERN_BYTES_MAX: usize = 1024;

/// ListTransactions.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: ListTransactionsRequest) -> Reply {
    let states: Vec<TxnState> = (0..8).filter_map(TxnState::from_code).collect();
    let unknown_state_filters: Vec<String> =
        request.state_filters.iter().filter(|f| !states.iter().any(|s| s.name() == f.as_str())).cloned().collect();
    let pattern = match request.transactional_id_pattern.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) if p.len() > PATTERN_BYTES_MAX => return invalid(header),
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(_) => return invalid(header),
        },
    };
    let (all, error_code) = broker.transactions.list_all().await;
    let now = crate::model::Timestamp::now().0;
    let transaction_states = all
        .into_iter()
        .filter(|m| request.state_filters.is_empty() || request.state_filters.iter().any(|f| f == m.state.name()))
        .filter(|m| request.producer_id_filters.is_empty() || request.producer_id_filters.contains(&m.producer_id.0))
        .filter(|m| {
            request.duration_filter < 0
                || (m.state == TxnState::Ongoing && now.saturating_sub(m.start_ms) > request.duration_filter)
        })
        .filter(|m| pattern.as_ref().is_none_or(|re| re.is_match(&m.transactional_id)))
        .map(|m| ListTransactionsResponseTransaction {
            transactional_id: m.transactional_id,
            producer_id: m.producer_id.0,
            transaction_state: m.state.name().to_string(),
        })
        .collect();
    respond(
        header,
        &ListTransactionsResponse {
            error_code: error_code.code(),
            unknown_state_filters,
            transaction_states,
            ..Default::default()
        },
    )
}

fn invalid(header: &RequestHeader) -> Reply {
    respond(header, &ListTransactionsResponse { error_code: ErrorCode::InvalidRequest.code(), ..Default::default() })
}
