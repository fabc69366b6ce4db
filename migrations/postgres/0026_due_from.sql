-- The due scan of an engine's claims (issue 16): up to n due tasks, oldest
-- due first, from the position (from_at, from_id) of the due index on,
-- locked, skipping those that other claims hold. An engine's claims scan
-- from the first task its previous claim took, not from the start of the
-- index: the start holds the dead entries of every task that left the due
-- range since the last vacuum (claimed, or moved past every due time to
-- wait for its flow key's capacity), and 100,000 tasks set waiting there
-- made each claim read 897 pages more (tasksbench W11 isolation). Other
-- callers scan from ('-infinity', '').
--
-- A function, and not a subquery of the claims, for its settings: the
-- planner of a table that was never analyzed (autovacuum off, or a table
-- just filled) puts the row comparison's selectivity at a third, estimates
-- fewer rows than the claim asks for, and reads every due task with a
-- bitmap scan to sort them (130 ms with 200,000 due, where the index scan
-- takes 1 ms). With sorts, bitmap and sequential scans disabled, the index
-- scan in due order is the only plan left, however the table's statistics
-- stand. It returns the locked version's ctid, so that a claim can tell
-- whether it saw every task it took as of its own snapshot (see
-- SQLStore.Claim); ROWS 1 keeps the claims' joins with it on the primary
-- key and ctid at every size of the table.
CREATE FUNCTION taskwheel_due(n integer, from_at timestamptz, from_id text)
RETURNS TABLE (id text, tid tid, app_id text, flow_key text)
LANGUAGE plpgsql VOLATILE ROWS 1
SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off
AS $$
BEGIN
	RETURN QUERY SELECT t.id, t.ctid, t.app_id, COALESCE(t.flow_key, t.event_type)
	FROM taskwheel_tasks AS t
	WHERE t.state IN ('scheduled', 'retrying') AND t.run_at <= now()
		AND (t.run_at, t.id) >= (from_at, from_id)
	ORDER BY t.run_at, t.id
	LIMIT n
	FOR UPDATE OF t SKIP LOCKED;
END
$$;
