//! Edge nodes on many hosts sharing one PostgreSQL store: one trust
//! domain (`ca`), membership with leases (`lease` renews this node's,
//! `members` is the snapshot of all), flows carried to the
//! node holding a tunnel's connection (`forward`; `holders` remembers which
//! node holds which tunnel), the DNS responder that
//! tells connectors where the live nodes are (`dns`).

pub(crate) mod ca;
pub(crate) mod dns;
pub(crate) mod forward;
pub(crate) mod holders;
pub(crate) mod lease;
pub(crate) mod members;
