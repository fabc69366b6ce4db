-- The token of a running task's claim (issue 14): a random number that the
-- claim writes and that the fences of its attempt's later writes (outcome,
-- lease extension, an endpoint's slot) compare besides the attempt number,
-- so that two claims of one attempt are told apart. SQLite does not forget
-- a claim it committed; PostgreSQL's claims commit without waiting for the
-- disk and may be forgotten in a crash (see migration 0027 there). NULL
-- while the task does not run.
ALTER TABLE taskwheel_tasks ADD COLUMN claim_token INTEGER;
