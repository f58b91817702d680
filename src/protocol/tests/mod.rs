//! Tests that run over every API and version in [`SUPPORTED`]: round trips through our own codec,
//! the `kafka-protocol` crate as an independent oracle, hand-checked bytes for the versions the
//! oracle lacks, and malicious input.

mod corpus;
mod golden;
mod hostile;
mod oracle;
mod round_trip;

use bytes::BytesMut;

use super::messages::{sample_request, sample_response};
use super::{ApiKey, Encoder, RequestBody, ResponseBody, SUPPORTED};

/// Every (API, version, sample variant) in the table.
fn cases() -> impl Iterator<Item = (ApiKey, i16, u8)> {
    SUPPORTED.iter().flat_map(|support| {
        (support.version_min..=support.version_max)
            .flat_map(move |version| (0..3).map(move |variant| (support.api_key, version, variant)))
    })
}

fn request(api_key: ApiKey, version: i16, variant: u8) -> RequestBody {
    sample_request(api_key, version, variant).expect("every supported API has a sample")
}

fn response(api_key: ApiKey, version: i16, variant: u8) -> ResponseBody {
    sample_response(api_key, version, variant).expect("every supported API has a sample")
}

fn encode_request(body: &RequestBody, version: i16) -> BytesMut {
    let mut enc = Encoder::contiguous(BytesMut::new());
    body.encode_into(&mut enc, version).unwrap_or_else(|e| panic!("{:?} v{version}: {e}", body.api_key()));
    enc.into_bytes().unwrap()
}

fn encode_response(body: &ResponseBody, version: i16) -> BytesMut {
    let mut enc = Encoder::contiguous(BytesMut::new());
    body.encode_into(&mut enc, version).unwrap_or_else(|e| panic!("{:?} v{version}: {e}", body.api_key()));
    enc.into_bytes().unwrap()
}
