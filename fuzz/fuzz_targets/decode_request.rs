//! Any bytes a client could send: frames split exactly as the server splits them (the same
//! `split_frame` with the server's `FrameLimits`), request
//! headers, request bodies of every API and version the codec implements. Nothing may panic,
//! and whatever decodes must encode and decode again to the same value.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice::protocol::{Encoder, FrameLimits, RequestHeader, decode_request_body, split_frame};

/// Small, so that the fuzzer explores refusals as well as frames that fit its inputs.
const MAX_REQUEST_BYTES: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut wire = BytesMut::from(data);
    while let Ok(Some(mut frame)) = split_frame(&mut wire, FrameLimits::requests(MAX_REQUEST_BYTES)) {
        let Ok(header) = RequestHeader::decode(&mut frame) else { continue };
        let Ok(body) = decode_request_body(header.api_key, header.api_version, &mut frame) else { continue };
        let mut enc = Encoder::contiguous(BytesMut::new());
        body.encode_into(&mut enc, header.api_version).expect("a decoded body encodes");
        let mut again = enc.into_bytes().expect("no external record sets in a request");
        let decoded = decode_request_body(header.api_key, header.api_version, &mut again).expect("it decodes again");
        assert_eq!(decoded, body);
        assert!(again.is_empty());
    }
});
