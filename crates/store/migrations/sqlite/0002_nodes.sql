-- Cluster membership: every edge node registers itself and renews a
-- lease; a node whose lease lapsed is dead to the others.
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    colo TEXT NOT NULL,
    tunnel_addr TEXT NOT NULL,
    app_ipv4 TEXT NOT NULL,
    app_ipv6 TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    renewed_at_ms INTEGER NOT NULL,
    lease_ms INTEGER NOT NULL
);
