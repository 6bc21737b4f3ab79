//! Feeds arbitrary text to the Spectrum-shaped app parser and the port-range
//! parser: errors are fine, panics are not; a valid range prints back to
//! itself, and a validated app's port map stays inside its ranges.
#![no_main]

use burrow_policy::ports::PortRange;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(r) = PortRange::parse(text) {
        assert_eq!(PortRange::parse(&r.to_string()), Ok(r));
    }
    if let Ok(raw) = burrow_config::app::RawApp::from_json(text) {
        if let Ok(spec) = raw.validate() {
            if let burrow_config::app::Origin::Direct(list) = &spec.origin {
                for o in list {
                    for p in [spec.edge_ports.start(), spec.edge_ports.end()] {
                        assert!(o.ports.map(p).is_some());
                    }
                }
            }
        }
    }
});
