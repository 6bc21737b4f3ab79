//! Feeds arbitrary text to the connector config.yml parser and the
//! credentials parsers: errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = burrow_config::connector::parse_connector_yaml(text);
        let _ = burrow_config::credentials::Credentials::from_json(text);
        let _ = burrow_config::credentials::Credentials::from_token(text);
        let _ = burrow_config::connector::Service::parse(text);
    }
});
