-- The dashboard's counts.

-- TaskHistogram: an app's terminal tasks by when they ended. completed_at is
-- set exactly while a task is terminal.
CREATE INDEX taskwheel_tasks_completed ON taskwheel_tasks (app_id, completed_at)
	WHERE completed_at IS NOT NULL;

-- CountAttempts: an endpoint's recent attempts.
CREATE INDEX taskwheel_attempts_endpoint ON taskwheel_attempts (endpoint_id, started_at)
	WHERE endpoint_id <> '';
