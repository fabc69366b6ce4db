-- PurgeTasks: every app's finished tasks of one state, oldest first, for
-- retention. Only terminal tasks have a completed_at, so the index holds
-- none of the live ones. A task's attempts go with it, by the index
-- taskwheel_attempts_task.
CREATE INDEX taskwheel_tasks_retention ON taskwheel_tasks (state, completed_at)
	WHERE completed_at IS NOT NULL;

-- Elect and Resign: roles that one engine at a time holds (the engine that
-- deletes finished tasks), each until expires_at (Unix microseconds, UTC)
-- unless renewed.
CREATE TABLE taskwheel_roles (
	role       TEXT    NOT NULL PRIMARY KEY,
	holder     TEXT    NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
