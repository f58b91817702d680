//! Decodes a request frame, runs the handler for its API, and encodes the response.
//!
//! What the broker answers is exactly [`crate::broker::handlers::HANDLERS`]: the same table
//! builds the ApiVersions response, so the broker never advertises an API it does not serve.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;
use tracing::{debug, warn};

use super::writer::OutPiece;
use crate::broker::ShardBroker;
use crate::broker::handlers;
use crate::broker::partition::FetchedChunk;
use crate::protocol::{
    ApiKey, HeaderError, Message, Piece, RequestHeader, ResponseHeader, decode_request_body, encode_response_frame,
};

/// What the connection does after a request.
pub enum Reply {
    /// Send these pieces (a whole response frame).
    Send(Vec<OutPiece>),
    /// Send nothing (Produce with acks=0).
    Nothing,
    /// Close the connection (a request that cannot be answered).
    Close,
}

/// Encodes `body` as the response to `header`. `external[token]` holds the data of each
/// `RecordSet::External { token, .. }` in the body.
pub fn respond<M: Message>(header: &RequestHeader, body: &M, external: Vec<Vec<FetchedChunk>>) -> Reply {
    let pieces = match encode_response_frame(
        ResponseHeader { correlation_id: header.correlation_id },
        header.api_version,
        body,
    ) {
        Ok(pieces) => pieces,
        Err(e) => {
            warn!(api = ?header.api_key, version = header.api_version, error = %e, "cannot encode response; closing");
            return Reply::Close;
        }
    };
    let mut external: Vec<Option<Vec<FetchedChunk>>> = external.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match piece {
            Piece::Bytes(bytes) => out.push(OutPiece::Bytes(bytes)),
            Piece::External { token, .. } => {
                let Some(chunks) = external.get_mut(token as usize).and_then(Option::take) else {
                    warn!(token, "response refers to data it does not have; closing");
                    return Reply::Close;
                };
                for chunk in chunks {
                    out.push(match chunk {
                        FetchedChunk::Memory(bytes) => OutPiece::Bytes(bytes),
                        FetchedChunk::File { file, position, len } => OutPiece::File { file, position, len },
                    });
                }
            }
        }
    }
    Reply::Send(out)
}

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
