-- Flow control at scale (issue 16): a limit says whether tasks may wait
-- for its key, so that a claim locks and reads only the limits of keys
-- that have due or waiting tasks, however many limits are idle. waiting is
-- true whenever a task waits for the key (a claim that parks one sets it),
-- and may be true when none does (a claim that finds none clears it).
ALTER TABLE taskwheel_limits ADD COLUMN waiting boolean NOT NULL DEFAULT false;
UPDATE taskwheel_limits AS l SET waiting = EXISTS (SELECT 1 FROM taskwheel_tasks AS t
	WHERE t.app_id = l.app_id AND t.wait_key = l.flow_key);
CREATE INDEX taskwheel_limits_waiting ON taskwheel_limits (app_id, flow_key) WHERE waiting;
