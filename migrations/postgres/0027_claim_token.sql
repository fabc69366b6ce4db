-- The token of a running task's claim (issue 14): a random number that the
-- claim writes and that the fences of its attempt's later writes (outcome,
-- lease extension, an endpoint's slot) compare besides the attempt number.
-- Claims commit without waiting for the disk (synchronous_commit off), so a
-- crash of the server may forget a claim whose task is already running;
-- the task is then claimed again at the same attempt number, and only the
-- token tells the two runs apart: the forgotten one's writes are refused,
-- and its engine cancels it at its next lease extension. NULL while the
-- task does not run.
ALTER TABLE taskwheel_tasks ADD COLUMN claim_token bigint;
