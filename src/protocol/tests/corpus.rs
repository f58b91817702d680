//! Writes the seed corpus of the `decode_request` fuzz target (`fuzz/corpus/decode_request/`):
//! one valid request frame per API at its oldest and newest version. Run by hand after adding an
//! API: `cargo test --lib protocol::tests::corpus -- --ignored`.

use bytes::BufMut;

use super::{encode_request, request};
use crate::protocol::{RequestHeader, SUPPORTED};

#[test]
#[ignore = "writes files into fuzz/corpus; run by hand"]
fn write_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_request");
    std::fs::create_dir_all(&dir).unwrap();
    for support in SUPPORTED {
        for (version, variant) in [(support.version_min, 2), (support.version_max, 0)] {
            let header = RequestHeader {
                api_key: support.api_key,
                api_version: version,
                correlation_id: 1,
                client_id: Some("seed".into()),
            };
            let mut enc = crate::protocol::Encoder::contiguous(bytes::BytesMut::new());
            header.encode(&mut enc).unwrap();
            let mut frame = enc.into_bytes().unwrap();
            frame.put_slice(&encode_request(&request(support.api_key, version, variant), version));
            let mut file = Vec::with_capacity(4 + frame.len());
            file.put_i32(frame.len() as i32);
            file.put_slice(&frame);
            std::fs::write(dir.join(format!("{:?}-v{version}", support.api_key)), file).unwrap();
        }
    }
}
