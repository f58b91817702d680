//! CreatePartitions: grows topics, on the controller.

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::metadata::controller::{ControllerRequest, ControllerResponse};
use crate::protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, CreatePartitionsResponseResult};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

/// CreatePartitions.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: CreatePartitionsRequest) -> Reply {
    let topics: Vec<(String, i32)> = request.topics.into_iter().map(|t| (t.name, t.count)).collect();
    let names: Vec<String> = topics.iter().map(|(n, _)| n.clone()).collect();
    let call = broker
        .metadata
        .control(ControllerRequest::CreatePartitions { topics, validate_only: request.validate_only })
        .await;
    let results = match call {
        Ok(ControllerResponse::CreatePartitions(results)) => results
            .into_iter()
            .map(|(name, result)| match result {
                Ok(()) => CreatePartitionsResponseResult { name, ..Default::default() },
                Err(e) => CreatePartitionsResponseResult {
                    name,
                    error_code: ErrorCode::from(&e).code(),
                    error_message: Some(e.to_string()),
                },
            })
            .collect(),
        _ => names
            .into_iter()
            .map(|name| CreatePartitionsResponseResult {
                name,
                error_code: ErrorCode::KafkaStorageError.code(),
                error_message: Some("controller unavailable".into()),
            })
            .collect(),
    };
    respond(header, &CreatePartitionsResponse { results, ..Default::default() })
}
