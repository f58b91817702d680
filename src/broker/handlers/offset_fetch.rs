//! OffsetFetch: one group (v0-7) or several (v8), the given partitions or all (null topics).
//! With `require_stable` (v7+), a partition whose offset a transaction may still replace
//! answers UNSTABLE_OFFSET_COMMIT, which the consumer retries (KIP-447).

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::groups::{FetchedOffset, GroupOp, GroupResponse};
use crate::protocol::messages::{
    OffsetFetchRequest, OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponseGroupPartition,
    OffsetFetchResponseGroupTopic, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

type Fetched = Vec<(String, i32, FetchedOffset)>;
type ByTopic = Vec<(String, Vec<(i32, FetchedOffset)>)>;

async fn fetch(
    broker: &Rc<ShardBroker>,
    group: &str,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> Result<Fetched, ErrorCode> {
    match broker.groups.route(group, GroupOp::FetchOffsets { partitions: wanted, require_stable }).await {
        Ok(GroupResponse::Offsets(result)) => result,
        Ok(_) => Err(ErrorCode::UnknownServerError),
        Err(e) => Err(e),
    }
}

/// Groups (topic, partition, offset) by topic, in first-seen order.
fn by_topic(found: Fetched) -> ByTopic {
    let mut out: ByTopic = Vec::new();
    for (topic, partition, offset) in found {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, ps)) => ps.push((partition, offset)),
            None => out.push((topic, vec![(partition, offset)])),
        }
    }
    out
}

/// One partition's fields: committed offset, leader epoch, metadata, error code (`error` when
/// the partition itself has none).
fn partition_fields(o: FetchedOffset, error: ErrorCode) -> (i64, i32, Option<String>, i16) {
    match o {
        Ok(o) => (
            o.as_ref().map_or(-1, |o| o.offset),
            o.as_ref().map_or(-1, |o| o.leader_epoch),
            Some(o.and_then(|o| o.metadata).unwrap_or_default()),
            error.code(),
        ),
        Err(e) => (-1, -1, Some(String::new()), e.code()),
    }
}

/// OffsetFetch (v0-8).
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: OffsetFetchRequest) -> Reply {
    if header.api_version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for g in &request.groups {
            let wanted = g
                .topics
                .as_ref()
                .map(|ts| ts.iter().flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.clone(), p))).collect());
            let (topics, error) = match fetch(broker, &g.group_id, wanted, request.require_stable).await {
                Ok(found) => (by_topic(found), ErrorCode::None),
                Err(e) => (Vec::new(), e),
            };
            groups.push(OffsetFetchResponseGroup {
                group_id: g.group_id.clone(),
                topics: topics
                    .into_iter()
                    .map(|(name, ps)| OffsetFetchResponseGroupTopic {
                        name,
                        partitions: ps
                            .into_iter()
                            .map(|(partition_index, o)| {
                                let (committed_offset, committed_leader_epoch, metadata, error_code) =
                                    partition_fields(o, ErrorCode::None);
                                OffsetFetchResponseGroupPartition {
                                    partition_index,
                                    committed_offset,
                                    committed_leader_epoch,
                                    metadata,
                                    error_code,
                                }
                            })
                            .collect(),
                    })
                    .collect(),
                error_code: error.code(),
            });
        }
        return respond(header, &OffsetFetchResponse { groups, ..Default::default() });
    }
    let wanted: Option<Vec<(String, i32)>> = request
        .topics
        .as_ref()
        .map(|ts| ts.iter().flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.clone(), p))).collect());
    let (found, error) = match fetch(broker, &request.group_id, wanted.clone(), request.require_stable).await {
        Ok(found) => (found, ErrorCode::None),
        // v0-1 have no top-level error: each asked partition carries it.
        Err(e) => (wanted.unwrap_or_default().into_iter().map(|(t, p)| (t, p, Ok(None))).collect(), e),
    };
    let partition_error = if header.api_version < 2 { error } else { ErrorCode::None };
    let topics = by_topic(found)
        .into_iter()
        .map(|(name, ps)| OffsetFetchResponseTopic {
            name,
            partitions: ps
                .into_iter()
                .map(|(partition_index, o)| {
                    let (committed_offset, committed_leader_epoch, metadata, error_code) =
                        partition_fields(o, partition_error);
                    OffsetFetchResponsePartition {
                        partition_index,
                        committed_offset,
                        committed_leader_epoch,
                        metadata,
                        error_code,
                    }
                })
                .collect(),
        })
        .collect();
    let response = OffsetFetchResponse { topics, error_code: error.code(), ..Default::default() };
    respond(header, &response)
}
