-- The tunnel protocol version each connection speaks (1 or 2), shown by
-- `burrow tunnel info` while connectors move to version 2.
ALTER TABLE connections ADD COLUMN wire BIGINT NOT NULL DEFAULT 1;
