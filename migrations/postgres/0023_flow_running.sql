-- The overhead of a concurrency limit (issue 16): a claim under limits
-- checks a key's running tasks in the statement that locks its limit,
-- rather than in a statement of its own after it (a round trip more).
--
-- Within one statement PostgreSQL reads every table as of the statement's
-- start, and a claim that waited for a limit's lock would then miss the
-- tasks that the claim holding it started: the limit could be exceeded.
-- taskwheel_running is VOLATILE so that its query reads the table afresh,
-- as of its own start: called for a limit row that the statement has
-- locked (a row a locking CTE has returned), it counts every task that a
-- claim holding the lock before started, since every claim of a limited
-- key starts its tasks while holding the key's limit.
CREATE FUNCTION taskwheel_running(a text, k text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	RETURN (SELECT count(*) FROM taskwheel_tasks
		WHERE state = 'running' AND app_id = a AND COALESCE(flow_key, event_type) = k);
END
$$;
