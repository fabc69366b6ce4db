-- Periodic tasks: a cron spec in a time zone that enqueues a task at each
-- of its slots. Times are INTEGER Unix microseconds, UTC.
CREATE TABLE taskwheel_periodic (
	id           TEXT    NOT NULL PRIMARY KEY,
	app_id       TEXT    NOT NULL,
	spec         TEXT    NOT NULL,
	time_zone    TEXT    NOT NULL,
	event_type   TEXT    NOT NULL,
	data         BLOB,             -- the caller's JSON, byte for byte
	status       TEXT    NOT NULL CHECK (status IN ('active', 'paused')),
	missed       TEXT    NOT NULL CHECK (missed IN ('skip', 'run_once')),
	next_run_at  INTEGER,          -- the next slot not yet enqueued; NULL while paused
	last_run_at  INTEGER,          -- the slot of the latest task enqueued
	last_task_id TEXT,             -- that task
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
) STRICT;

-- DuePeriodics: active periodic tasks by next slot.
CREATE INDEX taskwheel_periodic_due ON taskwheel_periodic (next_run_at, id)
	WHERE status = 'active';

-- ListPeriodics: an app's periodic tasks, oldest first.
CREATE INDEX taskwheel_periodic_app ON taskwheel_periodic (app_id, created_at, id);
