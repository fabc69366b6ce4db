-- Counts that do not grow with history (issue 14).

-- An app's terminal tasks by state and by when they ended. completed_at is
-- set exactly while a task is terminal. CountTasks counts an app's tasks in
-- a terminal state up to its limit on the prefix (app_id, state), reading
-- only the index; TaskHistogram reads one range of completed_at per
-- terminal state. It replaces taskwheel_tasks_completed (app_id,
-- completed_at), which it serves too, at the same write cost: an entry
-- when a task ends, none while it is live.
DROP INDEX taskwheel_tasks_completed;
CREATE INDEX taskwheel_tasks_ended ON taskwheel_tasks (app_id, state, completed_at)
	WHERE completed_at IS NOT NULL;

-- An app's tasks by state, newest first. CountTasks counts the live states
-- (scheduled, running, retrying) on it exactly, reading only the app's live
-- entries; and List reads the first page of one state's tasks of an app on
-- it without passing the app's tasks in other states, which on
-- taskwheel_tasks_app_list, with millions of completed tasks before the
-- first failed one, would be a walk over the app's history.
CREATE INDEX taskwheel_tasks_app_state ON taskwheel_tasks (app_id, state, created_at DESC, id DESC);
