-- The outcomes of a batch of attempts (SQLStore.Finish; issues 16, 18), as
-- a function, for its setting: the statement found the batch's tasks by
-- their primary key, t.id = ANY($1), but the planner of a table that was
-- never analyzed (autovacuum off, or a table just filled) estimates it
-- from its size alone, a third of the rows it holds, and for a batch of
-- hundreds of outcomes chose to read the whole table and hash it: 83 of
-- the 417 batches of two drains of 50,000 tasks that took 4 ms or more
-- read it (13.5 ms each among 50,000 tasks, of 46 ms), and an engine's
-- outcomes waiting to be stored held up to 1,104 tasks running in the
-- table while 16 workers ran. With sequential scans disabled the tasks are
-- found by the primary key, however the table's statistics stand. The
-- statement is the one Finish ran: $1..$7 are the outcomes' columns (id,
-- attempt, claim token, state, delay in microseconds, error, endpoint),
-- $8..$15 their attempts' (the outcome's 1-based place, number, endpoint,
-- start, duration in microseconds, status code, response, error); it
-- returns the places of the outcomes that applied.
CREATE FUNCTION taskwheel_finish(text[], int[], bigint[], text[], bigint[], text[], text[],
	bigint[], int[], text[], timestamptz[], bigint[], int[], text[], text[])
RETURNS SETOF bigint
LANGUAGE sql VOLATILE
SET enable_seqscan = off
AS $$
WITH o AS (
	SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7)
		WITH ORDINALITY AS o(id, attempt, claim, state, delay, err, endpoint, idx)
), u AS (
	UPDATE taskwheel_tasks AS t SET
		state = CASE WHEN o.state = 'retrying' AND t.cancel_requested THEN 'canceled' ELSE o.state END,
		run_at = CASE WHEN o.state = 'retrying' THEN now() + o.delay * interval '1 microsecond' ELSE t.run_at END,
		completed_at = CASE WHEN o.state = 'retrying' AND NOT t.cancel_requested THEN NULL ELSE now() END,
		last_error = CASE WHEN o.err = '' THEN t.last_error ELSE o.err END,
		endpoint_id = CASE WHEN o.endpoint = '' THEN t.endpoint_id ELSE o.endpoint END,
		lease_expires_at = NULL, claim_token = NULL,
		updated_at = now()
	FROM o
	WHERE t.id = ANY($1) AND t.id = o.id AND t.attempts = o.attempt
		AND (o.claim = 0 OR t.claim_token = o.claim) AND t.state = CASE WHEN o.idx > 0 THEN 'running' END
	RETURNING o.idx, o.id
), a AS (
	INSERT INTO taskwheel_attempts (task_id, number, endpoint_id, started_at, duration, status_code, response, error)
	SELECT u.id, a.number, a.endpoint_id, a.started_at, a.duration, a.status_code, a.response, a.error
	FROM unnest($8, $9, $10, $11, $12, $13, $14, $15)
		WITH ORDINALITY AS a(outcome, number, endpoint_id, started_at, duration, status_code, response, error, ord)
	JOIN u ON u.idx = a.outcome
	ORDER BY a.ord
)
SELECT idx FROM u
$$;
