-- Flow control (issue 16): flow keys, limits per key, tasks waiting for
-- their key's capacity.

-- A task's flow key, NULL when it is its event type (so that no task
-- stored before needs rewriting). A due task whose key has no capacity
-- waits: wait_key is its key, parked_at when it fell due, wait_reason why
-- it waits, and run_at is moved past every due time (the year 9999), out
-- of the range that Claim and Upcoming read, so that waiting tasks cost
-- them nothing however many there are. All three are NULL otherwise.
ALTER TABLE taskwheel_tasks ADD COLUMN flow_key text COLLATE "C";
ALTER TABLE taskwheel_tasks ADD COLUMN wait_key text COLLATE "C";
ALTER TABLE taskwheel_tasks ADD COLUMN parked_at timestamptz;
ALTER TABLE taskwheel_tasks ADD COLUMN wait_reason text;

-- The tasks waiting for an app's key, oldest due first: Claim starts them
-- from here. Only waiting tasks have an entry.
CREATE INDEX taskwheel_tasks_waiting ON taskwheel_tasks (app_id, wait_key, parked_at, id)
	WHERE wait_key IS NOT NULL;

-- Limits per app and flow key, with the token bucket of the rate limit:
-- tokens at tokens_at.
CREATE TABLE taskwheel_limits (
	app_id      text COLLATE "C" NOT NULL,
	flow_key    text COLLATE "C" NOT NULL,
	rate        double precision NOT NULL DEFAULT 0,
	burst       integer          NOT NULL DEFAULT 0,
	concurrency integer          NOT NULL DEFAULT 0,
	paused      boolean          NOT NULL DEFAULT false,
	tokens      double precision NOT NULL DEFAULT 0,
	tokens_at   timestamptz      NOT NULL,
	updated_at  timestamptz      NOT NULL,
	PRIMARY KEY (app_id, flow_key)
);

-- Fairness between apps: an app's pending tasks by due time, so that a
-- claim under a backlog finds the apps that have due tasks, one index
-- probe each, and takes each app's share of the batch, oldest due first.
CREATE INDEX taskwheel_tasks_app_due ON taskwheel_tasks (app_id, run_at, id)
	WHERE state IN ('scheduled', 'retrying');
