-- Endpoint health (Store.RecordEndpointHealth): last_success_at is when a
-- delivery to the endpoint was last recorded acknowledged, NULL until one
-- is; a failure does not disable an endpoint that acknowledged within
-- DisableAfter.
ALTER TABLE taskwheel_endpoints ADD COLUMN last_success_at timestamptz;
