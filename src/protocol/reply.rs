//! What a server does after a request, and [`respond`], which turns a response body into it.

use tracing::warn;

use super::frame::encode_response_frame;
use super::header::{RequestHeader, ResponseHeader};
use super::messages::Message;
use crate::model::Chunk;

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    /// Send these chunks, in order (a whole response frame): bytes with writev, file ranges
    /// with sendfile.
    Send(Vec<Chunk>),
    /// Send nothing (Produce with acks=0).
    Nothing,
    /// Close the connection (a request that cannot be answered).
    Close,
}

/// Encodes `body` as the response to `header`. Record sets in the body go out as their own
/// chunks, never copied. A body that cannot be encoded at the request's version is a bug on our
/// side: it is logged and the connection closed, rather than sending something else.
pub fn respond<M: Message>(header: &RequestHeader, body: &M) -> Reply {
    match encode_response_frame(ResponseHeader { correlation_id: header.correlation_id }, header.api_version, body) {
        Ok(chunks) => Reply::Send(chunks),
        Err(e) => {
            warn!(api = ?header.api_key, version = header.api_version, error = %e, "cannot encode response; closing");
            Reply::Close
        }
    }
}
