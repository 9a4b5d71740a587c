-- Copied from shared/bench/sql/schema.sql: the ceiling's own tables, beside the server's.
SET client_min_messages = warning;
-- Clock-in schema used by pg_clockin.sh, pg_delta_pull.sh and http_db.sh.
-- bench_uuid(hi, lo) builds a deterministic uuid from two bigints so pgbench (which only has
-- numeric variables) can send "client-generated" uuids. Immutable SQL function, cost ~1 us.
CREATE OR REPLACE FUNCTION bench_uuid(hi bigint, lo bigint) RETURNS uuid
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT (lpad(to_hex(hi), 16, '0') || lpad(to_hex(lo), 16, '0'))::uuid $$;

DROP TABLE IF EXISTS attendance;
CREATE TABLE attendance (
  id          uuid        PRIMARY KEY,
  meeting_id  uuid        NOT NULL,
  member_id   uuid        NOT NULL,
  clocked_at  timestamptz NOT NULL,
  method      text        NOT NULL,
  UNIQUE (meeting_id, member_id)
);

DROP TABLE IF EXISTS change_log;
CREATE TABLE change_log (
  seq        bigserial PRIMARY KEY,
  entity     text      NOT NULL,
  entity_id  uuid      NOT NULL,
  org_id     uuid      NOT NULL
);
-- the delta-sync pull index: WHERE org_id = $1 AND seq > $2 ORDER BY seq
CREATE INDEX change_log_org_seq ON change_log (org_id, seq);
