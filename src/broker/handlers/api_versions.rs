//! ApiVersions: what the broker serves, from the handler table ([`super::HANDLED`]). An ApiVersions request at a
//! version we do not know is answered at v0 with UNSUPPORTED_VERSION and our ranges (KIP-511),
//! so that the client can pick a version we do.

use super::{HANDLED, served_versions};
use crate::protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ApiVersionsResponseKey};
use crate::protocol::{ApiKey, ErrorCode, RequestHeader};
use crate::protocol::{Reply, respond};

fn response(error: ErrorCode) -> ApiVersionsResponse {
    ApiVersionsResponse {
        error_code: error.code(),
        api_keys: HANDLED
            .iter()
            .filter_map(|&key| {
                let (min_version, max_version) = served_versions(key)?;
                Some(ApiVersionsResponseKey { api_key: key.code(), min_version, max_version })
            })
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
    fn every_handled_api_is_implemented_by_the_codec() {
        for &key in HANDLED {
            let (min, max) = served_versions(key).unwrap_or_else(|| panic!("{key:?} has no codec"));
            for version in min..=max {
                assert!(crate::protocol::messages::supported(key, version).is_some(), "{key:?} v{version}");
            }
        }
        assert!(served_versions(ApiKey::Fetch).is_some_and(|(_, max)| max >= 4));
        assert_eq!(response(ErrorCode::None).api_keys.len(), HANDLED.len());
    }
}
