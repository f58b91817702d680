//! DeleteTopics, by name (v0-v5) or by name or id (v6).

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::metadata::controller::{ControllerRequest, ControllerResponse};
use crate::model::TopicId;
use crate::protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, DeleteTopicsResponseTopic};
use crate::protocol::{ErrorCode, RequestHeader, Uuid};
use crate::protocol::{Reply, respond};

/// DeleteTopics.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DeleteTopicsRequest) -> Reply {
    let image = broker.metadata.image();
    let mut names = request.topic_names;
    let mut unknown_ids = Vec::new();
    for topic in request.topics {
        match topic.name {
            Some(name) => names.push(name),
            None => match image.topic_by_id(TopicId(topic.topic_id.0)) {
                Some(meta) => names.push(meta.name.clone()),
                None => unknown_ids.push(topic.topic_id),
            },
        }
    }
    let mut responses = Vec::new();
    if !names.is_empty() {
        let call = broker.metadata.control(ControllerRequest::DeleteTopics(names.clone())).await;
        match call {
            Ok(ControllerResponse::DeleteTopics(results)) => {
                for (name, result) in results {
                    responses.push(match result {
                        Ok(id) => {
                            DeleteTopicsResponseTopic { name: Some(name), topic_id: Uuid(id.0), ..Default::default() }
                        }
                        Err(e) => DeleteTopicsResponseTopic {
                            name: Some(name),
                            error_code: ErrorCode::from(&e).code(),
                            error_message: Some(e.to_string()),
                            ..Default::default()
                        },
                    });
                }
            }
            _ => {
                for name in names {
                    responses.push(DeleteTopicsResponseTopic {
                        name: Some(name),
                        error_code: ErrorCode::KafkaStorageError.code(),
                        ..Default::default()
                    });
                }
            }
        }
    }
    for id in unknown_ids {
        responses.push(DeleteTopicsResponseTopic {
            name: None,
            topic_id: id,
            error_code: ErrorCode::UnknownTopicOrPartition.code(),
            ..Default::default()
        });
    }
    respond(header, &DeleteTopicsResponse { responses, ..Default::default() })
}
