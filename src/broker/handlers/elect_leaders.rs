//! ElectLeaders (KIP-183, KIP-460): move partitions' leadership. A preferred election (type 0)
//! is decided by the controller (`ControllerRequest::ElectPreferred`): the preferred replica
//! takes over where it is live and in sync. Unclean election (type 1, a replica outside the ISR
//! taking over a leaderless partition) is not implemented: each partition gets the error Kafka
//! gives when no unclean election is possible. What `kafka-leader-election.sh` drives.

use std::collections::BTreeSet;
use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::metadata::controller::{ControllerRequest, ControllerResponse, Elected, TopicError};
use crate::broker::metadata::image::{MetadataImage, NO_LEADER};
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
    let (error_code, results) = match request.election_type {
        PREFERRED => match broker.metadata.control(ControllerRequest::ElectPreferred(asked.clone())).await {
            Ok(ControllerResponse::ElectPreferred(results)) => (0, results),
            Ok(_) => failed(asked, TopicError::NoController("unexpected controller answer".into())),
            Err(e) => failed(asked, TopicError::NoController(e.to_string())),
        },
        UNCLEAN => (0, unclean(&broker.metadata.image(), asked)),
        other => failed(asked, TopicError::InvalidRequest(format!("unknown election type {other}"))),
    };
    // Asked about every partition, Kafka answers only for those it acted on (or could not):
    // a partition its preferred leader already leads is left out.
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

/// Unclean election, not implemented: a partition with a leader needs none (Kafka's
/// ELECTION_NOT_NEEDED); a leaderless one gets ELIGIBLE_LEADERS_NOT_AVAILABLE, as Kafka answers
/// when no replica may take over.
fn unclean(image: &MetadataImage, asked: Option<Vec<(String, i32)>>) -> Vec<Elected> {
    let asked = asked.unwrap_or_else(|| {
        image
            .topics
            .values()
            .flat_map(|t| (0..t.partitions.len()).filter_map(|i| Some((t.name.clone(), i32::try_from(i).ok()?))))
            .collect()
    });
    asked
        .into_iter()
        .map(|(topic, index)| {
            let meta = usize::try_from(index).ok().and_then(|i| image.topics.get(&topic)?.partitions.get(i));
            let result = match meta {
                None => Err(TopicError::Unknown),
                Some(meta) if meta.leader != NO_LEADER => Err(TopicError::ElectionNotNeeded),
                Some(_) => Err(TopicError::EligibleLeadersNotAvailable(format!(
                    "{topic}-{index} has no leader and Sluice does not implement unclean leader election"
                ))),
            };
            ((topic, index), result)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::broker::metadata::image::{PartitionMeta, TopicMeta};
    use crate::model::TopicId;

    #[test]
    fn unclean_elections_are_never_run_and_say_why() {
        let led = PartitionMeta::single(1, 0, 0);
        let leaderless = PartitionMeta { leader: NO_LEADER, ..PartitionMeta::single(2, 0, 1) };
        let topic = TopicMeta {
            name: "t".into(),
            id: TopicId([1; 16]),
            partitions: vec![led, leaderless],
            configs: BTreeMap::new(),
        };
        let mut image = MetadataImage::default();
        image.topics.insert("t".into(), Arc::new(topic));
        let codes = |asked| -> Vec<((String, i32), i16)> {
            unclean(&image, asked)
                .into_iter()
                .map(|(tp, r)| (tp, r.err().map_or(0, |e| ErrorCode::from(&e).code())))
                .collect()
        };
        let not_needed = ErrorCode::ElectionNotNeeded.code();
        let impossible = ErrorCode::EligibleLeadersNotAvailable.code();
        let unknown = ErrorCode::UnknownTopicOrPartition.code();
        assert_eq!(codes(None), vec![(("t".into(), 0), not_needed), (("t".into(), 1), impossible)]);
        let asked = vec![("t".to_string(), 1), ("t".to_string(), 2), ("u".to_string(), 0)];
        assert_eq!(
            codes(Some(asked)),
            vec![(("t".into(), 1), impossible), (("t".into(), 2), unknown), (("u".into(), 0), unknown)]
        );
    }
}
