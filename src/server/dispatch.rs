//! Decodes a request frame, runs the handler for its API, and encodes the response.
//!
//! What the broker answers is exactly [`crate::broker::handlers::HANDLERS`]: the same table
//! builds the ApiVersions response, so the broker never advertises an API it does not serve.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;
use tracing::{debug, warn};

use crate::broker::ShardBroker;
use crate::broker::handlers;
use crate::protocol::{ApiKey, HeaderError, Reply, RequestHeader, decode_request_body};

/// Handles one request frame.
pub async fn handle(broker: Rc<ShardBroker>, mut frame: BytesMut, peer: SocketAddr) -> Reply {
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
    handlers::handle(&broker, &header, body, peer).await
}
