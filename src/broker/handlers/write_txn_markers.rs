//! WriteTxnMarkers: writes commit or abort markers to partitions (Kafka's coordinator-to-leader
//! request). A transaction coordinator on another broker sends it for the partitions this broker
//! leads (its own it writes through the shards directly). Each marker's partitions go to their
//! owning shards; every partition is answered once its marker is committed, and one this broker
//! does not lead gets NOT_LEADER_OR_FOLLOWER, so the coordinator asks the new leader.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::scatter;
use crate::broker::ShardBroker;
use crate::broker::partition::{PartitionRequest, PartitionResponse};
use crate::group::OFFSETS_TOPIC;
use crate::model::{ControlType, ProducerId, TopicPartition};
use crate::protocol::messages::{
    WriteTxnMarkersRequest, WriteTxnMarkersResponse, WriteTxnMarkersResponseMarker, WriteTxnMarkersResponsePartition,
    WriteTxnMarkersResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// WriteTxnMarkers.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: WriteTxnMarkersRequest) -> Reply {
    let mut markers = Vec::with_capacity(request.markers.len());
    for marker in request.markers {
        let (producer_id, producer_epoch) = (ProducerId(marker.producer_id), marker.producer_epoch);
        let kind = if marker.transaction_result { ControlType::Commit } else { ControlType::Abort };
        let coordinator_epoch = marker.coordinator_epoch;
        let (offsets, work): (Vec<_>, Vec<_>) = marker
            .topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(move |&p| (TopicPartition::new(t.name.as_str(), p), ())))
            .partition(|(tp, ())| &*tp.topic == OFFSETS_TOPIC);
        let results = scatter(
            broker,
            work,
            |items| PartitionRequest::WriteMarkers {
                producer_id,
                producer_epoch,
                coordinator_epoch,
                kind,
                partitions: items.into_iter().map(|(tp, ())| tp).collect(),
            },
            |response| match response {
                PartitionResponse::WriteMarkers(results) => Some(results),
                _ => None,
            },
        )
        .await;
        // `__consumer_offsets` markers go through the group coordinator, which publishes or
        // drops the transaction's offsets as it writes them.
        let mut results: BTreeMap<TopicPartition, Result<(), ErrorCode>> =
            results.into_iter().map(|(tp, r)| (tp, r.map(|_| ()).map_err(|e| ErrorCode::from(&e)))).collect();
        for (tp, ()) in offsets {
            let written = broker
                .groups
                .write_txn_marker(tp.partition, producer_id, producer_epoch, coordinator_epoch, kind)
                .await;
            results.insert(tp, written);
        }
        let topics = marker
            .topics
            .into_iter()
            .map(|t| {
                let name: std::sync::Arc<str> = t.name.as_str().into();
                WriteTxnMarkersResponseTopic {
                    partitions: t
                        .partition_indexes
                        .iter()
                        .map(|&p| {
                            let tp = TopicPartition { topic: name.clone(), partition: p };
                            let error = match results.remove(&tp) {
                                Some(Ok(())) => ErrorCode::None,
                                Some(Err(e)) => e,
                                None => ErrorCode::InvalidRequest,
                            };
                            WriteTxnMarkersResponsePartition { partition_index: p, error_code: error.code() }
                        })
                        .collect(),
                    name: t.name,
                }
            })
            .collect();
        markers.push(WriteTxnMarkersResponseMarker { producer_id: marker.producer_id, topics });
    }
    respond(header, &WriteTxnMarkersResponse { markers })
}
