-- Tasks. IDs compare byte by byte (COLLATE "C"), as List orders them.
CREATE TABLE taskwheel_tasks (
	id                 text COLLATE "C" PRIMARY KEY,
	app_id             text COLLATE "C" NOT NULL,
	event_type         text        NOT NULL,
	state              text        NOT NULL CHECK (state IN ('scheduled', 'running', 'retrying', 'completed', 'failed', 'canceled')),
	data               bytea,                        -- the caller's JSON, byte for byte
	scheduled_run_time timestamptz,                  -- the run time the caller asked for
	run_at             timestamptz NOT NULL,         -- when due; meaningful while scheduled or retrying
	attempts           integer     NOT NULL DEFAULT 0,
	max_attempts       integer     NOT NULL,
	timeout            bigint      NOT NULL DEFAULT 0, -- microseconds; 0: the engine's default
	lease_expires_at   timestamptz,                  -- while running
	cancel_requested   boolean     NOT NULL DEFAULT false,
	last_error         text        NOT NULL DEFAULT '',
	endpoint_id        text,
	idempotency_key    text COLLATE "C",
	created_at         timestamptz NOT NULL,
	updated_at         timestamptz NOT NULL,
	completed_at       timestamptz                   -- in a terminal state
);

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
