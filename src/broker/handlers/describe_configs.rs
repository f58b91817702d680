//! DescribeConfigs for topics (every topic config with its value and source) and for the broker
//! (the settings its flags gave it, under Kafka's broker config names).

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::topic_config::{ConfigSource, TopicConfig};
use crate::protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeConfigsResponseConfig, DescribeConfigsResponseResult,
    DescribeConfigsResponseSynonym,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Kafka's config types (DescribeConfigs v3+).
fn config_type(name: &str) -> i8 {
    const BOOLEAN: i8 = 1;
    const STRING: i8 = 2;
    const INT: i8 = 3;
    const LONG: i8 = 5;
    const LIST: i8 = 7;
    match name {
        "cleanup.policy" | "log.cleanup.policy" | "log.dirs" | "listeners" | "advertised.listeners" => LIST,
        "unclean.leader.election.enable" | "auto.create.topics.enable" => BOOLEAN,
        "segment.bytes"
        | "index.interval.bytes"
        | "max.message.bytes"
        | "min.insync.replicas"
        | "num.partitions"
        | "node.id"
        | "broker.id"
        | "message.max.bytes"
        | "log.segment.bytes"
        | "log.index.interval.bytes"
        | "socket.request.max.bytes" => INT,
        n if n.ends_with(".ms") || n.ends_with(".bytes") => LONG,
        _ => STRING,
    }
}

fn entry(
    name: &str,
    value: String,
    source: ConfigSource,
    request: &DescribeConfigsRequest,
) -> DescribeConfigsResponseConfig {
    DescribeConfigsResponseConfig {
        name: name.to_string(),
        value: Some(value.clone()),
        read_only: false,
        is_default: source == ConfigSource::Default,
        config_source: source.wire(),
        is_sensitive: false,
        synonyms: if request.include_synonyms {
            vec![DescribeConfigsResponseSynonym { name: name.to_string(), value: Some(value), source: source.wire() }]
        } else {
            Vec::new()
        },
        config_type: config_type(name),
        documentation: None,
    }
}

fn broker_configs(broker: &ShardBroker) -> Vec<(&'static str, String)> {
    let c = &broker.config;
    let log = &c.log_defaults;
    let listener = format!("PLAINTEXT://{}", c.listen);
    vec![
        ("advertised.listeners", format!("PLAINTEXT://{}:{}", c.advertised_host, c.advertised_port)),
        ("auto.create.topics.enable", c.auto_create_topics.to_string()),
        ("broker.id", c.node_id.to_string()),
        ("listeners", listener),
        ("log.cleanup.policy", log.get("cleanup.policy").unwrap_or_default()),
        ("log.dirs", c.data_dir.display().to_string()),
        ("log.index.interval.bytes", log.index_interval_bytes.to_string()),
        ("log.retention.bytes", log.get("retention.bytes").unwrap_or_default()),
        ("log.retention.ms", log.get("retention.ms").unwrap_or_default()),
        ("log.roll.ms", log.segment_ms.to_string()),
        ("log.segment.bytes", log.segment_bytes.to_string()),
        ("message.max.bytes", log.max_message_bytes.to_string()),
        ("node.id", c.node_id.to_string()),
        ("num.partitions", c.default_partitions.to_string()),
        ("socket.request.max.bytes", c.max_request_bytes.to_string()),
    ]
}

/// DescribeConfigs.
pub fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DescribeConfigsRequest) -> Reply {
    let wanted = |keys: &Option<Vec<String>>, name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|n| n == name));
    let image = broker.metadata.image();
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let mut result = DescribeConfigsResponseResult {
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
                ..Default::default()
            };
            match resource.resource_type {
                RESOURCE_TOPIC => match image.topics.get(&resource.resource_name) {
                    Some(topic) => match TopicConfig::resolve(&broker.config.topic_defaults(), &topic.configs) {
                        Ok(config) => {
                            result.configs = config
                                .describe()
                                .into_iter()
                                .filter(|(name, ..)| wanted(&resource.configuration_keys, name))
                                .map(|(name, value, source)| entry(name, value, source, &request))
                                .collect();
                        }
                        Err(e) => {
                            result.error_code = ErrorCode::InvalidConfig.code();
                            result.error_message = Some(e.to_string());
                        }
                    },
                    None => {
                        result.error_code = ErrorCode::UnknownTopicOrPartition.code();
                        result.error_message = Some(format!("topic {} does not exist", resource.resource_name));
                    }
                },
                RESOURCE_BROKER
                    if resource.resource_name.is_empty()
                        || resource.resource_name == broker.config.node_id.to_string() =>
                {
                    result.configs = broker_configs(broker)
                        .into_iter()
                        .filter(|(name, _)| wanted(&resource.configuration_keys, name))
                        .map(|(name, value)| entry(name, value, ConfigSource::StaticBroker, &request))
                        .collect();
                }
                RESOURCE_BROKER => {
                    result.error_code = ErrorCode::InvalidRequest.code();
                    result.error_message = Some(format!("this is broker {}", broker.config.node_id));
                }
                other => {
                    result.error_code = ErrorCode::InvalidRequest.code();
                    result.error_message = Some(format!("resource type {other} is not supported"));
                }
            }
            result
        })
        .collect();
    respond(header, &DescribeConfigsResponse { results, ..Default::default() })
}
