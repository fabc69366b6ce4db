-- The digest of the request that created a task with an idempotency key
-- (Task.IdempotencyDigest), so that the request sent again can be told from
-- another however the task changed since; NULL for a task without a key and
-- for tasks stored before this migration.
ALTER TABLE taskwheel_tasks ADD COLUMN idempotency_digest text;
