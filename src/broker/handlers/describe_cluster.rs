//! DescribeCluster: the live brokers and the controller (the metadata quorum's leader).

use std::rc::Rc;

use crate::broker::ShardBroker;
use crate::protocol::RequestHeader;
use crate::protocol::messages::{DescribeClusterRequest, DescribeClusterResponse, DescribeClusterResponseBroker};
use crate::protocol::{Reply, respond};

/// DescribeCluster.
pub fn handle(broker: &Rc<ShardBroker>, header: &RequestHeader, request: DescribeClusterRequest) -> Reply {
    let image = broker.metadata.image();
    let response = DescribeClusterResponse {
        cluster_id: image.cluster_id.clone(),
        controller_id: super::metadata::controller_id(broker, &image),
        endpoint_type: 1,
        brokers: super::metadata::live_brokers(broker, &image)
            .into_iter()
            .map(|(broker_id, host, port)| DescribeClusterResponseBroker { broker_id, host, port, rack: None })
            .collect(),
        cluster_authorized_operations: if request.include_cluster_authorized_operations {
            super::metadata::CLUSTER_AUTHORIZED_OPERATIONS
        } else {
            i32::MIN
        },
        ..Default::default()
    };
    respond(header, &response)
}
