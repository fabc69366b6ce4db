-- Replay starts a new run of a task and keeps its attempts: replayed_after
-- is the number of attempts the task had when it was last replayed, so the
-- attempts of the current run are those numbered above it.
ALTER TABLE taskwheel_tasks ADD COLUMN replayed_after INTEGER NOT NULL DEFAULT 0;
