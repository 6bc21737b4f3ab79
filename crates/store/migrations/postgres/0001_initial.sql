-- The schema as of the first versioned release, PostgreSQL's dialect of
-- migrations/sqlite/0001_initial.sql (same version, same tables and
-- columns): BIGINT for integers (SQLite's INTEGER is 64-bit), BYTEA for
-- secrets, BOOLEAN for flags, JSONB for lists. Plain SQL that CockroachDB
-- takes as well.

CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tunnels (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    secret BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS apps (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    l4 TEXT NOT NULL,
    port_start BIGINT NOT NULL,
    port_end BIGINT NOT NULL,
    tunnel_id TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS connections (
    id TEXT PRIMARY KEY,
    tunnel_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    conn_index BIGINT NOT NULL,
    colo TEXT NOT NULL,
    node_id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    origin_ip TEXT NOT NULL,
    version TEXT NOT NULL,
    since BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS connections_tunnel ON connections (tunnel_id);

CREATE TABLE IF NOT EXISTS access_rules (
    id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    target TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS routes (
    hostname TEXT PRIMARY KEY,
    tunnel_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    email TEXT PRIMARY KEY,
    groups JSONB NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    user_email TEXT NOT NULL,
    name TEXT NOT NULL,
    secret BYTEA NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS vnets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    is_default BOOLEAN NOT NULL,
    comment TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    allow_users JSONB NOT NULL DEFAULT '[]',
    allow_groups JSONB NOT NULL DEFAULT '[]'
);

CREATE TABLE IF NOT EXISTS ip_routes (
    id TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    tunnel_id TEXT NOT NULL,
    vnet_id TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (vnet_id, network)
);

CREATE TABLE IF NOT EXISTS egress_ips (
    ip TEXT PRIMARY KEY,
    colo TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
