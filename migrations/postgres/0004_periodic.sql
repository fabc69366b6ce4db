-- Periodic tasks: a cron spec in a time zone that enqueues a task at each
-- of its slots. IDs compare byte by byte (COLLATE "C"), as DuePeriodics and
-- ListPeriodics order them.
CREATE TABLE taskwheel_periodic (
	id           text COLLATE "C" PRIMARY KEY,
	app_id       text COLLATE "C" NOT NULL,
	spec         text        NOT NULL,
	time_zone    text        NOT NULL,
	event_type   text        NOT NULL,
	data         bytea,                -- the caller's JSON, byte for byte
	status       text        NOT NULL CHECK (status IN ('active', 'paused')),
	missed       text        NOT NULL CHECK (missed IN ('skip', 'run_once')),
	next_run_at  timestamptz,          -- the next slot not yet enqueued; NULL while paused
	last_run_at  timestamptz,          -- the slot of the latest task enqueued
	last_task_id text,                 -- that task
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL
);

-- DuePeriodics: active periodic tasks by next slot.
CREATE INDEX taskwheel_periodic_due ON taskwheel_periodic (next_run_at, id)
	WHERE status = 'active';

-- ListPeriodics: an app's periodic tasks, oldest first.
CREATE INDEX taskwheel_periodic_app ON taskwheel_periodic (app_id, created_at, id);
