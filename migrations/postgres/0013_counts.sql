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

-- An app's terminal tasks by state, newest first: List reads the first page
-- of an app's failed (or completed, or canceled) tasks on it, passing none
-- of its tasks in other states, which on taskwheel_tasks_app_list, with
-- millions of completed tasks before the first failed one, would be a walk
-- over the app's history. Like taskwheel_tasks_ended, it costs one entry
-- when a task ends and none while it is live. (Its live states are listed
-- and counted on taskwheel_tasks_due and taskwheel_tasks_lease, which hold
-- every live task: an index of the app's tasks by state that held the live
-- ones too would cost an entry at each insert and two at each change of
-- state, which made the drain on SQLite a third slower.)
CREATE INDEX taskwheel_tasks_ended_list ON taskwheel_tasks (app_id, state, created_at DESC, id DESC)
	WHERE completed_at IS NOT NULL;
