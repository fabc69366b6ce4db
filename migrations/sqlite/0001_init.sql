-- Tasks. Times are INTEGER Unix microseconds, UTC.
CREATE TABLE taskwheel_tasks (
	id                 TEXT    NOT NULL PRIMARY KEY,
	app_id             TEXT    NOT NULL,
	event_type         TEXT    NOT NULL,
	state              TEXT    NOT NULL CHECK (state IN ('scheduled', 'running', 'retrying', 'completed', 'failed', 'canceled')),
	data               BLOB,                       -- the caller's JSON, byte for byte
	scheduled_run_time INTEGER,                    -- the run time the caller asked for
	run_at             INTEGER NOT NULL,           -- when due; meaningful while scheduled or retrying
	attempts           INTEGER NOT NULL DEFAULT 0,
	max_attempts       INTEGER NOT NULL,
	timeout            INTEGER NOT NULL DEFAULT 0, -- microseconds; 0: the engine's default
	lease_expires_at   INTEGER,                    -- while running
	cancel_requested   INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
	last_error         TEXT    NOT NULL DEFAULT '',
	endpoint_id        TEXT,
	idempotency_key    TEXT,
	created_at         INTEGER NOT NULL,
	updated_at         INTEGER NOT NULL,
	completed_at       INTEGER                     -- in a terminal state
) STRICT;

-- Claim and Upcoming: pending tasks by due time.
CREATE INDEX taskwheel_tasks_due ON taskwheel_tasks (run_at, id)
	WHERE state IN ('scheduled', 'retrying');

-- Rescue: running tasks by lease expiry.
CREATE INDEX taskwheel_tasks_lease ON taskwheel_tasks (lease_expires_at)
	WHERE state = 'running';

-- Idempotency keys are unique per app.
CREATE UNIQUE INDEX taskwheel_tasks_idempotency ON taskwheel_tasks (app_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;

-- List, newest first: one app's tasks, and every app's.
CREATE INDEX taskwheel_tasks_app_list ON taskwheel_tasks (app_id, created_at DESC, id DESC);
CREATE INDEX taskwheel_tasks_list ON taskwheel_tasks (created_at DESC, id DESC);
