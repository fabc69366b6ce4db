-- Limits per webhook endpoint (issue 16): rate_limit is deliveries per
-- second (0: no limit), max_in_flight concurrent deliveries (0: no limit).
-- tokens and tokens_at are the rate limit's token bucket, NULL while it is
-- full (a new endpoint, or one whose rate_limit changed).
ALTER TABLE taskwheel_endpoints ADD COLUMN rate_limit double precision NOT NULL DEFAULT 0;
ALTER TABLE taskwheel_endpoints ADD COLUMN max_in_flight integer NOT NULL DEFAULT 0;
ALTER TABLE taskwheel_endpoints ADD COLUMN tokens double precision;
ALTER TABLE taskwheel_endpoints ADD COLUMN tokens_at timestamptz;
-- queue_at is when the last delivery refused a token is to come back, so
-- that the next comes back a token later (NULL: none waits).
ALTER TABLE taskwheel_endpoints ADD COLUMN queue_at timestamptz;

-- The in-flight deliveries of endpoints with a max_in_flight: one row per
-- delivery, held by an attempt (task_id, attempt). A row counts only while
-- its task is running at that attempt, so a slot of a process that died
-- comes back when its task's lease is rescued; such rows are deleted by
-- the next release of a slot of the endpoint. A row of a negative attempt
-- is a token that the attempt -attempt reserved when it was refused one:
-- it comes back with the same attempt number (the wait did not count it)
-- and delivers without taking another.
CREATE TABLE taskwheel_endpoint_slots (
	endpoint_id text COLLATE "C" NOT NULL,
	task_id     text COLLATE "C" NOT NULL,
	attempt     integer          NOT NULL,
	PRIMARY KEY (endpoint_id, task_id, attempt)
);

-- A task waiting for a slot of an endpoint names it, so that the delivery
-- that frees a slot makes the earliest such task due at once.
ALTER TABLE taskwheel_tasks ADD COLUMN wait_endpoint text COLLATE "C";
CREATE INDEX taskwheel_tasks_wait_endpoint ON taskwheel_tasks (wait_endpoint, run_at, id)
	WHERE wait_endpoint IS NOT NULL;
