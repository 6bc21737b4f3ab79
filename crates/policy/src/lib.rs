//! Pure policy matchers: config compiled once into typed matchers, evaluated
//! by plain functions. No I/O, no clock.
//!
//! Module map:
//! - [`access`]: IP access rules (IP, range, country, ASN) and their precedence.
//! - [`dial_guard`]: the built-in deny for destinations the edge dials for
//!   clients (its own listeners, loopback, link-local, private ranges).
//! - [`egress`]: Gateway egress policies: first match, lint, explain.
//! - [`host`]: hostname patterns (`example.com`, `*.example.com`, `*`).
//! - [`ingress`]: first-match selection of a connector ingress rule.
//! - [`ports`]: port ranges and the edge → origin port mapping of apps.
//! - [`routes`]: public hostname → tunnel routes of the HTTP listeners.

pub mod access;
pub mod dial_guard;
pub mod egress;
pub mod exits;
pub mod host;
pub mod ingress;
pub mod ip_routes;
pub mod ports;
pub mod routes;
