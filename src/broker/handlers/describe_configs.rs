//! DescribeConfigs for topics (every Kafka topic config with its value, source and synonyms) and
//! for brokers (the broker's settings under Kafka's names: its dynamic configs with their
//! sources, and its read-only flags), as Kafka's `ConfigHelper` answers them.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::broker::topic_config::{
    ConfigSource, ConfigType, DescribedConfig, DynamicBrokerConfig, TopicConfig, TopicDefaults, dynamic_broker_config,
    dynamic_broker_config_names,
};
use crate::protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsRequestResource, DescribeConfigsResponse, DescribeConfigsResponseConfig,
    DescribeConfigsResponseResult, DescribeConfigsResponseSynonym,
};
use crate::protocol::{ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// One entry of the answer, whatever the resource.
struct Entry {
    name: String,
    value: String,
    source: ConfigSource,
    read_only: bool,
    synonyms: Vec<(String, String, ConfigSource)>,
    config_type: ConfigType,
    doc: Option<&'static str>,
}

impl Entry {
    fn wire(self, request: &DescribeConfigsRequest) -> DescribeConfigsResponseConfig {
        DescribeConfigsResponseConfig {
            name: self.name,
            value: Some(self.value),
            read_only: self.read_only,
            is_default: self.source == ConfigSource::Default,
            config_source: self.source.wire(),
            // No config Sluice has is a password.
            is_sensitive: false,
            synonyms: if request.include_synonyms {
                self.synonyms
                    .into_iter()
                    .map(|(name, value, source)| DescribeConfigsResponseSynonym {
                        name,
                        value: Some(value),
                        source: source.wire(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            config_type: self.config_type.wire(),
            documentation: if request.include_documentation { self.doc.map(str::to_string) } else { None },
        }
    }
}

impl From<DescribedConfig> for Entry {
    fn from(c: DescribedConfig) -> Self {
        Entry {
            name: c.def.name.to_string(),
            value: c.value,
            source: c.source,
            read_only: false,
            synonyms: c.synonyms,
            config_type: c.def.config_type,
            doc: Some(c.def.doc),
        }
    }
}

/// The broker's settings that only its flags set (Kafka's read-only broker configs).
fn static_configs(broker: &ShardBroker) -> Vec<(&'static str, String, ConfigType)> {
    let c = &broker.config;
    vec![
        ("advertised.listeners", format!("PLAINTEXT://{}:{}", c.advertised_host, c.advertised_port), ConfigType::List),
        ("auto.create.topics.enable", c.auto_create_topics.to_string(), ConfigType::Boolean),
        ("broker.id", c.node_id.to_string(), ConfigType::Int),
        ("connections.max.idle.ms", c.connections_max_idle_ms.to_string(), ConfigType::Long),
        ("listeners", format!("PLAINTEXT://{}", c.listen), ConfigType::List),
        ("log.cleaner.enable", c.cleaner.enable.to_string(), ConfigType::Boolean),
        ("log.dirs", c.data_dir.display().to_string(), ConfigType::String),
        ("node.id", c.node_id.to_string(), ConfigType::Int),
        ("num.partitions", c.default_partitions.to_string(), ConfigType::Int),
        ("queued.max.request.bytes", c.queued_max_request_bytes.to_string(), ConfigType::Long),
        ("socket.request.max.bytes", c.max_request_bytes.to_string(), ConfigType::Int),
    ]
}

/// The dynamic broker configs: each with its value and Kafka's synonyms (`brokerSynonyms`:
/// `log.retention.ms` has `log.retention.minutes` and `.hours` after it) over `defaults`'
/// layers. `per_broker` false is the `""` resource: only the cluster-wide dynamic values.
fn dynamic_configs(defaults: &TopicDefaults, per_broker: bool) -> Vec<Entry> {
    let effective = TopicConfig::resolve(defaults, &BTreeMap::new()).ok();
    let mut out = Vec::new();
    for name in dynamic_broker_config_names() {
        let Some(config) = dynamic_broker_config(name) else { continue };
        let (synonyms, value) = match config {
            DynamicBrokerConfig::TopicDefault(def) => {
                let value = effective.as_ref().and_then(|c| c.value(def.name)).map(|(v, _)| v.to_string());
                (defaults.layers.synonyms(name, def.synonyms), value)
            }
            DynamicBrokerConfig::Cleaner(def) => {
                let synonym = crate::broker::topic_config::Synonym { name: def.name, kafka_default: Some(def.default) };
                (defaults.layers.synonyms(name, &[synonym]), defaults.layers.value(name, Some(def.default)).0)
            }
        };
        let synonyms: Vec<_> = synonyms
            .into_iter()
            .filter(|(_, _, source)| per_broker || *source == ConfigSource::DynamicDefaultBroker)
            .collect();
        if !per_broker && synonyms.is_empty() {
            continue;
        }
        let value = if per_broker { value } else { synonyms.first().map(|(_, v, _)| v.clone()) };
        out.push(Entry {
            name: name.to_string(),
            value: value.unwrap_or_default(),
            source: synonyms.first().map_or(ConfigSource::Default, |(_, _, source)| *source),
            read_only: false,
            synonyms,
            config_type: config.config_type(),
            doc: Some(config.doc()),
        });
    }
    out
}

/// The entries of a BROKER resource, or Kafka's INVALID_REQUEST for another broker's id.
fn broker_entries(broker: &ShardBroker, name: &str) -> Result<Vec<Entry>, String> {
    let defaults = broker.metadata.topic_defaults();
    if name.is_empty() {
        return Ok(dynamic_configs(&defaults, false));
    }
    let me = broker.config.node_id;
    if name.parse::<i32>().ok() != Some(me) {
        return Err(format!("Unexpected broker id, expected {me} or empty string, but received {name}"));
    }
    let mut out = dynamic_configs(&defaults, true);
    out.extend(static_configs(broker).into_iter().map(|(name, value, config_type)| Entry {
        name: name.to_string(),
        synonyms: vec![(name.to_string(), value.clone(), ConfigSource::StaticBroker)],
        value,
        source: ConfigSource::StaticBroker,
        read_only: true,
        config_type,
        doc: None,
    }));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// DescribeConfigs.
pub fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DescribeConfigsRequest) -> Reply {
    let image = broker.metadata.image();
    let defaults = broker.metadata.topic_defaults();
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let mut result = DescribeConfigsResponseResult {
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
                ..Default::default()
            };
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match image.topics.get(&resource.resource_name) {
                    Some(topic) => TopicConfig::resolve(&defaults, &topic.configs)
                        .map(|config| config.describe().into_iter().map(Entry::from).collect())
                        .map_err(|e| (ErrorCode::InvalidConfig, e.to_string())),
                    None => Err((
                        ErrorCode::UnknownTopicOrPartition,
                        format!("topic {} does not exist", resource.resource_name),
                    )),
                },
                RESOURCE_BROKER => {
                    broker_entries(broker, &resource.resource_name).map_err(|e| (ErrorCode::InvalidRequest, e))
                }
                other => Err((ErrorCode::InvalidRequest, format!("Unsupported resource type: {other}"))),
            };
            match entries {
                Ok(entries) => {
                    result.configs = entries
                        .into_iter()
                        .filter(|entry| wanted(resource, &entry.name))
                        .map(|entry| entry.wire(&request))
                        .collect()
                }
                Err((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(message);
                }
            }
            result
        })
        .collect();
    respond(header, &DescribeConfigsResponse { results, ..Default::default() })
}

/// Whether the request asks for config `name` of `resource` (no keys, or an empty list: all).
fn wanted(resource: &DescribeConfigsRequestResource, name: &str) -> bool {
    resource.configuration_keys.as_ref().is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k == name))
}
