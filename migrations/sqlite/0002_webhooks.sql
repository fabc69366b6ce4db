-- Webhook endpoints. enabled_events is a JSON array of strings, in the
-- order the caller gave them. Times are INTEGER Unix microseconds, UTC.
CREATE TABLE taskwheel_endpoints (
	id                         TEXT    NOT NULL PRIMARY KEY,
	app_id                     TEXT    NOT NULL,
	url                        TEXT    NOT NULL,
	description                TEXT    NOT NULL DEFAULT '',
	enabled_events             TEXT    NOT NULL, -- JSON array
	status                     TEXT    NOT NULL CHECK (status IN ('active', 'inactive')),
	secret                     TEXT    NOT NULL,
	previous_secret            TEXT    NOT NULL DEFAULT '',
	previous_secret_expires_at INTEGER,
	created_at                 INTEGER NOT NULL,
	updated_at                 INTEGER NOT NULL
) STRICT;

-- ListEndpoints: an app's endpoints, oldest first.
CREATE INDEX taskwheel_endpoints_app ON taskwheel_endpoints (app_id, created_at, id);

-- Attempt history, in the order stored (seq). No foreign keys: the history
-- outlives deleted endpoints, and a task's rows are written only by the
-- store, alongside the task's own change.
CREATE TABLE taskwheel_attempts (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	task_id     TEXT    NOT NULL,
	number      INTEGER NOT NULL,
	endpoint_id TEXT    NOT NULL DEFAULT '', -- '' for a func
	started_at  INTEGER NOT NULL,
	duration    INTEGER NOT NULL DEFAULT 0,  -- microseconds
	status_code INTEGER NOT NULL DEFAULT 0,
	response    TEXT    NOT NULL DEFAULT '',
	error       TEXT    NOT NULL DEFAULT ''
) STRICT;

-- Attempts: one task's history in order.
CREATE INDEX taskwheel_attempts_task ON taskwheel_attempts (task_id, seq);
