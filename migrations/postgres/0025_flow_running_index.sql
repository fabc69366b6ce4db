-- The running tasks of a flow key (issue 16), as taskwheel_running (0023),
-- the claims under limits and the limit reads count them, one key at a
-- time: a claim under a concurrency limit counts its key's running tasks
-- each time. Without this index PostgreSQL found them through
-- taskwheel_tasks_lease (every running task, of every key) and
-- taskwheel_tasks_app_list (every task of the app, finished ones too), in a
-- bitmap scan, which reads each entry it meets, those of finished tasks as
-- well, until a vacuum removes them: the count cost more the more tasks
-- the app had, and a drain of 50,000 tasks under a limit ran at 0.41× the
-- speed of the drain without it (tasksbench W11). Here the count reads the
-- key's running tasks, and the plain index scan it makes marks the entries
-- of the tasks that ended as dead, which later scans skip and page splits
-- remove, also without a vacuum.
CREATE INDEX taskwheel_tasks_running ON taskwheel_tasks (app_id, (COALESCE(flow_key, event_type)))
	WHERE state = 'running';
