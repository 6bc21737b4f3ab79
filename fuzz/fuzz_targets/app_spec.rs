//! Feeds arbitrary text to the Spectrum-shaped app parser and the port-range
//! parser: errors are fine, panics are not; a valid range prints back to
//! itself, and a validated app maps every edge port (all of them, for
//! ranges up to 4096 ports; else both ends and 4096 spread between) into
//! each origin's range, one-to-one.
#![no_main]

use burrow_policy::ports::PortRange;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = PortRange::parse(text) {
        assert_eq!(PortRange::parse(&r.to_string()), Ok(r));
    }
    if let Ok(raw) = burrow_config::app::RawApp::from_json(text) {
        if let Ok(spec) = raw.validate() {
            if let burrow_config::app::Origin::Direct(list) = &spec.origin {
                let (lo, hi) = (spec.edge_ports.start(), spec.edge_ports.end());
                let n = u32::from(hi - lo) + 1;
                let step = (n / 4096).max(1);
                let ports: std::collections::BTreeSet<u16> = (0..n)
                    .step_by(step as usize)
                    .map(|i| lo + i as u16)
                    .chain([hi])
                    .collect();
                for o in list {
                    let origin = o.ports.origin();
                    let mut seen = std::collections::HashSet::new();
                    for &p in &ports {
                        let m = o.ports.map(p).expect("an edge port maps into the origin");
                        assert!(origin.contains(m), "{p} -> {m} outside the origin range");
                        // One-to-one when the origin range is as wide as the
                        // edge range; a single origin port takes them all.
                        if origin.len() > 1 {
                            assert!(seen.insert(m), "{p} -> {m} twice");
                        }
                    }
                }
            }
        }
    }
});
