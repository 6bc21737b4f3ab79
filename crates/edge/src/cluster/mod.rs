//! Edge nodes on many hosts sharing one PostgreSQL store: one trust
//! domain (`ca`), membership with leases (`members`), flows carried to the
//! node holding a tunnel's connection (`forward`), the DNS responder that
//! tells connectors where the live nodes are (`dns`).

pub(crate) mod ca;
pub(crate) mod dns;
pub(crate) mod forward;
pub(crate) mod members;
