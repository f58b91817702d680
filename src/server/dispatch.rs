//! Decodes a request frame, runs the handler for its API, and encodes the response.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;

use super::writer::OutPiece;
use crate::broker::ShardBroker;

/// What the connection does after a request.
pub enum Reply {
    /// Send these pieces (a whole response frame).
    Send(Vec<OutPiece>),
    /// Send nothing (Produce with acks=0).
    Nothing,
    /// Close the connection (a request that cannot even be answered).
    Close,
}

/// Handles one request frame.
pub async fn handle(_broker: Rc<ShardBroker>, _frame: BytesMut, _peer: SocketAddr) -> Reply {
    Reply::Close
}
