//! ApiVersions: what the broker serves, from [`super::HANDLERS`]. An ApiVersions request at a
//! version we do not know is answered at v0 with UNSUPPORTED_VERSION and our ranges (KIP-511),
//! so that the client can pick a version we do.

use super::HANDLERS;
use crate::protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ApiVersionsResponseKey};
use crate::protocol::{ApiKey, ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

fn response(error: ErrorCode) -> ApiVersionsResponse {
    ApiVersionsResponse {
        error_code: error.code(),
        api_keys: HANDLERS
            .iter()
            .map(|&(key, min, max)| ApiVersionsResponseKey { api_key: key.code(), min_version: min, max_version: max })
            .collect(),
        ..Default::default()
    }
}

/// ApiVersions.
pub fn handle(header: &RequestHeader, _request: ApiVersionsRequest) -> Reply {
    respond(header, &response(ErrorCode::None))
}

/// The v0 answer to an ApiVersions request at a version we do not serve.
pub fn unsupported_version(correlation_id: i32) -> Reply {
    let header = RequestHeader { api_key: ApiKey::ApiVersions, api_version: 0, correlation_id, client_id: None };
    respond(&header, &response(ErrorCode::UnsupportedVersion))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_version_is_implemented_by_the_codec() {
        for &(key, min, max) in HANDLERS {
            for version in min..=max {
                assert!(crate::protocol::messages::supported(key, version).is_some(), "{key:?} v{version}");
            }
        }
        assert!(HANDLERS.iter().any(|&(key, _, max)| key == ApiKey::Fetch && max >= 4));
    }
}
