//! Edge nodes on many hosts sharing one PostgreSQL store: one trust
//! domain (`ca`), membership with leases (`members`).

pub(crate) mod ca;
pub(crate) mod members;
