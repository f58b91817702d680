//! The Kafka wire protocol, sans I/O: frames, request and response headers, message codecs and
//! the API version table.
