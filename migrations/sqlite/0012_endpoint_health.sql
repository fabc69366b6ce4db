-- Endpoint health (Store.RecordEndpointHealth): failing_since is when the
-- current run of failed deliveries began, NULL while the endpoint is
-- healthy; disabled_at and disabled_reason say when and why the engine
-- disabled it, NULL and '' unless it did. Times are INTEGER Unix
-- microseconds, UTC.
ALTER TABLE taskwheel_endpoints ADD COLUMN failing_since INTEGER;
ALTER TABLE taskwheel_endpoints ADD COLUMN disabled_at INTEGER;
ALTER TABLE taskwheel_endpoints ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';
