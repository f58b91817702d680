//! DescribeCluster: this broker is the whole cluster (and its controller).

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::protocol::RequestHeader;
use crate::protocol::messages::{DescribeClusterRequest, DescribeClusterResponse, DescribeClusterResponseBroker};
use crate::protocol::{Reply, respond};

/// DescribeCluster.
pub fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DescribeClusterRequest) -> Reply {
    let config = &broker.config;
    let response = DescribeClusterResponse {
        cluster_id: broker.metadata.image().cluster_id.clone(),
        controller_id: config.node_id,
        endpoint_type: 1,
        brokers: vec![DescribeClusterResponseBroker {
            broker_id: config.node_id,
            host: config.advertised_host.clone(),
            port: i32::from(config.advertised_port),
            rack: None,
        }],
        cluster_authorized_operations: if request.include_cluster_authorized_operations {
            super::metadata::CLUSTER_AUTHORIZED_OPERATIONS
        } else {
            i32::MIN
        },
        ..Default::default()
    };
    respond(header, &response)
}
