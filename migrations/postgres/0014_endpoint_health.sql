-- Endpoint health (Store.RecordEndpointHealth): failing_since is when the
-- current run of failed deliveries began, NULL while the endpoint is
-- healthy; disabled_at and disabled_reason say when and why the engine
-- disabled it, NULL and '' unless it did.
ALTER TABLE taskwheel_endpoints ADD COLUMN failing_since timestamptz;
ALTER TABLE taskwheel_endpoints ADD COLUMN disabled_at timestamptz;
ALTER TABLE taskwheel_endpoints ADD COLUMN disabled_reason text NOT NULL DEFAULT '';
