//! The Kafka wire protocol, sans I/O: frames, request and response headers, message codecs and
//! the API version table. Our own codec, not the `kafka-protocol` crate (DESIGN.md, "Protocol"):
//! every length or count read from the wire is checked against the bytes remaining before
//! anything is allocated, and nothing panics on any input (`fuzz/` checks it).
//!
//! What is where:
//!
//! - [`frame`]: the `int32` length prefix. [`frame_length`] and [`split_frame`] check it against
//!   the limit before allocating; [`encode_request_frame`], [`encode_response_frame`] and
//!   [`decode_response_frame`] put frames together.
//! - [`api_key`]: [`ApiKey`], the API a request is for, by its wire key.
//! - [`header`]: [`RequestHeader`] (whose decode yields the correlation id even for
//!   an unsupported API or version, KIP-511), [`ResponseHeader`], [`request_header_version`],
//!   [`response_header_version`].
//! - [`messages`]: every request and response struct (`ProduceRequest`, `FetchResponse`, …), the
//!   [`Message`] trait, [`SUPPORTED`], [`RequestBody`]/[`ResponseBody`] and
//!   [`decode_request_body`].
//! - `schema/*.msg`: the definitions the message structs are generated from, one file per API.
//!   `schema/codegen.rs` is the generator (run by the crate's `build.rs`) and documents the format.
//! - [`codec`]: the primitive types: [`DecodeError`], [`EncodeError`], [`Encoder`],
//!   [`RecordSet`], [`Uuid`] and the `get_*` functions.
//! - [`reply`]: [`Reply`], what a server does after a request, and [`respond`], which encodes a
//!   response body into it.
//! - [`error_code`]: [`ErrorCode`], in Kafka's numbering.
//! - `tests/`: tests over every API and version: round trips, the `kafka-protocol` crate as an
//!   oracle, hand-checked bytes, hostile input.
//!
//! A server reads a frame with [`split_frame`], decodes its [`RequestHeader`] and then
//! [`decode_request_body`], and answers with [`respond`] (over [`encode_response_frame`]), whose
//! [`Chunk`](crate::model::Chunk)s let record sets go out without a copy (shared buffers) or by
//! sendfile (the file ranges of a [`RecordSet::Chunks`]).
//! Record sets in requests are split off the frame without copying ([`RecordSet::Owned`]).
//!
//! Adding an API: write `schema/<api>.msg` (request and response, from Kafka's message
//! definitions), and it appears in [`SUPPORTED`], [`RequestBody`], [`ResponseBody`] and the tests
//! that run over every API; then add its `kafka_protocol` pair to the list in `tests/oracle.rs`
//! (and its tagged fields' defaults to `tagged_field_defaults_match` there).

pub mod api_key;
pub mod codec;
pub mod error_code;
pub mod frame;
pub mod header;
pub mod messages;
pub mod reply;

#[cfg(test)]
mod tests;

pub use api_key::ApiKey;
pub use codec::{DecodeError, EncodeError, Encoder, RecordSet, Uuid};
pub use error_code::ErrorCode;
pub use frame::{
    FrameError, FrameLimits, LENGTH_PREFIX_BYTES, decode_response_frame, encode_request_frame, encode_response_frame,
    frame_length, request_buffers, split_frame,
};
pub use header::{HeaderError, RequestHeader, ResponseHeader, request_header_version, response_header_version};
pub use messages::{
    ApiSupport, Message, Request, RequestBody, ResponseBody, SUPPORTED, decode_request_body, decode_response_body,
};
pub use reply::{Reply, respond};
