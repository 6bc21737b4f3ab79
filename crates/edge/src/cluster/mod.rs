//! Edge nodes on many hosts sharing one PostgreSQL store: one trust
//! domain (`ca`).

pub(crate) mod ca;
