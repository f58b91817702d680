//! ElectLeaders (KIP-183, KIP-460): move partitions' leadership, decided by the controller. A
//! preferred election (type 0, `ControllerRequest::ElectPreferred`): the preferred replica takes
//! over where it is live and in sync. An unclean election (type 1,
//! `ControllerRequest::ElectUnclean`): a leaderless partition gets a live in-sync replica, else
//! any live replica (losing what only the others had), whatever the topic's
//! `unclean.leader.election.enable`. What `kafka-leader-election.sh` drives.

use std::collections::BTreeSet;
use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::metadata::controller::{ControllerRequest, ControllerResponse, Elected, TopicError};
use crate::protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, ElectLeadersResponsePartition, ElectLeadersResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// KIP-460's election types.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// ElectLeaders.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: ElectLeadersRequest) -> Reply {
    // A partition named twice is answered once (a set also orders the answer by partition).
    // `timeout_ms` is not used: the controller bounds each decision by its commit timeout.
    let asked: Option<Vec<(String, i32)>> = request.topic_partitions.as_ref().map(|topics| {
        let set: BTreeSet<(String, i32)> =
            topics.iter().flat_map(|t| t.partitions.iter().map(move |&p| (t.topic.clone(), p))).collect();
        set.into_iter().collect()
    });
    let all = asked.is_none();
    let call = match request.election_type {
        PREFERRED => ControllerRequest::ElectPreferred(asked.clone()),
        UNCLEAN => ControllerRequest::ElectUnclean(asked.clone()),
        other => {
            let (error_code, results) =
                failed(asked, TopicError::InvalidRequest(format!("unknown election type {other}")));
            return answer(header, error_code, results, all);
        }
    };
    let (error_code, results) = match broker.metadata.control(call).await {
        Ok(ControllerResponse::ElectPreferred(results) | ControllerResponse::ElectUnclean(results)) => (0, results),
        Ok(_) => failed(asked, TopicError::NoController("unexpected controller answer".into())),
        Err(e) => failed(asked, TopicError::NoController(e.to_string())),
    };
    answer(header, error_code, results, all)
}

/// The response: per topic, each partition's outcome.
fn answer(header: &RequestHeader, error_code: i16, results: Vec<Elected>, all: bool) -> Reply {
    // Asked about every partition, Kafka answers only for those it acted on (or could not):
    // a partition that needed no election is left out.
    let results = results.into_iter().filter(|(_, r)| !(all && matches!(r, Err(TopicError::ElectionNotNeeded))));
    let mut topics: Vec<ElectLeadersResponseTopic> = Vec::new();
    for ((topic, partition_id), result) in results {
        let (error_code, error_message) = match &result {
            Ok(()) => (0, None),
            Err(e) => (ErrorCode::from(e).code(), Some(e.to_string())),
        };
        let entry = ElectLeadersResponsePartition { partition_id, error_code, error_message };
        match topics.iter_mut().find(|t| t.topic == topic) {
            Some(t) => t.partition_result.push(entry),
            None => topics.push(ElectLeadersResponseTopic { topic, partition_result: vec![entry] }),
        }
    }
    respond(header, &ElectLeadersResponse { throttle_time_ms: 0, error_code, replica_election_results: topics })
}

/// Every asked partition failed with `error`; with none named, the whole request did.
fn failed(asked: Option<Vec<(String, i32)>>, error: TopicError) -> (i16, Vec<Elected>) {
    match asked {
        None => (ErrorCode::from(&error).code(), Vec::new()),
        Some(asked) => (0, asked.into_iter().map(|tp| (tp, Err(error.clone()))).collect()),
    }
}
