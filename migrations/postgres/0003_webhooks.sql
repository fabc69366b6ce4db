-- Webhook endpoints. enabled_events is a jsonb array of strings, in the
-- order the caller gave them. IDs compare byte by byte (COLLATE "C"), as
-- ListEndpoints orders them.
CREATE TABLE taskwheel_endpoints (
	id                         text COLLATE "C" PRIMARY KEY,
	app_id                     text COLLATE "C" NOT NULL,
	url                        text        NOT NULL,
	description                text        NOT NULL DEFAULT '',
	enabled_events             jsonb       NOT NULL,
	status                     text        NOT NULL CHECK (status IN ('active', 'inactive')),
	secret                     text        NOT NULL,
	previous_secret            text        NOT NULL DEFAULT '',
	previous_secret_expires_at timestamptz,
	created_at                 timestamptz NOT NULL,
	updated_at                 timestamptz NOT NULL
);

-- ListEndpoints: an app's endpoints, oldest first.
CREATE INDEX taskwheel_endpoints_app ON taskwheel_endpoints (app_id, created_at, id);

-- Attempt history, in the order stored (seq). No foreign keys: the history
-- outlives deleted endpoints, and a task's rows are written only by the
-- store, alongside the task's own change.
CREATE TABLE taskwheel_attempts (
	seq         bigserial   PRIMARY KEY,
	task_id     text COLLATE "C" NOT NULL,
	number      integer     NOT NULL,
	endpoint_id text        NOT NULL DEFAULT '', -- '' for a func
	started_at  timestamptz NOT NULL,
	duration    bigint      NOT NULL DEFAULT 0,  -- microseconds
	status_code integer     NOT NULL DEFAULT 0,
	response    text        NOT NULL DEFAULT '',
	error       text        NOT NULL DEFAULT ''
);

-- Attempts: one task's history in order.
CREATE INDEX taskwheel_attempts_task ON taskwheel_attempts (task_id, seq);
