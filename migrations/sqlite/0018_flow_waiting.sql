-- Flow control at scale (issue 16): a limit says whether tasks may wait
-- for its key, so that a claim locks and reads only the limits of keys
-- that have due or waiting tasks, however many limits are idle. waiting is
-- 1 whenever a task waits for the key (a claim that parks one sets it),
-- and may be 1 when none does (a claim that finds none clears it).
ALTER TABLE taskwheel_limits ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0 CHECK (waiting IN (0, 1));
UPDATE taskwheel_limits SET waiting = EXISTS (SELECT 1 FROM taskwheel_tasks AS t
	WHERE t.app_id = taskwheel_limits.app_id AND t.wait_key = taskwheel_limits.flow_key);
CREATE INDEX taskwheel_limits_waiting ON taskwheel_limits (app_id, flow_key) WHERE waiting;
