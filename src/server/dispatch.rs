//! What a request's handling comes to ([`Reply`]), and [`respond`], which encodes a response
//! body into one.

use tracing::warn;

use super::writer::OutPiece;
use crate::broker::partition::FetchedChunk;
use crate::protocol::{Message, Piece, RequestHeader, ResponseHeader, encode_response_frame};

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
