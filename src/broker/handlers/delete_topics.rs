//! DeleteTopics, by name (v0-v5) or by name or id (v6).

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::metadata::controller::{ControllerRequest, ControllerResponse};
use crate::broker::metadata::image::MetadataImage;
use crate::model::TopicId;
use crate::protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsRequestTopic, DeleteTopicsResponse, DeleteTopicsResponseTopic,
};
use crate::protocol::{ErrorCode, RequestHeader, Uuid};
use crate::protocol::{Reply, respond};

/// The name of the topic a v6 entry names, by name or by id (Kafka's rules: exactly one of the
/// two; an unknown id is UNKNOWN_TOPIC_ID), or its error.
fn target(image: &MetadataImage, topic: &DeleteTopicsRequestTopic) -> Result<String, (ErrorCode, &'static str)> {
    let by_id = topic.topic_id != Uuid::default();
    match &topic.name {
        Some(_) if by_id => Err((ErrorCode::InvalidRequest, "a topic may be named by name or by id, not both")),
        Some(name) => Ok(name.clone()),
        None if by_id => match image.topic_by_id(TopicId(topic.topic_id.0)) {
            Some(meta) => Ok(meta.name.clone()),
            None => Err((ErrorCode::UnknownTopicId, "no topic has this id")),
        },
        None => Err((ErrorCode::InvalidRequest, "neither a topic name nor an id")),
    }
}

/// DeleteTopics.
pub async fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DeleteTopicsRequest) -> Reply {
    let image = broker.metadata.image();
    let mut names = request.topic_names;
    let mut refused = Vec::new();
    for topic in request.topics {
        match target(&image, &topic) {
            Ok(name) => names.push(name),
            Err((code, message)) => refused.push(DeleteTopicsResponseTopic {
                name: topic.name,
                topic_id: topic.topic_id,
                error_code: code.code(),
                error_message: Some(message.to_string()),
            }),
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
    responses.extend(refused);
    respond(header, &DeleteTopicsResponse { responses, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::broker::metadata::image::TopicMeta;

    #[test]
    fn entries_name_a_topic_by_name_or_by_id() {
        let topic =
            TopicMeta { name: "t".into(), id: TopicId([7; 16]), partitions: Vec::new(), configs: Default::default() };
        let image = MetadataImage { topics: [("t".to_string(), Arc::new(topic))].into(), ..Default::default() };
        let entry = |name: Option<&str>, id: u8| DeleteTopicsRequestTopic {
            name: name.map(str::to_string),
            topic_id: Uuid([id; 16]),
        };
        assert_eq!(target(&image, &entry(Some("t"), 0)), Ok("t".to_string()));
        assert_eq!(target(&image, &entry(None, 7)), Ok("t".to_string()));
        assert_eq!(target(&image, &entry(None, 8)).map_err(|e| e.0), Err(ErrorCode::UnknownTopicId));
        assert_eq!(target(&image, &entry(Some("t"), 7)).map_err(|e| e.0), Err(ErrorCode::InvalidRequest));
        assert_eq!(target(&image, &entry(None, 0)).map_err(|e| e.0), Err(ErrorCode::InvalidRequest));
    }
}
