//! The broker's side of the server's [`Dispatch`] trait: decode a request frame's header, check
//! the API and version against the handler table, decode the body and run its handler.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;
use tracing::{debug, warn};

use super::handlers;
use super::shard::ShardBroker;
use crate::metrics;
use crate::protocol::{
    ApiKey, HeaderError, LENGTH_PREFIX_BYTES, Reply, RequestBody, RequestHeader, decode_request_body,
};
use crate::server::{Dispatch, Placement, ReplyFuture};

impl Dispatch for ShardBroker {
    fn dispatch(self: Rc<Self>, frame: BytesMut, peer: SocketAddr, placement: Placement) -> ReplyFuture {
        handled(self, frame, peer, false, placement)
    }
}

/// The broker as its shard's replication listener serves it: the same APIs, and the only place
/// where the replica form of Fetch (a follower's, reading past the high watermark and moving
/// the leader's view of the ISR) is served. Kafka keeps it to the inter-broker listener with
/// ACLs; here the listener is the boundary.
pub struct ReplicationListener(pub Rc<ShardBroker>);

impl Dispatch for ReplicationListener {
    fn dispatch(self: Rc<Self>, frame: BytesMut, peer: SocketAddr, placement: Placement) -> ReplyFuture {
        handled(self.0.clone(), frame, peer, true, placement)
    }
}

/// The future of one request's reply, counted and timed (see [`request_probe`]).
fn handled(
    broker: Rc<ShardBroker>,
    frame: BytesMut,
    peer: SocketAddr,
    replication: bool,
    placement: Placement,
) -> ReplyFuture {
    let probe = request_probe(&frame, replication);
    Box::pin(measured(probe, handle(broker, frame, peer, replication, placement)))
}

/// Counts a request by its API (`crate::metrics`; nothing while metrics are off), read from the
/// frame's first two bytes before anything is decoded; a key nobody knows is not counted.
/// Fetches are Kafka's `FetchConsumer` or, on the replication listener, `FetchFollower`.
fn request_probe(frame: &[u8], replication: bool) -> Option<metrics::RequestProbe> {
    let api = ApiKey::from_i16(i16::from_be_bytes(*frame.first_chunk::<2>()?))?;
    let kind = match api {
        ApiKey::Fetch if replication => metrics::RequestKind::FetchFollower,
        api => metrics::RequestKind::Api(api.code()),
    };
    let name = || match api {
        ApiKey::Fetch if replication => "FetchFollower".to_string(),
        ApiKey::Fetch => "FetchConsumer".to_string(),
        api => format!("{api:?}"),
    };
    let frame_bytes = (frame.len() + LENGTH_PREFIX_BYTES) as u64;
    metrics::start_request(kind, name, frame_bytes)
}

/// Runs a request and times it until its response is ready.
async fn measured(probe: Option<metrics::RequestProbe>, handling: impl Future<Output = Reply>) -> Reply {
    let reply = handling.await;
    if let Some(probe) = probe {
        let bytes = match &reply {
            Reply::Send(chunks) => chunks.iter().map(|c| c.len()).sum(),
            Reply::Nothing | Reply::Close => 0,
        };
        probe.finish(bytes);
    }
    reply
}

/// Handles one request frame; `replication` if it came to the replication listener.
async fn handle(
    broker: Rc<ShardBroker>,
    mut frame: BytesMut,
    peer: SocketAddr,
    replication: bool,
    placement: Placement,
) -> Reply {
    let header = match RequestHeader::decode(&mut frame) {
        Ok(header) => header,
        Err(HeaderError::Unsupported { api_key, api_version, correlation_id })
            if api_key == ApiKey::ApiVersions.code() =>
        {
            debug!(%peer, api_version, "ApiVersions at an unsupported version: answering with v0 (KIP-511)");
            return handlers::api_versions::unsupported_version(correlation_id);
        }
        Err(e) => {
            warn!(%peer, error = %e, "bad request header; closing connection");
            return Reply::Close;
        }
    };
    tracing::trace!(%peer, api = ?header.api_key, version = header.api_version, correlation_id = header.correlation_id,
        client_id = header.client_id.as_deref().unwrap_or(""), "request");
    if !handlers::serves(header.api_key, header.api_version) {
        if header.api_key == ApiKey::ApiVersions {
            return handlers::api_versions::unsupported_version(header.correlation_id);
        }
        warn!(%peer, api = ?header.api_key, version = header.api_version, "API version not served; closing connection");
        return Reply::Close;
    }
    let body = match decode_request_body(header.api_key, header.api_version, &mut frame) {
        Ok(body) => body,
        Err(e) => {
            warn!(%peer, api = ?header.api_key, version = header.api_version, error = %e,
                "malformed request body; closing connection");
            return Reply::Close;
        }
    };
    let worked_on = |shard| placement.worked_on(shard);
    match body {
        RequestBody::Fetch(request) if replication => {
            handlers::fetch::handle(&broker, &header, request, true, &worked_on).await
        }
        body => handlers::run(&broker, &header, body, peer, &worked_on).await,
    }
}
