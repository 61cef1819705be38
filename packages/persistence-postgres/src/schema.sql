CREATE SCHEMA IF NOT EXISTS "public";
CREATE TABLE IF NOT EXISTS "public"."tidings_outbox" (
  endpoint text NOT NULL,
  message_id text NOT NULL,
  operations text NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  dispatched_at timestamptz,
  PRIMARY KEY (endpoint, message_id)
);
CREATE INDEX IF NOT EXISTS "tidings_outbox_undispatched" ON "public"."tidings_outbox" (endpoint, created_at)
  WHERE dispatched_at IS NULL;
CREATE INDEX IF NOT EXISTS "tidings_outbox_dispatched" ON "public"."tidings_outbox" (endpoint, dispatched_at)
  WHERE dispatched_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS "public"."tidings_requests" (
  endpoint text NOT NULL,
  correlation_id text NOT NULL,
  continuation text NOT NULL,
  state text NOT NULL,
  deadline_ms bigint NOT NULL,
  requester text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (endpoint, correlation_id)
);
