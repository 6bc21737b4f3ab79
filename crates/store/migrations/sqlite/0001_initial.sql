-- The schema as of the first versioned release. `IF NOT EXISTS`
-- throughout: a state file written before versioning (which has these
-- tables already, its later columns added by the edge at start) takes
-- this migration as a no-op and is versioned from then on.
-- Portable SQL (PostgreSQL takes it as written): TEXT ids, INTEGER times
-- and flags, BLOB secrets.

CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tunnels (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    secret BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS apps (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    l4 TEXT NOT NULL,
    port_start INTEGER NOT NULL,
    port_end INTEGER NOT NULL,
    tunnel_id TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS connections (
    id TEXT PRIMARY KEY,
    tunnel_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    conn_index INTEGER NOT NULL,
    colo TEXT NOT NULL,
    node_id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    origin_ip TEXT NOT NULL,
    version TEXT NOT NULL,
    since INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS connections_tunnel ON connections (tunnel_id);

CREATE TABLE IF NOT EXISTS access_rules (
    id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    target TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS routes (
    hostname TEXT PRIMARY KEY,
    tunnel_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    email TEXT PRIMARY KEY,
    groups TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    user_email TEXT NOT NULL,
    name TEXT NOT NULL,
    secret BLOB NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS vnets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    is_default INTEGER NOT NULL,
    comment TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    allow_users TEXT NOT NULL DEFAULT '[]',
    allow_groups TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE IF NOT EXISTS ip_routes (
    id TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    tunnel_id TEXT NOT NULL,
    vnet_id TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (vnet_id, network)
);

CREATE TABLE IF NOT EXISTS egress_ips (
    ip TEXT PRIMARY KEY,
    colo TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
