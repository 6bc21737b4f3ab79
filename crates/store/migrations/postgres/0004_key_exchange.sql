-- The key-exchange group each tunnel connection's handshake used
-- (X25519MLKEM768 when post-quantum), shown by `burrow tunnel info`.
ALTER TABLE connections ADD COLUMN kx TEXT NOT NULL DEFAULT '';
