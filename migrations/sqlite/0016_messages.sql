-- HostedHooks compatibility. An endpoint's version: the payload version
-- it is set up for, '' for none.
ALTER TABLE taskwheel_endpoints ADD COLUMN version TEXT NOT NULL DEFAULT '';

-- ListDeliveryAttempts: an app's deliveries, newest first. The scan walks
-- this index down and looks each attempt's task up by its key, stopping
-- once the page is full.
CREATE INDEX taskwheel_attempts_deliveries ON taskwheel_attempts (started_at, task_id, number, endpoint_id)
	WHERE endpoint_id <> '';
